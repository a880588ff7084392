"""ONNX operators on the webgpu target against onnx's ReferenceEvaluator on fresh random inputs, and
ONNX node cases against their expected outputs: what WGSL computes differently from C (float
floor-mod of special values, integer powers, bit casts of 8- and 16-bit types, results packed in
words) and cases the node suite found failing on webgpu (zero-sized tensors: an empty workgroup; an
int64 conversion overflowing in a select's branch not taken). Skipped where wgpu or a WebGPU adapter is missing."""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper
from onnx.reference import ReferenceEvaluator

from webgpu_helpers import requires_webgpu

import tcomp

pytestmark = requires_webgpu


def _model(op: str, inputs: list, output: tuple, opset: int = 21, **attrs) -> onnx.ModelProto:
    """One ``op`` node over ``inputs`` [(name, elem type, shape)] giving ``output`` (name, elem type, shape)."""
    node = helper.make_node(op, [name for name, _, _ in inputs], [output[0]], **attrs)
    graph = helper.make_graph([node], op.lower(), [helper.make_tensor_value_info(*i) for i in inputs],
                              [helper.make_tensor_value_info(*output)])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])


def _both(model: onnx.ModelProto, *arrays) -> tuple:
    """(webgpu's output, the ReferenceEvaluator's) of ``model``'s first output."""
    names = [i.name for i in model.graph.input]
    with np.errstate(all="ignore"):
        expected = ReferenceEvaluator(model).run(None, dict(zip(names, arrays)))[0]
    return tcomp.compile(model, target="webgpu")(*arrays)[0], expected


SPECIAL = np.array([0.0, -0.0, np.inf, -np.inf, np.nan, 1.0, -1.0, 3.0, -3.0, 1e30, -1e30, 7.5e-39], np.float32)


@pytest.mark.parametrize("dtype", [np.float32, np.float16])
def test_float_mod_is_numpys_on_special_and_large_values(dtype):
    """Mod with fmod=0 on floats: numpy's floor-mod, exactly (fmod's remainder, not a - floor(a / b) * b,
    which is nan for an infinite divisor and inexact for large quotients), zeros signed as the divisor."""
    rng = np.random.default_rng()
    special = SPECIAL if dtype == np.float32 else SPECIAL[np.isnan(SPECIAL) | (np.abs(SPECIAL) < 1e4)]
    a, b = np.meshgrid(special, special)
    top = 30 if dtype == np.float32 else 4  # large quotients: a up to 10**top, b up to 10**3
    a = np.concatenate([a.ravel(), rng.standard_normal(500) * 10.0 ** rng.integers(-3, top, 500)]).astype(dtype)
    b = np.concatenate([b.ravel(), rng.standard_normal(500) * 10.0 ** rng.integers(-3, 4, 500)]).astype(dtype)
    elem = helper.np_dtype_to_tensor_dtype(np.dtype(dtype))
    got, expected = _both(_model("Mod", [("a", elem, [a.size]), ("b", elem, [b.size])], ("y", elem, [a.size]), fmod=0),
                          a, b)
    if dtype == np.float16:  # computed in float32 and rounded: within one half-precision step of numpy's
        np.testing.assert_allclose(got.astype(np.float32), expected.astype(np.float32), rtol=1e-3, atol=0)
        return
    np.testing.assert_array_equal(got, expected)
    zero = expected == 0
    np.testing.assert_array_equal(np.signbit(got[zero]), np.signbit(expected[zero]))


@pytest.mark.parametrize("dtype", [np.int32, np.int64, np.uint8, np.int8])
def test_integer_pow_wraps_like_numpy(dtype):
    rng = np.random.default_rng()
    info = np.iinfo(dtype)
    a = rng.integers(max(info.min, -9), min(info.max, 9), 600, dtype=dtype)
    b = rng.integers(0, 12, 600, dtype=dtype)  # numpy refuses negative integer exponents
    if dtype == np.int64:  # results must fit 32 bits on webgpu (int64 is computed in 32 bits)
        b = np.minimum(b, 9).astype(dtype)
    elem = helper.np_dtype_to_tensor_dtype(np.dtype(dtype))
    got, expected = _both(_model("Pow", [("a", elem, [600]), ("b", elem, [600])], ("y", elem, [600]), opset=15), a, b)
    np.testing.assert_array_equal(got, expected)


def test_integer_pow_negative_exponent():
    base = np.array([1, -1, -1, 2, -3, 0], np.int32)
    exponent = np.array([-3, -3, -2, -1, -2, 5], np.int32)
    model = _model("Pow", [("a", TensorProto.INT32, [6]), ("b", TensorProto.INT32, [6])], ("y", TensorProto.INT32, [6]))
    got = tcomp.compile(model, target="webgpu")(base, exponent)[0]
    np.testing.assert_array_equal(got, [1, -1, 1, 0, 0, 0])  # 1/x**n truncated, as the cpu target computes it


def test_integer_floor_mod_with_negative_operands():
    rng = np.random.default_rng()
    a, b = rng.integers(-1000, 1000, 700).astype(np.int32), rng.integers(-30, 30, 700).astype(np.int32)
    b[b == 0] = 7
    model = _model("Mod", [("a", TensorProto.INT32, [700]), ("b", TensorProto.INT32, [700])],
                   ("y", TensorProto.INT32, [700]))
    np.testing.assert_array_equal(*_both(model, a, b))


