"""Where a block computes: ``compute_at``, ``reverse_compute_at``, ``compute_inline``,
``reverse_compute_inline`` and ``sample_compute_location``.

compute_at(B, j_0) moves the producer under the consumer's loop, computing per iteration the
region of B that the consumer reads there (``schedule/regions.py``)::

    for i in range(8):                            for i in range(8):
      for j in range(16):                           for j_0 in range(4):
        block B[vi = S(8): i, vj = S(16): j]:         for ax0 in range(5):
          B[vi, vj] = A[vi, vj] * 2.0                   block B[vi = S(8): i, vj = S(16): j_0 * 4 + ax0]
    for i in range(8):                      ->              where j_0 * 4 + ax0 < 16:
      for j_0 in range(4):                                B[vi, vj] = A[vi, vj] * 2.0
        for j_1 in range(4):                          for j_1 in range(4):
          block C[...: j_0 * 4 + j_1] where ... :       block C[vi = S(8): i, vj = S(15): j_0 * 4 + j_1] ...
            C[vi, vj] = B[vi, vj] + B[vi, vj + 1]         C[vi, vj] = B[vi, vj] + B[vi, vj + 1]

The moved nest gets one loop per producer spatial iterator whose region is wider than one
element (``ax0, ax1 ...``) and its reduce iterators' full loops; a predicate keeps iterators
in their domains where the region may leave them (tails of split loops, windows at an edge).
The producer's old loops and predicate are dropped: predicates are domain guards.

compute_inline(B) substitutes B's value into its readers and removes B::

    B[vi, vj] = A[vi, vj] * 2.0                   C[vi, vj] = A[vi, vj] * 2.0 + A[vi, vj + 1] * 2.0
    C[vi, vj] = B[vi, vj] + B[vi, vj + 1]   ->

reverse_compute_inline(D) folds an elementwise consumer into its producer's store
(``B[vi, vj] = e; D[vi, vj] = max(B[vi, vj], 0)`` -> ``D[vi, vj] = max(e, 0)``).
"""
from __future__ import annotations

from ...tir import arith
from ...tir.expr import IntImm, Load, Var, logical_and, rewrite, substitute, walk
from ...tir.stmt import Allocate, BlockRealize, BufferStore, For, SeqStmt, seq
from ...tir.transform import buffer_accesses, update_exprs_in_place, walk_stmts
from ..regions import (
    Range,
    loop_read_region,
    loop_write_region,
    read_indices,
    write_indices,
)
from ..schedule import ROOT, ScheduleError, primitive


# ---------------------------------------------------------------- compute_at
@primitive
def compute_at(sch, block, loop, preserve_unit_loops: bool = False):
    """Moves producer ``block`` to the start of ``loop``'s body, computing there the region of
    its output that the blocks under ``loop`` read (see the module docstring)."""
    if sch.is_root(loop):  # the block stays where it is
        sch.get_block_obj(block)
        return
    _plan_compute_at(sch, sch.get_block_obj(block), sch.get_loop(loop), preserve_unit_loops)()


