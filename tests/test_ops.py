"""Operator tests: one small ONNX model per case, tcomp vs onnxruntime.

Inputs are drawn fresh every run (no fixed seed).  Shapes use odd extents and size-1
dimensions so vector tails, broadcasting and tile edges are exercised.
"""
from __future__ import annotations

import math

import numpy as np
import pytest
from onnx import numpy_helper
from onnx.reference import ReferenceEvaluator

from onnx_helpers import (assert_matches, check, check_op, dist_to_half, dist_to_int, make_model, node, rand, rand_nonzero,
                          randbool, randint, reference, rng, run_tcomp, run_tcomp_many, with_static_outputs)

import tcomp

F32 = np.float32
MM_TOL = 1e-4  # relative-norm tolerance for matmul / conv / big reductions


# ---------------------------------------------------------------------------------------------
# unary float ops
# ---------------------------------------------------------------------------------------------

UNARY_SHAPES = [(7, 13), (2, 3, 67), (1, 33, 1), (5,)]


def _u(lo, hi, avoid=None):
    return lambda shape: rand(shape, lo, hi, avoid=avoid)


UNARY_CASES = [
    ("Relu", {}, _u(-5, 5)),
    ("Sigmoid", {}, _u(-8, 8)),
    ("Tanh", {}, _u(-5, 5)),
    ("Exp", {}, _u(-10, 10)),
    ("Log", {}, _u(1e-3, 100)),
    ("Sqrt", {}, _u(1e-4, 100)),
    ("Erf", {}, _u(-3, 3)),
    ("Neg", {}, _u(-5, 5)),
    ("Abs", {}, _u(-5, 5)),
    ("Reciprocal", {}, lambda s: rand_nonzero(s, 0.1, 10)),
    ("Floor", {}, _u(-10, 10, dist_to_int)),
    ("Ceil", {}, _u(-10, 10, dist_to_int)),
    ("Round", {}, _u(-10, 10, dist_to_half)),
    ("Sin", {}, _u(-10, 10)),
    ("Cos", {}, _u(-10, 10)),
    ("Softplus", {}, _u(-20, 20)),
    ("Sign", {}, _u(-5, 5, np.abs)),
    ("LeakyRelu", {}, _u(-5, 5)),
    ("LeakyRelu", {"alpha": 0.3}, _u(-5, 5)),
    ("Elu", {}, _u(-5, 5)),
    ("Elu", {"alpha": 0.5}, _u(-5, 5)),
    ("Selu", {}, _u(-5, 5)),
    ("Selu", {"alpha": 1.5, "gamma": 2.0}, _u(-5, 5)),
    ("HardSigmoid", {}, _u(-6, 6)),
    ("HardSigmoid", {"alpha": 0.3, "beta": 0.4}, _u(-6, 6)),
    ("HardSwish", {}, _u(-6, 6)),
]


@pytest.mark.parametrize("shape", UNARY_SHAPES, ids=str)
@pytest.mark.parametrize("op,attrs,gen", UNARY_CASES,
                         ids=[f"{c[0]}{c[1] or ''}" for c in UNARY_CASES])
def test_unary(op, attrs, gen, shape):
    check_op(op, {"x": gen(shape)}, **attrs)


@pytest.mark.parametrize("op", ["Relu", "Exp", "Neg", "Sigmoid"])
def test_unary_scalar_input(op):
    """A rank-0 tensor."""
    check_op(op, {"x": np.array(rand((1,), 0.5, 2)[0])})


def test_round_half_to_even():
    """Exact halves round to the even neighbour (numpy/ONNX), not away from zero."""
    halves = np.array([-4.5, -3.5, -2.5, -1.5, -0.5, 0.5, 1.5, 2.5, 3.5, 4.5, 1e6 + 0.5, -7.5, 0.49999997],
                      dtype=F32)
    x = np.concatenate([halves, rand((20,), -10, 10, avoid=dist_to_half)])
    check_op("Round", {"x": rng().permutation(x)})


def test_sign_zero():
    x = rand((3, 11), -2, 2, avoid=np.abs)
    x[0, :4] = 0.0
    check_op("Sign", {"x": x})


@pytest.mark.parametrize("approximate", ["none", "tanh"])
@pytest.mark.parametrize("shape", [(7, 13), (2, 5, 33)], ids=str)
def test_gelu_opset20(approximate, shape):
    check_op("Gelu", {"x": rand(shape, -6, 6)}, opset=20, approximate=approximate)


@pytest.mark.parametrize("op", ["Exp", "Tanh", "Erf", "Sigmoid"])
def test_unary_wide_range(op):
    check_op(op, {"x": rand((4099,), -20, 20)})


def test_exp_relative_accuracy_full_range():
    """exp over most of the normal float32 range, checked relatively (atol 0)."""
    check_op("Exp", {"x": rand((4099,), -85, 85)}, rtol=1e-4, atol=0)


@pytest.mark.parametrize("op", ["Exp", "Tanh", "Erf", "Sigmoid", "Sin", "Softplus"])
def test_unary_near_zero_relative(op):
    """Small arguments, checked relatively (tanh(x) ~ x, erf(x) ~ 1.128 x: no cancellation allowed)."""
    g = rng()
    x = np.concatenate([g.uniform(-1e-2, 1e-2, 2000), g.uniform(-1e-5, 1e-5, 1000),
                        np.array([1e-7, -1e-7, 3e-9])]).astype(F32)
    check_op(op, {"x": x}, rtol=1e-4, atol=1e-12)


@pytest.mark.parametrize("op,attrs,opset", [
    ("Tanh", {}, 17), ("Sigmoid", {}, 17), ("Erf", {}, 17), ("Softplus", {}, 17), ("Exp", {}, 17),
    ("Elu", {}, 17), ("Selu", {}, 17), ("HardSwish", {}, 17), ("Gelu", {}, 20), ("Gelu", {"approximate": "tanh"}, 20),
], ids=lambda v: str(v) if not isinstance(v, dict) else "-".join(map(str, v.values())))
def test_unary_extreme_inputs(op, attrs, opset):
    """Saturation: no NaN or overflow garbage for |x| up to 1000."""
    x = rand((1000,), -1000, 1000)
    x[:9] = [100.0, -100.0, 50.0, -50.0, 88.0, -88.0, 2.5, -2.5, 1.0]
    check_op(op, {"x": x}, opset=opset, **attrs)


SPECIAL_VALUES = np.array([0.0, -0.0, np.inf, -np.inf, np.nan, -1.0, 1e-40, -1e-40, 1e-38, 3e38, -3e38, 1.0, 0.5,
                           100.0, -100.0, 89.0, -104.0], dtype=F32)


@pytest.mark.parametrize("op,opset", [
    ("Exp", 17), ("Log", 17), ("Sqrt", 17), ("Tanh", 17), ("Sigmoid", 17), ("Erf", 17), ("Reciprocal", 17),
    ("Abs", 17), ("Neg", 17), ("Floor", 17), ("Ceil", 17), ("Round", 17), ("Sin", 17), ("Cos", 17),
    ("Softplus", 17), ("Elu", 17), ("Selu", 17), ("HardSigmoid", 17), ("Gelu", 20),
])
def test_unary_special_values(op, opset):
    """0, -0, +-inf, NaN, denormals, huge values: IEEE results (log(0) = -inf, sqrt(-1) = NaN, exp(100) = inf)."""
    x = rng().permutation(np.tile(SPECIAL_VALUES, 3))
    check_op(op, {"x": x}, opset=opset)


@pytest.mark.parametrize("attrs", [{"min": -0.5, "max": 0.7}, {"min": 0.1}, {"max": -0.2}, {}],
                         ids=["min_max", "min", "max", "none"])
def test_clip_opset6(attrs):
    check_op("Clip", {"x": rand((7, 13, 3), -2, 2)}, opset=6, **attrs)


@pytest.mark.parametrize("opset", [11, 13])
@pytest.mark.parametrize("names,bounds", [
    (["x", "lo", "hi"], {"lo": -0.5, "hi": 0.7}),
    (["x", "lo"], {"lo": 0.1}),
    (["x", "", "hi"], {"hi": -0.2}),
    (["x"], {}),
], ids=["min_max", "min_only", "max_only", "none"])
def test_clip_inputs(opset, names, bounds):
    inits = {k: np.array(v, dtype=F32) for k, v in bounds.items()}
    check_op("Clip", {"x": rand((7, 13, 3), -2, 2)}, opset=opset, inits=inits, input_names=names)


def test_clip_int64_opset13():
    inits = {"lo": np.array(-3, dtype=np.int64), "hi": np.array(5, dtype=np.int64)}
    check_op("Clip", {"x": randint((7, 13), -10, 10)}, opset=13, inits=inits)


@pytest.mark.parametrize("slope_shape", [(1,), (13,), (7, 1)], ids=str)
def test_prelu(slope_shape):
    check_op("PRelu", {"x": rand((3, 7, 13), -3, 3)}, inits={"slope": rand(slope_shape, 0.05, 0.5)})


def test_unary_float64():
    x = rand((7, 13), -3, 3, dtype=np.float64)
    check([node("Exp", ["x"], ["e"]), node("Tanh", ["x"], ["t"]), node("Relu", ["x"], ["r"])],
          {"x": x}, ["e", "t", "r"], rtol=1e-10, atol=1e-12)


