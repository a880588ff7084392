"""Symbolic dimensions: sizes known only at run time (``batch``, ``sequence``).

A ``SymInt`` is a polynomial with integer coefficients over named size
symbols, kept in a canonical form so that equal sizes compare equal however
they were computed::

    b, s = SymInt.symbol("batch"), SymInt.symbol("sequence")
    (b * s * 768) // 768 == s * b        # True
    s * 4 + 1 - s * 4                    # 1 (a plain int again)

Every symbol stands for an integer >= 1. Results that are constant become
plain ``int``; ``int(sym)`` raises, so code that needs a static size says so
instead of guessing. Comparisons with ``<``/``<=``/... answer only when the
answer holds for every value of the symbols (``s + 1 > 1``), otherwise they
raise ``SymbolicError``. ``==`` is structural (``s == 1`` is False), which is
what shape bookkeeping needs; value-level decisions use ``decide``.

Lowering turns a SymInt into a loop-IR expression over one size variable per
symbol (``to_expr``); the executor evaluates it for the sizes of a run
(``evaluate``).
"""
from __future__ import annotations

from ..errors import TcompError


class SymbolicError(TcompError):
    """A decision that depends on the value of a symbolic dimension."""


def _mono_key(mono: tuple) -> tuple:
    return (len(mono), mono)


