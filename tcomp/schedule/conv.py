"""Default CPU schedule of a 2-D convolution (group 1, float): direct and register-tiled.

The compute definition (shared with the tuning task, ``tuning/conv_task.py``), three blocks::

    pad[n, c, h, w] = x[n, c, h - PT, w - PL] inside the image, else 0       (padded input)
    C[n, oh, ow, k] = sum_{c, r, s} pad[n, c, oh*SH + r*DH, ow*SW + s*DW] * w_t[c, r, s, k]
    out[n, k, oh, ow] = epilogue(C[n, oh, ow, k] + bias[k], (n, k, oh, ow))

C is laid out pixel-major with the output channels innermost, so the tiles vectorize over output
channels (a broadcast input pixel times a vector of weights). A unit batch is left out of ``pad``
and ``C``, and so is the pad stage when the convolution has no padding. Constant weights are read
in the layout ``w_t[c, r, s, k]`` (``func.attrs["param_layouts"]`` maps the parameter to the
permutation of the model's ``[k, c, r, s]`` array that the compiler applies once).

The schedule (``ConvTiles``, chosen from the shape by ``conv_tiles``) is a point of the tuner's
multi-level tiling space (``tuning/rules/multi_level_tiling.py``: S0 R0 S2 R1 S3, the write-back
under S0)::

    for (n, k0, oh0) in parallel:                  # one band of rows x k3 output channels
      for rc0:                                     # input channels in blocks of rc1
        for oh2, ow2:                              # the band's register tiles, weights in L1
          for rc1, r, s:
            for oh3 in unrolled, ow3 in unrolled, k3 in vectorized:   # oh3*ow3*k3/16 accumulators
              C_local[...] += pad[c, oh*SH + r, ow*SW + s] * w_t[c, r, s, k]
      out[n, k, oh, ow] = epilogue(C_local[...])   # the band's write-back
    (pad: its rows vectorized, the (n, c, h) loop parallel)

    func = direct_conv_kernel(node, views, ctx)    # ops/nn.py: None where the implicit GEMM stays
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

from ..tir import arith, te
from ..tir.expr import Buffer, Cmp, IntImm, Load, Select, Var, const, is_float, logical_and, maximum, minimum
from ..tir.stmt import Allocate, BufferStore, PrimFunc, block, loop, seq
from ..tir.views import row_major_unflatten
from .layouts import Blocked
from .window import guarded_load

WEIGHT_LAYOUT = (1, 2, 3, 0)  # [k, c, r, s] -> [c, r, s, k]
BLOCKED_PERM = (0, 2, 3, 4, 1)  # [k // kb, k % kb, c, r, s] -> [k // kb, c, r, s, k % kb]
ACCUMULATORS = 24             # vector registers of the register tile (of 32: weights, broadcasts)
BAND_BYTES = 16 * 1024        # accumulators of one parallel band (C_local), kept in L1
WEIGHT_BLOCK_BYTES = 40 * 1024  # weights of one rc0 step of a band, reused from L1 by its tiles
CHUNKS_PER_THREAD = 4         # parallel bands wanted per thread
MIN_PIXELS = 16               # smaller output images (a 1x1 map) keep the implicit GEMM
MAX_BORDER_TILES = 4          # register tiles of a row that read the padding, emitted apart (unpadded_conv)
MIN_ACCUMULATORS = 8          # fewer leave the FMA latency exposed: the implicit GEMM stays


class ConvShape(NamedTuple):
    """The sizes of a group-1 2-D convolution: input [N, C, H, W], weights [K, C, R, S], output
    [N, K, OH, OW], strides (SH, SW), dilations (DH, DW), top and left pads (PT, PL)."""
    N: int
    C: int
    H: int
    W: int
    K: int
    R: int
    S: int
    OH: int
    OW: int
    SH: int
    SW: int
    DH: int
    DW: int
    PT: int
    PL: int


def conv_shape(node, x, w) -> ConvShape | None:
    """The sizes of the conv ``node`` with input and weight views ``x`` and ``w`` (static shapes),
    or None where it is not a group-1 float 2-D convolution with input and weights of one type."""
    attrs = node.attrs
    if attrs["group"] != 1 or len(x.shape) != 4 or not is_float(x.dtype) or x.dtype != w.dtype:
        return None
    N, C, H, W = (int(d) for d in x.shape)
    K, _, R, S = (int(d) for d in w.shape)
    _, _, OH, OW = (int(d) for d in node.outputs[0].shape)
    SH, SW = attrs["strides"]
    DH, DW = attrs["dilations"]
    return ConvShape(N, C, H, W, K, R, S, OH, OW, SH, SW, DH, DW, attrs["pads"][0], attrs["pads"][1])


def conv_tensor(node, x, w, bias, params: list, constant_weights: bool, layouts: dict, epilogue,
                weight_block: int | None = None):
    """The ``out`` tensor of the compute definition above, from the conv ``node``'s input views
    (``bias`` may be None); ``params[i]`` is replaced by the re-laid-out weights where they are the
    constant parameter ``i`` read as it is (recorded in ``layouts``: ``w_t[c, r, s, k]``, or with
    ``weight_block`` kb ``w_b[k // kb, c, r, s, k % kb]``); ``epilogue(value_at)`` makes ``out`` from
    ``value_at(n, k, oh, ow)``. None where the convolution is not of this form."""
    shape = conv_shape(node, x, w)
    if shape is None:
        return None
    N, C, H, W, K, R, S, OH, OW, SH, SW, DH, DW, PT, PL = shape
    batch = (N,) if N > 1 else ()

    def batched(idx):  # the index of a tensor without a unit batch axis
        return idx if N > 1 else idx[1:]

    padded_h, padded_w = (OH - 1) * SH + (R - 1) * DH + 1, (OW - 1) * SW + (S - 1) * DW + 1
    if PT or PL or padded_h > H or padded_w > W:
        def pad_fn(*idx):
            n, c, h, w_ = (idx if N > 1 else (IntImm(0),) + idx)
            return guarded_load(x.fn, (n, c), h - PT, w_ - PL, H, W, const(0, x.dtype))

        pad = te.compute(batch + (C, padded_h, padded_w), pad_fn, name="pad")
        image = lambda n, c, h, w_: pad[batched((n, c, h, w_))]
    else:
        image = x.fn

    weight = weight_reader(w, params, constant_weights, layouts, weight_block)
    c_red, r_red, s_red = te.reduce_axis(C, "rc"), te.reduce_axis(R, "rr"), te.reduce_axis(S, "rs")

    def c_fn(*idx):
        n, oh, ow, k = (idx if N > 1 else (IntImm(0),) + idx)
        pixel = image(n, c_red, oh * SH + r_red * DH, ow * SW + s_red * DW)
        return te.sum(pixel * weight(k, c_red, r_red, s_red), axis=[c_red, r_red, s_red])

    acc = te.compute(batch + (OH, OW, K), c_fn, name="C")

    def value_at(n, k, oh, ow):
        value = acc[batched((n, oh, ow, k))]
        return value + bias.fn(k) if bias is not None else value

    return epilogue(value_at)


def weight_param(w, params: list) -> int | None:
    """The position in ``params`` of the parameter the weights' view ``w`` reads as it is
    (``w[k, c, r, s]`` is ``param[k, c, r, s]``), or None where the view computes its values."""
    probe_vars = [Var(name) for name in "kcrs"]
    probe = w.fn(*probe_vars)
    if not (isinstance(probe, Load) and probe.predicate is None and len(probe.indices) == 4
            and all(index is var for index, var in zip(probe.indices, probe_vars))):
        return None
    return next((i for i, p in enumerate(params) if p is probe.buffer), None)


def weight_reader(w, params: list, constant: bool, layouts: dict, block: int | None):
    """``weight(k, c, r, s)``: from the re-laid-out parameter where the weights are a constant
    parameter read as it is (in blocks of ``block`` output channels where given), else through the
    weights' view."""
    index = weight_param(w, params)
    if not constant or index is None:
        return w.fn
    original = params[index]
    if block is not None:
        K, C, R, S = (int(d.value) for d in original.shape)
        blocked = Buffer(original.name, (K // block, C, R, S, block), original.dtype)
        params[index] = blocked
        layouts[index] = Blocked(0, block, BLOCKED_PERM)
        return lambda k, c, r, s: blocked[k // block, c, r, s, k % block]
    laid_out = Buffer(original.name, tuple(original.shape[axis] for axis in WEIGHT_LAYOUT), original.dtype)
    params[index] = laid_out
    layouts[index] = WEIGHT_LAYOUT
    return lambda k, c, r, s: laid_out[c, r, s, k]


@dataclass(frozen=True)
class ConvTiles:
    """The direct schedule's tiles: a band is ``rows`` register-tile rows of ``oh3`` output rows
    by the whole width, ``k3`` output channels; its tiles are ``oh3 x ow3`` pixels by ``k3``
    channels; ``rc1`` input channels per rc0 step."""

    oh3: int
    ow3: int
    k3: int
    rows: int
    rc1: int


def conv_tiles(N: int, OH: int, OW: int, K: int, C: int, R: int, S: int, lanes: int, num_threads: int) -> ConvTiles | None:
    """Tiles from the shape: ``k3`` two vectors (one where K allows no more), the largest pixel tile
    within ``ACCUMULATORS`` (the widest row part first), bands as tall as ``BAND_BYTES`` allows while
    there are ``CHUNKS_PER_THREAD`` bands per thread, ``rc1`` within ``WEIGHT_BLOCK_BYTES``.
    None where K is not a multiple of the vector width, the image is smaller than ``MIN_PIXELS`` or
    its sizes leave fewer than ``MIN_ACCUMULATORS`` (prime widths and heights: 1-pixel tiles)."""
    if K % lanes or OH * OW < MIN_PIXELS:
        return None
    k3 = 2 * lanes if K % (2 * lanes) == 0 else lanes
    pixels = ACCUMULATORS * lanes // k3
    ow3 = max(d for d in divisors(OW) if d <= pixels)
    oh3 = max(d for d in divisors(OH) if d * ow3 <= pixels)
    band_rows = [d for d in divisors(OH // oh3) if d * oh3 * OW * k3 * 4 <= BAND_BYTES] or [1]
    busy = [d for d in band_rows if N * (K // k3) * (OH // (oh3 * d)) >= CHUNKS_PER_THREAD * num_threads]
    rows = max(busy or [min(band_rows)])
    if oh3 * ow3 * k3 < MIN_ACCUMULATORS * lanes:
        return None
    rc1 = max([d for d in divisors(C) if d * R * S * k3 * 4 <= WEIGHT_BLOCK_BYTES] or [1])
    return ConvTiles(oh3, ow3, k3, rows, rc1)


def divisors(n: int) -> list:
    return [d for d in range(1, n + 1) if n % d == 0]


def schedule_direct(sch, tiles: ConvTiles, lanes: int) -> None:
    """Schedules the blocks of the compute definition (``pad`` where there is one, ``C``, ``out``)
    as the module docstring shows (loops of extent 1 are absent: their tiles are skipped)."""
    names = {b.name for b in sch.blocks()}
    if "pad" in names:
        pad = sch.get_block("pad")
        *planes, row = sch.get_loops(pad)
        _, row_lanes = sch.split(row, [None, lanes])
        if planes:
            sch.parallel(sch.fuse(*planes) if len(planes) > 1 else planes[0])
        sch.vectorize(row_lanes)
    c = sch.get_block("C")
    *batch, oh, ow, k, rc, rr, rs = _iter_loops(sch, c)
    oh0, oh2, oh3 = _split(sch, oh, [None, tiles.rows, tiles.oh3])
    ow2, ow3 = _split(sch, ow, [None, tiles.ow3])
    k0, k3 = _split(sch, k, [None, tiles.k3])
    rc0, rc1 = _split(sch, rc, [None, tiles.rc1])
    band = [loop for loop in (*batch, k0, oh0) if loop is not None]
    order = band + [rc0, oh2, ow2, rc1, rr, rs, oh3, ow3, k3]
    sch.reorder(*[loop for loop in order if loop is not None])
    writeback = sch.cache_write(c, 0, "local")
    sch.reverse_compute_inline(sch.get_block("out"))
    sch.reverse_compute_at(writeback, band[-1], True)
    sch.parallel(sch.fuse(*band) if len(band) > 1 else band[0])
    for loop in (oh3, ow3):
        if loop is not None:
            sch.unroll(loop)
    sch.vectorize(k3)
    sch.decompose_reduction(c, next(loop for loop in order[len(band):] if loop is not None))
    _write_back(sch, writeback, lanes)  # the init keeps the tile's vectorized loop


def transposed_unroll(pixels, lanes: int) -> int | None:
    """Pixels unrolled around a channel vector in a write-back: the largest power of two ``U`` in
    4..16 (at most ``lanes``) dividing the row of ``pixels`` (an int), which the code generator turns
    into a transpose in registers and contiguous stores along the NCHW rows
    (``targets/cpu/transposed.py``); None where none divides it or the row is symbolic."""
    return max((u for u in (4, 8, 16) if u <= lanes and isinstance(pixels, int) and pixels % u == 0), default=None)


def _write_back(sch, writeback, lanes: int) -> None:
    """The band's write-back (its innermost loops: the row's pixels, the tile's channels) vectorized
    along the channels, ``transposed_unroll`` pixels unrolled around the vectors where it applies."""
    *_, width, channels = [None] + sch.get_loops(writeback)
    pixels = arith.simplify(sch.get_loop(width).extent) if width is not None else None
    unroll = transposed_unroll(pixels.value if isinstance(pixels, IntImm) else None, lanes)
    if unroll is None:
        sch.vectorize(sch.split(channels, [None, lanes])[1])
        return
    width_o, width_i = sch.split(width, [None, unroll])
    channels_o, channels_i = sch.split(channels, [None, lanes])
    sch.reorder(width_o, channels_o, width_i, channels_i)
    sch.unroll(width_i)
    sch.vectorize(channels_i)


def _iter_loops(sch, block) -> list:
    """Per iterator of ``block``, the loop that feeds it (None for an elided loop of extent 1)."""
    blk = sch.get_block_obj(block)
    values = sch.realize_of(blk).iter_values
    loops = {id(sch.get_loop(rv).var): rv for rv in sch.get_loops(block)}
    return [loops.get(id(value)) for value in values]


def _split(sch, loop, factors: list) -> list:
    """``sch.split(loop, factors)``, or Nones where the loop is absent."""
    return sch.split(loop, factors) if loop is not None else [None] * len(factors)


def direct_conv_kernel(node, views, ctx):
    """The convolution ``node``'s default kernel (``ops/nn.py``'s ``AnchorContext`` gives where it
    writes and its epilogue), or None where the implicit GEMM stays: not the form above, symbolic
    sizes, no vector unit, output channels not a multiple of the vector width, or an epilogue that
    stores another type than the conv computes."""
    from ..schedule.compact import compact_buffers
    from ..schedule.schedule import Schedule

    x, w = views[0], views[1]
    bias = views[2] if len(views) > 2 else None
    shapes = [_static(shape) for shape in (x.shape, w.shape, ctx.out.shape)]
    if ctx.lanes < 4 or None in shapes or len(shapes[0]) != 4:
        return None
    (N, C, _, _), (K, _, R, S), (_, _, OH, OW) = shapes
    tiles = conv_tiles(N, OH, OW, K, C, R, S, ctx.lanes, ctx.num_threads)
    if tiles is None:
        return None
    params, layouts = list(ctx.params[:-1]), {}
    out = conv_tensor(node, x, w, bias, params, node.inputs[1].is_const, layouts, lambda value_at: te.compute(
        ctx.out.shape, lambda *idx: ctx.epilogue(value_at(*idx), idx), name="out"), weight_block=tiles.k3)
    if out is None or out.buffer.dtype != ctx.out.dtype:
        return None
    shape = conv_shape(node, x, w)
    if unpadded_applies(shape, tiles):
        params, layouts = list(ctx.params[:-1]), {}
        func = unpadded_conv(shape, x, w, bias, params, node.inputs[1].is_const, layouts, tiles, ctx)
    else:
        sch = Schedule(te.create_func([te.Tensor(p, None) for p in params] + [out], name=ctx.name))
        schedule_direct(sch, tiles, ctx.lanes)
        compact_buffers(sch)
        func = sch.func
    func.attrs.update({"kind": "direct conv", "tiles": str(tiles)})
    if layouts:
        func.attrs["param_layouts"] = layouts
    return func


def _padded(shape: ConvShape) -> bool:
    """Whether the compute definition has a pad stage (some tap reads outside the image)."""
    N, C, H, W, K, R, S, OH, OW, SH, SW, DH, DW, PT, PL = shape
    return bool(PT or PL or (OH - 1) * SH + (R - 1) * DH + 1 > H or (OW - 1) * SW + (S - 1) * DW + 1 > W)


def _border_tiles(shape: ConvShape, ow3: int) -> tuple:
    """``(a, b)``: the register tiles ``a <= ow2 < b`` of a row read only columns inside the image."""
    OW, SW, DW, S, PL, W = shape.OW, shape.SW, shape.DW, shape.S, shape.PL, shape.W
    inside = [ow2 * ow3 * SW - PL >= 0 and (ow2 * ow3 + ow3 - 1) * SW + (S - 1) * DW - PL < W
              for ow2 in range(OW // ow3)]
    a = next((i for i, ok in enumerate(inside) if ok), len(inside))
    b = a + next((i for i, ok in enumerate(inside[a:]) if not ok), len(inside) - a)
    return a, b


def unpadded_applies(shape: ConvShape, tiles: ConvTiles) -> bool:
    """Whether ``unpadded_conv`` replaces the pad stage: a padded conv, register tiles one row high
    (the taps' row range is then one per tile row), dilation 1 along the rows, at most
    ``MAX_BORDER_TILES`` register tiles of a row outside its interior run (``_border_tiles``) and
    no more than inside it: in ResNet-18 the 7x7 and 14x14 maps, whose tiles are all border tiles,
    ran 1.4x slower in the model without their pad stage (1.0 against 0.65 ms; alone 0.47 against
    0.52), so they keep it."""
    if not _padded(shape) or tiles.oh3 != 1 or shape.DH != 1:
        return False
    a, b = _border_tiles(shape, tiles.ow3)
    return shape.OW // tiles.ow3 - (b - a) <= min(b - a, MAX_BORDER_TILES)


def unpadded_conv(shape: ConvShape, x, w, bias, params: list, constant_weights: bool, layouts: dict,
                  tiles: ConvTiles, ctx) -> PrimFunc:
    """The direct schedule of a padded conv without its pad stage: the taps read the input itself.
    A tile row's taps ``r`` run over the rows inside the image only (the loop's bounds), a row's
    register tiles that read inside the image (``a <= ow2 < b``) load without masks, and each
    border tile is emitted apart, with ``ow2`` a constant and loads masked by the column
    (``_column_guarded``), conditions that LLVM folds where it unrolls the taps::

        for (n, k0, oh0) in parallel:                  # one band: rows x k3 output channels
          C_local = alloc(float32[rows, OW, k3], local)
          C_local[...] = 0
          for rc0, oh2:                                 # oh = oh0*rows + oh2
            r_lo, r_hi = max(0, PT - oh*SH), min(R, H + PT - oh*SH)
            for ow2 in (0, .., a - 1) (constants), range(a, b), (b, .., OW/ow3 - 1) (constants):
              for rc1, r in range(r_lo, r_hi), s:
                for ow3 in unrolled, k3 in vectorized:
                  C_local[oh2, ow, k] += x[n, c, oh*SH + r - PT, ow*SW + s*DW - PL] * w_b[k0, c, r, s, k3]
          out[n, k, oh, ow] = epilogue(C_local[...] + bias[k])  # as schedule_direct's write-back
    """
    N, C, H, W, K, R, S, OH, OW, SH, SW, DH, DW, PT, PL = shape
    dtype, k3, ow3, rows, rc1 = x.dtype, tiles.k3, tiles.ow3, tiles.rows, tiles.rc1
    weight = weight_reader(w, params, constant_weights, layouts, k3)
    b, rc0, oh2, ow2, u3, l3, c1, rr, rs = (Var(name) for name in ("b", "rc0", "oh2", "ow2", "ow3", "k3", "rc1",
                                                                   "rr", "rs"))
    n, k0, oh0 = row_major_unflatten(b, (N, K // k3, OH // rows))
    acc = Buffer("C_local", (rows, OW, k3), dtype, "local")
    oh = oh0 * rows + oh2
    r_lo = maximum(PT - oh * SH, 0)
    taps = maximum(minimum(H + PT - oh * SH, R) - r_lo, 0)

    def tiles_of(column, guarded: bool):
        c, r = rc0 * rc1 + c1, r_lo + rr

        def accumulate(vu, vl, vc, vr, vs):
            ih, iw = oh * SH + vr - PT, (column * ow3 + vu) * SW + vs * DW - PL
            pixel = _column_guarded(x.fn, (n, vc, ih), iw, W, dtype) if guarded else x.fn(n, vc, ih, iw)
            return BufferStore(acc, acc[oh2, column * ow3 + vu, vl] + pixel * weight(k0 * k3 + vl, vc, vr, vs),
                               (oh2, column * ow3 + vu, vl))

        iters = [("S", ow3, u3), ("S", k3, l3), ("R", C, c), ("R", R, r), ("R", S, rs)]
        return loop(c1, rc1, loop(rr, taps, loop(rs, S, loop(u3, ow3, loop(l3, k3, block(
            "C", iters, accumulate), "vectorized"), "unrolled"))))

    a, e = _border_tiles(shape, ow3)
    parts = [tiles_of(IntImm(i), True) for i in range(a)]
    if e > a:
        parts.append(loop(ow2, e - a, tiles_of(ow2 + a, False)))
    parts += [tiles_of(IntImm(i), True) for i in range(e, OW // ow3)]
    conv = loop(rc0, C // rc1, loop(oh2, rows, seq(*parts)))

    i, j, kl = Var("i"), Var("j"), Var("kl")
    init = loop(i, rows, loop(j, OW, loop(kl, k3, block(
        "C_init", [("S", rows, i), ("S", OW, j), ("S", k3, kl)],
        lambda vi, vj, vk: BufferStore(acc, const(0, dtype), (vi, vj, vk))), "vectorized")))
    band = loop(b, N * (K // k3) * (OH // rows), Allocate(acc, seq(init, conv, unpadded_write_back(
        acc, (n, k0, oh0), bias, tiles, ctx))), "parallel")
    return PrimFunc(ctx.name, tuple(params) + (ctx.out,), band, {})


def _column_guarded(view_fn, outer: tuple, iw, W: int, dtype: str):
    """``view_fn(*outer, iw)`` where ``0 <= iw < W``, else 0 (the rows are inside: the taps' bounds);
    a plain buffer becomes a masked load, other views are read at a clamped column and selected."""
    valid = logical_and(Cmp("ge", iw, IntImm(0)), Cmp("lt", iw, IntImm(W)))
    raw = view_fn(*outer, iw)
    if isinstance(raw, Load) and raw.predicate is None:
        return Load(raw.buffer, raw.indices, valid)
    return Select(valid, view_fn(*outer, minimum(maximum(iw, 0), W - 1)), const(0, dtype))


def unpadded_write_back(acc: Buffer, band: tuple, bias, tiles: ConvTiles, ctx):
    """``out[n, k, oh, ow] = epilogue(C_local[...] + bias[k])`` for one band, vectorized along the
    channels, ``U`` pixels unrolled around them where a power of two ``U`` >= 4 divides the row (a
    transposed store, as ``_write_back``)."""
    n, k0, oh0 = band
    rows, OW, k3 = (int(d.value) for d in acc.shape)
    lanes = ctx.lanes
    unroll = transposed_unroll(OW, lanes) or 1
    i, w0, c0, uu, ll = (Var(name) for name in ("i", "w0", "c0", "u", "l"))

    def store(vu, vl):
        ow, kl = w0 * unroll + vu, c0 * lanes + vl
        value = acc[i, ow, kl] + bias.fn(k0 * k3 + kl) if bias is not None else acc[i, ow, kl]
        idx = (n, k0 * k3 + kl, oh0 * rows + i, ow)
        return BufferStore(ctx.out, ctx.epilogue(value, idx), idx)

    return loop(i, rows, loop(w0, OW // unroll, loop(c0, k3 // lanes, loop(uu, unroll, loop(ll, lanes, block(
        "out", [("S", unroll, uu), ("S", lanes, ll)], store), "vectorized"), "unrolled" if unroll > 1 else "serial"))))


def _static(shape) -> tuple | None:
    """``shape`` as ints, or None where a dimension is symbolic."""
    dims = [d.value if isinstance(d, IntImm) else d for d in shape]
    return tuple(dims) if all(type(d) is int for d in dims) else None
