"""The webgpu target through wgpu: generated WGSL kernels against numpy on fresh random inputs
(elementwise, reductions, a shared-memory tiled GEMM, softmax, every storable dtype, folded grids)
and its refusals (float64, int64 values beyond 32 bits, shader compile errors). CI runs them on
Mesa's software Vulkan driver (lavapipe); skipped where wgpu or a WebGPU adapter is missing."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest

pytest.importorskip("wgpu", reason="wgpu is not installed (pip install 'tcomp[webgpu]')")

import cuda_kernels as kernels  # noqa: E402
import gpu_run_checks as checks  # noqa: E402

from webgpu_helpers import requires_webgpu  # noqa: E402

import tcomp  # noqa: E402
from tcomp import tir  # noqa: E402
from tcomp.errors import InputError, TcompError  # noqa: E402
from tcomp.schedule.schedule import Schedule  # noqa: E402
from tcomp.targets.webgpu.device import adapter_info, webgpu_device  # noqa: E402
from tcomp.tir.expr import call, cast  # noqa: E402


pytestmark = requires_webgpu


@pytest.fixture
def rng():
    return np.random.default_rng()


def test_adapter_is_reported_and_software_without_a_gpu():
    import wgpu

    info = adapter_info()
    adapters = [a.info for a in wgpu.gpu.enumerate_adapters_sync()]
    assert info["device"] in [a["device"] for a in adapters]
    if all(a["adapter_type"] == "CPU" for a in adapters):  # no GPU here (CI): Mesa's lavapipe on Vulkan
        assert "llvmpipe" in info["device"] and info["backend_type"] == "Vulkan", info


def test_elementwise(rng):
    kernel = checks.check_elementwise("webgpu", rng)
    assert "@compute @workgroup_size(256, 1, 1)" in kernel.source()
    assert kernel.adapter == adapter_info()
    a = rng.standard_normal((1000, 37)).astype(np.float32)
    assert kernel.time(a, repeat=3, warmup=1) > 0


def test_symbolic_rows(rng):
    assert "var<uniform>" in checks.check_symbolic_rows("webgpu", rng).source()


def test_two_kernels_through_an_intermediate(rng):
    checks.check_two_kernels_through_an_intermediate("webgpu", rng)


def test_row_sum(rng):
    checks.check_row_sum("webgpu", rng)


def test_tiled_shared_memory_gemm(rng):
    source = checks.check_tiled_shared_memory_gemm("webgpu", rng).source()
    assert "var<workgroup> A_shared" in source and "workgroupBarrier();" in source
    assert "@workgroup_size(16, 16, 1)" in source


def test_accesses_proven_in_bounds_are_not_clamped():
    """The shaders are compiled without naga's bounds checks (``device.py``); the renderer clamps an index
    only where its loops' ranges do not prove it in bounds: none of the tiled GEMM's."""
    source = tcomp.build(kernels.tiled_gemm(128, 96, 160), target="webgpu").source()
    assert "var<workgroup> A_shared" in source and "min(u32(" not in source


def test_select_reading_past_a_buffer_on_the_side_not_taken(rng):
    """Concatenation as a select: WGSL evaluates both loads, and where one side is taken the other's index
    is past its buffer (or negative); those loads are clamped into their buffers, the result exact."""
    from tcomp.tir.expr import Select

    a = tir.placeholder((300,), "float32", name="A")
    b = tir.placeholder((200,), "float32", name="B")
    c = tir.compute((500,), lambda i: Select(i < 300, a[i], b[i - 300]), name="C")
    kernel = tcomp.build(tir.create_func([a, b, c]), target="webgpu")
    assert kernel.source().count("arrayLength(") == 2
    x, y = rng.standard_normal(300).astype(np.float32), rng.standard_normal(200).astype(np.float32)
    np.testing.assert_array_equal(kernel(x, y), np.concatenate([x, y]))


def test_bind_groups_are_kept_while_their_buffers_live(rng):
    kernel = tcomp.build(kernels.elementwise_func(100, 37), target="webgpu")
    groups = kernel.compiled[0].groups
    a = rng.standard_normal((100, 37)).astype(np.float32)
    launches, memory = kernel._prepare([a, np.empty_like(a)])
    kernel._launch(launches)
    kernel._launch(launches)
    assert len(groups) == 1  # the second run bound the same buffers: the group was reused
    del launches, memory
    assert not groups  # the buffers are gone, their bind group with them
    np.testing.assert_allclose(kernel(a), np.exp(a) * 2 + a, rtol=1e-5, atol=1e-6)
    assert not groups

def softmax_func(rows, cols: int):
    """Row softmax in three loop nests (max, sum of exp, normalize): three kernels, two temporaries."""
    x = tir.placeholder((rows, cols), "float32", name="X")
    k = tir.reduce_axis(cols, name="k")
    peak = tir.compute((rows,), lambda i: tir.max(x[i, k], axis=k), name="M")
    k2 = tir.reduce_axis(cols, name="k2")
    total = tir.compute((rows,), lambda i: tir.sum(call("exp", x[i, k2] - peak[i]), axis=k2), name="S")
    y = tir.compute((rows, cols), lambda i, j: call("exp", x[i, j] - peak[i]) / total[i], name="Y")
    return tir.create_func([x, y], name="softmax")


def test_softmax(rng):
    x = (rng.standard_normal((200, 77)) * 10).astype(np.float32)
    kernel = tcomp.build(softmax_func(tir.size_var("rows"), 77), target="webgpu")
    assert len(kernel.shaders) == 3
    want = np.exp(x - x.max(axis=1, keepdims=True))
    np.testing.assert_allclose(kernel(x), want / want.sum(axis=1, keepdims=True), rtol=1e-5, atol=1e-7)


def test_grid_beyond_65535_workgroups_is_folded(rng):
    n = 70_001
    sch = Schedule(kernels.elementwise_func(n, 2))
    i, j = sch.get_loops(sch.get_block("B"))
    sch.bind(i, "blockIdx.x")
    sch.bind(j, "threadIdx.x")
    kernel = tcomp.build(sch.func, target="webgpu")
    assert kernel.shaders[0].grid_folded and kernel.shaders[0].dispatch((n, 1, 1)) == (65535, 2, 1)
    a = rng.standard_normal((n, 2)).astype(np.float32)
    np.testing.assert_allclose(kernel(a), np.exp(a) * 2 + a, rtol=1e-5, atol=1e-6)


def _unary(dtype_in: str, dtype_out: str, fn, n: int = 1001):
    a = tir.placeholder((n,), dtype_in, name="A")
    b = tir.compute((n,), lambda i: fn(a[i]), name="B")
    return tir.create_func([a, b], name=f"{dtype_in}_to_{dtype_out}")


def test_int64_narrowed_and_widened_back(rng):
    a = rng.integers(-2**30, 2**30, 1001, dtype=np.int64)
    kernel = tcomp.build(_unary("int64", "int64", lambda x: x // 3 - 5), target="webgpu")
    np.testing.assert_array_equal(kernel(a), a // 3 - 5)  # negatives: the high word is the sign


def test_int32_floor_division_and_clamp(rng):
    from tcomp.tir.expr import maximum, minimum

    a = rng.integers(-1000, 1000, 1001).astype(np.int32)
    kernel = tcomp.build(_unary("int32", "int32", lambda x: minimum(maximum(x // 7 + x % 5, -50), 60)), target="webgpu")
    np.testing.assert_array_equal(kernel(a), np.clip(a // 7 + a % 5, -50, 60))


def test_int64_beyond_32_bits_is_refused():
    kernel = tcomp.build(_unary("int64", "int64", lambda x: x + 1), target="webgpu")
    a = np.zeros(1001, np.int64)
    a[17] = 2**40
    with pytest.raises(InputError, match=r"kernel int64_to_int64: A: int64 values in \[0, 1099511627776\] do not fit int32"):
        kernel(a)


def test_int64_result_beyond_32_bits_is_refused_naming_the_kernel(rng):
    """int64 computed in 32 bits: the inputs fit, a product does not; the shader raises its status word
    and the run is refused (a later run with fitting results passes: the word is cleared)."""
    kernel = tcomp.build(_unary("int64", "int64", lambda x: x * x + 1), target="webgpu")
    assert kernel.shaders[0].status and "tc_mul_overflows_i32(" in kernel.source()
    a = rng.integers(-40000, 40000, 1001, dtype=np.int64)
    np.testing.assert_array_equal(kernel(a), a * a + 1)
    a[500] = 2**20
    with pytest.raises(InputError, match=r"kernel int64_to_int64_kernel: int64 results beyond 32 bits"):
        kernel(a)
    a[500] = 3
    np.testing.assert_array_equal(kernel(a), a * a + 1)


@pytest.mark.parametrize("dtype", ["int64", "uint64"])
def test_64_bit_power_beyond_32_bits_is_refused(dtype):
    """a ** b computed in 32 bits: powers at the edges of the 32-bit range (and of 0 and +-1 to huge
    exponents) are exact; each power beyond it alone raises the status word and the run is refused."""
    from tcomp.tir.expr import BinOp

    a = tir.placeholder((16,), dtype, name="A")
    b = tir.placeholder((16,), dtype, name="B")
    kernel = tcomp.build(tir.create_func([a, b, tir.compute((16,), lambda i: BinOp("pow", a[i], b[i]), name="C")],
                                         name=f"{dtype}_pow"), target="webgpu")
    if dtype == "int64":
        fitting = [(-2, 31), (2, 30), (3, 19), (-3, 19), (46340, 2), (-46340, 2), (-8, 10), (7, 0), (5, 1),
                   (-1, 2**31 - 1), (-1, 2**31 - 2), (1, 2**31 - 1), (0, 2**31 - 1), (-5, 13), (-7, 11), (10, 9)]
        beyond = [(2, 31), (-2, 32), (-3, 20), (3, 20), (46341, 2), (-46341, 2), (2, 2**31 - 1), (10, 10), (-7, 12)]
    else:
        fitting = [(2, 31), (65535, 2), (3, 20), (1, 2**32 - 1), (0, 2**32 - 1), (7, 0), (5, 1), (255, 4), (10, 9),
                   (1625, 3), (2, 0), (4, 15), (6, 12), (0, 0), (1, 0), (16, 7)]
        beyond = [(2, 32), (65536, 2), (3, 21), (2, 2**32 - 1), (10, 10), (4, 16), (1626, 3), (256, 4)]
    base, exponent = (np.array(column, dtype) for column in zip(*fitting))
    np.testing.assert_array_equal(kernel(base, exponent), [x ** y for x, y in fitting])
    for x, y in beyond:
        base[3], exponent[3] = x, y
        with pytest.raises(InputError, match="results beyond 32 bits"):
            kernel(base, exponent)


def test_int64_overflow_in_a_branch_not_selected_is_harmless(rng):
    """WGSL's select evaluates both sides: x * x overflows where x is large, but only small x select it."""
    from tcomp.tir.expr import Select

    kernel = tcomp.build(_unary("int64", "int64", lambda x: Select(x < 1000, x * x, x)), target="webgpu")
    assert kernel.shaders[0].status
    a = rng.integers(1000, 2**30, 1001, dtype=np.int64)
    a[:100] = rng.integers(-999, 999, 100)
    np.testing.assert_array_equal(kernel(a), np.where(a < 1000, a * a, a))
    a[7] = -2**20  # selected, and its square leaves 32 bits
    with pytest.raises(InputError, match="int64 results beyond 32 bits"):
        kernel(a)


