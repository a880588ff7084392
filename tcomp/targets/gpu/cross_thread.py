"""Cross-thread reductions: a reduction block whose reduce iterator is fed by a loop bound to
``threadIdx.x`` becomes per-thread partials, a tree over them in shared memory, and one thread's
store of the result::

    for r in blockIdx.x(128):                        for r in blockIdx.x(128):
      for t in threadIdx.x(64):                        for t in threadIdx.x(64):
        for k0 in range(2):                              M_acc[0] = -inf                         (local)
          block M[vr = S: r, vk = R: k0 * 64 + t]        for k0 in range(2): M_acc[0] = max(M_acc[0], x[r, k0 * 64 + t])
            init: M[vr] = -inf                 ->        M_red[t] = M_acc[0]                     (shared)
            M[vr] = max(M[vr], x[vr, vk])              for t in threadIdx.x(32): M_red[t] = max(M_red[t], M_red[t + 32])
                                                       ... (16, 8, 4, 2, 1 threads)
                                                       for t in threadIdx.x(1): block M[vr = S: r]: M[vr] = M_red[0]

``barriers.py`` then puts a barrier between the steps (each reads what the one before wrote in
shared memory). The combiner is the block's: ``+``, ``max`` or ``min`` of the output element and a
value, with a constant init. Nothing here is specific to a vendor: WGSL renders the shared buffer
as workgroup memory and the barriers as ``workgroupBarrier()``.
"""
from __future__ import annotations

from ...tir.expr import BinOp, Buffer, Cmp, FloatImm, IntImm, Load, conjuncts, free_vars, logical_and, substitute
from ...tir.stmt import Allocate, BlockRealize, BufferStore, For, IfThenElse, SeqStmt, Stmt, block
from ...tir.transform import walk_stmts
from .binding import GPULoweringError

COMBINERS = ("add", "max", "min")
AXIS = "threadIdx.x"


def lower_cross_thread(kernel_name: str, stmt: Stmt) -> Stmt:
    """``stmt`` (a kernel's nest) with each ``threadIdx.x`` loop whose block reduces over it rewritten
    as above; raises ``GPULoweringError`` naming the block where that loop nest is not one
    combiner block under serial loops."""
    if isinstance(stmt, For):
        if stmt.thread_tag == AXIS and _reduces_over(stmt):
            return _rewrite(kernel_name, stmt)
        return For(stmt.var, stmt.extent, lower_cross_thread(kernel_name, stmt.body), stmt.kind, stmt.thread_tag,
                   stmt.annotations)
    if isinstance(stmt, SeqStmt):
        return SeqStmt(tuple(lower_cross_thread(kernel_name, s) for s in stmt.stmts))
    if isinstance(stmt, Allocate):
        return Allocate(stmt.buffer, lower_cross_thread(kernel_name, stmt.body))
    return stmt


def _reduces_over(loop: For) -> bool:
    return any(iv.kind == "R" and loop.var in free_vars(value)
               for node in walk_stmts(loop.body) if isinstance(node, BlockRealize)
               for iv, value in zip(node.block.iter_vars, node.iter_values))


def _rewrite(kernel_name: str, tloop: For) -> Stmt:
    inner, node = [], tloop.body
    while isinstance(node, For) and node.kind != "thread_binding":
        inner.append(node)
        node = node.body
    if not isinstance(node, BlockRealize):
        found = next((n.block.name for n in walk_stmts(tloop.body) if isinstance(n, BlockRealize)), "?")
        raise GPULoweringError(f"kernel {kernel_name}: block {found} reduces over a loop bound to {AXIS}, but that "
                               f"loop's body is not one block under serial loops; a cross-thread reduction needs "
                               f"exactly that (split the reduce loop, bind its outer part to {AXIS}, leave the rest "
                               f"serial inside)")
    realize, blk = node, node.block
    out, indices, op, value, identity = _combiner(kernel_name, blk)
    mapping = {iv.var: v for iv, v in zip(blk.iter_vars, realize.iter_values)}
    private = {tloop.var} | {loop.var for loop in inner}
    spatial = [(iv, v) for iv, v in zip(blk.iter_vars, realize.iter_values) if iv.kind == "S"]
    if any(free_vars(v) & private for _, v in spatial):
        raise GPULoweringError(f"kernel {kernel_name}: block {blk.name} reduces over {AXIS}, but its output element "
                               f"also depends on that loop or the loops inside it; bind only reduce loops there")
    extent = tloop.extent
    if not isinstance(extent, IntImm):
        raise GPULoweringError(f"kernel {kernel_name}: block {blk.name} reduces over {AXIS} with the symbolic extent "
                               f"{extent}; split the reduction by a constant number of threads")
    threads = extent.value
    acc = Buffer(f"{out.name}_acc", (1,), out.dtype, "local")
    red = Buffer(f"{out.name}_red", (threads,), out.dtype, "shared")
    zero, t = (IntImm(0),), tloop.var

    conds = conjuncts(realize.predicate)
    step = BufferStore(acc, BinOp(op, Load(acc, zero), substitute(value, mapping)), zero)
    guard = logical_and(*[c for c in conds if free_vars(c) & private])
    per_thread = IfThenElse(substitute(guard, mapping), step) if guard is not None else step
    for loop in reversed(inner):
        per_thread = For(loop.var, loop.extent, per_thread, loop.kind, None, loop.annotations)
    partial = Allocate(acc, SeqStmt((BufferStore(acc, identity, zero), per_thread,
                                     BufferStore(red, Load(acc, zero), (t,)))))
    steps = [For(t, extent, partial, "thread_binding", AXIS)]
    half = 1 << ((threads - 1).bit_length() - 1) if threads > 1 else 0
    while half:
        both = BufferStore(red, BinOp(op, Load(red, (t,)), Load(red, (BinOp("add", t, IntImm(half, t.dtype)),))), (t,))
        if 2 * half > threads:  # not a power of two: the upper half is short
            both = IfThenElse(Cmp("lt", BinOp("add", t, IntImm(half, t.dtype)), IntImm(threads, t.dtype)), both)
        steps.append(For(t, IntImm(half), both, "thread_binding", AXIS))
        half //= 2
    outer_guard = logical_and(*[c for c in conds if not free_vars(c) & private])
    final = block(blk.name, [("S", iv.extent, v) for iv, v in spatial],
                  lambda *vs: BufferStore(out, Load(red, zero), tuple(
                      substitute(i, dict(zip([iv.var for iv, _ in spatial], vs))) for i in indices)),
                  outer_guard)
    steps.append(For(t, IntImm(1), final, "thread_binding", AXIS))
    return Allocate(red, SeqStmt(tuple(steps)))


def _combiner(kernel_name: str, blk) -> tuple:
    """(output buffer, its indices, combiner op, combined value, identity) of a block
    ``out[idx] = op(out[idx], value)`` with init ``out[idx] = constant``."""
    body, init = blk.body, blk.init
    ok = isinstance(body, BufferStore) and isinstance(body.value, BinOp) and body.value.op in COMBINERS \
        and isinstance(body.value.a, Load) and body.value.a.buffer is body.buffer \
        and body.value.a.indices == body.indices and body.predicate is None \
        and isinstance(init, BufferStore) and init.buffer is body.buffer and isinstance(init.value, (IntImm, FloatImm))
    if not ok:
        raise GPULoweringError(f"kernel {kernel_name}: block {blk.name} reduces over {AXIS}, but it is not a "
                               f"sum/max/min of its output element with a constant init, the reductions a GPU "
                               f"kernel combines across threads")
    return body.buffer, body.indices, body.value.op, body.value.b, init.value
