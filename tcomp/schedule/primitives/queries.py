"""Handles to what is in the program: ``get_block``, ``get_loops``, ``get_child_blocks``.

    c = sch.get_block("C")         # the block named C
    i, j, k = sch.get_loops(c)     # the loops around it, outermost first
"""
from __future__ import annotations

from ...tir.stmt import BlockRealize
from ...tir.transform import stmt_children
from ..schedule import ScheduleError, primitive


@primitive
def get_block(sch, name: str):
    """The block called ``name`` (block names are unique in a function)."""
    found = [b for b in sch.blocks() if b.name == name]
    if not found:
        names = ", ".join(sorted(b.name for b in sch.blocks()))
        raise ScheduleError(f"no block named {name!r}; the blocks are {names}")
    if len(found) > 1:
        raise ScheduleError(f"{len(found)} blocks are named {name!r}")
    return sch.new_rv(found[0])


@primitive
def get_loops(sch, block):
    """The loops enclosing ``block``, outermost first."""
    return [sch.new_rv(loop) for loop in sch.loops_above(sch.get_block_obj(block))]


@primitive
def get_child_blocks(sch, parent):
    """The blocks directly under a loop (not inside another block's body), in program order."""
    found = []
    pending = [sch.get_loop(parent).body]
    while pending:
        stmt = pending.pop(0)
        if isinstance(stmt, BlockRealize):
            found.append(sch.new_rv(stmt.block))
        else:
            pending[:0] = stmt_children(stmt)
    return found
