"""The operator library (importing it registers every op)."""
from . import elementwise, integer, movement, nn  # noqa: F401
from .registry import OPS, OpDef

__all__ = ["OPS", "OpDef"]
