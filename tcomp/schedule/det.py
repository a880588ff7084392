"""Default CPU schedule for determinants: LU elimination with partial pivoting, one matrix per
parallel iteration, in a local copy of the matrix::

    for b in parallel(B):
      a = copy of matrix b; det = 1
      for k in range(n):
        p = argmax_{i >= k} |a[i, k]|; swap rows k, p (det = -det when p != k)
        det *= a[k, k]
        for i > k, j > k: a[i, j] -= a[i, k] / a[k, k] * a[k, j]   (0 when the pivot is 0)
      out(b) = det
"""
from __future__ import annotations

from typing import Callable

from ..tir.expr import Buffer, Cmp, IntImm, Select, Var, call, const, logical_and
from ..tir.stmt import Allocate, BufferStore, PrimFunc, block, loop, seq


def det_kernel(name: str, batch: int, n: int, x: Callable, store: Callable, params, dtype: str) -> PrimFunc:
    """``x(b, i, j)`` loads an element of matrix ``b``; ``store(value, b)`` writes its determinant."""
    a = Buffer("lu", (n, n), dtype, "local")
    det = Buffer("det", (1,), dtype, "local")
    best = Buffer("best", (1,), dtype, "local")
    pivot = Buffer("pivot", (1,), "int64", "local")
    b, i, j, k = Var("b"), Var("i"), Var("j"), Var("k")
    zero, one = IntImm(0), const(1, dtype)
    copy = loop(i, n, loop(j, n, block(f"{name}_copy", [("S", n, i), ("S", n, j)],
                                       lambda vi, vj: BufferStore(a, x(b, vi, vj), (vi, vj)))))
    search = seq(BufferStore(best, call("abs", a[k, k]), (zero,)), BufferStore(pivot, k, (zero,)),
                 loop(i, n, block(f"{name}_pivot", [("S", n, i)], lambda vi: seq(
                     BufferStore(pivot, Select(Cmp("gt", call("abs", a[vi, k]), best[0]), vi, pivot[0]), (zero,)),
                     BufferStore(best, Select(Cmp("gt", call("abs", a[vi, k]), best[0]), call("abs", a[vi, k]),
                                              best[0]), (zero,))), predicate=Cmp("gt", i, k))))
    tmp = Buffer("swap", (1,), dtype, "local")
    swap = loop(j, n, block(f"{name}_swap", [("S", n, j)], lambda vj: seq(
        BufferStore(tmp, a[k, vj], (zero,)), BufferStore(a, a[pivot[0], vj], (k, vj)),
        BufferStore(a, tmp[0], (pivot[0], vj)))))
    sign = BufferStore(det, Select(Cmp("ne", pivot[0], k), -det[0], det[0]) * a[k, k], (zero,))
    nonzero = Cmp("ne", a[k, k], const(0, dtype))
    factor = Select(nonzero, a[i, k] / Select(nonzero, a[k, k], one), const(0, dtype))
    eliminate = loop(i, n, loop(j, n, block(f"{name}_elim", [("S", n, i), ("S", n, j)],
                                            lambda vi, vj: BufferStore(a, a[vi, vj] - factor * a[k, vj], (vi, vj)),
                                            predicate=logical_and(Cmp("gt", i, k), Cmp("gt", j, k)))))
    body = seq(copy, BufferStore(det, one, (zero,)), loop(k, n, seq(search, swap, sign, eliminate)),
               block(f"{name}_out", [], lambda: store(det[0], b)))
    for buf in (a, det, best, pivot, tmp):
        body = Allocate(buf, body)
    return PrimFunc(name, tuple(params), loop(b, batch, body, "parallel" if batch > 1 else "serial"),
                    {"kind": "det", "rows": batch, "length": n * n})
