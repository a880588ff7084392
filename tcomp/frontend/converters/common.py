"""The converter registry and helpers shared by the converter modules."""
from __future__ import annotations

import numpy as np

from ...graph.symbolic import SymInt


class ConvertError(Exception):
    pass


class NotConstantError(ConvertError):
    """An operand that the converter needs at compile time is computed at run time."""

    def __init__(self, value, what: str):
        self.value = value
        super().__init__(f"{what} must be a constant (tcomp compiles static shapes)")


CONVERTERS: dict = {}


def converter(*names, domain: str = ""):
    """Registers a converter of the ops ``names`` of ``domain`` ("" is ai.onnx; others are keyed
    ``"domain::Op"`` in ``CONVERTERS``)."""
    def wrap(fn):
        for name in names:
            CONVERTERS[converter_key(domain, name)] = fn
        return fn

    return wrap


def converter_key(domain: str, op_type: str) -> str:
    return op_type if domain in ("", "ai.onnx") else f"{domain}::{op_type}"


def const_input(value, what: str) -> np.ndarray:
    if value is None:
        return None
    if not value.is_const:
        raise NotConstantError(value, what)
    return value.const


def dims(values) -> list:
    """Elements of a (possibly symbolic) shape operand as ints and SymInts."""
    return [v if isinstance(v, SymInt) else int(v) for v in np.asarray(values, dtype=object).reshape(-1)]


def normalize_axis(axis: int, rank: int) -> int:
    if not -rank <= axis < max(rank, 1):
        raise ConvertError(f"axis {axis} is out of range for rank {rank}")
    return axis + rank if axis < 0 else axis


def reshape_to(ctx, value, shape):
    shape = tuple(s if isinstance(s, SymInt) else int(s) for s in shape)
    if shape == value.shape:
        return value
    if value.is_const and all(isinstance(s, int) for s in shape):  # constants stay constants
        return ctx.const(value.const.reshape(shape), "reshaped")
    return ctx.emit1("Reshape", [value], {"shape": shape})


def split_same_pad(total: int, auto_pad: str) -> tuple:
    """(begin, end) padding of an axis for ``SAME_UPPER`` (extra at the end) or ``SAME_LOWER``."""
    small, big = total // 2, total - total // 2
    return (small, big) if auto_pad == "SAME_UPPER" else (big, small)
