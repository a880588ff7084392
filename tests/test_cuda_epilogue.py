"""The tensor-core sketches' fused epilogue (``rules/gpu_epilogue.py``, ``targets/cuda/fragments.py``):
``D = f16(relu(A @ B + bias) + R)`` is one kernel whose threads read the fp32 accumulator from
their registers and store D once, in fp16. Compile-only checks run everywhere; on a GPU the
kernels run against numpy on random inputs."""
from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("cuda.bindings.nvrtc", reason="cuda-python is not installed (pip install 'tcomp[cuda]')")

import tcomp  # noqa: E402
from tcomp import tir  # noqa: E402
from tcomp.schedule.schedule import Schedule  # noqa: E402
from tcomp.targets.csource import RenderError  # noqa: E402
from tcomp.tir.expr import Var, cast, maximum  # noqa: E402


def epilogue_func(m: int, n: int, k: int, dtype: str = "float16"):
    """``C = f32(A) @ f32(B)``, then ``D = dtype(max(C + bias, 0) + R)`` (C an intermediate)."""
    a = tir.placeholder((m, k), dtype, name="A")
    b = tir.placeholder((k, n), dtype, name="B")
    bias = tir.placeholder((n,), dtype, name="bias")
    res = tir.placeholder((m, n), dtype, name="R")
    r = tir.reduce_axis(k, name="k")
    c = tir.compute((m, n), lambda i, j: tir.sum(cast("float32", a[i, r]) * cast("float32", b[r, j]), axis=r),
                    name="C")
    d = tir.compute((m, n), lambda i, j: cast(dtype, maximum(c[i, j] + cast("float32", bias[j]), 0.0)
                                              + cast("float32", res[i, j])), name="D")
    return tir.create_func([a, b, bias, res, d], name="gemm_epilogue")


def _sketch(func, rule: str, decisions: list, width: int | None = None):
    """The sketch of ``rule`` (gpu_tensor_core, gpu_warpgroup; wgmma: of ``width``) with its decisions."""
    from tcomp.tuning.rules import gpu_tensor_core, gpu_warpgroup

    module = {"mma": gpu_tensor_core, "wgmma": gpu_warpgroup}[rule]
    sketches = [s for s in module.apply(func, Schedule(func), "C")
                if width is None or any(i.kind == "tensorize" and f"wgmma_64x{width}x" in str(i.inputs)
                                        for i in s.trace.instructions)]
    positions = sorted(sketches[0].trace.decisions)
    return sketches[0].trace.apply_to(func, decisions=dict(zip(positions, decisions)))


def _mma(m, n, k, dtype="float16"):
    from tcomp.tuning.rules import gpu_tensor_core as tc

    chosen = [tc.WARPS.index(2), tc.WARPS.index(2), tc.TILES_M.index(2), tc.TILES_N.index(4), tc.DEPTH.index(2),
              tc.STAGES.index(2)]
    return _sketch(epilogue_func(m, n, k, dtype), "mma", chosen)


def _wgmma(m, n, k, dtype="float16", width=128, groups=2, tiles=1):
    from tcomp.tuning.rules import gpu_warpgroup as wg

    chosen = [wg.WARPGROUPS.index(groups), wg.TILES_M[width].index(tiles), wg.STAGES.index(3)]
    return _sketch(epilogue_func(m, n, k, dtype), "wgmma", chosen, width)


@pytest.mark.parametrize("arch", ["sm_80", "sm_90"])
def test_epilogue_runs_on_the_accumulator_registers(arch):
    kernel = tcomp.build(_mma(128, 256, 64) if arch == "sm_80" else _wgmma(128, 256, 128), target=f"cuda -arch={arch}")
    source, ptx = kernel.source(), kernel.ptx()
    assert len(kernel.program.kernels) == 1  # no second kernel reading back an fp32 product
    assert "float* __restrict__ C" not in source and "float2" not in source
    fragment = "C_warp[" if arch == "sm_80" else "C_warpgroup["
    assert f"fmaxf(({fragment}" in source.split("D[")[-1]  # D's store computes on the registers
    assert ("mma.sync.aligned" if arch == "sm_80" else "wgmma.mma_async") in ptx
    assert ".local" not in ptx  # registers indexed by constants: no spill to local memory


def test_plain_product_keeps_the_store_intrinsic():
    import cuda_kernels as kernels

    source = tcomp.build(kernels.mma_gemm(128, 128, 64), target="cuda -arch=sm_80").source()
    assert "*(float2*)" in source  # mma_store: a float2 per lane and row


def shifted_func(n: int, dtype: str):
    """``B[i] = dtype(2 * (A[i - 1] if i >= 1 else 0) + 1)``: computed values, a zero where the read is out of range."""
    from tcomp.tir.expr import FloatImm, Select

    a = tir.placeholder((n,), dtype, name="A")
    b = tir.compute((n,), lambda i: cast(dtype, cast("float32", Select(i >= 1, a[maximum(i - 1, 0)],
                                                                       FloatImm(0.0, dtype))) * 2.0 + 1.0), name="B")
    return tir.create_func([a, b], name="shifted")


