"""Software pipelining of a loop that stages operands in shared memory (``pipeline_stages``).

A schedule asks for it with ``sch.annotate(k_0, "pipeline_stages", S)`` on the loop whose
body copies tiles from global into shared memory (the *producers*: nests whose blocks read
no shared buffer and write only shared ones) and then computes on them (the rest). Each
shared buffer the producers write gets ``S`` copies (a leading stage axis), the producers run
``S - 1`` iterations ahead, and their copies become asynchronous where the dialect has async
copies (``cp.async`` on CUDA: a vectorized producer loop is marked ``async_copy``)::

    for k_0 in range(K) [pipeline_stages=2]:       for p in unrolled(1):  A_shared[p % 2, ..] = A[.. p ..]
      A_shared[..] = A[.. k_0 ..]                    async_commit()
      C += A_shared[..] ...                  ->     for k_0 in range(K):
                                                      if k_0 + 1 < K: A_shared[(k_0 + 1) % 2, ..] = A[.. k_0 + 1 ..]
                                                      async_commit()
                                                      async_wait(1)        # stage k_0 has landed
                                                      C += A_shared[k_0 % 2, ..] ...

The barriers (``barriers.py``) then separate the wait from the reads of the stage and the reads
from the next iteration's copies. Where the nests after the copies write no shared memory, one
barrier per iteration does both: the copies for ``k_0 + S - 1`` go after the wait and the
barrier, into the stage that iteration ``k_0 - 1`` read (the loop is marked
``pipeline_barriers``, and ``barriers.py`` adds none inside it)::

    for k_0 in range(K):
      async_wait(S - 2)                     # stage k_0 has landed (this thread's copies)
      barrier()                             # everyone's copies landed, everyone done with k_0 - 1
      if k_0 + S - 1 < K: A_shared[(k_0 + S - 1) % S, ..] = A[.. k_0 + S - 1 ..]
      async_commit()
      C += A_shared[k_0 % S, ..] ...

Where the nests after the copies call an asynchronous matrix instruction (``async_mma.py``: it
reads its shared operands after it returns) and ``S >= 3``, the copies run ``S - 2`` iterations
ahead instead, into the stage that iteration ``k_0 - 2`` read, so the call of iteration ``k_0 - 1``
may still be running (the loop is marked ``async_mma_in_flight``; with ``S = 2`` every call is
waited for at once).

A loop also annotated ``pipeline_bulk_copy`` whose copies are all box copies has its stages
filled by the copy engine instead, one thread issuing the copies and every thread waiting on the
stage's async barrier (``bulk_copy.py``); copies of any other form stay the threads' own.

Runs after buffer compaction (the shared tiles have their final shapes) and before shared
buffers are hoisted.
"""
from __future__ import annotations

from ...tir import arith
from ...tir.expr import Buffer, Call, Cmp, IntImm, Load, Var, free_vars, logical_and, rewrite
from ...tir.stmt import Allocate, BlockRealize, BufferStore, Evaluate, For, IfThenElse, SeqStmt, Stmt
from ...tir.transform import map_exprs, stmt_exprs, substitute_stmt, update_exprs_in_place, walk_stmts
from .async_mma import IN_FLIGHT, in_flight
from .barriers import barrier
from .binding import GPULoweringError
from .bulk_copy import BULK_COPY, box_copy, elected, init_barriers, ready_buffer, staged_copies, wait_stage

STAGES = "pipeline_stages"
OWN_BARRIERS = "pipeline_barriers"  # a pipelined loop whose body holds the barriers it needs
ASYNC_COPY = "async_copy"
ASYNC_COMMIT, ASYNC_WAIT = "async_commit", "async_wait"
STAGE_ALIGN = 64  # elements between stages are a multiple of this (aligned vector copies)


def async_call(name: str, *args) -> Evaluate:
    return Evaluate(Call(name, tuple(IntImm(a) for a in args), "void"))