def _plan_compute_at(sch, blk, target: For, preserve_unit_loops: bool):
    """Checks compute_at of ``blk`` under ``target``; returns the function that applies it."""
    where = f"cannot compute_at block {blk.name} under loop {target.var.name}"
    realize = sch.realize_of(blk)
    root = _movable_nest(sch, realize, target, where)
    out = _single_output(blk, where)
    axis_iters = _store_iterators(blk, out, where)
    order = _order(sch)
    under = _blocks_under(target)
    readers = [b for b in sch.blocks() if b is not blk and read_indices(b, out)]
    consumers = [b for b in readers if id(b) in under]
    if not consumers:
        raise ScheduleError(f"{where}: no block under loop {target.var.name} reads {out.name}")
    for reader in readers:
        if id(reader) not in under:
            raise ScheduleError(f"{where}: block {blk.name}'s output is also read by block {reader.name} "
                                f"outside loop {target.var.name}")
    for consumer in consumers:
        if order[id(consumer)] < order[id(blk)]:
            raise ScheduleError(f"{where}: block {blk.name} comes after its consumer {consumer.name}")
    first = min(order[id(blk)], min(order[key] for key in under))
    last = max(order[key] for key in under)
    for other in sch.blocks():  # the blocks the move crosses
        if other is not blk and first <= order[id(other)] <= last:
            clash = [b.name for b in other.writes if b in blk.reads or b in blk.writes]
            if clash:
                raise ScheduleError(f"{where}: block {other.name} writes {', '.join(clash)}, which block "
                                    f"{blk.name} uses, between {blk.name} and the loop")
    _check_pure(blk, out, where)
    region = loop_read_region(sch, target, out)
    _check_parallel_accumulation(sch, blk, target, region, where)
    bounds = _bounds(sch.loops_above(target) + [target])
    values, loops, conds = {}, [], []
    for axis, rng in enumerate(region.ranges):
        iv = axis_iters[axis]
        values[iv.var] = _range_value(rng, iv, loops, conds, bounds, preserve_unit_loops)
    _whole_domains(blk, values, loops)  # reduce iterators keep theirs

    def apply():
        nest = _nest(blk, values, loops, conds)
        _remove(sch, root)
        target.body = seq(nest, target.body)

    return apply


def _check_parallel_accumulation(sch, blk, target: For, region, where: str) -> None:
    """A reduction computed under a parallel loop must accumulate into elements no other
    iteration of that loop touches (its region moves by at least its extent per iteration)."""
    if all(iv.kind == "S" for iv in blk.iter_vars):
        return  # spatial producers write the same values wherever their regions overlap
    for outer in sch.loops_above(target) + [target]:
        if outer.kind not in ("parallel", "thread_binding"):
            continue
        if not any(_moves_past(rng, outer.var) for rng in region.ranges):
            raise ScheduleError(f"{where}: iterations of the {outer.kind} loop {outer.var.name} would accumulate "
                                f"into the same elements of {region.buffer.name}")


def _moves_past(rng, var: Var) -> bool:
    step = arith.linear_form(arith.simplify(rng.min)).terms.get(var, 0)
    return isinstance(rng.extent, IntImm) and abs(step) >= rng.extent.value > 0


def _range_value(rng, iv, loops: list, conds: list, bounds: dict, preserve_unit_loops: bool):
    """The iterator value covering ``rng`` (a new loop unless one element wide); appends the
    loop and the domain conditions that cannot be proven."""
    extent = arith.simplify(rng.extent, bounds)
    start = arith.simplify(rng.min, bounds)
    if all(isinstance(e, IntImm) for e in (start, extent, iv.extent)):  # a fixed range: clip it to the domain
        low, high = max(start.value, 0), min(start.value + extent.value, iv.extent.value)
        rng = Range(IntImm(low), IntImm(max(high - low, 1)))
        extent = rng.extent
    if isinstance(extent, IntImm) and extent.value == 1 and not preserve_unit_loops:
        value = arith.simplify(rng.min, bounds)
    else:
        var = Var(f"ax{len(loops)}")
        loops.append((var, extent))
        value = arith.simplify(rng.min + var, bounds)
    low, _ = arith.bound(arith.simplify(rng.min, bounds), bounds)
    if low is None or low < 0:
        conds.append(value >= 0)
    _, high = arith.bound(arith.simplify(rng.min + extent - iv.extent, bounds), bounds)
    if high is None or high > 0:
        conds.append(value < iv.extent)
    return value


def _whole_domains(blk, values: dict, loops: list) -> None:
    """A loop over its whole domain for each iterator not bound in ``values`` yet."""
    for iv in blk.iter_vars:
        if iv.var not in values:
            var = Var(f"ax{len(loops)}")
            loops.append((var, iv.extent))
            values[iv.var] = var


