"""Conv (+ Relu) + MaxPool as one CPU kernel: the pool reads the conv's rows while they are in cache.

A network's stem (ResNet's 7x7/2 conv, Relu, 3x3/2 max pool) writes a large map (64 x 112 x 112,
3.2 MB) that only the pool reads. Here a parallel band of ``rows`` pooled rows x ``k3`` output
channels computes the conv rows those pooled rows need into a local buffer (channels innermost,
as the direct conv's accumulators, ``schedule/conv.py``) and pools them at once: the conv map is
never written. Neighbouring bands share one conv row (a 3-row window of stride 2), which both
compute: ``1 / (2 * rows)`` more conv work.

Pooling pads with -inf, so a padded tap never wins. Clamping a tap's row and column into the
conv map picks a tap of the same window instead (a window that meets the map meets it in a
contiguous run, dilation 1), which leaves the maximum unchanged and needs no masks::

    pad[n, c, h, w] = x[n, c, h - PT, w - PL] inside the image, else 0      (as the direct conv)
    for (n, k0, pb) in parallel:                         # pooled rows pb*rows ..., channels k0*k3 ...
      band = alloc(float32[(rows - 1) * PSH + PKH, OW, k3], local)
      for j:                                             # conv row oh = clamp(pb*rows*PSH - PPT + j)
        for ow2:                                         # acc: ow3 x k3, in registers
          for ow3 in unrolled, k3 in vectorized: acc[ow3, k3] = 0
          for c, r, s:
            for ow3 in unrolled, k3 in vectorized:
              acc[ow3, k3] += pad[n, c, oh*SH + r*DH, ow*SW + s*DW] * w_b[k0, c, r, s, k3]
          for ow3 in unrolled, k3 in vectorized: band[j, ow, k3] = act(acc[ow3, k3] + bias[k])
      for i, pw0, kl0:                                   # pooled row ph = pb*rows + i
        for u in unrolled(U), l in vectorized(L):        # a transposed store (targets/cpu/transposed.py)
          out[n, k, ph, pw] = epilogue(max_{kh, kw} band[i*PSH + kh, clamp(pw*PSW - PPL + kw), kl])

    func = conv_pool_kernel(node, views, ctx)            # the ConvMaxPool node of graph/passes.py
"""
from __future__ import annotations

from ..tir.expr import Buffer, Cmp, IntImm, Var, const, is_float, maximum, minimum
from ..tir.stmt import Allocate, BufferStore, PrimFunc, block, loop, seq
from ..tir.views import row_major_unflatten
from .conv import (ACCUMULATORS, CHUNKS_PER_THREAD, WEIGHT_BLOCK_BYTES, divisors, weight_reader,
                   transposed_unroll)
from .window import guarded_load, window_out

BAND_BYTES = 512 * 1024       # a band's conv rows, kept in L2


