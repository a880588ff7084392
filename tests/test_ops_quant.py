"""Quantization operator tests: tcomp vs onnxruntime on fresh random inputs.

QuantizeLinear / DequantizeLinear (per tensor, per axis, blocked; 8- and 16-bit types;
float16 inputs), DynamicQuantizeLinear, MatMulInteger, ConvInteger, QLinearMatMul,
QLinearConv, and QDQ graphs (DequantizeLinear -> MatMul / Conv -> QuantizeLinear) that
tcomp computes in integer arithmetic.

Quantized results are integers: inputs are drawn so that no value lands within a small
margin of a rounding tie, where float32 and float64 requantization may round apart.
"""
from __future__ import annotations

import numpy as np
import pytest
from onnx.reference import ReferenceEvaluator

from onnx_helpers import (assert_matches, check, make_model, node, rand, randint, reference, run_tcomp,
                          with_static_outputs)

import tcomp

F32 = np.float32
RANGES = {np.uint8: (0, 255), np.int8: (-128, 127), np.uint16: (0, 65535), np.int16: (-32768, 32767)}


def _scale(shape=(), lo=0.01, hi=0.1, dtype=F32):
    return rand(shape, lo, hi).astype(dtype)


def _zero_point(dtype, shape=()):
    low, high = RANGES[dtype]
    span = (high - low) // 4
    return randint(shape, low + span, high - span, dtype=dtype)


def _away_from_ties(x, scale, margin=0.02):
    """``x`` nudged so that x / scale is at least ``margin`` from a half integer."""
    q = x.astype(np.float64) / scale
    frac = q - np.floor(q)
    near = np.abs(frac - 0.5) < margin
    return np.where(near, (np.floor(q) + 0.25) * scale, x).astype(x.dtype)


def _q(dtype, shape):
    low, high = RANGES[dtype]
    return randint(shape, low, high, dtype=dtype)


# ---------------------------------------------------------------------------------------------
# QuantizeLinear
# ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", [np.uint8, np.int8])
@pytest.mark.parametrize("shape", [(7, 13), (2, 3, 67), (5,)])
def test_quantize_per_tensor(dtype, shape):
    scale = _scale()
    zp = _zero_point(dtype)
    x = _away_from_ties(rand(shape, -8, 8), scale)
    check([node("QuantizeLinear", ["x", "s", "zp"], ["y"])], {"x": x}, ["y"], inits={"s": scale, "zp": zp})


def test_quantize_default_uint8_scale_input():
    """No zero point: uint8; the scale is a graph input (computed at run time)."""
    scale = _scale()
    x = _away_from_ties(rand((4, 9), -2, 10), scale)
    check([node("QuantizeLinear", ["x", "s"], ["y"])], {"x": x, "s": scale}, ["y"])


@pytest.mark.parametrize("axis", [0, 1, -1])
def test_quantize_per_axis(axis):
    shape = (3, 5, 7)
    scale = _scale((shape[axis],))
    zp = _zero_point(np.int8, (shape[axis],))
    x = rand(shape, -5, 5)
    x = _away_from_ties(x, np.expand_dims(scale, [a for a in range(3) if a != axis % 3]))
    check([node("QuantizeLinear", ["x", "s", "zp"], ["y"], axis=axis)], {"x": x}, ["y"],
          inits={"s": scale, "zp": zp}, opset=13)


@pytest.mark.parametrize("dtype", [np.uint16, np.int16])
def test_quantize_16bit(dtype):
    scale = _scale(lo=1e-4, hi=1e-3)
    zp = _zero_point(dtype)
    x = _away_from_ties(rand((6, 11), -10, 10), scale)
    check([node("QuantizeLinear", ["x", "s", "zp"], ["y"])], {"x": x}, ["y"], inits={"s": scale, "zp": zp},
          opset=21)