# ---------------------------------------------------------------------------------------------
# binary / variadic elementwise with broadcasting
# ---------------------------------------------------------------------------------------------

BCAST = [((3, 1, 7), (5, 1)), ((1,), (4, 33)), ((4, 33), (1,)), ((2, 3, 4, 5), (3, 1, 1)), ((13,), (7, 13)),
         ((6, 1, 1, 9), (1, 5, 7, 1)), ((), (7, 13)), ((7, 13), (7, 13))]
BCAST_IDS = [f"{a}+{b}" for a, b in BCAST]


def _float_pair(op, sa, sb):
    if op == "Div":
        return rand(sa, -3, 3), rand_nonzero(sb, 0.3, 3)
    if op == "Pow":
        return rand(sa, 0.1, 3), rand(sb, -2, 2)
    return rand(sa, -3, 3), rand(sb, -3, 3)


@pytest.mark.parametrize("shapes", BCAST, ids=BCAST_IDS)
@pytest.mark.parametrize("op", ["Add", "Sub", "Mul", "Div", "Pow", "Max", "Min"])
def test_binary_float(op, shapes):
    a, b = _float_pair(op, *shapes)
    check_op(op, {"a": a, "b": b})


@pytest.mark.parametrize("op", ["Add", "Sub", "Mul"])
def test_binary_float64(op):
    check_op(op, {"a": rand((3, 1, 7), -3, 3, dtype=np.float64), "b": rand((5, 1), -3, 3, dtype=np.float64)},
             rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("exponent", [2.0, 3.0, 0.5, 4.0, 1.0, -1.0, -2.0, -0.5, 1.5, 0.0])
@pytest.mark.parametrize("exp_shape", [(), (1,)], ids=["scalar", "one"])
def test_pow_constant_exponent(exponent, exp_shape):
    check_op("Pow", {"x": rand((7, 13), 0.1, 4)}, inits={"e": np.full(exp_shape, exponent, dtype=F32)})


@pytest.mark.parametrize("exponent", [2.0, 3.0, -1.0])
def test_pow_constant_integer_exponent_negative_base(exponent):
    x = rand_nonzero((7, 13), 0.2, 3)
    check_op("Pow", {"x": x}, inits={"e": np.array(exponent, dtype=F32)})


def test_pow_int64_exponent():
    check_op("Pow", {"x": rand((7, 13), 0.2, 3), "e": randint((13,), -2, 3)})


def test_pow_runtime_exponent_negative_base_integral():
    """Negative base with an integral (runtime) exponent is well defined: (-2)^3 = -8."""
    x = rand_nonzero((4, 33), 0.2, 2)
    e = randint((4, 33), -3, 3).astype(F32)
    check_op("Pow", {"x": x, "e": e})


VARIADIC_SHAPES = [[(3, 1, 7), (5, 1), (7,)], [(4, 33)], [(2, 13), (1,)], [(1, 5, 1), (2, 1, 9), (5, 9)]]


@pytest.mark.parametrize("shapes", VARIADIC_SHAPES, ids=lambda s: "+".join(map(str, s)))
@pytest.mark.parametrize("op", ["Max", "Min", "Sum", "Mean"])
def test_variadic(op, shapes):
    inputs = {f"x{i}": rand(s, -3, 3) for i, s in enumerate(shapes)}
    check_op(op, inputs)


@pytest.mark.parametrize("dtype", [np.int64, np.int32])
@pytest.mark.parametrize("op", ["Add", "Sub", "Mul", "Div", "Max", "Min"])
def test_binary_int(op, dtype):
    a = randint((3, 1, 7), -1000, 1000, dtype)
    b = randint((5, 1), -20, 20, dtype, nonzero=True)
    check_op(op, {"a": a, "b": b})


def test_int_div_truncates_toward_zero():
    a = np.array([7, -7, 7, -7, 1, -1, 0, 9, -9, 5, -5, 1000001, -1000001], dtype=np.int64)
    b = np.array([2, 2, -2, -2, 3, 3, 5, -4, 4, -5, 5, 7, 7], dtype=np.int64)
    check_op("Div", {"a": a, "b": b})


def _lattice(shape, dtype=F32):
    """Values on a coarse grid: exact ties are frequent, near ties never happen."""
    return (randint(shape, -3, 3) * 0.5).astype(dtype)


CMP_OPS = ["Equal", "Less", "Greater", "LessOrEqual", "GreaterOrEqual"]


@pytest.mark.parametrize("shapes", BCAST[:5], ids=BCAST_IDS[:5])
@pytest.mark.parametrize("dtype", ["float32", "int64"])
@pytest.mark.parametrize("op", CMP_OPS)
def test_compare(op, dtype, shapes):
    sa, sb = shapes
    if dtype == "float32":
        a, b = _lattice(sa), _lattice(sb)
    else:
        a, b = randint(sa, -3, 3), randint(sb, -3, 3)
    check_op(op, {"a": a, "b": b})


@pytest.mark.parametrize("op", ["Equal", "And", "Or", "Xor"])
def test_bool_from_comparisons(op):
    """Bool tensors produced by kernels (not fed), then combined."""
    a, b = _lattice((3, 1, 7)), _lattice((5, 1))
    nodes = [node("Less", ["a", "b"], ["l"]), node("GreaterOrEqual", ["a", "zero"], ["g"]), node(op, ["l", "g"], ["y"])]
    check(nodes, {"a": a, "b": b}, ["y"], inits={"zero": np.array(0.0, F32)})


def test_compare_float_continuous():
    a = rand((4, 33), -2, 2)
    b = rand((4, 33), -2, 2)
    b = np.where(np.abs(a - b) < 1e-3, b + 0.01, b).astype(F32)
    check([node(op, ["a", "b"], [op]) for op in CMP_OPS], {"a": a, "b": b}, CMP_OPS)


@pytest.mark.parametrize("shapes", [((3, 1, 7), (5, 1)), ((4, 33), (4, 33)), ((1,), (2, 13))], ids=str)
@pytest.mark.parametrize("op", ["And", "Or", "Xor"])
def test_logical(op, shapes):
    check_op(op, {"a": randbool(shapes[0]), "b": randbool(shapes[1])})


@pytest.mark.parametrize("shape", [(7, 13), (2, 3, 33)], ids=str)
def test_not(shape):
    check_op("Not", {"x": randbool(shape)})


@pytest.mark.parametrize("dtype", ["float32", "int64"])
@pytest.mark.parametrize("shapes", [((3, 1, 7), (5, 1), (1, 7)), ((4, 33), (4, 33), (4, 33)),
                                    ((1,), (2, 13), (13,)), ((2, 1, 13), (), (5, 1))], ids=str)
def test_where(shapes, dtype):
    sc, sx, sy = shapes
    gen = (lambda s: rand(s, -3, 3)) if dtype == "float32" else (lambda s: randint(s, -100, 100))
    check_op("Where", {"c": randbool(sc), "x": gen(sx), "y": gen(sy)})


def test_where_from_comparison():
    x = rand((5, 33), -2, 2, avoid=np.abs)
    check([node("Less", ["x", "zero"], ["c"]), node("Where", ["c", "x", "s"], ["y"])],
          {"x": x, "s": rand((33,), -1, 1)}, ["y"], inits={"zero": np.array(0.0, dtype=F32)})


@pytest.mark.parametrize("dtype", [np.int64, np.int32])
@pytest.mark.parametrize("fmod", [0, 1])
@pytest.mark.parametrize("shapes", [((7, 13), (7, 13)), ((3, 1, 7), (5, 1))], ids=str)
def test_mod_int(fmod, dtype, shapes):
    a = randint(shapes[0], -50, 50, dtype)
    b = randint(shapes[1], -7, 7, dtype, nonzero=True)
    check_op("Mod", {"a": a, "b": b}, fmod=fmod)


def test_mod_int_signs():
    a = np.array([7, -7, 7, -7, 6, -6, 0, 3, -3], dtype=np.int64)
    b = np.array([3, 3, -3, -3, 3, -3, 5, 5, 5], dtype=np.int64)
    check([node("Mod", ["a", "b"], ["m0"], fmod=0), node("Mod", ["a", "b"], ["m1"], fmod=1)],
          {"a": a, "b": b}, ["m0", "m1"])


@pytest.mark.parametrize("shapes", [((7, 13), (7, 13)), ((3, 1, 7), (5, 1)), ((4, 33), (1,))], ids=str)
def test_mod_float_fmod(shapes):
    g = rng()
    b = rand_nonzero(shapes[1], 0.5, 3)
    a = rand(shapes[0], -10, 10)
    full_b = np.broadcast_to(b, np.broadcast_shapes(a.shape, b.shape))
    full_a = np.broadcast_to(a, full_b.shape)
    # redraw dividends whose quotient is close to an integer (the discontinuity of fmod)
    for _ in range(100):
        bad = dist_to_int(full_a.astype(np.float64) / full_b) < 1e-3
        if not bad.any():
            break
        a = a.copy()
        idx = np.unique(np.ravel_multi_index(np.nonzero(bad), bad.shape))
        for flat in idx:
            pos = np.unravel_index(flat, bad.shape)
            a_pos = tuple(p if d != 1 else 0 for p, d in zip(pos[len(bad.shape) - a.ndim:], a.shape))
            a[a_pos] = g.uniform(-10, 10)
        full_a = np.broadcast_to(a, full_b.shape)
    check_op("Mod", {"a": a, "b": b}, fmod=1)


# ---------------------------------------------------------------------------------------------
# Cast, IsNaN, IsInf
# ---------------------------------------------------------------------------------------------

CAST_TYPES = ["float32", "float64", "int32", "int64", "bool"]
ONNX_TYPE = {"float32": 1, "float64": 11, "int32": 6, "int64": 7, "bool": 9}


def _cast_source(dtype, to, shape=(7, 13)):
    g = rng()
    if dtype == "bool":
        return randbool(shape)
    if dtype in ("float32", "float64"):
        x = g.uniform(-100, 100, size=shape)
        x.flat[::7] = 0.0
        x.flat[1::9] = np.round(x.flat[1::9])
        x.flat[2::11] = [-0.5, 0.5, 2.5, -2.5, 0.75, -0.75, 1e-30, -1e-30, 0.999999][: len(x.flat[2::11])]
        return x.astype(dtype)
    x = g.integers(-100000, 100000, size=shape)
    x.flat[::7] = 0
    if dtype == "int64" and to in ("float32", "float64"):  # exercise rounding of big integers
        x.flat[3::5] = g.integers(-(2 ** 40), 2 ** 40, size=len(x.flat[3::5]))
    return x.astype(dtype)


@pytest.mark.parametrize("src,to", [(a, b) for a in CAST_TYPES for b in CAST_TYPES if a != b],
                         ids=[f"{a}->{b}" for a in CAST_TYPES for b in CAST_TYPES if a != b])
def test_cast(src, to):
    check_op("Cast", {"x": _cast_source(src, to)}, to=ONNX_TYPE[to])


def test_cast_then_arith():
    """float -> int64 -> arithmetic -> float (the index arithmetic exporters emit)."""
    x = rand((7, 13), -50, 50, avoid=dist_to_int)
    check([node("Cast", ["x"], ["i"], to=7), node("Mul", ["i", "k"], ["m"]), node("Cast", ["m"], ["y"], to=1)],
          {"x": x}, ["y"], inits={"k": np.array(3, dtype=np.int64)})


def _special(shape, dtype=F32):
    x = rand(shape, -5, 5, dtype=dtype)
    flat = x.reshape(-1)
    idx = rng().permutation(flat.size)
    flat[idx[:5]] = np.nan
    flat[idx[5:9]] = np.inf
    flat[idx[9:13]] = -np.inf
    flat[idx[13]] = np.finfo(dtype).max
    flat[idx[14]] = 0.0
    return x


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", [(7, 13), (3, 1, 33)], ids=str)
def test_isnan(shape, dtype):
    check_op("IsNaN", {"x": _special(shape, dtype)})


@pytest.mark.parametrize("attrs", [{}, {"detect_negative": 0}, {"detect_positive": 0}],
                         ids=["both", "pos_only", "neg_only"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_isinf(attrs, dtype):
    check_op("IsInf", {"x": _special((7, 13), dtype)}, **attrs)


# ---------------------------------------------------------------------------------------------
# data movement
# ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("shape,target", [
    ((2, 3, 4, 5), [0, -1, 5]), ((2, 3, 4, 5), [0, 0, -1]), ((2, 3, 4, 5), [-1]), ((2, 3, 4, 5), [1, 0, -1, 2]),
    ((7, 13), [13, 7]), ((7, 13), [1, -1, 1]), ((1, 33), [3, 11]),
], ids=str)
def test_reshape(shape, target):
    check_op("Reshape", {"x": rand(shape)}, inits={"s": np.array(target, dtype=np.int64)})


@pytest.mark.parametrize("perm,target", [((0, 2, 1, 3), [0, 0, -1]), ((3, 1, 2, 0), [-1, 6]),
                                         ((1, 0, 2, 3), [2, -1])], ids=str)
def test_transpose_then_reshape(perm, target):
    """Reshape of a non-contiguous (transposed) tensor, then an elementwise op."""
    check([node("Transpose", ["x"], ["t"], perm=list(perm)), node("Reshape", ["t", "s"], ["r"]),
           node("Relu", ["r"], ["y"])], {"x": rand((2, 3, 4, 5))}, ["y"],
          inits={"s": np.array(target, dtype=np.int64)})


@pytest.mark.parametrize("axis", [0, 1, 2, 3, -1, -3])
def test_flatten(axis):
    check_op("Flatten", {"x": rand((2, 3, 5, 7))}, axis=axis)


@pytest.mark.parametrize("shape,axes", [((1, 7, 1, 13), [0, 2]), ((1, 7, 1, 13), [-2]), ((1, 7, 1, 13), None),
                                        ((7, 1), [1])], ids=str)
@pytest.mark.parametrize("opset", [11, 13])
def test_squeeze(opset, shape, axes):
    x = {"x": rand(shape)}
    if axes is None:
        check_op("Squeeze", x, opset=opset)
    elif opset == 11:
        check_op("Squeeze", x, opset=opset, axes=axes)
    else:
        check_op("Squeeze", x, opset=opset, inits={"axes": np.array(axes, dtype=np.int64)})


@pytest.mark.parametrize("shape,axes", [((7, 13), [0]), ((7, 13), [1, 3]), ((7, 13), [-1]), ((7, 13), [0, -1]),
                                        ((33,), [0, 2])], ids=str)
@pytest.mark.parametrize("opset", [11, 13])
def test_unsqueeze(opset, shape, axes):
    x = {"x": rand(shape)}
    if opset == 11:
        check_op("Unsqueeze", x, opset=opset, axes=axes)
    else:
        check_op("Unsqueeze", x, opset=opset, inits={"axes": np.array(axes, dtype=np.int64)})


def test_squeeze_to_scalar_and_unsqueeze_scalar():
    check([node("Squeeze", ["x"], ["s"]), node("Mul", ["s", "k"], ["y"]), node("Unsqueeze", ["y", "ax"], ["u"])],
          {"x": rand((1, 1))}, ["y", "u"], opset=13,
          inits={"k": rand((7,)), "ax": np.array([0, 2], np.int64)})


@pytest.mark.parametrize("perm", [(0, 2, 3, 1), (0, 3, 1, 2), (3, 2, 1, 0), (1, 0, 3, 2), (2, 0, 3, 1), None],
                         ids=str)
@pytest.mark.parametrize("shape", [(2, 3, 5, 7), (1, 33, 1, 13)], ids=str)
def test_transpose(shape, perm):
    attrs = {} if perm is None else {"perm": list(perm)}
    check_op("Transpose", {"x": rand(shape)}, **attrs)


def test_transpose_int64():
    check_op("Transpose", {"x": randint((3, 5, 7), -100, 100)}, perm=[2, 0, 1])


@pytest.mark.parametrize("shapes,axis", [
    (((2, 3, 5), (2, 3, 7), (2, 3, 1)), -1),
    (((2, 3, 5), (2, 1, 5), (2, 4, 5)), -2),
    (((2, 3, 5), (1, 3, 5), (3, 3, 5)), 0),
    (((7, 13), (7, 13), (7, 13)), 1),
], ids=str)
def test_concat(shapes, axis):
    check_op("Concat", {f"x{i}": rand(s) for i, s in enumerate(shapes)}, axis=axis)


def test_concat_same_input_twice_then_op():
    check([node("Concat", ["x", "y", "x"], ["c"], axis=1), node("Tanh", ["c"], ["t"])],
          {"x": rand((3, 5, 7)), "y": rand((3, 2, 7))}, ["t"])


def test_concat_int64_with_constant():
    check_op("Concat", {"a": randint((3, 5), -9, 9)}, inits={"b": randint((3, 2), -9, 9)}, axis=1)


SLICES = [
    dict(starts=[1, 0], ends=[4, 9], axes=[0, 2], steps=[2, 1]),
    dict(starts=[-1], ends=[-1000], axes=[1], steps=[-1]),
    dict(starts=[-4, 2], ends=[-1, 2 ** 63 - 1], axes=[-1, 0], steps=[1, 2]),
    dict(starts=[6, 8], ends=[0, -10], axes=[1, 2], steps=[-2, -3]),
    dict(starts=[0, 1, 2], ends=[5, 6, 7]),
    dict(starts=[-3], ends=[100], axes=[2]),
    dict(starts=[1, -5, 0], ends=[-1, -1, 9], axes=[0, 1, 2], steps=[1, 2, 2]),
]


@pytest.mark.parametrize("spec", SLICES, ids=lambda s: "_".join(f"{k}{v}" for k, v in s.items()))
def test_slice_opset13(spec):
    inits = {k: np.array(v, dtype=np.int64) for k, v in spec.items()}
    names = ["x", "starts", "ends"] + (["axes"] if "axes" in spec else []) + (["steps"] if "steps" in spec else [])
    check_op("Slice", {"x": rand((5, 7, 9))}, opset=13, inits=inits, input_names=names)


def test_slice_then_add():
    """Two slices of one tensor combined (strided reads feeding a kernel)."""
    starts0, ends0 = np.array([0], np.int64), np.array([2 ** 62], np.int64)
    check([node("Slice", ["x", "s0", "e0", "ax", "st"], ["even"]),
           node("Slice", ["x", "s1", "e0", "ax", "st"], ["odd"]),
           node("Add", ["even", "odd"], ["y"])],
          {"x": rand((3, 34))}, ["y"], opset=13,
          inits={"s0": starts0, "s1": np.array([1], np.int64), "e0": ends0, "ax": np.array([1], np.int64),
                 "st": np.array([2], np.int64)})


@pytest.mark.parametrize("shape,axis,split", [
    ((4, 7, 5), 1, [2, 3, 2]), ((4, 7, 5), -1, [1, 4]), ((6, 3), 0, None), ((4, 7, 5), 2, [5]),
], ids=str)
def test_split_opset13(shape, axis, split):
    n = len(split) if split is not None else 3
    inits = {"split": np.array(split, dtype=np.int64)} if split is not None else None
    check_op("Split", {"x": rand(shape)}, opset=13, inits=inits, n_outputs=n, axis=axis)


@pytest.mark.parametrize("shape,axis,num", [((4, 7, 5), 1, 3), ((10, 3), 0, 4), ((2, 3, 13), -1, 2),
                                            ((2, 6), 1, 3)], ids=str)
def test_split_opset18_num_outputs(shape, axis, num):
    check_op("Split", {"x": rand(shape)}, opset=18, n_outputs=num, axis=axis, num_outputs=num)


def test_split_opset11_attr():
    check_op("Split", {"x": rand((4, 9, 5))}, opset=11, n_outputs=3, axis=1, split=[2, 3, 4])


@pytest.mark.parametrize("data_shape,indices,axis", [
    ((5, 7, 3), np.array([[0, -1], [2, 4], [-5, 3]]), 0),
    ((5, 7, 3), np.array([6, -1, 0, 3, -7]), 1),
    ((5, 7, 3), np.array([[1, -2], [0, 2]]), -1),
    ((5, 7, 3), np.array(2), 1),
    ((33, 13), np.array([[0, 32, -33, 5, 7, -1, 16]]), 0),
], ids=lambda v: str(v.tolist()) if isinstance(v, np.ndarray) else str(v))
@pytest.mark.parametrize("idx_dtype", [np.int64, np.int32])
def test_gather(data_shape, indices, axis, idx_dtype):
    check_op("Gather", {"data": rand(data_shape), "idx": indices.astype(idx_dtype)}, axis=axis)


def test_gather_constant_indices():
    check_op("Gather", {"data": rand((5, 7, 3))}, inits={"idx": np.array([4, -1, 0], dtype=np.int64)}, axis=1)


def test_gather_embedding_lookup():
    """Constant table, run-time token ids (the embedding pattern)."""
    table = rand((100, 33))
    ids = randint((2, 9), 0, 99)
    check_op("Gather", {"ids": ids}, inits={"table": table}, input_names=["table", "ids"], axis=0)


def test_gather_int64_data():
    check_op("Gather", {"data": randint((6, 5), -1000, 1000), "idx": np.array([5, 0, -2], dtype=np.int64)}, axis=0)


@pytest.mark.parametrize("data_shape,idx_shape,axis", [((4, 7), (4, 5), 1), ((4, 7), (3, 7), 0),
                                                       ((3, 5, 7), (3, 5, 2), -1), ((3, 5, 7), (2, 5, 7), 0)],
                         ids=str)
def test_gather_elements(data_shape, idx_shape, axis):
    n = data_shape[axis]
    idx = randint(idx_shape, -n, n - 1)
    check_op("GatherElements", {"data": rand(data_shape), "idx": idx}, axis=axis)


@pytest.mark.parametrize("shape,target", [((3, 1), [2, 3, 5]), ((2, 3, 1), [3, 4]), ((1, 7), [5, 1]),
                                          ((7,), [2, 1, 7]), ((1, 1), [4, 33])], ids=str)
def test_expand(shape, target):
    check_op("Expand", {"x": rand(shape)}, inits={"shape": np.array(target, dtype=np.int64)})


def test_expand_int64():
    check_op("Expand", {"x": randint((3, 1), -9, 9)}, inits={"shape": np.array([2, 3, 4], dtype=np.int64)})


@pytest.mark.parametrize("shape,repeats", [((2, 3, 5), [2, 1, 3]), ((7,), [3]), ((1, 13), [4, 2]),
                                           ((3, 1), [1, 1])], ids=str)
def test_tile(shape, repeats):
    check_op("Tile", {"x": rand(shape)}, inits={"r": np.array(repeats, dtype=np.int64)})


PADS_4D = [[0, 0, 2, 3, 0, 0, 1, 4], [0, 1, 1, 0, 1, 0, 0, 2], [1, 0, 0, 1, 0, 2, 3, 0]]


@pytest.mark.parametrize("pads", PADS_4D, ids=str)
@pytest.mark.parametrize("mode", ["constant", "edge", "reflect"])
def test_pad_opset11(mode, pads):
    inits = {"pads": np.array(pads, dtype=np.int64)}
    names = ["x", "pads"]
    if mode == "constant":
        inits["value"] = np.array(1.5, dtype=F32)
        names.append("value")
    check_op("Pad", {"x": rand((2, 3, 7, 9))}, opset=11, inits=inits, input_names=names, mode=mode)


def test_pad_constant_default_value():
    check_op("Pad", {"x": rand((3, 7, 9))}, opset=13, inits={"pads": np.array([0, 1, 2, 1, 0, 3], np.int64)})


def test_pad_negative_crops():
    check_op("Pad", {"x": rand((3, 7, 9))}, opset=13,
             inits={"pads": np.array([0, -1, 2, 1, -2, -3], np.int64), "v": np.array(-2.0, F32)}, mode="constant")


@pytest.mark.parametrize("axes,pads", [([1, -1], [1, 2, 0, 3]), ([2], [2, 1]), ([0, 3], [1, 0, 1, 2])], ids=str)
@pytest.mark.parametrize("mode", ["constant", "edge", "reflect"])
def test_pad_opset18_axes(mode, axes, pads):
    inits = {"pads": np.array(pads, dtype=np.int64), "value": np.array(-0.75, dtype=F32),
             "axes": np.array(axes, dtype=np.int64)}
    check_op("Pad", {"x": rand((2, 3, 7, 9))}, opset=18, inits=inits, input_names=["x", "pads", "value", "axes"],
             mode=mode)


@pytest.mark.parametrize("pads", PADS_4D + [[0, 0, 7, 9, 0, 0, 7, 9]], ids=str)
def test_pad_wrap(pads):
    check_op("Pad", {"x": rand((2, 3, 7, 9))}, opset=19, inits={"pads": np.array(pads, dtype=np.int64)},
             mode="wrap")


def test_pad_int64_constant():
    check_op("Pad", {"x": randint((3, 5), -9, 9)}, opset=13,
             inits={"pads": np.array([1, 0, 0, 2], np.int64), "v": np.array(7, np.int64)})


# ---------------------------------------------------------------------------------------------
# MatMul / Gemm
# ---------------------------------------------------------------------------------------------

MATMUL_SHAPES = [
    ((5, 37), (37, 19)), ((1, 37), (37, 19)), ((5, 37), (37, 1)), ((13, 300), (300, 33)), ((70, 65), (65, 130)),
    ((260, 7), (7, 300)), ((67, 513), (513, 9)), ((2, 5, 37), (37, 19)), ((2, 5, 37), (2, 37, 19)),
    ((5, 37, 19), (19, 7)), ((3, 1, 5, 8), (4, 8, 6)), ((1, 5, 8), (3, 8, 6)), ((2, 1, 9, 16), (1, 3, 16, 17)),
    ((37,), (37, 19)), ((5, 37), (37,)), ((8,), (2, 8, 6)), ((2, 5, 8), (8,)), ((33,), (33,)),
]


@pytest.mark.parametrize("const_b", [False, True], ids=["B_input", "B_const"])
@pytest.mark.parametrize("sa,sb", MATMUL_SHAPES, ids=[f"{a}x{b}" for a, b in MATMUL_SHAPES])
def test_matmul(sa, sb, const_b):
    a, b = rand(sa), rand(sb)
    if const_b:
        check_op("MatMul", {"a": a}, inits={"b": b}, relnorm=MM_TOL)
    else:
        check_op("MatMul", {"a": a, "b": b}, relnorm=MM_TOL)


@pytest.mark.parametrize("perm_b", [(1, 0), None], ids=["T", "noT"])
def test_matmul_transposed_operands(perm_b):
    """MatMul(Transpose(a), Transpose(b)): layouts that are not row-major (K-major A, N-major B)."""
    nodes = [node("Transpose", ["a"], ["at"], perm=[1, 0])]
    if perm_b is None:
        nodes.append(node("MatMul", ["at", "b"], ["y"]))
        b = rand((37, 19))
    else:
        nodes += [node("Transpose", ["b"], ["bt"], perm=list(perm_b)), node("MatMul", ["at", "bt"], ["y"])]
        b = rand((19, 37))
    check(nodes, {"a": rand((37, 13)), "b": b}, ["y"], relnorm=MM_TOL)


def test_matmul_batched_transposed_key():
    """q @ k^T with the transpose of the last two dims (attention scores)."""
    check([node("Transpose", ["k"], ["kt"], perm=[0, 1, 3, 2]), node("MatMul", ["q", "kt"], ["y"])],
          {"q": rand((2, 3, 13, 16)), "k": rand((2, 3, 17, 16))}, ["y"], relnorm=MM_TOL)


def test_slice_then_matmul():
    check([node("Slice", ["x", "st", "en", "ax"], ["s"]), node("MatMul", ["s", "w"], ["y"])],
          {"x": rand((9, 40))}, ["y"], opset=13, relnorm=MM_TOL,
          inits={"st": np.array([1, 3], np.int64), "en": np.array([8, 40], np.int64), "ax": np.array([0, 1], np.int64),
                 "w": rand((37, 21))})


def test_matmul_int64():
    check_op("MatMul", {"a": randint((5, 7), -9, 9), "b": randint((7, 3), -9, 9)})


@pytest.mark.parametrize("trans_a", [0, 1])
@pytest.mark.parametrize("trans_b", [0, 1])
@pytest.mark.parametrize("c_shape", [None, (19,), (13, 1), (13, 19), (1,)], ids=str)
def test_gemm(trans_a, trans_b, c_shape):
    m, k, n = 13, 37, 19
    a = rand((k, m) if trans_a else (m, k))
    b = rand((n, k) if trans_b else (k, n))
    inits = {"b": b}
    names = ["a", "b"]
    if c_shape is not None:
        inits["c"] = rand(c_shape)
        names.append("c")
    check_op("Gemm", {"a": a}, inits=inits, input_names=names, transA=trans_a, transB=trans_b, relnorm=MM_TOL)


@pytest.mark.parametrize("alpha,beta", [(0.5, 2.0), (1.5, 0.0), (-1.0, 1.0)])
@pytest.mark.parametrize("const_b", [False, True], ids=["B_input", "B_const"])
def test_gemm_alpha_beta(alpha, beta, const_b):
    a, b, c = rand((70, 300)), rand((130, 300)), rand((1, 130))
    if const_b:
        check_op("Gemm", {"a": a}, inits={"b": b, "c": c}, alpha=alpha, beta=beta, transB=1, relnorm=MM_TOL)
    else:
        check_op("Gemm", {"a": a, "b": b, "c": c}, alpha=alpha, beta=beta, transB=1, relnorm=MM_TOL)


# ---------------------------------------------------------------------------------------------
# Conv
# ---------------------------------------------------------------------------------------------

CONV_CASES = [
    # name, x shape, w shape, bias, attrs
    ("3x3", (1, 3, 13, 13), (8, 3, 3, 3), True, {}),
    ("3x3_pad1_nobias", (2, 3, 13, 11), (8, 3, 3, 3), False, {"pads": [1, 1, 1, 1]}),
    ("stride2_asym_pads", (1, 4, 13, 13), (6, 4, 3, 3), True, {"strides": [2, 2], "pads": [0, 1, 2, 1]}),
    ("stride_2x1", (1, 4, 13, 12), (5, 4, 3, 3), True, {"strides": [2, 1], "pads": [1, 0, 1, 2]}),
    ("dilation2", (1, 3, 15, 15), (5, 3, 3, 3), True, {"dilations": [2, 2], "pads": [2, 2, 2, 2]}),
    ("dilation2_stride2", (1, 3, 15, 14), (5, 3, 3, 3), False, {"dilations": [2, 2], "strides": [2, 2]}),
    ("group2", (1, 4, 11, 11), (6, 2, 3, 3), True, {"group": 2, "pads": [1, 1, 1, 1]}),
    ("group3_asym", (2, 6, 9, 10), (9, 2, 3, 2), True, {"group": 3, "pads": [1, 0, 0, 1]}),
    ("depthwise_mult2", (1, 6, 13, 13), (12, 1, 3, 3), True, {"group": 6, "pads": [1, 1, 1, 1]}),
    ("depthwise_stride2", (2, 8, 13, 13), (8, 1, 3, 3), True, {"group": 8, "pads": [1, 1, 1, 1],
                                                                "strides": [2, 2]}),
    ("depthwise_5x5", (1, 16, 14, 14), (16, 1, 5, 5), False, {"group": 16, "pads": [2, 2, 2, 2]}),
    ("same_upper_s2", (1, 3, 13, 13), (4, 3, 3, 3), True, {"auto_pad": "SAME_UPPER", "strides": [2, 2]}),
    ("same_upper_k4", (1, 3, 13, 10), (4, 3, 4, 4), True, {"auto_pad": "SAME_UPPER"}),
    ("same_lower_k4", (1, 3, 13, 10), (4, 3, 4, 4), True, {"auto_pad": "SAME_LOWER"}),
    ("valid", (1, 3, 13, 13), (4, 3, 3, 3), True, {"auto_pad": "VALID", "strides": [2, 2]}),
    ("1x1", (1, 16, 9, 11), (33, 16, 1, 1), True, {}),
    ("1x1_stride2", (2, 16, 9, 11), (24, 16, 1, 1), False, {"strides": [2, 2]}),
    ("7x7_s2", (1, 3, 33, 33), (16, 3, 7, 7), True, {"strides": [2, 2], "pads": [3, 3, 3, 3]}),
    ("3x5_rect", (1, 3, 11, 17), (5, 3, 3, 5), True, {"pads": [1, 2, 1, 2]}),
    ("wide_channels", (2, 40, 9, 9), (70, 40, 3, 3), True, {"pads": [1, 1, 1, 1]}),
    ("patchify_4x4_s4", (1, 3, 16, 16), (16, 3, 4, 4), True, {"strides": [4, 4]}),
    ("1d", (2, 5, 37), (7, 5, 3), True, {"pads": [1, 2], "strides": [2]}),
    ("1d_dilated_group", (1, 6, 29), (6, 2, 3), False, {"group": 3, "dilations": [2]}),
    ("1d_k1", (2, 8, 13), (12, 8, 1), True, {}),
]


@pytest.mark.parametrize("xs,ws,bias,attrs", [c[1:] for c in CONV_CASES], ids=[c[0] for c in CONV_CASES])
def test_conv(xs, ws, bias, attrs):
    inits = {"w": rand(ws)}
    if bias:
        inits["b"] = rand((ws[0],))
    check_op("Conv", {"x": rand(xs)}, inits=inits, relnorm=MM_TOL, **attrs)


def test_conv_runtime_weights():
    check_op("Conv", {"x": rand((1, 3, 9, 9)), "w": rand((4, 3, 3, 3)), "b": rand((4,))}, pads=[1, 1, 1, 1],
             relnorm=MM_TOL)


# ---------------------------------------------------------------------------------------------
# pooling
# ---------------------------------------------------------------------------------------------

POOL_CASES = [
    ("k2s2", {"kernel_shape": [2, 2], "strides": [2, 2]}),
    ("k3s1", {"kernel_shape": [3, 3]}),
    ("k3s2_pad1", {"kernel_shape": [3, 3], "strides": [2, 2], "pads": [1, 1, 1, 1]}),
    ("k3s2_ceil", {"kernel_shape": [3, 3], "strides": [2, 2], "ceil_mode": 1}),
    ("k2s2_ceil", {"kernel_shape": [2, 2], "strides": [2, 2], "ceil_mode": 1}),
    ("k3s2_pad_asym", {"kernel_shape": [3, 3], "strides": [2, 2], "pads": [0, 1, 2, 1]}),
    ("k3s2_pad_ceil", {"kernel_shape": [3, 3], "strides": [2, 2], "pads": [1, 0, 0, 0], "ceil_mode": 1}),
    ("k3x2_s1x2", {"kernel_shape": [3, 2], "strides": [1, 2], "pads": [1, 0, 1, 1]}),
    ("same_upper", {"kernel_shape": [3, 3], "strides": [2, 2], "auto_pad": "SAME_UPPER"}),
    ("valid", {"kernel_shape": [2, 3], "strides": [2, 2], "auto_pad": "VALID"}),
]


@pytest.mark.parametrize("attrs", [c[1] for c in POOL_CASES], ids=[c[0] for c in POOL_CASES])
def test_maxpool(attrs):
    check_op("MaxPool", {"x": rand((2, 3, 13, 11), -3, 3)}, **attrs)


@pytest.mark.parametrize("attrs", [
    {"kernel_shape": [3, 3], "dilations": [2, 2]},
    {"kernel_shape": [2, 2], "dilations": [2, 2], "strides": [2, 2], "pads": [1, 1, 1, 1]},
    {"kernel_shape": [3, 3], "dilations": [2, 1], "strides": [2, 2], "ceil_mode": 1},
], ids=["k3d2", "k2d2s2p1", "k3d21s2ceil"])
def test_maxpool_dilation(attrs):
    check_op("MaxPool", {"x": rand((2, 3, 13, 11), -3, 3)}, **attrs)


def test_maxpool_negative_inputs_padded():
    """Padding must never win a max over all-negative windows."""
    check_op("MaxPool", {"x": rand((1, 2, 7, 9), -5, -1)}, kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1])


