"""Compute definitions and GPU schedules the CUDA tests share."""
from __future__ import annotations

from tcomp import tir
from tcomp.schedule.schedule import Schedule
from tcomp.tir.expr import call, cast, size_var

from te_kernels import matmul_func


def elementwise_func(rows, cols, dtype: str = "float32"):
    """``B = exp(A) * 2 + A`` over a ``rows x cols`` array (extents may be size variables)."""
    a = tir.placeholder((rows, cols), dtype, name="A")
    b = tir.compute((rows, cols), lambda i, j: call("exp", a[i, j]) * 2.0 + a[i, j], name="B")
    return tir.create_func([a, b], name="elementwise")


def two_stage_func(rows: int, cols: int):
    """``T = exp(A)`` (an intermediate buffer), then ``B = T[:, ::-1] + 1``: two loop nests, two kernels."""
    a = tir.placeholder((rows, cols), "float32", name="A")
    t = tir.compute((rows, cols), lambda i, j: call("exp", a[i, j]), name="T")
    b = tir.compute((rows, cols), lambda i, j: t[i, cols - 1 - j] + 1.0, name="B")
    return tir.create_func([a, b], name="two_stage")


def symbolic_elementwise_func():
    return elementwise_func(size_var("rows"), 37)


def row_sum_func(rows: int, cols: int):
    """``B[i] = sum_k A[i, k]``: a reduction the default binding binds by rows."""
    a = tir.placeholder((rows, cols), "float32", name="A")
    k = tir.reduce_axis(cols, name="k")
    b = tir.compute((rows,), lambda i: tir.sum(a[i, k], axis=k), name="B")
    return tir.create_func([a, b], name="row_sum")


def total_sum_func(n: int):
    """``B[0] = sum_k A[k]``: no spatial loop to bind."""
    a = tir.placeholder((n,), "float32", name="A")
    k = tir.reduce_axis(n, name="k")
    b = tir.compute((1,), lambda i: tir.sum(a[k], axis=k), name="B")
    return tir.create_func([a, b], name="total_sum")


def tiled_gemm(m: int, n: int, k: int, tile: int = 16, bind_copies: bool = True) -> Schedule:
    """C = A @ B: one ``tile x tile`` block of C per thread block, one element per thread, A and B
    staged through shared memory ``tile`` columns (rows) at a time, C accumulated in a register."""
    sch = Schedule(matmul_func(m, n, k))
    c = sch.get_block("C")
    write_back = sch.cache_write(c, 0, "local")
    copies = [sch.cache_read(c, 1, "shared"), sch.cache_read(c, 2, "shared")]
    i, j, r = sch.get_loops(c)
    bi, ti = sch.split(i, [None, tile])
    bj, tj = sch.split(j, [None, tile])
    ko, _ = sch.split(r, [None, tile])
    sch.reorder(bi, bj, ko, ti, tj)
    sch.bind(bi, "blockIdx.y")
    sch.bind(bj, "blockIdx.x")
    sch.bind(ti, "threadIdx.y")
    sch.bind(tj, "threadIdx.x")
    for copy in copies:
        sch.compute_at(copy, ko)
        if bind_copies:
            outer, lane = sch.split(sch.fuse(*sch.get_loops(copy)[-2:]), [None, tile])
            sch.bind(outer, "threadIdx.y")
            sch.bind(lane, "threadIdx.x")
    sch.reverse_compute_at(write_back, bj)
    row, col = sch.get_loops(write_back)[-2:]
    sch.bind(row, "threadIdx.y")
    sch.bind(col, "threadIdx.x")
    return sch


def half_gemm_func(m: int, n: int, k: int, dtype: str = "float16"):
    """``C = A @ B``, A and B float16 (or bfloat16), C float32 (fp32 accumulation)."""
    a = tir.placeholder((m, k), dtype, name="A")
    b = tir.placeholder((k, n), dtype, name="B")
    r = tir.reduce_axis(k, name="k")
    c = tir.compute((m, n), lambda i, j: tir.sum(cast("float32", a[i, r]) * cast("float32", b[r, j]), axis=r),
                    name="C")
    return tir.create_func([a, b, c], name="half_gemm")


