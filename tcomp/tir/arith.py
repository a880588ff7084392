"""Integer arithmetic simplifier: constant folding, affine canonical form, bounds, divisibility.

Integer expressions are normalised to a sum of ``coefficient * atom`` plus a
constant, where atoms are variables and non-affine nodes (``//``, ``%``,
``min``, loads ...). With variable bounds (``{var: (lo, hi)}``, inclusive, either
side ``None`` when unknown), floor division and modulo by a constant are
resolved when the remainder is provably in range::

    (i * 16 + j) // 16   with 0 <= j < 16   ->  i
    (i * 16 + j) % 16    with 0 <= j < 16   ->  j
    (n // 7) * 7 + n % 7                    ->  n
    (i // 4) // 8                           ->  i // 32
    min(i + 1, i)                           ->  i

A wrong simplification is a silent miscompile, so every rule here is exact for
floor semantics and only fires when its bound conditions are proven.

Integer semantics: ``int64`` is the index type and is treated as unbounded
(index arithmetic does not overflow). The narrower types (and ``uint64``) wrap
as the generated code does: addition, subtraction and multiplication are exact
modulo 2**bits, so the affine form holds for them as is, and constants are kept
in range. The rules that need true integer values (division and modulo of
affine forms, comparisons and ``min``/``max`` decided from a difference) are
for the index type only; ``bound`` stays sound for the others (a value that may
wrap lies anywhere in its dtype's range), so comparisons of their values are
decided from the bounds of each side.

``can_prove_divisible(expr, k, bounds)`` proves that an index expression is a
multiple of ``k`` (``n * 16 + i * 32`` of 16, for a size variable ``n``); it
answers False when it cannot prove it.
"""
from __future__ import annotations

import math

from .expr import (
    INDEX_DTYPE,
    BinOp,
    Call,
    Cast,
    Cmp,
    Expr,
    FloatImm,
    IntImm,
    Load,
    Select,
    Var,
    children,
    dtype_bits,
    is_float,
    is_int,
    is_unsigned,
    walk,
)
from .printer import expr_to_str

Bounds = dict  # Var -> (lo, hi) inclusive, either may be None for unknown


def _is_index(expr: Expr) -> bool:
    return is_int(expr.dtype)


def dtype_range(dtype: str) -> tuple:
    """(lo, hi) of the values of an integer dtype; ``(None, None)`` for the unbounded index type."""
    if dtype == INDEX_DTYPE:
        return None, None
    if dtype == "bool":
        return 0, 1
    bits = dtype_bits(dtype)
    if is_unsigned(dtype):
        return 0, (1 << bits) - 1
    return -(1 << (bits - 1)), (1 << (bits - 1)) - 1


def wrap(value: int, dtype: str) -> int:
    """``value`` as the generated code holds it in ``dtype`` (two's complement)."""
    if dtype == "bool":
        return int(bool(value))
    bits = dtype_bits(dtype)
    value &= (1 << bits) - 1
    if not is_unsigned(dtype) and value >= 1 << (bits - 1):
        value -= 1 << bits
    return value


def _fits(dtype: str, lo, hi) -> bool:
    """True if no value in [lo, hi] wraps in ``dtype`` (always true for the index type)."""
    dlo, dhi = dtype_range(dtype)
    if dlo is None:
        return True
    return lo is not None and hi is not None and dlo <= lo and hi <= dhi


class Linear:
    """``sum(coeff * atom) + const`` over integer atoms."""

    __slots__ = ("const", "dtype", "terms")

    def __init__(self, terms=None, const=0, dtype=INDEX_DTYPE):
        self.terms = dict(terms or {})
        self.const = const
        self.dtype = dtype

    def add(self, other: Linear, sign: int = 1) -> Linear:
        terms = dict(self.terms)
        for atom, coeff in other.terms.items():
            value = terms.get(atom, 0) + sign * coeff
            if value:
                terms[atom] = value
            else:
                terms.pop(atom, None)
        return Linear(terms, self.const + sign * other.const, self.dtype)

    def scale(self, factor: int) -> Linear:
        if factor == 0:
            return Linear({}, 0, self.dtype)
        return Linear({a: c * factor for a, c in self.terms.items()}, self.const * factor, self.dtype)

    def is_const(self) -> bool:
        return not self.terms


def _atom_key(atom: Expr):
    return (expr_to_str(atom), atom.uid if isinstance(atom, Var) else 0)


