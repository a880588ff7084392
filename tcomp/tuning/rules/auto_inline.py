"""auto_inline: elementwise producers are computed where they are used.

    B = A * 2; C = relu(B) + E        ->  C = relu(A * 2) + E      (compute_inline(B))
    P = pad(A); O = conv(P, W)        ->  O reads pad(A) in place  (the padding select inlined)

A block is inlined when it is spatial (no reduce iterator), writes an intermediate (not a
kernel output), and compute_inline accepts it (one store, read by element). Epilogues after
a reduction (relu after a matmul) are left to the tiling rule, which fuses them under the tile.
"""
from __future__ import annotations

from ...schedule.schedule import Schedule
from .blocks import attempt, consumers, is_output, is_spatial


def apply(sch: Schedule) -> None:
    """Inlines every producer it can, in program order."""
    for name in [b.name for b in sch.blocks()]:
        blk = next(b for b in sch.blocks() if b.name == name)
        if is_spatial(blk) and not is_output(sch, blk) and consumers(sch, blk):
            attempt(sch, "compute_inline", sch.get_block(name))
