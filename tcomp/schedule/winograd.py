"""Winograd F(2x2, 3x3) CPU kernel of a 3x3, stride-1, pad-1 convolution: 2.25x fewer multiplies.

Each 2x2 output tile is ``A^T [sum_c (G g_kc G^T) . (B^T d_c B)] A`` (Lavin and Gray, 2015), with
``d_c`` the 4x4 input patch of channel c around the tile, ``g_kc`` the 3x3 filter and ``.`` an
elementwise product over the 16 points ``e`` of the 4x4 tile transform: 16 products of a
[tiles x C] by a [C x K] matrix replace the 9 of the direct conv's 2x2 output pixels (36 per
tile), at the cost of the input and output transforms (adds, vectorized). The filter transform
``U = G g G^T`` is a constant one, applied once at compile time (``layouts.Winograd``:
``u[k // k3, e, c, k % k3]``).

A parallel band is one row of tiles (two output rows) of one image and a group of blocks of
``k3`` output channels (all of them where there are enough rows for the threads); its input
transform is done once and reused for every block of the group. Groups are outer, so that each
thread's bands read the filters of one group (with 2 threads and 2 groups, half of them)::

    for (n, group, th) in parallel:                         # output rows 2*th, 2*th + 1
      P[c, i, col] = x[n, c, 2*th - 1 + i, col - 1] inside the image, else 0   # 4 rows, zero border
      for c, tw in vectorized:                              # V = B^T d B: one body, 16 taps loaded once
        V[4*a + b, c, tw] = sum_i BT[a, i] * sum_j BT[b, j] * P[c, i, 2*tw + j]
      for k0 in group's blocks:
        for e, tw2:                                         # acc: tw3 tiles x k3 channels, in registers
          acc = 0
          for c:
            prefetch(u[k0, e + 1, c, :])                    # the next point's filter row (L2)
            for tw3 in unrolled, k3 in vectorized:
              acc[tw3, k3] += V[e, c, tw] * u[k0, e, c, k3]
          M[e, tw, k3] = acc
        O[i, 2*tw + j, k3] = sum_{a, b} AT[i, a] * AT[j, b] * M[4*a + b, tw, k3]
        out[n, k, 2*th + i, ow] = epilogue(O[i, ow, k3] + bias[k])   # as the direct conv's write-back

    func = winograd_kernel(node, views, ctx)   # None where it does not apply (schedule/conv.py's kernel then)
"""
from __future__ import annotations

import numpy as np

from ..tir.expr import Buffer, Var, const
from ..tir.stmt import Allocate, BufferStore, PrimFunc, block, loop, prefetch, seq
from ..tir.views import row_major_unflatten
from .conv import (
    ACCUMULATORS,
    CHUNKS_PER_THREAD,
    MIN_ACCUMULATORS,
    conv_shape,
    divisors,
    unpadded_write_back,
    weight_param,
)
from .layouts import Winograd
from .window import guarded_load

BT = ((1, 0, -1, 0), (0, 1, 1, 0), (0, -1, 1, 0), (0, 1, 0, -1))   # input transform B^T (4 x 4)
G = ((1, 0, 0), (0.5, 0.5, 0.5), (0.5, -0.5, 0.5), (0, 0, 1))        # filter transform (4 x 3)
AT = ((1, 1, 1, 0), (0, 1, -1, -1))                                   # output transform A^T (2 x 4)
LINE_FLOATS = 16              # float32 per 64-byte cache line: the filter rows' prefetches
BAND_BYTES = 1024 * 1024      # a band's buffers (P, V, M, O: on the stack of the thread running it, in L2)


def filter_transform(w: np.ndarray) -> np.ndarray:
    """``G g G^T`` of every filter of ``w`` [K, C, 3, 3]: [K, C, 4, 4], in float64."""
    g = np.asarray(G, dtype=np.float64)
    return np.einsum("ai,kcij,bj->kcab", g, w.astype(np.float64), g)


