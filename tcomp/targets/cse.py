"""Repeated subexpressions of one rendered statement, bound once before it (the source renderers').

Expression trees share nodes: a fused chain uses one value several times (``Where(m, x, -inf)``
of a softcap's ``tanh(x / c) * c``), index arithmetic repeats ``(i / 6)`` and ``(i % 6)``. Printed
as a tree, a node shared k levels deep is printed 2**k times. A renderer (``csource.py``,
``webgpu/wgsl.py``) renders a statement's expressions twice through ``Subexpressions``: the first
pass counts how often the text embeds each subexpression (structurally equal ones are one:
hash-consing, each node numbered by its type, fields and operands' numbers), the second prints each
one embedded twice or more once, as a named value before the statement, and its uses as the name::

    B[i] = exp(A[(i / 6) * 8 + i % 6]) * exp(A[(i / 6) * 8 + i % 6]) + 1.0f
    ->  const auto tc_cse = expf(A[(i / 6) * 8 + i % 6]);      (WGSL: let tc_cse = ...;)
        B[i] = ((tc_cse * tc_cse) + 1.0f);

What is bound: nodes with an operand that is not a leaf (``a * 8`` or ``A[i]`` is as short as its
name). Where a language evaluates an operand only under a condition (C's ``?:``: a ``Select``'s
branches, a predicated load's access), the renderer marks it ``conditional``; a subexpression used
only there is bound (evaluated before the statement, whatever the condition) only if that is safe:
no unguarded load (it may read out of bounds where the condition is false) and no integer division
by a value that may be zero.
"""
from __future__ import annotations

import dataclasses
from collections import Counter

from ..tir.expr import BinOp, Expr, FloatImm, IntImm, Load, Var, is_float


def is_leaf(e: Expr) -> bool:
    return isinstance(e, (Var, IntImm, FloatImm))


class Subexpressions:
    """The hash-consed subexpressions of one statement: counted (first pass), then bound."""

    def __init__(self):
        self._numbers: dict = {}     # structural key -> number
        self._by_id: dict = {}       # id(node) -> (node, number): the node is kept alive, its id not reused
        self._nodes: list = []       # number -> (first node, depth, speculation-safe)
        self._uses: Counter = Counter()   # number -> times the first pass embedded it
        self._unconditional: set = set()
        self._order: list = []       # numbers in the order their first rendering finished (operands first)
        self._texts: dict = {}       # number -> text (of this pass)
        self._names: dict = {}       # number -> the name bound to it
        self._counting = True

    def number(self, e: Expr) -> int:
        """The number of ``e``'s structure (equal numbers: equal expressions)."""
        found = self._by_id.get(id(e))
        if found is not None:
            return found[1]
        operands, key = [], [type(e).__name__]
        if isinstance(e, Var):
            key.append(e)
        elif isinstance(e, FloatImm):
            key += [repr(e.value), e.dtype]  # 0.0 and -0.0 differ; nan is nan
        else:
            for f in dataclasses.fields(e):
                value = getattr(e, f.name)
                if isinstance(value, Expr):
                    operands.append(value)
                    value = self.number(value)
                elif isinstance(value, tuple) and any(isinstance(v, Expr) for v in value):
                    operands += value
                    value = tuple(self.number(v) for v in value)
                key.append(value)
        key = tuple(key)
        number = self._numbers.get(key)
        if number is None:
            number = self._numbers[key] = len(self._nodes)
            depth = 1 + max((self._nodes[self.number(o)][1] for o in operands), default=-1)
            self._nodes.append((e, depth, self._safe(e, operands)))
        self._by_id[id(e)] = (e, number)
        return number

    def _safe(self, e: Expr, operands: list) -> bool:
        """Whether evaluating ``e`` where its language would not is harmless."""
        if isinstance(e, Load):
            return e.predicate is not None and self._nodes[self.number(e.predicate)][2]  # the guard protects
        if isinstance(e, BinOp) and e.op in ("div", "floordiv", "floormod") and not is_float(e.dtype):
            if not (isinstance(e.b, IntImm) and e.b.value != 0):
                return False
        return all(self._nodes[self.number(o)][2] for o in operands)

    def text(self, e: Expr, render, conditional: bool) -> str:
        """``e``'s text: its binding's name, or ``render(e)`` (once per structure and pass)."""
        number = self.number(e)
        if self._counting:
            self._uses[number] += 1
            if not conditional:
                self._unconditional.add(number)
        elif number in self._names:
            return self._names[number]
        if number not in self._texts:
            self._texts[number] = render(e)
            if self._counting:
                self._order.append(number)
        return self._texts[number]

    def repeated(self) -> list:
        """(number, node) of the subexpressions to bind, operands before what uses them; ends counting."""
        self._counting = False
        self._texts = {}
        return [(n, self._nodes[n][0]) for n in self._order
                if self._uses[n] >= 2 and self._nodes[n][1] >= 2
                and (n in self._unconditional or self._nodes[n][2])]

    def bind(self, number: int, name: str) -> None:
        self._names[number] = name
