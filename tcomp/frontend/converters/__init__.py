"""ONNX node converters: one function per op type, aware of the model's opset.

A converter receives the import context, the input values (``None`` for an
omitted optional input) and the ONNX attributes, and emits canonical
graph-IR nodes. Where an ONNX op changed between opsets (attributes that
became inputs, Softmax's axis semantics before opset 13 ...), the converter
branches on ``ctx.opset``. Inputs that the canonical op needs as static
attributes must be constants; otherwise the converter raises ``NotConstantError``
(``const_input`` does) and the importer reports the node, naming the graph
inputs the operand comes from (``ShapeOperandError``).

Converters live in one module per area; importing this package registers them all.
"""
from . import elementwise, integer, nn, tensor  # noqa: F401
from . import einsum, indexing, selection  # noqa: F401  (indexing, scans)
from . import resize, vision  # noqa: F401  (vision)
from . import quant  # noqa: F401  (quantization)
from . import recurrent  # noqa: F401  (RNN, GRU, LSTM)
from . import signal  # noqa: F401  (DFT, STFT, windows)
from . import control  # noqa: F401  (If, Loop, Scan)
from . import activations, attention, losses, norms, recurrent_lm  # noqa: F401  (language models)
from . import optional  # noqa: F401  (optional ops on tensors)
from . import text  # noqa: F401  (TfIdfVectorizer)
from .common import CONVERTERS, ConvertError, NotConstantError, converter

__all__ = ["CONVERTERS", "ConvertError", "NotConstantError", "converter"]
