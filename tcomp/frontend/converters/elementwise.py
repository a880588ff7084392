"""Converters of elementwise ops and aliases."""
from __future__ import annotations

import numpy as np
import onnx

from ...graph.ir import dtype_of_numpy, numpy_dtype
from ...ops.elementwise import BINARY, FLOAT_ONLY, UNARY
from ...ops.quant import BYTE_CODED
from ...tir.expr import is_float
from .common import ConvertError, const_input, converter
from .narrow import cast_narrow


# Aliases -----------------------------------------------------------------
@converter("Identity")
def _identity(ctx, inputs, attrs):
    return [inputs[0]]


@converter("Dropout")
def _dropout(ctx, inputs, attrs):
    """Inference (or a ratio of 0) keeps every element: the data itself and a mask of ones."""
    x = inputs[0]
    if ctx.opset >= 12:
        training = len(inputs) > 2 and inputs[2] is not None and bool(const_input(inputs[2], "training_mode"))
        ratio = const_input(inputs[1], "Dropout ratio") if training and len(inputs) > 1 else None
        if training and (ratio is None or float(ratio) != 0.0):
            raise ConvertError("training-mode Dropout with a nonzero ratio draws a random mask; "
                               "tcomp compiles deterministic inference graphs")
    elif ctx.opset < 7 and not attrs.get("is_test", 0):
        raise ConvertError("training-mode Dropout (is_test=0) draws a random mask")
    outputs = [x]
    if len(ctx.onnx_node.output) > 1 and ctx.onnx_node.output[1]:
        mask_dtype = np.bool_ if ctx.opset >= 10 else numpy_dtype(x.dtype)
        outputs.append(ctx.const(np.ones(x.shape, dtype=mask_dtype), "dropout_mask"))
    return outputs


# Elementwise -----------------------------------------------------------------
@converter(*[name for name in UNARY if name != "Clip"], "IsNaN", "IsInf")
def _unary(ctx, inputs, attrs):
    op = ctx.onnx_node.op_type
    if op in FLOAT_ONLY and not is_float(inputs[0].dtype):
        raise ConvertError(f"{op} on {inputs[0].dtype} is not supported")
    return [ctx.emit1(op, [inputs[0]], attrs)]


@converter(*[name for name in BINARY if name not in ("Max", "Min")], "Where")
def _binary(ctx, inputs, attrs):
    op = ctx.onnx_node.op_type
    if op in ("Add", "Sub", "Mul", "Div", "Pow") and inputs[0].dtype == "bool":
        raise ConvertError(f"{op} on bool is not supported")
    if op == "Pow" and not is_float(inputs[0].dtype) and is_float(inputs[1].dtype):
        # an integer base with a float exponent: computed in double precision, truncated like numpy's astype
        wide = [ctx.emit1("Cast", [v], {"to": "float64"}) for v in inputs]
        return [ctx.emit1("Cast", [ctx.emit1("Pow", wide)], {"to": inputs[0].dtype})]
    return [ctx.emit1(op, inputs, attrs)]


@converter("Max", "Min", "Sum", "Mean")
def _variadic(ctx, inputs, attrs):
    op = {"Max": "Max", "Min": "Min", "Sum": "Add", "Mean": "Add"}[ctx.onnx_node.op_type]
    result = inputs[0]
    for value in inputs[1:]:
        result = ctx.emit1(op, [result, value])
    if ctx.onnx_node.op_type == "Mean":
        result = ctx.emit1("Div", [result, ctx.const(np.array(len(inputs), dtype=result.dtype))])
    return [result]


@converter("Cast")
def _cast(ctx, inputs, attrs):
    dtype = dtype_of_numpy(onnx.helper.tensor_dtype_to_np_dtype(attrs["to"]))
    if dtype in ("str", "object") or dtype.startswith("<U"):
        raise ConvertError("Cast to string is not supported")
    if dtype in BYTE_CODED or inputs[0].dtype in BYTE_CODED:
        return [cast_narrow(ctx, inputs[0], dtype, attrs)]
    return [ctx.emit1("Cast", [inputs[0]], {"to": dtype})]


@converter("CastLike")
def _cast_like(ctx, inputs, attrs):
    x, like = inputs[0], inputs[1]
    if x.is_const and not x.is_symbolic_const:  # only the type of ``like`` matters: fold
        return [ctx.const(x.const.astype(numpy_dtype(like.dtype)), "cast")]
    if like.dtype in BYTE_CODED or x.dtype in BYTE_CODED:
        return [cast_narrow(ctx, x, like.dtype, attrs)]
    return [ctx.emit1("Cast", [x], {"to": like.dtype})]


@converter("Clip")
def _clip(ctx, inputs, attrs):
    x = inputs[0]
    if ctx.opset < 11:
        bounds = {k: attrs[k] for k in ("min", "max") if k in attrs}
        return [ctx.emit1("Clip", [x], bounds)]
    result = x
    for value, op in zip(inputs[1:3], ("Max", "Min")):
        if value is None:
            continue
        if value.is_const:
            key = "min" if op == "Max" else "max"
            result = ctx.emit1("Clip", [result], {key: value.const.item()})
        else:
            result = ctx.emit1(op, [result, value])
    return [result]


