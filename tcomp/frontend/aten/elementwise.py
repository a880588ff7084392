"""Converters of ATen elementwise ops: arithmetic with torch's type promotion, activations, casts."""
from __future__ import annotations

from ...graph.ir import Value
from ...graph.symbolic import SymInt
from ..converters.common import ConvertError
from .common import aten, cast, dtype_name, filled, operand, promoted, scalar


def _arith(op):
    """A binary op computed in the node's result dtype (torch promotes, graph-IR ops take equal dtypes)."""
    def convert(ctx, a, b, alpha=1):
        dtype = ctx.out_dtype()
        if dtype == "bool":  # torch: add is or, mul is and
            if op == "Sub":
                raise ConvertError("subtraction of bools is not supported")
            return ctx.emit1({"Add": "Or", "Mul": "And"}[op], [operand(ctx, a, dtype), operand(ctx, b, dtype)])
        b = operand(ctx, b, dtype)
        if alpha != 1:
            b = ctx.emit1("Mul", [b, scalar(ctx, alpha, dtype)])
        return ctx.emit1(op, [operand(ctx, a, dtype), b])

    return convert


aten("add.Tensor", "add.Scalar")(_arith("Add"))
aten("sub.Tensor", "sub.Scalar")(_arith("Sub"))
aten("mul.Tensor", "mul.Scalar")(_arith("Mul"))


@aten("rsub.Scalar", "rsub.Tensor")
def _rsub(ctx, a, b, alpha=1):
    return _arith("Sub")(ctx, b, a, alpha)


@aten("div.Tensor", "div.Scalar", "div.Tensor_mode", "div.Scalar_mode")
def _div(ctx, a, b, rounding_mode=None):
    dtype = ctx.out_dtype()
    if rounding_mode is None:
        return ctx.emit1("Div", [operand(ctx, a, dtype), operand(ctx, b, dtype)])
    # floor / trunc division, exact in double precision for the integer range in use
    wide = "float64" if not dtype.startswith("float") else dtype
    q = ctx.emit1("Div", [operand(ctx, a, wide), operand(ctx, b, wide)])
    if rounding_mode == "floor":
        q = ctx.emit1("Floor", [q])
    elif rounding_mode == "trunc":
        negative = ctx.emit1("Less", [q, scalar(ctx, 0, wide)])
        q = ctx.emit1("Where", [negative, ctx.emit1("Ceil", [q]), ctx.emit1("Floor", [q])])
    else:
        raise ConvertError(f"rounding_mode {rounding_mode!r}")
    return cast(ctx, q, dtype)


@aten("remainder.Tensor", "remainder.Scalar", "fmod.Tensor", "fmod.Scalar")
def _remainder(ctx, a, b):
    dtype = ctx.out_dtype()
    a, b = operand(ctx, a, dtype), operand(ctx, b, dtype)
    is_fmod = ctx.fx_node.target.__name__.startswith("fmod")
    if not dtype.startswith("float"):
        return ctx.emit1("Mod", [a, b], {"fmod": int(is_fmod)})
    if is_fmod:
        return ctx.emit1("Mod", [a, b], {"fmod": 1})
    # Python's remainder (the sign of the divisor): a - floor(a / b) * b
    floor = ctx.emit1("Floor", [ctx.emit1("Div", [a, b])])
    return ctx.emit1("Sub", [a, ctx.emit1("Mul", [floor, b])])


@aten("pow.Tensor_Scalar", "pow.Tensor_Tensor", "pow.Scalar")
def _pow(ctx, base, exponent):
    dtype = ctx.out_dtype()
    if not dtype.startswith("float"):
        raise ConvertError(f"integer pow ({dtype}) is not supported")
    return ctx.emit1("Pow", [operand(ctx, base, dtype), operand(ctx, exponent, dtype)])


@aten("maximum.default", "minimum.default")
def _max_min(ctx, a, b):
    dtype = ctx.out_dtype()
    op = "Max" if ctx.fx_node.target.__name__.startswith("maximum") else "Min"
    return ctx.emit1(op, [operand(ctx, a, dtype), operand(ctx, b, dtype)])


