"""Elementwise trigonometric and hyperbolic functions: Tan, Asin, Acos, Atan, Sinh, Cosh,
Asinh, Acosh, Atanh.

The first six are math calls (the CPU target emits LLVM's intrinsics, which call the C
library). The inverse hyperbolic functions are logarithms, evaluated in double
precision so that no cancellation near zero shows in the float result.
"""
from __future__ import annotations

from ..graph.ir import TensorType
from ..tir.views import TensorView
from ..tir.expr import call, cast, const
from .registry import ELEMENTWISE, register

CALLS = {"Tan": "tan", "Asin": "asin", "Acos": "acos", "Atan": "atan", "Sinh": "sinh", "Cosh": "cosh"}


def _asinh(x):  # sign(x) * log(|x| + sqrt(x^2 + 1))
    a = call("abs", x)
    return call("sign", x) * call("log", a + call("sqrt", a * a + const(1.0, x.dtype)))


def _acosh(x):  # log(x + sqrt(x^2 - 1))
    return call("log", x + call("sqrt", x * x - const(1.0, x.dtype)))


def _atanh(x):  # log((1 + x) / (1 - x)) / 2
    one = const(1.0, x.dtype)
    return call("log", (one + x) / (one - x)) * const(0.5, x.dtype)


WIDE = {"Asinh": _asinh, "Acosh": _acosh, "Atanh": _atanh}


def _infer(node):
    x = node.inputs[0]
    return [TensorType(x.shape, x.dtype)]


def _view(node, views):
    (src,) = views
    if node.op in CALLS:
        fn = lambda *idx: call(CALLS[node.op], src.fn(*idx))
    else:
        wide = WIDE[node.op]
        fn = lambda *idx: cast(src.dtype, wide(cast("float64", src.fn(*idx))))
    return [TensorView(src.shape, src.dtype, fn)]


for _name in list(CALLS) + list(WIDE):
    register(_name, ELEMENTWISE, _infer, _view)
