"""Generators of anchor ops: MatMul (also sibling MatMuls with constant weights), Gemm, Conv (with the Pad
and BatchNorm/affine patterns that fold into it), pools, reductions, Softmax/LogSoftmax,
LayerNormalization, BatchNormalization."""
from __future__ import annotations

import math

from .builder import MAX_FLOAT_MAG, MAX_INT_MAG, MAX_SIZE, Builder, broadcast, op_generator, ulps
from .case import FLOAT, INTS, Spec
from .gen_tensor import factorize


def _dot_spec(a: Spec, c: Spec, k: int, shape) -> Spec | None:
    """Spec of sums of ``k`` products of elements of ``a`` and ``c``."""
    mag = k * a.mag * c.mag
    if a.dtype in INTS:
        return Spec(shape, a.dtype, -mag, mag) if mag <= MAX_INT_MAG else None
    if mag > MAX_FLOAT_MAG:
        return None
    err = k * (a.err * c.mag + c.err * a.mag) + ulps(mag, 2 * k)
    return Spec(shape, FLOAT, -mag, mag, 0.0, err)


def _float_operand(b: Builder, rank_ok, make_shape) -> str:
    return b.operand(lambda s: s.dtype == FLOAT and rank_ok(len(s.shape)) and s.size > 0,
                     lambda: b.float_spec(make_shape()), reuse=0.7)


@op_generator("matmul", weight=2.5)
def gen_matmul(b: Builder) -> None:
    dtype = FLOAT if b.chance(0.8) else b.choice(INTS)
    a = b.operand(lambda s: s.dtype == dtype and len(s.shape) >= 1,
                  lambda: b.random_spec(b.shape(b.randint(1, 4)), dtype), reuse=0.7)
    sa = b.specs[a]
    if not sa.shape:
        return
    k = sa.shape[-1]
    n = b.choice((1, 3, 4, 8, 13, 16, 33, 64))
    form = b.rng.random()
    if form < 0.2:
        b_shape = (k,)
    elif form < 0.7 or len(sa.shape) < 3:
        b_shape = (k, n)
    else:  # batched, broadcasting over the batch dims
        batch = [d if b.chance(0.6) else 1 for d in sa.shape[:-2]]
        b_shape = tuple(batch[len(batch) - b.randint(0, len(batch)):]) + (k, n)
    c = b.operand(lambda s: s.dtype == dtype and s.shape == b_shape,
                  lambda: b.random_spec(b_shape, dtype), reuse=0.3)
    sc = b.specs[c]
    a_shape = (1,) + sa.shape if len(sa.shape) == 1 else sa.shape
    c_shape = sc.shape + (1,) if len(sc.shape) == 1 else sc.shape
    batch = broadcast(a_shape[:-2], c_shape[:-2])
    if batch is None:
        return
    shape = list(batch) + [a_shape[-2], c_shape[-1]]
    if len(sc.shape) == 1:
        shape.pop(-1)
    if len(sa.shape) == 1:
        shape.pop(-2 if len(sc.shape) != 1 else -1)
    if math.prod(shape) > MAX_SIZE:
        return
    spec = _dot_spec(sa, sc, k, shape)
    if spec is not None:
        b.emit1("MatMul", [a, c], spec)


@op_generator("sibling_matmuls", weight=0.8)
def gen_sibling_matmuls(b: Builder) -> None:
    """MatMuls that share their left operand and have constant 2-D weights (horizontal fusion)."""
    x = _float_operand(b, lambda r: r >= 1, lambda: b.shape(b.randint(1, 3)))
    xs = b.specs[x]
    k = xs.shape[-1]
    with_bias = b.chance(0.6)
    for _ in range(b.randint(2, 3)):
        n = b.choice((1, 3, 4, 8, 16))
        w = b.new_value(b.float_spec((k, n), -1.0, 1.0), weight=True)
        spec = _dot_spec(xs, b.specs[w], k, xs.shape[:-1] + (n,))
        if spec is None:
            return
        y = b.emit1("MatMul", [x, w], spec)
        if with_bias:
            bias = b.new_value(b.float_spec((n,), -1.0, 1.0), weight=True)
            b.emit1("Add", [y, bias] if b.chance(0.7) else [bias, y],
                    Spec(spec.shape, FLOAT, spec.lo - 1, spec.hi + 1, 0.0, spec.err + ulps(spec.mag + 1, 2)))


