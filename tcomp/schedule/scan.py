"""Default CPU schedule for scans along one axis (CumSum, CumProd).

The tensor is seen as ``(outer, length, inner)`` around the scanned axis. Each
(outer row, block of ``lanes`` inner positions) runs in parallel; the scan walks
the axis serially, carrying one running value per lane::

    for r in parallel(outer * ceil(inner / 16)):
      for l in vectorized(16): acc[l] = 0
      for k in range(length):
        for l in vectorized(16):
          block where io * 16 + l < inner:
            acc[l] = acc[l] + x(o, k, io * 16 + l); out(o, k, io * 16 + l) = epilogue(acc[l])

Exclusive scans store before accumulating; reverse scans walk ``k`` from the end.
"""
from __future__ import annotations

from typing import Callable

from ..tir.expr import Buffer, Cmp, IntImm, Var
from ..tir.stmt import Allocate, BufferStore, PrimFunc, block, loop, seq
from .rows import init_value

COMBINE = {"sum": lambda a, b: a + b, "prod": lambda a, b: a * b}


def scan_kernel(name: str, outer: int, length: int, inner: int, kind: str, x: Callable, store: Callable,
                params, lanes: int, dtype: str, exclusive: bool = False, reverse: bool = False) -> PrimFunc:
    """``x(o, k, i)`` loads an element; ``store(value, o, k, i)`` writes one; ``kind`` is "sum" or "prod"."""
    lanes = lanes if inner > 1 else 1
    blocks = -(-inner // lanes)
    acc = Buffer("acc", (lanes,), dtype, "local")
    r, k, l = Var("r"), Var("k"), Var("l")
    o, io = r // blocks, r % blocks
    i = io * lanes + l
    tail = Cmp("lt", i, IntImm(inner)) if inner % lanes else None
    position = (length - 1 - k) if reverse else k

    def body(vl, vo, vk, vi):
        update = BufferStore(acc, COMBINE[kind](acc[vl], x(vo, vk, vi)), (vl,))
        out = store(acc[vl], vo, vk, vi)
        return seq(out, update) if exclusive else seq(update, out)

    fill = loop(l, lanes, block(f"{name}_init", [("S", lanes, l)],
                                lambda vl: BufferStore(acc, init_value(kind, dtype), (vl,))), "vectorized")
    walk = loop(k, length, loop(l, lanes, block(
        f"{name}_scan", [("S", lanes, l), ("S", outer, o), ("S", length, position), ("S", inner, i)], body,
        predicate=tail), "vectorized"))
    rows = outer * blocks
    nest = loop(r, rows, Allocate(acc, seq(fill, walk)), "parallel" if rows > 1 else "serial")
    return PrimFunc(name, tuple(params), nest, {"kind": "scan", "rows": rows, "length": length})
