"""Compute definitions the schedule and tuning tests share."""
from __future__ import annotations

from tcomp import tir
from tcomp.tir.expr import maximum


def matmul_func(m, n, k, b_name: str = "B", relu: bool = False):
    """``C = A @ B`` (float32, extents may be size variables), or ``D = relu(C)`` with ``relu``."""
    a = tir.placeholder((m, k), "float32", name="A")
    b = tir.placeholder((k, n), "float32", name=b_name)
    r = tir.reduce_axis(k, name="k")
    c = tir.compute((m, n), lambda i, j: tir.sum(a[i, r] * b[r, j], axis=r), name="C")
    if not relu:
        return tir.create_func([a, b, c])
    d = tir.compute((m, n), lambda i, j: maximum(c[i, j], 0.0), name="D")
    return tir.create_func([a, b, d])


def row_reduce_func(reducer, rows: int, cols: int, out: str = "C"):
    """``out[i] = reducer(A[i, k] over k)`` on a float32 ``rows x cols`` array (``reducer``:
    ``tir.sum``, ``tir.max`` ...)."""
    a = tir.placeholder((rows, cols), "float32", name="A")
    k = tir.reduce_axis(cols, name="k")
    c = tir.compute((rows,), lambda i: reducer(a[i, k], axis=k), name=out)
    return tir.create_func([a, c])


def chain_func(rows: int, cols: int):
    """``B = A * 2`` (an intermediate), ``C = B + 1``: two elementwise stages over ``rows x cols``."""
    a = tir.placeholder((rows, cols), "float32", name="A")
    b = tir.compute((rows, cols), lambda i, j: a[i, j] * 2.0, name="B")
    c = tir.compute((rows, cols), lambda i, j: b[i, j] + 1.0, name="C")
    return tir.create_func([a, c])