class SymInt:
    """``sum(coeff * prod(symbols))`` with integer coefficients; immutable and hashable."""

    __slots__ = ("_hash", "terms")

    def __init__(self, terms: dict):
        self.terms = {m: c for m, c in terms.items() if c}   # monomial (sorted tuple of names) -> coeff
        self._hash = hash(frozenset(self.terms.items()))

    @staticmethod
    def symbol(name: str) -> SymInt:
        return SymInt({(name,): 1})

    # -- construction helpers --------------------------------------------------
    @staticmethod
    def _of(value) -> SymInt:
        if isinstance(value, SymInt):
            return value
        if isinstance(value, (int,)) or hasattr(value, "__index__"):
            return SymInt({(): int(value)})
        raise TypeError(f"cannot use {type(value).__name__} as a size")

    def _wrap(self) -> SymInt | int:
        """Constants become plain ints."""
        if not self.terms:
            return 0
        if set(self.terms) == {()}:
            return self.terms[()]
        return self

    @property
    def symbols(self) -> set:
        return {name for mono in self.terms for name in mono}

    # -- arithmetic ------------------------------------------------------------
    def __add__(self, other):
        try:
            other = SymInt._of(other)
        except TypeError:
            return NotImplemented
        terms = dict(self.terms)
        for mono, coeff in other.terms.items():
            terms[mono] = terms.get(mono, 0) + coeff
        return SymInt(terms)._wrap()

    __radd__ = __add__

    def __neg__(self):
        return SymInt({m: -c for m, c in self.terms.items()})._wrap()

    def __sub__(self, other):
        try:
            return self + (-SymInt._of(other))
        except TypeError:
            return NotImplemented

    def __rsub__(self, other):
        return (-self) + other

    def __mul__(self, other):
        try:
            other = SymInt._of(other)
        except TypeError:
            return NotImplemented
        terms: dict = {}
        for m1, c1 in self.terms.items():
            for m2, c2 in other.terms.items():
                mono = tuple(sorted(m1 + m2))
                terms[mono] = terms.get(mono, 0) + c1 * c2
        return SymInt(terms)._wrap()

    __rmul__ = __mul__

    def __floordiv__(self, other):
        """Exact division only (by an int or by a monomial that divides every term)."""
        try:
            other = SymInt._of(other)
        except TypeError:
            return NotImplemented
        result = _exact_divide(self, other)
        if result is None:
            raise SymbolicError(f"cannot divide the symbolic size {self} by {other} exactly")
        return result._wrap()

    def __rfloordiv__(self, other):
        result = _exact_divide(SymInt._of(other), self)
        if result is None:
            raise SymbolicError(f"cannot divide {other} by the symbolic size {self} exactly")
        return result._wrap()

    def __mod__(self, other):
        if isinstance(other, int) and all(c % other == 0 for c in self.terms.values()):
            return 0
        raise SymbolicError(f"the remainder of the symbolic size {self} by {other} is not known")

    # -- comparisons -------------------------------------------------------------
    def __eq__(self, other):
        if isinstance(other, SymInt):
            return self.terms == other.terms
        return False  # a non-constant SymInt is never structurally an int

    def __hash__(self):
        return self._hash

    def _sign(self, other) -> int | None:
        """+1/0/-1 for self - other when the sign holds for all symbol values >= 1, else None."""
        diff = self - other
        if isinstance(diff, int):
            return (diff > 0) - (diff < 0)
        return diff.provable_sign()

    def provable_sign(self) -> int | None:
        coeffs = self.terms
        const = coeffs.get((), 0)
        rest = [c for m, c in coeffs.items() if m]
        # every monomial is >= 1, so sum(c * mono) >= sum(c) for c > 0 (and <= for c < 0)
        if all(c > 0 for c in rest) and const + sum(rest) > 0:
            return 1
        if all(c < 0 for c in rest) and const + sum(rest) < 0:
            return -1
        return None

    def _compare(self, other, op: str) -> bool:
        sign = self._sign(other)
        if sign is None:
            raise SymbolicError(f"whether {self} {op} {other} depends on the symbolic dimensions "
                                f"{sorted(self.symbols)}")
        return {"<": sign < 0, "<=": sign <= 0, ">": sign > 0, ">=": sign >= 0}[op]

    def __lt__(self, other):
        return self._compare(other, "<")

    def __le__(self, other):
        return self._compare(other, "<=")

    def __gt__(self, other):
        return self._compare(other, ">")

    def __ge__(self, other):
        return self._compare(other, ">=")

    def __bool__(self):
        return True  # symbols are >= 1 and a non-constant polynomial is never the constant 0

    def __int__(self):
        raise SymbolicError(f"a static size is needed here, but it is the symbolic size {self}")

    __index__ = __int__

    # -- conversions -------------------------------------------------------------
    def evaluate(self, values: dict) -> int:
        """The size for concrete symbol values ``{name: int}``."""
        total = 0
        for mono, coeff in self.terms.items():
            term = coeff
            for name in mono:
                term *= values[name]
            total += term
        return total

    def to_expr(self):
        """The loop-IR expression over the size variables (``size_var(name)``)."""
        from ..tir.expr import IntImm, size_var

        result = None
        for mono, coeff in sorted(self.terms.items(), key=lambda item: _mono_key(item[0]), reverse=True):
            term = IntImm(coeff) if not mono or coeff != 1 else None
            for name in mono:
                term = size_var(name) if term is None else term * size_var(name)
            result = term if result is None else result + term
        return result

    def __str__(self):
        parts = []
        for mono, coeff in sorted(self.terms.items(), key=lambda item: _mono_key(item[0]), reverse=True):
            body = "*".join(mono)
            if not mono:
                parts.append(str(coeff))
            elif coeff == 1:
                parts.append(body)
            elif coeff == -1:
                parts.append(f"-{body}")
            else:
                parts.append(f"{coeff}*{body}")
        return " + ".join(parts).replace("+ -", "- ")

    __repr__ = __str__


def _exact_divide(num: SymInt, den: SymInt) -> SymInt | None:
    if len(den.terms) != 1:
        return num if num == den else None if num.terms else SymInt({})
    ((mono, coeff),) = den.terms.items()
    result = {}
    for m, c in num.terms.items():
        rest = list(m)
        for name in mono:
            if name not in rest:
                return None
            rest.remove(name)
        if c % coeff:
            return None
        result[tuple(rest)] = c // coeff
    return SymInt(result)


def evaluate(value, values: dict) -> int:
    """``value`` (int or SymInt) for concrete symbol values."""
    return value.evaluate(values) if isinstance(value, SymInt) else int(value)


def product(values):
    result = 1
    for v in values:
        result = result * v
    return result
