"""gpu_binding: a GPU kernel's block that no other rule schedules, bound to thread blocks and
threads (MetaSchedule's AutoBind): a conv's pad stage, elementwise epilogues left alone, a
reduction with short rows (a pooling window). Its outer spatial loops are fused, split by ``T``
threads and bound; reduce loops stay serial in each thread::

    for c in range(64):                      for c_h_fused_0 in blockIdx.x(ceil(64 * 58 / T)):
      for h in range(58):          ->          for c_h_fused_1 in threadIdx.x(T):
        block pad[vc = S: c, vh = S: h]            block pad[vc = S: (..) // 58, vh = S: (..) % 58]

``T``: a ``sample_categorical`` decision over ``THREADS`` no larger than the fused extent needs.
Without this rule such a block keeps CPU loop kinds or none, and its candidate fails to build
("forgot to bind" is a GPU lowering error).

    sketches = apply(func, sch, "pad")        # design space (cuda, webgpu)
"""
from __future__ import annotations

from ...schedule.schedule import Schedule
from ...targets.gpu.binding import _spatial_prefix, bind_nest
from ...tir import arith
from ...tir.expr import IntImm
from .blocks import find_block, fork, is_pending

THREADS = (64, 128, 256)  # 256: the most threads a WebGPU workgroup may have by default


def applies(sch: Schedule, name: str) -> bool:
    """A pending block (alone under serial loops) with an outer spatial loop."""
    blk = find_block(sch, name)
    return blk is not None and is_pending(sch, name) and bool(_spatial_prefix(sch.loops_above(blk)))


def apply(func, sch: Schedule, name: str) -> list:
    if not applies(sch, name):
        return []
    sch = fork(func, sch)
    blk = find_block(sch, name)
    extent = 1
    for loop in _spatial_prefix(sch.loops_above(blk)):
        loop_extent = arith.simplify(loop.extent)
        extent = extent * loop_extent.value if isinstance(loop_extent, IntImm) else None
        if extent is None:
            break
    candidates = [t for t in THREADS if extent is None or t <= max(extent, THREADS[0])]
    bind_nest(sch, sch.realize_of(blk), sch.sample_categorical(candidates, [1] * len(candidates)))
    return [sch]