def test_max_min_relu_maxpool_propagate_nan():
    """NaN wins a max or min wherever an operand is NaN (numpy's np.maximum, also for the vectorized
    stride-2 taps of a pool); +-0, +-inf and denormals compare as IEEE numbers."""
    a, b = (rng().permutation(np.tile(SPECIAL_VALUES, 5)) for _ in range(2))
    x = rand((1, 2, 20, 40), -3, 3)
    x[0, 0, 7, 13] = x[0, 1, 0, 0] = x[0, 1, 19, 39] = np.nan
    model = make_model([node("Max", ["a", "b"], ["mx"]), node("Min", ["a", "b"], ["mn"]), node("Relu", ["a"], ["r"]),
                        node("MaxPool", ["x"], ["p"], kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1])],
                       {"a": a, "b": b, "x": x}, ["mx", "mn", "r", "p"])
    padded = np.pad(x, [(0, 0), (0, 0), (1, 1), (1, 1)], constant_values=-np.inf)
    pool = np.lib.stride_tricks.sliding_window_view(padded, (3, 3), axis=(2, 3))[:, :, ::2, ::2].max(axis=(-2, -1))
    refs = [np.maximum(a, b), np.minimum(a, b), np.maximum(a, F32(0)), pool]
    for name, ours, ref in zip(["Max", "Min", "Relu", "MaxPool"], run_tcomp(model, {"a": a, "b": b, "x": x}), refs):
        np.testing.assert_array_equal(ours, ref, err_msg=name)  # NaNs at the same places, zeros of either sign


