"""Converters of the quantization ops.

QuantizeLinear, DequantizeLinear (per tensor, per axis, blocked), DynamicQuantizeLinear,
MatMulInteger, ConvInteger, QLinearMatMul and QLinearConv. Quantized products are
integer arithmetic: operands become ``int32(q) - int32(zero_point)`` (fused into the
operand packing), the MatMul or Conv accumulates in int32 (exact), and requantization
``round(acc * scale_product / y_scale) + y_zero_point`` saturated to the output type is
the kernel's epilogue. Requantization runs in float64, as onnx.reference does (numpy
promotes int32 * float32 to float64). Integer types of 8 and 16 bits are supported;
DequantizeLinear also decodes the byte-coded types (int4, int2, float8, float4: a table
lookup), QuantizeLinear also encodes them (small floats: saturating, round to nearest even).
"""
from __future__ import annotations

import numpy as np
import onnx

from ...graph.ir import dtype_of_numpy
from ...ops.quant import BYTE_CODED, decode_table, encode_table
from .common import ConvertError, converter, normalize_axis, reshape_to
from .nn import emit_conv

QUANT_RANGES = {"uint8": (0, 255), "int8": (-128, 127), "uint16": (0, 65535), "int16": (-32768, 32767)}
PACKED_RANGES = {"uint4": (0, 15), "int4": (-8, 7), "uint2": (0, 3), "int2": (-2, 1)}


def _onnx_type(code: int) -> str:
    return dtype_of_numpy(onnx.helper.tensor_dtype_to_np_dtype(code))


def cast_to(ctx, value, dtype: str):
    """``value`` as ``dtype``: constants are converted at compile time."""
    if value.dtype == dtype:
        return value
    if value.is_const:
        return ctx.const(value.const.astype(dtype), "cast")
    return ctx.emit1("Cast", [value], {"to": dtype})


def arith(ctx, op: str, a, b):
    """``a op b`` (Add, Sub, Mul, Div) folded when both are constants."""
    if a.is_const and b.is_const:
        fn = {"Add": np.add, "Sub": np.subtract, "Mul": np.multiply, "Div": np.divide}[op]
        return ctx.const(np.asarray(fn(a.const, b.const)).astype(a.dtype), "folded")
    return ctx.emit1(op, [a, b])


def requantize(ctx, value, y_zero_point, out_dtype: str):
    """``saturate(round(value) + y_zero_point)`` as ``out_dtype``; ``value`` is float."""
    low, high = QUANT_RANGES[out_dtype]
    rounded = ctx.emit1("Round", [value])
    if y_zero_point is not None:
        rounded = ctx.emit1("Add", [rounded, cast_to(ctx, y_zero_point, value.dtype)])
    clipped = ctx.emit1("Clip", [rounded], {"min": float(low), "max": float(high)})
    return ctx.emit1("Cast", [clipped], {"to": out_dtype})


