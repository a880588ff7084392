"""What the design-space rules ask about blocks and loops.

    kinds = loop_kinds(sch, block)                # ["S", "S", "R"] for a matmul
    is_pending(sch, "C")                          # at the root, alone in its serial nest: unscheduled
    has_reuse(block)                              # some input is read by several output elements
    inline_operand_stage(sch, copy)               # an im2col gather computed in its shared copy
"""
from __future__ import annotations

from ...schedule.regions import read_indices
from ...schedule.schedule import Schedule, ScheduleError
from ...tir.expr import Var, free_vars
from ...tir.stmt import Block, BlockRealize, PrimFunc
from ...tir.transform import walk_stmts

OPERAND_STAGE = "operand_stage"  # block annotation: a gather feeding a product (an im2col), never materialized


def fork(func: PrimFunc, sch: Schedule) -> Schedule:
    """A copy of ``sch``: its trace replayed on ``func`` with the recorded decisions."""
    return sch.trace.apply_to(func, seed=len(sch.trace))


def attempt(sch: Schedule, method: str, *args):
    """``sch.<method>(*args)``'s result (True for a primitive returning nothing), or False where the
    primitive refuses (it changes nothing then, and the trace does not record it)."""
    try:
        result = getattr(sch, method)(*args)
    except ScheduleError:
        return False
    return True if result is None else result


def find_block(sch: Schedule, name: str) -> Block | None:
    return next((b for b in sch.blocks() if b.name == name), None)


def loop_kinds(sch: Schedule, blk: Block) -> list:
    """Per loop above ``blk`` (outermost first): "S" if it feeds only spatial iterators, "R" if
    only reduce iterators, "" if both or none."""
    realize = sch.realize_of(blk)
    kinds = []
    for loop in sch.loops_above(blk):
        fed = {iv.kind for iv, value in zip(blk.iter_vars, realize.iter_values) if loop.var in free_vars(value)}
        kinds.append(fed.pop() if len(fed) == 1 else "")
    return kinds


def is_pending(sch: Schedule, name: str) -> bool:
    """Whether block ``name`` exists, unscheduled: its loops are serial and hold only it."""
    blk = find_block(sch, name)
    if blk is None:
        return False
    loops = sch.loops_above(blk)
    if any(loop.kind != "serial" for loop in loops):
        return False
    return not loops or sum(isinstance(n, BlockRealize) for n in walk_stmts(loops[0])) == 1


def is_spatial(blk: Block) -> bool:
    return all(iv.kind == "S" for iv in blk.iter_vars)


def has_reuse(blk: Block) -> bool:
    """A reduction whose output elements share inputs: some read (not the output) is indexed
    by fewer than all of the spatial iterators (A[i, k] in a matmul misses j)."""
    if is_spatial(blk):
        return False
    spatial = {iv.var for iv in blk.iter_vars if iv.kind == "S"}
    for buf in blk.reads:
        if buf in blk.writes:
            continue
        for indices in read_indices(blk, buf):
            used = set().union(*(free_vars(i) for i in indices)) if indices else set()
            if not spatial <= {v for v in used if isinstance(v, Var)}:
                return True
    return False


def access_strides(sch: Schedule, block, loops: list) -> list:
    """Per access of block ``block`` (its stores, then the loads in their values), the strides of
    its flat offset along ``loops`` (loops above it), or None for one not affine in them."""
    from ...tir import arith
    from ...tir.expr import Load, substitute, walk
    from ...tir.stmt import BufferStore

    blk = sch.get_block_obj(block)
    mapping = {iv.var: value for iv, value in zip(blk.iter_vars, sch.realize_of(blk).iter_values)}
    variables = [sch.get_loop(loop).var for loop in loops]
    ids = {id(var) for var in variables}
    stores = [n for n in walk_stmts(blk.body) if isinstance(n, BufferStore)]
    accesses = [(n.buffer, n.indices) for n in stores]
    accesses += [(e.buffer, e.indices) for n in stores for e in walk(n.value) if isinstance(e, Load)]
    strides = []
    for buffer, indices in accesses:
        form = arith.linear_form(arith.simplify(substitute(buffer.offset(indices), mapping)))
        affine = all(id(atom) in ids for atom in form.terms)
        strides.append([form.terms.get(var, 0) for var in variables] if affine else None)
    return strides


