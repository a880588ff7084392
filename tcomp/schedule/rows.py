"""Default CPU schedules for row-wise kernels: reductions, softmax, layer normalisation.

Rows run in parallel; within a row each pass is a vectorized reduction into
per-lane partial results (an rfactor), folded to a scalar afterwards::

    for row in parallel(R):
      part = alloc(16, local); red = alloc(2, local)
      for l in vectorized(16): part[l] = -inf
      for jo in range(ceil(L / 16)):
        for l in vectorized(16):
          block max_part[...] where jo * 16 + l < L:
            part[l] = max(part[l], x(row, jo * 16 + l))
      red[0] = -inf
      for l in range(16): red[0] = max(red[0], part[l])
      ... more passes reading red[...] ...
      for jo, l:  out(row, j) = epilogue(exp(x(row, j) - red[0]) / red[1])
"""
from __future__ import annotations

from typing import Callable

import numpy as np

from ..tir.expr import BinOp, Buffer, Cmp, IntImm, Var, as_expr, call, cast, const
from ..tir.stmt import Allocate, BufferStore, PrimFunc, block, loop, seq
from .extents import ceil_div, divisible, extent_of, is_static

_INIT = {"sum": 0.0, "prod": 1.0, "max": float("-inf"), "min": float("inf")}


def _combine(kind: str, a, b):
    if kind == "sum":
        return a + b
    if kind == "prod":
        return a * b
    return BinOp(kind, a, b)


def reciprocal(length, dtype: str):
    """1 / length as a ``dtype`` expression (a constant when the length is static)."""
    length = extent_of(length)
    if isinstance(length, int):
        return const(1.0 / length, dtype)
    return const(1.0, dtype) / cast(dtype, length)


def init_value(kind: str, dtype: str):
    value = _INIT[kind]
    if dtype.startswith(("int", "uint")) and kind in ("max", "min"):
        info = np.iinfo(np.dtype(dtype))
        value = info.min if kind == "max" else info.max
    return const(value, dtype)


class RowKernel:
    """Builds one row-parallel kernel from reduction passes and a final store pass."""

    def __init__(self, name: str, rows: int, length: int, dtype: str, lanes: int):
        self.name = name
        self.rows = rows
        self.length = length
        self.dtype = dtype
        self.lanes = lanes
        self.row = Var("row")
        self.buffers: dict = {}   # dtype -> (per-lane partials, folded results)
        self.passes: list = []
        self.slots = 0

    def _buffers(self, dtype: str) -> tuple:
        if dtype not in self.buffers:
            suffix = "" if dtype == self.dtype else f"_{dtype}"
            self.buffers[dtype] = (Buffer("part" + suffix, (self.lanes,), dtype, "local"),
                                   Buffer("red" + suffix, (4,), dtype, "local"))
        return self.buffers[dtype]

    def reduce(self, kind: str, value_fn: Callable, keep: Callable | None = None, dtype: str | None = None) -> object:
        """Adds a pass computing ``kind`` over ``value_fn(row, j)``; returns the scalar result expression.

        ``keep(value, row, j)``, if given, also stores each value (for a later pass to reuse).
        ``dtype`` is that of the values (default: the kernel's).
        """
        slot = self.slots
        self.slots += 1
        lanes, L = self.lanes, self.length
        jo, l, s = Var("jo"), Var("l"), Var("s")
        dtype = dtype or self.dtype
        part, red = self._buffers(dtype)
        init = init_value(kind, dtype)
        j = jo * lanes + l
        tail = None if divisible(L, lanes) else Cmp("lt", j, as_expr(L))
        name = f"{kind}{slot}"
        fill = loop(l, lanes, block(f"{name}_init", [("S", lanes, l)],
                                    lambda vl: BufferStore(part, init, (vl,))), "vectorized")
        def body(vl, vj):
            value = value_fn(self.row, vj)
            update = BufferStore(part, _combine(kind, part[vl], value), (vl,))
            return update if keep is None else seq(keep(value, self.row, vj), update)

        accumulate = loop(jo, ceil_div(L, lanes), loop(l, lanes, block(
            f"{name}_part", [("S", lanes, l), ("R", L, j)], body, predicate=tail), "vectorized"))
        fold = seq(BufferStore(red, init, (IntImm(slot),)),
                   loop(s, lanes, block(f"{name}_fold", [("R", lanes, s)], lambda vs: BufferStore(
                       red, _combine(kind, red[slot], part[vs]), (IntImm(slot),)))))
        self.passes.append(seq(fill, accumulate, fold))
        return red[slot]

    def store(self, store_fn: Callable) -> None:
        """Final pass: ``store_fn(row, j)`` returns the store of element j of the row."""
        lanes, L = self.lanes, self.length
        jo, l = Var("jo"), Var("l")
        j = jo * lanes + l
        tail = None if divisible(L, lanes) else Cmp("lt", j, as_expr(L))
        self.passes.append(loop(jo, ceil_div(L, lanes), loop(l, lanes, block(
            f"{self.name}_out", [("S", L, j)], lambda vj: store_fn(self.row, vj), predicate=tail), "vectorized")))

    def store_row(self, store_fn: Callable) -> None:
        """Final pass of a full reduction: ``store_fn(row)`` writes the row's one output element."""
        self.passes.append(block(f"{self.name}_out", [("S", self.rows, self.row)], store_fn))

    def build(self, params, attrs: dict) -> PrimFunc:
        body = seq(*self.passes)
        for part, red in self.buffers.values():
            body = Allocate(part, Allocate(red, body))
        kind = "serial" if is_static(self.rows) and extent_of(self.rows) == 1 else "parallel"
        return PrimFunc(self.name, tuple(params), loop(self.row, self.rows, body, kind), attrs)