def winograd_plan(shape, lanes: int, num_threads: int) -> tuple | None:
    """``(k3, tw3, groups)``: output channels per block, tiles per register tile and groups of
    blocks (a band is one row of tiles and one group: ``groups`` bands share a row's input
    transform, each doing it again) or None where the kernel does not apply: not a 3x3 stride-1
    dilation-1 conv padded by 1 on every side, odd output sizes, output channels not a multiple
    of the vector width, fewer than ``CHUNKS_PER_THREAD`` bands per thread even with a group
    per block, register tiles under ``MIN_ACCUMULATORS`` vectors, or a band's buffers over
    ``BAND_BYTES``."""
    if shape is None:
        return None
    N, C, H, W, K, R, S, OH, OW, SH, SW, DH, DW, PT, PL = shape
    if (R, S, SH, SW, DH, DW, PT, PL) != (3, 3, 1, 1, 1, 1, 1, 1) or (OH, OW) != (H, W) or OH % 2 or OW % 2:
        return None
    if K % lanes:
        return None
    k3 = 2 * lanes if K % (2 * lanes) == 0 else lanes
    groups = [g for g in divisors(K // k3) if N * (OH // 2) * g >= CHUNKS_PER_THREAD * num_threads]
    tw3 = max(d for d in divisors(OW // 2) if d * k3 <= ACCUMULATORS * lanes)
    if not groups or tw3 * k3 < MIN_ACCUMULATORS * lanes or band_bytes(C, OW, k3, lanes) > BAND_BYTES:
        return None
    return k3, tw3, groups[0]


def band_bytes(C: int, OW: int, k3: int, lanes: int) -> int:
    """Bytes of a band's buffers (float32): the 4 zero-bordered input rows P, the transformed tiles V,
    the products M and the output rows O (``winograd_kernel``)."""
    TW = OW // 2
    TWV = -(-TW // lanes) * lanes
    PW = -(-(2 * TWV + 2) // lanes) * lanes
    return 4 * (C * 4 * PW + 16 * C * TWV + 16 * TW * k3 + 2 * OW * k3)


def _signed_sum(terms) -> object:
    """``sum(coef * value)`` over ``terms`` = [(coef in {1, -1, 0}, value)], the zeros left out."""
    total = None
    for coef, value in sorted(((c, v) for c, v in terms if c), key=lambda t: -t[0]):
        total = value if total is None else (total + value if coef > 0 else total - value)
    return total


def winograd_kernel(node, views, ctx) -> PrimFunc | None:
    """The conv ``node``'s Winograd kernel (module docstring), or None where it does not apply
    (``winograd_plan``), the weights are not a constant parameter read as it is, or the epilogue
    stores another type."""
    x, w = views[0], views[1]
    bias = views[2] if len(views) > 2 else None
    if ctx.lanes < 4 or not node.inputs[1].is_const or x.dtype != "float32" or ctx.out.dtype != x.dtype:
        return None
    if any(not isinstance(getattr(d, "value", d), int) for d in (*x.shape, *w.shape, *ctx.out.shape)):
        return None
    shape = conv_shape(node, x, w)
    plan = winograd_plan(shape, ctx.lanes, ctx.num_threads)
    if plan is None:
        return None
    params = list(ctx.params[:-1])
    index = weight_param(w, params)
    if index is None:
        return None
    k3, tw3, groups = plan
    N, C, H, W, K = shape.N, shape.C, shape.H, shape.W, shape.K
    OW, TH, TW = shape.OW, shape.OH // 2, shape.OW // 2
    dtype, lanes = x.dtype, ctx.lanes
    TWV = -(-TW // lanes) * lanes          # tiles of the input transform: whole vectors
    PW = -(-(2 * TWV + 2) // lanes) * lanes   # columns 2*tw + j of those tiles, whole vectors
    u = Buffer(params[index].name, (K // k3, 16, C, k3), dtype)
    params[index] = u

    b = Var("b")
    n, group, th = row_major_unflatten(b, (N, groups, TH))
    P = Buffer("P", (C, 4, PW), dtype, "local")
    V = Buffer("V", (16, C, TWV), dtype, "local")
    M = Buffer("M", (16, TW, k3), dtype, "local")
    O = Buffer("O", (2, OW, k3), dtype, "local")
    acc = Buffer("acc", (tw3, k3), dtype, "local")

    def vector_loop(extent, body_fn, name):
        """``body_fn(index)`` (a statement) for ``index < extent`` (a multiple of lanes), vectorized."""
        outer, inner = Var(name + "_o"), Var(name + "_l")
        return loop(outer, extent // lanes, loop(inner, lanes, body_fn(outer * lanes + inner), "vectorized"))

    c, i_ = Var("c"), Var("i")
    fill = loop(c, C, loop(i_, 4, vector_loop(PW, lambda col: block("pad", [("S", PW, col)], lambda vcol: BufferStore(
        P, guarded_load(x.fn, (n, c), th * 2 - 1 + i_, vcol - 1, H, W, const(0, dtype)), (c, i_, vcol))), "pad")))

    def transformed(tw):
        """The 16 points of the tiles ``tw`` (a vector) of channel c, each from its four input taps: one
        body, so that LLVM loads each of the 16 taps once."""
        def point(a, bb):
            def value(vtw):
                rows = [(BT[a][i], _signed_sum([(BT[bb][j], P[c, i, vtw * 2 + j]) for j in range(4)]))
                        for i in range(4)]
                return BufferStore(V, _signed_sum(rows), (a * 4 + bb, c, vtw))

            return block(f"v{a}{bb}", [("S", TWV, tw)], value)

        return seq(*[point(a, bb) for a in range(4) for bb in range(4)])

    transform = loop(c, C, vector_loop(TWV, transformed, "tw"))

    kb, e, tw2, rc, u3, l3 = (Var(name) for name in ("kb", "e", "tw2", "rc", "tw3", "k3"))
    blocks = K // k3 // groups
    k0 = group * blocks + kb

    def tile(name, body_fn, reduce=()):
        iters = [("S", tw3, u3), ("S", k3, l3)] + [("R", extent, var) for var, extent in reduce]
        return loop(u3, tw3, loop(l3, k3, block(name, iters, body_fn), "vectorized"), "unrolled")

    def accumulate(vu, vl, vc):
        return BufferStore(acc, acc[vu, vl] + V[e, vc, tw2 * tw3 + vu] * u[k0, e, vc, vl], (vu, vl))

    gemm = loop(e, 16, loop(tw2, TW // tw3, Allocate(acc, seq(
        tile("acc_init", lambda vu, vl: BufferStore(acc, const(0, dtype), (vu, vl))),
        loop(rc, C, seq(*[prefetch(u[k0, e + 1, rc, l]) for l in range(0, k3, LINE_FLOATS)],   # the next point's row
                        tile("gemm", accumulate, ((rc, C),)))),
        tile("acc_store", lambda vu, vl: BufferStore(M, acc[vu, vl], (e, tw2 * tw3 + vu, vl)))))))

    tw, kl = Var("tw"), Var("kl")

    def inverse(i, j):
        def store(vtw, vl):
            terms = [(AT[i][a] * AT[j][bb], M[a * 4 + bb, vtw, vl]) for a in range(4) for bb in range(4)]
            return BufferStore(O, _signed_sum(terms), (i, vtw * 2 + j, vl))

        return block(f"at{i}{j}", [("S", TW, tw), ("S", k3, kl)], store)

    out_tiles = loop(tw, TW, loop(kl, k3, seq(*[inverse(i, j) for i in range(2) for j in range(2)]), "vectorized"))
    per_block = loop(kb, blocks, Allocate(M, Allocate(O, seq(
        gemm, out_tiles, unpadded_write_back(O, (n, k0, th), bias, None, ctx)))))
    body = Allocate(P, Allocate(V, seq(fill, transform, per_block)))
    func = PrimFunc(ctx.name, tuple(params) + (ctx.out,), loop(b, N * TH * groups, body, "parallel"),
                    {"kind": "winograd conv", "tiles": f"Winograd(F2x2_3x3, k3={k3}, tw3={tw3}, groups={groups})",
                     "param_layouts": {index: Winograd(k3)}})
    return func

