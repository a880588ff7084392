"""What the cuda and webgpu run tests share: the small kernels of ``cuda_kernels.py`` built for a
target and run against numpy on fresh random inputs. Each check returns the built kernel, for the
target's own assertions on it (its source, its adapter)."""
from __future__ import annotations

import numpy as np

import cuda_kernels as kernels

import tcomp


def check_elementwise(target: str, rng):
    """``exp(a) * 2 + a`` over a static 1000 x 37 array."""
    a = rng.standard_normal((1000, 37)).astype(np.float32)
    kernel = tcomp.build(kernels.elementwise_func(1000, 37), target=target)
    np.testing.assert_allclose(kernel(a), np.exp(a) * 2 + a, rtol=1e-5, atol=1e-6)
    return kernel


def check_symbolic_rows(target: str, rng):
    """One kernel, compiled once, run at 1, 7 and 300 rows."""
    kernel = tcomp.build(kernels.symbolic_elementwise_func(), target=target)
    for rows in (1, 7, 300):
        a = rng.standard_normal((rows, 37)).astype(np.float32)
        np.testing.assert_allclose(kernel(a), np.exp(a) * 2 + a, rtol=1e-5, atol=1e-6)
    return kernel


def check_two_kernels_through_an_intermediate(target: str, rng):
    a = rng.standard_normal((64, 48)).astype(np.float32)
    kernel = tcomp.build(kernels.two_stage_func(64, 48), target=target)
    np.testing.assert_allclose(kernel(a), np.exp(a)[:, ::-1] + 1, rtol=1e-5, atol=1e-6)
    return kernel


def check_row_sum(target: str, rng):
    a = rng.standard_normal((300, 129)).astype(np.float32)
    kernel = tcomp.build(kernels.row_sum_func(300, 129), target=target)
    np.testing.assert_allclose(kernel(a), a.sum(axis=1), rtol=1e-4, atol=1e-4)
    return kernel


def check_tiled_shared_memory_gemm(target: str, rng):
    """A 128 x 96 x 160 GEMM through shared-memory tiles, returning its result and writing it into a
    caller's array."""
    m, n, k = 128, 96, 160
    a = rng.standard_normal((m, k)).astype(np.float32)
    b = rng.standard_normal((k, n)).astype(np.float32)
    kernel = tcomp.build(kernels.tiled_gemm(m, n, k), target=target)
    np.testing.assert_allclose(kernel(a, b), a @ b, rtol=1e-4, atol=1e-4)
    c = np.full((m, n), np.nan, np.float32)
    kernel(a, b, c)  # into a caller's array
    np.testing.assert_allclose(c, a @ b, rtol=1e-4, atol=1e-4)
    return kernel
