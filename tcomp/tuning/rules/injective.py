"""injective: a spatial-only block (elementwise, broadcast, transpose, a leftover epilogue) runs as
one fused loop, split by the vector width, the outer part parallel, the inner vectorized::

    for i, j: C[i, j] = A[i, j] + B[j]   ->   for f0 in parallel(M * N / v):
                                                 for f1 in vectorized(v): ...

``v`` is a ``sample_perfect_tile`` decision (at most 64) where the extent is a constant, 16
otherwise (the tail under a predicate).

    sketches = apply(func, sch, "C")
"""
from __future__ import annotations

from ...schedule.schedule import Schedule
from ...tir import arith
from ...tir.expr import IntImm
from .blocks import find_block, fork, is_pending, is_spatial

VECTOR_MAX = 64


def applies(sch: Schedule, name: str) -> bool:
    blk = find_block(sch, name)
    return blk is not None and is_pending(sch, name) and is_spatial(blk) and bool(sch.loops_above(blk))


def apply(func, sch: Schedule, name: str) -> list:
    if not applies(sch, name):
        return []
    sch = fork(func, sch)
    block = sch.get_block(name)
    loops = sch.get_loops(block)
    fused = sch.fuse(*loops) if len(loops) > 1 else loops[0]
    if isinstance(arith.simplify(sch.get_loop(fused).extent), IntImm):
        outer, inner = sch.split(fused, sch.sample_perfect_tile(fused, 2, VECTOR_MAX))
    else:
        outer, inner = sch.split(fused, [None, 16])
    sch.parallel(outer)
    sch.vectorize(inner)
    return [sch]