@pytest.mark.parametrize("count_include_pad", [0, 1])
@pytest.mark.parametrize("attrs", [c[1] for c in POOL_CASES], ids=[c[0] for c in POOL_CASES])
def test_averagepool(attrs, count_include_pad):
    check_op("AveragePool", {"x": rand((2, 3, 13, 11), -3, 3)}, count_include_pad=count_include_pad, **attrs)


@pytest.mark.parametrize("op", ["MaxPool", "AveragePool"])
def test_pool_plane_too_large_for_the_stack(op):
    """A padded 1 x 400 x 405 plane exceeds the stack budget: the masked-tap schedule runs."""
    check_op(op, {"x": rand((1, 1, 400, 405), -3, 3)}, kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1])


def test_depthwise_conv_plane_too_large_for_the_stack():
    w = rand((2, 1, 3, 3))
    check([node("Conv", ["x", "w"], ["y"], group=2, pads=[1, 1, 1, 1])], {"x": rand((1, 2, 400, 405))}, ["y"],
          inits={"w": w}, relnorm=1e-5)


@pytest.mark.parametrize("op", ["MaxPool", "AveragePool"])
def test_pool_1d(op):
    check_op(op, {"x": rand((2, 5, 37))}, kernel_shape=[3], strides=[2], pads=[1, 1])


