"""ATen op converters: one function per ATen overload of the (core) ATen opset.

``torch_importer`` walks the FX graph of a ``torch.export`` program and calls
the converter of each node's target; converters emit canonical graph-IR ops
through the same ``ctx.emit1`` API as the ONNX converters and reuse their
helpers. Converters live in one module per area; importing this package
registers them all.
"""
from . import elementwise, nn, tensor  # noqa: F401
from .common import ATEN, DTYPES, aten, dtype_name

__all__ = ["ATEN", "DTYPES", "aten", "dtype_name"]