_COMPARISONS = {"eq": "Equal", "lt": "Less", "le": "LessOrEqual", "gt": "Greater", "ge": "GreaterOrEqual"}


@aten(*[f"{name}.{kind}" for name in list(_COMPARISONS) + ["ne"] for kind in ("Tensor", "Scalar")])
def _compare(ctx, a, b):
    dtype = promoted(a, b)
    name = ctx.fx_node.target.__name__.split(".")[0]
    a, b = operand(ctx, a, dtype), operand(ctx, b, dtype)
    if name == "ne":
        return ctx.emit1("Not", [ctx.emit1("Equal", [a, b])])
    return ctx.emit1(_COMPARISONS[name], [a, b])


@aten("where.self", "where.ScalarSelf", "where.ScalarOther", "where.Scalar")
def _where(ctx, condition, a, b):
    dtype = ctx.out_dtype()
    return ctx.emit1("Where", [cast(ctx, condition, "bool"), operand(ctx, a, dtype), operand(ctx, b, dtype)])


def _as_bool(ctx, x):
    if x.dtype == "bool":
        return x
    return ctx.emit1("Not", [ctx.emit1("Equal", [x, scalar(ctx, 0, x.dtype)])])


@aten("logical_not.default", "bitwise_not.default")
def _logical_not(ctx, x):
    if ctx.fx_node.target.__name__.startswith("bitwise") and x.dtype != "bool":
        raise ConvertError(f"bitwise_not on {x.dtype} is not supported (bool is)")
    return ctx.emit1("Not", [_as_bool(ctx, x)])


_LOGICAL = {"and": "And", "or": "Or", "xor": "Xor"}


@aten(*[f"{kind}_{name}.{overload}" for name in _LOGICAL for kind in ("logical", "bitwise")
        for overload in ("default", "Tensor", "Scalar")])
def _logical(ctx, a, b):
    kind, name = ctx.fx_node.target.__name__.split(".")[0].split("_")
    if kind == "bitwise" and ctx.out_dtype() != "bool":
        raise ConvertError(f"bitwise_{name} on {ctx.out_dtype()} is not supported (bool is)")
    a = _as_bool(ctx, a) if isinstance(a, Value) else scalar(ctx, bool(a), "bool")
    b = _as_bool(ctx, b) if isinstance(b, Value) else scalar(ctx, bool(b), "bool")
    return ctx.emit1(_LOGICAL[name], [a, b])


# Unary ---------------------------------------------------------------------------
_UNARY = {"neg": "Neg", "abs": "Abs", "exp": "Exp", "log": "Log", "sqrt": "Sqrt", "reciprocal": "Reciprocal",
          "sigmoid": "Sigmoid", "tanh": "Tanh", "erf": "Erf", "relu": "Relu", "sin": "Sin", "cos": "Cos",
          "floor": "Floor", "ceil": "Ceil", "round": "Round", "sign": "Sign", "isnan": "IsNaN"}
_FLOAT_ONLY = {"exp", "log", "sqrt", "reciprocal", "sigmoid", "tanh", "erf", "sin", "cos", "rsqrt"}


@aten(*[f"{name}.default" for name in _UNARY])
def _unary(ctx, x):
    name = ctx.fx_node.target.__name__.split(".")[0]
    if name in _FLOAT_ONLY:
        x = cast(ctx, x, ctx.out_dtype())
    elif name in ("floor", "ceil", "round") and not x.dtype.startswith("float"):
        return x
    return ctx.emit1(_UNARY[name], [x])


@aten("rsqrt.default")
def _rsqrt(ctx, x):
    return ctx.emit1("Reciprocal", [ctx.emit1("Sqrt", [cast(ctx, x, ctx.out_dtype())])])


