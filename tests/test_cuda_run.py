"""The cuda target on a GPU: generated kernels against numpy on fresh random inputs (elementwise,
two kernels through an intermediate buffer, a reduction, a shared-memory tiled GEMM, the tensor-core
WMMA GEMM). Skipped without a CUDA device; test_cuda_compile.py runs everywhere."""
from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("cuda.bindings.driver", reason="cuda-python is not installed (pip install 'tcomp[cuda]')")

import cuda_kernels as kernels  # noqa: E402
import gpu_run_checks as checks  # noqa: E402

import tcomp  # noqa: E402
from tcomp.targets.cuda.driver import device_count  # noqa: E402

pytestmark = pytest.mark.skipif(device_count() == 0, reason="no CUDA device on this machine (CI has none); "
                                                            "test_cuda_compile.py checks the generated code there")


@pytest.fixture
def rng():
    return np.random.default_rng()


def test_elementwise(rng):
    checks.check_elementwise("cuda", rng)


def test_symbolic_rows(rng):
    checks.check_symbolic_rows("cuda", rng)


def test_half_elementwise(rng):
    a = rng.standard_normal((64, 33)).astype(np.float16)
    b = tcomp.build(kernels.elementwise_func(64, 33, "float16"), target="cuda")(a)
    want = (np.exp(a.astype(np.float32)) * 2 + a.astype(np.float32)).astype(np.float16)
    np.testing.assert_allclose(b.astype(np.float32), want.astype(np.float32), rtol=2e-3, atol=2e-3)


def test_two_kernels_through_an_intermediate(rng):
    checks.check_two_kernels_through_an_intermediate("cuda", rng)


def test_row_sum(rng):
    checks.check_row_sum("cuda", rng)


def test_tiled_shared_memory_gemm(rng):
    checks.check_tiled_shared_memory_gemm("cuda", rng)


def test_wmma_gemm(rng):
    m, n, k = 64, 48, 128
    a = rng.standard_normal((m, k)).astype(np.float16)
    b = rng.standard_normal((k, n)).astype(np.float16)
    c = tcomp.build(kernels.wmma_gemm(m, n, k), target="cuda")(a, b)
    want = a.astype(np.float32) @ b.astype(np.float32)
    np.testing.assert_allclose(c, want, rtol=1e-3, atol=1e-3)


@pytest.mark.parametrize("dtype,stages,warps", [("float16", 2, (2, 2)), ("float16", 1, (2, 2)),
                                                ("bfloat16", 2, (2, 2)), ("float16", 3, (2, 4)),
                                                ("float16", 4, (2, 4))])
def test_mma_gemm(rng, dtype, stages, warps):
    """Swizzled shared tiles; 3-4 stages of 128x256 tiles need dynamic shared memory (> 48 KB)."""
    m, n, k = 256, 512, 192
    _check_half_gemm(tcomp.build(kernels.mma_gemm(m, n, k, dtype, warps=warps, stages=stages), target="cuda"),
                     rng, dtype, m, n, k)


def _hopper() -> bool:
    from tcomp.targets.cuda.driver import device_arch

    return device_arch() == "sm_90"


@pytest.mark.parametrize("dtype,shape,stages", [("float16", (1, 1, 128), 2), ("float16", (2, 1, 256), 3),
                                                ("float16", (2, 2, 128), 4), ("bfloat16", (1, 1, 256), 2)])
def test_wgmma_gemm(rng, dtype, shape, stages):
    """Warpgroups of wgmma on swizzled shared tiles (descriptors), compiled for sm_90a."""
    if not _hopper():
        pytest.skip("wgmma needs a Hopper GPU (sm_90)")
    m, n, k = 256, 512, 320
    kernel = tcomp.build(kernels.wgmma_gemm(m, n, k, dtype, shape=shape, stages=stages), target="cuda")
    assert kernel.image.arch == "sm_90a"
    _check_half_gemm(kernel, rng, dtype, m, n, k)


def _check_half_gemm(kernel, rng, dtype, m, n, k):
    """``kernel(a, b, c)`` on random fp16/bf16 operands computes ``a @ b`` in fp32, into every element."""
    a = rng.standard_normal((m, k)).astype(np.float32)
    b = rng.standard_normal((k, n)).astype(np.float32)
    if dtype == "float16":
        a, b = a.astype(np.float16), b.astype(np.float16)
    else:
        ml_dtypes = pytest.importorskip("ml_dtypes", reason="bfloat16 arrays need ml_dtypes")
        a, b = a.astype(ml_dtypes.bfloat16), b.astype(ml_dtypes.bfloat16)
    c = np.full((m, n), np.nan, np.float32)  # poisoned: every element must be written
    kernel(a, b, c)
    want = a.astype(np.float64) @ b.astype(np.float64)
    assert np.linalg.norm(c - want) / np.linalg.norm(want) < 1e-5