def _nest(blk, values: dict, loops: list, conds: list):
    stmt = BlockRealize(tuple(values[iv.var] for iv in blk.iter_vars), blk, logical_and(*conds))
    for var, extent in reversed(loops):
        stmt = For(var, extent, stmt)
    return stmt


# ---------------------------------------------------------------- reverse_compute_at
@primitive
def reverse_compute_at(sch, block, loop, preserve_unit_loops: bool = False):
    """Moves consumer ``block`` to the end of ``loop``'s body, computing there the elements
    whose input the blocks under ``loop`` have just written."""
    if sch.is_root(loop):  # the block stays where it is
        sch.get_block_obj(block)
        return
    blk, target = sch.get_block_obj(block), sch.get_loop(loop)
    where = f"cannot reverse_compute_at block {blk.name} under loop {target.var.name}"
    realize = sch.realize_of(blk)
    root = _movable_nest(sch, realize, target, where)
    order = _order(sch)
    under = _blocks_under(target)
    produced = [b for b in blk.reads if any(b in sch_blk.writes for sch_blk in _blocks(sch, under))]
    if not produced:
        raise ScheduleError(f"{where}: no block under loop {target.var.name} writes what {blk.name} reads")
    if len(produced) > 1:
        raise ScheduleError(f"{where}: it reads {', '.join(b.name for b in produced)}, all written under the "
                            f"loop; one is supported")
    buf = produced[0]
    for other in sch.blocks():
        if buf in other.writes and id(other) not in under:
            raise ScheduleError(f"{where}: block {other.name} writes {buf.name} outside the loop")
    for writer in sch.blocks():
        if buf in writer.writes and order[id(blk)] < order[id(writer)]:
            raise ScheduleError(f"{where}: block {blk.name} comes before its producer {writer.name}")
    first = min(order[key] for key in under)
    last = max(order[id(blk)], max(order[key] for key in under))
    for other in sch.blocks():  # the blocks the move crosses
        if other is blk or not first <= order[id(other)] <= last:
            continue
        inputs = [b.name for b in other.writes if b in blk.reads and not (b is buf and id(other) in under)]
        outputs = [b.name for b in blk.writes if b in other.writes or b in other.reads]
        if inputs or outputs:
            raise ScheduleError(f"{where}: block {other.name} uses {', '.join(inputs + outputs)} between "
                                f"the loop and {blk.name}")
    axis_iters = _read_iterators(blk, buf, where)
    region = loop_write_region(sch, target, buf)
    if not region.exact:
        raise ScheduleError(f"{where}: the region of {buf.name} written under the loop ({region}) holds "
                            f"elements it does not write")
    bounds = _bounds(sch.loops_above(target) + [target])
    values, loops, conds = {}, [], []
    for axis, rng in enumerate(region.ranges):
        iv = axis_iters[axis]
        values[iv.var] = _range_value(rng, iv, loops, conds, bounds, preserve_unit_loops)
    _whole_domains(blk, values, loops)
    nest = _nest(blk, values, loops, conds)
    _remove(sch, root)
    target.body = seq(target.body, nest)


def _read_iterators(blk, buf, where: str) -> list:
    """The spatial iterators of ``blk`` that index ``buf``, per axis; every read must be the same."""
    reads = {tuple(str(i) for i in idx): idx for idx in read_indices(blk, buf)}
    spatial = {iv.var: iv for iv in blk.iter_vars if iv.kind == "S"}
    (indices,) = reads.values() if len(reads) == 1 else (None,)
    if indices is None or not _distinct_iterators(indices, spatial):
        raise ScheduleError(f"{where}: block {blk.name} must read {buf.name} at one element given by distinct "
                            f"spatial iterators, e.g. {buf.name}[vi, vj]")
    return [spatial[i] for i in indices]


