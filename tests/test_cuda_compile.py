"""The cuda target without a GPU: NVRTC compiles the generated source to PTX and cubins for sm_80 and
sm_90, unbound kernels are refused with an error naming the block, tensor-core kernels hold the
matrix instructions. (Running on a GPU: test_cuda_run.py.)"""
from __future__ import annotations

import pytest

pytest.importorskip("cuda.bindings.nvrtc", reason="cuda-python is not installed (pip install 'tcomp[cuda]')")

import cuda_kernels as kernels  # noqa: E402

import tcomp  # noqa: E402
from tcomp.errors import TcompError  # noqa: E402
from tcomp.targets.cuda.nvrtc import CudaCompileError, compile_cuda  # noqa: E402
from tcomp.targets.gpu.binding import GPULoweringError  # noqa: E402

ARCHS = ("sm_80", "sm_90")


def _build(func, arch="sm_90"):
    return tcomp.build(func, target=f"cuda -arch={arch}")


@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize("case", ["elementwise", "symbolic", "half", "row_sum", "tiled_gemm", "wmma_gemm",
                                  "two_stage"])
def test_compiles_to_ptx_and_cubin(case, arch):
    func = {"elementwise": lambda: kernels.elementwise_func(100, 37),
            "symbolic": kernels.symbolic_elementwise_func,
            "half": lambda: kernels.elementwise_func(8, 8, "float16"),
            "row_sum": lambda: kernels.row_sum_func(100, 33),
            "tiled_gemm": lambda: kernels.tiled_gemm(64, 64, 64),
            "wmma_gemm": lambda: kernels.wmma_gemm(32, 48, 64),
            "two_stage": lambda: kernels.two_stage_func(64, 64)}[case]()
    kernel = _build(func, arch)
    assert f".target {arch}" in kernel.ptx()
    assert ".entry " in kernel.ptx() and '__global__' in kernel.source()
    assert kernel.image.cubin[:4] == b"\x7fELF"


def test_tiled_gemm_uses_shared_memory_barriers_and_one_register_per_thread():
    source = _build(kernels.tiled_gemm(64, 64, 64)).source()
    assert "__shared__ __align__(16) float A_shared[256];" in source and "__shared__ __align__(16) float B_shared[256];" in source
    assert source.count("__syncthreads();") == 2  # copies -> products, products -> next copies
    assert "float C_local[1];" in source  # the accumulator is compacted per thread
    assert "bar.sync" in _build(kernels.tiled_gemm(64, 64, 64)).ptx()


def test_unscheduled_kernel_gets_blocks_and_threads():
    kernel = _build(kernels.elementwise_func(1000, 37))
    assert "blockIdx.x" in kernel.source() and "threadIdx.x" in kernel.source()
    assert "%ctaid.x" in kernel.ptx() and "%tid.x" in kernel.ptx()


def test_unbound_copy_is_refused():
    with pytest.raises(GPULoweringError, match=r"block B_shared is not bound to threadIdx.y, threadIdx.x .*"
                                               r"loops k_0, ax0, ax1 run serially"):
        _build(kernels.tiled_gemm(64, 64, 64, bind_copies=False))


def test_unbound_nest_in_scheduled_function_is_refused():
    from tcomp.schedule.schedule import Schedule

    sch = Schedule(kernels.two_stage_func(64, 64))
    outer, inner = sch.get_loops(sch.get_block("T"))
    sch.bind(outer, "blockIdx.x")
    sch.bind(inner, "threadIdx.x")
    with pytest.raises(GPULoweringError, match="the loop nest of block B binds no loop to blockIdx/threadIdx"):
        _build(sch)


def test_full_reduction_without_spatial_loop_is_refused():
    with pytest.raises(GPULoweringError, match="block B has no spatial loop to bind"):
        _build(kernels.total_sum_func(100))


def test_wmma_kernel_holds_tensor_core_instructions():
    ptx = _build(kernels.wmma_gemm(32, 48, 64), "sm_80").ptx()
    assert "wmma.mma.sync.aligned.row.row.m16n16k16.f32.f32" in ptx
    assert "wmma.load.a.sync" in ptx and "wmma.store.d.sync" in ptx


def test_compile_error_names_kernel_and_carries_log():
    with pytest.raises(CudaCompileError, match=r"kernel broken: NVRTC could not compile(.|\n)*undefined_name"):
        compile_cuda('extern "C" __global__ void broken() { undefined_name = 1; }', "broken", "sm_90")


def test_bad_targets_are_refused():
    with pytest.raises(TcompError, match="unknown architecture 'compute_x'"):
        _build(kernels.elementwise_func(4, 4), "compute_x")
    with pytest.raises(TcompError, match="unknown option '-mcpu=x'"):
        tcomp.build(kernels.elementwise_func(4, 4), target="cuda -mcpu=x")


