"""The ATen converter registry and helpers shared by the converter modules.

A converter receives the import context and the FX node's arguments, with
tensors as graph-IR ``Value``s and everything else (ints, floats, lists,
dtypes) as is, and returns a ``Value``, or a list of them for ops with
several outputs (``None`` where tcomp does not compute an output, such as
the indices of ``max_pool2d_with_indices``).
"""
from __future__ import annotations

import numpy as np
import torch

from ...graph.ir import Value, numpy_dtype
from ...graph.symbolic import SymInt
from ..converters.common import ConvertError

ATEN: dict = {}

# torch dtypes tcomp compiles, by their graph-IR names.
DTYPES = {torch.float32: "float32", torch.float64: "float64", torch.int64: "int64", torch.int32: "int32",
          torch.int16: "int16", torch.int8: "int8", torch.uint8: "uint8", torch.bool: "bool"}
TORCH_DTYPES = {name: dtype for dtype, name in DTYPES.items()}


def aten(*names):
    """Registers a converter for the ATen overloads ``names`` ("add.Tensor" stands for aten.add.Tensor)."""
    def wrap(fn):
        for name in names:
            ATEN[f"aten.{name}"] = fn
        return fn

    return wrap


def dtype_name(dtype) -> str:
    """The graph-IR name of a torch dtype; ConvertError for those tcomp does not compile."""
    if dtype not in DTYPES:
        raise ConvertError(f"dtype {dtype} is not supported (supported: {sorted(DTYPES.values())})")
    return DTYPES[dtype]


def cast(ctx, value, dtype: str):
    return value if value.dtype == dtype else ctx.emit1("Cast", [value], {"to": dtype})


def scalar(ctx, number, dtype: str):
    if isinstance(number, SymInt):  # a size known at run time: a symbolic constant, folded into the code
        return cast(ctx, ctx.const(np.array(number, dtype=object), "size"), dtype)
    return ctx.const(np.array(number, dtype=numpy_dtype(dtype)), "scalar")


def filled(ctx, shape, value, dtype: str):
    """A tensor of ``shape`` filled with ``value``: a constant, or a broadcast scalar for a symbolic shape."""
    if all(isinstance(s, int) for s in shape):
        return ctx.const(np.full(shape, value, dtype=numpy_dtype(dtype)), "filled")
    return ctx.emit1("Expand", [scalar(ctx, value, dtype)], {"shape": tuple(shape)})


def operand(ctx, x, dtype: str):
    """A tensor operand cast to ``dtype``, or a Python number as a constant of ``dtype``."""
    return cast(ctx, x, dtype) if isinstance(x, Value) else scalar(ctx, x, dtype)


def promoted(a, b) -> str:
    """torch's result dtype of two operands (values or Python numbers), as ``torch.result_type`` says."""
    def probe(x):  # an empty tensor of x's dtype (0-d tensors rank below others in promotion); sizes are ints
        if isinstance(x, SymInt):
            return 0
        return torch.empty(() if x.shape == () else (0,), dtype=TORCH_DTYPES[x.dtype]) if isinstance(x, Value) else x

    return dtype_name(torch.result_type(probe(a), probe(b)))


def axis_of(dim: int, rank: int) -> int:
    if not -max(rank, 1) <= dim < max(rank, 1):
        raise ConvertError(f"dimension {dim} is out of range for rank {rank}")
    return dim % rank if rank else 0


def transpose_to_last(ctx, x, axis: int, build):
    """``build(x')`` applied with ``axis`` moved last, and the result moved back."""
    rank = len(x.shape)
    if axis == rank - 1:
        return build(x)
    perm = [a for a in range(rank) if a != axis] + [axis]
    result = build(ctx.emit1("Transpose", [x], {"perm": perm}))
    return ctx.emit1("Transpose", [result], {"perm": [perm.index(a) for a in range(rank)]})
