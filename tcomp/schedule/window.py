"""Default CPU schedule for sliding-window kernels: pooling and depthwise convolution.

``out[n, c, oh, ow] = finish(reduce_{kh, kw} f(x[n, c', oh*s - p + kh*d, ow*s - p + kw*d]))``
over NCHW tensors, vectorized along ``ow``; out-of-image taps are masked::

    for t in parallel(N * C * OH):
      for owo in range(ceil(OW / 16)):
        for l in vectorized(16): acc[l] = init
        for kh in unrolled(KH): for kw in unrolled(KW):
          for l in vectorized(16):
            block tap[...] where ow < OW:
              acc[l] = acc[l] + w[c, kh, kw] * (x[n, c, ih, iw] if 0 <= ih < H and 0 <= iw < W else 0)
        for l in vectorized(16): out[n, c, oh, ow] = finish(acc[l])
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from ..tir.compute import row_major_unflatten
from ..tir.expr import Buffer, Cmp, IntImm, Load, Select, Var, const, logical_and, maximum, minimum
from ..tir.stmt import Allocate, BufferStore, PrimFunc, block, loop, seq
from .rows import init_value

MAX_UNROLLED_TAPS = 64


@dataclass
class WindowSpec:
    name: str
    N: int
    C: int
    H: int
    W: int
    OH: int
    OW: int
    kernel: tuple         # (KH, KW)
    strides: tuple
    pads: tuple           # (top, left)
    dilations: tuple
    x: Callable           # (n, c, h, w) -> Expr, the input of output channel c
    reduce: str           # "sum" or "max"
    weight: Callable | None   # (c, kh, kw) -> Expr for depthwise conv
    finish: Callable      # (acc, n, c, oh, ow, count) -> Expr; count = number of valid taps
    store: Callable       # (value, n, c, oh, ow) -> BufferStore
    params: tuple
    dtype: str = "float32"


def _guarded_input(spec: WindowSpec, n, c, ih, iw):
    """The tap at (ih, iw): a predicated load when the input is a plain buffer, else clamp + select."""
    valid = logical_and(Cmp("ge", ih, IntImm(0)), Cmp("lt", ih, IntImm(spec.H)),
                        Cmp("ge", iw, IntImm(0)), Cmp("lt", iw, IntImm(spec.W)))
    pad_value = init_value(spec.reduce, spec.dtype)
    raw = spec.x(n, c, ih, iw)
    if isinstance(raw, Load) and raw.predicate is None:
        loaded = Load(raw.buffer, raw.indices, valid)
        return loaded if spec.reduce == "sum" else Select(valid, loaded, pad_value)
    clamped = spec.x(n, c, minimum(maximum(ih, 0), spec.H - 1), minimum(maximum(iw, 0), spec.W - 1))
    return Select(valid, clamped, pad_value)


def window_kernel(spec: WindowSpec, lanes: int) -> PrimFunc:
    KH, KW = spec.kernel
    SH, SW = spec.strides
    PT, PL = spec.pads
    DH, DW = spec.dilations
    acc = Buffer("acc", (lanes,), spec.dtype, "local")
    t, owo, l, kh, kw = Var("t"), Var("owo"), Var("l"), Var("kh"), Var("kw")
    n, c, oh = row_major_unflatten(t, (spec.N, spec.C, spec.OH))
    ow = owo * lanes + l
    tail = Cmp("lt", ow, IntImm(spec.OW)) if spec.OW % lanes else None
    init = init_value(spec.reduce, spec.dtype)

    fill = loop(l, lanes, block("acc_init", [("S", lanes, l)], lambda vl: BufferStore(acc, init, (vl,))),
                "vectorized")

    def tap(vl, vkh, vkw):
        ih = oh * SH - PT + vkh * DH
        iw = (owo * lanes + vl) * SW - PL + vkw * DW
        value = _guarded_input(spec, n, c, ih, iw)
        if spec.weight is not None:
            value = value * spec.weight(c, vkh, vkw)
        combined = acc[vl] + value if spec.reduce == "sum" else maximum(acc[vl], value)
        return BufferStore(acc, combined, (vl,))

    unroll = "unrolled" if KH * KW <= MAX_UNROLLED_TAPS else "serial"
    taps = loop(kh, KH, loop(kw, KW, loop(l, lanes, block(
        "tap", [("S", lanes, l), ("R", KH, kh), ("R", KW, kw)], tap, predicate=tail), "vectorized"), unroll), unroll)

    def count_valid(vow):
        # number of in-image taps (for average pooling without padded elements)
        h0 = oh * SH - PT
        w0 = vow * SW - PL
        rows = _count_in_range(h0, KH, DH, spec.H)
        cols = _count_in_range(w0, KW, DW, spec.W)
        return rows * cols

    out = loop(l, lanes, block("out", [("S", spec.OW, ow)], lambda vow: spec.store(
        spec.finish(acc[l], n, c, oh, vow, count_valid(vow)), n, c, oh, vow), predicate=tail), "vectorized")
    body = Allocate(acc, loop(owo, -(-spec.OW // lanes), seq(fill, taps, out)))
    nest = loop(t, spec.N * spec.C * spec.OH, body, "parallel")
    attrs = {"kind": "window", "window": f"{KH}x{KW} stride {SH}x{SW}", "reduce": spec.reduce}
    return PrimFunc(spec.name, spec.params, nest, attrs)


def _count_in_range(start, taps, dilation, extent):
    """How many of start + i*dilation (i < taps) lie in [0, extent), as a float32 expression."""
    from ..tir.expr import cast

    count = const(0, "int64")
    for i in range(taps):
        pos = start + i * dilation
        inside = logical_and(Cmp("ge", pos, IntImm(0)), Cmp("lt", pos, IntImm(extent)))
        count = count + Select(inside, IntImm(1), IntImm(0))
    return cast("float32", count)
