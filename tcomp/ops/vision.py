"""Vision ops: transposed, N-D and deformable convolution, grid sampling, RoiAlign,
MaxPool's indices (anchors); Col2Im (a view).

GridSample (N-D) computes each output position's source coordinates, tap indices and
weights once (vectorized along the innermost output axis, in local buffers) and then
interpolates every channel with them (nearest: one load; linear: 2^d; cubic: 4^d).

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
from ..tir.views import TensorView, row_major_flatten, row_major_unflatten
from ..tir.expr import (Buffer, Cmp, IntImm, Load, Select, Var, call, cast, const, logical_and, logical_or, maximum,
                        minimum)
from ..tir.stmt import Allocate, BufferStore, PrimFunc, block, loop, seq
from .nn import AnchorContext
from .registry import ANCHOR, INJECTIVE, register


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


# GridSample ------------------------------------------------------------------------
def _infer_grid_sample(node):
    x, grid = node.inputs
    return [TensorType(x.shape[:2] + grid.shape[1:-1], x.dtype)]


def _reflect(v, lo: float, hi: float):
    """Reflects ``v`` at the borders ``lo`` and ``hi`` until it lies between them."""
    span = hi - lo
    below = Cmp("lt", v, const(lo, v.dtype))
    dist = Select(below, const(lo, v.dtype) - v, v - const(hi, v.dtype))
    folds = call("floor", dist / const(span, v.dtype))
    rest = dist - folds * span
    odd = Cmp("ne", folds - call("floor", folds * 0.5) * 2.0, const(0, v.dtype))
    from_lo, from_hi = const(lo, v.dtype) + rest, const(hi, v.dtype) - rest
    inside = logical_and(Cmp("ge", v, const(lo, v.dtype)), Cmp("le", v, const(hi, v.dtype)))
    return Select(inside, v, Select(below, Select(odd, from_hi, from_lo), Select(odd, from_lo, from_hi)))


def _cubic_weights(t, a=-0.75):
    """Keys cubic convolution weights of the 4 taps around a fractional offset ``t``."""
    u, s, w = t + 1.0, 1.0 - t, 2.0 - t
    return [((u * a - 5 * a) * u + 8 * a) * u - 4 * a,
            (t * (a + 2) - (a + 3)) * t * t + 1.0,
            (s * (a + 2) - (a + 3)) * s * s + 1.0,
            ((w * a - 5 * a) * w + 8 * a) * w - 4 * a]


def _grid_sample_kernel(node, views, ctx: AnchorContext):
    """Per vector of output positions along the innermost axis: the source coordinate of
    each axis (denormalized, rounded for nearest, folded into the borders), then each tap's
    index and weight, kept in local buffers; then per channel the weighted taps::

      for t in parallel(N * O[:-1]):  for wo in range(ceil(OW / L)):
        coord[a, l] = ...;  index[a, k, l] = ...;  weight[a, k, l] = ...    (vectorized over l)
        for c in range(C):
          out[n, c, ..., wo*L + l] = sum_{k_0..k_d} prod_a weight[a, k_a, l] * x[n, c, index[0, k_0, l], ...]
    """
    x, grid = views
    mode, padding, align = node.attrs["mode"], node.attrs["padding_mode"], node.attrs["align_corners"]
    N, C, *dims = x.shape
    out_sp = list(grid.shape[1:-1])
    nd, dt, lanes = len(dims), x.dtype, ctx.lanes
    taps = {"nearest": 1, "linear": 2, "cubic": 4}[mode]
    borders = [(0.0, n - 1.0) if align else (-0.5, n - 0.5) for n in dims]
    coord = Buffer("coord", (nd, lanes), dt, "local")
    index = Buffer("tap_index", (nd * taps, lanes), "int64", "local")
    weight = Buffer("tap_weight", (nd * taps, lanes), dt, "local")
    t, wo, l, c = Var("t"), Var("wo"), Var("l"), Var("c")
    n, *o_outer = row_major_unflatten(t, [N] + out_sp[:-1])
    OW = out_sp[-1]
    ow = wo * lanes + l
    tail = Cmp("lt", ow, IntImm(OW)) if OW % lanes else None

    def source_coord(axis, vow):
        g = cast(dt, grid.fn(n, *o_outer, minimum(vow, OW - 1), IntImm(nd - 1 - axis)))
        length = dims[axis]
        v = (g + 1.0) / 2.0 * float(length - 1) if align else ((g + 1.0) * float(length) - 1.0) / 2.0
        if mode == "nearest":
            v = call("round", v)
        lo, hi = borders[axis]
        if padding == "border":
            outside = logical_or(Cmp("lt", v, const(lo, dt)), Cmp("gt", v, const(hi, dt)))
            return Select(outside, minimum(maximum(v, const(0, dt)), const(length - 1, dt)), v)
        return _reflect(v, lo, hi) if padding == "reflection" else v

    def tap_index(axis, i):
        """Tap ``i`` of ``axis`` inside the image under the padding mode; -1 where it reads zero."""
        length = dims[axis]
        if padding == "zeros":
            valid = logical_and(Cmp("ge", i, IntImm(0)), Cmp("lt", i, IntImm(length)))
            return Select(valid, i, IntImm(-1))
        if padding == "reflection":
            i = cast("int64", _reflect(cast(dt, i), *borders[axis]))
        return minimum(maximum(i, 0), length - 1)

    def lanes_loop(name, store_fn):
        return loop(l, lanes, block(name, [("S", OW, ow)], store_fn, predicate=tail), "vectorized")

    stages = [lanes_loop("coord", lambda vow, a=a: BufferStore(coord, source_coord(a, vow), (IntImm(a), l)))
              for a in range(nd)]
    for a in range(nd):
        v = coord[IntImm(a), l]
        base = v if mode == "nearest" else call("floor", v)
        first = cast("int64", base) - (1 if mode == "cubic" else 0)
        frac = v - base
        weights = {"nearest": [None], "linear": [1.0 - frac, frac], "cubic": _cubic_weights(frac)}[mode]
        for k, wk in enumerate(weights):
            row = IntImm(a * taps + k)
            stages.append(lanes_loop("tap_index", lambda vow, row=row, a=a, k=k, first=first: BufferStore(
                index, tap_index(a, first + k), (row, l))))
            if wk is not None:
                stages.append(lanes_loop("tap_weight", lambda vow, row=row, wk=wk: BufferStore(weight, wk, (row, l))))

    def output(vc, vow):
        total = None
        for combo in itertools.product(range(taps), repeat=nd):
            rows = [IntImm(a * taps + k) for a, k in enumerate(combo)]
            idx = [index[r, l] for r in rows]
            value = x.fn(n, vc, *[maximum(i, 0) for i in idx])
            if padding == "zeros":
                value = Select(logical_and(*[Cmp("ge", i, IntImm(0)) for i in idx]), value, const(0, dt))
            if mode != "nearest":
                for r in rows:
                    value = value * weight[r, l]
            total = value if total is None else total + value
        return ctx.store(total, (n, vc, *o_outer, vow))

    channels = loop(c, C, loop(l, lanes, block("out", [("S", C, c), ("S", OW, ow)], output, predicate=tail),
                               "vectorized"))
    body = Allocate(coord, Allocate(index, Allocate(weight, loop(wo, -(-OW // lanes), seq(*stages, channels)))))
    nest = loop(t, N * math.prod(out_sp[:-1]), body, "parallel")
    return PrimFunc(ctx.name, ctx.params, nest, {"kind": "grid_sample", "mode": mode, "padding": padding})


register("GridSample", ANCHOR, _infer_grid_sample, kernel=_grid_sample_kernel)


# Col2Im --------------------------------------------------------------------------------
def _infer_col2im(node):
    x = node.inputs[0]
    channels = x.shape[1] // math.prod(node.attrs["block_shape"])
    return [TensorType((x.shape[0], channels) + tuple(node.attrs["image_shape"]), x.dtype)]


def _view_col2im(node, views):
    """image[n, c, *p] = sum over block offsets k of columns[n, c*K + k, l], where block l
    covers p at offset k: along each axis (p + pad - k*d) = q*s with 0 <= q < blocks."""
    (x,) = views
    a = node.attrs
    block, image = a["block_shape"], a["image_shape"]
    strides, dilations, pads = a["strides"], a["dilations"], a["pads"]
    nd = len(block)
    blocks = [(i + pads[ax] + pads[ax + nd] - d * (k - 1) - 1) // s + 1
              for ax, (i, k, s, d) in enumerate(zip(image, block, strides, dilations))]
    out = _infer_col2im(node)[0]

    def fn(n, c, *p):
        total = None
        for offsets in itertools.product(*[range(k) for k in block]):
            qs, conds = [], []
            for ax, (pi, k) in enumerate(zip(p, offsets)):
                pos = pi + (pads[ax] - k * dilations[ax])
                q = pos // strides[ax]
                conds += [Cmp("ge", pos, IntImm(0)), Cmp("lt", q, IntImm(blocks[ax]))]
                if strides[ax] > 1:
                    conds.append(Cmp("eq", pos % strides[ax], IntImm(0)))
                qs.append(minimum(maximum(q, 0), blocks[ax] - 1))
            k_flat = 0
            for k, extent in zip(offsets, block):
                k_flat = k_flat * extent + k
            column = row_major_flatten(qs, blocks)
            value = Select(logical_and(*conds), x.fn(n, c * math.prod(block) + k_flat, column), const(0, x.dtype))
            total = value if total is None else total + value
        return total

    return [TensorView(out.shape, out.dtype, fn)]


register("Col2Im", INJECTIVE, _infer_col2im, _view_col2im)


# Conv (N-D; the 1-D and 2-D ones are in nn.py) ------------------------------------------
def _infer_conv_nd(node):
    x, w = node.inputs[0], node.inputs[1]
    a = node.attrs
    nd = len(w.shape) - 2
    out = [(i + a["pads"][ax] + a["pads"][ax + nd] - d * (k - 1) - 1) // s + 1
           for ax, (i, k, s, d) in enumerate(zip(x.shape[2:], w.shape[2:], a["strides"], a["dilations"]))]
    return [TensorType((x.shape[0], w.shape[0]) + tuple(out), x.dtype)]


def _conv_nd_kernel(node, views, ctx: AnchorContext):
    """Implicit GEMM over (CO/G) x (output pixels) x (CI/G * kernel taps), B packed by rows
    of the innermost output axis."""
    x, w = views[0], views[1]
    bias = views[2] if len(views) > 2 else None
    a = node.attrs
    N, _, *in_sp = x.shape
    CO, CI_G, *kernel = w.shape
    G = a["group"]
    CO_G = CO // G
    out_sp = list(_infer_conv_nd(node)[0].shape[2:])
    strides, dilations, begins = a["strides"], a["dilations"], a["pads"][:len(kernel)]

    def a_fn(bg, m, k):
        ci, *taps = row_major_unflatten(k, [CI_G] + kernel)
        return w.fn((bg % G) * CO_G + m, ci, *taps)

    def b_fn(bg, k, row, col):
        ci, *taps = row_major_unflatten(k, [CI_G] + kernel)
        out = row_major_unflatten(row, out_sp[:-1]) + [col]
        coords = [o * s - p + t * d for o, s, p, t, d in zip(out, strides, begins, taps, dilations)]
        return _guarded(x.fn, (bg // G, (bg % G) * CI_G + ci), coords, in_sp, x.dtype)

    def store(value, bg, m, p):
        co = (bg % G) * CO_G + m
        value = value + bias.fn(co) if bias is not None else value
        return ctx.store(value, (bg // G, co, *row_major_unflatten(p, out_sp)))

    spec = MatmulSpec(ctx.name, N * G, CO_G, math.prod(out_sp), CI_G * math.prod(kernel), a_fn, b_fn, store=store,
                      params=ctx.params, acc_dtype=x.dtype, b_grid=(math.prod(out_sp[:-1]), out_sp[-1]))
    func = matmul_kernel(spec, ctx.lanes, ctx.num_threads)
    func.attrs["kind"] = "conv"
    return func


register("ConvND", ANCHOR, _infer_conv_nd, kernel=_conv_nd_kernel)


# RoiAlign ------------------------------------------------------------------------------
def _infer_roi_align(node):
    x, rois = node.inputs[0], node.inputs[1]
    return [TensorType((rois.shape[0], x.shape[1], node.attrs["output_height"], node.attrs["output_width"]),
                       x.dtype)]


def _roi_axis_taps(start, bin_size, pos, sampling, length, dt):
    """The two bilinear taps (index, weight) of every sample along one axis, zero weights for
    samples outside [-1, length] (the reference's arithmetic)."""
    taps = []
    for i in range(sampling):
        v = start + cast(dt, pos) * bin_size + bin_size * ((i + 0.5) / sampling)
        valid = logical_and(Cmp("ge", v, const(-1.0, dt)), Cmp("le", v, const(float(length), dt)))
        v = maximum(v, const(0, dt))
        low = cast("int64", v)
        at_end = Cmp("ge", low, IntImm(length - 1))
        low = Select(at_end, IntImm(length - 1), low)
        high = Select(at_end, IntImm(length - 1), low + 1)
        frac = Select(at_end, const(0, dt), v - cast(dt, low))
        zero = const(0, dt)
        taps.append([(low, Select(valid, 1.0 - frac, zero)), (high, Select(valid, frac, zero))])
    return taps


def _roi_align_kernel(node, views, ctx: AnchorContext):
    """Per roi and output row, vectorized along the output columns: sample tap indices and
    weights in local buffers, then every channel's average (or max) of its samples."""
    x, rois, batch_index = views
    a = node.attrs
    _, C, H, W = x.shape
    R, OH, OW = rois.shape[0], a["output_height"], a["output_width"]
    sampling, scale, dt, lanes = a["sampling_ratio"], a["spatial_scale"], x.dtype, ctx.lanes
    offset = 0.5 if a["half_pixel"] else 0.0
    taps = 2 * sampling
    buffers = {name: Buffer(name, (taps, lanes), "int64" if name.endswith("index") else dt, "local")
               for name in ("y_index", "y_weight", "x_index", "x_weight")}
    t, wo, l, c = Var("t"), Var("wo"), Var("l"), Var("c")
    r, ph = t // OH, t % OH
    pw = wo * lanes + l
    tail = Cmp("lt", pw, IntImm(OW)) if OW % lanes else None

    def roi(k):
        return cast(dt, rois.fn(r, IntImm(k))) * scale - offset

    def extent(k):
        size = roi(k + 2) - roi(k)
        return size if a["half_pixel"] else maximum(size, const(1.0, dt))

    stages = []
    for axis, (k, pos, out_len, length) in enumerate(((1, ph, OH, H), (0, minimum(pw, OW - 1), OW, W))):
        name = "y" if axis == 0 else "x"
        axis_taps = _roi_axis_taps(roi(k), extent(k) / float(out_len), pos, sampling, length, dt)
        for row, (index, weight) in enumerate(tap for sample in axis_taps for tap in sample):
            for buf, value in ((buffers[f"{name}_index"], index), (buffers[f"{name}_weight"], weight)):
                stages.append(loop(l, lanes, block("roi_tap", [("S", OW, pw)], lambda vpw, buf=buf, value=value,
                                                   row=row: BufferStore(buf, value, (IntImm(row), l)),
                                                   predicate=tail), "vectorized"))

    def output(vc, vpw):
        batch = cast("int64", batch_index.fn(r))
        total = None
        for iy, ix in itertools.product(range(sampling), repeat=2):
            terms = []
            for ty, tx in itertools.product(range(2), repeat=2):
                yr, xr = IntImm(2 * iy + ty), IntImm(2 * ix + tx)
                weight = buffers["y_weight"][yr, l] * buffers["x_weight"][xr, l]
                terms.append(weight * x.fn(batch, vc, buffers["y_index"][yr, l], buffers["x_index"][xr, l]))
            if a["mode"] == "avg":
                sample = terms[0] + terms[1] + terms[2] + terms[3]
                total = sample if total is None else total + sample
            else:
                sample = maximum(maximum(terms[0], terms[1]), maximum(terms[2], terms[3]))
                total = sample if total is None else maximum(total, sample)
        if a["mode"] == "avg":
            total = total / float(max(sampling * sampling, 1))
        return ctx.store(total, (r, vc, ph, vpw))

    channels = loop(c, C, loop(l, lanes, block("out", [("S", C, c), ("S", OW, pw)], output, predicate=tail),
                               "vectorized"))
    body = loop(wo, -(-OW // lanes), seq(*stages, channels))
    for buf in buffers.values():
        body = Allocate(buf, body)
    return PrimFunc(ctx.name, ctx.params, loop(t, R * OH, body, "parallel"), {"kind": "roi_align", "mode": a["mode"]})


register("RoiAlign", ANCHOR, _infer_roi_align, kernel=_roi_align_kernel)


# MaxPool's Indices output ---------------------------------------------------------------
def _infer_max_pool_indices(node):
    x = node.inputs[0]
    return [TensorType(x.shape[:2] + tuple(node.attrs["out_spatial"]), "int64")]


def _max_pool_indices_kernel(node, views, ctx: AnchorContext):
    """The flat index (n, c and the pixel, row- or column-major) of each window's first
    maximum, vectorized along the innermost output axis::

      best, arg = -inf, 0;  for taps: if x > best: best, arg = x, index
    """
    (x,) = views
    a = node.attrs
    N, C, *in_sp = x.shape
    out_sp, kernel = list(a["out_spatial"]), a["kernel_shape"]
    strides, dilations, begins = a["strides"], a["dilations"], a["pads"][:len(kernel)]
    nd, dt, lanes = len(kernel), x.dtype, ctx.lanes
    best = Buffer("best", (lanes,), dt, "local")
    arg = Buffer("arg", (lanes,), "int64", "local")
    t, wo, l = Var("t"), Var("wo"), Var("l")
    n, c, *o_outer = row_major_unflatten(t, [N, C] + out_sp[:-1])
    OW = out_sp[-1]
    ow = wo * lanes + l
    out = o_outer + [ow]
    tail = Cmp("lt", ow, IntImm(OW)) if OW % lanes else None
    taps = [Var(f"k{i}") for i in range(nd)]
    coords = [o * s - p + k * d for o, s, p, k, d in zip(out, strides, begins, taps, dilations)]
    plane = (n * C + c) * math.prod(in_sp)
    within = row_major_flatten(coords if a["storage_order"] == 0 else coords[::-1],
                               in_sp if a["storage_order"] == 0 else in_sp[::-1])
    low = const(float("-inf"), dt)
    value = Select(logical_and(*[cd for i, n_ in zip(coords, in_sp)
                                 for cd in (Cmp("ge", i, IntImm(0)), Cmp("lt", i, IntImm(n_)))]),
                   x.fn(n, c, *[minimum(maximum(i, 0), n_ - 1) for i, n_ in zip(coords, in_sp)]), low)

    def lanes_block(name, body_fn):
        return loop(l, lanes, block(name, [("S", OW, ow)], body_fn, predicate=tail), "vectorized")

    greater = Cmp("gt", value, best[l])
    update = seq(lanes_block("arg", lambda vow: BufferStore(arg, Select(greater, plane + within, arg[l]), (l,))),
                 lanes_block("best", lambda vow: BufferStore(best, maximum(value, best[l]), (l,))))
    for tap, extent in reversed(list(zip(taps, kernel))):
        update = loop(tap, extent, update)
    body = seq(lanes_block("init_best", lambda vow: BufferStore(best, low, (l,))),
               lanes_block("init_arg", lambda vow: BufferStore(arg, IntImm(0), (l,))), update,
               lanes_block("out", lambda vow: ctx.store(arg[l], (n, c, *o_outer, vow))))
    nest = loop(t, N * C * math.prod(out_sp[:-1]), Allocate(best, Allocate(arg, loop(wo, -(-OW // lanes), body))),
                "parallel")
    return PrimFunc(ctx.name, ctx.params, nest, {"kind": "max_pool_indices"})


register("MaxPoolIndices", ANCHOR, _infer_max_pool_indices, kernel=_max_pool_indices_kernel)


# DeformConv (2-D) ------------------------------------------------------------------------
def _infer_deform_conv(node):
    x, w, offset = node.inputs[:3]
    return [TensorType((x.shape[0], w.shape[0]) + offset.shape[2:], x.dtype)]


def _bilinear_zero_padded(view_fn, outer, h, w, dims, dt):
    """view_fn(*outer, h, w) interpolated at real (h, w); pixels outside the image are zero."""
    total = None
    for coord_h, weight_h in _linear_taps(h):
        for coord_w, weight_w in _linear_taps(w):
            term = _guarded(view_fn, outer, (coord_h, coord_w), dims, dt) * (weight_h * weight_w)
            total = term if total is None else total + term
    return total


def _linear_taps(v):
    base = call("floor", v)
    frac = v - base
    low = cast("int64", base)
    return [(low, 1.0 - frac), (low + 1, frac)]


def _deform_conv_kernel(node, views, ctx: AnchorContext):
    """Implicit GEMM whose B operand samples the input at the offset taps (deformable im2col)."""
    x, w, offset = views[:3]
    rest = list(views[3:])
    bias = rest.pop(0) if node.attrs["has_bias"] else None
    mask = rest.pop(0) if node.attrs["has_mask"] else None
    a = node.attrs
    N, C, H, W = x.shape
    CO, CI_G, KH, KW = w.shape
    G, OG = a["group"], a["offset_group"]
    CO_G, C_OG = CO // G, C // OG
    OH, OW = _infer_deform_conv(node)[0].shape[2:]
    (SH, SW), (DH, DW), (PT, PL) = a["strides"], a["dilations"], a["pads"][:2]

    def a_fn(bg, m, k):
        ci, kh, kw = row_major_unflatten(k, (CI_G, KH, KW))
        return w.fn((bg % G) * CO_G + m, ci, kh, kw)

    def b_fn(bg, k, oh, ow):
        n = bg // G
        ci, kh, kw = row_major_unflatten(k, (CI_G, KH, KW))
        c = (bg % G) * CI_G + ci
        tap = (c // C_OG * KH + kh) * KW + kw
        h = cast(x.dtype, oh * SH - PT + kh * DH) + cast(x.dtype, offset.fn(n, tap * 2, oh, ow))
        w_ = cast(x.dtype, ow * SW - PL + kw * DW) + cast(x.dtype, offset.fn(n, tap * 2 + 1, oh, ow))
        value = _bilinear_zero_padded(x.fn, (n, c), h, w_, (H, W), x.dtype)
        return value * mask.fn(n, tap, oh, ow) if mask is not None else value

    def store(value, bg, m, p):
        co = (bg % G) * CO_G + m
        value = value + bias.fn(co) if bias is not None else value
        return ctx.store(value, (bg // G, co, *row_major_unflatten(p, (OH, OW))))

    spec = MatmulSpec(ctx.name, N * G, CO_G, OH * OW, CI_G * KH * KW, a_fn, b_fn, store=store, params=ctx.params,
                      acc_dtype=x.dtype, b_grid=(OH, OW))
    func = matmul_kernel(spec, ctx.lanes, ctx.num_threads)
    func.attrs["kind"] = "deform_conv"
    return func


register("DeformConv", ANCHOR, _infer_deform_conv, kernel=_deform_conv_kernel)