@pytest.mark.parametrize("block", [2, 3])
def test_quantize_blocked(block):
    shape = (4, 7)
    blocks = -(-shape[1] // block)
    scale = _scale((shape[0], blocks))
    zp = _zero_point(np.uint8, (shape[0], blocks))
    full = np.repeat(scale, block, axis=1)[:, :shape[1]]
    x = _away_from_ties(rand(shape, -4, 4), full)
    check([node("QuantizeLinear", ["x", "s", "zp"], ["y"], axis=1, block_size=block)], {"x": x, "s": scale}, ["y"],
          inits={"zp": zp}, opset=21)


def test_quantize_float16():
    scale = _scale(dtype=np.float16)
    x = rand((5, 8), -3, 3).astype(np.float16)
    zp = _zero_point(np.uint8)
    model = make_model([node("QuantizeLinear", ["x", "s", "zp"], ["y"])], {"x": x}, ["y"], 19,
                       {"s": scale, "zp": zp})
    refs = [np.asarray(r) for r in ReferenceEvaluator(model).run(None, {"x": x})]
    assert_matches(run_tcomp(with_static_outputs(model, refs), {"x": x})[0], refs[0])


# ---------------------------------------------------------------------------------------------
# DequantizeLinear
# ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", [np.uint8, np.int8, np.uint16, np.int16])
def test_dequantize_per_tensor(dtype):
    x = _q(dtype, (3, 17))
    opset = 21 if dtype in (np.uint16, np.int16) else 13
    check([node("DequantizeLinear", ["x", "s", "zp"], ["y"])], {"x": x, "s": _scale()}, ["y"],
          inits={"zp": _zero_point(dtype)}, opset=opset)


def test_dequantize_int32_no_zero_point():
    x = randint((4, 9), -100000, 100000, dtype=np.int32)
    check([node("DequantizeLinear", ["x", "s"], ["y"])], {"x": x}, ["y"], inits={"s": _scale()})


@pytest.mark.parametrize("axis", [0, 2, -2])
def test_dequantize_per_axis(axis):
    shape = (3, 4, 5)
    x = _q(np.uint8, shape)
    check([node("DequantizeLinear", ["x", "s", "zp"], ["y"], axis=axis)], {"x": x, "zp": _zero_point(np.uint8,
          (shape[axis],))}, ["y"], inits={"s": _scale((shape[axis],))}, opset=13)


def test_dequantize_blocked():
    x = _q(np.int8, (6, 5))
    check([node("DequantizeLinear", ["x", "s", "zp"], ["y"], axis=0, block_size=4)], {"x": x}, ["y"],
          inits={"s": _scale((2, 5)), "zp": _zero_point(np.int8, (2, 5))}, opset=21)


def test_dequantize_float16_scale():
    x = _q(np.uint8, (5, 6))
    check([node("DequantizeLinear", ["x", "s", "zp"], ["y"])], {"x": x}, ["y"],
          inits={"s": _scale(dtype=np.float16), "zp": _zero_point(np.uint8)}, opset=19, rtol=1e-3)


# ---------------------------------------------------------------------------------------------
# Byte-coded types (int4, uint4, int2, uint2, float8, float4): one element per byte through
# ml_dtypes; against onnx.reference (onnxruntime takes few of them as graph inputs)
# ---------------------------------------------------------------------------------------------

SUB_BYTE = {"int4": (-8, 7), "uint4": (0, 15), "int2": (-2, 1), "uint2": (0, 3)}


def _against_reference(nodes, feeds, opset=21, inits=None):
    model = make_model(nodes, feeds, ["y"], opset, inits)
    ref = np.asarray(ReferenceEvaluator(model).run(None, feeds)[0])
    ours = run_tcomp(with_static_outputs(model, [ref]), feeds)[0]
    assert ours.dtype == ref.dtype and ours.shape == ref.shape
    np.testing.assert_array_equal(ours, ref)


@pytest.mark.parametrize("dtype", list(SUB_BYTE))
@pytest.mark.parametrize("zero_point", ["const", "input"])
def test_dequantize_sub_byte(dtype, zero_point):
    low, high = SUB_BYTE[dtype]
    x = randint((5, 6), low, high, dtype=np.int32).astype(dtype)
    zp = randint((6,), low, high, dtype=np.int32).astype(dtype)
    feeds, inits = {"x": x}, {"s": _scale((6,))}
    (feeds if zero_point == "input" else inits)["zp"] = zp
    _against_reference([node("DequantizeLinear", ["x", "s", "zp"], ["y"], axis=1)], feeds, inits=inits)


@pytest.mark.parametrize("dtype", ["float8_e4m3fn", "float8_e5m2", "float8_e4m3fnuz", "float4_e2m1fn"])
def test_dequantize_small_floats(dtype):
    x = rand((4, 9), -6, 6).astype(dtype)
    opset = 23 if dtype == "float4_e2m1fn" else 21
    _against_reference([node("DequantizeLinear", ["x", "s"], ["y"])], {"x": x}, opset, {"s": _scale()})


@pytest.mark.parametrize("dtype", list(SUB_BYTE))
def test_quantize_sub_byte(dtype):
    scale = _scale(lo=0.2, hi=0.5)
    low, high = SUB_BYTE[dtype]
    zp = np.array((low + high) // 2).astype(dtype)
    x = _away_from_ties(rand((6, 7), -4, 4), scale)
    _against_reference([node("QuantizeLinear", ["x", "s", "zp"], ["y"])], {"x": x}, inits={"s": scale, "zp": zp})


@pytest.mark.parametrize("dtype", ["float8_e4m3fn", "float8_e5m2", "float8_e4m3fnuz", "float8_e5m2fnuz",
                                   "float4_e2m1fn"])
def test_quantize_small_floats(dtype):
    """Magnitudes over the whole range and past it (saturation), exact midpoints between
    neighbouring values (ties to the even code), signed zeros."""
    g = np.random.default_rng()
    values = np.arange(256, dtype=np.uint8).view(dtype).astype(np.float32)
    finite = np.unique(np.abs(values[np.isfinite(values)]))
    midpoints = (finite[:-1] + finite[1:]) / 2
    spread = g.uniform(0.5, 1.5, 40) * 10.0 ** g.uniform(np.log10(finite[1]) - 1, np.log10(finite[-1]) + 1, 40)
    x = np.concatenate([g.choice(midpoints, 24), spread, [0.0, -0.0, finite[-1] * 4]]).astype(np.float32)
    x *= np.where(g.random(x.size) < 0.5, -1.0, 1.0).astype(np.float32)
    opset = 23 if dtype == "float4_e2m1fn" else 21
    zp = np.zeros((), dtype=dtype)
    _against_reference([node("QuantizeLinear", ["x", "s", "zp"], ["y"])], {"x": x.reshape(1, -1)}, opset,
                       {"s": np.array(1.0, np.float32), "zp": zp})


# ---------------------------------------------------------------------------------------------
# DynamicQuantizeLinear
# ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("lo,hi", [(-3.0, 5.0), (0.5, 4.0), (-6.0, -1.0)])
def test_dynamic_quantize(lo, hi):
    x = rand((7, 19), lo, hi)
    model = make_model([node("DynamicQuantizeLinear", ["x"], ["y", "s", "zp"])], {"x": x}, ["y", "s", "zp"], 11)
    refs = reference(model, {"x": x})
    ours = run_tcomp(with_static_outputs(model, refs), {"x": x})
    assert_matches(ours[1], refs[1], name="y_scale")
    assert_matches(ours[2], refs[2], name="y_zero_point")
    # y: away from rounding ties of x / scale (onnxruntime divides by multiplying with the reciprocal)
    q = x.astype(np.float64) / refs[1].astype(np.float64)
    safe = np.abs(q - np.floor(q) - 0.5) > 1e-3
    assert ours[0].dtype == np.uint8 and ours[0].shape == refs[0].shape
    np.testing.assert_array_equal(ours[0][safe], refs[0][safe])


# ---------------------------------------------------------------------------------------------
# MatMulInteger / ConvInteger
# ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("adt,bdt", [(np.uint8, np.uint8), (np.uint8, np.int8), (np.int8, np.int8)])
@pytest.mark.parametrize("shapes", [((5, 33), (33, 7)), ((2, 3, 17), (17, 9)), ((2, 4, 6), (2, 6, 3))])
def test_matmul_integer(adt, bdt, shapes):
    a, b = _q(adt, shapes[0]), _q(bdt, shapes[1])
    check([node("MatMulInteger", ["a", "b", "za", "zb"], ["y"])], {"a": a, "b": b, "za": _zero_point(adt)}, ["y"],
          inits={"zb": _zero_point(bdt)}, opset=10)


def test_matmul_integer_per_column_zero_point():
    a, b = _q(np.uint8, (6, 10)), _q(np.uint8, (10, 5))
    check([node("MatMulInteger", ["a", "b", "za", "zb"], ["y"])], {"a": a, "b": b}, ["y"],
          inits={"za": _zero_point(np.uint8), "zb": _zero_point(np.uint8, (5,))}, opset=10)


def test_matmul_integer_no_zero_points():
    a, b = _q(np.int8, (3, 40)), _q(np.int8, (40, 18))
    check([node("MatMulInteger", ["a", "b"], ["y"])], {"a": a, "b": b}, ["y"], opset=10)


@pytest.mark.parametrize("attrs", [{}, {"pads": [1, 1, 1, 1]}, {"strides": [2, 2], "pads": [0, 1, 1, 0]},
                                   {"group": 2, "pads": [1, 1, 1, 1]}, {"dilations": [2, 1]}])
def test_conv_integer(attrs):
    group = attrs.get("group", 1)
    x = _q(np.uint8, (2, 4, 9, 8))
    w = _q(np.uint8, (6, 4 // group, 3, 3))
    check([node("ConvInteger", ["x", "w", "zx", "zw"], ["y"], **attrs)], {"x": x, "w": w}, ["y"],
          inits={"zx": _zero_point(np.uint8), "zw": _zero_point(np.uint8)}, opset=10)


def test_conv_integer_1d_depthwise():
    x = _q(np.uint8, (1, 3, 20))
    w = _q(np.uint8, (3, 1, 5))
    check([node("ConvInteger", ["x", "w", "zx"], ["y"], group=3, pads=[2, 2])], {"x": x, "w": w}, ["y"],
          inits={"zx": _zero_point(np.uint8)}, opset=10)


# ---------------------------------------------------------------------------------------------
# QLinearMatMul / QLinearConv (against onnx.reference: it requantizes in float64, like tcomp;
# onnxruntime in float32, which can round a near-tie apart)
# ---------------------------------------------------------------------------------------------

def _check_reference(nodes, inputs, outputs, opset, inits=None):
    model = make_model(nodes, inputs, outputs, opset, inits)
    refs = [np.asarray(r) for r in ReferenceEvaluator(model).run(None, inputs)]
    ours = run_tcomp(with_static_outputs(model, refs), inputs)
    for name, o, r in zip(outputs, ours, refs):
        assert_matches(o, r, name=name)
    return ours, refs


QLINEAR_NAMES = ["a", "sa", "za", "b", "sb", "zb", "sy", "zy"]


@pytest.mark.parametrize("dtype", [np.uint8, np.int8])
@pytest.mark.parametrize("shapes", [((5, 33), (33, 7)), ((2, 3, 17), (17, 9))])
def test_qlinear_matmul(dtype, shapes):
    a, b = _q(dtype, shapes[0]), _q(dtype, shapes[1])
    inits = {"sa": _scale(), "za": _zero_point(dtype), "sb": _scale(), "zb": _zero_point(dtype),
             "sy": _scale(lo=0.05, hi=0.2), "zy": _zero_point(dtype)}
    nodes = [node("QLinearMatMul", QLINEAR_NAMES, ["y"])]
    _check_reference(nodes, {"a": a, "b": b}, ["y"], 10, inits)


def test_qlinear_matmul_scales_as_inputs_float16():
    a, b = _q(np.uint8, (4, 12)), _q(np.uint8, (12, 6))
    feeds = {"a": a, "sa": _scale(dtype=np.float16), "b": b, "sb": _scale(dtype=np.float16),
             "sy": _scale(lo=0.05, hi=0.2, dtype=np.float16)}
    _check_reference([node("QLinearMatMul", QLINEAR_NAMES, ["y"])], feeds, ["y"], 21,
                     {"za": _zero_point(np.uint8), "zb": _zero_point(np.uint8), "zy": _zero_point(np.uint8)})


@pytest.mark.parametrize("per_channel", [False, True])
@pytest.mark.parametrize("attrs", [{}, {"pads": [1, 1, 1, 1], "strides": [2, 1]}, {"group": 5, "pads": [1, 1, 1, 1]}])
def test_qlinear_conv(per_channel, attrs):
    group = attrs.get("group", 1)
    cout = 5 if group == 5 else 4
    x = _q(np.uint8, (2, 5, 7, 9))
    w = _q(np.int8, (cout, 5 // group, 3, 3))
    inits = {"sx": _scale(), "zx": _zero_point(np.uint8), "sw": _scale((cout,) if per_channel else ()),
             "zw": np.zeros((cout,) if per_channel else (), np.int8), "sy": _scale(lo=0.1, hi=0.3),
             "zy": _zero_point(np.uint8), "bias": randint((cout,), -500, 500, dtype=np.int32)}
    names = ["x", "sx", "zx", "w", "sw", "zw", "sy", "zy", "bias"]
    _check_reference([node("QLinearConv", names, ["y"], **attrs)], {"x": x, "w": w}, ["y"], 10, inits)


# ---------------------------------------------------------------------------------------------
# QDQ graphs: integer arithmetic inside, float interface
# ---------------------------------------------------------------------------------------------

def _product_dtypes(model) -> dict:
    """{op: [output dtypes]} of the MatMul and Conv nodes of the compiled graph."""
    graph = tcomp.compile(model, target="cpu").graph
    found: dict = {}
    for n in graph.nodes:
        if n.op in ("MatMul", "Conv"):
            found.setdefault(n.op, []).append(n.outputs[0].dtype)
    return found


def test_qdq_matmul_is_integer():
    """x -> Q -> DQ -> MatMul(DQ(W int8, per-column scales)) -> Q: one integer MatMul kernel."""
    x = rand((6, 32), -2, 2)
    w = _q(np.int8, (32, 10))
    nodes = [node("QuantizeLinear", ["x", "sx", "zx"], ["xq"]), node("DequantizeLinear", ["xq", "sx", "zx"], ["xd"]),
             node("DequantizeLinear", ["w", "sw"], ["wd"], axis=1), node("MatMul", ["xd", "wd"], ["yf"]),
             node("QuantizeLinear", ["yf", "sy", "zy"], ["y"])]
    inits = {"sx": _scale(), "zx": _zero_point(np.uint8), "w": w, "sw": _scale((10,)),
             "sy": _scale(lo=0.05, hi=0.1), "zy": _zero_point(np.uint8)}
    model = make_model(nodes, {"x": x}, ["y", "yf"], 13, inits)
    refs = reference(model, {"x": x})
    model = with_static_outputs(model, refs)
    ours = run_tcomp(model, {"x": x})
    assert_matches(ours[1], refs[1], rtol=1e-5, atol=1e-5, name="yf")
    # the quantized output may differ by one step where yf / sy is within rounding error of a tie
    diff = np.abs(ours[0].astype(np.int32) - refs[0].astype(np.int32))
    assert diff.max() <= 1 and np.count_nonzero(diff) <= max(1, diff.size // 100)
    assert _product_dtypes(model) == {"MatMul": ["int32"]}


def test_qdq_linear_layer_is_two_kernels():
    """Quantize (writes uint8), then one int32 MatMul that widens the uint8 in its operand
    packing and requantizes in its epilogue; results against onnxruntime."""
    sx = _scale()
    x = _away_from_ties(rand((8, 64), -2, 2), sx)
    nodes = [node("QuantizeLinear", ["x", "sx", "zx"], ["xq"]), node("DequantizeLinear", ["xq", "sx", "zx"], ["xd"]),
             node("DequantizeLinear", ["w", "sw"], ["wd"], axis=1), node("MatMul", ["xd", "wd"], ["yf"]),
             node("Relu", ["yf"], ["yr"])]
    inits = {"sx": sx, "zx": _zero_point(np.uint8), "w": _q(np.int8, (64, 24)), "sw": _scale((24,))}
    model = make_model(nodes, {"x": x}, ["yr"], 13, inits)
    refs = reference(model, {"x": x})
    model = with_static_outputs(model, refs)
    assert_matches(run_tcomp(model, {"x": x})[0], refs[0], relnorm=1e-5)
    groups = tcomp.compile(model, target="cpu").groups
    assert [(g.label.split("+")[-1], g.output.dtype) for g in groups] == [("Cast", "uint8"), ("Relu", "float32")]
    assert groups[1].label.startswith("Cast+Sub+MatMul"), groups[1].label


def test_qdq_gemm_conv_integer_and_fallback():
    """Conv over DQ(x) and DQ(W per output channel) with a float bias: int32. Gemm(transB)
    over DQ(a) and DQ(W) per output column: int32; and one over DQ(W) with scales along K,
    which do not factor out of the sum: float."""
    x = rand((1, 3, 8, 8), -1, 1)
    sa = _scale()
    a = _away_from_ties(rand((2, 40), -2, 2), sa)
    nodes = [node("QuantizeLinear", ["x", "sx", "zx"], ["xq"]), node("DequantizeLinear", ["xq", "sx", "zx"], ["xd"]),
             node("DequantizeLinear", ["w", "sw"], ["wd"], axis=0),
             node("Conv", ["xd", "wd", "b"], ["c"], pads=[1, 1, 1, 1]),
             node("QuantizeLinear", ["a", "sa", "za"], ["aq"]), node("DequantizeLinear", ["aq", "sa", "za"], ["ad"]),
             node("DequantizeLinear", ["g", "sg"], ["gd"], axis=0), node("Gemm", ["ad", "gd", "bg"], ["y"], transB=1),
             node("DequantizeLinear", ["h", "sh"], ["hd"], axis=1), node("Gemm", ["ad", "hd"], ["z"], transB=1)]
    inits = {"sx": _scale(), "zx": _zero_point(np.uint8), "w": _q(np.int8, (4, 3, 3, 3)), "sw": _scale((4,)),
             "b": rand((4,)), "sa": sa, "za": _zero_point(np.uint8), "g": _q(np.int8, (5, 40)), "sg": _scale((5,)),
             "bg": rand((5,)), "h": _q(np.int8, (3, 40)), "sh": _scale((40,))}
    model = make_model(nodes, {"x": x, "a": a}, ["c", "y", "z"], 13, inits)
    refs = reference(model, {"x": x, "a": a})
    model = with_static_outputs(model, refs)
    ours = run_tcomp(model, {"x": x, "a": a})
    for name, o, r in zip(["c", "y", "z"], ours, refs):
        assert_matches(o, r, relnorm=1e-5, name=name)
    assert _product_dtypes(model) == {"Conv": ["int32"], "MatMul": ["int32", "float32"]}


def test_dequantize_bad_axis_is_reported():
    x = _q(np.uint8, (3, 4))
    model = make_model([node("DequantizeLinear", ["x", "s"], ["y"], axis=1)], {"x": x}, ["y"], 13,
                       {"s": _scale((3,))})
    with pytest.raises(tcomp.UnsupportedOpError, match="DequantizeLinear.*x_scale of shape \\[3\\] does not match"):
        tcomp.compile(model)
