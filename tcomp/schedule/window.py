"""Default CPU schedule for sliding-window kernels: pooling and depthwise convolution.

``out[n, c, oh, ow] = finish(reduce_{kh, kw} f(x[n, c', oh*s - p + kh*d, ow*s - p + kw*d]))``
over NCHW tensors, vectorized along ``ow``; out-of-image taps are masked::

    for t in parallel(N * C):
      plane = alloc(HP * WP, local)                  # x[n, c] with a zero (or -inf) border
      for r, j:  plane[r, j] = x[n, c, r - PT, j - PL] if in the image else pad
      for oh in range(OH):
        for owo in range(ceil(OW / 16)):
          for l in vectorized(16): acc[l] = init
          for kh in unrolled(KH): for kw in unrolled(KW):
            for l in vectorized(16):                 # no masks: the border absorbs them
              acc[l] = acc[l] + w[c, kh, kw] * plane[oh*s + kh*d, (owo*16 + l)*s + kw*d]
          for l in vectorized(16): out[n, c, oh, ow] = finish(acc[l])   where ow < OW
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from ..tir.views import row_major_unflatten
from ..tir.expr import Buffer, Cmp, FloatImm, IntImm, Load, Select, Var, cast, logical_and, maximum, minimum
from ..tir.stmt import Allocate, BufferStore, PrimFunc, block, loop, seq
from .rows import init_value

MAX_UNROLLED_TAPS = 64
# Largest input plane copied to the stack with a zero border (bigger planes use masked taps).
MAX_PLANE_BYTES = 1 << 19


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
    pads: tuple           # (top, left, bottom, right)
    dilations: tuple
    x: Callable           # (n, c, h, w) -> Expr, the input of output channel c
    reduce: str           # "sum" or "max"
    weight: Callable | None   # (c, kh, kw) -> Expr for depthwise conv
    finish: Callable      # (acc, n, c, oh, ow, count) -> Expr; count(include_pad) = number of taps
    #                       inside the image (or inside image + pads)
    store: Callable       # (value, n, c, oh, ow) -> BufferStore
    params: tuple
    dtype: str = "float32"


def window_out(size: int, kernel: int, stride: int, pad_begin: int, pad_end: int, dilation: int = 1,
               ceil_mode: bool = False) -> int:
    """Output positions of a sliding window along one axis (ONNX Conv and pooling; ``ceil_mode``:
    a last partial window that starts inside the input or its left padding counts)."""
    span = size + pad_begin + pad_end - dilation * (kernel - 1) - 1
    out = (-(-span // stride) if ceil_mode else span // stride) + 1
    if ceil_mode and (out - 1) * stride >= size + pad_begin:
        out -= 1  # the last window must start inside the input or left padding
    return out


def guarded_load(view_fn, outer, ih, iw, H: int, W: int, pad_value):
    """``view_fn(*outer, ih, iw)`` inside the H x W image, ``pad_value`` outside.

    A plain buffer becomes a predicated load (masked lanes touch no memory);
    other views are evaluated at clamped coordinates and selected.
    """
    valid = logical_and(Cmp("ge", ih, IntImm(0)), Cmp("lt", ih, IntImm(H)),
                        Cmp("ge", iw, IntImm(0)), Cmp("lt", iw, IntImm(W)))
    raw = view_fn(*outer, ih, iw)
    if isinstance(raw, Load) and raw.predicate is None:
        loaded = Load(raw.buffer, raw.indices, valid)
        is_zero = isinstance(pad_value, (IntImm, FloatImm)) and pad_value.value == 0
        return loaded if is_zero else Select(valid, loaded, pad_value)
    clamped = view_fn(*outer, minimum(maximum(ih, 0), H - 1), minimum(maximum(iw, 0), W - 1))
    return Select(valid, clamped, pad_value)


def _guarded_input(spec: WindowSpec, n, c, ih, iw):
    return guarded_load(spec.x, (n, c), ih, iw, spec.H, spec.W, init_value(spec.reduce, spec.dtype))


def window_kernel(spec: WindowSpec, lanes: int) -> PrimFunc:
    """Padded windows copy each input plane into a zero-bordered local buffer first, so
    that the taps need no masks; planes too large for the stack use masked taps instead."""
    KH, KW = spec.kernel
    SH, SW = spec.strides
    PT, PL = spec.pads[:2]
    DH, DW = spec.dilations
    owo_count = -(-spec.OW // lanes)
    # padded plane: rows/cols that any tap of any (rounded-up) output vector touches
    HP = max(spec.H + PT, (spec.OH - 1) * SH + (KH - 1) * DH + 1)
    WP = max(spec.W + PL, (owo_count * lanes - 1) * SW + (KW - 1) * DW + 1)
    padded = PT or PL or HP > spec.H or WP > spec.W
    acc = Buffer("acc", (lanes,), spec.dtype, "local")
    t, oh, owo = Var("t"), Var("oh"), Var("owo")

    if padded and HP * WP * 4 > MAX_PLANE_BYTES:  # masked taps, parallel over output rows
        n, c, oh = row_major_unflatten(t, (spec.N, spec.C, spec.OH))

        def masked_tap(vl, vkh, vkw):
            ih = oh * SH - PT + vkh * DH
            iw = (owo * lanes + vl) * SW - PL + vkw * DW
            return _guarded_input(spec, n, c, ih, iw)

        body = Allocate(acc, loop(owo, owo_count, _output_vector(spec, acc, lanes, n, c, oh, owo, masked_tap, True)))
        return _window_func(spec, loop(t, spec.N * spec.C * spec.OH, body, "parallel"))

    n, c = t // spec.C, t % spec.C
    if padded:
        plane = Buffer("plane", (HP, WP), spec.dtype, "local")
        r, jo, jl = Var("r"), Var("jo"), Var("jl")
        col = jo * lanes + jl

        def copy(vr, vc):
            return BufferStore(plane, _guarded_input(spec, n, c, vr - PT, vc - PL), (vr, vc))

        fill_plane = loop(r, HP, loop(jo, -(-WP // lanes), loop(jl, lanes, block(
            "pad_copy", [("S", HP, r), ("S", WP, col)], copy,
            predicate=Cmp("lt", col, IntImm(WP)) if WP % lanes else None), "vectorized")))

        def source(ih, iw):
            return plane[ih, iw]
    else:
        fill_plane = None

        def source(ih, iw):
            return spec.x(n, c, ih, iw)

    def tap(vl, vkh, vkw):
        return source(oh * SH + vkh * DH, (owo * lanes + vl) * SW + vkw * DW)

    rows = loop(oh, spec.OH, loop(owo, owo_count, _output_vector(spec, acc, lanes, n, c, oh, owo, tap, False)))
    body = Allocate(acc, seq(fill_plane, rows))
    if padded:
        body = Allocate(plane, body)
    return _window_func(spec, loop(t, spec.N * spec.C, body, "parallel"))


def _output_vector(spec: WindowSpec, acc: Buffer, lanes: int, n, c, oh, owo, tap_value, mask_taps: bool):
    """One vector of outputs: acc = init; acc (+ or max)= tap_value(lane, kh, kw) over the
    window; out[n, c, oh, owo*L + lane] = finish(acc), tail lanes masked."""
    KH, KW = spec.kernel
    l, kh, kw = Var("l"), Var("kh"), Var("kw")
    ow = owo * lanes + l
    tail = Cmp("lt", ow, IntImm(spec.OW)) if spec.OW % lanes else None
    init = init_value(spec.reduce, spec.dtype)
    fill = loop(l, lanes, block("acc_init", [("S", lanes, l)], lambda vl: BufferStore(acc, init, (vl,))),
                "vectorized")
    unroll = "unrolled" if KH * KW <= MAX_UNROLLED_TAPS else "serial"
    taps = loop(kh, KH, loop(kw, KW, loop(l, lanes, block(
        "tap", [("S", lanes, l), ("R", KH, kh), ("R", KW, kw)],
        lambda vl, vkh, vkw: _accumulate(spec, acc, vl, tap_value(vl, vkh, vkw), c, vkh, vkw),
        predicate=tail if mask_taps else None), "vectorized"), unroll), unroll)
    out = loop(l, lanes, block("out", [("S", spec.OW, ow)], lambda vow: spec.store(
        spec.finish(acc[l], n, c, oh, vow, _counter(spec, oh, vow)), n, c, oh, vow), predicate=tail),
        "vectorized")
    return seq(fill, taps, out)


def _window_func(spec: WindowSpec, nest) -> PrimFunc:
    KH, KW = spec.kernel
    SH, SW = spec.strides
    attrs = {"kind": "window", "window": f"{KH}x{KW} stride {SH}x{SW}", "reduce": spec.reduce}
    return PrimFunc(spec.name, spec.params, nest, attrs)


def _accumulate(spec: WindowSpec, acc: Buffer, lane, value, c, kh, kw) -> BufferStore:
    """acc[lane] = acc[lane] (+ or max) value (times the depthwise weight)."""
    if spec.weight is not None:
        value = value * spec.weight(c, kh, kw)
    combined = acc[lane] + value if spec.reduce == "sum" else maximum(acc[lane], value)
    return BufferStore(acc, combined, (lane,))


def _counter(spec: WindowSpec, oh, ow):
    """count(include_pad): taps of output (oh, ow) inside the image, or inside image + pads."""
    KH, KW = spec.kernel
    PT, PL, PB, PR = spec.pads

    def count(include_pad: bool):
        lo_h, lo_w = (-PT, -PL) if include_pad else (0, 0)
        hi_h, hi_w = (spec.H + PB, spec.W + PR) if include_pad else (spec.H, spec.W)
        rows = _count_in_range(oh * spec.strides[0] - PT, KH, spec.dilations[0], lo_h, hi_h)
        cols = _count_in_range(ow * spec.strides[1] - PL, KW, spec.dilations[1], lo_w, hi_w)
        return rows * cols

    return count


def _count_in_range(start, taps, dilation, lo, hi):
    """How many of start + i*dilation (i < taps) lie in [lo, hi), as a float32 expression."""
    count = IntImm(0)
    for i in range(taps):
        pos = start + i * dilation
        inside = logical_and(Cmp("ge", pos, IntImm(lo)), Cmp("lt", pos, IntImm(hi)))
        count = count + Select(inside, IntImm(1), IntImm(0))
    return cast("float32", count)
