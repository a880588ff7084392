"""Loop-nest IR: expressions, statements, simplifier, printer, tensor views, and the
compute-definition language (``te.py``: placeholder, compute, reduce_axis, sum, create_func)."""
from .te import ComputeError, Tensor, compute, create_func, max, min, placeholder, reduce_axis, size_var, sum

__all__ = ["ComputeError", "Tensor", "compute", "create_func", "max", "min", "placeholder", "reduce_axis",
           "size_var", "sum"]