# ---------------------------------------------------------------- compute_inline
@primitive
def compute_inline(sch, block):
    """Substitutes producer ``block``'s value into every load of its output and removes it."""
    blk = sch.get_block_obj(block)
    where = f"cannot compute_inline block {blk.name}"
    store, out = _single_store(blk, where)
    if any(iv.kind != "S" for iv in blk.iter_vars) or blk.init is not None:
        raise ScheduleError(f"{where}: it is a reduction")
    if out in sch.func.params:
        raise ScheduleError(f"{where}: its output {out.name} is a function parameter")
    spatial = {iv.var: iv for iv in blk.iter_vars}
    if not _distinct_iterators(store.indices, spatial) or len(store.indices) != len(spatial):
        raise ScheduleError(f"{where}: it must store {out.name} at its iterators, one per axis")
    if any(isinstance(e, Load) and e.buffer is out for e in walk(store.value)):
        raise ScheduleError(f"{where}: it reads its own output {out.name}")
    for other in sch.blocks():
        if other is not blk and any(b in other.writes for b in blk.reads + (out,)):
            raise ScheduleError(f"{where}: block {other.name} also writes a buffer it uses")
    readers = [b for b in sch.blocks() if b is not blk and read_indices(b, out)]
    if not readers:
        raise ScheduleError(f"{where}: no block reads {out.name}")
    for reader in readers:
        for node in walk_stmts(seq(reader.init, reader.body)):
            if isinstance(node, BufferStore) and node.buffer is out:
                raise ScheduleError(f"{where}: block {reader.name} writes {out.name}")
    if any(_loads_of(sch, out, lambda e: e.predicate is not None)):
        raise ScheduleError(f"{where}: a predicated load of {out.name} cannot take an expression")
    realize = sch.realize_of(blk)
    root = _nest_root(sch, realize)
    alloc = _allocation(sch, out, where)
    _require_in_sequence(sch, root, where)
    iters = [i for i in store.indices]

    def inline(expr):
        def visit(node):
            if isinstance(node, Load) and node.buffer is out:
                return substitute(store.value, dict(zip(iters, (rewrite(i, visit) for i in node.indices))))
            return None
        return rewrite(expr, visit)

    _remove(sch, root)
    update_exprs_in_place(sch.func.body, inline)
    for reader in readers:
        reads, writes = buffer_accesses(seq(reader.init, reader.body))
        reader.reads, reader.writes = tuple(reads), tuple(writes)
    sch.replace(alloc, alloc.body)


