"""Generators of elementwise ops: unary, binary with broadcasting, comparisons, logic, Where, Cast, Clip.

Each output spec bounds the result by interval arithmetic over the operands' specs and
propagates the error bound (Lipschitz constant times the input error plus a few rounding
steps). Discontinuous ops (Floor, Sign, comparisons, float->int Cast, Mod) only read
bit-exact values, so both implementations see the same operands.
"""
from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
from onnx import helper

from .builder import (MAX_FLOAT_MAG, MAX_INT_MAG, MAX_SIZE, Builder, broadcast, op_generator, partner_shape,
                      ulps)
from .case import BOOL, FLOAT, INT32, INT64, INTS, Spec


def _any(spec):
    return True


def _exact(spec):
    return spec.exact


def _mono(f):
    """Bounds of an increasing function."""
    return lambda s, a: (f(s.lo, a), f(s.hi, a))


def _one(s, a):
    return 1.0


@dataclass(frozen=True)
class Unary:
    domain: Callable = _any            # (input spec) -> whether the op may read it
    bounds: Callable = None            # (input spec, attrs) -> (lo, hi)
    lip: Callable = _one               # (input spec, attrs) -> Lipschitz constant over the input's interval
    exact: bool = False                # bit-exact on bit-exact inputs
    ints: bool = False                 # defined on int32/int64 too
    attrs: Callable = lambda b: {}     # (builder) -> random attributes
    min_opset: int = 1
    rounding: float = 4.0              # rounding steps of the result
    away: Callable = field(default=lambda s, a: 0.0)


def _sigmoid(x, a=None):
    if x < 0:  # exp(-x) would overflow for x below -709
        return math.exp(x) / (1.0 + math.exp(x))
    return 1.0 / (1.0 + math.exp(-x))


def _leaky(x, a):
    return x if x >= 0 else a["alpha"] * x


def _elu(x, a):
    return x if x >= 0 else a["alpha"] * (math.exp(x) - 1)


def _selu(x, a):
    return 1.0507 * (x if x >= 0 else 1.67326 * (math.exp(x) - 1))


def _hard_sigmoid(x, a):
    return min(max(a["alpha"] * x + a["beta"], 0.0), 1.0)


def _reciprocal_bounds(s, a):
    if s.lo > 0 or s.hi < 0:
        return 1.0 / s.hi, 1.0 / s.lo
    return -1.0 / s.away, 1.0 / s.away


