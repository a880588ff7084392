"""What the design-space rules ask about blocks and loops.

    kinds = loop_kinds(sch, block)                # ["S", "S", "R"] for a matmul
    is_pending(sch, "C")                          # at the root, alone in its serial nest: unscheduled
    has_reuse(block)                              # some input is read by several output elements
"""
from __future__ import annotations

from ...schedule.regions import read_indices
from ...schedule.schedule import Schedule, ScheduleError
from ...tir.expr import Var, free_vars
from ...tir.stmt import Block, BlockRealize, PrimFunc
from ...tir.transform import walk_stmts


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


def consumers(sch: Schedule, blk: Block) -> list:
    """The blocks reading what ``blk`` writes, in program order."""
    return [b for b in sch.blocks() if b is not blk and any(buf in b.reads for buf in blk.writes)]


def is_output(sch: Schedule, blk: Block) -> bool:
    """Whether ``blk`` writes a parameter of the function (an output of the kernel)."""
    return any(any(buf is p for p in sch.func.params) for buf in blk.writes)
