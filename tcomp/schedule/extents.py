"""Loop extents that may be symbolic: the arithmetic the schedules need, static where possible.

A schedule sees each extent as an ``int`` when it is known at compile time and
as a loop-IR expression over size variables otherwise (``batch * 12``)::

    ceil_div(197, 16) -> 13             ceil_div(seq, 16) -> (seq + 15) // 16
    divisible(768, 16) -> True          divisible(seq, 16) -> False (a tail is needed)
"""
from __future__ import annotations

from ..tir.expr import IntImm, as_expr


def extent_of(value):
    """An int for static extents (ints, IntImms), else the loop-IR expression."""
    if isinstance(value, IntImm):
        return value.value
    if isinstance(value, int):
        return value
    return as_expr(value)


def is_static(value) -> bool:
    return isinstance(extent_of(value), int)


def ceil_div(a, b: int):
    a = extent_of(a)
    return -(-a // b) if isinstance(a, int) else (a + (b - 1)) // b


def divisible(a, unit: int) -> bool:
    """Whether ``a`` is surely a multiple of ``unit`` (False when it depends on a symbolic size)."""
    a = extent_of(a)
    return isinstance(a, int) and a % unit == 0


def product(values):
    """The product of extents: an int when all are static (no ``1 * ...`` nodes otherwise)."""
    result = 1
    for value in map(extent_of, values):
        result = value if isinstance(result, int) and result == 1 else result * value
    return result


def hint(value, default: int) -> int:
    """A representative size for decisions such as tile sizes: the value if static, else ``default``."""
    value = extent_of(value)
    return value if isinstance(value, int) else default
