"""Integer arithmetic simplifier: constant folding, affine canonical form, bounds.

Integer expressions are normalised to a sum of ``coefficient * atom`` plus a
constant, where atoms are variables and non-affine nodes (``//``, ``%``,
``min``, loads ...). With variable bounds, floor division and modulo by a
constant are resolved when the remainder is provably in range::

    (i * 16 + j) // 16   with 0 <= j < 16   ->  i
    (i * 16 + j) % 16    with 0 <= j < 16   ->  j
    (n // 7) * 7 + n % 7                    ->  n

A wrong simplification is a silent miscompile, so every rule here is exact for
floor semantics and only fires when its bound conditions are proven.
"""
from __future__ import annotations

import math

from .expr import (BinOp, Call, Cast, Cmp, Expr, FloatImm, IntImm, Load, Select, Var, children, is_float,
                   is_int, walk)
from .printer import expr_to_str

Bounds = dict  # Var -> (lo, hi) inclusive, either may be None for unknown


def _is_index(expr: Expr) -> bool:
    return is_int(expr.dtype)


class Linear:
    """``sum(coeff * atom) + const`` over integer atoms."""

    __slots__ = ("terms", "const", "dtype")

    def __init__(self, terms=None, const=0, dtype="int64"):
        self.terms = dict(terms or {})
        self.const = const
        self.dtype = dtype

    def add(self, other: "Linear", sign: int = 1) -> "Linear":
        terms = dict(self.terms)
        for atom, coeff in other.terms.items():
            value = terms.get(atom, 0) + sign * coeff
            if value:
                terms[atom] = value
            else:
                terms.pop(atom, None)
        return Linear(terms, self.const + sign * other.const, self.dtype)

    def scale(self, factor: int) -> "Linear":
        if factor == 0:
            return Linear({}, 0, self.dtype)
        return Linear({a: c * factor for a, c in self.terms.items()}, self.const * factor, self.dtype)

    def is_const(self) -> bool:
        return not self.terms


def _atom_key(atom: Expr):
    return (expr_to_str(atom), atom.uid if isinstance(atom, Var) else 0)


def to_expr(lin: Linear) -> Expr:
    """Rebuilds a canonical expression: terms sorted, positive terms first."""
    lin = _recombine(lin)
    result = None
    for atom in sorted(lin.terms, key=_atom_key):
        coeff = lin.terms[atom]
        if result is None:
            result = atom if coeff == 1 else BinOp("mul", atom, IntImm(coeff, lin.dtype))
        elif coeff == 1:
            result = BinOp("add", result, atom)
        elif coeff == -1:
            result = BinOp("sub", result, atom)
        elif coeff < 0:
            result = BinOp("sub", result, BinOp("mul", atom, IntImm(-coeff, lin.dtype)))
        else:
            result = BinOp("add", result, BinOp("mul", atom, IntImm(coeff, lin.dtype)))
    if result is None:
        return IntImm(lin.const, lin.dtype)
    if lin.const > 0:
        return BinOp("add", result, IntImm(lin.const, lin.dtype))
    if lin.const < 0:
        return BinOp("sub", result, IntImm(-lin.const, lin.dtype))
    return result