UNARY = {
    "Relu": Unary(bounds=_mono(lambda x, a: max(x, 0.0)), exact=True),
    "Neg": Unary(bounds=lambda s, a: (-s.hi, -s.lo), exact=True, ints=True, away=lambda s, a: s.away),
    "Abs": Unary(bounds=lambda s, a: (0.0 if s.lo < 0 < s.hi else min(abs(s.lo), abs(s.hi)), s.mag), exact=True,
                 ints=True, away=lambda s, a: s.away),
    "Sign": Unary(_exact, lambda s, a: (-1.0, 1.0), exact=True, ints=True),
    "Floor": Unary(_exact, _mono(lambda x, a: math.floor(x)), exact=True),
    "Ceil": Unary(_exact, _mono(lambda x, a: math.ceil(x)), exact=True),
    "Round": Unary(_exact, lambda s, a: (math.floor(s.lo), math.ceil(s.hi)), exact=True),
    "Sigmoid": Unary(bounds=_mono(_sigmoid), lip=lambda s, a: 0.25),
    "Tanh": Unary(bounds=_mono(lambda x, a: math.tanh(x))),
    "Exp": Unary(lambda s: s.hi <= 4.0, _mono(lambda x, a: math.exp(x)), lambda s, a: math.exp(s.hi)),
    "Log": Unary(lambda s: s.lo >= 0.05, _mono(lambda x, a: math.log(x)), lambda s, a: 1.0 / s.lo),
    "Sqrt": Unary(lambda s: s.lo >= 0.01 or (s.exact and s.lo >= 0), _mono(lambda x, a: math.sqrt(x)),
                  lambda s, a: 0.5 / math.sqrt(max(s.lo, 1e-12))),
    "Erf": Unary(bounds=_mono(lambda x, a: math.erf(x)), lip=lambda s, a: 1.13),
    "Reciprocal": Unary(lambda s: s.away >= 0.25, _reciprocal_bounds, lambda s, a: 1.0 / s.away ** 2,
                        away=lambda s, a: 1.0 / s.mag),
    "Sin": Unary(lambda s: s.mag <= 10, lambda s, a: (-1.0, 1.0)),
    "Cos": Unary(lambda s: s.mag <= 10, lambda s, a: (-1.0, 1.0)),
    "Softplus": Unary(lambda s: s.hi <= 30, _mono(lambda x, a: math.log1p(math.exp(x)))),
    "LeakyRelu": Unary(bounds=_mono(_leaky), lip=lambda s, a: max(1.0, a["alpha"]),
                       attrs=lambda b: {"alpha": b.choice((0.01, 0.3, 1.5))}),
    "Elu": Unary(lambda s: s.lo >= -30, _mono(_elu), lambda s, a: max(1.0, a["alpha"]),
                 attrs=lambda b: {"alpha": b.choice((1.0, 0.5))}),
    "Selu": Unary(lambda s: s.lo >= -30, _mono(_selu), lambda s, a: 1.8),
    "HardSigmoid": Unary(bounds=_mono(_hard_sigmoid), lip=lambda s, a: a["alpha"],
                         attrs=lambda b: {"alpha": b.choice((0.2, 0.3)), "beta": b.choice((0.5, 0.4))}),
    "HardSwish": Unary(bounds=lambda s, a: (-0.375, max(s.hi, 0.0)), lip=lambda s, a: 1.5, min_opset=14),
    "Gelu": Unary(bounds=lambda s, a: (-0.17, max(s.hi, 0.0)), lip=lambda s, a: 1.13, min_opset=20,
                  attrs=lambda b: {"approximate": b.choice(("none", "tanh"))}),
    "Tan": Unary(lambda s: s.mag <= 1.2, _mono(lambda x, a: math.tan(x)), lambda s, a: 1 / math.cos(s.mag) ** 2),
    "Asin": Unary(lambda s: s.mag <= 0.9, _mono(lambda x, a: math.asin(x)), lambda s, a: 2.3),
    "Acos": Unary(lambda s: s.mag <= 0.9, lambda s, a: (math.acos(s.hi), math.acos(s.lo)), lambda s, a: 2.3),
    "Atan": Unary(bounds=_mono(lambda x, a: math.atan(x))),
    "Sinh": Unary(lambda s: s.mag <= 4, _mono(lambda x, a: math.sinh(x)), lambda s, a: math.cosh(s.mag)),
    "Cosh": Unary(lambda s: s.mag <= 4, lambda s, a: (1.0, math.cosh(s.mag)), lambda s, a: math.sinh(s.mag)),
    "Asinh": Unary(bounds=_mono(lambda x, a: math.asinh(x))),
    "Acosh": Unary(lambda s: s.lo >= 1.1, _mono(lambda x, a: math.acosh(x)), lambda s, a: 2.2),
    "Atanh": Unary(lambda s: s.mag <= 0.9, _mono(lambda x, a: math.atanh(x)), lambda s, a: 5.3),
    "Celu": Unary(lambda s: s.lo >= -30, _mono(lambda x, a: x if x >= 0 else a["alpha"] * math.expm1(x / a["alpha"])),
                  attrs=lambda b: {"alpha": b.choice((1.0, 0.5, 2.0))}),
    "Mish": Unary(lambda s: s.hi <= 20, lambda s, a: (-0.31, max(s.hi, 0.0)), lambda s, a: 1.1, min_opset=18),
    "Softsign": Unary(bounds=_mono(lambda x, a: x / (1 + abs(x)))),
    # discontinuous at +-lambd (unless bias == lambd) and at alpha: bit-exact operands only
    "Shrink": Unary(_exact, lambda s, a: (min(s.lo + a["bias"], 0.0), max(s.hi - a["bias"], 0.0)), exact=False,
                    attrs=lambda b: {"lambd": b.choice((0.5, 1.0)), "bias": b.choice((0.0, 0.5, 1.5))}),
    "ThresholdedRelu": Unary(_exact, lambda s, a: (0.0, max(s.hi, 0.0)), exact=True,
                             attrs=lambda b: {"alpha": b.choice((1.0, 0.5, -0.5))}),
}


def unary_spec(op: str, x: Spec, attrs: dict) -> Spec:
    u = UNARY[op]
    lo, hi = u.bounds(x, attrs)
    if x.dtype in INTS:
        return Spec(x.shape, x.dtype, lo, hi, u.away(x, attrs))
    if u.exact and x.exact:
        err = 0.0
    else:
        err = (u.lip(x, attrs) * x.err if x.err else 0.0) + ulps(max(abs(lo), abs(hi)), u.rounding)
    return Spec(x.shape, FLOAT, lo, hi, u.away(x, attrs), err)


