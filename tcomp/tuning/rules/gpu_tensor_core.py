"""The tensor-core sketch of the GPU design space: warps of ``mma.sync`` on register fragments.

For a block ``C[.., i, j] += f32(A[.., i, k]) * f32(B[.., k, j])`` with 16-bit A and B (fp16,
bf16)::

    for b, i0 in blockIdx.y/z, j0 in blockIdx.x:        # a (16*WM*TM) x (8*WN*TN) tile of C per block
      C_warp = 0                                        # mma_fill, per warp: (16*TM) x (8*TN) in registers
      for k0 [pipeline_stages=S]:                       # one (16*K1)-deep step, S stages of shared memory
        A_shared, B_shared = A[..], B[..]               # all threads, 16-byte (cp.async) copies, swizzled rows
        for i1 in threadIdx.z(WM), j1 in threadIdx.y(WN), k1 (unrolled K1):
          A_warp = ldmatrix(A_shared); B_warp = ldmatrix.trans(B_shared)
          for i2, j2 (unrolled TM x TN): C_warp += mma.sync.m16n8k16(A_warp, B_warp)
      C[..] = C_warp                                    # mma_store, per warp, or with C's elementwise
                                                        # consumers folded in, by each lane from its
                                                        # registers (gpu_epilogue.py)

An fp32 product whose operands are rounded to TF32 (the cuda target's ``-tf32``,
``targets/cuda/tf32.py``), ``C += round_tf32(A) * round_tf32(B)``, takes the same sketch on
``mma.sync.m16n8k8 .tf32``: 16x8 A fragments (ldmatrix), 8x8 B fragments (32-bit shared loads,
ldmatrix cannot transpose 32-bit data), (8*K1)-deep steps, 16-byte copies of 4 fp32 values.

The warps per axis (WM, WN), the warp tile (TM x TN fragments), the step depth (K1) and the
pipeline stages (S) are ``sample_categorical`` decisions. The shared tiles are swizzled
(``storage_swizzle``: 16-byte chunks XOR the row) so that ldmatrix's eight row addresses fall in
distinct banks without padding; past 48 KB (3-4 stages of 128x256 tiles) the cuda target takes
dynamic shared memory.

    sketches = apply(func, sch, "C")     # [] where the block is not such a product
"""
from __future__ import annotations

from ...schedule.schedule import Schedule, ScheduleError
from . import gpu_epilogue
from .blocks import (
    contiguous_last,
    find_block,
    fork,
    inline_operand_stage,
    loop_kinds,
    sample,
)

WARPS = (1, 2, 4)
WARPS_PROBS = (1, 3, 1)
TILES_M = (1, 2, 4)                # 16-row fragments per warp
TILES_M_PROBS = (1, 1, 3)
TILES_N = (2, 4, 8)                # 8-column fragments per warp
TILES_N_PROBS = (1, 1, 3)
DEPTH = (1, 2, 4)                  # 16-deep steps per shared tile
DEPTH_PROBS = (1, 2, 2)
STAGES = (1, 2, 3, 4)
STAGES_PROBS = (1, 2, 3, 3)
INTRINSICS = {"float16": "f16", "bfloat16": "bf16"}
# per kind: the fragment tiles (A rows x k, B k x cols), the intrinsics (A load, B load, mma)
FRAGMENTS = {kind: ((16, 16), (16, 8),
                    (f"ldmatrix_a_16x16_{kind}", f"ldmatrix_b_16x16_{kind}", f"mma_16x8x16_{kind}f32"))
             for kind in INTRINSICS.values()}
FRAGMENTS["tf32"] = ((16, 8), (8, 8), ("ldfrag_a_16x8_tf32", "ldfrag_b_8x8_tf32", "mma_16x8x8_tf32f32"))


