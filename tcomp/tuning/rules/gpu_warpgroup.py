"""The Hopper sketch of the GPU design space: warpgroups of ``wgmma`` on swizzled shared tiles (sm_90).

For a block ``C[.., i, j] += f32(A[.., i, k]) * f32(B[.., k, j])`` with 16-bit A and B (fp16,
bf16)::

    for b, i0 in blockIdx.y/z, j0 in blockIdx.x:        # a (64*WG*TM) x N tile of C per block
      C_wg = 0                                          # wgmma_fill, per warpgroup: (64*TM) x N in registers
      for k0 [pipeline_stages=S, bulk copies]:          # one 64-deep step, S stages of shared memory
        A_shared, B_shared = A[..], B[..]               # swizzled; TMA box copies from one thread where
                                                        # they are boxes, else all threads' cp.async
        for i1 in threadIdx.y(WG), i2 (unrolled TM):    # (128 threads in threadIdx.x per warpgroup)
          C_wg += A_shared x B_shared                   # wgmma_64xNx64: 4 x wgmma.mma_async m64nNk16
      C[..] = C_wg                                      # wgmma_store, per warpgroup, or with C's elementwise
                                                        # consumers folded in, by each thread from its
                                                        # registers (gpu_epilogue.py)

The warpgroups (WG), the 64-row tiles per warpgroup (TM) and the pipeline stages (S) are
``sample_categorical`` decisions, the width N (128, 256) one sketch each; the shared tiles are 1024-byte aligned and swizzled
(``storage_swizzle``), which is wgmma's 128-byte swizzle. Only for sm_90 targets (the cuda
target then compiles for sm_90a).

    sketches = apply(func, sch, "C")     # [] where the block is not such a product
"""
from __future__ import annotations

from ...schedule.schedule import Schedule, ScheduleError
from ...targets.gpu.bulk_copy import BULK_COPY
from . import gpu_epilogue
from .blocks import contiguous_last, fork, inline_operand_stage, loop_kinds, sample
from .gpu_tensor_core import half_product_suffix

WIDTHS = (128, 256)                 # N: one sketch each (it names the intrinsic)
WARPGROUPS = (1, 2)
WARPGROUPS_PROBS = (1, 2)
TILES_M = {128: (1, 2), 256: (1,)}  # 64-row tiles per warpgroup: at most 128 accumulator registers a thread
STAGES = (2, 3, 4, 5)              # from 3 on, one wgmma group stays in flight while the next step's copies go
STAGES_PROBS = (1, 2, 3, 1)
DEPTH = 64  # one wgmma call: K = 64 (A's 128-byte swizzle line)
ROWS = 64   # rows per wgmma tile
LANES = 128


def apply(func, sch: Schedule, name: str) -> list:
    """One warpgroup sketch per width where ``name`` is a 16-bit product accumulated in fp32, else []."""
    suffix = half_product_suffix(sch, name)
    if suffix is None:
        return []
    sketches = []
    for width in WIDTHS:
        for fused, smallest in ((True, False), (True, True), (False, False), (False, True)):
            new = fork(func, sch)  # smallest: a first draw that does not divide the product takes the smallest
            try:                   # tiles; not fused: the epilogue does not schedule on the registers
                _sketch(new, name, suffix, width, smallest, fused)
            except ScheduleError:
                continue
            sketches.append(new)
            break
    return sketches


def _sketch(sch: Schedule, name: str, kind: str, width: int, smallest: bool = False, fused: bool = True) -> None:
    block = sch.get_block(name)
    kinds = loop_kinds(sch, sch.get_block_obj(block))
    loops = sch.get_loops(block)
    spatial = [loop for loop, k in zip(loops, kinds) if k == "S"]
    reduce = [loop for loop, k in zip(loops, kinds) if k == "R"]
    if len(spatial) < 2 or len(reduce) != 1 or len(spatial) + len(reduce) != len(loops):
        raise ScheduleError(f"block {name}: not a (batched) matrix product")
    wg = sample(sch, WARPGROUPS, WARPGROUPS_PROBS, smallest)
    tm = sample(sch, TILES_M[width], [1] * len(TILES_M[width]), smallest)
    stages = sample(sch, STAGES, STAGES_PROBS, smallest)
    batch, (i, j), (k,) = spatial[:-2], spatial[-2:], reduce
    i0, i1, i2, i3 = sch.split(i, [None, wg, tm, ROWS])
    j0, j1 = sch.split(j, [None, width])
    k0, k1 = sch.split(k, [None, DEPTH])
    sch.reorder(*batch, i0, j0, k0, i1, i2, i3, j1, k1)
    if batch:
        sch.bind(sch.fuse(*batch) if len(batch) > 1 else batch[0], "blockIdx.z")
    sch.bind(i0, "blockIdx.y")
    sch.bind(j0, "blockIdx.x")
    sch.bind(i1, "threadIdx.y")
    sch.unroll(i2)
    accumulator = sch.cache_write(block, 0, "warpgroup")
    fused = fused and gpu_epilogue.fold(sch, accumulator)
    sch.reverse_compute_at(accumulator, j0)
    obj = sch.get_block_obj(block)
    names = [b.name for b in obj.reads]
    operands = [b.name for b in obj.reads if b.name != obj.writes[0].name]
    shared = [sch.cache_read(block, names.index(operand), "shared") for operand in operands]
    for copy in shared:
        sch.compute_at(copy, k0)
        inline_operand_stage(sch, copy)
        sch.storage_swizzle(copy, 0)
        own = contiguous_last(sch, copy, sch.get_loops(copy)[-2:])  # a transposed operand by rows
        outer, ty, tx, lanes = sch.split(sch.fuse(*own), [None, wg, LANES, 8])
        sch.bind(ty, "threadIdx.y")
        sch.bind(tx, "threadIdx.x")
        sch.unroll(outer)  # a thread's loads issued back to back
        sch.vectorize(lanes)  # a copy: 16-byte (cp.async) accesses; a gather: one 16-byte store of its lanes
    sch.annotate(k0, "pipeline_stages", stages)
    sch.annotate(k0, BULK_COPY, 1)  # the copy engine fills the stages (one thread issues; gpu/bulk_copy.py)
    init = sch.decompose_reduction(block, k0)
    sch.tensorize(i3, f"wgmma_64x{width}x{DEPTH}_{kind}f32")
    sch.tensorize(sch.get_loops(init)[-2], f"wgmma_fill_64x{width}_f32")
    rows, cols = sch.get_loops(accumulator)[-2:]
    w0, w1, rows_in = sch.split(rows, [wg, tm, ROWS])
    sch.bind(w0, "threadIdx.y")
    sch.unroll(w1)
    if not fused:
        sch.tensorize(rows_in, f"wgmma_store_64x{width}_f32")
        return
    lane, inner = gpu_epilogue.lanes(sch, rows_in, cols, ROWS // 16)
    sch.reorder(lane, w1, *inner)