def _canonical(value: int, dtype: str) -> int:
    """A constant of a wrapping dtype as the representative whose magnitude can be written in it."""
    if dtype == INDEX_DTYPE:
        return value
    if not is_unsigned(dtype):
        return wrap(value, dtype)
    bits = dtype_bits(dtype)
    value &= (1 << bits) - 1
    return value - (1 << bits) if value > 1 << (bits - 1) else value


def _signed_part(coeff: int, atom: Expr | None, dtype: str) -> tuple:
    """(sign, expression) of ``coeff * atom`` (of ``coeff`` when atom is None), sign 1 or -1."""
    sign, magnitude = (1, coeff) if coeff > 0 else (-1, -coeff)
    if sign < 0 and _canonical(magnitude, dtype) != magnitude:  # the most negative value of a signed dtype
        sign, magnitude = 1, coeff
    if atom is None:
        return sign, IntImm(magnitude, dtype)
    return sign, atom if magnitude == 1 else BinOp("mul", atom, IntImm(magnitude, dtype))


def to_expr(lin: Linear) -> Expr:
    """Rebuilds a canonical expression: terms sorted, positive terms first, the constant last."""
    lin = _recombine(lin)
    dtype = lin.dtype
    terms = {a: _canonical(c, dtype) for a, c in lin.terms.items()}
    terms = {a: c for a, c in terms.items() if c}
    const = _canonical(lin.const, dtype)
    if not terms:
        return IntImm(wrap(const, dtype) if dtype != INDEX_DTYPE else const, dtype)
    parts = [_signed_part(terms[a], a, dtype) for a in sorted(terms, key=lambda a: (terms[a] < 0, _atom_key(a)))]
    if parts[0][0] < 0:  # no positive term: start from the constant, or from 0
        parts.insert(0, (1, IntImm(max(const, 0), dtype)))
        const = min(const, 0)
    if const:
        parts.append(_signed_part(const, None, dtype))
    result = parts[0][1]
    for sign, part in parts[1:]:
        result = BinOp("add" if sign > 0 else "sub", result, part)
    return result


def _recombine(lin: Linear) -> Linear:
    """``a*c*(y//c) + a*(y%c)  ->  a*y`` (exact for floor division, and for wrapped values)."""
    changed = True
    while changed:
        changed = False
        for atom, coeff in list(lin.terms.items()):
            if not (isinstance(atom, BinOp) and atom.op == "floordiv" and isinstance(atom.b, IntImm)
                    and atom.b.value != 0):
                continue
            mod = BinOp("floormod", atom.a, atom.b)
            mod_coeff = lin.terms.get(mod)
            if mod_coeff is None or coeff != mod_coeff * atom.b.value:
                continue
            rest = Linear({a: c for a, c in lin.terms.items() if a is not atom and a != mod}, lin.const, lin.dtype)
            lin = rest.add(linear_form(atom.a).scale(mod_coeff))
            changed = True
            break
    return lin


def linear_form(expr: Expr) -> Linear:
    """Affine view of an integer expression: ``sum(coeff * atom) + const``, exact (wraps like the dtype)."""
    if isinstance(expr, IntImm):
        return Linear({}, expr.value, expr.dtype)
    if isinstance(expr, BinOp) and expr.op in ("add", "sub"):
        return linear_form(expr.a).add(linear_form(expr.b), 1 if expr.op == "add" else -1)
    if isinstance(expr, BinOp) and expr.op == "mul":
        a, b = linear_form(expr.a), linear_form(expr.b)
        if b.is_const():
            return a.scale(b.const)
        if a.is_const():
            return b.scale(a.const)
    return Linear({expr: 1}, 0, expr.dtype)


def bound(expr: Expr, bounds: Bounds | None = None) -> tuple:
    """Inclusive (lo, hi) of an integer expression; ``None`` for an unknown side.

    Sound for the generated code: a value of a wrapping dtype that may wrap is only known to lie in its
    dtype's range.
    """
    bounds = bounds or {}
    lo, hi = _value_bound(expr, bounds)
    if not (is_int(expr.dtype) or expr.dtype == "bool") or _fits(expr.dtype, lo, hi):
        return lo, hi
    return dtype_range(expr.dtype)


