"""Affine index maps: which index expressions are fused and split forms of the loop variables.

``detect_iter_map(indices, extents)`` rewrites each index as ``scale * iterator + base``, where an
iterator is one digit of a loop variable, or of a fusion of loop variables (as TVM's DetectIterMap)::

    extents {f: 12 * n}        (f // 12, f % 12)    ->  digits f[12:] and f[:12]: bijective
    extents {i: 4, j: 16}      (i * 16 + j,)        ->  fuse(i, j): bijective
    extents {i: 4, j: 16}      (i * 8 + j,)         ->  None (i = 0, j = 8 and i = 1, j = 0 overlap)
    extents {i: 4, j: 16}      (i * 16 + j, j)      ->  None (j used twice)

The structure:

- ``IterMark(source, extent)``: an iterator over ``[0, extent)``, a loop variable or an ``IterSum``
  of splits (a fusion).
- ``IterSplit(mark, lower_factor, extent, scale)``: ``(mark // lower_factor) % extent * scale``.
- ``IterSum(args, base)``: ``sum(args) + base``; ``base`` holds no loop variable (it may hold sizes).

Every result holds at most one split. ``require_bijective`` (the default) asks that the digits of
every loop variable (and of every fusion) are used exactly once, together covering it; otherwise
they only must not overlap. What cannot be proven is rejected: the answer is ``None``.
"""
from __future__ import annotations

from dataclasses import dataclass

from . import arith
from .expr import (
    INDEX_DTYPE,
    BinOp,
    Expr,
    IntImm,
    Var,
    as_expr,
    free_vars,
    is_size_var,
    substitute,
)


@dataclass(frozen=True, repr=False)
class IterMark:
    """An iterator over ``[0, extent)``: a loop variable or a fusion (an ``IterSum``)."""

    source: object
    extent: Expr

    def __repr__(self):
        return f"IterMark({self.to_expr()}, extent={self.extent})"

    def to_expr(self) -> Expr:
        return self.source if isinstance(self.source, Var) else self.source.to_expr()


@dataclass(frozen=True, repr=False)
class IterSplit:
    """``(mark // lower_factor) % extent * scale``: one digit of an iterator, scaled."""

    mark: IterMark
    lower_factor: Expr
    extent: Expr
    scale: Expr

    def __repr__(self):
        return f"IterSplit({self.mark!r}, lower_factor={self.lower_factor}, extent={self.extent}, scale={self.scale})"

    def to_expr(self) -> Expr:
        value = self.mark.to_expr()
        if not _equal(self.lower_factor, _ONE):
            value = value // self.lower_factor
        if not _equal(self.lower_factor * self.extent, self.mark.extent):
            value = value % self.extent
        return arith.simplify(value * self.scale)


@dataclass(frozen=True, repr=False)
class IterSum:
    """``sum(args) + base`` over splits; ``base`` is free of loop variables."""

    args: tuple
    base: Expr

    def __repr__(self):
        return f"IterSum({list(self.args)!r}, base={self.base})"

    def to_expr(self) -> Expr:
        total = self.base
        for split in self.args:
            total = total + split.to_expr()
        return arith.simplify(total)


_ONE = IntImm(1)
_ZERO = IntImm(0)


def detect_iter_map(indices, extents: dict, bounds: dict | None = None,
                    require_bijective: bool = True) -> list | None:
    """``IterSum`` per index (see the module docstring), or None where the map is not provably affine.

    ``extents``: loop variable -> extent (an int or an expression of sizes); ``bounds``: ranges of the
    size variables (a size variable not given is at least 1, as the code generator assumes).
    """
    bounds = dict(bounds or {})
    for expr in (*extents.values(), *indices):
        for v in free_vars(as_expr(expr)):
            if is_size_var(v):
                bounds.setdefault(v, (1, None))
    extents = {v: arith.simplify(as_expr(e), bounds) for v, e in extents.items()}
    unit = {v: _ZERO for v, e in extents.items() if _equal(e, _ONE)}
    marks = {v: IterMark(v, e) for v, e in extents.items() if v not in unit}
    for v, e in extents.items():
        hi = arith.bound(e, bounds)[1]
        bounds[v] = (0, None if hi is None else hi - 1)
    results = []
    for index in indices:
        total = _to_sum(arith.simplify(substitute(as_expr(index), unit), bounds), marks, bounds)
        if total is None:
            return None
        if total.args:
            fused = _fuse(total.args, bounds)
            if fused is None:
                return None
            total = IterSum((fused,), total.base)
        results.append(total)
    uses = _collect_uses(results)
    if require_bijective and any(mark not in uses for mark in marks.values()):
        return None
    check = _covers_exactly if require_bijective else _disjoint
    if not all(check(mark, digits, bounds) for mark, digits in uses.items()):
        return None
    return results


