"""The converter registry and helpers shared by the converter modules."""
from __future__ import annotations

import numpy as np


class ConvertError(Exception):
    pass


class NotConstantError(ConvertError):
    """An operand that the converter needs at compile time is computed at run time."""

    def __init__(self, value, what: str):
        self.value = value
        super().__init__(f"{what} must be a constant (tcomp compiles static shapes)")


CONVERTERS: dict = {}


def converter(*names):
    def wrap(fn):
        for name in names:
            CONVERTERS[name] = fn
        return fn

    return wrap


def const_input(value, what: str) -> np.ndarray:
    if value is None:
        return None
    if not value.is_const:
        raise NotConstantError(value, what)
    return value.const


def normalize_axis(axis: int, rank: int) -> int:
    if not -rank <= axis < max(rank, 1):
        raise ConvertError(f"axis {axis} is out of range for rank {rank}")
    return axis + rank if axis < 0 else axis


def reshape_to(ctx, value, shape):
    shape = tuple(int(s) for s in shape)
    if shape == value.shape:
        return value
    return ctx.emit1("Reshape", [value], {"shape": shape})


