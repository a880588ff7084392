"""Elementwise ops (numpy broadcasting) as scalar expression builders."""
from __future__ import annotations

from ..graph.ir import TensorType
from ..tir.views import TensorView, broadcast_index
from ..tir.expr import (BinOp, Cmp, FloatImm, Select, call, cast, const, const_like, is_float, logical_or, maximum,
                        minimum)
from .registry import ELEMENTWISE, broadcast_shapes, register


def _relu(a, x):
    return maximum(x, 0)


def _leaky_relu(a, x):
    return Select(Cmp("lt", x, const_like(0, x)), x * a.get("alpha", 0.01), x)


def _elu(a, x):
    alpha = a.get("alpha", 1.0)
    return Select(Cmp("lt", x, const_like(0, x)), (call("exp", x) - 1.0) * alpha, x)


def _selu(a, x):
    alpha, gamma = a.get("alpha", 1.67326319217681884765625), a.get("gamma", 1.05070102214813232421875)
    return Select(Cmp("le", x, const_like(0, x)), (call("exp", x) * alpha - alpha) * gamma, x * gamma)


def _hard_sigmoid(a, x):
    return minimum(maximum(x * a.get("alpha", 0.2) + a.get("beta", 0.5), 0.0), 1.0)


def _hard_swish(a, x):
    return x * minimum(maximum(x * (1.0 / 6.0) + 0.5, 0.0), 1.0)


def _softplus(a, x):
    # log(1 + exp(x)) computed without overflow: max(x, 0) + log(1 + exp(-|x|))
    return maximum(x, 0.0) + call("log", call("exp", -call("abs", x)) + 1.0)


def _gelu(a, x):
    if a.get("approximate", "none") == "tanh":
        inner = (x + x * x * x * 0.044715) * 0.7978845608028654
        return x * 0.5 * (call("tanh", inner) + 1.0)
    return x * 0.5 * (call("erf", x * 0.7071067811865476) + 1.0)


def _clip(a, x):
    if "min" in a:
        x = maximum(x, const_like(a["min"], x))
    if "max" in a:
        x = minimum(x, const_like(a["max"], x))
    return x


def _div(a, x, y):
    return BinOp("div", x, y)


def _mod(a, x, y):
    if a.get("fmod", 0):
        # fmod: sign of the dividend, x - trunc(x / y) * y
        if is_float(x.dtype):
            q = x / y
            trunc = Select(Cmp("lt", q, const_like(0, q)), call("ceil", q), call("floor", q))
            return x - trunc * y
        return x - BinOp("div", x, y) * y
    return BinOp("floormod", x, y)


def _pow(a, x, y):
    if y.dtype != x.dtype:
        y = cast(x.dtype, y)
    if isinstance(y, FloatImm):  # small constant exponents become multiplies / sqrt
        if y.value == 0.5:
            return call("sqrt", x)
        if y.value == float(int(y.value)) and 1 <= abs(y.value) <= 4:
            result = x
            for _ in range(int(abs(y.value)) - 1):
                result = result * x
            return result if y.value > 0 else call("reciprocal", result)
    return BinOp("pow", x, y)


def _cmp(op):
    return lambda a, x, y: Cmp(op, x, y)


def _bin(op):
    return lambda a, x, y: BinOp(op, x, y)


def _call(name):
    return lambda a, x: call(name, x)


def _where(a, c, x, y):
    return Select(c, x, y)


def _prelu(a, x, slope):
    return Select(Cmp("lt", x, const_like(0, x)), x * slope, x)


UNARY = {
    "Relu": _relu, "LeakyRelu": _leaky_relu, "Elu": _elu, "Selu": _selu, "HardSigmoid": _hard_sigmoid,
    "HardSwish": _hard_swish, "Softplus": _softplus, "Gelu": _gelu, "Clip": _clip,
    "Sigmoid": _call("sigmoid"), "Tanh": _call("tanh"), "Exp": _call("exp"), "Log": _call("log"),
    "Sqrt": _call("sqrt"), "Erf": _call("erf"), "Neg": _call("neg"), "Abs": _call("abs"),
    "Reciprocal": _call("reciprocal"), "Floor": _call("floor"), "Ceil": _call("ceil"),
    "Round": _call("round"), "Sin": _call("sin"), "Cos": _call("cos"), "Sign": _call("sign"),
    "Not": _call("not"),
}
# Unary ops defined only for floats.
FLOAT_ONLY = {"Relu", "LeakyRelu", "Elu", "Selu", "HardSigmoid", "HardSwish", "Softplus", "Gelu", "Sigmoid",
              "Tanh", "Exp", "Log", "Sqrt", "Erf", "Reciprocal", "Floor", "Ceil", "Round", "Sin", "Cos"}
BINARY = {
    "Add": _bin("add"), "Sub": _bin("sub"), "Mul": _bin("mul"), "Div": _div, "Pow": _pow, "Mod": _mod,
    "Max": _bin("max"), "Min": _bin("min"), "And": _bin("and"), "Or": _bin("or"), "Xor": _bin("xor"),
    "Equal": _cmp("eq"), "Less": _cmp("lt"), "Greater": _cmp("gt"), "LessOrEqual": _cmp("le"),
    "GreaterOrEqual": _cmp("ge"), "PRelu": _prelu,
}
BOOL_RESULT = {"Equal", "Less", "Greater", "LessOrEqual", "GreaterOrEqual", "IsNaN", "IsInf"}


def _infer_elementwise(node):
    shape = broadcast_shapes(*(v.shape for v in node.inputs))
    if node.op in BOOL_RESULT:
        dtype = "bool"
    elif node.op == "Cast":
        dtype = node.attrs["to"]
    elif node.op == "Where":
        dtype = node.inputs[1].dtype
    else:
        dtype = node.inputs[0].dtype
    return [TensorType(shape, dtype)]


def elementwise_expr(node, args):
    """The scalar expression of ``node`` applied to operand expressions ``args``."""
    op = node.op
    if op == "Cast":
        return cast(node.attrs["to"], args[0])  # float -> int truncates toward zero, as in ONNX
    if op == "IsNaN":
        return call("isnan", args[0], dtype="bool")
    if op == "IsInf":
        x = args[0]
        detected = logical_or(
            Cmp("eq", x, const_like(float("inf"), x)) if node.attrs.get("detect_positive", 1) else None,
            Cmp("eq", x, const_like(float("-inf"), x)) if node.attrs.get("detect_negative", 1) else None)
        return detected if detected is not None else const(0, "bool")
    if op == "Where":
        return _where(node.attrs, *args)
    if op in UNARY:
        return UNARY[op](node.attrs, args[0])
    return BINARY[op](node.attrs, *args)


def _view_elementwise(node, views):
    out_type = _infer_elementwise(node)[0]
    shape = out_type.shape

    def fn(*idx):
        args = [view.fn(*broadcast_index(idx, view.shape, shape)) for view in views]
        return elementwise_expr(node, args)

    return [TensorView(shape, out_type.dtype, fn)]


for _name in list(UNARY) + list(BINARY) + ["Cast", "Where", "IsNaN", "IsInf"]:
    register(_name, ELEMENTWISE, _infer_elementwise, _view_elementwise)