def _to_sum(expr: Expr, marks: dict, bounds: dict) -> IterSum | None:
    """``expr`` as a sum of splits plus a loop-free base, or None."""
    if not free_vars(expr) & marks.keys():
        return IterSum((), expr)
    if isinstance(expr, Var):
        mark = marks[expr]
        return IterSum((IterSplit(mark, _ONE, mark.extent, _ONE),), _ZERO)
    if not isinstance(expr, BinOp):
        return None
    if expr.op in ("add", "sub"):
        a, b = _to_sum(expr.a, marks, bounds), _to_sum(expr.b, marks, bounds)
        if a is None or b is None or (expr.op == "sub" and b.args):
            return None
        return _add(a, b, 1 if expr.op == "add" else -1)
    if expr.op == "mul":
        for iters, factor in ((expr.a, expr.b), (expr.b, expr.a)):
            if not free_vars(factor) & marks.keys() and _positive(factor, bounds):
                total = _to_sum(iters, marks, bounds)
                return None if total is None else _scale(total, factor)
        return None
    if expr.op in ("floordiv", "floormod") and not free_vars(expr.b) & marks.keys() and _positive(expr.b, bounds):
        total = _to_sum(expr.a, marks, bounds)
        if total is None:
            return None
        return _divmod(expr.op, total, expr.b, bounds)
    return None


def _add(a: IterSum, b: IterSum, sign: int) -> IterSum:
    args = list(a.args)
    for split in b.args:
        same = next((k for k, s in enumerate(args) if _same_digit(s, split)), None)
        if same is None:
            args.append(split)
        else:
            s = args[same]
            args[same] = IterSplit(s.mark, s.lower_factor, s.extent, arith.simplify(s.scale + split.scale))
    return IterSum(tuple(args), arith.simplify(a.base + b.base if sign > 0 else a.base - b.base))


def _scale(total: IterSum, factor: Expr) -> IterSum:
    args = tuple(IterSplit(s.mark, s.lower_factor, s.extent, arith.simplify(s.scale * factor)) for s in total.args)
    return IterSum(args, arith.simplify(total.base * factor))


def _divmod(op: str, total: IterSum, d: Expr, bounds: dict) -> IterSum | None:
    """``(scale * X + base) // d`` or ``% d`` for a single digit X, when the digit divides evenly."""
    base_quotient = _exact_div(total.base, d, bounds)
    if base_quotient is None:
        return None
    split = _fuse(total.args, bounds)
    if split is None:
        return None
    mark, lower, extent, scale = split.mark, split.lower_factor, split.extent, split.scale
    scale_quotient = _exact_div(scale, d, bounds)
    if scale_quotient is not None:  # d divides every value of scale * X
        if op == "floormod":
            return IterSum((), _ZERO)
        return IterSum((IterSplit(mark, lower, extent, scale_quotient),), base_quotient)
    digit = _exact_div(d, scale, bounds)  # d = scale * digit
    if digit is None:
        return None
    upper = _exact_div(extent, digit, bounds)
    if upper is None:
        return None
    if op == "floordiv":
        return IterSum((IterSplit(mark, arith.simplify(lower * digit), upper, _ONE),), base_quotient)
    return IterSum((IterSplit(mark, lower, digit, scale),), _ZERO)