@pytest.mark.parametrize("shape", [(2, 5, 7, 9), (1, 33, 1, 1), (2, 5, 17), (1, 70, 13, 13)], ids=str)
@pytest.mark.parametrize("op", ["GlobalAveragePool", "GlobalMaxPool"])
def test_global_pool(op, shape):
    check_op(op, {"x": rand(shape, -3, 3)})


# ---------------------------------------------------------------------------------------------
# reductions
# ---------------------------------------------------------------------------------------------

REDUCE_OPS = ["ReduceSum", "ReduceMean", "ReduceMax", "ReduceMin", "ReduceProd", "ReduceSumSquare", "ReduceL1",
              "ReduceL2", "ReduceLogSumExp"]
REDUCE_AXES = [([1], 1), ([0, 2], 0), ([-1], 0), ([0], 1), ([2, 0], 1), (None, 0), (None, 1)]


def _reduce_check(op, x, axes, keepdims, opset, **kw):
    axes_as_input = opset >= 18 or (op == "ReduceSum" and opset >= 13)
    attrs = {"keepdims": keepdims}
    inits = None
    names = ["x"]
    if axes is not None:
        if axes_as_input:
            inits = {"axes": np.array(axes, dtype=np.int64)}
            names.append("axes")
        else:
            attrs["axes"] = axes
    return check_op(op, {"x": x}, opset=opset, inits=inits, input_names=names, **attrs, **kw)