def _vector_lanes(n: int, dtype: str):
    """``shifted_func`` with each thread's ``16 bytes`` of B one vectorized loop."""
    lanes = 16 // np.dtype(dtype).itemsize
    sch = Schedule(shifted_func(n, dtype))
    (i,) = sch.get_loops(sch.get_block("B"))
    bx, tx, v = sch.split(i, [None, 32, lanes])
    sch.bind(bx, "blockIdx.x")
    sch.bind(tx, "threadIdx.x")
    sch.vectorize(v)
    return sch


@pytest.mark.parametrize("dtype,vector", [("float16", "make_uint4("),
                                          ("float32", "make_uint4(tc_bitcast<unsigned int>")])
def test_vectorized_loop_of_computed_values_is_one_store(dtype, vector):
    source = tcomp.build(_vector_lanes(512, dtype), target="cuda -arch=sm_80").source()
    assert source.count("*(uint4*)(B + ") == 1 and vector in source


class _Renderer:
    """What ``fragments.element`` asks of the renderer."""

    def __init__(self, thread, bounds):
        self.thread, self._bounds = thread, bounds

    def axis(self, tag):
        return self.thread if tag == "threadIdx.x" else None

    def bounds(self):
        return self._bounds

    def name(self, buf):
        return buf.name

    def expr(self, e):
        return str(e)


@pytest.mark.parametrize("scope,lanes,rows", [("warp", 32, 16), ("warpgroup", 128, 64)])
def test_fragment_element_checks_the_thread_holding_it(scope, lanes, rows):
    from tcomp.targets.cuda.fragments import element
    from tcomp.tir.expr import Buffer, Load

    buf = Buffer("C_acc", (rows, 16), "float32", scope)
    t, h, c, e = Var("t"), Var("h"), Var("c"), Var("e")
    bounds = {t: (0, lanes - 1), h: (0, 1), c: (0, 1), e: (0, 1)}
    i = (t // 32) * 16 + h * 8 + (t // 4) % 8
    j = c * 8 + (t % 4) * 2 + e
    text = element(_Renderer(t, bounds), Load(buf, (i, j)))
    assert "t" not in text.split("[", 1)[1]  # the register does not depend on the thread
    wrong = [((t // 32) * 16 + h * 8 + t % 8, c * 8 + ((t // 8) % 4) * 2 + e),  # rows and column pairs swapped
             ((t // 32) * 16 + h * 8 + (t // 4 + 1) % 8, j)]                       # a neighbour's row
    for index in wrong:
        with pytest.raises(RenderError, match="does not hold"):
            element(_Renderer(t, bounds), Load(buf, index))


# ---------------------------------------------------------------- on a GPU


def _gpu():
    from tcomp.targets.cuda.driver import device_arch, device_count

    if device_count() == 0:
        pytest.skip("no CUDA device on this machine (CI has none); the compile-only checks above run everywhere")
    return device_arch()


@pytest.mark.parametrize("rule,dtype", [("mma", "float16"), ("mma", "bfloat16"), ("wgmma", "float16"),
                                        ("wgmma256", "float16")])
def test_fused_epilogue_matches_numpy(rule, dtype):
    arch = _gpu()
    if rule.startswith("wgmma") and arch != "sm_90":
        pytest.skip("wgmma needs a Hopper GPU (sm_90)")
    if dtype == "bfloat16":
        ml_dtypes = pytest.importorskip("ml_dtypes", reason="bfloat16 arrays need ml_dtypes")
    np_dtype = np.float16 if dtype == "float16" else ml_dtypes.bfloat16
    m, n, k = 256, 512, 192
    sch = {"mma": lambda: _mma(m, n, k, dtype), "wgmma": lambda: _wgmma(m, n, k, dtype),
           "wgmma256": lambda: _wgmma(m, n, k, dtype, width=256, groups=1)}[rule]()
    kernel = tcomp.build(sch, target="cuda")
    rng = np.random.default_rng()
    a, b = (rng.standard_normal(s).astype(np_dtype) for s in ((m, k), (k, n)))
    bias, res = rng.standard_normal(n).astype(np_dtype), rng.standard_normal((m, n)).astype(np_dtype)
    d = np.full((m, n), np.nan, np_dtype)  # poisoned: every element must be written
    kernel(a, b, bias, res, d)
    c = a.astype(np.float32) @ b.astype(np.float32)
    expected = np.maximum(c + bias.astype(np.float32), 0) + res.astype(np.float32)
    tol = 1e-2 if dtype == "float16" else 4e-2
    np.testing.assert_allclose(d.astype(np.float32), expected, rtol=tol, atol=tol * np.abs(expected).max())


@pytest.mark.parametrize("dtype", ["float16", "float32"])
def test_vectorized_loop_of_computed_values_matches_numpy(dtype):
    _gpu()
    n = 4096
    kernel = tcomp.build(_vector_lanes(n, dtype), target="cuda")
    a = np.random.default_rng().standard_normal(n).astype(dtype)
    b = np.full(n, np.nan, dtype)
    kernel(a, b)
    shifted = np.concatenate([[0], a[:-1]]).astype(np.float32)
    np.testing.assert_allclose(b.astype(np.float32), (shifted * 2 + 1).astype(dtype).astype(np.float32), rtol=1e-3)