@aten("log1p.default", "expm1.default")
def _log1p_expm1(ctx, x):
    """log(1 + x) and exp(x) - 1 accurate near 0 (Kahan): u = 1 + x (or exp(x)), corrected by x / (u - 1)."""
    x = cast(ctx, x, ctx.out_dtype())
    one = scalar(ctx, 1, x.dtype)
    if ctx.fx_node.target.__name__.startswith("log1p"):
        u = ctx.emit1("Add", [x, one])
        d = ctx.emit1("Sub", [u, one])
        corrected = ctx.emit1("Mul", [ctx.emit1("Log", [u]), ctx.emit1("Div", [x, d])])
    else:
        u = ctx.emit1("Exp", [x])
        d = ctx.emit1("Sub", [u, one])
        corrected = ctx.emit1("Div", [ctx.emit1("Mul", [d, x]), ctx.emit1("Log", [u])])
        corrected = ctx.emit1("Where", [ctx.emit1("Equal", [d, scalar(ctx, -1, x.dtype)]), d, corrected])
    return ctx.emit1("Where", [ctx.emit1("Equal", [d, scalar(ctx, 0, x.dtype)]), x, corrected])


@aten("isinf.default")
def _isinf(ctx, x):
    return ctx.emit1("IsInf", [x]) if x.dtype.startswith("float") else scalar_like(ctx, False)


def scalar_like(ctx, value):
    """``value`` in the node's result shape and dtype (ops whose result does not depend on the data)."""
    return filled(ctx, ctx.out_shape(), value, ctx.out_dtype())


@aten("full.default", "zeros.default", "ones.default", "empty.memory_format")
def _full(ctx, size, *args, **options):  # folded at import unless the size is symbolic
    name = ctx.fx_node.target.__name__.split(".")[0]
    return scalar_like(ctx, args[0] if name == "full" else 1 if name == "ones" else 0)


@aten("arange.start_step", "arange.default", "arange.start")
def _arange(ctx, *bounds, **options):  # folded at import unless a bound is symbolic
    start, end, step = (0, bounds[0], 1) if len(bounds) == 1 else (*bounds, 1)[:3]
    if isinstance(start, SymInt) or isinstance(step, SymInt) or step != 1:
        raise ConvertError("arange over symbolic sizes needs an int start and step 1")
    dtype = ctx.out_dtype()
    return ctx.emit1("Range", [], {"start": start, "length": end - start, "delta": 1, "dtype": dtype})


@aten("gelu.default")
def _gelu(ctx, x, approximate="none"):
    return ctx.emit1("Gelu", [x], {"approximate": approximate})


@aten("hardtanh.default", "clamp.default")
def _clamp(ctx, x, low=None, high=None):
    bounds = {key: bound for key, bound in (("min", low), ("max", high)) if bound is not None}
    return ctx.emit1("Clip", [x], bounds) if bounds else x


@aten("clamp.Tensor")
def _clamp_tensor(ctx, x, low=None, high=None):
    dtype = ctx.out_dtype()
    x = cast(ctx, x, dtype)
    if low is not None:
        x = ctx.emit1("Max", [x, operand(ctx, low, dtype)])
    if high is not None:
        x = ctx.emit1("Min", [x, operand(ctx, high, dtype)])
    return x


@aten("leaky_relu.default")
def _leaky_relu(ctx, x, negative_slope=0.01):
    return ctx.emit1("LeakyRelu", [x], {"alpha": negative_slope})


@aten("elu.default")
def _elu(ctx, x, alpha=1.0, scale=1.0, input_scale=1.0):
    if scale != 1.0 or input_scale != 1.0:
        raise ConvertError("elu with scale or input_scale other than 1 is not supported")
    return ctx.emit1("Elu", [x], {"alpha": alpha})


@aten("_to_copy.default")
def _to_copy(ctx, x, dtype=None, **options):
    device = options.get("device")
    if device is not None and str(device) != "cpu":
        raise ConvertError(f"copy to device {device} (tcomp compiles for the host)")
    return cast(ctx, x, dtype_name(dtype)) if dtype is not None else x


@aten("clone.default", "alias.default")
def _identity(ctx, x, **options):
    return x


@aten("full_like.default", "zeros_like.default", "ones_like.default", "empty_like.default", "new_full.default",
      "new_zeros.default", "new_ones.default", "new_empty.default")
def _filled_like(ctx, x, *args, **options):
    name = ctx.fx_node.target.__name__.split(".")[0]
    if name in ("full_like", "new_full"):
        value = args[0] if name == "full_like" else args[1]
    else:
        value = 1 if "ones" in name else 0
    return scalar_like(ctx, value)
