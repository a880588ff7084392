"""Integer and bit-level elementwise ops: BitShift, BitCast.

``BitShift`` (attribute ``direction`` "LEFT"/"RIGHT") follows ONNX: shift amounts
outside ``[0, bits)`` give 0, or the sign fill (-1 / 0) for a right shift of a signed
value; right shifts of signed values are arithmetic. ``BitCast`` (attribute ``to``)
reinterprets the bits of each element as another type of the same width.
"""
from __future__ import annotations

from ..graph.ir import TensorType
from ..tir.views import TensorView, broadcast_index
from ..tir.expr import BinOp, Cmp, Select, call, const, dtype_bits, is_unsigned, logical_and
from .registry import ELEMENTWISE, broadcast_shapes, register


def _infer_bitshift(node):
    x, y = node.inputs
    return [TensorType(broadcast_shapes(x.shape, y.shape), x.dtype)]


def bitshift_expr(direction: str, x, y):
    """``x << y`` or ``x >> y`` with ONNX's results for out-of-range shift amounts."""
    bits = dtype_bits(x.dtype)
    signed = not is_unsigned(x.dtype)
    valid = logical_and(Cmp("ge", y, const(0, y.dtype)) if signed else None, Cmp("lt", y, const(bits, y.dtype)))
    amount = Select(valid, y, const(bits - 1, y.dtype))  # never an undefined shift
    if direction == "RIGHT" and signed:
        return BinOp("shr", x, amount)  # shifting by bits - 1 is the sign fill
    shifted = BinOp("shl" if direction == "LEFT" else "shr", x, amount)
    return Select(valid, shifted, const(0, x.dtype))


def _view_bitshift(node, views):
    shape = _infer_bitshift(node)[0].shape
    x, y = views

    def fn(*idx):
        return bitshift_expr(node.attrs["direction"], x.fn(*broadcast_index(idx, x.shape, shape)),
                             y.fn(*broadcast_index(idx, y.shape, shape)))

    return [TensorView(shape, x.dtype, fn)]


register("BitShift", ELEMENTWISE, _infer_bitshift, _view_bitshift)


def _infer_bitcast(node):
    return [TensorType(node.inputs[0].shape, node.attrs["to"])]


def _view_bitcast(node, views):
    (x,) = views
    to = node.attrs["to"]
    return [TensorView(x.shape, to, lambda *idx: call("bitcast", x.fn(*idx), dtype=to))]


register("BitCast", ELEMENTWISE, _infer_bitcast, _view_bitcast)
