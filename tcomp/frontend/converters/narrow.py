"""Casts to and from the byte-coded types (float8, float4, int4, int2 ...) by lookup tables.

These types (``ops.quant.BYTE_CODED``) take one byte per element, as in ml_dtypes, and
kernels keep them as uint8 (no arithmetic); a Cast gathers by their bytes or makes bytes
(``EncodeBits``), with tables that numpy builds at compile time from the very conversion
ONNX specifies (``onnx.reference``'s: ml_dtypes' ``astype``, ``numpy_helper.saturate_cast``
for saturating float8 casts, ``numpy_helper.to_float8e8m0`` for float8e8m0):

- from a byte-coded type: a 256-entry table of the target type, gathered by byte;
- to a float byte type from a float: the conversion is monotone in the input, so the byte
  is a table entry indexed by how many thresholds (the least inputs reaching each next
  byte, found by bisection over the input type's ordered bit patterns) the input reaches,
  on each side of zero, with NaN apart;
- to an integer byte type: truncation toward zero and the low bits, like ml_dtypes.
"""
from __future__ import annotations

import numpy as np
import onnx

from ...graph.ir import numpy_dtype
from ...ops.quant import BYTE_CODED
from ...tir.expr import is_float
from .common import ConvertError, reshape_to

FLOAT8 = ("float8_e4m3fn", "float8_e4m3fnuz", "float8_e5m2", "float8_e5m2fnuz")


def cast_narrow(ctx, x, to: str, attrs: dict):
    """``x`` cast to ``to`` where either is byte-coded; ``attrs``: Cast's ``saturate`` and ``round_mode``."""
    if x.dtype in BYTE_CODED and to in BYTE_CODED:
        raise ConvertError(f"Cast from {x.dtype} to {to} is not supported (one side must be a computed type)")
    if x.dtype in BYTE_CODED:
        return _decode(ctx, x, to)
    if to.startswith("float"):
        if not is_float(x.dtype):
            x = ctx.emit1("Cast", [x], {"to": "float32"})
        return _encode_float(ctx, x, to, bool(attrs.get("saturate", 1)), attrs.get("round_mode", "up"))
    return _encode_int(ctx, x, to)


def _decode(ctx, x, to: str):
    with np.errstate(all="ignore"):
        table = np.arange(256, dtype=np.uint8).view(numpy_dtype(x.dtype)).astype(numpy_dtype(to))
    return ctx.emit1("Gather", [ctx.const(table, "decode"), x], {"axis": 0})


def _encode_int(ctx, x, to: str):
    width = int(to.strip("uint"))  # int4 -> 4, uint2 -> 2
    if is_float(x.dtype):
        x = ctx.emit1("Cast", [x], {"to": "int64"})  # truncation toward zero
    low = ctx.emit1("And", [ctx.emit1("Cast", [x], {"to": "uint8"}),
                                   ctx.const(np.array((1 << width) - 1, dtype=np.uint8))])
    return ctx.emit1("EncodeBits", [low], {"to": to})


def _encode_float(ctx, x, to: str, saturate: bool, round_mode: str):
    src = np.dtype(numpy_dtype(x.dtype))
    target = np.dtype(numpy_dtype(to))

    def convert(values):
        with np.errstate(all="ignore"):
            if to == "float8_e8m0fnu":
                return onnx.numpy_helper.to_float8e8m0(values, saturate, round_mode).astype(target).view(np.uint8)
            if to in FLOAT8 and saturate:
                return onnx.numpy_helper.saturate_cast(values.astype(np.float32), target).view(np.uint8)
            return values.astype(target).view(np.uint8)

    positive = _side(ctx, x, src, target, convert, 1.0)
    negative = _side(ctx, ctx.emit1("Neg", [x]), src, target, convert, -1.0)
    zero = ctx.const(np.zeros((), dtype=src))
    code = ctx.emit1("Where", [ctx.emit1("Less", [x, zero]), negative, positive])
    nan = ctx.const(convert(np.array([np.nan], dtype=src)).reshape(()))
    code = ctx.emit1("Where", [ctx.emit1("IsNaN", [x]), nan, code])
    return ctx.emit1("EncodeBits", [code], {"to": to})


def _side(ctx, magnitude, src: np.dtype, target: np.dtype, convert, sign: float):
    """Bytes of ``sign * magnitude`` for magnitudes >= 0 (others give anything): thresholds, count, table."""
    bits = np.dtype(f"uint{src.itemsize * 8}")
    top = int(np.array(np.inf, dtype=src).view(bits))  # +inf: the last of the ordered non-negative patterns
    with np.errstate(all="ignore"):
        values = np.arange(256, dtype=np.uint8).view(target).astype(np.float64) * sign
    order_key = np.where(np.isnan(values), np.inf, values)  # along growing magnitudes, overflow comes last

    def codes(patterns):
        return convert(sign * np.asarray(patterns, dtype=np.uint64).astype(bits).view(src)).astype(np.int64)

    sampled = np.arange(0, top + 1, max(1, top // 65536), dtype=np.uint64)
    reached = np.unique(np.concatenate([codes(sampled), codes([top])]))
    lo, hi = np.zeros(len(reached), dtype=np.uint64), np.full(len(reached), top, dtype=np.uint64)
    for _ in range(src.itemsize * 8):  # bisection: the least pattern whose byte's key reaches each byte's key
        mid = (lo + hi) // 2
        passed = order_key[codes(mid)] >= order_key[reached]
        hi, lo = np.where(passed, mid, hi), np.where(passed, lo, mid + 1)
    order = np.argsort(lo, kind="stable")
    thresholds, table = lo[order], reached[order]
    keep = thresholds > 0  # the byte of zero needs no threshold
    table = np.concatenate([codes([0]), table[keep]]).astype(np.uint8)
    thresholds = thresholds[keep].astype(bits).view(src)
    if len(thresholds) == 0:
        return ctx.const(table[0])
    expanded = reshape_to(ctx, magnitude, magnitude.shape + (1,))
    passed = ctx.emit1("Cast", [ctx.emit1("GreaterOrEqual", [expanded, ctx.const(thresholds, "thresholds")])],
                       {"to": "int32"})
    count = ctx.emit1("ReduceSum", [passed], {"axes": [len(magnitude.shape)], "keepdims": 0})
    return ctx.emit1("Gather", [ctx.const(table, "bytes"), count], {"axis": 0})