def _value_bound(expr: Expr, bounds: Bounds) -> tuple:
    """Bound of the exact integer result of ``expr``'s top operation applied to its operands' values."""
    if isinstance(expr, IntImm):
        return expr.value, expr.value
    if isinstance(expr, Var):
        return bounds.get(expr, (None, None))
    if isinstance(expr, Cmp):
        return 0, 1
    if isinstance(expr, Cast):
        if not (is_int(expr.value.dtype) or expr.value.dtype == "bool"):
            return None, None
        lo, hi = bound(expr.value, bounds)
        if expr.dtype == INDEX_DTYPE and not _fits("int64", lo, hi) and hi is not None and hi >= 1 << 63:
            return None, None  # uint64 above the int64 range
        return lo, hi
    if isinstance(expr, Select):
        alo, ahi = bound(expr.a, bounds)
        blo, bhi = bound(expr.b, bounds)
        return _opt(alo, blo, min), _opt(ahi, bhi, max)
    if not isinstance(expr, BinOp):
        return None, None
    op = expr.op
    alo, ahi = bound(expr.a, bounds)
    if op in ("floordiv", "floormod") and isinstance(expr.b, IntImm) and expr.b.value != 0:
        return _divmod_bound(op, alo, ahi, expr.b.value)
    blo, bhi = bound(expr.b, bounds)
    if op == "add":
        return _opt(alo, blo, lambda x, y: x + y), _opt(ahi, bhi, lambda x, y: x + y)
    if op == "sub":
        return _opt(alo, bhi, lambda x, y: x - y), _opt(ahi, blo, lambda x, y: x - y)
    if op == "mul":
        return _mul_bound(alo, ahi, blo, bhi)
    if op == "min":
        known_hi = [h for h in (ahi, bhi) if h is not None]
        return _opt(alo, blo, min), (min(known_hi) if known_hi else None)
    if op == "max":
        known_lo = [lo for lo in (alo, blo) if lo is not None]
        return (max(known_lo) if known_lo else None), _opt(ahi, bhi, max)
    return None, None


def _mul_bound(alo, ahi, blo, bhi) -> tuple:
    if None not in (alo, ahi, blo, bhi):
        products = [alo * blo, alo * bhi, ahi * blo, ahi * bhi]
        return min(products), max(products)
    for (lo, hi), (c, c_hi) in (((alo, ahi), (blo, bhi)), ((blo, bhi), (alo, ahi))):
        if c == 0 and c_hi == 0:
            return 0, 0
        if c is not None and c == c_hi:  # times a constant
            return (_opt(lo, c, lambda x, y: x * y), _opt(hi, c, lambda x, y: x * y))[::1 if c >= 0 else -1]
    if alo is not None and blo is not None and alo >= 0 and blo >= 0:
        return alo * blo, _opt(ahi, bhi, lambda x, y: x * y)
    return None, None


