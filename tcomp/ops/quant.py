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
bytes that type.
"""
from __future__ import annotations

import numpy as np

from ..graph.ir import TensorType, numpy_dtype
from ..tir.compute import TensorView, broadcast_index
from ..tir.expr import cast
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