# ---------------------------------------------------------------- reverse_compute_inline
@primitive
def reverse_compute_inline(sch, block):
    """Folds consumer ``block`` (one store reading one element of its producer's output at the
    producer's indexing; its iterators of extent 1 may be left out) into the producer's store,
    and removes it::

        C[i, j] = A[i, j] * 2
        out[0, j, i] = max(C[i, j], 0)     ->     out[0, j, i] = max(A[i, j] * 2, 0)   (C is gone)
    """
    blk = sch.get_block_obj(block)
    where = f"cannot reverse_compute_inline block {blk.name}"
    store, dst = _single_store(blk, where)
    if any(iv.kind != "S" for iv in blk.iter_vars) or blk.init is not None:
        raise ScheduleError(f"{where}: it is a reduction")
    writers = {b: [w for w in sch.blocks() if w is not blk and b in w.writes] for b in blk.reads}
    produced = [b for b, ws in writers.items() if ws]
    if len(produced) != 1 or len(writers[produced[0]]) != 1:
        raise ScheduleError(f"{where}: it must read the output of exactly one producer block")
    buf = produced[0]
    producer = writers[buf][0]
    if any(iv.kind != "S" for iv in producer.iter_vars) or producer.init is not None:
        raise ScheduleError(f"{where}: its producer {producer.name} is a reduction (its body accumulates)")
    pstore, _ = _single_store(producer, f"{where}: producer {producer.name}")
    if pstore.buffer is not buf:
        raise ScheduleError(f"{where}: producer {producer.name} does not store {buf.name}")
    if buf in sch.func.params:
        raise ScheduleError(f"{where}: {buf.name} is a function parameter, it must stay written")
    for other in sch.blocks():
        if other not in (blk, producer) and read_indices(other, buf):
            raise ScheduleError(f"{where}: {buf.name} is also read by block {other.name}")
    pspatial = {iv.var: iv for iv in producer.iter_vars}
    if not _distinct_iterators(pstore.indices, pspatial) or len(pstore.indices) != len(pspatial):
        raise ScheduleError(f"{where}: producer {producer.name} must store {buf.name} at its iterators")
    axis_iters = _read_iterators(blk, buf, where)
    # iterators of extent 1 (a unit batch axis) need not index buf: they are 0
    unit = [iv for iv in blk.iter_vars if all(iv is not a for a in axis_iters)
            and isinstance(arith.simplify(iv.extent), IntImm) and arith.simplify(iv.extent).value == 1]
    if len(axis_iters) + len(unit) != len(blk.iter_vars):
        raise ScheduleError(f"{where}: every iterator of {blk.name} must index {buf.name}")
    mapping = {iv.var: IntImm(0) for iv in unit}
    for civ, pvar in zip(axis_iters, pstore.indices):
        if arith.simplify(civ.extent - pspatial[pvar].extent) != IntImm(0):
            raise ScheduleError(f"{where}: its domain differs from {producer.name}'s along {civ.var.name}")
        mapping[civ.var] = pvar
    order = _order(sch)
    if order[id(blk)] < order[id(producer)]:
        raise ScheduleError(f"{where}: it comes before its producer {producer.name}")
    for other in sch.blocks():
        between = other not in (blk, producer) and order[id(producer)] < order[id(other)] < order[id(blk)]
        if between and (any(b in other.writes for b in blk.reads)
                        or any(b in other.writes + other.reads for b in blk.writes)):
            raise ScheduleError(f"{where}: block {other.name} between {producer.name} and {blk.name} "
                                    f"uses what {blk.name} reads or writes")
    root = _nest_root(sch, sch.realize_of(blk))
    _require_in_sequence(sch, root, where)
    alloc = _allocation(sch, buf, where)

    def fold(expr):
        return substitute(rewrite(expr, lambda n: pstore.value if isinstance(n, Load) and n.buffer is buf
                                   else None), mapping)

    predicate = substitute(store.predicate, mapping) if store.predicate is not None else pstore.predicate
    if store.predicate is not None and pstore.predicate is not None:
        predicate = logical_and(pstore.predicate, predicate)
    new_store = BufferStore(dst, fold(store.value), tuple(substitute(i, mapping) for i in store.indices), predicate)
    _remove(sch, root)
    sch.replace(pstore, new_store)
    reads, writes = buffer_accesses(seq(producer.init, producer.body))
    producer.reads, producer.writes = tuple(reads), tuple(writes)
    sch.replace(alloc, alloc.body)


# ---------------------------------------------------------------- sample_compute_location
@primitive(sampling=True)
def sample_compute_location(sch, block, decision=None):
    """A loop where ``block`` can be computed at, or the root location (where it is now): a
    LoopRV either way, so ``compute_at(block, sampled)`` replays whichever decision a tuner picks.

    The candidates are root then every loop where compute_at is legal, in program order; the
    decision is the index of the choice.
    """
    blk = sch.get_block_obj(block)
    candidates = [None] + [n for n in walk_stmts(sch.func.body) if isinstance(n, For) and _legal(sch, blk, n)]
    if decision is None:
        decision = sch.rng.randrange(len(candidates))
    if not isinstance(decision, int) or not 0 <= decision < len(candidates):
        raise ScheduleError(f"sample_compute_location of block {blk.name}: decision {decision!r} is not one of "
                            f"the {len(candidates)} candidates")
    chosen = candidates[decision]
    return sch.new_rv(ROOT if chosen is None else chosen), decision


def _legal(sch, blk, loop: For) -> bool:
    try:
        _plan_compute_at(sch, blk, loop, False)
    except ScheduleError:
        return False
    return True