@pytest.mark.parametrize("arch", ARCHS)
def test_mma_sketch_holds_mma_ldmatrix_and_async_copies(arch):
    kernel = _build(kernels.mma_gemm(256, 256, 128), arch)
    ptx, source = kernel.ptx(), kernel.source()
    assert "mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32" in ptx
    assert "ldmatrix.sync.aligned.m8n8.x4.shared.b16" in ptx and "ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16" in ptx
    assert "cp.async.cg.shared.global" in ptx and "cp.async.wait_group 0" in ptx  # 2 stages: wait, then copy ahead
    assert "^" in source and "extern __shared__" not in source  # swizzled tiles, 2 stages fit in static memory
    assert "float C_warp[128];" in source  # a 64x64 fp32 accumulator per warp: 128 registers per lane
    assert ".local" not in ptx  # fragments stay in registers


def test_mma_sketch_past_48kb_takes_dynamic_shared_memory():
    kernel = _build(kernels.mma_gemm(256, 512, 128, warps=(2, 4), tiles=(4, 8), depth=2, stages=4))
    # 4 stages of a 128x32 A tile and a 32x256 B tile (fp16, swizzled: no padding)
    assert kernel.image.dynamic_shared == {kernel.program.kernels[0].name: 4 * (128 * 32 + 32 * 256) * 2}
    assert "extern __shared__" in kernel.source() and "cp.async.wait_group 2" in kernel.ptx()
    assert kernel.ptx().count("bar.sync") == 2  # one before the loop, one per pipelined iteration


