"""Quantization ops.

``DequantizeLinear(x, scale, zero_point, to=dtype, work=dtype)`` is elementwise:
``to((work(x) - work(zero_point)) * work(scale))``, with ``scale`` and
``zero_point`` already shaped to broadcast against ``x`` (the converter
reshapes per-axis vectors and repeats blocked ones). ``work`` is the float type
onnx.reference computes in.
It stays a graph op of its own, not a Sub/Mul chain, so that
``graph/quantized.py`` can recognise quantized operands of MatMul and Conv
and compute those in integer arithmetic.

Byte-coded types (int4, uint4, int2, uint2, float8 and float4 variants: one element
per byte in numpy, through ml_dtypes) are stored as uint8 in kernels
(``storage_dtype``): they are decoded by a Gather from a 256-entry table of their
values (``decode_table``), and ``EncodeBits`` (attribute ``to``) gives computed
bytes that type. ``EncodeFloat(x, table, to=...)`` rounds float32 values to the nearest
value of a small float type (ties to the even code, saturating, NaN to its NaN code):
the code of the largest value not above the magnitude comes from its float32 bits, then
rounds against its two neighbours in ``table`` (the finite non-negative values in code order).
"""
from __future__ import annotations

import ml_dtypes
import numpy as np

from ..graph.ir import TensorType, numpy_dtype
from ..tir.views import TensorView, broadcast_index
from ..tir.expr import BinOp, Cmp, IntImm, Select, call, cast, const, logical_and, logical_or, minimum
from .registry import ELEMENTWISE, broadcast_shapes, register

INTEGER_TYPES = ("uint8", "int8", "uint16", "int16")
BYTE_CODED = ("int4", "uint4", "int2", "uint2", "float8_e4m3fn", "float8_e4m3fnuz", "float8_e5m2",
              "float8_e5m2fnuz", "float4_e2m1fn", "float8_e8m0fnu")


def storage_dtype(dtype: str) -> str:
    """The element type kernels read and write for values of ``dtype``."""
    return "uint8" if dtype in BYTE_CODED else dtype


def decode_table(dtype: str) -> np.ndarray:
    """float32 values of the 256 bytes of a byte-coded type."""
    return np.arange(256, dtype=np.uint8).view(dtype).astype(np.float32)


def _sign_bit(dtype: str) -> int:
    return 0x08 if dtype == "float4_e2m1fn" else 0x80


def encode_table(dtype: str) -> np.ndarray:
    """The finite non-negative values of a small float type, in code order."""
    values = decode_table(dtype)[:_sign_bit(dtype)]
    return values[:int(np.argmax(~np.isfinite(values))) if not np.all(np.isfinite(values)) else len(values)]


def dequantize_numpy(x: np.ndarray, scale: np.ndarray, zero_point: np.ndarray, to: str, work: str) -> np.ndarray:
    """The op on constants (the graph passes fold dequantized weights with it)."""
    value = (x.astype(work) - zero_point.astype(work)) * scale.astype(work)
    return value.astype(numpy_dtype(to))


def kept_unfolded(op: str, inputs: list) -> bool:
    """Whether the importer keeps this node over constants as a graph node (not folded):
    dequantized 8- and 16-bit weights, which ``graph/quantized.py`` multiplies in integers
    (and folds where it cannot)."""
    return op == "DequantizeLinear" and inputs[0] is not None and inputs[0].dtype in INTEGER_TYPES


def _infer_dequantize(node):
    shape = broadcast_shapes(*(v.shape for v in node.inputs))
    return [TensorType(shape, node.attrs["to"])]


def _view_dequantize(node, views):
    shape = _infer_dequantize(node)[0].shape
    to = node.attrs["to"]
    work = node.attrs["work"]

    def fn(*idx):
        x, scale, zero_point = (cast(work, v.fn(*broadcast_index(idx, v.shape, shape))) for v in views)
        return cast(to, (x - zero_point) * scale)

    return [TensorView(shape, to, fn)]


register("DequantizeLinear", ELEMENTWISE, _infer_dequantize, _view_dequantize)


def _view_encode(node, views):
    (src,) = views
    return [TensorView(src.shape, "uint8", src.fn)]


register("EncodeBits", ELEMENTWISE, lambda node: [TensorType(node.inputs[0].shape, node.attrs["to"])], _view_encode)


def _view_encode_float(node, views):
    x, table = views
    dtype = node.attrs["to"]
    n = table.shape[0]
    info = ml_dtypes.finfo(dtype)
    mantissa, smallest_normal = info.nmant, np.float32(info.smallest_normal)
    tiny = smallest_normal / np.float32(2 ** mantissa)
    offset = (int(smallest_normal.view(np.int32)) >> (23 - mantissa)) - (1 << mantissa)
    nan_code = int(np.array(np.nan, np.float32).astype(dtype).view(np.uint8))
    negative_zero = int(np.array(-0.0, np.float32).astype(dtype).view(np.uint8)) != 0

    def entry(j):
        return table.fn(minimum(j, IntImm(n - 1)))

    def fn(*idx):
        value = x.fn(*idx)
        magnitude = minimum(call("abs", value), entry(IntImm(n - 1)))  # saturate
        # the last code whose value is at most the magnitude: for normal values the float32
        # exponent and leading mantissa bits, shifted into place; subnormals are a linear scale
        bits = cast("int64", call("bitcast", magnitude, dtype="int32"))
        normal = BinOp("shr", bits, IntImm(23 - mantissa)) - IntImm(offset)
        subnormal = cast("int64", call("floor", magnitude * (1.0 / float(tiny))))
        code = Select(Cmp("lt", magnitude, const(float(smallest_normal), "float32")), subnormal, normal)
        below, above = magnitude - entry(code), entry(code + 1) - magnitude
        odd = Cmp("eq", code % 2, IntImm(1))
        up = logical_and(Cmp("lt", code, IntImm(n - 1)),
                         logical_or(Cmp("lt", above, below), logical_and(Cmp("eq", above, below), odd)))
        code = Select(up, code + 1, code)
        negative = Cmp("lt", value, const(0, value.dtype)) if negative_zero else \
            logical_and(Cmp("lt", value, const(0, value.dtype)), Cmp("gt", code, IntImm(0)))
        code = Select(negative, BinOp("or", code, IntImm(_sign_bit(dtype))), code)
        code = Select(call("isnan", value, dtype="bool"), IntImm(nan_code), code)
        return cast("uint8", code)

    return [TensorView(x.shape, "uint8", fn)]


register("EncodeFloat", ELEMENTWISE, lambda node: [TensorType(node.inputs[0].shape, node.attrs["to"])],
         _view_encode_float)