def half_product_suffix(sch: Schedule, name: str) -> str | None:
    """The intrinsics' dtype suffix ("f16", "bf16") where block ``name`` accumulates a product of
    two operands of one 16-bit float type in fp32, else None."""
    blk = find_block(sch, name)
    if blk is None or len(blk.writes) != 1 or blk.writes[0].dtype != "float32":
        return None
    operands = [buf for buf in blk.reads if buf not in blk.writes]
    if len(operands) != 2 or {b.dtype for b in operands} - set(INTRINSICS) or operands[0].dtype != operands[1].dtype:
        return None
    return INTRINSICS[operands[0].dtype]


def product_kind(sch: Schedule, name: str) -> str | None:
    """``half_product_suffix``, or "tf32" where block ``name`` is an fp32 product of two operands
    rounded to TF32 (``C = C + round_tf32(a) * round_tf32(b)``), else None."""
    from ...targets.cuda.tf32 import is_rounded
    from ...tir.expr import BinOp
    from ...tir.stmt import BufferStore

    suffix = half_product_suffix(sch, name)
    if suffix is not None:
        return suffix
    blk = find_block(sch, name)
    store = blk.body if blk is not None else None
    if not isinstance(store, BufferStore) or store.buffer.dtype != "float32":
        return None
    value = store.value
    product = value.b if isinstance(value, BinOp) and value.op == "add" else None
    if isinstance(product, BinOp) and product.op == "mul" and is_rounded(product.a) and is_rounded(product.b):
        return "tf32"
    return None


def apply(func, sch: Schedule, name: str) -> list:
    """One tensor-core sketch where ``name`` is a 16-bit product accumulated in fp32 (or an fp32
    product of TF32-rounded operands), else []. Its
    first draw of tiles need not divide the product (a 64-row product, 128-row tiles): then it is
    drawn with the smallest tiles (one warp of 16 x 16 fragments, one stage), which divide every
    product of multiples of 16; the tuner and ``targets/gpu/tiles.py`` choose from there."""
    suffix = product_kind(sch, name)
    if suffix is None:
        return []
    for fused in (True, False):  # the epilogue on the registers; where that does not schedule, stored after
        for smallest in (False, True):
            new = fork(func, sch)
            try:
                _sketch(new, name, suffix, smallest, fused)
            except ScheduleError:
                continue
            return [new]
    return []


def _sample(sch: Schedule, values: tuple, probs: tuple, smallest: bool = False):
    return sample(sch, values, probs, smallest)