def test_int64_arithmetic_bounded_within_32_bits_is_not_checked():
    """Values read from memory are within 32 bits: x // 3 - 5 cannot leave them, and is not checked."""
    kernel = tcomp.build(_unary("int64", "int64", lambda x: x // 3 - 5), target="webgpu")
    assert not kernel.shaders[0].status and "tc_status" not in kernel.source()


def test_bool_output_packed_in_words(rng):
    a = rng.standard_normal(1001).astype(np.float32)  # 1001 bytes: threads share each u32 word
    b = tcomp.build(_unary("float32", "bool", lambda x: x > 0.0), target="webgpu")(a)
    np.testing.assert_array_equal(b, a > 0)


@pytest.mark.parametrize("dtype", ["int8", "uint8", "int16", "uint16"])
def test_small_integers(rng, dtype):
    info = np.iinfo(dtype)
    a = rng.integers(info.min, info.max, 1001, endpoint=True).astype(dtype)
    b = tcomp.build(_unary(dtype, dtype, lambda x: x * 3 + 7), target="webgpu")(a)  # wraps around
    np.testing.assert_array_equal(b, (a * np.array(3, dtype) + np.array(7, dtype)).astype(dtype))


def test_bool_input_and_int8_cast(rng):
    a = rng.random(999) < 0.5
    b = tcomp.build(_unary("bool", "int8", lambda x: cast("int8", x) * -3, n=999), target="webgpu")(a)
    np.testing.assert_array_equal(b, a.astype(np.int8) * -3)


@pytest.mark.parametrize("dtype", ["uint8", "int16"])
def test_packed_accumulator_reads_itself(rng, dtype):
    """A reduction into a packed 8/16-bit buffer (``R[i] = max(R[i], x)``): the element is read
    before its bits are cleared (the first bool ReduceMax of the node suite got the last value)."""
    info = np.iinfo(dtype)
    a = rng.integers(info.min, info.max, (61, 7), endpoint=True).astype(dtype)
    x = tir.placeholder((61, 7), dtype, name="A")
    k = tir.reduce_axis(7, name="k")
    r = tir.compute((61,), lambda i: tir.max(x[i, k], axis=k), name="R")
    np.testing.assert_array_equal(tcomp.build(tir.create_func([x, r]), target="webgpu")(a), a.max(axis=1))


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_16_bit_floats(rng, dtype):
    from tcomp.build import _numpy_dtype

    np_dtype = _numpy_dtype(dtype)
    a = (rng.standard_normal(1001) * 4).astype(np_dtype)
    kernel = tcomp.build(_unary(dtype, dtype, lambda x: cast(dtype, call("exp", cast("float32", x)) * 2.0)),
                         target="webgpu")
    with np.errstate(over="ignore"):  # large values round to inf, on the device too
        want = (np.exp(a.astype(np.float32)) * 2).astype(np_dtype).astype(np.float32)
    tolerance = 1e-2 if dtype == "bfloat16" else 1e-3
    np.testing.assert_allclose(kernel(a).astype(np.float32), want, rtol=tolerance, atol=tolerance)


def test_float64_is_refused_naming_the_kernel_and_buffer():
    with pytest.raises(TcompError, match="kernel float64_to_float64_kernel: buffer A is float64"):
        tcomp.build(_unary("float64", "float64", lambda x: x + 1.0), target="webgpu")


def test_shader_compile_error_names_the_kernel():
    kernel = tcomp.build(kernels.elementwise_func(8, 8), target="webgpu")
    broken = dataclasses.replace(kernel.shaders[0], source=kernel.shaders[0].source.replace("exp(", "expp("))
    with pytest.raises(TcompError, match=r"(?s)kernel elementwise_kernel: the WebGPU shader does not compile.*expp"):
        webgpu_device().compile(broken)
