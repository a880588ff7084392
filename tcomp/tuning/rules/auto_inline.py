"""auto_inline: elementwise producers are computed where they are used.

    B = A * 2; C = relu(B) + E        ->  C = relu(A * 2) + E      (compute_inline(B))
    P = pad(A); O = conv(P, W)        ->  P stays: a padding select inlined into a conv would
                                           cost a compare per multiply-add

A block is inlined when it is spatial (no reduce iterator), writes an intermediate (not a
kernel output), and compute_inline accepts it (one store, read by element), unless it is
conditional (a select or a predicated load) and read by a block with data reuse: then it is
materialized once by its own nest. Epilogues after a reduction (relu after a matmul) are left
to the tiling rule, which fuses them under the tile, and operand stages (an implicit GEMM's im2col
gather, ``blocks.is_operand_stage``) to the GPU sketches, which gather them into shared tiles.
"""
from __future__ import annotations

from ...schedule.schedule import Schedule
from ...tir.expr import Load, Select, walk
from ...tir.stmt import BufferStore
from ...tir.transform import walk_stmts
from .blocks import attempt, consumers, has_reuse, is_operand_stage, is_output, is_spatial


def apply(sch: Schedule) -> None:
    """Inlines every producer it can, in program order."""
    for name in [b.name for b in sch.blocks()]:
        blk = next(b for b in sch.blocks() if b.name == name)
        readers = consumers(sch, blk)
        if not is_spatial(blk) or is_output(sch, blk) or not readers or is_operand_stage(blk):
            continue
        if _is_conditional(blk) and any(has_reuse(reader) for reader in readers):
            continue
        attempt(sch, "compute_inline", sch.get_block(name))


def _is_conditional(blk) -> bool:
    values = [stmt.value for stmt in walk_stmts(blk.body) if isinstance(stmt, BufferStore)]
    return any(isinstance(e, Select) or (isinstance(e, Load) and e.predicate is not None)
               for value in values for e in walk(value))