def quant_param(ctx, param, x, axis: int, block_size: int, what: str):
    """A scale or zero point shaped to broadcast against ``x``: a scalar (per tensor),
    a vector along ``axis`` (per axis), or repeated ``block_size`` times along ``axis``
    (blocked)."""
    rank = len(x.shape)
    if param.type.size == 1:
        return reshape_to(ctx, param, ())
    axis = normalize_axis(axis, rank)
    if block_size <= 0:
        if len(param.shape) != 1 or param.shape[0] != x.shape[axis]:
            raise ConvertError(f"{what} of shape {list(param.shape)} does not match axis {axis} of the input "
                               f"{list(x.shape)}")
        shape = [1] * rank
        shape[axis] = x.shape[axis]
        return reshape_to(ctx, param, shape)
    blocks = -(-x.shape[axis] // block_size)
    expected = list(x.shape)
    expected[axis] = blocks
    if list(param.shape) != expected:
        raise ConvertError(f"{what} of shape {list(param.shape)} does not block the input {list(x.shape)} by "
                           f"{block_size} along axis {axis} (expected {expected})")
    index = np.arange(x.shape[axis]) // block_size
    if param.is_const:
        return ctx.const(np.take(param.const, index, axis=axis), what)
    return ctx.emit1("Gather", [param, ctx.const(index.astype(np.int64), "block_index")], {"axis": axis})


def _optional(inputs, i):
    return inputs[i] if len(inputs) > i else None


# QuantizeLinear / DequantizeLinear ------------------------------------------------
@converter("QuantizeLinear")
def _quantize(ctx, inputs, attrs):
    x, scale, zero_point = inputs[0], inputs[1], _optional(inputs, 2)
    if zero_point is not None:
        out_dtype = zero_point.dtype
    else:
        out_dtype = _onnx_type(attrs["output_dtype"]) if attrs.get("output_dtype") else "uint8"
    if out_dtype in BYTE_CODED and out_dtype not in PACKED_RANGES:
        return [_quantize_float(ctx, x, scale, zero_point, attrs, out_dtype)]
    if out_dtype not in QUANT_RANGES and out_dtype not in PACKED_RANGES:
        raise ConvertError(f"QuantizeLinear output of type {out_dtype} is not supported")
    axis, block = attrs.get("axis", 1), attrs.get("block_size", 0)
    scale = quant_param(ctx, scale, x, axis, block, "y_scale")
    if attrs.get("precision"):
        work = _onnx_type(attrs["precision"])
    else:  # numpy's promotion in onnx.reference (x / scale)
        work = dtype_of_numpy(np.result_type(np.dtype(x.dtype), np.dtype(scale.dtype)))
    quotient = ctx.emit1("Div", [cast_to(ctx, x, work), cast_to(ctx, scale, work)])
    wide = "float32" if work in ("float16", "bfloat16") else work  # where adding the zero point is exact
    value = cast_to(ctx, ctx.emit1("Round", [quotient]), wide)
    if zero_point is not None:
        zero_point = _as_float(ctx, quant_param(ctx, zero_point, x, axis, block, "y_zero_point"))
        value = ctx.emit1("Add", [value, cast_to(ctx, zero_point, wide)])
    low, high = {**QUANT_RANGES, **PACKED_RANGES}[out_dtype]
    clipped = ctx.emit1("Clip", [value], {"min": float(low), "max": float(high)})
    if out_dtype in QUANT_RANGES:
        return [ctx.emit1("Cast", [clipped], {"to": out_dtype})]
    # sub-byte integers: the two's-complement low bits, one element per byte
    bits = ctx.emit1("And", [ctx.emit1("Cast", [clipped], {"to": "int32"}), ctx.const(np.int32(high - low))])
    return [ctx.emit1("EncodeBits", [ctx.emit1("Cast", [bits], {"to": "uint8"})], {"to": out_dtype})]


def _quantize_float(ctx, x, scale, zero_point, attrs, out_dtype):
    """Quantization to a small float type: saturate(x / scale) rounded to its nearest value
    (float4 adds the zero point first, as onnx.reference does)."""
    if not attrs.get("saturate", 1) and out_dtype != "float4_e2m1fn":
        raise ConvertError(f"QuantizeLinear to {out_dtype} without saturation is not supported")
    axis, block = attrs.get("axis", 1), attrs.get("block_size", 0)
    scale = quant_param(ctx, scale, x, axis, block, "y_scale")
    value = cast_to(ctx, ctx.emit1("Div", [x, cast_to(ctx, scale, x.dtype)]), "float32")
    if zero_point is not None and out_dtype == "float4_e2m1fn":
        zero_point = _as_float(ctx, quant_param(ctx, zero_point, x, axis, block, "y_zero_point"))
        value = ctx.emit1("Add", [value, zero_point])
    table = ctx.const(encode_table(out_dtype), "encode_table")
    return ctx.emit1("EncodeFloat", [value, table], {"to": out_dtype})


def _as_float(ctx, value):
    """A byte-coded value (int4, float8 ...) as float32; other values unchanged."""
    if value.dtype not in BYTE_CODED:
        return value
    if value.is_const:
        return ctx.const(value.const.astype(np.float32), "decoded")
    return ctx.emit1("Gather", [ctx.const(decode_table(value.dtype), "decode_table"), value], {"axis": 0})


@converter("DequantizeLinear")
def _dequantize(ctx, inputs, attrs):
    x, scale, zero_point = inputs[0], inputs[1], _optional(inputs, 2)
    if x.dtype not in QUANT_RANGES and x.dtype not in BYTE_CODED and x.dtype != "int32":
        raise ConvertError(f"DequantizeLinear input of type {x.dtype} is not supported")
    if zero_point is not None and zero_point.dtype != x.dtype:
        raise ConvertError(f"x_zero_point has type {zero_point.dtype}, x has {x.dtype}")
    if x.dtype in BYTE_CODED and x.dtype not in PACKED_RANGES:
        zero_point = None  # float8 / float4: the zero point is zero (onnx.reference ignores it)
    axis, block = attrs.get("axis", 1), attrs.get("block_size", 0)
    to = _onnx_type(attrs["output_dtype"]) if attrs.get("output_dtype") else scale.dtype
    scale = quant_param(ctx, scale, x, axis, block, "x_scale")
    # onnx.reference: x.astype(float32) - zero_point; numpy promotes float32 - int32 to float64
    work = "float64" if zero_point is not None and x.dtype == "int32" else "float32"
    if zero_point is None:
        zero_point = ctx.const(np.zeros((), dtype=x.dtype if x.dtype not in BYTE_CODED else np.float32),
                               "x_zero_point")
    else:
        zero_point = _as_float(ctx, quant_param(ctx, zero_point, x, axis, block, "x_zero_point"))
    return [ctx.emit1("DequantizeLinear", [_as_float(ctx, x), scale, zero_point], {"to": to, "work": work})]


@converter("DynamicQuantizeLinear")
def _dynamic_quantize(ctx, inputs, attrs):
    """scale = (max(x, 0) - min(x, 0)) / 255 (1/255 when that is 0), zero point
    round(saturate(-min / scale)), y = saturate(round(x / scale) + zero point), all uint8."""
    (x,) = inputs
    if x.dtype != "float32":
        raise ConvertError(f"DynamicQuantizeLinear on {x.dtype} is not supported (float32 is)")
    axes = {"axes": list(range(len(x.shape))), "keepdims": 0}
    zero = ctx.const(np.float32(0))
    high = ctx.emit1("Max", [ctx.emit1("ReduceMax", [x], axes), zero])
    low = ctx.emit1("Min", [ctx.emit1("ReduceMin", [x], axes), zero])
    span = ctx.emit1("Sub", [high, low])
    span = ctx.emit1("Where", [ctx.emit1("Equal", [span, zero]), ctx.const(np.float32(1)), span])
    scale = ctx.emit1("Div", [span, ctx.const(np.float32(255))])
    initial = ctx.emit1("Sub", [zero, ctx.emit1("Div", [low, scale])])
    zero_point = ctx.emit1("Round", [ctx.emit1("Clip", [initial], {"min": 0.0, "max": 255.0})])
    quotient = ctx.emit1("Round", [ctx.emit1("Div", [x, scale])])
    y = ctx.emit1("Clip", [ctx.emit1("Add", [quotient, zero_point])], {"min": 0.0, "max": 255.0})
    return [ctx.emit1("Cast", [y], {"to": "uint8"}), scale, ctx.emit1("Cast", [zero_point], {"to": "uint8"})]


# Integer products ---------------------------------------------------------------------
def integer_operand(ctx, q, zero_point):
    """``int32(q) - int32(zero_point)``."""
    value = cast_to(ctx, q, "int32")
    if zero_point is None or (zero_point.is_const and not np.any(zero_point.const)):
        return value
    return ctx.emit1("Sub", [value, cast_to(ctx, zero_point, "int32")])


def _check_int8(value, what: str) -> None:
    if value.dtype not in ("uint8", "int8"):
        raise ConvertError(f"{what} of type {value.dtype} is not supported (uint8 and int8 are)")


def integer_matmul(ctx, a, a_zero_point, b, b_zero_point):
    """int32 (a - a_zero_point) @ (b - b_zero_point); a per-row zero point of a 2-D ``a`` is a
    vector of its M rows, a per-column one of ``b`` a vector of its N columns."""
    if len(a.shape) < 2 or len(b.shape) < 2:
        raise ConvertError(f"quantized MatMul of ranks {len(a.shape)} and {len(b.shape)} is not supported "
                           f"(2 or more are)")
    if a.shape[-1] != b.shape[-2]:
        raise ConvertError(f"inner dimensions differ: {list(a.shape)} @ {list(b.shape)}")
    if a_zero_point is not None and a_zero_point.type.size > 1:
        a_zero_point = reshape_to(ctx, a_zero_point, (a_zero_point.type.size, 1))
    return ctx.emit1("MatMul", [integer_operand(ctx, a, a_zero_point), integer_operand(ctx, b, b_zero_point)])


@converter("MatMulInteger")
def _matmul_integer(ctx, inputs, attrs):
    a, b = inputs[0], inputs[1]
    _check_int8(a, "A")
    _check_int8(b, "B")
    return [integer_matmul(ctx, a, _optional(inputs, 2), b, _optional(inputs, 3))]


@converter("QLinearMatMul")
def _qlinear_matmul(ctx, inputs, attrs):
    a, a_scale, a_zero_point, b, b_scale, b_zero_point, y_scale, y_zero_point = inputs
    _check_int8(a, "a")
    _check_int8(b, "b")
    for scale, what in ((a_scale, "a_scale"), (y_scale, "y_scale")):
        if scale.type.size != 1:
            raise ConvertError(f"{what} must be a scalar")
    acc = integer_matmul(ctx, a, a_zero_point, b, b_zero_point)
    b_scale = b_scale if b_scale.type.size == 1 else reshape_to(ctx, b_scale, (b_scale.type.size,))
    multiplier = arith(ctx, "Div", arith(ctx, "Mul", cast_to(ctx, a_scale, b_scale.dtype), b_scale),
                       cast_to(ctx, y_scale, b_scale.dtype))
    value = ctx.emit1("Mul", [cast_to(ctx, acc, "float64"), cast_to(ctx, multiplier, "float64")])
    out = y_zero_point.dtype if y_zero_point is not None else a.dtype
    return [requantize(ctx, value, y_zero_point, out)]


def integer_conv(ctx, x, x_zero_point, w, w_zero_point, bias, attrs):
    """int32 convolution of (x - x_zero_point) by (w - w_zero_point) (zero point per tensor or per
    output channel), plus an int32 bias; padding is zero after the zero point is subtracted."""
    nd = len(x.shape) - 2
    if nd not in (1, 2):
        raise ConvertError(f"{nd}-D convolution is not supported (1-D and 2-D are)")
    if x_zero_point is not None and x_zero_point.type.size != 1:
        raise ConvertError("x_zero_point must be a scalar")
    if w_zero_point is not None and w_zero_point.type.size > 1:
        w_zero_point = reshape_to(ctx, w_zero_point, (w_zero_point.type.size,) + (1,) * (len(w.shape) - 1))
    xi, wi = integer_operand(ctx, x, x_zero_point), integer_operand(ctx, w, w_zero_point)
    return emit_conv(ctx, xi, wi, [cast_to(ctx, bias, "int32")] if bias is not None else [], attrs)


@converter("ConvInteger")
def _conv_integer(ctx, inputs, attrs):
    x, w = inputs[0], inputs[1]
    _check_int8(x, "x")
    _check_int8(w, "w")
    return [integer_conv(ctx, x, _optional(inputs, 2), w, _optional(inputs, 3), None, attrs)]


@converter("QLinearConv")
def _qlinear_conv(ctx, inputs, attrs):
    x, x_scale, x_zero_point, w, w_scale, w_zero_point, y_scale, y_zero_point = inputs[:8]
    bias = _optional(inputs, 8)
    _check_int8(x, "x")
    _check_int8(w, "w")
    for scale, what in ((x_scale, "x_scale"), (y_scale, "y_scale")):
        if scale.type.size != 1:
            raise ConvertError(f"{what} must be a scalar")
    if bias is not None and bias.dtype != "int32":
        raise ConvertError(f"bias of type {bias.dtype} (int32 expected)")
    acc = integer_conv(ctx, x, x_zero_point, w, w_zero_point, bias, attrs)
    rank = len(acc.shape)
    if w_scale.type.size > 1:  # per output channel
        w_scale = reshape_to(ctx, w_scale, (w_scale.type.size,) + (1,) * (rank - 2))
    multiplier = arith(ctx, "Div", arith(ctx, "Mul", cast_to(ctx, x_scale, w_scale.dtype), w_scale),
                       cast_to(ctx, y_scale, w_scale.dtype))
    value = ctx.emit1("Mul", [cast_to(ctx, acc, "float64"), cast_to(ctx, multiplier, "float64")])
    out = y_zero_point.dtype if y_zero_point is not None else x.dtype
    return [requantize(ctx, value, y_zero_point, out)]