@op_generator("gemm", weight=1.2)
def gen_gemm(b: Builder) -> None:
    a = _float_operand(b, lambda r: r == 2, lambda: b.shape(2))
    sa = b.specs[a]
    trans_a, trans_b = b.randint(0, 1), b.randint(0, 1)
    m, k = sa.shape[::-1] if trans_a else sa.shape
    n = b.choice((1, 3, 5, 8, 16, 33))
    w = b.new_value(b.float_spec((n, k) if trans_b else (k, n), -1.0, 1.0))
    alpha, beta = b.choice((1.0, 1.0, 0.5, 2.0)), b.choice((1.0, 1.0, 0.5, 2.0))
    spec = _dot_spec(sa, b.specs[w], k, (m, n))
    if spec is None:
        return
    lo, hi, err = alpha * spec.lo, alpha * spec.hi, alpha * spec.err + ulps(alpha * spec.mag)
    inputs = [a, w]
    if b.chance(0.7):
        c = b.new_value(b.float_spec(b.choice(((n,), (1, n), (m, 1), (m, n), ())), -1.0, 1.0))
        inputs.append(c)
        lo, hi, err = lo - beta, hi + beta, err + ulps(abs(alpha) * spec.mag + beta, 3)
    attrs = {name: v for name, v, default in (("transA", trans_a, 0), ("transB", trans_b, 0), ("alpha", alpha, 1.0),
                                              ("beta", beta, 1.0)) if v != default or b.chance(0.2)}
    b.emit1("Gemm", inputs, Spec((m, n), FLOAT, lo, hi, 0.0, err), **attrs)


def _spatial_input(b: Builder, nd: int) -> str:
    """A float value of rank ``nd + 2``: an existing one, a reshaped one, or a new input."""
    rank = nd + 2
    x = b.pick(lambda s: s.dtype == FLOAT and len(s.shape) == rank) if b.chance(0.6) else None
    if x is not None:
        return x
    src = b.pick(lambda s: s.dtype == FLOAT and s.size >= 4) if b.chance(0.4) else None
    if src is not None:
        ss = b.specs[src]
        dims = factorize(b, ss.size, rank)
        if sum(d > 1 for d in dims[2:]) >= 1:
            return b.emit1("Reshape", [src, b.const(dims)], Spec(dims, FLOAT, ss.lo, ss.hi, ss.away, ss.err))
    if b.chance(0.15):  # many channels and pixels: register tiles, packing edges, parallel loops
        shape = [b.choice((1, 2)), b.choice((8, 16, 19))] + [b.choice((9, 14, 17)) for _ in range(nd)]
    else:
        shape = [b.choice((1, 1, 2)), b.choice((1, 2, 3, 4, 6))] + [b.choice((1, 3, 5, 7, 8, 11)) for _ in range(nd)]
    return b.new_value(b.float_spec(shape), weight=False)


def _window(b: Builder, extent: int, pool: bool):
    """(kernel, stride, dilation, pad_begin, pad_end) with at least one output."""
    for _ in range(20):
        kernel = b.choice((1, 2, 3, 3))
        stride = b.choice((1, 1, 2, 3))
        dilation = b.choice((1, 1, 2))
        pads = [b.choice((0, 0, 1, 2)) for _ in range(2)]
        if pool:
            pads = [min(p, kernel - 1) for p in pads]  # pads must be smaller than the window
        span = extent + sum(pads) - dilation * (kernel - 1) - 1
        if span >= 0:
            return kernel, stride, dilation, pads
    return 1, 1, 1, [0, 0]


