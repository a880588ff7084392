"""Tests of indexing, scan, integer and bit ops: tcomp against onnxruntime, or against onnx.reference
where onnxruntime lacks the op / type / opset (``check_ref``), or numpy.

Inputs are drawn fresh every run; shapes use odd extents and size-1 axes.
"""
from __future__ import annotations

import numpy as np
import pytest
from onnx import TensorProto, helper
from onnx.reference import ReferenceEvaluator
from onnx_helpers import (IR_VERSION, assert_matches, check_op, make_model, node, rand, randint, rng,
                          run_tcomp)

import tcomp

F32 = np.float32
INT_TYPES = [np.int8, np.int16, np.int32, np.int64, np.uint8, np.uint16, np.uint32, np.uint64]


def check_ref(nodes, inputs: dict, outputs: list, opset: int, inits: dict | None = None, rtol=1e-5, atol=1e-6):
    """Like ``check`` with onnx.reference as the reference (ops or types onnxruntime lacks)."""
    model = make_model(nodes, inputs, outputs, opset, inits)
    refs = ReferenceEvaluator(model).run(None, inputs)
    ours = run_tcomp(model, inputs)
    assert len(ours) == len(refs)
    for name, o, r in zip(outputs, ours, refs):
        assert_matches(o, np.asarray(r), rtol=rtol, atol=atol, name=name)
    return ours, refs


def int_values(shape, dtype):
    info = np.iinfo(dtype)
    return rng().integers(info.min, info.max, size=shape, dtype=dtype, endpoint=True)


# ---------------------------------------------------------------------------------------------
# bit ops
# ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", [np.uint8, np.uint32, np.uint64], ids=lambda d: d.__name__)  # onnxruntime's types
@pytest.mark.parametrize("direction", ["LEFT", "RIGHT"])
@pytest.mark.parametrize("shapes", [((7, 13), (7, 13)), ((3, 1, 5), (4, 1)), ((33,), ())], ids=str)
def test_bitshift_onnxruntime(direction, dtype, shapes):
    bits = np.iinfo(dtype).bits
    x = int_values(shapes[0], dtype)
    y = rng().integers(0, bits, size=shapes[1]).astype(dtype)
    check_op("BitShift", {"x": x, "y": y}, direction=direction)


@pytest.mark.parametrize("dtype", INT_TYPES, ids=lambda d: d.__name__)
@pytest.mark.parametrize("direction", ["LEFT", "RIGHT"])
def test_bitshift_signed_and_out_of_range(direction, dtype):
    """Signed types, negative values, shifts below 0 or of at least the bit width (opset 28 semantics)."""
    bits = np.iinfo(dtype).bits
    lo = -bits - 3 if np.issubdtype(dtype, np.signedinteger) else 0
    x = int_values((5, 17), dtype)
    y = rng().integers(lo, bits + 4, size=(5, 17)).astype(dtype)
    check_ref([node("BitShift", ["x", "y"], ["z"], direction=direction)], {"x": x, "y": y}, ["z"], opset=28)


@pytest.mark.parametrize("dtype", INT_TYPES, ids=lambda d: d.__name__)
@pytest.mark.parametrize("op", ["BitwiseAnd", "BitwiseOr", "BitwiseXor"])
def test_bitwise_binary(op, dtype):
    check_op(op, {"x": int_values((3, 1, 19), dtype), "y": int_values((4, 1), dtype)}, opset=18)


@pytest.mark.parametrize("dtype", INT_TYPES, ids=lambda d: d.__name__)
def test_bitwise_not(dtype):
    check_op("BitwiseNot", {"x": int_values((2, 3, 37), dtype)}, opset=18)


@pytest.mark.parametrize("src,dst", [(np.float32, np.int32), (np.int32, np.float32), (np.float64, np.int64),
                                     (np.uint16, np.int16), (np.int8, np.uint8), (np.uint64, np.float64),
                                     (np.bool_, np.uint8)], ids=str)
def test_bitcast(src, dst):
    g = rng()
    if src is np.bool_:
        x = g.random((5, 21)) < 0.5
    elif np.issubdtype(src, np.floating):
        x = (g.standard_normal((5, 21)) * 1e3).astype(src)
    else:
        x = int_values((5, 21), src)
    to = helper.np_dtype_to_tensor_dtype(np.dtype(dst))
    model = make_model([node("BitCast", ["x"], ["y"], to=to)], {"x": x}, ["y"], opset=26)
    (ours,) = run_tcomp(model, {"x": x})
    assert_matches(ours, x.view(dst), name="y")


def test_bitcast_width_mismatch_is_refused():
    graph = helper.make_graph([node("BitCast", ["x"], ["y"], to=TensorProto.INT64)], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [3])],
                              [helper.make_tensor_value_info("y", TensorProto.INT64, [3])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 26)], ir_version=IR_VERSION)
    with pytest.raises(tcomp.UnsupportedOpError, match="BitCast.*width"):
        tcomp.compile(model)


# ---------------------------------------------------------------------------------------------
# integer Pow
# ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("xt,yt", [(np.int32, np.int32), (np.int64, np.int64), (np.int32, np.float32),
                                   (np.int64, np.float32), (np.float32, np.int64)], ids=str)
def test_pow_integer_types(xt, yt):
    x = randint((4, 7), -6, 6).astype(xt)
    y = (randint((7,), 0, 5) if np.issubdtype(yt, np.integer) else rand((7,), 0, 4)).astype(yt)
    check_op("Pow", {"x": x, "y": y}, opset=15)
