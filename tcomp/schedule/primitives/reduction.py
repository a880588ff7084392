"""Reductions: ``decompose_reduction`` and ``rfactor``.

decompose_reduction(c, k) moves C's init into a block of its own, before loop ``k``, over the
spatial loops below ``k`` (here none; with ``decompose_reduction(c, j)`` a ``j`` loop)::

    for i, j, k:                               for i, j:
      block C[vi, vj, vk = R(K): k]:             block C_init[vi, vj]:
        init:                            ->        C[vi, vj] = 0.0
          C[vi, vj] = 0.0                        for k:
        C[vi, vj] = C[vi, vj] + A[..]              block C[vi, vj, vk = R(K): k]:
                                                     C[vi, vj] = C[vi, vj] + A[..]

rfactor(k_1, 0) after ``k -> k_0, k_1`` makes the partial results over ``k_1`` explicit in a
buffer ``C_rf`` with ``k_1``'s axis at position 0; block C then reduces ``C_rf`` over that axis::

    for i, j, k_0, k_1:                        for i, j:
      block C[vi, vj, vk = R(64): k_0 * 16 + k_1]:   for k_0, k_1:
        init: C[vi, vj] = 0.0              ->          block C_rf[vi, vj, vk_0 = R(4): k_0, vk_1 = S(16): k_1]:
        C[vi, vj] = C[vi, vj] + A[vi, vk] * ..          init: C_rf[vk_1, vi, vj] = 0.0
                                                        C_rf[vk_1, vi, vj] += A[vi, vk_0 * 16 + vk_1] * ..
                                                   for k_1:
                                                     block C[vi, vj, vk_1 = R(16): k_1]:
                                                       init: C[vi, vj] = 0.0
                                                       C[vi, vj] = C[vi, vj] + C_rf[vk_1, vi, vj]

rfactor takes blocks of the form ``C[idx] = C[idx] op expr`` (op: sum, max or min) with an
init ``C[idx] = identity``, as ``tir.compute`` makes them; the loop must feed only reduce
iterators and the block may not have a predicate over the reduction loops (split with a
factor that divides the extent).
"""
from __future__ import annotations

from ...tir.expr import BinOp, Buffer, Load, Var, conjuncts, free_vars, logical_and, substitute, walk
from ...tir.stmt import Block, BlockRealize, BufferStore, For, IterVar, seq
from ...tir.transform import buffer_accesses, substitute_stmt, walk_stmts
from ..schedule import ScheduleError, primitive
from .cache import allocate_at_root, insert_beside, unique_name

COMBINERS = ("add", "max", "min")


@primitive
def decompose_reduction(sch, block, loop):
    """Moves ``block``'s init into a new block ``<name>_init`` placed before ``loop``, inside a copy
    of the loops below ``loop`` that feed spatial iterators; returns the init block."""
    blk = sch.get_block_obj(block)
    node = sch.get_loop(loop)
    where = f"cannot decompose_reduction of block {blk.name} at loop {node.var.name}"
    if blk.init is None:
        raise ScheduleError(f"{where}: the block has no init")
    loops = sch.loops_above(blk)
    if not any(l is node for l in loops):
        raise ScheduleError(f"{where}: the loop is not above the block")
    realize = sch.realize_of(blk)
    spatial_vars, reduce_vars = _iterator_vars(blk, realize)
    position = next(i for i, l in enumerate(loops) if l is node)
    for outer in loops[:position]:
        if outer.var in reduce_vars:
            raise ScheduleError(f"{where}: loop {outer.var.name} above it feeds a reduce iterator, so the init "
                                f"would run on every iteration of it")
    kept = []
    for inner in loops[position:]:
        if inner.var in spatial_vars and inner.var in reduce_vars:
            raise ScheduleError(f"{where}: loop {inner.var.name} feeds both spatial and reduce iterators")
        if inner.var in spatial_vars:
            kept.append(inner)
    dropped = {l.var for l in loops[position:] if all(l is not k for k in kept)}
    predicate = []
    for cond in conjuncts(realize.predicate):
        used = free_vars(cond)
        if used & dropped and used & (spatial_vars - dropped):
            raise ScheduleError(f"{where}: its predicate {cond} mixes reduction and spatial loops")
        if not used & dropped:
            predicate.append(cond)
    renamed = {l.var: Var(f"{l.var.name}_init") for l in kept}
    iter_vars, values, mapping = [], [], {}
    for iv, value in zip(blk.iter_vars, realize.iter_values):
        if iv.kind == "S":
            new = IterVar(Var(iv.var.name), iv.extent, "S")
            iter_vars.append(new)
            values.append(substitute(value, renamed))
            mapping[iv.var] = new.var
    init = substitute_stmt(blk.init, mapping)
    reads, writes = buffer_accesses(init)
    init_block = Block(unique_name(sch, f"{blk.name}_init"), tuple(iter_vars), init, None, tuple(reads),
                       tuple(writes))
    stmt = BlockRealize(tuple(values), init_block, logical_and(*(substitute(c, renamed) for c in predicate)))
    for inner in reversed(kept):
        stmt = For(renamed[inner.var], inner.extent, stmt, inner.kind, inner.thread_tag, dict(inner.annotations))
    insert_beside(sch, node, stmt, after=False)
    blk.init = None
    return sch.new_rv(init_block)


