"""Einsum lowered to canonical ops.

Per operand, repeated labels become diagonals (``Diagonal``) and labels no other
operand nor the output uses are summed (``ReduceSum``). Operands are then
combined left to right: labels both share are batch axes when still needed and
contracted otherwise; each pair becomes one ``MatMul`` over
``[batch..., left, contracted] @ [batch..., contracted, right]`` (its transposes
fuse into the operand packing), or a broadcast ``Mul`` when nothing is
contracted. A final transpose orders the output labels. Ellipses stand for
numpy-broadcast leading axes, right-aligned across operands.
"""
from __future__ import annotations

import math
import re

from .common import CONVERTERS, ConvertError, converter, reshape_to


def _parse(equation: str, ranks: list) -> tuple:
    """([labels of each operand], output labels); ellipsis axes get labels "0", "1", ..."""
    equation = equation.replace(" ", "")
    lhs, arrow, rhs = equation.partition("->")
    terms = lhs.split(",")
    if len(terms) != len(ranks):
        raise ConvertError(f"equation {equation!r} names {len(terms)} operands, the node has {len(ranks)}")
    if not re.fullmatch(r"[A-Za-z.,]*", lhs) or not re.fullmatch(r"[A-Za-z.]*", rhs):
        raise ConvertError(f"equation {equation!r} has characters other than letters, ',', '...' and '->'")
    ell_rank = max((rank - len(t.replace("...", "")) for t, rank in zip(terms, ranks) if "..." in t), default=0)
    ellipsis = [str(i) for i in range(ell_rank)]
    operands = []
    for term, rank in zip(terms, ranks):
        named = len(term.replace("...", ""))
        if term.count("...") > 1 or ("..." not in term and named != rank) or named > rank or "." in term.replace(
                "...", ""):
            raise ConvertError(f"term {term!r} does not match an operand of rank {rank}")
        head, _, tail = term.partition("...")
        operands.append(list(head) + (ellipsis[ell_rank - (rank - named):] if "..." in term else []) + list(tail))
    if arrow:
        head, dots, tail = rhs.partition("...")
        output = list(head) + (ellipsis if dots else []) + list(tail)
    else:
        counts = {}
        for labels in operands:
            for label in labels:
                counts[label] = counts.get(label, 0) + 1
        output = ellipsis + sorted(label for label, n in counts.items() if n == 1 and label.isalpha())
    if len(set(output)) != len(output) or any(all(label not in ls for ls in operands) for label in output):
        raise ConvertError(f"output {rhs!r} repeats a label or names one no operand has")
    return operands, output


class _Term:
    """A value with one label per axis."""

    def __init__(self, value, labels):
        self.value, self.labels = value, list(labels)

    def extent(self, label):
        return self.value.shape[self.labels.index(label)]


def _diagonals(ctx, term: _Term) -> _Term:
    while len(set(term.labels)) != len(term.labels):
        label = next(lab for lab in term.labels if term.labels.count(lab) > 1)
        first = term.labels.index(label)
        second = term.labels.index(label, first + 1)
        if term.value.shape[first] != term.value.shape[second]:
            raise ConvertError(f"label {label!r} stands for axes of extents {term.value.shape[first]} and "
                               f"{term.value.shape[second]}")
        term = _Term(ctx.emit1("Diagonal", [term.value], {"axes": [first, second]}),
                     term.labels[:second] + term.labels[second + 1:])
    return term


def _sum_out(ctx, term: _Term, labels) -> _Term:
    axes = [axis for axis, label in enumerate(term.labels) if label in labels]
    if not axes:
        return term
    kept = [label for label in term.labels if label not in labels]
    return _Term(ctx.emit1("ReduceSum", [term.value], {"axes": axes, "keepdims": 0}), kept)


def _transpose(ctx, term: _Term, order) -> _Term:
    perm = [term.labels.index(label) for label in order]
    if perm == list(range(len(perm))):
        return term
    return _Term(ctx.emit1("Transpose", [term.value], {"perm": perm}), order)


def _combine(ctx, a: _Term, b: _Term, needed: set) -> _Term:
    """The product of two terms, summed over the shared labels not ``needed`` later."""
    a = _sum_out(ctx, a, {lab for lab in a.labels if lab not in b.labels and lab not in needed})
    b = _sum_out(ctx, b, {lab for lab in b.labels if lab not in a.labels and lab not in needed})
    shared = [lab for lab in a.labels if lab in b.labels]
    # a shared label of extent 1 on one side broadcasts: summed on the other side when contracted
    for label in [lab for lab in shared if lab not in needed and a.extent(lab) != b.extent(lab)]:
        one, other = (a, b) if a.extent(label) == 1 else (b, a)
        squeezed = _Term(reshape_to(ctx, one.value, [s for lab, s in zip(one.labels, one.value.shape)
                                                     if lab != label]), [lab for lab in one.labels if lab != label])
        summed = _sum_out(ctx, other, {label})
        a, b = (squeezed, summed) if one is a else (summed, squeezed)
        shared.remove(label)
    batch = [lab for lab in shared if lab in needed]
    contracted = [lab for lab in shared if lab not in needed]
    left = [lab for lab in a.labels if lab not in shared]
    right = [lab for lab in b.labels if lab not in shared]
    a = _transpose(ctx, a, batch + left + contracted)
    b = _transpose(ctx, b, batch + contracted + right)
    a_batch = [a.extent(lab) for lab in batch]
    b_batch = [b.extent(lab) for lab in batch]
    left_ext = [a.extent(lab) for lab in left]
    right_ext = [b.extent(lab) for lab in right]
    if not contracted:  # an outer product: a broadcast multiply
        av = reshape_to(ctx, a.value, a_batch + left_ext + [1] * len(right))
        bv = reshape_to(ctx, b.value, b_batch + [1] * len(left) + right_ext)
        return _Term(ctx.emit1("Mul", [av, bv]), batch + left + right)
    k = math.prod(a.extent(lab) for lab in contracted)
    av = reshape_to(ctx, a.value, a_batch + [math.prod(left_ext), k])
    bv = reshape_to(ctx, b.value, b_batch + [k, math.prod(right_ext)])
    (product,) = CONVERTERS["MatMul"](ctx, [av, bv], {})
    out_batch = list(product.shape[:len(batch)])
    return _Term(reshape_to(ctx, product, out_batch + left_ext + right_ext), batch + left + right)


@converter("Einsum")
def _einsum(ctx, inputs, attrs):
    if any(v.dtype == "bool" for v in inputs):
        raise ConvertError("Einsum on bool is not supported")
    operands, output = _parse(attrs["equation"], [len(v.shape) for v in inputs])
    terms = [_diagonals(ctx, _Term(value, labels)) for value, labels in zip(inputs, operands)]
    result = terms[0]
    for index in range(1, len(terms)):
        needed = set(output).union(*(t.labels for t in terms[index + 1:]))
        result = _combine(ctx, result, terms[index], needed)
    result = _sum_out(ctx, result, {lab for lab in result.labels if lab not in output})
    return [_transpose(ctx, result, output).value]