def _recombine(lin: Linear) -> Linear:
    """``a*c*(y//c) + a*(y%c)  ->  a*y``."""
    changed = True
    while changed:
        changed = False
        for atom, coeff in list(lin.terms.items()):
            if not (isinstance(atom, BinOp) and atom.op == "floordiv" and isinstance(atom.b, IntImm)):
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
    """Affine view of an already simplified integer expression."""
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
    """Inclusive (lo, hi) of an integer expression; ``None`` for an unknown side."""
    bounds = bounds or {}
    if isinstance(expr, IntImm):
        return expr.value, expr.value
    if isinstance(expr, Var):
        return bounds.get(expr, (None, None))
    if isinstance(expr, BinOp):
        op = expr.op
        if op == "floormod" and isinstance(expr.b, IntImm) and expr.b.value > 0:
            lo, hi = bound(expr.a, bounds)
            if lo is not None and hi is not None and lo >= 0 and hi < expr.b.value:
                return lo, hi
            return 0, expr.b.value - 1
        alo, ahi = bound(expr.a, bounds)
        blo, bhi = bound(expr.b, bounds)
        if op == "add":
            return _opt(alo, blo, lambda x, y: x + y), _opt(ahi, bhi, lambda x, y: x + y)
        if op == "sub":
            return _opt(alo, bhi, lambda x, y: x - y), _opt(ahi, blo, lambda x, y: x - y)
        if op == "mul" and None not in (alo, ahi, blo, bhi):
            products = [alo * blo, alo * bhi, ahi * blo, ahi * bhi]
            return min(products), max(products)
        if op == "floordiv" and isinstance(expr.b, IntImm) and expr.b.value > 0:
            c = expr.b.value
            return _opt(alo, c, lambda x, y: x // y), _opt(ahi, c, lambda x, y: x // y)
        if op == "min":
            known_hi = [h for h in (ahi, bhi) if h is not None]
            return _opt(alo, blo, min), (min(known_hi) if known_hi else None)
        if op == "max":
            known_lo = [lo for lo in (alo, blo) if lo is not None]
            return (max(known_lo) if known_lo else None), _opt(ahi, bhi, max)
    if isinstance(expr, Select):
        alo, ahi = bound(expr.a, bounds)
        blo, bhi = bound(expr.b, bounds)
        return _opt(alo, blo, min), _opt(ahi, bhi, max)
    return None, None


def _opt(x, y, fn):
    return None if x is None or y is None else fn(x, y)


def _fold_binop(op: str, a, b, dtype: str):
    if op == "add":
        return a + b
    if op == "sub":
        return a - b
    if op == "mul":
        return a * b
    if op == "min":
        return min(a, b)
    if op == "max":
        return max(a, b)
    if is_float(dtype):
        if op == "div":
            return a / b if b != 0 else None
        if op == "pow":
            try:
                return math.pow(a, b)
            except (OverflowError, ValueError):
                return None
        return None
    if op == "floordiv":
        return a // b if b != 0 else None
    if op == "div":  # integer "div" truncates toward zero, as the generated code does
        if b == 0:
            return None
        q = abs(a) // abs(b)
        return q if (a >= 0) == (b >= 0) else -q
    if op == "floormod":
        return a % b if b != 0 else None
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
        if _is_index(node) and node.dtype != "bool":
            return _simplify_int(node.op, a, b, bounds)
        return _simplify_float(node.op, a, b)
    if isinstance(node, Cmp):
        a, b = visit(node.a), visit(node.b)
        if _is_imm(a) and _is_imm(b):
            return IntImm(int(_CMP[node.op](a.value, b.value)), "bool")
        if _is_index(a):
            diff = to_expr(linear_form(a).add(linear_form(b), -1))
            lo, hi = bound(diff, bounds)
            decided = _decide_cmp(node.op, lo, hi)
            if decided is not None:
                return IntImm(int(decided), "bool")
        return Cmp(node.op, a, b)
    if isinstance(node, Select):
        cond, a, b = visit(node.cond), visit(node.a), visit(node.b)
        if isinstance(cond, IntImm):
            return a if cond.value else b
        return Select(cond, a, b)
    if isinstance(node, Cast):
        value = visit(node.value)
        if value.dtype == node.dtype:
            return value
        if _is_imm(value):
            return _imm(value.value, node.dtype) if node.dtype != "bool" else IntImm(int(bool(value.value)), "bool")
        return Cast(node.dtype, value)
    if isinstance(node, Call):
        return Call(node.name, tuple(visit(a) for a in node.args), node.dtype)
    if isinstance(node, Load):
        pred = visit(node.predicate) if node.predicate is not None else None
        if isinstance(pred, IntImm) and pred.value:
            pred = None
        return Load(node.buffer, tuple(visit(i) for i in node.indices), pred)
    return node


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
    if op in ("floordiv", "floormod") and isinstance(b, IntImm) and b.value > 0:
        return _simplify_divmod(op, a, b.value, bounds)
    if op in ("min", "max"):
        alo, ahi = bound(a, bounds)
        blo, bhi = bound(b, bounds)
        if op == "min":
            if ahi is not None and blo is not None and ahi <= blo:
                return a
            if bhi is not None and alo is not None and bhi <= alo:
                return b
        else:
            if alo is not None and bhi is not None and alo >= bhi:
                return a
            if blo is not None and ahi is not None and blo >= ahi:
                return b
    return BinOp(op, a, b)


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