@primitive
def rfactor(sch, loop, factor_axis: int):
    """Factors the reduction over ``loop`` into a buffer ``<C>_rf`` (``loop``'s axis at ``factor_axis``)
    written by a new block ``<C>_rf``; the original block then reduces ``<C>_rf``. Returns the rf block."""
    node = sch.get_loop(loop)
    realizes = [n for n in walk_stmts(node.body) if isinstance(n, BlockRealize)]
    if len(realizes) != 1:
        raise ScheduleError(f"cannot rfactor loop {node.var.name}: it must hold exactly one block, it holds "
                            f"{len(realizes)}")
    realize = realizes[0]
    blk = realize.block
    where = f"cannot rfactor loop {node.var.name} of block {blk.name}"
    buf, indices, op, source, identity = _reduction(blk, where)
    spatial_vars, reduce_vars = _iterator_vars(blk, realize)
    if node.var not in reduce_vars:
        raise ScheduleError(f"{where}: the loop does not feed a reduce iterator")
    loops = sch.loops_above(blk)
    reduce_loops = [l for l in loops if l.var in reduce_vars]
    for l in reduce_loops:
        if l.var in spatial_vars:
            raise ScheduleError(f"{where}: loop {l.var.name} feeds both spatial and reduce iterators")
    stray = reduce_vars - {l.var for l in reduce_loops}
    if stray:
        raise ScheduleError(f"{where}: reduce iterators are bound to {', '.join(sorted(v.name for v in stray))}, "
                            f"which are not loops")
    if realize.predicate is not None and free_vars(realize.predicate) & reduce_vars:
        raise ScheduleError(f"{where}: its predicate {realize.predicate} limits the reduction loops (a split "
                            f"tail); split by a factor that divides the extent")
    rank = len(buf.shape)
    if not isinstance(factor_axis, int) or not -rank - 1 <= factor_axis <= rank:
        raise ScheduleError(f"{where}: factor_axis {factor_axis!r} is out of range for {buf.name} of rank {rank}")
    factor_axis %= rank + 1

    rf_buf = Buffer(unique_name(sch, f"{buf.name}_rf"),
                    buf.shape[:factor_axis] + (node.extent,) + buf.shape[factor_axis:], buf.dtype)
    spatial = [(iv, value) for iv, value in zip(blk.iter_vars, realize.iter_values) if iv.kind == "S"]
    rf_spatial = {iv.var: IterVar(Var(iv.var.name), iv.extent, "S") for iv, _ in spatial}
    rf_loops = {l.var: IterVar(Var(f"v{l.var.name}"), l.extent, "S" if l is node else "R") for l in reduce_loops}
    mapping = {old: new.var for old, new in rf_spatial.items()}
    loop_to_iter = {old: new.var for old, new in rf_loops.items()}
    for iv, value in zip(blk.iter_vars, realize.iter_values):
        if iv.kind == "R":
            mapping[iv.var] = substitute(value, loop_to_iter)
    rf_indices = tuple(substitute(i, mapping) for i in indices)
    rf_indices = rf_indices[:factor_axis] + (rf_loops[node.var].var,) + rf_indices[factor_axis:]
    rf_body = BufferStore(rf_buf, BinOp(op, Load(rf_buf, rf_indices), substitute(source, mapping)), rf_indices)
    rf_init = BufferStore(rf_buf, identity, rf_indices)
    reads, writes = buffer_accesses(seq(rf_init, rf_body))
    rf_block = Block(rf_buf.name, tuple(rf_spatial.values()) + tuple(rf_loops.values()), rf_body, rf_init,
                     tuple(reads), tuple(writes))

    # the original block now reduces C_rf over the factored axis, in a nest after the reduction loops
    first = next(i for i, l in enumerate(loops) if l.var in reduce_vars)
    copied = [l for l in loops[first:] if l.var not in reduce_vars]
    renamed = {l.var: Var(l.var.name) for l in copied}
    axis_loop = Var(node.var.name)
    axis_iter = IterVar(Var(f"v{node.var.name}"), node.extent, "R")
    wb_indices = indices[:factor_axis] + (axis_iter.var,) + indices[factor_axis:]
    blk.iter_vars = tuple(iv for iv, _ in spatial) + (axis_iter,)  # the write-back's iterators (before its realize)
    wb_realize = BlockRealize(tuple(substitute(v, renamed) for _, v in spatial) + (axis_loop,), blk,
                              None if realize.predicate is None else substitute(realize.predicate, renamed))
    stmt = For(axis_loop, node.extent, wb_realize)
    for l in reversed(copied):
        stmt = For(renamed[l.var], l.extent, stmt)

    realize.block = rf_block
    realize.iter_values = tuple(v for _, v in spatial) + tuple(l.var for l in reduce_loops)
    blk.body = BufferStore(buf, BinOp(op, Load(buf, indices), Load(rf_buf, wb_indices)), indices)
    reads, writes = buffer_accesses(seq(blk.init, blk.body))
    blk.reads, blk.writes = tuple(reads), tuple(writes)
    insert_beside(sch, loops[first], stmt, after=True)
    allocate_at_root(sch, rf_buf)
    return sch.new_rv(rf_block)