@pytest.mark.parametrize("opset", [13, 18])
@pytest.mark.parametrize("axes,keepdims", REDUCE_AXES, ids=[f"{a}-k{k}" for a, k in REDUCE_AXES])
@pytest.mark.parametrize("op", REDUCE_OPS)
def test_reduce(op, axes, keepdims, opset):
    x = rand((3, 7, 13), 0.7, 1.3) if op == "ReduceProd" else rand((3, 7, 13), -2, 2)
    if op == "ReduceProd" and axes is None:
        x = rand((3, 7, 13), 0.97, 1.03)
    _reduce_check(op, x, axes, keepdims, opset)


@pytest.mark.parametrize("op", ["ReduceSum", "ReduceMean", "ReduceMax", "ReduceL2", "ReduceLogSumExp"])
@pytest.mark.parametrize("axes", [[-1], [0], [0, 2]], ids=str)
def test_reduce_large(op, axes):
    _reduce_check(op, rand((9, 513, 5), -2, 2), axes, 0, 18, relnorm=MM_TOL)


@pytest.mark.parametrize("op", ["ReduceSum", "ReduceMax", "ReduceMin", "ReduceProd"])
def test_reduce_int64(op):
    x = randint((3, 7, 5), -3, 3) if op == "ReduceProd" else randint((3, 7, 5), -1000, 1000)
    _reduce_check(op, x, [1], 0, 18)


@pytest.mark.parametrize("op,lo,hi", [("ReduceMax", -5, -1), ("ReduceMin", 1, 5), ("ReduceMax", 1e-3, 1e-2)],
                         ids=["max_all_negative", "min_all_positive", "max_small_positive"])
@pytest.mark.parametrize("axes", [[1], [0, 2], None], ids=str)
def test_reduce_minmax_one_sided(op, lo, hi, axes):
    """The initial value of a max/min reduction must not leak in (no 0 as the start of a max)."""
    _reduce_check(op, rand((3, 7, 13), lo, hi), axes, 0, 18)


@pytest.mark.parametrize("op", ["GlobalMaxPool", "ReduceMax"])
def test_global_max_all_negative(op):
    x = rand((2, 5, 7, 9), -5, -1)
    if op == "GlobalMaxPool":
        check_op(op, {"x": x})
    else:
        _reduce_check(op, x, [2, 3], 1, 18)


def test_reduce_noop_with_empty_axes():
    check_op("ReduceSum", {"x": rand((3, 7))}, opset=18, noop_with_empty_axes=1)


def test_reduce_logsumexp_large_values():
    """Needs the max-subtraction trick: exp(100) overflows float32."""
    _reduce_check("ReduceLogSumExp", rand((3, 7, 13), 80, 120), [-1], 0, 18)


# ---------------------------------------------------------------------------------------------
# Softmax, LayerNormalization, BatchNormalization
# ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("scale", [1.0, 50.0], ids=["normal", "large"])
@pytest.mark.parametrize("axis", [-1, 1, 0, 2])
@pytest.mark.parametrize("op", ["Softmax", "LogSoftmax"])
def test_softmax_opset13(op, axis, scale):
    check_op(op, {"x": rand((3, 7, 33), -scale, scale)}, opset=13, axis=axis)


@pytest.mark.parametrize("axis", [1, None, 2, 0])
@pytest.mark.parametrize("op", ["Softmax", "LogSoftmax"])
def test_softmax_opset11_flatten_semantics(op, axis):
    attrs = {} if axis is None else {"axis": axis}
    check_op(op, {"x": rand((3, 7, 13), -4, 4)}, opset=11, **attrs)


def test_softmax_wide_row():
    check_op("Softmax", {"x": rand((4, 1031), -8, 8)}, opset=13, axis=-1)


@pytest.mark.parametrize("mask_value", [-np.inf, float(np.finfo(np.float32).min), -1e9], ids=["-inf", "fmin", "-1e9"])
def test_softmax_with_masked_entries(mask_value):
    """Causal-mask style: masked entries (added -inf / float32 min) get probability 0, rows still sum to 1."""
    x = rand((2, 13, 13), -4, 4)
    mask = np.triu(np.full((13, 13), mask_value, F32), k=1)
    check([node("Add", ["x", "mask"], ["s"]), node("Softmax", ["s"], ["y"], axis=-1)], {"x": x}, ["y"], opset=13,
          inits={"mask": mask})


@pytest.mark.parametrize("bias", [True, False], ids=["bias", "nobias"])
@pytest.mark.parametrize("shape,axis", [((2, 5, 33), -1), ((2, 5, 33), -2), ((3, 4, 5, 7), -1), ((7, 130), 1),
                                        ((2, 5, 33), 1)], ids=str)
def test_layernorm(shape, axis, bias):
    norm_shape = shape[axis:]
    inits = {"scale": rand(norm_shape, 0.5, 1.5)}
    if bias:
        inits["bias"] = rand(norm_shape)
    check_op("LayerNormalization", {"x": rand(shape, 1.0, 4.0)}, inits=inits, axis=axis)


def test_layernorm_epsilon_small_variance():
    x = rand((4, 33), -1e-2, 1e-2) + F32(3.0)
    check_op("LayerNormalization", {"x": x}, inits={"scale": rand((33,), 0.5, 1.5), "bias": rand((33,))},
             axis=-1, epsilon=1e-3, rtol=1e-3, atol=1e-4)