def pipeline_loops(body: Stmt, target_kind: str) -> Stmt:
    """``body`` with every loop annotated ``pipeline_stages`` (> 1) pipelined (in place where possible)."""
    if isinstance(body, For):
        body.body = pipeline_loops(body.body, target_kind)
        stages = body.annotations.get(STAGES, 1)
        return _pipeline(body, stages, target_kind) if stages > 1 else body
    if isinstance(body, SeqStmt):
        return SeqStmt(tuple(pipeline_loops(s, target_kind) for s in body.stmts))
    if isinstance(body, Allocate):
        return Allocate(body.buffer, pipeline_loops(body.body, target_kind))
    if isinstance(body, IfThenElse):
        return IfThenElse(body.cond, pipeline_loops(body.then_body, target_kind),
                          None if body.else_body is None else pipeline_loops(body.else_body, target_kind))
    if isinstance(body, BlockRealize):
        body.block.body = pipeline_loops(body.block.body, target_kind)
    return body


def _pipeline(loop: For, stages: int, target_kind: str) -> Stmt:
    where = f"cannot pipeline loop {loop.var.name} ({stages} stages)"
    extent = arith.simplify(loop.extent)
    if loop.kind not in ("serial", "unrolled") or not isinstance(extent, IntImm):
        raise GPULoweringError(f"{where}: it must be a serial loop of constant extent")
    allocations, inner = [], loop.body
    while isinstance(inner, Allocate):
        allocations.append(inner.buffer)
        inner = inner.body
    parts = list(inner.stmts) if isinstance(inner, SeqStmt) else [inner]
    producers = [p for p in parts if _is_producer(p)]
    consumers = [p for p in parts if not _is_producer(p)]
    if not producers or not consumers or parts[:len(producers)] != producers:
        raise GPULoweringError(f"{where}: its body must start with the copies into shared memory (nests reading "
                               f"no shared buffer, writing only shared ones) and go on with the nests using them")
    staged = {buf for p in producers for buf in _writes(p)}
    if any(buf in _writes(c) for c in consumers for buf in staged):
        raise GPULoweringError(f"{where}: a nest after the copies writes one of the staged buffers")
    outside = [buf for buf in allocations if buf not in staged]
    mapping = {buf: _staged_buffer(buf, stages) for buf in staged}
    k = loop.var
    running = min(in_flight(SeqStmt(tuple(consumers)), target_kind), stages - 2)
    ahead = stages - 1 - running
    annotations = {key: value for key, value in loop.annotations.items() if key not in (STAGES, BULK_COPY)}
    if running:
        annotations[IN_FLIGHT] = running
    if loop.annotations.get(BULK_COPY) and not any(_writes_shared(c) for c in consumers):
        bulk = _bulk_pipeline(loop, extent.value, stages, ahead, producers, consumers, mapping, outside, annotations)
        if bulk is not None:
            return bulk
    prologue_var = Var(f"{k.name}_prologue")
    prologue = [_restaged(p, mapping, k, stages, {k: prologue_var}) for p in producers]
    copies = IfThenElse(Cmp("lt", k + ahead, extent), SeqStmt(tuple(
        _restaged(p, mapping, k, stages, {k: k + ahead}) for p in producers)))
    if any(_writes_shared(c) for c in consumers):
        body = [copies, async_call(ASYNC_COMMIT), async_call(ASYNC_WAIT, ahead)]
    else:
        body = [async_call(ASYNC_WAIT, ahead - 1), barrier(), copies, async_call(ASYNC_COMMIT)]
        annotations[OWN_BARRIERS] = True
    body += [_restaged(c, mapping, k, stages, {}) for c in consumers]
    new_body: Stmt = SeqStmt(tuple(body))
    for buf in reversed(outside):
        new_body = Allocate(buf, new_body)
    result: Stmt = SeqStmt((For(prologue_var, IntImm(ahead), SeqStmt(tuple(prologue) + (async_call(ASYNC_COMMIT),)),
                                "unrolled"),
                            For(loop.var, loop.extent, new_body, loop.kind, loop.thread_tag, annotations)))
    for buf in mapping.values():
        result = Allocate(buf, result)
    return result