@op_generator("unary", weight=6.0)
def gen_unary(b: Builder) -> None:
    op = b.choice([name for name, u in UNARY.items() if u.min_opset <= b.opset])
    u = UNARY[op]
    dtypes = (FLOAT,) + (INTS if u.ints else ())
    x = b.operand(lambda s: s.dtype in dtypes and u.domain(s), lambda: _fresh_for(b, op), reuse=0.8)
    if not u.domain(b.specs[x]):
        return
    attrs = u.attrs(b)
    b.emit1(op, [x], unary_spec(op, b.specs[x], attrs), **attrs)


def _fresh_for(b: Builder, op: str) -> Spec:
    shape = b.shape()
    if op in ("Log", "Sqrt", "Reciprocal"):
        return b.float_spec(shape, 0.5, 3.0)
    return b.random_spec(shape, FLOAT if not UNARY[op].ints or b.chance(0.6) else b.choice(INTS))


# Binary arithmetic -------------------------------------------------------------------------
def _products(a: Spec, c: Spec):
    corners = [a.lo * c.lo, a.lo * c.hi, a.hi * c.lo, a.hi * c.hi]
    return min(corners), max(corners)


def binary_spec(op: str, a: Spec, c: Spec, shape: tuple, attrs: dict) -> Spec | None:
    """The result of ``a op c`` (None when the operands fall outside the op's domain)."""
    dtype = a.dtype
    is_int = dtype in INTS
    away = 0.0
    if op == "Add":
        lo, hi = a.lo + c.lo, a.hi + c.hi
        err = a.err + c.err
    elif op == "Sub":
        lo, hi = a.lo - c.hi, a.hi - c.lo
        err = a.err + c.err
    elif op == "Mul":
        lo, hi = _products(a, c)
        err = a.err * c.mag + c.err * a.mag + a.err * c.err
        away = a.away * c.away
    elif op == "Div":
        if c.away < (1.0 if is_int else 0.25):
            return None
        if is_int:
            lo, hi, err = -a.mag, a.mag, 0.0
        else:
            if c.lo > 0 or c.hi < 0:
                lo, hi = _products(a, Spec((), FLOAT, 1.0 / c.hi, 1.0 / c.lo))
            else:
                lo, hi = -a.mag / c.away, a.mag / c.away
            err = a.err / c.away + c.err * a.mag / c.away ** 2
    elif op in ("Max", "Min"):
        pick = max if op == "Max" else min
        lo, hi, err = pick(a.lo, c.lo), pick(a.hi, c.hi), max(a.err, c.err)
    elif op == "Mod":
        if c.away < (1.0 if is_int else 0.25) or not (a.exact and c.exact):
            return None
        lo, hi = -(c.mag - (1 if is_int else 0)), c.mag - (1 if is_int else 0)
        if attrs.get("fmod"):
            lo, hi = max(lo, -a.mag), min(hi, a.mag)
        err = 0.0 if is_int else ulps(a.mag, 4)
    elif op == "Pow":
        if a.lo < 0.25 or a.hi > 4 or c.mag > 3:
            return None
        corners = [a.lo ** c.lo, a.lo ** c.hi, a.hi ** c.lo, a.hi ** c.hi]
        lo, hi = min(corners), max(corners)
        err = (a.err / a.lo * c.mag + c.err * max(abs(math.log(a.lo)), abs(math.log(a.hi)))) * hi
        away = lo
    else:
        raise ValueError(op)
    if is_int:
        if max(abs(lo), abs(hi)) > MAX_INT_MAG:
            return None
        return Spec(shape, dtype, lo, hi, away)
    if max(abs(lo), abs(hi)) > MAX_FLOAT_MAG:
        return None
    if op not in ("Max", "Min", "Mod"):
        err += ulps(max(abs(lo), abs(hi)), 4)
    return Spec(shape, FLOAT, lo, hi, away, err)


FLOAT_BINARY = ("Add", "Sub", "Mul", "Div", "Max", "Min", "Pow", "Mod")
INT_BINARY = ("Add", "Sub", "Mul", "Div", "Max", "Min", "Mod")


def _partner(b: Builder, x: str, dtype: str, pred: Callable = lambda s: True, fresh: Callable | None = None) -> str:
    """A second operand of ``dtype`` that broadcasts with ``x``: an existing value or a new one."""
    xs = b.specs[x]

    def fits(s):
        out = broadcast(xs.shape, s.shape)
        return s.dtype == dtype and out is not None and math.prod(out) <= MAX_SIZE and pred(s)

    def make():
        shape = partner_shape(b, xs.shape)
        return fresh(shape) if fresh else b.random_spec(shape, dtype)

    return b.operand(fits, make, reuse=0.4)