def consumers(sch: Schedule, blk: Block) -> list:
    """The blocks reading what ``blk`` writes, in program order."""
    return [b for b in sch.blocks() if b is not blk and any(buf in b.reads for buf in blk.writes)]


def is_output(sch: Schedule, blk: Block) -> bool:
    """Whether ``blk`` writes a parameter of the function (an output of the kernel)."""
    return any(any(buf is p for p in sch.func.params) for buf in blk.writes)


def is_operand_stage(blk: Block) -> bool:
    """Whether ``blk`` is annotated as an operand stage (``conv_gemm_task.py``'s im2col ``col``):
    auto_inline leaves it, the GPU sketches compute it where they stage its tile."""
    return bool(blk.annotations.get(OPERAND_STAGE))


def inline_operand_stage(sch: Schedule, copy) -> None:
    """Where what block ``copy`` (a cache_read's copy) reads is written by an operand stage, the
    stage inlined into the copy: the tile is gathered from the stage's own inputs::

        col[kk, m] = x[.. kk, m ..]                    col_shared[kk, m] = x[.. k0*16 + kk, m0*128 + m ..]
        col_shared[kk, m] = col[k0*16 + kk, ..]   ->   (col is gone)
    """
    for buf in sch.get_block_obj(copy).reads:
        stage = next((b for b in sch.blocks() if buf in b.writes and is_operand_stage(b)), None)
        if stage is not None:
            sch.compute_inline(sch.get_block(stage.name))


def inline_operand_stages(sch: Schedule) -> None:
    """Every operand stage inlined into its readers (where no sketch stages it)."""
    for blk in [b for b in sch.blocks() if is_operand_stage(b)]:
        sch.compute_inline(sch.get_block(blk.name))


def source_strides(sch: Schedule, copy, loops: list) -> list:
    """Per loop of ``loops`` (loops above block ``copy``, a copy ``dst[..] = src[..]``), the stride
    of ``src``'s flat offset along it, or [] where the offset is not affine in them (a gather)."""
    from ...tir import arith
    from ...tir.expr import Load, substitute, walk
    from ...tir.stmt import BufferStore

    blk = sch.get_block_obj(copy)
    realize = sch.realize_of(blk)
    stores = [n for n in walk_stmts(blk.body) if isinstance(n, BufferStore)]
    loads = [e for e in walk(stores[0].value) if isinstance(e, Load)] if len(stores) == 1 else []
    if len(loads) != 1:
        return []
    mapping = {iv.var: value for iv, value in zip(blk.iter_vars, realize.iter_values)}
    offset = arith.simplify(substitute(loads[0].buffer.offset(loads[0].indices), mapping))
    form = arith.linear_form(offset)
    variables = [sch.get_loop(loop).var for loop in loops]
    ids = {id(var) for var in variables}
    if any(id(atom) not in ids and ids & {id(v) for v in free_vars(atom)} for atom in form.terms):
        return []
    return [form.terms.get(var, 0) for var in variables]


def contiguous_last(sch: Schedule, copy, loops: list) -> list:
    """``loops`` (the copy ``copy``'s own loops), reordered where another one than the last walks the
    source contiguously (stride 1): that one last, the order of the others kept."""
    strides = source_strides(sch, copy, loops)
    if not strides or strides[-1] == 1 or 1 not in strides:
        return loops
    inner = strides.index(1)
    order = loops[:inner] + loops[inner + 1:] + [loops[inner]]
    sch.reorder(*order)
    return order


def sample(sch: Schedule, candidates: list, probs: list, first: bool = False):
    """``sch.sample_categorical(candidates, probs)``; with ``first``, its decision is the first
    candidate (recorded like any draw, as a replay forces one), the probabilities kept for the tuner."""
    if first:
        sch._forced_decision = 0
    return sch.sample_categorical(list(candidates), list(probs))
