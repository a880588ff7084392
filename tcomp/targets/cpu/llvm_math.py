"""Vectorizable float32 math emitted inline as LLVM IR (no libm calls in hot loops).

Each function takes an ``IRBuilder`` and a float or float-vector value and
returns a value of the same type. Accuracy is a few ulp for ``exp``; ``erf``
has an absolute error below 1.5e-7 (Abramowitz & Stegun 7.1.26).
"""
from __future__ import annotations

import math

import llvmlite.ir as ir

FAST = ("contract",)


def splat(builder: ir.IRBuilder, ty: ir.Type, value):
    """A constant (or scalar value) of ``ty``: broadcast to every lane if ``ty`` is a vector."""
    if isinstance(ty, ir.VectorType):
        if isinstance(value, ir.Value):
            vec = builder.insert_element(ir.Constant(ty, ir.Undefined), value, ir.Constant(ir.IntType(32), 0))
            mask = ir.Constant(ir.VectorType(ir.IntType(32), ty.count), [0] * ty.count)
            return builder.shuffle_vector(vec, ir.Constant(ty, ir.Undefined), mask)
        return ir.Constant(ty, [value] * ty.count)
    return value if isinstance(value, ir.Value) else ir.Constant(ty, value)


def intrinsic(builder: ir.IRBuilder, name: str, args, ret_type: ir.Type | None = None, fastmath=()):
    """Calls ``llvm.<name>.<type suffix>`` overloaded on the first argument's type."""
    ty = args[0].type
    full = f"llvm.{name}.{type_suffix(ty)}"
    module = builder.module
    fn = module.globals.get(full)
    if fn is None:
        fn = ir.Function(module, ir.FunctionType(ret_type or ty, [a.type for a in args]), full)
    return builder.call(fn, args, fastmath=fastmath)


def type_suffix(ty: ir.Type) -> str:
    if isinstance(ty, ir.VectorType):
        return f"v{ty.count}{type_suffix(ty.element)}"
    if isinstance(ty, ir.FloatType):
        return "f32"
    if isinstance(ty, ir.DoubleType):
        return "f64"
    if isinstance(ty, ir.HalfType):
        return "f16"
    if str(ty) == "bfloat":
        return "bf16"
    if isinstance(ty, ir.IntType):
        return f"i{ty.width}"
    if isinstance(ty, ir.PointerType):
        return "p0"
    raise TypeError(f"no intrinsic suffix for {ty}")


def _int_type_like(ty):
    if isinstance(ty, ir.VectorType):
        return ir.VectorType(ir.IntType(32), ty.count)
    return ir.IntType(32)


def _poly(builder, x, coeffs):
    """Horner evaluation of sum(coeffs[i] * x**i)."""
    result = splat(builder, x.type, coeffs[-1])
    for coeff in reversed(coeffs[:-1]):
        result = builder.fadd(builder.fmul(result, x, flags=FAST), splat(builder, x.type, coeff), flags=FAST)
    return result


def _clamp(builder, x, lo, hi):
    """Clamps to [lo, hi]; NaN stays NaN."""
    x = intrinsic(builder, "maximum", [x, splat(builder, x.type, lo)])
    return intrinsic(builder, "minimum", [x, splat(builder, x.type, hi)])


