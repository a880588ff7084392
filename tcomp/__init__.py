"""tcomp: a tensor compiler with auto-scheduling.

    mod = tcomp.compile("model.onnx", target="cpu")
    outputs = mod.run({"input": array})
"""
from . import ops as _ops  # noqa: F401  (registers the operator library)
from .compiler import CompiledModule, compile
from .errors import InputError, ModelError, ShapeOperandError, TcompError, UnsupportedOpError

__all__ = ["compile", "CompiledModule", "TcompError", "UnsupportedOpError", "ShapeOperandError", "ModelError",
           "InputError"]
__version__ = "0.1.0"
