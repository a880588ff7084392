"""Converters of activations and unary math: the trigonometric / hyperbolic functions of
``tcomp.ops.trig``; Celu, Mish, Swish, SwiGLU, Softsign, Shrink, ThresholdedRelu and
Hardmax as compositions of elementwise ops (fused into one loop) and ArgMax.
"""
from __future__ import annotations

import numpy as np

from ...graph.ir import numpy_dtype
from ...ops.trig import CALLS, WIDE
from ...tir.expr import is_float
from .common import ConvertError, converter, normalize_axis, reshape_to


def _scalar(ctx, value, dtype):
    return ctx.const(np.array(value, dtype=numpy_dtype(dtype)))


def _float_input(ctx, x):
    if not is_float(x.dtype):
        raise ConvertError(f"{ctx.onnx_node.op_type} on {x.dtype} is not supported")


@converter(*CALLS, *WIDE)
def _math(ctx, inputs, attrs):
    _float_input(ctx, inputs[0])
    return [ctx.emit1(ctx.onnx_node.op_type, [inputs[0]])]


@converter("Celu")
def _celu(ctx, inputs, attrs):
    """x for x > 0, else alpha * (exp(x / alpha) - 1)."""
    x = inputs[0]
    _float_input(ctx, x)
    alpha = _scalar(ctx, attrs.get("alpha", 1.0), x.dtype)
    expm1 = ctx.emit1("Sub", [ctx.emit1("Exp", [ctx.emit1("Div", [x, alpha])]), _scalar(ctx, 1, x.dtype)])
    positive = ctx.emit1("Greater", [x, _scalar(ctx, 0, x.dtype)])
    return [ctx.emit1("Where", [positive, x, ctx.emit1("Mul", [alpha, expm1])])]


@converter("Mish")
def _mish(ctx, inputs, attrs):
    x = inputs[0]
    _float_input(ctx, x)
    return [ctx.emit1("Mul", [x, ctx.emit1("Tanh", [ctx.emit1("Softplus", [x])])])]


def _swish(ctx, x, alpha):
    """x * sigmoid(alpha * x)."""
    scaled = x if alpha == 1.0 else ctx.emit1("Mul", [x, _scalar(ctx, alpha, x.dtype)])
    return ctx.emit1("Mul", [x, ctx.emit1("Sigmoid", [scaled])])


@converter("Swish")
def _swish_op(ctx, inputs, attrs):
    _float_input(ctx, inputs[0])
    return [_swish(ctx, inputs[0], attrs.get("alpha", 1.0))]


@converter("SwiGLU")
def _swiglu(ctx, inputs, attrs):
    a, b = inputs[0], inputs[1]
    _float_input(ctx, a)
    if a.shape != b.shape or a.dtype != b.dtype:
        raise ConvertError(f"A ({a.type}) and B ({b.type}) must have the same shape and type")
    return [ctx.emit1("Mul", [_swish(ctx, a, attrs.get("alpha", 1.0)), b])]


@converter("Softsign")
def _softsign(ctx, inputs, attrs):
    x = inputs[0]
    _float_input(ctx, x)
    return [ctx.emit1("Div", [x, ctx.emit1("Add", [ctx.emit1("Abs", [x]), _scalar(ctx, 1, x.dtype)])])]


@converter("Shrink")
def _shrink(ctx, inputs, attrs):
    """x + bias below -lambd, x - bias above lambd, 0 between."""
    x = inputs[0]
    if x.dtype == "bool":
        raise ConvertError("Shrink on bool is not supported")
    lambd, bias = attrs.get("lambd", 0.5), attrs.get("bias", 0.0)
    dtype = x.dtype
    below = ctx.emit1("Less", [x, _scalar(ctx, -lambd, dtype)])
    above = ctx.emit1("Greater", [x, _scalar(ctx, lambd, dtype)])
    high = ctx.emit1("Where", [above, ctx.emit1("Sub", [x, _scalar(ctx, bias, dtype)]), _scalar(ctx, 0, dtype)])
    return [ctx.emit1("Where", [below, ctx.emit1("Add", [x, _scalar(ctx, bias, dtype)]), high])]


@converter("ThresholdedRelu")
def _thresholded_relu(ctx, inputs, attrs):
    x = inputs[0]
    _float_input(ctx, x)
    above = ctx.emit1("Greater", [x, _scalar(ctx, attrs.get("alpha", 1.0), x.dtype)])
    return [ctx.emit1("Where", [above, x, _scalar(ctx, 0, x.dtype)])]


@converter("Hardmax")
def _hardmax(ctx, inputs, attrs):
    """1 at the first maximum along the axis, 0 elsewhere (before opset 13: over the
    flattened axes from ``axis`` on)."""
    x = inputs[0]
    if x.dtype == "bool" or not x.shape:
        raise ConvertError(f"Hardmax needs a numeric tensor of rank >= 1, got {x.type}")
    rank = len(x.shape)
    if ctx.opset < 13:
        axis = normalize_axis(attrs.get("axis", 1), rank)
        flat = (int(np.prod(x.shape[:axis])), int(np.prod(x.shape[axis:])))
        return [reshape_to(ctx, _hardmax_on(ctx, reshape_to(ctx, x, flat), 1), x.shape)]
    return [_hardmax_on(ctx, x, normalize_axis(attrs.get("axis", -1), rank))]


def _hardmax_on(ctx, x, axis):
    best = ctx.emit1("ArgMax", [x], {"axis": axis, "keepdims": 1, "select_last_index": 0})
    shape = [1] * len(x.shape)
    shape[axis] = x.shape[axis]
    positions = ctx.const(np.arange(x.shape[axis], dtype=np.int64).reshape(shape))
    return ctx.emit1("Cast", [ctx.emit1("Equal", [positions, best])], {"to": x.dtype})