def _divmod_bound(op: str, lo, hi, c: int) -> tuple:
    """Bound of ``x // c`` or ``x % c`` (floor semantics) for x in [lo, hi]."""
    if op == "floordiv":
        if c > 0:
            return _opt(lo, c, lambda x, y: x // y), _opt(hi, c, lambda x, y: x // y)
        return _opt(hi, c, lambda x, y: x // y), _opt(lo, c, lambda x, y: x // y)
    if lo is not None and hi is not None and lo // c == hi // c:  # no wrap-around inside [lo, hi]
        return min(lo % c, hi % c), max(lo % c, hi % c)
    if c > 0:  # x % c <= x where x >= 0
        non_negative = lo is not None and lo >= 0 and hi is not None
        return 0, min(c - 1, hi) if non_negative else c - 1
    non_positive = hi is not None and hi <= 0 and lo is not None
    return max(c + 1, lo) if non_positive else c + 1, 0


def _opt(x, y, fn):
    return None if x is None or y is None else fn(x, y)


def _fold_binop(op: str, a, b, dtype: str):
    if is_float(dtype):
        return _fold_float(op, a, b)
    value = _fold_int(op, a, b)
    return None if value is None else wrap(value, dtype)


def _fold_float(op: str, a, b):
    if op in ("add", "sub", "mul", "min", "max"):
        return _fold_common(op, a, b)
    if op == "div":
        return a / b if b != 0 else None
    if op == "pow":
        try:
            return math.pow(a, b)
        except (OverflowError, ValueError):
            return None
    return None


def _fold_common(op: str, a, b):
    return {"add": a + b, "sub": a - b, "mul": a * b, "min": min(a, b), "max": max(a, b)}[op]


def _fold_int(op: str, a, b):
    if op in ("add", "sub", "mul", "min", "max"):
        return _fold_common(op, a, b)
    if op in ("floordiv", "div", "floormod") and b == 0:
        return None
    if op == "floordiv":
        return a // b
    if op == "div":  # integer "div" truncates toward zero, as the generated code does
        q = abs(a) // abs(b)
        return q if (a >= 0) == (b >= 0) else -q
    if op == "floormod":
        return a % b
    if op == "and":
        return a & b
    if op == "or":
        return a | b
    if op == "xor":
        return a ^ b
    return None


_CMP = {"lt": lambda a, b: a < b, "le": lambda a, b: a <= b, "gt": lambda a, b: a > b,
        "ge": lambda a, b: a >= b, "eq": lambda a, b: a == b, "ne": lambda a, b: a != b}


def _imm(value, dtype):
    return FloatImm(float(value), dtype) if is_float(dtype) else IntImm(int(value), dtype)


def _is_imm(expr):
    return isinstance(expr, (IntImm, FloatImm))


def simplify(expr: Expr, bounds: Bounds | None = None) -> Expr:
    """Returns an equivalent, simpler expression (see module docstring)."""
    bounds = bounds or {}
    memo: dict = {}

    def visit(node):
        key = id(node)
        if key not in memo:
            memo[key] = _simplify_node(node, visit, bounds)
        return memo[key]

    return visit(expr)


def _simplify_node(node, visit, bounds):
    if not children(node):
        return node
    if isinstance(node, BinOp):
        a, b = visit(node.a), visit(node.b)
        if _is_imm(a) and _is_imm(b):
            folded = _fold_binop(node.op, a.value, b.value, node.dtype)
            if folded is not None:
                return _imm(folded, node.dtype)
        if node.dtype == "bool":
            return _simplify_bool(node.op, a, b)
        if _is_index(node):
            return _simplify_int(node.op, a, b, bounds)
        return _simplify_float(node.op, a, b)
    if isinstance(node, Cmp):
        a, b = visit(node.a), visit(node.b)
        if _is_imm(a) and _is_imm(b):
            return IntImm(int(_CMP[node.op](a.value, b.value)), "bool")
        if _is_index(a):
            decided = _decide_int_cmp(node.op, a, b, bounds)
            if decided is not None:
                return IntImm(int(decided), "bool")
        return Cmp(node.op, a, b)
    if isinstance(node, Select):
        cond, a, b = visit(node.cond), visit(node.a), visit(node.b)
        if isinstance(cond, IntImm):
            return a if cond.value else b
        if a == b:
            return a
        return Select(cond, a, b)
    if isinstance(node, Cast):
        return _simplify_cast(node.dtype, visit(node.value))
    if isinstance(node, Call):
        return Call(node.name, tuple(visit(a) for a in node.args), node.dtype)
    if isinstance(node, Load):
        pred = visit(node.predicate) if node.predicate is not None else None
        if isinstance(pred, IntImm) and pred.value:
            pred = None
        return Load(node.buffer, tuple(visit(i) for i in node.indices), pred)
    return node


def _simplify_cast(dtype: str, value: Expr) -> Expr:
    if value.dtype == dtype:
        return value
    if not _is_imm(value):
        return Cast(dtype, value)
    v = value.value
    if dtype == "bool":
        return IntImm(int(bool(v)), "bool")
    if is_float(dtype):
        return FloatImm(float(v), dtype)
    if isinstance(value, FloatImm):
        if not math.isfinite(v) or wrap(int(v), dtype) != int(v):  # out of range: poison in the generated code
            return Cast(dtype, value)
        return IntImm(int(v), dtype)
    return IntImm(wrap(v, dtype), dtype)


def _decide_int_cmp(op, a, b, bounds):
    """Decides ``a op b`` from the bounds of a - b (index type) or of a and b (values as they wrap)."""
    if a.dtype == INDEX_DTYPE:
        decided = _decide_cmp(op, *bound(to_expr(linear_form(a).add(linear_form(b), -1)), bounds))
        if decided is not None:
            return decided
    (alo, ahi), (blo, bhi) = bound(a, bounds), bound(b, bounds)
    return _decide_cmp(op, _opt(alo, bhi, lambda x, y: x - y), _opt(ahi, blo, lambda x, y: x - y))


def _decide_cmp(op, lo, hi):
    """Decides ``diff op 0`` from the bounds of diff, or None."""
    if op == "lt":
        return True if hi is not None and hi < 0 else False if lo is not None and lo >= 0 else None
    if op == "le":
        return True if hi is not None and hi <= 0 else False if lo is not None and lo > 0 else None
    if op == "gt":
        return True if lo is not None and lo > 0 else False if hi is not None and hi <= 0 else None
    if op == "ge":
        return True if lo is not None and lo >= 0 else False if hi is not None and hi < 0 else None
    if op == "eq":
        if lo == hi == 0:
            return True
        return False if (lo is not None and lo > 0) or (hi is not None and hi < 0) else None
    if op == "ne":
        decided = _decide_cmp("eq", lo, hi)
        return None if decided is None else not decided
    return None


def _simplify_bool(op, a, b):
    """``c && true -> c``, ``c && false -> false``, ``c || false -> c``, ``c || true -> true``."""
    if op in ("and", "or"):
        for const, other in ((a, b), (b, a)):
            if isinstance(const, IntImm):
                absorbing = (op == "and") != bool(const.value)
                return IntImm(int(op == "or"), "bool") if absorbing else other
    return BinOp(op, a, b)


def _simplify_float(op, a, b):
    if op == "add" and isinstance(b, FloatImm) and b.value == 0.0:
        return a
    if op == "mul" and isinstance(b, FloatImm) and b.value == 1.0:
        return a
    if op == "mul" and isinstance(a, FloatImm) and a.value == 1.0:
        return b
    return BinOp(op, a, b)


def _simplify_int(op, a, b, bounds):
    if op in ("add", "sub", "mul"):
        la, lb = linear_form(a), linear_form(b)
        if op == "mul" and not la.is_const() and not lb.is_const():
            return BinOp("mul", a, b)
        if op == "mul":
            return to_expr(la.scale(lb.const) if lb.is_const() else lb.scale(la.const))
        return to_expr(la.add(lb, 1 if op == "add" else -1))
    if op in ("floordiv", "floormod") and isinstance(b, IntImm) and b.value == 1:
        return a if op == "floordiv" else IntImm(0, a.dtype)
    if op in ("floordiv", "floormod") and isinstance(b, IntImm) and b.value > 0:
        nested = _simplify_nested_divmod(op, a, b.value)
        if nested is not None:
            return nested
        if a.dtype == INDEX_DTYPE:
            return _simplify_divmod(op, a, b.value, bounds)
    if op in ("min", "max"):
        if a == b:
            return a
        if a.dtype == INDEX_DTYPE:
            return _simplify_min_max(op, a, b, bounds)
    return BinOp(op, a, b)


def _simplify_min_max(op, a, b, bounds):
    """Picks the operand that is provably the smaller (min) or larger (max) one, from bounds of a - b."""
    lo, hi = bound(to_expr(linear_form(a).add(linear_form(b), -1)), bounds)
    a_le_b, a_ge_b = hi is not None and hi <= 0, lo is not None and lo >= 0
    if a_le_b or a_ge_b:
        return a if (a_le_b if op == "min" else a_ge_b) else b
    return BinOp(op, a, b)


def _simplify_nested_divmod(op, a, c):
    """``(x // p) // c -> x // (p*c)`` and ``(x % m) % c -> x % c`` where c divides m (p, m > 0)."""
    if not (isinstance(a, BinOp) and isinstance(a.b, IntImm) and a.b.value > 0):
        return None
    if op == "floordiv" and a.op == "floordiv":
        product = a.b.value * c
        if wrap(product, a.dtype) == product or a.dtype == INDEX_DTYPE:
            return BinOp("floordiv", a.a, IntImm(product, a.dtype))
    if op == "floormod" and a.op == "floormod" and a.b.value % c == 0:
        return BinOp("floormod", a.a, IntImm(c, a.dtype))
    return None


def _simplify_divmod(op, a, c, bounds):
    if c == 1:
        return a if op == "floordiv" else IntImm(0, a.dtype)
    lin = linear_form(a)
    quotient = Linear({}, 0, lin.dtype)
    rest = Linear({}, 0, lin.dtype)
    for atom, coeff in lin.terms.items():
        if coeff % c == 0:
            quotient.terms[atom] = coeff // c
        else:
            rest.terms[atom] = coeff
    quotient.const = lin.const // c
    rest.const = lin.const % c
    rest_expr = to_expr(rest)
    lo, hi = bound(rest_expr, bounds)
    in_range = lo is not None and hi is not None and lo >= 0 and hi < c
    split = None if in_range else _split_by_divisor(rest, c, bounds)
    if split is not None:
        # rest = g*y + r with g | c and 0 <= r < g:  rest // c = y // (c/g),  rest % c = g*(y % (c/g)) + r
        g, y, r = split
        inner = linear_form(_simplify_divmod(op, to_expr(y), c // g, bounds))
        return to_expr(quotient.add(inner) if op == "floordiv" else inner.scale(g).add(r))
    if op == "floordiv":
        if in_range:
            return to_expr(quotient)
        if quotient.is_const() and quotient.const == 0:
            return BinOp("floordiv", rest_expr, IntImm(c, a.dtype))
        return to_expr(quotient.add(Linear({BinOp("floordiv", rest_expr, IntImm(c, a.dtype)): 1}, 0, lin.dtype)))
    if in_range:
        return rest_expr
    return BinOp("floormod", rest_expr, IntImm(c, a.dtype))


def _split_by_divisor(rest: Linear, c: int, bounds: Bounds):
    """(g, y, r) with rest = g*y + r, g a proper divisor of c, 0 <= r < g provably; else None.

    E.g. (16*ko + ki) with 0 <= ki < 16 and c = 64 gives (16, ko, ki).
    """
    for g in _proper_divisors_descending(c):
        y = Linear({a: k // g for a, k in rest.terms.items() if k % g == 0}, rest.const // g, rest.dtype)
        r = Linear({a: k for a, k in rest.terms.items() if k % g}, rest.const % g, rest.dtype)
        if y.is_const():
            continue
        lo, hi = bound(to_expr(r), bounds)
        if lo is not None and hi is not None and lo >= 0 and hi < g:
            return g, y, r
    return None


def _proper_divisors_descending(c: int) -> list:
    small = [d for d in range(2, math.isqrt(c) + 1) if c % d == 0]
    return sorted({d for d in small} | {c // d for d in small if c // d != c}, reverse=True)


def can_prove_divisible(expr: Expr, k: int, bounds: Bounds | None = None) -> bool:
    """True if ``expr`` is a multiple of ``k`` for all values of its variables; False when not provable.

    ``n * 16 + i * 32`` is divisible by 16; ``(n * 12) // 3`` by 4; ``n`` alone is not provably divisible.
    """
    if not isinstance(k, int) or k < 1:
        raise ValueError(f"can_prove_divisible: k must be a positive int, got {k!r}")
    bounds = bounds or {}
    if k == 1:
        return True
    if expr.dtype != INDEX_DTYPE:
        return False
    return _divisible(simplify(expr, bounds), k, bounds)


def _divisible(expr: Expr, k: int, bounds: Bounds) -> bool:
    if k == 1:
        return True
    lo, hi = bound(expr, bounds)
    if lo is not None and lo == hi:
        return lo % k == 0
    lin = linear_form(expr)
    if lin.const % k:
        return False
    if len(lin.terms) > 1 or lin.const or next(iter(lin.terms.values())) != 1:
        return all(_divisible(atom, k // math.gcd(coeff, k), bounds) for atom, coeff in lin.terms.items())
    if not isinstance(expr, (BinOp, Select)):
        return False
    if isinstance(expr, Select) or expr.op in ("min", "max"):
        return _divisible(expr.a, k, bounds) and _divisible(expr.b, k, bounds)
    if expr.op == "mul":  # a product of two non-constant factors
        g = math.gcd(k, _known_factor(expr.a, k, bounds))
        return _divisible(expr.b, k // g, bounds)
    if expr.op == "floordiv" and isinstance(expr.b, IntImm) and expr.b.value > 0:
        return _divisible(expr.a, k * expr.b.value, bounds)
    if expr.op == "floormod" and isinstance(expr.b, IntImm) and expr.b.value > 0 and expr.b.value % k == 0:
        return _divisible(expr.a, k, bounds)
    return False


def _known_factor(expr: Expr, k: int, bounds: Bounds) -> int:
    """The largest divisor d of k that ``expr`` is provably a multiple of."""
    return max(d for d in range(1, k + 1) if k % d == 0 and _divisible(expr, d, bounds))


def lane_stride(index: Expr, lane: Var, bounds: Bounds | None = None) -> int | None:
    """Constant stride of ``index`` in ``lane`` if the index is affine in it, else None.

    0 means the index does not depend on the lane (a broadcast).
    """
    simplified = simplify(index, bounds)
    lin = linear_form(simplified)
    stride = 0
    for atom, coeff in lin.terms.items():
        if atom is lane:
            stride = coeff
        elif _depends_on(atom, lane):
            return None
    return stride


def _depends_on(expr: Expr, var: Var) -> bool:
    return any(node is var for node in walk(expr))
