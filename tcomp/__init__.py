"""tcomp: a tensor compiler with auto-scheduling.

    mod = tcomp.compile("model.onnx", target="cpu")
    outputs = mod.run({"input": array})
"""
import sys

from . import ops as _ops  # noqa: F401  (registers the operator library)
from . import tir
from .build import Kernel, build
from .compiler import CompiledModule, compile
from .schedule import Schedule, ScheduleError, Trace
from .tuning.tuner import tune
from .errors import InputError, ModelError, ShapeOperandError, TcompError, UnsupportedOpError

# torch.compile(backend="tcomp"): torch finds the backend through the torch_dynamo_backends entry point;
# when torch._dynamo is loaded already it is registered here as well (loading it takes seconds: not otherwise).
if "torch._dynamo" in sys.modules:
    from .frontend.torch_backend import register as _register_torch_backend

    _register_torch_backend()

__all__ = ["compile", "CompiledModule", "TcompError", "UnsupportedOpError", "ShapeOperandError", "ModelError",
           "InputError", "tir", "Schedule", "ScheduleError", "Trace", "build", "Kernel", "tune"]
__version__ = "0.1.0"
