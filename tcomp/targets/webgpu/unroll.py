"""Unrolled loops expanded before WGSL is rendered: WGSL has no ``#pragma unroll``, and a register
tile indexed by loop variables (``C_local[i * 8 + j]``) stays an indexed private array, which
drivers keep in memory (on an H100 through Vulkan, the default tiled GEMM ran 25x slower than its
CUDA rendering, which has the pragma). Expanded, its indices are constants and it lives in registers::

    for i in unrolled(2):                     C_local[0] = C_local[0] + A_s[ty * 16] * B_s[tx * 2]
      for j in unrolled(2):          ->       C_local[1] = C_local[1] + A_s[ty * 16] * B_s[tx * 2 + 1]
        C_local[i * 2 + j] = ..               C_local[2] = ..;  C_local[3] = ..

A loop is expanded where its extent is a constant and the copies it makes, times those of the
unrolled loops around it, stay within ``MAX_COPIES``; a loop whose body allocates stays a loop.
A copy that never runs is left out: one whose block predicates (``if`` conditions) are false for
every value the kernel's loop, thread and block variables take (a tile larger than the tensor: a
16 x 16 register tile of a 3 x 4 product keeps 12 of its 256 copies), and only the copies kept count.

    kernel = unroll_kernel(kernel)     # a DeviceKernel with its unrolled loops expanded
"""
from __future__ import annotations

import dataclasses

from ...tir import arith
from ...tir.expr import IntImm
from ...tir.stmt import Allocate, Block, BlockRealize, BufferStore, For, IfThenElse, SeqStmt
from ...tir.transform import simplify_stmt, substitute_stmt, walk_stmts

MAX_COPIES = 4096  # copies of the innermost body that the nested unrolled loops may make
MAX_TRIED = 16 * MAX_COPIES  # copies made to find those that run, where all would be too many


def unroll_kernel(kernel):
    """``kernel`` (a ``DeviceKernel``) with its unrolled loops expanded."""
    return dataclasses.replace(kernel, body=unroll(kernel.body, bounds=loop_bounds(kernel.body)))


def loop_bounds(stmt) -> dict:
    """{loop variable: (0, extent - 1)} of every loop in ``stmt`` (thread and block axes too; None where
    the extent is symbolic)."""
    bounds = {}
    for node in walk_stmts(stmt):
        if isinstance(node, For):
            extent = arith.simplify(node.extent)
            bounds[node.var] = (0, extent.value - 1 if isinstance(extent, IntImm) else None)
    return bounds


def unroll(stmt, copies: int = 1, bounds: dict | None = None):
    """``stmt`` with its unrolled loops of constant extent expanded (``copies``: those the loops around make),
    the copies that never run under the variables' ``bounds`` left out."""
    bounds = bounds or {}
    if isinstance(stmt, For):
        extent = arith.simplify(stmt.extent)
        if stmt.kind == "unrolled" and isinstance(extent, IntImm) and copies * extent.value <= MAX_TRIED \
                and not any(isinstance(node, Allocate) for node in walk_stmts(stmt.body)):
            bodies = [simplify_stmt(substitute_stmt(stmt.body, {stmt.var: IntImm(i)})) for i in range(extent.value)]
            live = [body for body in bodies if not never_runs(body, bounds)]
            if copies * len(live) <= MAX_COPIES:
                live = [unroll(body, copies * len(live), bounds) for body in live]
                return live[0] if len(live) == 1 else SeqStmt(tuple(live))
        return For(stmt.var, stmt.extent, unroll(stmt.body, copies, bounds), stmt.kind, stmt.thread_tag,
                   dict(stmt.annotations))
    if isinstance(stmt, BlockRealize):
        blk = stmt.block
        block = Block(blk.name, blk.iter_vars, unroll(blk.body, copies, bounds),
                      None if blk.init is None else unroll(blk.init, copies, bounds), blk.reads, blk.writes,
                      dict(blk.annotations))
        return BlockRealize(stmt.iter_values, block, stmt.predicate)
    if isinstance(stmt, SeqStmt):
        return SeqStmt(tuple(unroll(s, copies, bounds) for s in stmt.stmts))
    if isinstance(stmt, IfThenElse):
        return IfThenElse(stmt.cond, unroll(stmt.then_body, copies, bounds),
                          None if stmt.else_body is None else unroll(stmt.else_body, copies, bounds))
    if isinstance(stmt, Allocate):
        return Allocate(stmt.buffer, unroll(stmt.body, copies, bounds))
    return stmt  # BufferStore, Evaluate: no loops below


def never_runs(stmt, bounds: dict) -> bool:
    """Whether ``stmt`` does nothing for every value in ``bounds``: each of its statements sits under a
    block predicate or an ``if`` condition that ``arith.simplify`` finds false there (a barrier always runs)."""
    def false(cond) -> bool:
        value = arith.simplify(cond, bounds)
        return isinstance(value, IntImm) and not value.value

    if isinstance(stmt, For):
        return never_runs(stmt.body, bounds)
    if isinstance(stmt, SeqStmt):
        return all(never_runs(s, bounds) for s in stmt.stmts)
    if isinstance(stmt, BlockRealize):
        blk = stmt.block
        return (stmt.predicate is not None and false(stmt.predicate)) or (
            never_runs(blk.body, bounds) and (blk.init is None or never_runs(blk.init, bounds)))
    if isinstance(stmt, IfThenElse):
        return (false(stmt.cond) or never_runs(stmt.then_body, bounds)) and (
            stmt.else_body is None or never_runs(stmt.else_body, bounds))
    if isinstance(stmt, Allocate):
        return never_runs(stmt.body, bounds)
    if isinstance(stmt, BufferStore):
        return stmt.predicate is not None and false(stmt.predicate)
    return False  # Evaluate: a barrier, a call