def exp_f32(builder: ir.IRBuilder, x):
    """exp(x) = 2^n * p(r), n = round(x / ln 2), r = x - n ln 2, p a degree-7 Taylor polynomial.

    Below -87.3 (including -inf) the result is 0; above 88.7 it is +inf; NaN stays NaN.
    """
    ty = x.type
    underflow = builder.fcmp_ordered("<", x, splat(builder, ty, -87.33654))
    overflow = builder.fcmp_ordered(">", x, splat(builder, ty, 88.72283))
    x = _clamp(builder, x, -87.33654, 88.72283)
    n = intrinsic(builder, "roundeven", [builder.fmul(x, splat(builder, ty, 1.0 / math.log(2.0)))])
    r = builder.fsub(x, builder.fmul(n, splat(builder, ty, 0.693145751953125)))
    r = builder.fsub(r, builder.fmul(n, splat(builder, ty, 1.428606765330187e-06)))
    p = _poly(builder, r, [1.0, 1.0, 1 / 2, 1 / 6, 1 / 24, 1 / 120, 1 / 720, 1 / 5040])
    ity = _int_type_like(ty)
    n_int = builder.fptosi(n, ity)
    # 2^n built in two halves so that n = -127 .. 128 stays representable.
    half = builder.ashr(n_int, splat(builder, ity, 1))
    rest = builder.sub(n_int, half)
    scale1 = builder.bitcast(builder.shl(builder.add(half, splat(builder, ity, 127)), splat(builder, ity, 23)), ty)
    scale2 = builder.bitcast(builder.shl(builder.add(rest, splat(builder, ity, 127)), splat(builder, ity, 23)), ty)
    result = builder.fmul(builder.fmul(p, scale1), scale2)
    result = builder.select(overflow, splat(builder, ty, float("inf")), result)
    return builder.select(underflow, splat(builder, ty, 0.0), result)


def tanh_f32(builder: ir.IRBuilder, x):
    """tanh(x) = sign(x) * (1 - 2 / (exp(2|x|) + 1)); a polynomial near 0 keeps relative accuracy."""
    ty = x.type
    ax = intrinsic(builder, "fabs", [x])
    e = exp_f32(builder, builder.fmul(ax, splat(builder, ty, 2.0)))
    big = builder.fsub(splat(builder, ty, 1.0),
                       builder.fdiv(splat(builder, ty, 2.0), builder.fadd(e, splat(builder, ty, 1.0))))
    x2 = builder.fmul(ax, ax)
    # tanh(a) = a - a^3/3 + 2a^5/15 - 17a^7/315 for |a| < 0.0625 (error < 1e-10 relative)
    small = builder.fmul(ax, _poly(builder, x2, [1.0, -1 / 3, 2 / 15, -17 / 315]))
    use_small = builder.fcmp_ordered("<", ax, splat(builder, ty, 0.0625))
    mag = builder.select(use_small, small, big)
    return intrinsic(builder, "copysign", [mag, x])


def erf_f32(builder: ir.IRBuilder, x):
    """erf(x) with |error| < 1.5e-7, and a Taylor series near 0 for relative accuracy."""
    ty = x.type
    ax = intrinsic(builder, "fabs", [x])
    t = builder.fdiv(splat(builder, ty, 1.0), builder.fadd(splat(builder, ty, 1.0),
                                                           builder.fmul(ax, splat(builder, ty, 0.3275911))))
    poly = builder.fmul(t, _poly(builder, t, [0.254829592, -0.284496736, 1.421413741, -1.453152027, 1.061405429]))
    e = exp_f32(builder, builder.fsub(splat(builder, ty, 0.0), builder.fmul(ax, ax)))
    big = builder.fsub(splat(builder, ty, 1.0), builder.fmul(poly, e))
    x2 = builder.fmul(ax, ax)
    two_over_sqrt_pi = 2.0 / math.sqrt(math.pi)
    small = builder.fmul(builder.fmul(ax, splat(builder, ty, two_over_sqrt_pi)),
                         _poly(builder, x2, [1.0, -1 / 3, 1 / 10, -1 / 42, 1 / 216]))
    use_small = builder.fcmp_ordered("<", ax, splat(builder, ty, 0.25))
    mag = builder.select(use_small, small, big)
    return intrinsic(builder, "copysign", [mag, x])


def sigmoid_f32(builder: ir.IRBuilder, x):
    ty = x.type
    e = exp_f32(builder, builder.fsub(splat(builder, ty, 0.0), x))
    return builder.fdiv(splat(builder, ty, 1.0), builder.fadd(splat(builder, ty, 1.0), e))


INLINE_F32 = {"exp": exp_f32, "tanh": tanh_f32, "erf": erf_f32, "sigmoid": sigmoid_f32}
