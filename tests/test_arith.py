"""The integer simplifier (tir.arith) and the affine index-map analysis (tir.iter_map), on their own.

Property tests draw new random expressions on every run and check them against a brute-force
evaluator written here, independent of the simplifier: floor division, wrapping narrow dtypes.
"""
import itertools
import math
import random

import pytest

from tcomp.tir import arith
from tcomp.tir.expr import (
    BinOp,
    Buffer,
    Cast,
    Cmp,
    FloatImm,
    IntImm,
    Load,
    Select,
    Var,
    is_unsigned,
    size_var,
    walk,
)
from tcomp.tir.iter_map import detect_iter_map


class Undefined(Exception):
    """Division by zero: the expression has no value there (a rewrite may give any)."""


def _wrap(value, dtype):
    if dtype == "int64":  # the index type: unbounded
        return value
    if dtype == "bool":
        return int(bool(value))
    bits = int(dtype.lstrip("uint"))
    value &= (1 << bits) - 1
    return value - (1 << bits) if not is_unsigned(dtype) and value >= 1 << (bits - 1) else value


def _evaluate(expr, env):
    """Reference semantics: floor division, narrow dtypes wrap; loads read a fixed pseudo-random table."""
    if isinstance(expr, Var):
        return env[expr]
    if isinstance(expr, IntImm):
        return expr.value
    if isinstance(expr, Load):
        return _wrap(_evaluate(expr.indices[0], env) * 7919 % 509 - 254, expr.dtype)
    if isinstance(expr, Select):
        cond, a, b = (_evaluate(e, env) for e in (expr.cond, expr.a, expr.b))
        return a if cond else b
    if isinstance(expr, Cast):
        return _wrap(_evaluate(expr.value, env), expr.dtype)
    a, b = _evaluate(expr.a, env), _evaluate(expr.b, env)
    if isinstance(expr, Cmp):
        return int({"lt": a < b, "le": a <= b, "gt": a > b, "ge": a >= b, "eq": a == b, "ne": a != b}[expr.op])
    if expr.op in ("floordiv", "floormod") and b == 0:
        raise Undefined
    value = {"add": lambda: a + b, "sub": lambda: a - b, "mul": lambda: a * b, "floordiv": lambda: a // b,
             "floormod": lambda: a % b, "min": lambda: min(a, b), "max": lambda: max(a, b),
             "and": lambda: int(bool(a) and bool(b)), "or": lambda: int(bool(a) or bool(b))}[expr.op]()
    return _wrap(value, expr.dtype)


_TABLE = Buffer("T", (1000,), "int64")
_DIVISORS = (1, 2, 3, 4, 5, 6, 8, 12, 16, 32, -1, -2, -3, -4, -8, -16)


def _random_expr(rng, leaves, depth, dtype="int64"):
    """Integer expressions of +, -, *, //, % (negative divisors included), min, max, select, loads."""
    if depth == 0 or rng.random() < 0.15:
        return rng.choice(leaves) if rng.random() < 0.7 else IntImm(_wrap(rng.randint(-20, 20), dtype), dtype)
    kind = rng.random()
    if kind < 0.06 and dtype == "int64":
        return Load(_TABLE, (_random_expr(rng, leaves, depth - 1),))
    if kind < 0.15:
        cond = Cmp(rng.choice(["lt", "le", "gt", "ge", "eq", "ne"]), _random_expr(rng, leaves, depth - 1, dtype),
                   _random_expr(rng, leaves, depth - 1, dtype))
        if rng.random() < 0.3:
            cond = BinOp(rng.choice(["and", "or"]), cond, IntImm(rng.randint(0, 1), "bool"))
        return Select(cond, _random_expr(rng, leaves, depth - 1, dtype), _random_expr(rng, leaves, depth - 1, dtype))
    op = rng.choice(["add", "sub", "mul", "floordiv", "floormod", "min", "max", "floordiv", "floormod"])
    a = _random_expr(rng, leaves, depth - 1, dtype)
    if op in ("floordiv", "floormod", "mul") and rng.random() < 0.8:
        c = IntImm(_wrap(rng.choice(_DIVISORS), dtype), dtype)
        return BinOp(op, a, c) if rng.random() < 0.8 else BinOp(op, c, a)
    return BinOp(op, a, _random_expr(rng, leaves, depth - 1, dtype))