def test_uint8_max_pool():
    """A uint8 maximum accumulated in place in a packed word (the value computed before the word's bits
    are cleared: it reads the element itself)."""
    x = np.random.default_rng().integers(0, 256, (2, 3, 17, 13), dtype=np.uint8)
    model = _model("MaxPool", [("x", TensorProto.UINT8, [2, 3, 17, 13])], ("y", TensorProto.UINT8, [2, 3, 8, 6]),
                   kernel_shape=[3, 3], strides=[2, 2])
    np.testing.assert_array_equal(*_both(model, x))


@pytest.mark.parametrize("source,target", [("float32", "int32"), ("uint16", "int16"), ("int8", "uint8"),
                                           ("float16", "int16"), ("int16", "bfloat16"), ("bool", "uint8")])
def test_bitcast(source, target):
    """BitCast of 32-, 16- and 8-bit types: held widened in 32-bit registers, cast through their low bits."""
    import ml_dtypes

    def dtype(name):
        return np.dtype(ml_dtypes.bfloat16 if name == "bfloat16" else name)

    rng = np.random.default_rng()
    width = np.dtype(source if source != "bool" else "uint8").itemsize
    x = rng.integers(0, 256, (7, 11 * width), dtype=np.uint8).view(np.uint8 if source == "bool" else dtype(source))
    if source == "bool":
        x = x % 2 == 1
    src, dst = (helper.np_dtype_to_tensor_dtype(dtype(t)) for t in (source, target))
    model = _model("BitCast", [("x", src, [7, 11])], ("y", dst, [7, 11]), opset=26, to=dst)
    got = tcomp.compile(model, target="webgpu")(x)[0]
    np.testing.assert_array_equal(got.view(np.uint8), x.view(np.uint8))  # bit for bit (NaNs too)


NODE_CASES = ["test_maxpool_2d_uint8", "test_einsum_batch_matmul_bfloat16", "test_einsum_sum_bfloat16",
              "test_mod_float_edge_cases_fmod_0_float32", "test_mod_float_edge_cases_fmod_0_float16",
              "test_pow_types_int32_int32", "test_pow_types_int64_int64", "test_attention_4d_gqa_causal_expanded",
              "test_bitcast_bool_to_uint8", "test_tril_zero", "test_slice_start_out_of_bounds",
              "test_reduce_sum_empty_set_non_reduced_axis_zero", "test_quantizelinear_e5m2"]


@pytest.mark.parametrize("name", NODE_CASES)
def test_node_case(name):
    """ONNX's node case, with its expected outputs, on webgpu."""
    sys.path.insert(0, str(Path(__file__).parent))
    from onnx.backend.test.runner import Runner
    from onnx_node_suite import _payload, load_cases

    import tcomp.backend

    (case,) = load_cases(f"^{name}$")
    _, data_sets, rtol, atol = _payload(case)
    rep = tcomp.backend.TcompRep(case.model, "webgpu")
    for inputs, expected in data_sets:
        with np.errstate(all="ignore"):
            Runner.assert_similar_outputs(expected, list(rep.run(inputs)), rtol, atol)


@pytest.mark.parametrize("fmod", [0, 1])
@pytest.mark.parametrize("dtype", [np.int32, np.int8])
def test_integer_mod_and_div_of_mixed_signs(dtype, fmod):
    """Integer Mod (floor-mod, or C's with fmod=1) and Div (truncating) on operands of every sign
    combination, int32 extremes included: computed from the magnitudes in WGSL (a signed remainder's
    sign came out wrong on an NVIDIA driver)."""
    rng = np.random.default_rng()
    info = np.iinfo(dtype)
    a = np.concatenate([rng.integers(info.min + 1, info.max, 600), [info.max, info.min + 1, 7, -7, 7, -7, 0]])
    b = np.concatenate([rng.integers(-50, 50, 600), [-1, 3, -3, 3, 5, -5, -4]])
    b[b == 0] = 1
    a, b = a.astype(dtype), b.astype(dtype)
    elem = helper.np_dtype_to_tensor_dtype(np.dtype(dtype))
    io = ([("a", elem, [a.size]), ("b", elem, [b.size])], ("y", elem, [a.size]))
    np.testing.assert_array_equal(*_both(_model("Mod", *io, fmod=fmod), a, b))
    np.testing.assert_array_equal(*_both(_model("Div", *io), a, b))


def test_log_and_softplus_near_one_keep_relative_accuracy():
    """Log of values near 1 and Softplus of large negative inputs (log(1 + tiny)) within float32
    rounding of float64 references: Vulkan allows log an absolute error of 2^-21 around 1, which is
    a relative error of 1% at log(1.00005)."""
    rng = np.random.default_rng()
    near_one = (1.0 + rng.uniform(-0.07, 0.07, 2000) * 10.0 ** rng.integers(-6, 1, 2000)).astype(np.float32)
    x = np.concatenate([near_one, rng.uniform(1e-3, 100, 500).astype(np.float32)])
    model = _model("Log", [("x", TensorProto.FLOAT, [x.size])], ("y", TensorProto.FLOAT, [x.size]))
    got = tcomp.compile(model, target="webgpu")(x)[0]
    np.testing.assert_allclose(got, np.log(x.astype(np.float64)), rtol=2e-6, atol=1e-30)
    z = rng.uniform(-9, -4, 500).astype(np.float32)   # 1 + exp(z) itself rounds to 5e-4 of exp(z) at -9
    model = _model("Softplus", [("z", TensorProto.FLOAT, [z.size])], ("y", TensorProto.FLOAT, [z.size]))
    got = tcomp.compile(model, target="webgpu")(z)[0]
    np.testing.assert_allclose(got, np.log1p(np.exp(z.astype(np.float64))), rtol=2e-3)