def _denominator(b: Builder, dtype: str):
    def fresh(shape):
        if dtype in INTS:
            return Spec(shape, dtype, -7, 7, 1)
        return Spec(shape, FLOAT, -2.0, 2.0, 0.5) if b.chance(0.5) else b.float_spec(shape, 0.5, 2.0)

    return fresh


@op_generator("binary", weight=8.0)
def gen_binary(b: Builder) -> None:
    dtype = FLOAT if b.chance(0.7) else b.choice(INTS)
    op = b.choice(FLOAT_BINARY if dtype == FLOAT else INT_BINARY)
    attrs = {}
    if op == "Mod":
        attrs["fmod"] = 1 if dtype == FLOAT or b.chance(0.5) else 0
    xpred = {"Pow": lambda s: 0.25 <= s.lo and s.hi <= 4, "Mod": lambda s: s.exact}.get(op, lambda s: True)
    x = b.operand(lambda s: s.dtype == dtype and xpred(s),
                  lambda: b.float_spec(b.shape(), 0.5, 3.0) if op == "Pow" else b.random_spec(b.shape(), dtype))
    if op in ("Div", "Mod"):
        y = _partner(b, x, dtype, lambda s: s.away >= (1 if dtype in INTS else 0.25) and s.exact,
                     _denominator(b, dtype))
    elif op == "Pow":
        if b.chance(0.5):
            y = b.const(b.choice((2.0, 3.0, 0.5, -1.0, -0.5, 1.5)), np.float32)
            value = float(b.consts[y])
            ys = Spec((), FLOAT, value, value)
            spec = binary_spec(op, b.specs[x], ys, b.specs[x].shape, attrs)
            if spec is not None:
                b.emit1(op, [x, y], spec)
            return
        y = _partner(b, x, FLOAT, lambda s: s.mag <= 2, lambda shape: b.float_spec(shape, -2.0, 2.0))
    else:
        y = _partner(b, x, dtype)
    if b.chance(0.5) and op not in ("Sub", "Div", "Mod", "Pow"):
        x, y = y, x
    shape = broadcast(b.specs[x].shape, b.specs[y].shape)
    spec = binary_spec(op, b.specs[x], b.specs[y], shape, attrs)
    if spec is not None:
        b.emit1(op, [x, y], spec, **attrs)


@op_generator("variadic", weight=1.0)
def gen_variadic(b: Builder) -> None:
    op = b.choice(("Sum", "Mean", "Max", "Min"))
    dtype = FLOAT if op in ("Sum", "Mean") or b.chance(0.7) else b.choice(INTS)
    x = b.operand(lambda s: s.dtype == dtype, lambda: b.random_spec(b.shape(), dtype))
    operands = [x] + [_partner(b, x, dtype) for _ in range(b.randint(1, 3))]
    shape = broadcast(*(b.specs[v].shape for v in operands))
    if shape is None or math.prod(shape) > MAX_SIZE:
        return
    spec = b.specs[operands[0]]
    for v in operands[1:]:
        spec = binary_spec("Add" if op in ("Sum", "Mean") else op, spec, b.specs[v], shape, {})
        if spec is None:
            return
    if op == "Mean":
        k = len(operands)
        spec = Spec(shape, FLOAT, spec.lo / k, spec.hi / k, 0.0, spec.err / k + ulps(spec.mag / k, 2))
    b.emit1(op, operands, spec)


@op_generator("prelu", weight=0.5)
def gen_prelu(b: Builder) -> None:
    x = b.operand(lambda s: s.dtype == FLOAT and len(s.shape) >= 1, lambda: b.random_spec(b.shape(), FLOAT))
    xs = b.specs[x]
    # the slope broadcasts to x (unidirectionally)
    shape = tuple(d if b.chance(0.5) else 1 for d in xs.shape[len(xs.shape) - b.randint(0, len(xs.shape)):])
    slope = b.new_value(b.float_spec(shape, -0.5, 0.5))
    ss = b.specs[slope]
    lo_neg, hi_neg = _products(Spec((), FLOAT, min(xs.lo, 0.0), 0.0), ss)
    lo, hi = min(lo_neg, max(xs.lo, 0.0)), max(hi_neg, xs.hi, 0.0)
    err = xs.err * max(1.0, ss.mag) + ulps(max(abs(lo), abs(hi)), 2)
    b.emit1("PRelu", [x, slope], Spec(xs.shape, FLOAT, lo, hi, 0.0, err))