def _random_bounds(rng, variables):
    """Ranges: from 0, around 0 (negative values), or open above (a size variable at least 1)."""
    bounds = {}
    for v in variables:
        kind = rng.random()
        if kind < 0.5:
            bounds[v] = (0, rng.choice([0, 1, 3, 7, 15, 31]))
        elif kind < 0.8:
            lo = rng.randint(-20, 5)
            bounds[v] = (lo, lo + rng.randint(0, 20))
        else:
            bounds[v] = (rng.randint(1, 4), None)
    return bounds


def _sample_env(rng, bounds):
    return {v: rng.randint(lo, lo + 40 if hi is None else hi) for v, (lo, hi) in bounds.items()}


def _check_equivalent(expr, simple, envs, bound=None):
    for env in envs:
        try:
            want = _evaluate(expr, env)
        except Undefined:
            continue
        names = {v.name: value for v, value in env.items()}
        assert _evaluate(simple, env) == want, f"{expr}  ->  {simple}  at {names}"
        if bound is not None:
            lo, hi = bound
            assert (lo is None or lo <= want) and (hi is None or want <= hi), f"{expr}: {want} outside {bound}"


def test_simplify_and_bound_on_random_index_expressions():
    rng = random.Random()
    variables = [Var("i"), Var("j"), Var("k"), size_var("n")]
    for _ in range(400):
        bounds = _random_bounds(rng, variables)
        expr = _random_expr(rng, variables, 4)
        simple = arith.simplify(expr, bounds)
        envs = [_sample_env(rng, bounds) for _ in range(40)]
        _check_equivalent(expr, simple, envs, arith.bound(expr, bounds))
        _check_equivalent(expr, simple, envs, arith.bound(simple, bounds))


def test_simplify_exhaustively_on_small_ranges():
    rng = random.Random()
    i, j, k = Var("i"), Var("j"), Var("k")
    bounds = {i: (0, 7), j: (-8, 15), k: (0, 3)}
    envs = [dict(zip((i, j, k), values)) for values in itertools.product(range(8), range(-8, 16), range(4))]
    for _ in range(60):
        expr = _random_expr(rng, [i, j, k], 4)
        _check_equivalent(expr, arith.simplify(expr, bounds), envs, arith.bound(expr, bounds))


@pytest.mark.parametrize("dtype", ["int8", "uint8", "int16", "int32"])
def test_narrow_dtypes_wrap_like_the_generated_code(dtype):
    """Values of narrow dtypes wrap: rewrites must agree with wrapped evaluation, bounds must hold."""
    rng = random.Random()
    a_buf, b_buf = Buffer("A", (1000,), dtype), Buffer("B", (1000,), dtype)
    x = Var("x")
    leaves = [Load(a_buf, (x,)), Load(b_buf, (x,)), Load(a_buf, (x + 1,))]
    for _ in range(300):
        expr = _random_expr(rng, leaves, 4, dtype)
        simple = arith.simplify(expr, {x: (0, 998)})
        for imm in (e for e in walk(simple) if isinstance(e, IntImm)):
            assert _wrap(imm.value, imm.dtype) == imm.value, f"{simple}: constant {imm.value} is not a {dtype}"
        _check_equivalent(expr, simple, [{x: rng.randint(0, 998)} for _ in range(30)], arith.bound(expr))


