"""The tensor-core sketches' fused epilogue: elementwise consumers run on the accumulator's registers.

The accumulator's write-back (``cache_write`` to ``warp`` / ``warpgroup``) takes its output's
elementwise consumers (a cast to fp16, a bias, an activation, a residual add: ``fold``); its
tile is then stored by the threads that hold each element (``lanes``), which read the registers
as scalars (``targets/cuda/fragments.py``)::

    before: C[..] = C_warp           mma_store (fp32, global)      | kernel 2: out = f16(relu(C + b))
    after:  for lane in threadIdx.x(32), h (unrolled), e (vectorized): # rows (8-row half h, row lane / 4),
              out[..] = f16(relu(C_warp[i, j] + b[j]))                # cols (pair lane % 4, element e):
                                                                      # one packed store per pair

No fp32 copy of the product goes through global memory, and the output is stored once in its dtype.
"""
from __future__ import annotations

from ...schedule.schedule import Schedule


def fold(sch: Schedule, writeback) -> bool:
    """Folds the elementwise consumers of the write-back's output into it (as the SIMT sketch
    does); whether any was folded (the write-back then no longer stores the bare product)."""
    from .multi_level_tiling import _fold_epilogues

    before = sch.get_block_obj(writeback).writes[0].name
    _fold_epilogues(sch, writeback)
    return sch.get_block_obj(writeback).writes[0].name != before


def lanes(sch: Schedule, rows, cols, row_warps: int = 1) -> tuple:
    """Splits a write-back tile loop pair -- ``rows`` (16 * ``row_warps`` rows: one warp's 16 each) and
    ``cols`` (a multiple of 8) -- into the lane that holds each element (``threadIdx.x``: warp, row in
    its 8-row half, column pair) and that lane's (column chunk, 8-row half) loops, unrolled, and its
    pair of elements, vectorized (the renderer packs them into one store), innermost. Returns (lane,
    its loops)."""
    warp, half, row = sch.split(rows, [row_warps, 2, 8])
    chunk, pair, element = sch.split(cols, [None, 4, 2])
    sch.reorder(warp, row, pair, chunk, half, element)
    lane = sch.fuse(warp, row, pair)
    sch.bind(lane, "threadIdx.x")
    sch.unroll(chunk)
    sch.unroll(half)
    sch.vectorize(element)  # the pair of columns: one 4- or 8-byte store
    return lane, (chunk, half, element)