# ---------------------------------------------------------------- shared checks and tree surgery
def _movable_nest(sch, realize, target: For, where: str):
    """The block's exclusive loop nest, checked to be movable under ``target``."""
    root = _nest_root(sch, realize)
    if any(node is target for node in walk_stmts(root)):
        raise ScheduleError(f"{where}: the loop is inside the block's own loop nest")
    for outer in sch.loops_above(target) + [target]:
        if outer.kind == "vectorized":
            raise ScheduleError(f"{where}: loop {outer.var.name} is vectorized (a loop nest cannot go in its lanes)")
    _require_in_sequence(sch, root, where)
    return root


def _nest_root(sch, realize):
    """The outermost statement above ``realize`` whose loops hold nothing else."""
    parents = sch.parents()
    node = realize
    while isinstance(parents.get(id(node)), For):
        node = parents[id(node)]
    return node


def _require_in_sequence(sch, root, where: str) -> None:
    if not isinstance(sch.parents().get(id(root)), SeqStmt):
        raise ScheduleError(f"{where}: its loop nest is not one statement of a sequence (nothing else "
                            f"is computed beside it)")


def _remove(sch, stmt) -> None:
    parent = sch.parents()[id(stmt)]
    rest = tuple(s for s in parent.stmts if s is not stmt)
    if len(rest) == 1:
        sch.replace(parent, rest[0])
    else:
        parent.stmts = rest


def _single_output(blk, where: str):
    if len(blk.writes) != 1:
        raise ScheduleError(f"{where}: it writes {len(blk.writes)} buffers, one is supported")
    return blk.writes[0]


def _single_store(blk, where: str):
    """The block's only statement, a store (else an error)."""
    if not isinstance(blk.body, BufferStore):
        raise ScheduleError(f"{where}: its body must be a single store")
    return blk.body, blk.body.buffer


def _store_iterators(blk, out, where: str) -> list:
    """The spatial iterator stored at each axis of ``out``: stores must index by them all, once."""
    stores = {tuple(str(i) for i in idx): idx for idx in write_indices(blk, out)}
    spatial = {iv.var: iv for iv in blk.iter_vars if iv.kind == "S"}
    (indices,) = stores.values() if len(stores) == 1 else (None,)
    if indices is None or not _distinct_iterators(indices, spatial) or len(indices) != len(spatial):
        raise ScheduleError(f"{where}: it must store {out.name} at its spatial iterators, one per axis")
    return [spatial[i] for i in indices]


def _distinct_iterators(indices, iterators: dict) -> bool:
    return all(isinstance(i, Var) and i in iterators for i in indices) and len(set(indices)) == len(indices)


def _check_pure(blk, out, where: str) -> None:
    """The producer must read its output only to accumulate into the element it stores."""
    stored = {tuple(str(i) for i in idx) for idx in write_indices(blk, out)}
    for idx in read_indices(blk, out):
        if blk.init is None or tuple(str(i) for i in idx) not in stored:
            raise ScheduleError(f"{where}: it reads its own output {out.name} at other elements")


def _order(sch) -> dict:
    """{id(block): position in program order}."""
    return {id(b): n for n, b in enumerate(sch.blocks())}


def _blocks_under(loop: For) -> set:
    return {id(n.block) for n in walk_stmts(loop.body) if isinstance(n, BlockRealize)}


def _blocks(sch, ids: set) -> list:
    return [b for b in sch.blocks() if id(b) in ids]


def _bounds(loops: list) -> dict:
    return {x.var: (0, x.extent.value - 1 if isinstance(x.extent, IntImm) else None) for x in loops}


def _allocation(sch, buf, where: str):
    for node in walk_stmts(sch.func.body):
        if isinstance(node, Allocate) and node.buffer is buf:
            return node
    raise ScheduleError(f"{where}: {buf.name} is not allocated in the function")


def _loads_of(sch, buf, predicate):
    from ...tir.transform import stmt_exprs

    for node in walk_stmts(sch.func.body):
        for expr in stmt_exprs(node):
            for e in walk(expr):
                if isinstance(e, Load) and e.buffer is buf and predicate(e):
                    yield e
