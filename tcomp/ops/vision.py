"""Vision ops: transposed convolution (an anchor) and grid sampling (an injective view).

ConvTranspose (N-D, NC...) is computed by *phases*, without zero insertion: along an
axis of stride ``s``, the outputs ``o`` with ``(o + pad_begin) % s == r`` receive only the
kernel taps ``k`` with ``k * dilation % s == r``, and those form a stride-1 convolution
over the input. Each phase is one implicit GEMM (``schedule/matmul.py``) whose epilogue
stores straight into the strided output positions; a phase without taps writes the bias.
All phases are one kernel, so no multiply is spent on inserted zeros and no pass
interleaves the phases::

    for phase r in product(range(s_a)):
      out[n, g*CO_G + m, (q_lo + t)*s + r - pad_begin] = epilogue(bias +
          sum_{ci, j} w[g*CI_G + ci, m, k0 + j*ks] * x[n, g*CI_G + ci, q_lo + t - m0 - j*dm])

Attributes (normalised by the converter): ``strides``, ``dilations``, ``pads``
(begins then ends), ``out_spatial`` and ``group``.
"""
from __future__ import annotations

import itertools
import math

from ..graph.ir import TensorType
from ..schedule.matmul import MatmulSpec, matmul_kernel
from ..tir.compute import row_major_unflatten
from ..tir.expr import Cmp, IntImm, Load, Select, Var, const, logical_and, maximum, minimum
from ..tir.stmt import PrimFunc, block, loop, seq
from .nn import AnchorContext
from .registry import ANCHOR, register


def _infer_conv_transpose(node):
    x, w = node.inputs[0], node.inputs[1]
    return [TensorType((x.shape[0], w.shape[1] * node.attrs["group"]) + tuple(node.attrs["out_spatial"]), x.dtype)]


def phase_taps(kernel: int, stride: int, dilation: int, residue: int):
    """Taps of one phase along one axis: (k0, ks, count, m0, dm) such that the taps are
    k = k0 + j*ks (j < count) and tap j reads input q - (m0 + j*dm) for output q*s + residue."""
    for k0 in range(min(kernel, stride)):
        if (k0 * dilation - residue) % stride == 0:
            ks = stride // math.gcd(dilation, stride)
            count = -(-(kernel - k0) // ks)
            return k0, ks, count, (k0 * dilation - residue) // stride, ks * dilation // stride
    return None


def _guarded(view_fn, outer, coords, extents, dtype):
    """``view_fn(*outer, *coords)`` where every coordinate is inside its extent, else 0."""
    valid = logical_and(*[c for i, n in zip(coords, extents)
                          for c in (Cmp("ge", i, IntImm(0)), Cmp("lt", i, IntImm(n)))])
    raw = view_fn(*outer, *coords)
    if isinstance(raw, Load) and raw.predicate is None:
        return Load(raw.buffer, raw.indices, valid)
    clamped = [minimum(maximum(i, 0), n - 1) for i, n in zip(coords, extents)]
    return Select(valid, view_fn(*outer, *clamped), const(0, dtype))


def _conv_transpose_kernel(node, views, ctx: AnchorContext):
    x, w = views[0], views[1]
    bias = views[2] if len(views) > 2 else None
    a = node.attrs
    N, _, *in_sp = x.shape
    CI_G = x.shape[1] // a["group"]
    CO_G, *kernel = w.shape[1:]
    G, nd = a["group"], len(kernel)
    out_sp = a["out_spatial"]
    strides, dilations, begins = a["strides"], a["dilations"], a["pads"][:nd]

    def with_bias(value, co):
        return value + bias.fn(co) if bias is not None else value

    bodies = []
    for phase in itertools.product(*[range(s) for s in strides]):
        # outputs of this phase: o = q*s + r - pad_begin for q in [q_lo, q_lo + Q)
        q_lo = [-(-(p - r) // s) for p, r, s in zip(begins, phase, strides)]
        counts = [(o - 1 + p - r) // s - lo + 1 for o, p, r, s, lo in zip(out_sp, begins, phase, strides, q_lo)]
        if min(counts) <= 0:
            continue
        taps = [phase_taps(k, s, d, r) for k, s, d, r in zip(kernel, strides, dilations, phase)]

        def out_index(t, q_lo=q_lo, phase=phase):
            return [(lo + ti) * s + r - p for lo, ti, s, r, p in zip(q_lo, t, strides, phase, begins)]

        if any(tap is None for tap in taps):  # no kernel tap lands here: bias only
            bodies.append(_fill_kernel(N, G * CO_G, counts, lambda n, co, t, oi=out_index: ctx.store(
                with_bias(const(0, x.dtype), co), (n, co, *oi(t)))))
            continue
        tap_counts = [tap[2] for tap in taps]

        def a_fn(bg, m, k, taps=taps, tap_counts=tap_counts):
            ci, *j = row_major_unflatten(k, [CI_G] + tap_counts)
            return w.fn((bg % G) * CI_G + ci, m, *[k0 + jj * ks for jj, (k0, ks, *_) in zip(j, taps)])

        def b_fn(bg, k, row, col, taps=taps, tap_counts=tap_counts, q_lo=q_lo, counts=counts):
            ci, *j = row_major_unflatten(k, [CI_G] + tap_counts)
            t = row_major_unflatten(row, counts[:-1]) + [col] if nd > 1 else [col]
            coords = [lo + ti - m0 - jj * dm for lo, ti, jj, (_, _, _, m0, dm) in zip(q_lo, t, j, taps)]
            return _guarded(x.fn, (bg // G, (bg % G) * CI_G + ci), coords, in_sp, x.dtype)

        def store(value, bg, m, p, counts=counts, out_index=out_index):
            co = (bg % G) * CO_G + m
            return ctx.store(with_bias(value, co), (bg // G, co, *out_index(row_major_unflatten(p, counts))))

        rows = math.prod(counts[:-1])
        spec = MatmulSpec(ctx.name, N * G, CO_G, math.prod(counts), CI_G * math.prod(tap_counts), a_fn, b_fn,
                          store=store, params=ctx.params, acc_dtype=x.dtype, b_grid=(rows, counts[-1]))
        bodies.append(matmul_kernel(spec, ctx.lanes, ctx.num_threads).body)
    attrs = {"kind": "conv", "phases": str(len(bodies))}
    return PrimFunc(ctx.name, ctx.params, seq(*bodies), attrs)


def _fill_kernel(N: int, CO: int, counts, store_fn):
    """store_fn(n, co, t) over every (n, co) and phase position t."""
    flat = Var("f")
    total = N * CO * math.prod(counts)

    def body(vf):
        n, co, *t = row_major_unflatten(vf, [N, CO] + list(counts))
        return store_fn(n, co, t)

    return loop(flat, total, block("fill", [("S", total, flat)], body), "parallel")


register("ConvTranspose", ANCHOR, _infer_conv_transpose, kernel=_conv_transpose_kernel)
