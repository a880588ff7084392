"""Anchor ops: matmul, convolution, pooling, reductions, softmax, layer normalisation.

Each defines ``infer`` and ``kernel(node, views, ctx) -> PrimFunc``, which
builds the op's default-scheduled loop nest (``tcomp.schedule``) with the
fused group's prologues already inside ``views`` and its epilogue in ``ctx``.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from ..graph.ir import Node, TensorType, Value
from ..schedule.conv import direct_conv_kernel
from ..schedule.conv_pool import conv_pool_kernel
from ..schedule.winograd import winograd_kernel
from ..schedule.matmul import MatmulSpec, matmul_kernel
from ..schedule.rows import layernorm_kernel, logsumexp_kernel, reciprocal, reduce_kernel, softmax_kernel
from ..schedule.window import WindowSpec, guarded_load, window_kernel, window_out
from ..tir.views import broadcast_index, row_major_unflatten
from ..tir.expr import Buffer, Expr, IntImm, call, cast, const
from ..tir.stmt import BufferStore
from .registry import ANCHOR, broadcast_shapes, register


@dataclass
class AnchorContext:
    """Where an anchor kernel writes: ``out[idx] = epilogue(value, idx)``."""

    name: str
    out: Buffer
    epilogue: Callable
    params: tuple
    lanes: int
    num_threads: int

    def store(self, value: Expr, idx) -> BufferStore:
        idx = tuple(idx)
        return BufferStore(self.out, self.epilogue(value, idx), idx)


# MatMul ----------------------------------------------------------------
def _infer_matmul(node):
    a, b = node.inputs
    batch = broadcast_shapes(a.shape[:-2], b.shape[:-2])
    return [TensorType(batch + (a.shape[-2], b.shape[-1]), a.dtype)]


def _matmul_kernel(node, views, ctx: AnchorContext):
    a, b = views
    out_shape = _infer_matmul(node)[0].shape
    batch_shape = out_shape[:-2]
    M, K = a.shape[-2:]
    N = b.shape[-1]
    batch = 1
    for s in batch_shape:
        batch *= s

    def batch_idx(bi, shape):
        full = row_major_unflatten(bi, batch_shape) if batch_shape else []
        return broadcast_index(full, shape[:-2], batch_shape) if full else ()

    def store(value, bi, m, n):
        full = tuple(row_major_unflatten(bi, batch_shape)) if batch_shape else ()
        return ctx.store(value, full + (m, n))

    spec = MatmulSpec(ctx.name, batch, M, N, K,
                      a=lambda bi, m, k: a.fn(*batch_idx(bi, a.shape), m, k),
                      b=lambda bi, k, n: b.fn(*batch_idx(bi, b.shape), k, n),
                      store=store, params=ctx.params, acc_dtype=a.dtype)
    return matmul_kernel(spec, ctx.lanes, ctx.num_threads)


register("MatMul", ANCHOR, _infer_matmul, kernel=_matmul_kernel)


# Conv (2-D, NCHW) --------------------------------------------------------
def _infer_conv(node):
    x, w = node.inputs[0], node.inputs[1]
    a = node.attrs
    N, _, H, W = x.shape
    OH = window_out(H, w.shape[2], a["strides"][0], a["pads"][0], a["pads"][2], a["dilations"][0])
    OW = window_out(W, w.shape[3], a["strides"][1], a["pads"][1], a["pads"][3], a["dilations"][1])
    return [TensorType((N, w.shape[0], OH, OW), x.dtype)]


def _conv_kernel(node, views, ctx: AnchorContext):
    x, w = views[0], views[1]
    bias = views[2] if len(views) > 2 else None
    a = node.attrs
    N, C, H, W = x.shape
    CO, CI_G, KH, KW = w.shape
    G = a["group"]
    _, _, OH, OW = _infer_conv(node)[0].shape
    SH, SW = a["strides"]
    DH, DW = a["dilations"]
    PT, PL = a["pads"][0], a["pads"][1]
    CO_G = CO // G
    acc_dtype = "int32" if x.dtype == "int32" else "float32"  # integer convolutions accumulate exactly

    def with_bias(value, co):
        return value + bias.fn(co) if bias is not None else value

    if CI_G == 1 and G > 1:  # depthwise (channel multiplier CO_G)
        spec = WindowSpec(ctx.name, N, CO, H, W, OH, OW, (KH, KW), (SH, SW), tuple(a["pads"]), (DH, DW),
                          x=lambda n, co, h, w_: x.fn(n, co // CO_G, h, w_), reduce="sum",
                          weight=lambda co, kh, kw: w.fn(co, IntImm(0), kh, kw),
                          finish=lambda acc, n, co, oh, ow, count: with_bias(acc, co),
                          store=lambda value, n, co, oh, ow: ctx.store(value, (n, co, oh, ow)), params=ctx.params,
                          dtype=acc_dtype)
        return window_kernel(spec, ctx.lanes)

    if G == 1:  # Winograd F(2x2, 3x3) or direct and register-tiled where they apply (schedule/)
        func = winograd_kernel(node, views, ctx) or direct_conv_kernel(node, views, ctx)
        if func is not None:
            return func

    # implicit GEMM: M = CO/G, N = OH*OW, K = CI/G*KH*KW, batch = N*G
    def a_fn(bg, m, k):
        g = bg % G
        ci, kh, kw = row_major_unflatten(k, (CI_G, KH, KW))
        return w.fn(g * CO_G + m, ci, kh, kw)

    # a 1x1, stride-1, unpadded convolution is a plain matmul over the pixels
    pointwise = (KH, KW, SH, SW) == (1, 1, 1, 1) and not any(a["pads"])

    def b_fn(bg, k, oh, ow):
        n, g = bg // G, bg % G
        ci, kh, kw = row_major_unflatten(k, (CI_G, KH, KW))
        ih = oh * SH - PT + kh * DH
        iw = ow * SW - PL + kw * DW
        if pointwise:
            return x.fn(n, g * CI_G + ci, ih, iw)
        return guarded_load(x.fn, (n, g * CI_G + ci), ih, iw, H, W, const(0, x.dtype))

    def store(value, bg, m, p):
        n, g = bg // G, bg % G
        co = g * CO_G + m
        oh, ow = row_major_unflatten(p, (OH, OW))
        return ctx.store(with_bias(value, co), (n, co, oh, ow))

    if pointwise:  # B over the flat pixel index: a plain operand, read in place
        b_operand, grid = (lambda bg, k, p: b_fn(bg, k, *row_major_unflatten(p, (OH, OW)))), None
    else:  # B over the pixel grid: packed by output rows
        b_operand, grid = b_fn, (OH, OW)
    spec = MatmulSpec(ctx.name, N * G, CO_G, OH * OW, CI_G * KH * KW, a_fn, b_operand,
                      store=store, params=ctx.params, b_grid=grid, acc_dtype=acc_dtype)
    func = matmul_kernel(spec, ctx.lanes, ctx.num_threads)
    func.attrs["kind"] = "conv"
    return func


register("Conv", ANCHOR, _infer_conv, kernel=_conv_kernel)


# Pooling -----------------------------------------------------------------
def _infer_pool(node):
    x = node.inputs[0]
    a = node.attrs
    N, C, H, W = x.shape
    sizes = [window_out(size, a["kernel_shape"][axis], a["strides"][axis], a["pads"][axis], a["pads"][axis + 2],
                        a["dilations"][axis], bool(a.get("ceil_mode"))) for axis, size in enumerate((H, W))]
    return [TensorType((N, C, sizes[0], sizes[1]), x.dtype)]


def _pool_kernel(node, views, ctx: AnchorContext):
    (x,) = views
    a = node.attrs
    N, C, H, W = x.shape
    _, _, OH, OW = _infer_pool(node)[0].shape
    is_max = node.op == "MaxPool"
    KH, KW = a["kernel_shape"]
    include_pad = a.get("count_include_pad", 0)

    def finish(acc, n, c, oh, ow, count):
        if is_max:
            return acc
        return acc / count(bool(include_pad))

    spec = WindowSpec(ctx.name, N, C, H, W, OH, OW, (KH, KW), tuple(a["strides"]), tuple(a["pads"]),
                      tuple(a["dilations"]), x=x.fn, reduce="max" if is_max else "sum", weight=None,
                      finish=finish, store=lambda v, n, c, oh, ow: ctx.store(v, (n, c, oh, ow)),
                      params=ctx.params, dtype=x.dtype)
    return window_kernel(spec, ctx.lanes)


register("MaxPool", ANCHOR, _infer_pool, kernel=_pool_kernel)
register("AveragePool", ANCHOR, _infer_pool, kernel=_pool_kernel)


# Conv (+ Relu) + MaxPool as one kernel (graph/passes.py's fuse_conv_maxpool, CPU) ---------------
def _infer_conv_maxpool(node):
    conv = Node("Conv", node.inputs, [], node.attrs["conv"], node.name)
    conv_out = Value(node.name + "_conv", _infer_conv(conv)[0])
    return _infer_pool(Node("MaxPool", [conv_out], [], node.attrs["pool"], node.name))


register("ConvMaxPool", ANCHOR, _infer_conv_maxpool, kernel=conv_pool_kernel)


# Reductions ----------------------------------------------------------------
REDUCE_KINDS = {"ReduceSum": "sum", "ReduceMean": "sum", "ReduceMax": "max", "ReduceMin": "min",
                "ReduceProd": "prod", "ReduceSumSquare": "sum", "ReduceL1": "sum", "ReduceL2": "sum",
                "ReduceLogSum": "sum", "ReduceLogSumExp": "sum"}


def _infer_reduce(node):
    x = node.inputs[0]
    axes, keep = node.attrs["axes"], node.attrs["keepdims"]
    shape = [1 if axis in axes else s for axis, s in enumerate(x.shape)] if keep else \
        [s for axis, s in enumerate(x.shape) if axis not in axes]
    return [TensorType(tuple(shape), x.dtype)]


def _reduce_kernel(node, views, ctx: AnchorContext):
    (x,) = views
    axes, keep = node.attrs["axes"], node.attrs["keepdims"]
    kept = [axis for axis in range(x.ndim) if axis not in axes]
    kept_shape = [x.shape[axis] for axis in kept]
    red_shape = [x.shape[axis] for axis in axes]
    rows = 1
    for s in kept_shape:
        rows *= s
    length = 1
    for s in red_shape:
        length *= s
    op = node.op

    def load(row, j):
        idx = [None] * x.ndim
        for axis, value in zip(kept, row_major_unflatten(row, kept_shape) if kept else []):
            idx[axis] = value
        for axis, value in zip(axes, row_major_unflatten(j, red_shape)):
            idx[axis] = value
        value = x.fn(*idx)
        if op in ("ReduceSumSquare", "ReduceL2"):
            return value * value
        if op == "ReduceL1":
            return call("abs", value)
        return value

    def finish(result):
        if op == "ReduceMean":
            return result * reciprocal(length, x.dtype)
        if op == "ReduceL2":
            return call("sqrt", result)
        if op == "ReduceLogSum":
            return call("log", result)
        return result

    def store(value, row):
        kept_idx = row_major_unflatten(row, kept_shape) if kept else []
        if keep:
            idx = [IntImm(0)] * x.ndim
            for axis, v in zip(kept, kept_idx):
                idx[axis] = v
        else:
            idx = kept_idx
        return ctx.store(value, idx)

    if op == "ReduceLogSumExp":
        return logsumexp_kernel(ctx.name, rows, length, load, store, ctx.params, ctx.lanes, x.dtype)
    return reduce_kernel(ctx.name, rows, length, REDUCE_KINDS[op], load, finish, store, ctx.params, ctx.lanes,
                         x.dtype)


for _op in REDUCE_KINDS:
    register(_op, ANCHOR, _infer_reduce, kernel=_reduce_kernel)


# Softmax / LayerNormalization (over the trailing axes from ``axis``) ---------
def _rows_and_length(shape, axis):
    rows, length = 1, 1
    for s in shape[:axis]:
        rows *= s
    for s in shape[axis:]:
        length *= s
    return rows, length


def _row_index(shape, axis, row, j):
    return tuple(row_major_unflatten(row, shape[:axis]) if axis else []) + tuple(row_major_unflatten(j, shape[axis:]))


def _softmax_kernel(node, views, ctx: AnchorContext):
    (x,) = views
    axis = node.attrs["axis"]
    rows, length = _rows_and_length(x.shape, axis)

    def index(r, j):
        return _row_index(x.shape, axis, r, j)

    acc = "float64" if x.dtype == "float64" else "float32"  # half precision computes in float32
    scratch = None
    if ctx.out.dtype == acc:  # the output buffer holds exp(x - max) between two passes
        scratch = (lambda r, j: ctx.out[index(r, j)], lambda value, r, j: BufferStore(ctx.out, value, index(r, j)))
    return softmax_kernel(ctx.name, rows, length, lambda r, j: cast(acc, x.fn(*index(r, j))),
                          lambda value, r, j: ctx.store(cast(x.dtype, value), index(r, j)),
                          ctx.params, ctx.lanes, log=node.op == "LogSoftmax", scratch=scratch, dtype=acc)


def _infer_same(node):
    return [TensorType(node.inputs[0].shape, node.inputs[0].dtype)]


register("Softmax", ANCHOR, _infer_same, kernel=_softmax_kernel)
register("LogSoftmax", ANCHOR, _infer_same, kernel=_softmax_kernel)


def _layernorm_kernel(node, views, ctx: AnchorContext):
    x = views[0]
    scale = views[1] if len(views) > 1 and views[1] is not None else None
    bias = views[2] if len(views) > 2 and views[2] is not None else None
    axis = node.attrs["axis"]
    rows, length = _rows_and_length(x.shape, axis)
    norm_shape = x.shape[axis:]

    def param(view):  # the kernel computes in float32 (16-bit floats widened, the result rounded back)
        if view is None:
            return None
        return lambda j: cast("float32", view.fn(*broadcast_index(row_major_unflatten(j, norm_shape), view.shape,
                                                                 norm_shape)))

    return layernorm_kernel(ctx.name, rows, length,
                            lambda r, j: cast("float32", x.fn(*_row_index(x.shape, axis, r, j))),
                            param(scale), param(bias), node.attrs["epsilon"],
                            lambda value, r, j: ctx.store(cast(x.dtype, value), _row_index(x.shape, axis, r, j)),
                            ctx.params, ctx.lanes)


register("LayerNormalization", ANCHOR, _infer_same, kernel=_layernorm_kernel)