def test_swizzle_spreads_ldmatrix_rows_over_banks():
    """Eight rows at one 16-byte column (one ldmatrix phase) land in eight distinct 16-byte bank
    groups, and the swizzle permutes the tile's elements (numpy replay of Buffer.swizzle)."""
    import numpy as np

    from tcomp.tir.expr import Buffer

    for rows, cols in ((128, 16), (128, 32), (32, 64), (32, 256)):
        buf = Buffer("T", (rows, cols), "float16", "shared")
        buf.swizzled = True
        placed = [buf.swizzled_place(o) for o in range(rows * cols)]
        assert sorted(placed) == list(range(rows * cols))
        for row0 in range(0, rows, 8):
            for chunk in range(cols // 8):
                physical = np.array([placed[(row0 + r) * cols + chunk * 8] for r in range(8)])
                assert len(set((physical // 8) % 8)) == 8, (rows, cols, row0, chunk)
                assert all(placed[(row0 + r) * cols + chunk * 8 + e] == physical[r] + e for r in range(8) for e in range(8))


def test_bf16_mma_sketch_without_pipeline():
    ptx = _build(kernels.mma_gemm(256, 256, 128, "bfloat16", warps=(1, 2), tiles=(2, 4), depth=1, stages=1)).ptx()
    assert "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32" in ptx and "cp.async" not in ptx


def test_warp_fragment_outside_a_warp_is_refused():
    from tcomp.schedule.schedule import Schedule

    sch = Schedule(kernels.half_gemm_func(32, 32, 32))
    sch.cache_write(sch.get_block("C"), 0, "warp")
    with pytest.raises(GPULoweringError, match="warp buffer C_warp spans the whole function"):
        _build(sch)


@pytest.mark.parametrize("dtype,shape,stages", [("float16", (1, 1, 128), 2), ("float16", (2, 1, 256), 4),
                                                ("bfloat16", (2, 2, 128), 3)])
def test_wgmma_sketch_compiles_for_sm_90a(dtype, shape, stages):
    """sm_90 builds for sm_90a: wgmma through descriptors, fenced for the tensor cores' proxy."""
    kernel = _build(kernels.wgmma_gemm(256, 512, 256, dtype, shape=shape, stages=stages), "sm_90")
    ptx, kind = kernel.ptx(), {"float16": "f16", "bfloat16": "bf16"}[dtype]
    assert kernel.image.arch == "sm_90a" and ".target sm_90a" in ptx
    assert f"wgmma.mma_async.sync.aligned.m64n{shape[2]}k16.f32.{kind}.{kind}" in ptx
    assert "wgmma.fence.sync.aligned" in ptx and "wgmma.commit_group.sync.aligned" in ptx
    assert "wgmma.wait_group.sync.aligned 0" in ptx and ".local" not in ptx  # accumulators stay in registers
    # the copy engine fills the stages: one box of A (<= 256 rows) and one per 64-column panel of B a stage
    bulk = "cp.async.bulk.tensor.2d.shared::cluster.global.mbarrier::complete_tx::bytes"
    assert bulk in ptx and "mbarrier.try_wait.parity.shared::cta.b64" in ptx and "cp.async.cg" not in ptx
    source = kernel.source()
    boxes = 1 + shape[2] // 64
    ahead = stages - 1 if stages < 3 else stages - 2  # the prologue's stages, then the loop's copies
    assert source.count("cp.async.bulk.tensor") == boxes * (ahead + 1)
    assert "const __grid_constant__ tc_tile_map A_tiles" in source and "tc_tile_map B_tiles" in source
    tile_bytes = 2 * 64 * (64 * shape[0] * shape[1] + shape[2])
    assert f'"r"({tile_bytes}) : "memory");' in source  # the bytes each stage's barrier waits for
    assert f"float C_warpgroup[{shape[1] * shape[2] // 2}];" in source
    # from 3 stages on, each step's group runs while the next step's copies go, into the stage read two steps back
    loop = source[source.index("for (int k_0 = 0;"):source.index("wgmma.wait_group.sync.aligned 0")]
    assert ("wgmma.wait_group.sync.aligned 1" in loop) == (stages >= 3 and shape[1] == 1)
    assert ("wgmma.wait_group.sync.aligned 2" in loop) == (stages >= 3 and shape[1] == 2)  # 2 calls a step
    assert f"((k_0 + {stages - 2 if stages >= 3 else 1}) < 4)" in loop
    assert 'asm volatile("" : "+f"(C_warpgroup[tc_r]) :: "memory");' in source  # after the last wait


def test_box_copy_recognizes_shifted_copies_only():
    """``bulk_copy.box_copy`` on the lowered sketch's copies: each a box at (rows of the block, k step)."""
    import copy

    from tcomp.targets.gpu import pipeline
    from tcomp.targets.gpu.bulk_copy import box_copy, boxes
    from tcomp.targets.gpu.lower import lower_for_gpu
    from tcomp.tir.expr import IntImm
    from tcomp.tir.stmt import BufferStore, IfThenElse
    from tcomp.tir.transform import walk_stmts

    seen, producers_seen = [], []
    original = pipeline._bulk_pipeline

    def spy(loop, extent, stages, ahead, producers, *rest):
        seen.extend(box_copy(p) for p in producers)
        producers_seen.extend(copy.deepcopy(p) for p in producers)
        return original(loop, extent, stages, ahead, producers, *rest)

    pipeline._bulk_pipeline = spy
    try:
        lower_for_gpu(kernels.wgmma_gemm(512, 512, 256, shape=(2, 2, 128), stages=3).func, "cuda")
    finally:
        pipeline._bulk_pipeline = original
    nests = list(seen)
    seen.clear()
    by_source = {copy.source.name: copy for copy in nests}
    assert set(by_source) == {"A", "B"}
    assert [str(o) for o in by_source["A"].origin] == ["(blockIdx_y * 256)", "(k_0 * 64)"]
    assert [str(o) for o in by_source["B"].origin] == ["(k_0 * 64)", "(blockIdx_x * 128)"]
    assert [(at, box) for at, _, box in boxes(by_source["A"])] == [((0, 0), (256, 64))]
    assert [(at, box) for at, _, box in boxes(by_source["B"])] == [((0, 0), (64, 64)), ((0, 64), (64, 64))]
    # anything but the shifted copy stays the threads' own: a computed value, a transposed index, a guard
    store = next(n for n in walk_stmts(producers_seen[0]) if isinstance(n, BufferStore))
    store.value = store.value + store.value
    assert box_copy(producers_seen[0]) is None
    store = next(n for n in walk_stmts(producers_seen[1]) if isinstance(n, BufferStore))
    store.indices = tuple(reversed(store.indices))
    assert box_copy(producers_seen[1]) is None
    assert box_copy(IfThenElse(IntImm(1) > 0, copy.deepcopy(producers_seen[1]))) is None


def test_wgmma_is_refused_before_hopper():
    with pytest.raises(TcompError, match=r"intrinsic wgmma_64x128x64_f16f32 needs sm_90a, but the target is sm_80"):
        _build(kernels.wgmma_gemm(256, 512, 256), "sm_80")


def test_warpgroup_sketch_only_for_sm_90():
    from tcomp.tuning.space import design_space

    func = kernels.half_gemm_func(256, 256, 256)

    def wgmma_sketches(target):
        return [t for t in design_space(func, target)
                if any(i.kind == "tensorize" and "wgmma" in str(i.inputs) for i in t.instructions)]

    assert wgmma_sketches("cuda -arch=sm_80") == []
    assert len(wgmma_sketches("cuda -arch=sm_90")) == 2  # N = 128 and 256
    assert len(wgmma_sketches("cuda -arch=sm_90a")) == 2