def _bulk_pipeline(loop: For, extent: int, stages: int, ahead: int, producers: list, consumers: list,
                   mapping: dict, outside: list, annotations: dict) -> Stmt | None:
    """The pipelined loop with its stages filled by bulk copies that one thread issues (see
    ``bulk_copy.py``), or None where a copy is not a box copy or no thread can be elected."""
    copies = [box_copy(p) for p in producers]
    threads = _thread_vars(producers + consumers)
    if not all(copies) or "threadIdx_x" not in threads or \
            any(free_vars(o) & set(threads.values()) for c in copies for o in c.origin):
        return None  # a copy of each thread's own tile is not one box
    k = loop.var
    one = elected([threads[name] for name in sorted(threads)])
    ready = ready_buffer(k, stages)

    def fill(iteration):
        return staged_copies(copies, mapping, ready, arith.simplify(iteration % stages), {k: iteration})

    start = SeqStmt((init_barriers(ready, stages),) + tuple(fill(IntImm(p)) for p in range(min(ahead, extent))))
    later = IfThenElse(logical_and(Cmp("lt", k + ahead, IntImm(extent)), one), fill(k + ahead))
    body: Stmt = SeqStmt((wait_stage(ready, k, stages), barrier(), later)
                         + tuple(_restaged(c, mapping, k, stages, {}) for c in consumers))
    for buf in reversed(outside):
        body = Allocate(buf, body)
    annotations[OWN_BARRIERS] = True
    result: Stmt = SeqStmt((IfThenElse(one, start), barrier(),
                            For(k, loop.extent, body, loop.kind, loop.thread_tag, annotations)))
    for buf in [ready, *mapping.values()]:
        result = Allocate(buf, result)
    return result


def _thread_vars(parts: list) -> dict:
    """Name -> variable of the thread indices the statements use (``threadIdx_x``, ..)."""
    found = {}
    for part in parts:
        for node in walk_stmts(part):
            if isinstance(node, For) and (node.thread_tag or "").startswith("threadIdx"):
                found[node.var.name] = node.var
            for expr in stmt_exprs(node):
                found.update({v.name: v for v in free_vars(expr) if v.name.startswith("threadIdx_")})
    return found


def _is_producer(stmt: Stmt) -> bool:
    blocks = [n.block for n in walk_stmts(stmt) if isinstance(n, BlockRealize)]
    return bool(blocks) and all(all(b.scope == "shared" for b in blk.writes) and
                                not any(b.scope == "shared" for b in blk.reads) for blk in blocks)


def _writes_shared(stmt: Stmt) -> bool:
    return any(isinstance(n, BufferStore) and n.buffer.scope == "shared" for n in walk_stmts(stmt)) or \
        any(b.scope == "shared" for b in _writes(stmt))


def _writes(stmt: Stmt) -> set:
    return {b for n in walk_stmts(stmt) if isinstance(n, BlockRealize) for b in n.block.writes}


def _staged_buffer(buf: Buffer, stages: int) -> Buffer:
    """``buf`` with a leading axis of ``stages``, each stage a whole copy of its (padded) layout."""
    size = arith.simplify(buf.storage_elements())
    stride = -(-size.value // STAGE_ALIGN) * STAGE_ALIGN
    staged = Buffer(buf.name, (stages,) + tuple(buf.shape), buf.dtype, buf.scope, strides=(stride, *buf.strides()))
    staged.swizzled = buf.swizzled
    return staged


def _restaged(stmt: Stmt, mapping: dict, k: Var, stages: int, shift: dict) -> Stmt:
    """A copy of ``stmt`` accessing stage ``k % stages`` of the staged buffers, then ``shift`` applied
    (``k -> k + 1``: the copy for a later iteration); vector loops of producers marked async."""
    stage = k % stages

    def load(e):
        if isinstance(e, Load) and e.buffer in mapping:
            return Load(mapping[e.buffer], (stage,) + tuple(rewrite(i, load) for i in e.indices),
                        None if e.predicate is None else rewrite(e.predicate, load))
        return None

    copy = map_exprs(stmt, lambda e: rewrite(e, load))
    producer = _is_producer(stmt)
    for node in walk_stmts(copy):
        if isinstance(node, BufferStore) and node.buffer in mapping:
            node.buffer, node.indices = mapping[node.buffer], (stage,) + tuple(node.indices)
        elif isinstance(node, BlockRealize):
            node.block.reads = tuple(mapping.get(b, b) for b in node.block.reads)
            node.block.writes = tuple(mapping.get(b, b) for b in node.block.writes)
        elif producer and isinstance(node, For) and node.kind == "vectorized":
            node.annotations[ASYNC_COPY] = True
    if shift:
        copy = substitute_stmt(copy, shift)
    update_exprs_in_place(copy, arith.simplify)
    return copy