def conv_pool_plan(conv_attrs: dict, pool_attrs: dict, x_shape, w_shape, lanes: int, num_threads: int):
    """The sizes and tiles of the fused kernel, or None where it does not apply: a group-1 2-D conv
    whose weights of one band (all input channels, ``k3`` output channels) fit ``WEIGHT_BLOCK_BYTES``,
    output channels a multiple of two vectors, a max pool of dilation 1 whose pooled rows split into
    at least ``CHUNKS_PER_THREAD`` bands per thread."""
    if conv_attrs["group"] != 1 or len(x_shape) != 4 or not all(type(d) is int for d in (*x_shape, *w_shape)):
        return None
    if list(pool_attrs["dilations"]) != [1, 1] or pool_attrs.get("storage_order", 0) or lanes < 4:
        return None
    N, C, H, W = x_shape
    K, _, R, S = w_shape
    SH, SW = conv_attrs["strides"]
    DH, DW = conv_attrs["dilations"]
    pads = conv_attrs["pads"]
    OH = window_out(H, R, SH, pads[0], pads[2], DH)
    OW = window_out(W, S, SW, pads[1], pads[3], DW)
    PKH, PKW = pool_attrs["kernel_shape"]
    PSH, PSW = pool_attrs["strides"]
    ppads = pool_attrs["pads"]
    ceil_mode = bool(pool_attrs.get("ceil_mode", 0))
    POH = window_out(OH, PKH, PSH, ppads[0], ppads[2], ceil_mode=ceil_mode)
    POW = window_out(OW, PKW, PSW, ppads[1], ppads[3], ceil_mode=ceil_mode)
    k3 = 2 * lanes
    if K % k3 or C * R * S * k3 * 4 > WEIGHT_BLOCK_BYTES or POH < 1 or POW < 1:
        return None
    ow3 = max(d for d in divisors(OW) if d <= ACCUMULATORS * lanes // k3)
    if ow3 < 4:
        return None
    band_rows = [d for d in divisors(POH) if ((d - 1) * PSH + PKH) * OW * k3 * 4 <= BAND_BYTES
                 and N * (K // k3) * (POH // d) >= CHUNKS_PER_THREAD * num_threads]
    if not band_rows:
        return None
    unroll = transposed_unroll(POW, lanes) or 1
    return dict(N=N, C=C, H=H, W=W, K=K, R=R, S=S, OH=OH, OW=OW, SH=SH, SW=SW, DH=DH, DW=DW, PT=pads[0],
                PL=pads[1], PKH=PKH, PKW=PKW, PSH=PSH, PSW=PSW, PPT=ppads[0], PPL=ppads[1], POH=POH, POW=POW,
                k3=k3, ow3=ow3, rows=max(band_rows), unroll=unroll)


def conv_pool_kernel(node, views, ctx) -> PrimFunc:
    """The ConvMaxPool ``node``'s kernel (module docstring); ``views`` = x, w[, bias]."""
    x, w = views[0], views[1]
    bias = views[2] if len(views) > 2 else None
    conv_attrs, pool_attrs = node.attrs["conv"], node.attrs["pool"]
    p = conv_pool_plan(conv_attrs, pool_attrs, tuple(int(d) for d in x.shape), tuple(int(d) for d in w.shape),
                       ctx.lanes, ctx.num_threads)
    if p is None or not is_float(x.dtype) or x.dtype != w.dtype or ctx.out.dtype != x.dtype:
        raise ValueError(f"ConvMaxPool {node.name}: not of the fused form (graph/passes.py checks this)")
    dtype, lanes, k3, ow3, rows = x.dtype, ctx.lanes, p["k3"], p["ow3"], p["rows"]
    N, C, K, R, S, OH, OW = (p[key] for key in ("N", "C", "K", "R", "S", "OH", "OW"))
    params, layouts = list(ctx.params[:-1]), {}
    weight = weight_reader(w, params, node.inputs[1].is_const, layouts, k3)

    # the zero-padded input, as the direct conv's pad stage: rows vectorized, (n, c, h) parallel
    PH, PW = (OH - 1) * p["SH"] + (R - 1) * p["DH"] + 1, (OW - 1) * p["SW"] + (S - 1) * p["DW"] + 1
    pad = Buffer("pad", (N, C, PH, PW), dtype, "global")
    t, col_o, col_l = Var("t"), Var("col_o"), Var("col_l")
    n_p, c_p, h_p = row_major_unflatten(t, (N, C, PH))
    col = col_o * lanes + col_l
    fill = loop(t, N * C * PH, loop(col_o, -(-PW // lanes), loop(col_l, lanes, block(
        "pad", [("S", PW, col)], lambda vw: BufferStore(pad, guarded_load(
            x.fn, (n_p, c_p), h_p - p["PT"], vw - p["PL"], p["H"], p["W"], const(0, dtype)), (n_p, c_p, h_p, vw)),
        predicate=Cmp("lt", col, IntImm(PW)) if PW % lanes else None), "vectorized")), "parallel")

    band_h = (rows - 1) * p["PSH"] + p["PKH"]
    band = Buffer("band", (band_h, OW, k3), dtype, "local")
    b = Var("b")
    n, k0, pb = row_major_unflatten(b, (N, K // k3, p["POH"] // rows))
    j, ow2, u3, l3, c, r, s = (Var(name) for name in ("j", "ow2", "ow3", "k3", "rc", "rr", "rs"))
    oh = minimum(maximum(pb * (rows * p["PSH"]) - p["PPT"] + j, 0), OH - 1)

    acc = Buffer("acc", (ow3, k3), dtype, "local")   # the register tile: promoted to registers

    def tile(name, body_fn, reduce=()):
        iters = [("S", ow3, u3), ("S", k3, l3)] + [("R", extent, var) for var, extent in reduce]
        return loop(u3, ow3, loop(l3, k3, block(name, iters, body_fn), "vectorized"), "unrolled")

    def accumulate(vu, vl, vc, vr, vs):
        pixel = pad[n, vc, oh * p["SH"] + vr * p["DH"], (ow2 * ow3 + vu) * p["SW"] + vs * p["DW"]]
        return BufferStore(acc, acc[vu, vl] + pixel * weight(k0 * k3 + vl, vc, vr, vs), (vu, vl))

    def activate(vu, vl):
        value = acc[vu, vl] + bias.fn(k0 * k3 + vl) if bias is not None else acc[vu, vl]
        return BufferStore(band, maximum(value, const(0, dtype)) if node.attrs["relu"] else value,
                           (j, ow2 * ow3 + vu, vl))

    conv_rows = loop(j, band_h, loop(ow2, OW // ow3, Allocate(acc, seq(
        tile("acc_init", lambda vu, vl: BufferStore(acc, const(0, dtype), (vu, vl))),
        loop(c, C, loop(r, R, loop(s, S, tile("band_conv", accumulate, ((c, C), (r, R), (s, S)))))),
        tile("band_act", activate)))))

    i, pw0, kl0, uu, ll = (Var(name) for name in ("i", "pw0", "kl0", "u", "l"))
    U = p["unroll"]

    def pooled(vu, vl):
        pw, kl = pw0 * U + vu, kl0 * lanes + vl
        value = None
        for kh in range(p["PKH"]):
            for kw in range(p["PKW"]):
                column = minimum(maximum(pw * p["PSW"] - p["PPL"] + kw, 0), OW - 1)
                tap = band[i * p["PSH"] + kh, column, kl]
                value = tap if value is None else maximum(value, tap)
        idx = (n, k0 * k3 + kl, pb * rows + i, pw)
        return BufferStore(ctx.out, ctx.epilogue(value, idx), idx)

    pool_rows = loop(i, rows, loop(pw0, p["POW"] // U, loop(kl0, k3 // lanes, loop(uu, U, loop(ll, lanes, block(
        "pool", [("S", U, uu), ("S", lanes, ll)], pooled), "vectorized"), "unrolled" if U > 1 else "serial"))))
    bands = loop(b, N * (K // k3) * (p["POH"] // rows), Allocate(band, seq(conv_rows, pool_rows)), "parallel")
    tiles = f"ConvPool(k3={k3}, ow3={ow3}, rows={rows}, unroll={U})"
    func = PrimFunc(ctx.name, tuple(params) + (ctx.out,), Allocate(pad, seq(fill, bands)),
                    {"kind": "conv+maxpool", "tiles": tiles})
    if layouts:
        func.attrs["param_layouts"] = layouts
    return func
