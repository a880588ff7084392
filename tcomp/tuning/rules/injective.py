"""injective: a spatial-only block (elementwise, broadcast, transpose, a leftover epilogue) runs as
one fused loop, split by the vector width, the outer part parallel, the inner vectorized::

    for i, j: C[i, j] = A[i, j] + B[j]   ->   for f0 in parallel(M * N / v):
                                                 for f1 in vectorized(v): ...

``v`` is a ``sample_perfect_tile`` decision (at most 64) where the extent is a constant, 16
otherwise (the tail under a predicate).

Only the innermost loops along which every access stays contiguous are fused into the vectorized
loop (``contiguous_suffix``; at least ``MIN_LANES`` elements: shorter rows fuse on); the loops
outside them are fused into the parallel loop. A convolution's padding stage reads its source with other row lengths than it writes, so fusing
its rows would make every vector a gather; its rows are vectorized one by one instead::

    for c, h, w: pad[c, h, w] = x[c, h - 1, w - 1] inside, else 0
      ->  for c_h_f in parallel(C * 58):
            for w0 in range(58 / v):
              for w1 in vectorized(v): ...        (x read by contiguous masked loads)

    sketches = apply(func, sch, "C")
"""
from __future__ import annotations

from ...schedule.schedule import Schedule
from ...tir import arith
from ...tir.expr import IntImm
from .blocks import access_strides, find_block, fork, is_pending, is_spatial

VECTOR_MAX = 64
MIN_LANES = 8     # a contiguous suffix shorter than this fuses with the loop outside it anyway


def applies(sch: Schedule, name: str) -> bool:
    blk = find_block(sch, name)
    return blk is not None and is_pending(sch, name) and is_spatial(blk) and bool(sch.loops_above(blk))


def apply(func, sch: Schedule, name: str) -> list:
    if not applies(sch, name):
        return []
    sch = fork(func, sch)
    block = sch.get_block(name)
    loops = sch.get_loops(block)
    inner = contiguous_suffix(sch, block, loops)
    outer = loops[:len(loops) - inner]
    fused = sch.fuse(*loops[-inner:]) if inner > 1 else loops[-1]
    if isinstance(arith.simplify(sch.get_loop(fused).extent), IntImm):
        rest, lanes = sch.split(fused, sch.sample_perfect_tile(fused, 2, VECTOR_MAX))
    else:
        rest, lanes = sch.split(fused, [None, 16])
    sch.parallel(sch.fuse(*outer) if outer else rest)
    sch.vectorize(lanes)
    return [sch]


def contiguous_suffix(sch: Schedule, block, loops: list) -> int:
    """How many innermost ``loops`` (at least 1) can be fused without breaking an access's
    contiguity: over them, each affine access's offset strides must be one multiple of the loops'
    own row-major strides (0 for a value they do not index). Accesses that are not affine in the
    loops (a reshape's div/mod) do not restrict; nor does anything while the suffix holds fewer
    than ``MIN_LANES`` elements."""
    extents = [arith.simplify(sch.get_loop(loop).extent) for loop in loops]
    strides = [s for s in access_strides(sch, block, loops) if s is not None]
    count = 1
    while count < len(loops) and isinstance(extents[-count - 1], IntImm):
        nest, size = [], 1
        for extent in reversed(extents[-count - 1:]):
            nest.insert(0, size)
            size *= extent.value
        inner_size = size // extents[-count - 1].value
        if inner_size >= MIN_LANES and not all(_proportional(access[-count - 1:], nest) for access in strides):
            break
        count += 1
    return count


def _proportional(strides: list, nest: list) -> bool:
    """Whether ``strides`` are ``c * nest`` for one integer c >= 0."""
    c = strides[-1]
    return c >= 0 and all(s == c * n for s, n in zip(strides, nest))