def test_narrow_dtype_regressions():
    s8, u8 = Buffer("S", (4,), "int8")[0], Buffer("U", (4,), "uint8")[0]
    assert arith.simplify(IntImm(200, "uint8") + IntImm(100, "uint8")) == IntImm(44, "uint8")
    assert arith.simplify(IntImm(2, "uint8") - IntImm(5, "uint8")) == IntImm(253, "uint8")
    assert arith.simplify(IntImm(2**31 - 1, "int32") + IntImm(1, "int32")) == IntImm(-2**31, "int32")
    assert isinstance(arith.simplify(s8 + 1 > s8), Cmp)  # 127 + 1 wraps to -128
    assert isinstance(arith.simplify((Buffer("Q", (4,), "int32")[0] * 16 + 3) // 16), BinOp)
    assert str(arith.simplify(u8 + 200 + 100)) == "(U[0] + 44)"
    assert str(arith.simplify(IntImm(0, "uint8") - u8)) == "(0 - U[0])"
    assert arith.simplify(u8 - u8 - IntImm(12, "uint8")) == IntImm(244, "uint8")
    assert arith.simplify(Cast("int8", IntImm(300))) == IntImm(44, "int8")
    assert isinstance(arith.simplify(Cast("int32", FloatImm(float("nan")))), Cast)
    assert arith.simplify(Cast("int32", FloatImm(-2.7))) == IntImm(-2, "int32")
    assert arith.bound(Buffer("W", (4,), "uint8")[0]) == (0, 255)
    assert arith.bound(s8 * 2) == (-128, 127)


def test_bound_is_tight_on_affine_expressions():
    i, j, n = Var("i"), Var("j"), size_var("n")
    b = {i: (0, 3), j: (0, 15), n: (1, None)}
    assert arith.bound(i * 16 + j, b) == (0, 63)
    assert arith.bound(i * 16 - j, b) == (-15, 48)
    assert arith.bound((i * 16 + j) // 16, b) == (0, 3)
    assert arith.bound((i * 16 + j) // -16, b) == (-4, 0)
    assert arith.bound(j % 8, b) == (0, 7)
    assert arith.bound(i % 8, b) == (0, 3)
    assert arith.bound((j - 20) % 8, b) == (0, 7)
    assert arith.bound(i % -8, b) == (-7, 0)
    assert arith.bound((0 - i) % -8, b) == (-3, 0)
    assert arith.bound(BinOp("min", i, j - 4), b) == (-4, 3)
    assert arith.bound(n * 4 + i, b) == (4, None)
    assert arith.bound(Select(i < 2, i, j + 100), b) == (0, 115)
    assert arith.bound(i < j) == (0, 1)


def test_simplify_rules():
    i, j, k, n = Var("i"), Var("j"), Var("k"), Var("n")
    b = {i: (0, 7), j: (0, 15), k: (0, 3)}
    assert arith.simplify((i * 16 + j) // 16, b) is i
    assert arith.simplify((i * 16 + j) % 16, b) is j
    assert arith.simplify((n // 7) * 7 + n % 7) is n
    assert str(arith.simplify((n // 4) // 8)) == "(n // 32)"
    assert str(arith.simplify((n % 16) % 4)) == "(n % 4)"
    assert arith.simplify(BinOp("min", i + 1, i), b) is i
    assert arith.simplify(BinOp("max", n + 1, n)) == arith.simplify(n + 1)
    assert arith.simplify(Select(n < 3, n, n)) is n
    assert arith.simplify(BinOp("and", n < 3, IntImm(1, "bool"))) == (n < 3)
    assert arith.simplify(BinOp("or", n < 3, IntImm(1, "bool"))) == IntImm(1, "bool")
    assert arith.simplify(i * 16 + j < 128, b) == IntImm(1, "bool")
    assert str(arith.simplify(3 - n)) == "(3 - n)"
    assert str(arith.simplify(j - i)) == "(j - i)"


def test_division_needs_the_remainder_in_range():
    """``(i*16 + j) // 16 -> i`` only when 0 <= j < 16 is known; otherwise it stays a division."""
    i, j = Var("i"), Var("j")
    for bounds in ({}, {j: (0, 16)}, {j: (-1, 15)}, {j: (0, None)}):
        assert isinstance(arith.simplify((i * 16 + j) // 16, bounds), BinOp)
        assert arith.simplify((i * 16 + j) // 16, bounds) is not i
        assert arith.simplify((i * 16 + j) % 16, bounds) is not j
    k = BinOp("floordiv", i * 16 + j, IntImm(-16))
    assert arith.simplify(k, {j: (0, 15)}) is not i  # a negative divisor is not rewritten


def test_divisor_split_makes_head_split_indices_contiguous():
    # k = kt*256 + ko*16 + ki indexes a [heads, rows, 64] tensor through (k // 64, k % 64)
    ko, ki, kt, m = Var("ko"), Var("ki"), Var("kt"), Var("m")
    bounds = {ko: (0, 15), ki: (0, 15), kt: (0, 2), m: (0, 127)}
    k = kt * 256 + ko * 16 + ki
    index = (k // 64) * (128 * 64) + m * 64 + k % 64
    assert arith.lane_stride(index, ki, bounds) == 1
    simple = arith.simplify(index, bounds)
    envs = [dict(zip((kt, ko, ki, m), env)) for env in itertools.product(range(3), range(16), range(16), (0, 5, 127))]
    _check_equivalent(index, simple, envs)


def test_integer_div_of_constants_folds_like_the_generated_code():
    """``div`` on integers truncates toward zero (C, ONNX Div); folding must agree with codegen."""
    rng = random.Random()
    for _ in range(50):
        a, b = rng.randint(-50, 50), rng.choice([-7, -3, -1, 1, 2, 5])
        folded = arith.simplify(BinOp("div", IntImm(a, "int32"), IntImm(b, "int32")))
        assert folded.value == int(a / b), (a, b)


def test_linear_form_round_trip():
    rng = random.Random()
    variables = [Var("i"), Var("j"), size_var("n")]
    for _ in range(200):
        expr = _random_expr(rng, variables, 3)
        lin = arith.linear_form(arith.simplify(expr))
        rebuilt = arith.to_expr(lin)
        envs = [{v: rng.randint(-30, 30) for v in variables} for _ in range(20)]
        _check_equivalent(expr, rebuilt, envs)
        again = arith.linear_form(arith.simplify(rebuilt))
        assert again.const == lin.const or _has_recombined(lin)
    i, j = variables[:2]
    lin = arith.Linear({i: 3, j: -2}, -5)
    assert str(arith.to_expr(lin)) == "(((i * 3) - (j * 2)) - 5)"
    assert arith.linear_form(arith.to_expr(lin)).terms == {i: 3, j: -2}


def _has_recombined(lin):
    return any(isinstance(a, BinOp) and a.op == "floordiv" for a in lin.terms)


def test_lane_stride():
    i, j, n = Var("i"), Var("j"), size_var("n")
    b = {i: (0, 7), j: (0, 15)}
    assert arith.lane_stride((i * 4 + j) * 3, j, b) == 3
    assert arith.lane_stride(i * 4 + n, j, b) == 0
    assert arith.lane_stride(i * n + j, j, b) == 1
    assert arith.lane_stride((i + j) // 3, j, b) is None
    assert arith.lane_stride((i * 16 + j) % 16 + i * 100, j, b) == 1
    assert arith.lane_stride((i * 16 + j) // 4, j, b) is None
    assert arith.lane_stride(Load(_TABLE, (j,)), j, b) is None


def test_divisibility_proofs():
    i, n, m = Var("i"), size_var("n"), size_var("m")
    proved = [(n * 16 + i * 32, 16), ((n * 12) // 3, 4), (n * m * 24, 8), (BinOp("min", n * 8, m * 16), 8),
              ((n * 16) % 32, 16), (i, 4, {i: (8, 8)}), (n * 6 * m * 3, 9), (n * 0 + 5, 5), (n, 1),
              (Select(n < m, n * 4, m * 8), 4), ((n * 4 + 4) * m, 4), (((n * 16) // 4) * 2, 8)]
    for case in proved:
        expr, k, bounds = (*case, {})[:3]
        assert arith.can_prove_divisible(expr, k, bounds), (str(expr), k)
    not_proved = [(n, 16), (n * 16 + 1, 16), (n * 8, 16), (n * m, 2), ((n * 16) // 32, 2), (i, 4, {i: (0, 8)}),
                  (n % 16, 4), ((n * 4) % 6, 4), (BinOp("max", n * 8, m * 4), 8)]
    for case in not_proved:
        expr, k, bounds = (*case, {})[:3]
        assert not arith.can_prove_divisible(expr, k, bounds), (str(expr), k)
    with pytest.raises(ValueError):
        arith.can_prove_divisible(n, 0)


def test_divisibility_is_never_claimed_falsely_on_random_expressions():
    rng = random.Random()
    variables = [Var("i"), Var("j"), size_var("n")]
    proved = 0
    for _ in range(400):
        bounds = _random_bounds(rng, variables)
        expr = _random_expr(rng, variables, 3)
        expr = expr * IntImm(rng.choice([1, 2, 4, 6])) if rng.random() < 0.5 else expr
        k = rng.choice([2, 3, 4, 8])
        if not arith.can_prove_divisible(expr, k, bounds):
            continue
        proved += 1
        for env in (_sample_env(rng, bounds) for _ in range(30)):
            try:
                value = _evaluate(expr, env)
            except Undefined:
                continue
            assert value % k == 0, f"{expr} claimed divisible by {k}, is {value}"
    assert proved > 0


# ---------------------------------------------------------------- affine index maps

def _loop_values(extents):
    variables = list(extents)
    for values in itertools.product(*(range(extents[v]) for v in variables)):
        yield dict(zip(variables, values))


def _brute_force_bijective(indices, extents):
    """Whether the loop values map one to one onto index tuples."""
    seen = {tuple(_evaluate(index, env) for index in indices) for env in _loop_values(extents)}
    return len(seen) == math.prod(extents.values())


def _check_result(indices, extents, result):
    """Each detected form evaluates to its index at every loop value."""
    for env in _loop_values(extents):
        for index, form in zip(indices, result):
            assert _evaluate(form.to_expr(), env) == _evaluate(index, env), f"{index} vs {form.to_expr()}"


def test_iter_map_detects_fusions_and_splits():
    i, j, k, f = Var("i"), Var("j"), Var("k"), Var("f")
    cases = [
        ([f // 12, f % 12], {f: 36}),
        ([i * 16 + j], {i: 4, j: 16}),
        ([(i * 16 + j) // 8, (i * 16 + j) % 8], {i: 4, j: 16}),
        ([(i * 16 + j) // 32, (i * 16 + j) % 32], {i: 4, j: 16}),
        ([(i * 16 + j) // 32, (i * 16 + j) % 32 // 4, j % 4], {i: 4, j: 16}),
        ([j, i], {i: 4, j: 16}),
        ([i * 2 + 3], {i: 4}),
        ([f // 4, f % 4, k], {f: 24, k: 1}),
        ([(i * 6 + j * 2 + k) // 4, (i * 6 + j * 2 + k) % 4], {i: 4, j: 3, k: 2}),
        ([f % 3, f // 3 % 4, f // 12], {f: 24}),
    ]
    for indices, extents in cases:
        result = detect_iter_map(indices, extents)
        assert result is not None, [str(x) for x in indices]
        assert all(len(form.args) <= 1 for form in result)
        _check_result(indices, extents, result)
        assert _brute_force_bijective(indices, extents)


def test_iter_map_structure_of_a_split_fused_loop():
    f, n = Var("f"), size_var("n")
    outer, inner = detect_iter_map([f // 12, f % 12 + 1], {f: 12 * n})
    (hi,), (lo,) = outer.args, inner.args
    assert hi.mark is lo.mark and hi.mark.source is f
    assert (str(hi.lower_factor), str(hi.extent), str(hi.scale)) == ("12", "n", "1")
    assert (str(lo.lower_factor), str(lo.extent), str(lo.scale)) == ("1", "12", "1")
    assert str(outer.base) == "0" and str(inner.base) == "1"
    i, j = Var("i"), Var("j")
    (fused,) = detect_iter_map([i * 32 + j * 2], {i: 4, j: 16})
    (split,) = fused.args
    assert str(split.scale) == "2" and str(split.extent) == "64"
    assert [s.mark.source for s in split.mark.source.args] == [i, j]


def test_iter_map_rejects_overlaps_and_non_affine_maps():
    i, j, f = Var("i"), Var("j"), Var("f")
    cases = [
        ([i * 8 + j], {i: 4, j: 16}),               # overlapping: i=0, j=8 and i=1, j=0
        ([i * 16 + j, j], {i: 4, j: 16}),           # j used twice
        ([i], {i: 4, j: 16}),                       # j unused: not bijective
        ([f // 6, f % 4], {f: 24}),                 # digits 6 and 4 do not nest
        ([f // 5, f % 5], {f: 24}),                 # 5 does not divide 24
        ([i * j], {i: 4, j: 4}),                    # not affine
        ([15 - i], {i: 16}),                        # reversed: negative scale
        ([(i + 1) // 2], {i: 8}),                   # offset inside a division
        ([Load(_TABLE, (i,))], {i: 4}),
    ]
    for indices, extents in cases:
        assert detect_iter_map(indices, extents) is None, [str(x) for x in indices]
    assert detect_iter_map([i], {i: 4, j: 16}, require_bijective=False) is not None
    assert detect_iter_map([f // 6, f % 4], {f: 24}, require_bijective=False) is None


def test_iter_map_with_symbolic_extents():
    f, i, j = Var("f"), Var("i"), Var("j")
    n = size_var("n")
    assert detect_iter_map([f // 12, f % 12], {f: 12 * n}) is not None
    assert detect_iter_map([f // n, f % n], {f: 8 * n}) is not None
    assert detect_iter_map([i * n + j], {i: 8, j: n}) is not None
    assert detect_iter_map([(i * n + j) // n, (i * n + j) % n], {i: 8, j: n}) is not None
    assert detect_iter_map([i * n + j], {i: 8, j: n + 1}) is None      # overlapping
    assert detect_iter_map([f // 12, f % 12], {f: n}) is None          # n may not be a multiple of 12
    assert detect_iter_map([f // 12, f % 12], {f: 12 * n}, {n: (3, 3)}) is not None


def _random_index_map(rng):
    """Loops with small extents and indices from them: fused, split, shifted, overlapping or not."""
    variables = [Var(name) for name in "abc"[: rng.randint(1, 3)]]
    extents = {v: rng.choice([1, 2, 3, 4, 6, 8]) for v in variables}
    pieces = []
    for v in variables:
        if rng.random() < 0.6:
            pieces.append(v)
        else:
            d = rng.choice([2, 3, 4])
            pieces.extend([v // d, v % d])
    rng.shuffle(pieces)
    indices = []
    while pieces:
        if len(pieces) > 1 and rng.random() < 0.5:
            a, b = pieces.pop(), pieces.pop()
            indices.append(a * rng.choice([1, 2, 3, 4, 6, 8, 12]) + b)
        else:
            indices.append(pieces.pop())
    if rng.random() < 0.3:
        k = rng.randrange(len(indices))
        indices[k] = indices[k] // rng.choice([2, 3, 4]) if rng.random() < 0.5 else indices[k] % rng.choice([2, 4])
    return indices, extents


def test_iter_map_is_sound_on_random_maps():
    """Whenever a map is detected as bijective, it is (by enumeration); its forms equal the indices."""
    rng = random.Random()
    detected = 0
    for _ in range(300):
        indices, extents = _random_index_map(rng)
        result = detect_iter_map(indices, extents)
        if result is not None:
            detected += 1
            assert _brute_force_bijective(indices, extents), [str(x) for x in indices]
            _check_result(indices, extents, result)
    assert detected > 0
