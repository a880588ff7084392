"""Unrolled loops expanded before WGSL is rendered: WGSL has no ``#pragma unroll``, and a register
tile indexed by loop variables (``C_local[i * 8 + j]``) stays an indexed private array, which
drivers keep in memory (on an H100 through Vulkan, the default tiled GEMM ran 25x slower than its
CUDA rendering, which has the pragma). Expanded, its indices are constants and it lives in registers::

    for i in unrolled(2):                     C_local[0] = C_local[0] + A_s[ty * 16] * B_s[tx * 2]
      for j in unrolled(2):          ->       C_local[1] = C_local[1] + A_s[ty * 16] * B_s[tx * 2 + 1]
        C_local[i * 2 + j] = ..               C_local[2] = ..;  C_local[3] = ..

A loop is expanded where its extent is a constant and the copies it makes, times those of the
unrolled loops around it, stay within ``MAX_COPIES``; a loop whose body allocates stays a loop.

    kernel = unroll_kernel(kernel)     # a DeviceKernel with its unrolled loops expanded
"""
from __future__ import annotations

import dataclasses

from ...tir import arith
from ...tir.expr import IntImm
from ...tir.stmt import Allocate, Block, BlockRealize, For, IfThenElse, SeqStmt
from ...tir.transform import simplify_stmt, substitute_stmt, walk_stmts

MAX_COPIES = 4096  # copies of the innermost body that the nested unrolled loops may make


def unroll_kernel(kernel):
    """``kernel`` (a ``DeviceKernel``) with its unrolled loops expanded."""
    return dataclasses.replace(kernel, body=unroll(kernel.body))


def unroll(stmt, copies: int = 1):
    """``stmt`` with its unrolled loops of constant extent expanded (``copies``: those the loops around make)."""
    if isinstance(stmt, For):
        extent = arith.simplify(stmt.extent)
        if stmt.kind == "unrolled" and isinstance(extent, IntImm) and copies * extent.value <= MAX_COPIES \
                and not any(isinstance(node, Allocate) for node in walk_stmts(stmt.body)):
            bodies = tuple(unroll(simplify_stmt(substitute_stmt(stmt.body, {stmt.var: IntImm(i)})),
                                  copies * extent.value) for i in range(extent.value))
            return bodies[0] if len(bodies) == 1 else SeqStmt(bodies)
        return For(stmt.var, stmt.extent, unroll(stmt.body, copies), stmt.kind, stmt.thread_tag,
                   dict(stmt.annotations))
    if isinstance(stmt, BlockRealize):
        blk = stmt.block
        block = Block(blk.name, blk.iter_vars, unroll(blk.body, copies),
                      None if blk.init is None else unroll(blk.init, copies), blk.reads, blk.writes,
                      dict(blk.annotations))
        return BlockRealize(stmt.iter_values, block, stmt.predicate)
    if isinstance(stmt, SeqStmt):
        return SeqStmt(tuple(unroll(s, copies) for s in stmt.stmts))
    if isinstance(stmt, IfThenElse):
        return IfThenElse(stmt.cond, unroll(stmt.then_body, copies),
                          None if stmt.else_body is None else unroll(stmt.else_body, copies))
    if isinstance(stmt, Allocate):
        return Allocate(stmt.buffer, unroll(stmt.body, copies))
    return stmt  # BufferStore, Evaluate: no loops below
