"""Default CPU schedule for TopK indices: K selection rounds per row, each two vectorized passes.

The row's elements are ordered by (value, descending for the largest, then index
ascending); round ``t`` finds the first element after the previous round's pick in
that order: the best value among the elements after it, then the smallest index
holding that value. ``O(K * length)`` per row, rows in parallel::

    for row in parallel(R):
      prev = (+inf, -1)
      for t in range(K):
        m = max_j { x[j] : (x[j], j) after prev }          # vectorized rfactor
        i = min_j { j : (x[j], j) after prev and x[j] == m }
        out(row, t) = i; prev = (m, i)
"""
from __future__ import annotations

from typing import Callable

from ..tir.expr import Buffer, Cmp, IntImm, Select, Var, logical_and, logical_or
from ..tir.stmt import Allocate, BufferStore, PrimFunc, loop, seq
from .rows import RowKernel, init_value


def topk_kernel(name: str, rows: int, length: int, k: int, largest: bool, x: Callable, store: Callable, params,
                lanes: int, dtype: str) -> PrimFunc:
    """``x(row, j)`` loads an element; ``store(index, row, t)`` writes the index of the row's t-th pick."""
    kernel = RowKernel(name, rows, length, dtype, lanes)
    best, worst, beyond = ("max", "min", "lt") if largest else ("min", "max", "gt")
    prev = Buffer("prev", (1,), dtype, "local")
    prev_index = Buffer("prev_index", (1,), "int64", "local")

    def after(row, j):
        value = x(row, j)
        return logical_or(Cmp(beyond, value, prev[0]),
                          logical_and(Cmp("eq", value, prev[0]), Cmp("gt", j, prev_index[0])))

    pick = kernel.reduce(best, lambda r, j: Select(after(r, j), x(r, j), init_value(best, dtype)))
    index = kernel.reduce("min", lambda r, j: Select(logical_and(after(r, j), Cmp("eq", x(r, j), pick)), j,
                                                     IntImm(length)), dtype="int64")
    t = Var("t")
    round_ = seq(*kernel.passes, store(index, kernel.row, t), BufferStore(prev, pick, (IntImm(0),)),
                 BufferStore(prev_index, index, (IntImm(0),)))
    start = seq(BufferStore(prev, init_value(worst, dtype), (IntImm(0),)),
                BufferStore(prev_index, IntImm(-1), (IntImm(0),)))
    kernel.passes = [Allocate(prev, Allocate(prev_index, seq(start, loop(t, k, round_))))]
    return kernel.build(params, {"kind": "topk", "rows": rows, "length": length})