def _reduction(blk, where: str) -> tuple:
    """(buffer, indices, combiner op, source expr, identity) of ``C[idx] = C[idx] op source`` with
    init ``C[idx] = identity``."""
    if blk.init is None or not any(iv.kind == "R" for iv in blk.iter_vars):
        raise ScheduleError(f"{where}: the block is not a reduction (it needs a reduce iterator and an init)")
    body, init = blk.body, blk.init
    shape_error = ScheduleError(f"{where}: the block must be C[idx] = C[idx] op expr (op: sum, max or min) "
                                f"with init C[idx] = identity")
    if not isinstance(body, BufferStore) or body.predicate is not None or not isinstance(body.value, BinOp):
        raise shape_error
    buf, indices, value = body.buffer, body.indices, body.value
    if value.op not in COMBINERS:
        raise shape_error

    def is_current(expr):
        return isinstance(expr, Load) and expr.buffer is buf and expr.indices == indices and expr.predicate is None

    if is_current(value.a):
        source = value.b
    elif is_current(value.b):
        source = value.a
    else:
        raise shape_error
    if any(isinstance(e, Load) and e.buffer is buf for e in walk(source)):
        raise ScheduleError(f"{where}: the reduced expression reads {buf.name} itself")
    if not (isinstance(init, BufferStore) and init.buffer is buf and init.indices == indices
            and init.predicate is None and not any(isinstance(e, Load) for e in walk(init.value))):
        raise shape_error
    reduce_ivars = {iv.var for iv in blk.iter_vars if iv.kind == "R"}
    if any(free_vars(i) & reduce_ivars for i in indices):
        raise ScheduleError(f"{where}: the stored element depends on a reduce iterator")
    return buf, indices, value.op, source, init.value


def _iterator_vars(blk, realize) -> tuple:
    """The loop variables feeding spatial iterators, and those feeding reduce iterators."""
    spatial, reduce = set(), set()
    for iv, value in zip(blk.iter_vars, realize.iter_values):
        (spatial if iv.kind == "S" else reduce).update(free_vars(value))
    return spatial, reduce