def test_layernorm_float16_computes_in_float32():
    """A float16 layer norm (BERT in half precision): statistics in float32, the result rounded once."""
    x = rand((4, 768), 1.0, 4.0).astype(np.float16)
    inits = {"scale": rand((768,), 0.5, 1.5).astype(np.float16), "bias": rand((768,)).astype(np.float16)}
    check_op("LayerNormalization", {"x": x}, inits=inits, axis=-1, rtol=2e-3, atol=2e-3)


def _bn_params(c):
    return {"scale": rand((c,), 0.5, 1.5), "bias": rand((c,)), "mean": rand((c,)), "var": rand((c,), 0.2, 2.0)}


@pytest.mark.parametrize("shape", [(2, 6, 7, 5), (5, 6), (2, 6, 9), (1, 33, 1, 1)], ids=str)
def test_batchnorm(shape):
    check_op("BatchNormalization", {"x": rand(shape, -3, 3)}, opset=15, inits=_bn_params(shape[1]),
             epsilon=1e-3)


@pytest.mark.parametrize("shape", [(4, 6, 7, 5), (5, 6), (3, 6, 9)], ids=str)
def test_batchnorm_training_mode(shape):
    """Batch statistics normalize; the running mean/var outputs blend them in (vs onnx.reference)."""
    params = _bn_params(shape[1])
    inputs = {"x": rand(shape, -3, 3), **params}
    model = make_model([node("BatchNormalization", list(inputs), ["y", "running_mean", "running_var"],
                             epsilon=1e-3, momentum=0.8, training_mode=1)], inputs,
                       ["y", "running_mean", "running_var"], opset=15)
    expected = ReferenceEvaluator(model).run(None, inputs)
    for name, ours, ref in zip(["y", "running_mean", "running_var"], run_tcomp(model, inputs), expected):
        assert_matches(ours, ref, name=name)


def test_batchnorm_after_conv():
    inits = {"w": rand((8, 3, 3, 3)), "cb": rand((8,))}
    inits.update(_bn_params(8))
    check([node("Conv", ["x", "w", "cb"], ["c"], pads=[1, 1, 1, 1]),
           node("BatchNormalization", ["c", "scale", "bias", "mean", "var"], ["y"])],
          {"x": rand((2, 3, 11, 11))}, ["y"], opset=15, inits=inits, relnorm=MM_TOL)


def test_batchnorm_after_conv_no_bias_then_relu():
    inits = {"w": rand((6, 1, 3, 3))}
    inits.update(_bn_params(6))
    check([node("Conv", ["x", "w"], ["c"], pads=[1, 1, 1, 1], group=6),
           node("BatchNormalization", ["c", "scale", "bias", "mean", "var"], ["bn"], epsilon=1e-5),
           node("Relu", ["bn"], ["y"])],
          {"x": rand((1, 6, 13, 13))}, ["y"], opset=15, inits=inits, relnorm=MM_TOL)


# ---------------------------------------------------------------------------------------------
# fusion chains
# ---------------------------------------------------------------------------------------------

def test_chain_conv_residual_relu():
    x = rand((1, 8, 13, 13))
    check([node("Conv", ["x", "w", "b"], ["c"], pads=[1, 1, 1, 1]), node("Add", ["c", "x"], ["s"]),
           node("Relu", ["s"], ["y"])],
          {"x": x}, ["y"], inits={"w": rand((8, 8, 3, 3), -0.3, 0.3), "b": rand((8,))}, relnorm=MM_TOL)


def test_chain_resnet_block():
    """Conv-BN-Relu-Conv-BN + identity, Relu (a basic block)."""
    inits = {"w1": rand((8, 8, 3, 3), -0.3, 0.3), "w2": rand((8, 8, 3, 3), -0.3, 0.3)}
    for i in (1, 2):
        inits.update({f"{k}{i}": v for k, v in _bn_params(8).items()})
    nodes = [
        node("Conv", ["x", "w1"], ["c1"], pads=[1, 1, 1, 1]),
        node("BatchNormalization", ["c1", "scale1", "bias1", "mean1", "var1"], ["b1"]),
        node("Relu", ["b1"], ["r1"]),
        node("Conv", ["r1", "w2"], ["c2"], pads=[1, 1, 1, 1]),
        node("BatchNormalization", ["c2", "scale2", "bias2", "mean2", "var2"], ["b2"]),
        node("Add", ["b2", "x"], ["s"]),
        node("Relu", ["s"], ["y"]),
    ]
    check(nodes, {"x": rand((2, 8, 9, 9))}, ["y"], opset=15, inits=inits, relnorm=MM_TOL)


def test_chain_stem_conv_bn_relu_maxpool():
    inits = {"w": rand((8, 3, 7, 7), -0.3, 0.3)}
    inits.update(_bn_params(8))
    nodes = [node("Conv", ["x", "w"], ["c"], strides=[2, 2], pads=[3, 3, 3, 3]),
             node("BatchNormalization", ["c", "scale", "bias", "mean", "var"], ["b"]),
             node("Relu", ["b"], ["r"]),
             node("MaxPool", ["r"], ["y"], kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1])]
    check(nodes, {"x": rand((1, 3, 33, 33))}, ["y"], opset=15, inits=inits, relnorm=MM_TOL)


def _gelu_erf_nodes(src, out):
    return [node("Div", [src, "sqrt2"], [f"{out}_d"]), node("Erf", [f"{out}_d"], [f"{out}_e"]),
            node("Add", [f"{out}_e", "one"], [f"{out}_a"]), node("Mul", [src, f"{out}_a"], [f"{out}_m"]),
            node("Mul", [f"{out}_m", "half"], [out])]


GELU_CONSTS = {"sqrt2": np.array(1.4142135381698608, F32), "one": np.array(1.0, F32), "half": np.array(0.5, F32)}


@pytest.mark.parametrize("shape,n", [((2, 13, 32), 48), ((7, 65), 130)], ids=str)
def test_chain_matmul_bias_gelu(shape, n):
    k = shape[-1]
    inits = {"w": rand((k, n), -0.3, 0.3), "bias": rand((n,))}
    inits.update(GELU_CONSTS)
    nodes = [node("MatMul", ["x", "w"], ["mm"]), node("Add", ["mm", "bias"], ["h"])] + _gelu_erf_nodes("h", "y")
    check(nodes, {"x": rand(shape)}, ["y"], inits=inits, relnorm=MM_TOL)


@pytest.mark.parametrize("widths", [(32, 32), (32, 32, 32), (32, 48, 16)], ids=str)
def test_chain_horizontal_matmuls(widths):
    k = 32
    inits, nodes, outs = {}, [], []
    for i, n in enumerate(widths):
        inits[f"w{i}"] = rand((k, n), -0.3, 0.3)
        inits[f"b{i}"] = rand((n,))
        nodes += [node("MatMul", ["x", f"w{i}"], [f"m{i}"]), node("Add", [f"m{i}", f"b{i}"], [f"o{i}"])]
        outs.append(f"o{i}")
    check(nodes, {"x": rand((2, 13, k))}, outs, inits=inits, relnorm=MM_TOL)


