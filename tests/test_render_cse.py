"""Repeated subexpressions in the GPU source renderers (``tcomp/targets/cse.py``): a value used twice at
each of many levels of an expression is printed once per level, not once per path through the levels
(2**levels: attention's ``_expanded`` node cases made shaders that never finished compiling), and
the kernel still computes what numpy does. Where C evaluates an operand only under a condition, what
may fault there (a load) is not hoisted out of it."""
from __future__ import annotations

import numpy as np

import tcomp
from tcomp import tir
from tcomp.targets.csource import CSourceRenderer
from tcomp.targets.cuda.dialect import CUDA
from tcomp.targets.gpu.lower import lower_for_gpu
from tcomp.tir.expr import FloatImm, Select
from webgpu_helpers import requires_webgpu

LEVELS = 12
N = 300


def _chain():
    """B[i] = x_LEVELS with x_0 = A[i], x_{k+1} = x_k * 0.5 + x_k * x_k * 0.125: each x_k used three times."""
    a = tir.placeholder((N,), "float32", name="A")

    def value(i):
        x = a[i]
        for _ in range(LEVELS):
            x = x * 0.5 + x * x * 0.125
        return x

    return tir.create_func([a, tir.compute((N,), value, name="B")])


def _chain_expected(a: np.ndarray) -> np.ndarray:
    x = a.copy()
    for _ in range(LEVELS):
        x = x * np.float32(0.5) + x * x * np.float32(0.125)
    return x


def _cuda_source(func) -> str:
    return CSourceRenderer(CUDA).render(lower_for_gpu(func, "cuda").kernels)


def test_cuda_source_prints_a_shared_value_once_per_level():
    source = _cuda_source(_chain())
    assert source.count("const auto tc_cse") >= LEVELS
    assert len(source) < len(CUDA.preamble) + 3000  # printed as a tree: over 2**LEVELS * 20 characters


@requires_webgpu
def test_webgpu_shader_prints_a_shared_value_once_per_level_and_computes_it():
    kernel = tcomp.build(_chain(), target="webgpu")
    assert kernel.source().count("let tc_cse") >= LEVELS and len(kernel.source()) < 3000
    a = np.random.default_rng().random(N).astype(np.float32)
    np.testing.assert_allclose(kernel(a), _chain_expected(a), rtol=1e-5, atol=1e-7)


def _guarded_read():
    """B[i] = i + 1 < N ? h * h : 0 with h = A[i + 1] * 2: h reads past A's end where the condition is false."""
    a = tir.placeholder((N,), "float32", name="A")

    def value(i):
        h = a[i + 1] * 2.0
        return Select(i + 1 < N, h * h + h, FloatImm(0.0))

    return tir.create_func([a, tir.compute((N,), value, name="B")])


def test_cuda_keeps_a_conditional_load_under_its_condition():
    source = _cuda_source(_guarded_read())
    bindings = [line for line in source.splitlines() if "const auto tc_cse" in line]
    assert not any("A[" in line for line in bindings), bindings


@requires_webgpu
def test_webgpu_binds_a_value_select_evaluates_anyway():
    kernel = tcomp.build(_guarded_read(), target="webgpu")
    assert any("let tc_cse" in line and "A[" in line for line in kernel.source().splitlines())
    a = np.random.default_rng().random(N).astype(np.float32)
    h = np.append(a[1:], np.float32(0)) * np.float32(2)
    expected = np.where(np.arange(N) + 1 < N, h * h + h, np.float32(0))
    np.testing.assert_allclose(kernel(a), expected, rtol=1e-6)