def _fuse(splits, bounds: dict) -> IterSplit | None:
    """One split equal to the sum of ``splits``, where their scales chain (each the product of the
    scale and extent of the one below); a new fused mark when there are several."""
    if len(splits) == 1:
        return splits[0]
    rest = list(splits)
    starts = [s for s in rest if not any(_equal(s.scale, o.scale * o.extent) for o in rest if o is not s)]
    if len(starts) != 1:
        return None
    chain = [starts[0]]
    rest.remove(starts[0])
    while rest:
        expected = chain[-1].scale * chain[-1].extent
        following = [s for s in rest if _equal(s.scale, expected)]
        if len(following) != 1:
            return None
        chain.append(following[0])
        rest.remove(following[0])
    normalized, stride = [], _ONE
    for s in chain:
        normalized.append(IterSplit(s.mark, s.lower_factor, s.extent, stride))
        stride = arith.simplify(stride * s.extent)
    mark = IterMark(IterSum(tuple(reversed(normalized)), _ZERO), stride)
    return IterSplit(mark, _ONE, stride, chain[0].scale)


def _collect_uses(results) -> dict:
    """mark -> [(lower_factor, extent)] of the digits used, fusions' sources included."""
    uses: dict = {}
    pending = [s for total in results for s in total.args]
    while pending:
        split = pending.pop()
        if split.mark not in uses and isinstance(split.mark.source, IterSum):
            pending.extend(split.mark.source.args)
        uses.setdefault(split.mark, []).append((split.lower_factor, split.extent))
    return uses


def _covers_exactly(mark: IterMark, digits: list, bounds: dict) -> bool:
    """The digits, lowest first, chain from 1 up to the mark's extent, each used once."""
    rest, reach = list(digits), _ONE
    while rest:
        nxt = [d for d in rest if _equal(d[0], reach)]
        if len(nxt) != 1:
            return False
        rest.remove(nxt[0])
        reach = arith.simplify(reach * nxt[0][1])
    return _equal(reach, mark.extent)


def _disjoint(mark: IterMark, digits: list, bounds: dict) -> bool:
    """No two digits overlap: one's lower factor is a multiple of the other's upper end."""
    for k, (lo_a, ext_a) in enumerate(digits):
        for lo_b, ext_b in digits[k + 1:]:
            if _exact_div(lo_b, lo_a * ext_a, bounds) is None and _exact_div(lo_a, lo_b * ext_b, bounds) is None:
                return False
    return True


def _same_digit(a: IterSplit, b: IterSplit) -> bool:
    return a.mark == b.mark and _equal(a.lower_factor, b.lower_factor) and _equal(a.extent, b.extent)


def _equal(a: Expr, b: Expr) -> bool:
    return arith.simplify(a - b) == IntImm(0, INDEX_DTYPE)


def _positive(expr: Expr, bounds: dict) -> bool:
    lo = arith.bound(arith.simplify(expr, bounds), bounds)[0]
    return lo is not None and lo >= 1


def _exact_div(a: Expr, b: Expr, bounds: dict) -> Expr | None:
    """``a / b`` where b provably divides a (b positive), else None."""
    a, b = arith.simplify(a, bounds), arith.simplify(b, bounds)
    if _equal(a, _ZERO):
        return _ZERO
    if isinstance(b, IntImm):
        if arith.can_prove_divisible(a, b.value, bounds):
            return arith.simplify(a // b, bounds)
        return None
    la, lb = arith.linear_form(a), arith.linear_form(b)
    if lb.const or len(lb.terms) != 1 or la.const or len(la.terms) != 1:
        return None
    (atom_b, coeff_b), = lb.terms.items()
    quotient = _atom_quotient(next(iter(la.terms)), atom_b)
    coeff_a = next(iter(la.terms.values()))
    if quotient is None or coeff_a % coeff_b:
        return None
    return arith.simplify(quotient * (coeff_a // coeff_b), bounds)


def _atom_quotient(atom: Expr, divisor: Expr) -> Expr | None:
    """``atom / divisor`` where divisor is the atom or one factor of a product atom, else None."""
    if atom == divisor:
        return _ONE
    if isinstance(atom, BinOp) and atom.op == "mul":
        for factor, other in ((atom.a, atom.b), (atom.b, atom.a)):
            if factor == divisor:
                return other
            inner = _atom_quotient(factor, divisor)
            if inner is not None:
                return inner * other
    return None