# Comparisons, logic, Where ----------------------------------------------------------------
@op_generator("compare", weight=2.0)
def gen_compare(b: Builder) -> None:
    op = b.choice(("Equal", "Less", "Greater", "LessOrEqual", "GreaterOrEqual"))
    dtype = b.choice((FLOAT, FLOAT, INT32, INT64))
    x = b.operand(lambda s: s.dtype == dtype and s.exact, lambda: b.random_spec(b.shape(), dtype))
    y = _partner(b, x, dtype, lambda s: s.exact)
    b.emit1(op, [x, y], Spec(broadcast(b.specs[x].shape, b.specs[y].shape), BOOL, 0, 1))


@op_generator("logic", weight=1.0)
def gen_logic(b: Builder) -> None:
    op = b.choice(("And", "Or", "Xor", "Not"))
    x = b.operand(lambda s: s.dtype == BOOL, lambda: Spec(b.shape(), BOOL, 0, 1))
    if op == "Not":
        b.emit1(op, [x], Spec(b.specs[x].shape, BOOL, 0, 1))
        return
    y = _partner(b, x, BOOL)
    b.emit1(op, [x, y], Spec(broadcast(b.specs[x].shape, b.specs[y].shape), BOOL, 0, 1))


@op_generator("where", weight=2.0)
def gen_where(b: Builder) -> None:
    dtype = FLOAT if b.chance(0.7) else b.choice(INTS)
    x = b.operand(lambda s: s.dtype == dtype, lambda: b.random_spec(b.shape(), dtype))
    y = _partner(b, x, dtype)
    cond = _partner(b, x, BOOL)
    shape = broadcast(b.specs[cond].shape, b.specs[x].shape, b.specs[y].shape)
    if shape is None or math.prod(shape) > MAX_SIZE:
        return
    xs, ys = b.specs[x], b.specs[y]
    away = min(xs.away, ys.away)
    b.emit1("Where", [cond, x, y], Spec(shape, dtype, min(xs.lo, ys.lo), max(xs.hi, ys.hi), away,
                                        max(xs.err, ys.err)))


# Cast, Clip ---------------------------------------------------------------------------------
@op_generator("cast", weight=1.5)
def gen_cast(b: Builder) -> None:
    to = b.choice((FLOAT, INT32, INT64, BOOL))
    x = b.operand(lambda s: s.exact or (to == FLOAT and s.dtype == FLOAT),
                  lambda: b.random_spec(b.shape(), b.choice((FLOAT, INT32, INT64, BOOL))))
    xs = b.specs[x]
    if to == BOOL:
        spec = Spec(xs.shape, BOOL, 0, 1)
    elif to == FLOAT:
        if xs.dtype in INTS and xs.mag > 2 ** 24:
            return
        spec = Spec(xs.shape, FLOAT, xs.lo, xs.hi, xs.away, xs.err)
    else:  # truncation toward zero
        spec = Spec(xs.shape, to, math.trunc(xs.lo), math.trunc(xs.hi), math.trunc(xs.away))
    b.emit1("Cast", [x], spec, to=int(helper.np_dtype_to_tensor_dtype(np.dtype(to))))


@op_generator("clip", weight=1.0)
def gen_clip(b: Builder) -> None:
    dtype = FLOAT if b.chance(0.7) else b.choice(INTS)
    x = b.operand(lambda s: s.dtype == dtype, lambda: b.random_spec(b.shape(), dtype))
    xs = b.specs[x]
    np_dtype = np.float32 if dtype == FLOAT else dtype
    lo_v = float(np.asarray(b.rng.uniform(xs.lo, (xs.lo + xs.hi) / 2)).astype(np_dtype))
    hi_v = float(np.asarray(b.rng.uniform((xs.lo + xs.hi) / 2, xs.hi)).astype(np_dtype))
    bounds = []
    lo, hi = xs.lo, xs.hi
    for value, keep in ((lo_v, b.chance(0.7)), (hi_v, b.chance(0.7))):
        bounds.append(b.const(value, np_dtype) if keep else "")
    if bounds[0]:
        lo, hi = max(lo, lo_v), max(hi, lo_v)
    if bounds[1]:
        lo, hi = min(lo, hi_v), min(hi, hi_v)
    if b.opset >= 11 and b.chance(0.25) and bounds[1]:  # a bound that is a tensor input (a scalar)
        bounds[1] = b.new_value(Spec((), dtype, hi_v, hi_v + 1), weight=False)
        hi = max(hi, hi_v + 1)
    while bounds and not bounds[-1]:
        bounds.pop()
    b.emit1("Clip", [x] + bounds, Spec(xs.shape, dtype, lo, hi, 0.0, xs.err))