def tf32_gemm_func(m: int, n: int, k: int):
    """``C = A @ B`` in fp32 with its operands rounded to TF32 (what ``"cuda -tf32"`` makes of it)."""
    from tcomp.targets.cuda.tf32 import tf32_products

    a = tir.placeholder((m, k), "float32", name="A")
    b = tir.placeholder((k, n), "float32", name="B")
    r = tir.reduce_axis(k, name="k")
    c = tir.compute((m, n), lambda i, j: tir.sum(a[i, r] * b[r, j], axis=r), name="C")
    return tf32_products(tir.create_func([a, b, c], name="tf32_gemm"))


def wmma_gemm(m: int, n: int, k: int) -> Schedule:
    """``half_gemm_func`` with each 16x16x16 step on the tensor cores: one warp per 16x16 tile of C;
    C's tile is zeroed by the warp's 32 threads, then accumulated by WMMA in place."""
    sch = Schedule(half_gemm_func(m, n, k))
    c = sch.get_block("C")
    i, j, r = sch.get_loops(c)
    io, ii = sch.split(i, [None, 16])
    jo, ji = sch.split(j, [None, 16])
    ko, ki = sch.split(r, [None, 16])
    sch.reorder(io, jo, ko, ii, ji, ki)
    init = sch.decompose_reduction(c, ko)
    sch.tensorize(ii, "wmma_16x16x16_f16f32")
    sch.bind(io, "blockIdx.y")
    sch.bind(jo, "blockIdx.x")
    _, lane = sch.split(sch.fuse(*sch.get_loops(init)[-2:]), [None, 32])
    sch.bind(lane, "threadIdx.x")
    return sch


def mma_gemm(m: int, n: int, k: int, dtype: str = "float16", warps=(2, 2), tiles=(4, 8), depth: int = 2,
             stages: int = 2) -> Schedule:
    """The design space's tensor-core sketch of ``C = A @ B`` (A, B ``dtype``, C float32; "tf32": fp32
    operands rounded to TF32) with its decisions fixed: warps per axis, fragments per warp (16-row x
    8-column), 16-deep (tf32: 8-deep) steps per shared tile, pipeline stages."""
    from tcomp.tuning.rules import gpu_tensor_core as tc

    func = tf32_gemm_func(m, n, k) if dtype == "tf32" else half_gemm_func(m, n, k, dtype)
    (sketch,) = tc.apply(func, Schedule(func), "C")
    chosen = [tc.WARPS.index(warps[0]), tc.WARPS.index(warps[1]), tc.TILES_M.index(tiles[0]),
              tc.TILES_N.index(tiles[1]), tc.DEPTH.index(depth), tc.STAGES.index(stages)]
    positions = sorted(sketch.trace.decisions)
    return sketch.trace.apply_to(func, decisions=dict(zip(positions, chosen)))


def wgmma_gemm(m: int, n: int, k: int, dtype: str = "float16", shape=(1, 1, 128), stages: int = 2) -> Schedule:
    """The design space's Hopper sketch of ``C = A @ B`` (A, B ``dtype``, C float32) with its decisions
    fixed: (warpgroups, 64-row tiles per warpgroup, wgmma width N), pipeline stages."""
    from tcomp.tuning.rules import gpu_warpgroup as wg

    func = half_gemm_func(m, n, k, dtype)
    groups, tiles, width = shape
    (sketch,) = [s for s in wg.apply(func, Schedule(func), "C")
                 if any(i.kind == "tensorize" and f"wgmma_64x{width}x" in str(i.inputs) for i in s.trace.instructions)]
    chosen = [wg.WARPGROUPS.index(groups), wg.TILES_M[width].index(tiles), wg.STAGES.index(stages)]
    positions = sorted(sketch.trace.decisions)
    return sketch.trace.apply_to(func, decisions=dict(zip(positions, chosen)))
