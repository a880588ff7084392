"""Converters of integer and bit ops: BitShift, BitwiseAnd/Or/Xor/Not, BitCast."""
from __future__ import annotations

import onnx

from ...graph.ir import dtype_of_numpy
from ...tir.expr import dtype_bits, is_int
from .common import ConvertError, converter


def _require_int(op: str, value) -> None:
    if not is_int(value.dtype):
        raise ConvertError(f"{op} on {value.dtype} is not supported (integer types only)")


@converter("BitShift")
def _bitshift(ctx, inputs, attrs):
    x, y = inputs
    _require_int("BitShift", x)
    direction = attrs.get("direction", "")
    if direction not in ("LEFT", "RIGHT"):
        raise ConvertError(f"BitShift direction must be LEFT or RIGHT, not {direction!r}")
    if y.dtype != x.dtype:
        raise ConvertError(f"BitShift operands differ in type ({x.dtype} vs {y.dtype})")
    return [ctx.emit1("BitShift", [x, y], {"direction": direction})]


@converter("BitwiseAnd", "BitwiseOr", "BitwiseXor")
def _bitwise(ctx, inputs, attrs):
    op = ctx.onnx_node.op_type
    for value in inputs:
        _require_int(op, value)
    if inputs[0].dtype != inputs[1].dtype:
        raise ConvertError(f"{op} operands differ in type ({inputs[0].dtype} vs {inputs[1].dtype})")
    return [ctx.emit1(op[len("Bitwise"):], inputs)]  # And/Or/Xor are bitwise on integers


@converter("BitwiseNot")
def _bitwise_not(ctx, inputs, attrs):
    _require_int("BitwiseNot", inputs[0])
    return [ctx.emit1("Not", inputs)]  # Not inverts every bit of an integer


@converter("BitCast")
def _bitcast(ctx, inputs, attrs):
    x = inputs[0]
    to = dtype_of_numpy(onnx.helper.tensor_dtype_to_np_dtype(attrs["to"]))
    if dtype_bits(to) != dtype_bits(x.dtype):
        raise ConvertError(f"BitCast from {x.dtype} to {to}: the types differ in width")
    if to == x.dtype:
        return [x]
    return [ctx.emit1("BitCast", [x], {"to": to})]
