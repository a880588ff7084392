"""The tuning task of a reduction group (ReduceSum, ReduceMean, ReduceMax, ReduceMin,
ReduceSumSquare, ReduceL1, ReduceL2, ReduceLogSum, ReduceLogSumExp over any axes, keepdims or
not; GlobalAveragePool and GlobalMaxPool arrive as ReduceMean / ReduceMax over H, W)::

    R[rows..] = sum_{cols..} f(x[idx])                 f: x, x * x (SumSquare, L2), |x| (L1)
    out[o..] = epilogue(finish(R[rows(o)]), o..)       finish: * 1/L (Mean), sqrt (L2), log (LogSum)

    ReduceLogSumExp:  M[rows..] = max x;  S[rows..] = sum exp(x - M);  out = epilogue(M + log(S))

``rows`` are the kept axes, ``cols`` the reduced ones, both without their unit axes (plain loop
nests for the tuner; ``RowAxes``). ReduceProd is no task (tir.te has no product reducer).
"""
from __future__ import annotations

from ..graph.fusion import FusedGroup
from ..schedule.rows import reciprocal
from ..tir import te
from ..tir.expr import IntImm, call

FINISH = {"ReduceMean": lambda r, length, dtype: r * reciprocal(length, dtype),
          "ReduceL2": lambda r, length, dtype: call("sqrt", r),
          "ReduceLogSum": lambda r, length, dtype: call("log", r)}
PRE = {"ReduceSumSquare": lambda v: v * v, "ReduceL2": lambda v: v * v, "ReduceL1": lambda v: call("abs", v)}
COMBINER = {"ReduceMax": te.max, "ReduceMin": te.min}


class RowAxes:
    """The axes of ``shape`` split into rows (kept) and columns (reduced), unit axes left out::

        RowAxes((1, 12, 128, 64), [3]): row_shape [12, 128], cols [3]
        index((h, i), (k,)) -> (0, h, i, k);  row((0, h, i, k)) -> (h, i)
    """

    def __init__(self, shape, reduced):
        self.shape = [int(s) for s in shape]
        self.reduced = sorted(reduced)
        self.rows = [a for a in range(len(shape)) if a not in self.reduced and self.shape[a] != 1]
        self.cols = [a for a in self.reduced if self.shape[a] != 1] or self.reduced[:1]
        self.row_shape = [self.shape[a] for a in self.rows] or [1]
        self.length = 1
        for a in self.reduced:
            self.length *= self.shape[a]

    def reduce_axes(self, prefix: str = "k") -> list:
        return [te.reduce_axis(self.shape[a], f"{prefix}{i}") for i, a in enumerate(self.cols)]

    def index(self, row_idx, col_idx) -> tuple:
        """The index into the full shape of row ``row_idx`` (a ``row_shape`` index), column ``col_idx``
        (without row axes, the one index of the unit row shape is left unused)."""
        idx = [IntImm(0)] * len(self.shape)
        for axis, value in zip(self.rows, row_idx):
            idx[axis] = value
        for axis, value in zip(self.cols, col_idx):
            idx[axis] = value
        return tuple(idx)

    def row(self, idx) -> tuple:
        """The ``row_shape`` index of a full index (its row axes)."""
        return tuple(idx[a] for a in self.rows) if self.rows else (IntImm(0),)

    def row_compute(self, fn, name: str):
        """``te.compute`` over the row shape; ``fn(row_idx)`` (a tuple) gives the element."""
        return te.compute(self.row_shape, lambda *r: fn(r), name=name)


def reduce(group: FusedGroup, params: list, views: dict, layouts: dict, epilogue):
    """The ``out`` tensor of the reduction task, or None where the reduction is not a task."""
    node = group.anchor
    x = views[node.inputs[0].uid]
    op, axes, keep = node.op, node.attrs["axes"], node.attrs["keepdims"]
    ax = RowAxes(x.shape, axes)
    kept = [a for a in range(x.ndim) if a not in ax.reduced]

    def load(row, col):
        return x.fn(*ax.index(row, col))

    if op == "ReduceLogSumExp":
        k0, k1 = ax.reduce_axes("k"), ax.reduce_axes("j")
        m = ax.row_compute(lambda r: te.max(load(r, k0), axis=k0), "M")
        s = ax.row_compute(lambda r: te.sum(call("exp", load(r, k1) - m[r]), axis=k1), "S")
        result = lambda r: m[r] + call("log", s[r])
    else:
        k = ax.reduce_axes()
        pre = PRE.get(op, lambda v: v)
        red = ax.row_compute(lambda r: COMBINER.get(op, te.sum)(pre(load(r, k)), axis=k), "R")
        finish = FINISH.get(op, lambda v, length, dtype: v)
        result = lambda r: finish(red[r], ax.length, x.dtype)

    def value_at(*out_idx):
        full = [IntImm(0)] * x.ndim
        for axis, value in zip(kept, [out_idx[a] for a in kept] if keep else out_idx):
            full[axis] = value
        return result(ax.row(full))

    return epilogue(value_at)