def test_chain_horizontal_matmuls_into_attention():
    """q, k, v projections of one input (horizontal fusion), then reshaped into heads and used."""
    b, s, d, h = 2, 13, 32, 4
    inits = {}
    for name in "qkv":
        inits[f"w{name}"] = rand((d, d), -0.3, 0.3)
        inits[f"b{name}"] = rand((d,))
    inits["heads"] = np.array([b, s, h, d // h], np.int64)
    inits["scale"] = np.array(1.0 / math.sqrt(d // h), F32)
    inits["merge"] = np.array([b, s, d], np.int64)
    nodes = []
    for name in "qkv":
        nodes += [node("MatMul", ["x", f"w{name}"], [f"{name}0"]), node("Add", [f"{name}0", f"b{name}"], [f"{name}1"]),
                  node("Reshape", [f"{name}1", "heads"], [f"{name}2"])]
    nodes += [node("Transpose", ["q2"], ["q"], perm=[0, 2, 1, 3]), node("Transpose", ["k2"], ["kt"], perm=[0, 2, 3, 1]),
              node("Transpose", ["v2"], ["v"], perm=[0, 2, 1, 3]),
              node("MatMul", ["q", "kt"], ["sc"]), node("Mul", ["sc", "scale"], ["scs"]),
              node("Softmax", ["scs"], ["p"], axis=-1), node("MatMul", ["p", "v"], ["ctx"]),
              node("Transpose", ["ctx"], ["ctxt"], perm=[0, 2, 1, 3]), node("Reshape", ["ctxt", "merge"], ["y"])]
    check(nodes, {"x": rand((b, s, d))}, ["y"], opset=13, inits=inits, relnorm=MM_TOL)


@pytest.mark.parametrize("mask_shape", [(1, 1, 1, 17), (2, 1, 13, 17), (13, 17)], ids=str)
def test_chain_scaled_masked_softmax(mask_shape):
    q, k = rand((2, 3, 13, 16)), rand((2, 3, 16, 17))
    mask = np.where(randbool(mask_shape), 0.0, -10000.0).astype(F32)
    mask.reshape(-1)[0] = 0.0
    nodes = [node("MatMul", ["q", "k"], ["s"]), node("Mul", ["s", "scale"], ["ss"]),
             node("Add", ["ss", "mask"], ["sm"]), node("Softmax", ["sm"], ["y"], axis=-1)]
    check(nodes, {"q": q, "k": k, "mask": mask}, ["y"], opset=13,
          inits={"scale": np.array(0.25, F32)}, rtol=1e-4, atol=1e-5)


def test_chain_decomposed_layernorm():
    """The opset<17 export of LayerNorm: ReduceMean, Sub, Pow, ReduceMean, Add, Sqrt, Div, Mul, Add."""
    d = 33
    inits = {"two": np.array(2.0, F32), "eps": np.array(1e-5, F32), "g": rand((d,), 0.5, 1.5), "b": rand((d,))}
    nodes = [node("ReduceMean", ["x"], ["mu"], axes=[-1]), node("Sub", ["x", "mu"], ["xc"]),
             node("Pow", ["xc", "two"], ["sq"]), node("ReduceMean", ["sq"], ["var"], axes=[-1]),
             node("Add", ["var", "eps"], ["ve"]), node("Sqrt", ["ve"], ["sd"]), node("Div", ["xc", "sd"], ["n"]),
             node("Mul", ["n", "g"], ["ng"]), node("Add", ["ng", "b"], ["y"])]
    check(nodes, {"x": rand((2, 7, d), -2, 3)}, ["y"], opset=13, inits=inits)


def test_chain_multi_consumer_and_intermediate_output():
    """A value with several consumers that is also a graph output."""
    nodes = [node("Mul", ["a", "b"], ["p"]), node("Exp", ["p"], ["e"]), node("Add", ["p", "e"], ["s"]),
             node("Sigmoid", ["p"], ["g"]), node("Mul", ["s", "g"], ["y"])]
    check(nodes, {"a": rand((3, 1, 7)), "b": rand((5, 1))}, ["y", "p", "g"])


def test_chain_elementwise_broadcast_long():
    nodes = [node("Sub", ["x", "m"], ["a"]), node("Mul", ["a", "s"], ["b"]), node("Tanh", ["b"], ["c"]),
             node("Add", ["c", "x"], ["d"]), node("Max", ["d", "z"], ["e"]), node("Neg", ["e"], ["y"])]
    check(nodes, {"x": rand((2, 5, 33)), "m": rand((5, 1)), "s": rand((33,))}, ["y"],
          inits={"z": np.array(-0.2, F32)})


# big enough to be split across threads
@pytest.mark.parametrize("case", ["add_bcast", "softmax", "reduce_mean", "transpose", "conv"])
def test_large_tensors(case):
    if case == "add_bcast":
        check_op("Add", {"a": rand((64, 33, 50)), "b": rand((33, 1))})
    elif case == "softmax":
        check_op("Softmax", {"x": rand((257, 401), -5, 5)}, opset=13, axis=-1)
    elif case == "reduce_mean":
        _reduce_check("ReduceMean", rand((64, 33, 50)), [1], 0, 18)
    elif case == "transpose":
        check_op("Transpose", {"x": rand((33, 64, 49))}, perm=[2, 0, 1])
    else:
        check_op("Conv", {"x": rand((1, 16, 37, 37))}, inits={"w": rand((32, 16, 3, 3)), "b": rand((32,))},
                 pads=[1, 1, 1, 1], relnorm=MM_TOL)


# ---------------------------------------------------------------------------------------------
# graph plumbing: shape folding, Constant, Identity, outputs
# ---------------------------------------------------------------------------------------------

def test_shape_gather_concat_reshape():
    """The dynamic-reshape idiom of exported models: Shape -> Gather -> Unsqueeze -> Concat -> Reshape."""
    nodes = [node("Shape", ["x"], ["shp"]), node("Gather", ["shp", "i0"], ["d0"], axis=0),
             node("Unsqueeze", ["d0", "ax0"], ["d0u"]), node("Concat", ["d0u", "m1"], ["newshape"], axis=0),
             node("Reshape", ["x", "newshape"], ["r"]), node("Relu", ["r"], ["y"])]
    check(nodes, {"x": rand((3, 5, 7))}, ["y"], opset=13,
          inits={"i0": np.array(0, np.int64), "ax0": np.array([0], np.int64), "m1": np.array([-1], np.int64)})


def test_constant_node():
    c = np.arange(13, dtype=F32) * F32(0.25) - F32(1.0)
    nodes = [node("Constant", [], ["c"], value=numpy_helper.from_array(c)), node("Mul", ["x", "c"], ["y"])]
    check(nodes, {"x": rand((7, 13))}, ["y"])


def test_identity_and_input_as_output():
    x = rand((7, 13))
    check([node("Identity", ["x"], ["y"]), node("Relu", ["x"], ["r"])], {"x": x}, ["y", "r"])


def test_same_value_two_outputs():
    check([node("Relu", ["x"], ["r"]), node("Identity", ["r"], ["r2"])], {"x": rand((7, 13))}, ["r", "r2"])


def test_dropout_inference_is_identity():
    check([node("Dropout", ["x"], ["d"]), node("Add", ["d", "x"], ["y"])], {"x": rand((7, 13))}, ["y"], opset=13)


def test_run_twice_fresh_inputs():
    """Running a compiled module twice gives fresh results (no stale buffers)."""
    model = make_model([node("MatMul", ["a", "b"], ["m"]), node("Relu", ["m"], ["y"])],
                       {"a": rand((5, 37)), "b": rand((37, 19))}, ["y"])
    feeds = [{"a": rand((5, 37)), "b": rand((37, 19))} for _ in range(3)]
    refs = [reference(model, f) for f in feeds]
    model = with_static_outputs(model, refs[0])
    outs = run_tcomp_many(model, feeds)
    for out, ref in zip(outs, refs):
        np.testing.assert_allclose(out[0], ref[0], rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("feeds", [{"x": rand((13, 7))}, {"z": rand((7, 13))}, {"x": rand((7, 13)).astype(np.float64)},
                                   {}], ids=["wrong_shape", "wrong_name", "wrong_dtype", "missing"])
def test_bad_feeds_raise_input_error(feeds):
    model = make_model([node("Relu", ["x"], ["y"])], {"x": rand((7, 13))}, ["y"])
    model = with_static_outputs(model, reference(model, {"x": rand((7, 13))}))
    with pytest.raises(tcomp.InputError):
        run_tcomp(model, feeds)


# ---------------------------------------------------------------------------------------------
# the same model at an old and a new opset (ops whose signature changed)
# ---------------------------------------------------------------------------------------------

def _versioned_model_nodes(opset):
    """Squeeze/Unsqueeze/ReduceSum/ReduceMean/Split/Pad/Clip/Softmax with the encoding of ``opset``."""
    inits = {"pads": np.array([0, 1, 0, 2], np.int64), "pv": np.array(0.25, F32), "lo": np.array(-0.5, F32),
             "hi": np.array(0.8, F32)}
    nodes = []
    if opset >= 13:
        inits.update({"ax1": np.array([1], np.int64), "ax0": np.array([0], np.int64)})
        nodes.append(node("Unsqueeze", ["x", "ax0"], ["u"]))
        nodes.append(node("Squeeze", ["u", "ax0"], ["s"]))
        nodes.append(node("ReduceSum", ["s", "ax1"], ["rs"], keepdims=1))
    else:
        nodes.append(node("Unsqueeze", ["x"], ["u"], axes=[0]))
        nodes.append(node("Squeeze", ["u"], ["s"], axes=[0]))
        nodes.append(node("ReduceSum", ["s"], ["rs"], axes=[1], keepdims=1))
    if opset >= 18:
        nodes.append(node("ReduceMean", ["s", "ax1"], ["rm"], keepdims=1))
        nodes.append(node("Split", ["s"], ["p0", "p1"], axis=1, num_outputs=2))
    else:
        nodes.append(node("ReduceMean", ["s"], ["rm"], axes=[1], keepdims=1))
        if opset >= 13:
            inits["split"] = np.array([17, 16], np.int64)
            nodes.append(node("Split", ["s", "split"], ["p0", "p1"], axis=1))
        else:
            nodes.append(node("Split", ["s"], ["p0", "p1"], axis=1, split=[17, 16]))
    nodes += [
        node("Pad", ["p1", "pads", "pv"], ["pd"], mode="constant"),
        node("Clip", ["p0", "lo", "hi"], ["cl"]),
        node("Softmax", ["s"], ["sm"], axis=-1),
        node("Add", ["rs", "rm"], ["r"]),
    ]
    return nodes, inits


@pytest.mark.parametrize("opset", [11, 13, 17, 18])
def test_same_model_across_opsets(opset):
    nodes, inits = _versioned_model_nodes(opset)
    outs = check(nodes, {"x": rand((5, 33), -2, 2)}, ["r", "pd", "cl", "sm"], opset=opset, inits=inits)
    assert [o.shape for o in outs[0]] == [(5, 1), (5, 19), (5, 17), (5, 33)]


@pytest.mark.parametrize("opset", [13, 18])
def test_reduce_mean_max_versions(opset):
    x = rand((4, 7, 9))
    for op in ("ReduceMean", "ReduceMax", "ReduceL2"):
        _reduce_check(op, x, [0, -1], 1, opset)