def softmax_kernel(name, rows, length, x, store, params, lanes, log=False, scratch=None,
                   dtype="float32") -> PrimFunc:
    """``x(row, j)`` loads an input element; ``store(value, row, j)`` writes one output element.

    Both are of ``dtype``, the type the kernel computes in.

    With ``scratch = (load, store_raw)`` (the output buffer seen without the epilogue),
    the exponentials of the sum pass are kept there and only rescaled by the last pass.
    """
    k = RowKernel(name, rows, length, dtype, lanes)
    row_max = k.reduce("max", x)
    keep = None if log or scratch is None else scratch[1]
    total = k.reduce("sum", lambda r, j: call("exp", x(r, j) - row_max), keep)
    if log:
        k.store(lambda r, j: store(x(r, j) - row_max - call("log", total), r, j))
    elif keep is not None:
        k.store(lambda r, j: store(scratch[0](r, j) * call("reciprocal", total), r, j))
    else:
        k.store(lambda r, j: store(call("exp", x(r, j) - row_max) / total, r, j))
    return k.build(params, {"kind": "softmax", "rows": rows, "length": length})


def layernorm_kernel(name, rows, length, x, scale, bias, epsilon, store, params, lanes) -> PrimFunc:
    """Normalises each row, then ``* scale(j) + bias(j)`` (either may be None)."""
    k = RowKernel(name, rows, length, "float32", lanes)
    mean = k.reduce("sum", x) * reciprocal(length, "float32")
    var = k.reduce("sum", lambda r, j: (x(r, j) - mean) * (x(r, j) - mean)) * reciprocal(length, "float32")
    inv_std = call("rsqrt", var + epsilon)

    def value(r, j):
        out = (x(r, j) - mean) * inv_std
        if scale is not None:
            out = out * scale(j)
        if bias is not None:
            out = out + bias(j)
        return out

    k.store(lambda r, j: store(value(r, j), r, j))
    return k.build(params, {"kind": "layernorm", "rows": rows, "length": length})


def reduce_kernel(name, rows, length, kind, x, finish, store, params, lanes, dtype) -> PrimFunc:
    """``out(row) = finish(reduce_kind_j x(row, j))``; one output element per row."""
    k = RowKernel(name, rows, length, dtype, lanes)
    result = k.reduce(kind, x)
    k.store_row(lambda vr: store(finish(result), vr))
    return k.build(params, {"kind": "reduce", "rows": rows, "length": length})


def logsumexp_kernel(name, rows, length, x, store, params, lanes, dtype) -> PrimFunc:
    """``out(row) = m + log(sum_j exp(x(row, j) - m))`` with ``m`` the row maximum (no overflow)."""
    k = RowKernel(name, rows, length, dtype, lanes)
    row_max = k.reduce("max", x)
    total = k.reduce("sum", lambda r, j: call("exp", x(r, j) - row_max))
    k.store_row(lambda vr: store(row_max + call("log", total), vr))
    return k.build(params, {"kind": "reduce", "rows": rows, "length": length})
