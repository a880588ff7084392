"""The operator library (importing it registers every op)."""
from . import elementwise, integer, movement, nn  # noqa: F401
from . import indexing  # noqa: F401  (indexing, scans)
from . import vision  # noqa: F401  (vision)
from . import linear_attention, trig  # noqa: F401  (language models)
from . import quant  # noqa: F401  (quantization)
from .registry import OPS, OpDef

__all__ = ["OPS", "OpDef"]