def _conv_attrs(b: Builder, spatial, pool: bool, dilations: bool = True):
    windows = [_window(b, e, pool) for e in spatial]
    attrs = {"kernel_shape": [w[0] for w in windows], "strides": [w[1] for w in windows],
             "pads": [w[3][0] for w in windows] + [w[3][1] for w in windows]}
    if dilations:
        attrs["dilations"] = [w[2] for w in windows]
    if b.chance(0.15):
        attrs.pop("pads")
        # SAME pads each axis by (out - 1) * stride + kernel - extent: negative (which
        # onnxruntime refuses) where a kernel smaller than its stride skips the tail
        same_fits = all((-(-e // s) - 1) * s + k >= e for e, k, s in zip(spatial, attrs["kernel_shape"], attrs["strides"]))
        attrs["auto_pad"] = b.choice(("SAME_UPPER", "SAME_LOWER", "VALID") if same_fits else ("VALID",))
        if attrs["auto_pad"] != "VALID" and dilations:
            attrs["dilations"] = [1] * len(spatial)
    return attrs


def _windows_read_input(attrs, spatial, out_spatial) -> bool:
    """Whether every pooling window holds an input element (else: -inf maxima, 0/0 averages)."""
    if attrs.get("auto_pad", "NOTSET") != "NOTSET":
        return True
    nd = len(spatial)
    for i, (extent, count) in enumerate(zip(spatial, out_spatial)):
        kernel, stride = attrs["kernel_shape"][i], attrs["strides"][i]
        dilation, begin = attrs.get("dilations", [1] * nd)[i], attrs["pads"][i]
        if not all(any(0 <= o * stride - begin + j * dilation < extent for j in range(kernel)) for o in range(count)):
            return False
    return True


def _window_out(extent, kernel, stride, dilation, pads, auto_pad, ceil=False, adjust=True):
    if auto_pad in ("SAME_UPPER", "SAME_LOWER"):
        return -(-extent // stride)
    if auto_pad == "VALID":
        pads = (0, 0)
    span = extent + pads[0] + pads[1] - dilation * (kernel - 1) - 1
    if span < 0:
        return 0
    out = (-(-span // stride) if ceil else span // stride) + 1
    if ceil and adjust and (out - 1) * stride >= extent + pads[0]:
        out -= 1
    return out


def _out_spatial(attrs, spatial, ceil=False, adjust=True):
    nd = len(spatial)
    pads = attrs.get("pads", [0] * (2 * nd))
    return [_window_out(e, attrs["kernel_shape"][i], attrs["strides"][i], attrs.get("dilations", [1] * nd)[i],
                        (pads[i], pads[i + nd]), attrs.get("auto_pad", "NOTSET"), ceil, adjust)
            for i, e in enumerate(spatial)]


@op_generator("conv", weight=2.0)
def gen_conv(b: Builder) -> None:
    nd = b.choice((1, 2, 2))
    x = _spatial_input(b, nd)
    xs = b.specs[x]
    if b.chance(0.2) and nd == 2:  # zero padding of H, W in front: folds into the convolution
        pads = [0, 0, b.randint(0, 2), b.randint(0, 2), 0, 0, b.randint(0, 2), b.randint(0, 2)]
        shape = (xs.shape[0], xs.shape[1], xs.shape[2] + pads[2] + pads[6], xs.shape[3] + pads[3] + pads[7])
        x = b.emit1("Pad", [x, b.const(pads)], Spec(shape, FLOAT, min(xs.lo, 0), max(xs.hi, 0), 0.0, xs.err))
        xs = b.specs[x]
    channels = xs.shape[1]
    group = b.choice([g for g in (1, 2, 3, channels) if channels % g == 0])
    cout = group * b.choice((1, 2, 3, 8, 17))
    attrs = _conv_attrs(b, xs.shape[2:], pool=False)
    out_spatial = _out_spatial(attrs, xs.shape[2:])
    shape = (xs.shape[0], cout, *out_spatial)
    if min(out_spatial) < 1 or math.prod(shape) > MAX_SIZE:
        return
    kernel = attrs.pop("kernel_shape")
    if b.chance(0.5):
        attrs["kernel_shape"] = kernel
    if group > 1 or b.chance(0.2):
        attrs["group"] = group
    w = b.new_value(b.float_spec((cout, channels // group, *kernel), -1.0, 1.0), weight=b.chance(0.85))
    inputs = [x, w]
    k = channels // group * math.prod(kernel)
    spec = _dot_spec(xs, b.specs[w], k, shape)
    if spec is None:
        return
    if b.chance(0.5):
        inputs.append(b.new_value(b.float_spec((cout,), -1.0, 1.0), weight=b.chance(0.85)))
        spec = Spec(shape, FLOAT, spec.lo - 1, spec.hi + 1, 0.0, spec.err + ulps(spec.mag + 1, 2))
    y = b.emit1("Conv", inputs, spec, **attrs)
    if b.chance(0.3):
        _affine_after(b, y)


def _affine_after(b: Builder, y: str) -> None:
    """A BatchNormalization or a per-channel Mul/Add/Sub/Div by constants (folds into the convolution)."""
    ys = b.specs[y]
    channels, rank = ys.shape[1], len(ys.shape)
    if b.chance(0.5):
        gen_batchnorm(b, y)
        return
    op = b.choice(("Mul", "Add", "Sub", "Div"))
    shape = b.choice(((channels,) + (1,) * (rank - 2), (1, channels) + (1,) * (rank - 2), ()))
    lo, hi = (0.5, 2.0) if op in ("Mul", "Div") else (-1.0, 1.0)
    c = b.new_value(b.float_spec(shape, lo, hi), weight=True)
    if op in ("Mul", "Div"):
        factor = 2.0  # |c| or 1 / |c| for c in [0.5, 2]
        spec = Spec(ys.shape, FLOAT, -ys.mag * factor, ys.mag * factor, 0.0, ys.err * factor + ulps(ys.mag * 2, 2))
    else:
        spec = Spec(ys.shape, FLOAT, ys.lo - 1, ys.hi + 1, 0.0, ys.err + ulps(ys.mag + 1, 2))
    b.emit1(op, [y, c] if op in ("Sub", "Div") or b.chance(0.5) else [c, y], spec)


@op_generator("batchnorm", weight=0.5)
def gen_batchnorm(b: Builder, x: str | None = None) -> None:
    if x is None:
        x = b.operand(lambda s: s.dtype == FLOAT and 2 <= len(s.shape) <= 4,
                      lambda: b.float_spec(b.shape(b.randint(2, 4))), reuse=0.7)
    xs = b.specs[x]
    channels = xs.shape[1]
    scale = b.new_value(b.float_spec((channels,), 0.5, 1.5), weight=True)
    bias = b.new_value(b.float_spec((channels,), -1.0, 1.0), weight=True)
    mean = b.new_value(b.float_spec((channels,), -1.0, 1.0), weight=True)
    var = b.new_value(b.float_spec((channels,), 0.5, 2.0), weight=True)
    factor = 1.5 / math.sqrt(0.5)
    mag = (xs.mag + 1) * factor + 1
    spec = Spec(xs.shape, FLOAT, -mag, mag, 0.0, xs.err * factor + ulps(mag, 8))
    b.emit1("BatchNormalization", [x, scale, bias, mean, var], spec, epsilon=b.choice((1e-5, 1e-3)))


@op_generator("pool", weight=1.5)
def gen_pool(b: Builder) -> None:
    nd = b.choice((1, 2, 2))
    x = _spatial_input(b, nd)
    xs = b.specs[x]
    op = b.choice(("MaxPool", "AveragePool", "GlobalAveragePool", "GlobalMaxPool"))
    if op.startswith("Global"):
        count = math.prod(xs.shape[2:])
        err = xs.err + (ulps(xs.mag, count) if op == "GlobalAveragePool" else 0.0)
        b.emit1(op, [x], Spec(xs.shape[:2] + (1,) * nd, FLOAT, xs.lo, xs.hi, 0.0, err))
        return
    attrs = _conv_attrs(b, xs.shape[2:], pool=True, dilations=(op == "MaxPool" or b.opset >= 19))
    if "dilations" in attrs and b.chance(0.5) and all(d == 1 for d in attrs["dilations"]):
        attrs.pop("dilations")
    # ceil_mode, where onnx's shape inference agrees with onnxruntime (which drops a last window
    # that starts in the right padding; onnx's inference keeps it and then rejects the graph)
    ceil = b.chance(0.3) and attrs.get("auto_pad", "NOTSET") == "NOTSET" and \
        _out_spatial(attrs, xs.shape[2:], True) == _out_spatial(attrs, xs.shape[2:], True, adjust=False)
    if ceil:
        attrs["ceil_mode"] = 1
    out_spatial = _out_spatial(attrs, xs.shape[2:], ceil)
    if min(out_spatial) < 1 or not _windows_read_input(attrs, xs.shape[2:], out_spatial):
        return
    lo, hi, err = xs.lo, xs.hi, xs.err
    if op == "AveragePool":
        if b.chance(0.4):
            attrs["count_include_pad"] = 1
            lo, hi = min(lo, 0.0), max(hi, 0.0)
        err += ulps(xs.mag, math.prod(attrs["kernel_shape"]) + 2)
    b.emit1(op, [x], Spec(xs.shape[:2] + tuple(out_spatial), FLOAT, lo, hi, 0.0, err), **attrs)


REDUCE_FLOAT = ("ReduceSum", "ReduceMean", "ReduceMax", "ReduceMin", "ReduceProd", "ReduceSumSquare", "ReduceL1",
                "ReduceL2", "ReduceLogSumExp")
REDUCE_INT = ("ReduceSum", "ReduceMax", "ReduceMin", "ReduceProd")


def _reduce_spec(op: str, xs: Spec, n: int, shape) -> Spec | None:
    m, e = xs.mag, xs.err
    if op == "ReduceMax" or op == "ReduceMin":
        return Spec(shape, xs.dtype, xs.lo, xs.hi, 0.0, e)
    if op == "ReduceSum":
        lo, hi, err = n * xs.lo, n * xs.hi, n * e + ulps(n * m, n)
    elif op == "ReduceMean":
        lo, hi, err = xs.lo, xs.hi, e + ulps(m, n)
    elif op == "ReduceProd":
        if m > 2 or n > 10:
            return None
        mag = max(m, 1.0) ** n
        lo, hi, err = -mag, mag, n * e * max(m, 1.0) ** (n - 1) + ulps(mag, 2 * n)
    elif op == "ReduceSumSquare":
        lo, hi, err = 0.0, n * m * m, n * 2 * m * e + ulps(n * m * m, n)
    elif op == "ReduceL1":
        lo, hi, err = 0.0, n * m, n * e + ulps(n * m, n)
    elif op == "ReduceL2":
        lo, hi, err = 0.0, math.sqrt(n) * m, math.sqrt(n) * e + ulps(math.sqrt(n) * m, n)
    else:  # ReduceLogSumExp
        if xs.hi > 30:
            return None
        lo, hi, err = xs.lo, xs.hi + math.log(n), e + ulps(m + math.log(n) + 1, n + 8)
    if xs.dtype in INTS:
        return Spec(shape, xs.dtype, lo, hi) if max(abs(lo), abs(hi)) <= MAX_INT_MAG else None
    if max(abs(lo), abs(hi)) > MAX_FLOAT_MAG:
        return None
    return Spec(shape, FLOAT, lo, hi, 0.0, err)


@op_generator("reduce", weight=2.5)
def gen_reduce(b: Builder) -> None:
    dtype = FLOAT if b.chance(0.8) else b.choice(INTS)
    op = b.choice(REDUCE_FLOAT if dtype == FLOAT else REDUCE_INT)
    x = b.operand(lambda s: s.dtype == dtype and len(s.shape) >= 1,
                  lambda: b.random_spec(b.shape(b.randint(1, 4)), dtype))
    xs = b.specs[x]
    rank = len(xs.shape)
    if rank == 0:
        return
    keepdims = b.randint(0, 1)
    axes = sorted(int(a) for a in b.rng.choice(rank, size=b.randint(1, rank), replace=False))
    inputs, attrs = [x], {}
    if b.chance(0.15):  # no axes: all of them
        axes_literal = None
        axes = list(range(rank))
    else:
        axes_literal = [a - rank if b.chance(0.3) else a for a in axes]
    if axes_literal is not None:
        if b.opset >= 18 or op == "ReduceSum":
            inputs.append(b.const(axes_literal))
        else:
            attrs["axes"] = axes_literal
    if keepdims == 0 or b.chance(0.3):
        attrs["keepdims"] = keepdims
    shape = tuple(1 if a in axes else d for a, d in enumerate(xs.shape)) if keepdims else \
        tuple(d for a, d in enumerate(xs.shape) if a not in axes)
    spec = _reduce_spec(op, xs, math.prod(xs.shape[a] for a in axes), shape)
    if spec is not None:
        b.emit1(op, inputs, spec, **attrs)


@op_generator("softmax", weight=1.5)
def gen_softmax(b: Builder) -> None:
    op = b.choice(("Softmax", "LogSoftmax"))
    x = _float_operand(b, lambda r: r >= 1, lambda: b.shape(b.randint(1, 4)))
    xs = b.specs[x]
    rank = len(xs.shape)
    if rank == 0 or xs.mag > 50:
        return
    axis = b.randint(-rank, rank - 1)
    attrs = {"axis": axis} if axis != -1 or b.chance(0.3) else {}
    n = xs.shape[axis]
    if op == "Softmax":
        spec = Spec(xs.shape, FLOAT, 0.0, 1.0, 0.0, 2 * xs.err + ulps(1.0, n + 8))
    else:
        width = xs.hi - xs.lo + math.log(n)
        spec = Spec(xs.shape, FLOAT, -width, 0.0, 0.0, 2 * xs.err + ulps(width + 1, n + 8))
    b.emit1(op, [x], spec, **attrs)


@op_generator("layernorm", weight=1.2, min_opset=17)
def gen_layernorm(b: Builder) -> None:
    x = _float_operand(b, lambda r: r >= 1, lambda: b.shape(b.randint(1, 4)))
    xs = b.specs[x]
    rank = len(xs.shape)
    if rank == 0:
        return
    axis = b.randint(-rank, rank - 1)
    norm_shape = xs.shape[axis:]
    epsilon = b.choice((1e-5, 1e-3, 0.1))
    inputs = [x, b.new_value(b.float_spec(norm_shape, 0.5, 1.5), weight=b.chance(0.8))]
    if b.chance(0.6):
        inputs.append(b.new_value(b.float_spec(norm_shape, -1.0, 1.0), weight=b.chance(0.8)))
    n = math.prod(norm_shape)
    mag = 1.5 * math.sqrt(n) + 1
    # (x - mean) / sqrt(var + eps): an input error is amplified by at most 2 / sqrt(eps)
    err = (2 * xs.err + ulps(xs.mag, n)) / math.sqrt(epsilon) * 1.5 + ulps(mag, n + 8)
    attrs = {"axis": axis} if axis != -1 or b.chance(0.3) else {}
    if epsilon != 1e-5:
        attrs["epsilon"] = epsilon
    b.emit1("LayerNormalization", inputs, Spec(xs.shape, FLOAT, -mag, mag, 0.0, err), **attrs)



@op_generator("conv_transpose", weight=1.0)
def gen_conv_transpose(b: Builder) -> None:
    nd = b.choice((1, 2, 2))
    x = _spatial_input(b, nd)
    xs = b.specs[x]
    channels = xs.shape[1]
    group = b.choice([g for g in (1, 2, channels) if channels % g == 0])
    cout_g = b.choice((1, 2, 3))
    kernel = [b.choice((1, 2, 3)) for _ in range(nd)]
    strides = [b.choice((1, 2, 3)) for _ in range(nd)]
    dilations = [b.choice((1, 1, 2)) for _ in range(nd)]
    pads = [b.randint(0, k - 1) for k in kernel] * 2
    out_pad = [b.randint(0, s - 1) if b.chance(0.4) else 0 for s in strides]  # onnxruntime: < stride
    spatial = [s * (e - 1) + op + (k - 1) * d + 1 - pads[i] - pads[i + nd]
               for i, (e, s, op, k, d) in enumerate(zip(xs.shape[2:], strides, out_pad, kernel, dilations))]
    shape = (xs.shape[0], cout_g * group, *spatial)
    if min(spatial) < 1 or math.prod(shape) > MAX_SIZE:
        return
    w = b.new_value(b.float_spec((channels, cout_g, *kernel), -1.0, 1.0), weight=b.chance(0.7))
    attrs = {"strides": strides, "pads": pads, "dilations": dilations}
    if any(out_pad):
        attrs["output_padding"] = out_pad
    if group > 1:
        attrs["group"] = group
    if b.chance(0.5):
        attrs["kernel_shape"] = kernel
    spec = _dot_spec(xs, b.specs[w], channels // group * math.prod(kernel), shape)
    inputs = [x, w]
    if spec is None:
        return
    if b.chance(0.5):
        inputs.append(b.new_value(b.float_spec((cout_g * group,), -1.0, 1.0), weight=b.chance(0.7)))
        spec = Spec(shape, FLOAT, spec.lo - 1, spec.hi + 1, 0.0, spec.err + ulps(spec.mag + 1, 2))
    b.emit1("ConvTranspose", inputs, spec, **attrs)


@op_generator("instance_norm", weight=0.6)
def gen_instance_norm(b: Builder) -> None:
    x = _spatial_input(b, b.choice((1, 2)))
    xs = b.specs[x]
    n = math.prod(xs.shape[2:])
    epsilon = b.choice((1e-5, 1e-2))
    channels = xs.shape[1]
    scale = b.new_value(b.float_spec((channels,), 0.5, 1.5), weight=b.chance(0.8))
    bias = b.new_value(b.float_spec((channels,), -1.0, 1.0), weight=b.chance(0.8))
    mag = 1.5 * math.sqrt(n) + 1
    err = (2 * xs.err + ulps(xs.mag, n)) / math.sqrt(epsilon) * 1.5 + ulps(mag, n + 8)
    b.emit1("InstanceNormalization", [x, scale, bias], Spec(xs.shape, FLOAT, -mag, mag, 0.0, err), epsilon=epsilon)


@op_generator("lp_norm", weight=0.5)
def gen_lp_norm(b: Builder) -> None:
    """x / ||x||_p along an axis: bit-exact operands (a row of one element is its sign)."""
    x = b.operand(lambda s: s.dtype == FLOAT and s.exact and s.away > 0 and len(s.shape) >= 1,
                  lambda: Spec(b.shape(b.randint(1, 3)), FLOAT, -2.0, 2.0, 0.25), reuse=0.6)
    xs = b.specs[x]
    if not xs.shape or xs.away <= 0:
        return
    axis = b.randint(-len(xs.shape), len(xs.shape) - 1)
    n = xs.shape[axis]
    b.emit1("LpNormalization", [x], Spec(xs.shape, FLOAT, -1.0, 1.0, 0.0, ulps(1.0, n + 8)), axis=axis,
            p=b.choice((1, 2)))


@op_generator("mvn", weight=0.4)
def gen_mvn(b: Builder) -> None:
    """(x - mean) / std over axes, of a new input: computed values may be constant along the axes
    (the reference divides by a zero standard deviation)."""
    x = b.new_value(b.float_spec(b.shape(4, 256)))
    xs = b.specs[x]
    axes = sorted(int(a) for a in b.rng.choice(4, size=b.randint(1, 3), replace=False))
    n = math.prod(xs.shape[a] for a in axes)
    if n < 4:
        return
    mag = math.sqrt(n) + 1
    attrs = {"axes": axes} if axes != [0, 2, 3] or b.chance(0.3) else {}
    b.emit1("MeanVarianceNormalization", [x], Spec(xs.shape, FLOAT, -mag, mag, 0.0, ulps(mag, 4 * n + 16)), **attrs)


@op_generator("lrn", weight=0.4)
def gen_lrn(b: Builder) -> None:
    x = _spatial_input(b, 2)
    xs = b.specs[x]
    size = b.choice((1, 3, 5))
    attrs = {"size": size, "alpha": b.choice((1e-4, 0.1)), "beta": b.choice((0.75, 0.5)), "bias": b.choice((1.0, 2.0))}
    b.emit1("LRN", [x], Spec(xs.shape, FLOAT, -xs.mag, xs.mag, 0.0, 2 * xs.err + ulps(xs.mag, size + 8)), **attrs)


EINSUMS = (  # equation, operand labels, output labels
    ("ij,jk->ik", ("ij", "jk"), "ik"), ("bij,bjk->bik", ("bij", "bjk"), "bik"), ("ij->ji", ("ij",), "ji"),
    ("i,i->", ("i", "i"), ""), ("ij,ij->i", ("ij", "ij"), "i"), ("bhqd,bhkd->bhqk", ("bhqd", "bhkd"), "bhqk"),
    ("ij,kj->ik", ("ij", "kj"), "ik"), ("ijk->ikj", ("ijk",), "ikj"), ("ij->i", ("ij",), "i"),
    ("i,j->ij", ("i", "j"), "ij"),
)


@op_generator("einsum", weight=0.8)
def gen_einsum(b: Builder) -> None:
    equation, terms, out = b.choice(EINSUMS)
    extents = {label: b.choice((1, 2, 3, 5, 8)) for label in "bhijkqd"}
    operands = [b.new_value(b.float_spec(tuple(extents[c] for c in term)), weight=b.chance(0.2)) for term in terms]
    contracted = {c for term in terms for c in term} - set(out)
    k = math.prod(extents[c] for c in contracted)
    specs = [b.specs[o] for o in operands]
    shape = tuple(extents[c] for c in out)
    if len(specs) == 1:
        s = specs[0]
        spec = Spec(shape, FLOAT, min(k * s.lo, s.lo), max(k * s.hi, s.hi), 0.0, ulps(k * s.mag, k))
    else:
        spec = _dot_spec(specs[0], specs[1], k, shape)
    b.emit1("Einsum", operands, spec, equation=equation)