def _sketch(sch: Schedule, name: str, kind: str, smallest: bool = False, fused: bool = True) -> None:
    block = sch.get_block(name)
    kinds = loop_kinds(sch, sch.get_block_obj(block))
    loops = sch.get_loops(block)
    spatial = [loop for loop, k in zip(loops, kinds) if k == "S"]
    reduce = [loop for loop, k in zip(loops, kinds) if k == "R"]
    if len(spatial) < 2 or len(reduce) != 1 or len(spatial) + len(reduce) != len(loops):
        raise ScheduleError(f"block {name}: not a (batched) matrix product")
    wm, wn = _sample(sch, WARPS, WARPS_PROBS, smallest), _sample(sch, WARPS, WARPS_PROBS, smallest)
    tm, tn = _sample(sch, TILES_M, TILES_M_PROBS, smallest), _sample(sch, TILES_N, TILES_N_PROBS, smallest)
    depth, stages = _sample(sch, DEPTH, DEPTH_PROBS, smallest), _sample(sch, STAGES, STAGES_PROBS, smallest)
    (a_rows, step), (_, b_cols), (load_a, load_b, mma) = FRAGMENTS[kind]
    batch, (i, j), (k,) = spatial[:-2], spatial[-2:], reduce
    i0, i1, i2, i3 = sch.split(i, [None, wm, tm, a_rows])
    j0, j1, j2, j3 = sch.split(j, [None, wn, tn, b_cols])
    k0, k1, k2 = sch.split(k, [None, depth, step])
    sch.reorder(*batch, i0, j0, k0, i1, j1, k1, i2, j2, i3, j3, k2)
    if batch:
        sch.bind(sch.fuse(*batch) if len(batch) > 1 else batch[0], "blockIdx.z")
    sch.bind(i0, "blockIdx.y")
    sch.bind(j0, "blockIdx.x")
    sch.bind(i1, "threadIdx.z")
    sch.bind(j1, "threadIdx.y")
    for loop in (k1, i2, j2):
        sch.unroll(loop)
    accumulator = sch.cache_write(block, 0, "warp")
    fused = fused and gpu_epilogue.fold(sch, accumulator)
    sch.reverse_compute_at(accumulator, j0)
    names = [b.name for b in sch.get_block_obj(block).reads]
    a_name, b_name = [b.name for b in sch.get_block_obj(block).reads if b.name != sch.get_block_obj(block).writes[0].name]
    shared = [sch.cache_read(block, names.index(a_name), "shared"), sch.cache_read(block, names.index(b_name), "shared")]
    names = [b.name for b in sch.get_block_obj(block).reads]
    fragments = [sch.cache_read(block, names.index(f"{a_name}_shared"), "warp"),
                 sch.cache_read(block, names.index(f"{b_name}_shared"), "warp")]
    fragment_tiles = ((a_rows, step), (step, b_cols)) if kind == "tf32" else ((16, 16), (16, 16))  # ldmatrix.trans: 2 B
    for copy, intrinsic, (tile_r, tile_c) in zip(fragments, (load_a, load_b), fragment_tiles):
        sch.compute_at(copy, k1)
        rows, cols = sch.get_loops(copy)[-2:]
        r0, r1 = sch.split(rows, [None, tile_r])
        c0, c1 = sch.split(cols, [None, tile_c])
        sch.reorder(r0, c0, r1, c1)
        sch.unroll(r0)
        sch.unroll(c0)
        sch.tensorize(r1, intrinsic)
    for copy in shared:
        sch.compute_at(copy, k0)
        inline_operand_stage(sch, copy)
        sch.storage_swizzle(copy, 0)
        own = contiguous_last(sch, copy, sch.get_loops(copy)[-2:])  # a transposed operand by rows
        outer, tz, ty, tx, lanes = sch.split(sch.fuse(*own), [None, wm, wn, 32, 16 // _bytes(kind)])
        sch.bind(tz, "threadIdx.z")
        sch.bind(ty, "threadIdx.y")
        sch.bind(tx, "threadIdx.x")
        sch.unroll(outer)  # a thread's loads issued back to back
        sch.vectorize(lanes)  # a copy: 16-byte (cp.async) accesses; a gather: one 16-byte store of its lanes
    sch.annotate(k0, "pipeline_stages", stages)
    init = sch.decompose_reduction(block, k0)
    sch.tensorize(i3, mma)
    *_, ii2, ij2, ii3, ij3 = sch.get_loops(init)
    sch.reorder(ii2, ij2, ii3, ij3)
    sch.tensorize(ii3, "mma_fill_16x8_f32")
    rows, cols = sch.get_loops(accumulator)[-2:]
    w0, w1, a2, a3 = sch.split(rows, [wm, None, tm, 16])
    x0, x1, a4, a5 = sch.split(cols, [wn, None, tn, 8])
    sch.reorder(w0, x0, w1, x1, a2, a4, a3, a5)
    sch.bind(w0, "threadIdx.z")
    sch.bind(x0, "threadIdx.y")
    for loop in (w1, x1, a2, a4):
        sch.unroll(loop)
    if not fused:
        sch.tensorize(a3, "mma_store_16x8_f32")
        return
    lane, inner = gpu_epilogue.lanes(sch, a3, a5)
    sch.reorder(lane, w1, x1, a2, a4, *inner)


def _bytes(kind: str) -> int:
    return 4 if kind == "tf32" else 2
