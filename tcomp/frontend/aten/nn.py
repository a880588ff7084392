"""Converters of ATen linear algebra, convolution, normalization, pooling, reduction and attention ops."""
from __future__ import annotations

import math

import numpy as np

from ...graph.ir import numpy_dtype
from ..converters import CONVERTERS
from ..converters.common import ConvertError, reshape_to
from .common import aten, axis_of, cast, scalar, transpose_to_last


# Linear algebra -----------------------------------------------------------------
@aten("mm.default", "bmm.default")
def _matmul(ctx, a, b):
    return CONVERTERS["MatMul"](ctx, [a, b], {})[0]


@aten("addmm.default")
def _addmm(ctx, bias, a, b, beta=1, alpha=1):
    out = ctx.emit1("MatMul", [a, b])
    if alpha != 1:
        out = ctx.emit1("Mul", [out, scalar(ctx, alpha, out.dtype)])
    if beta == 0:
        return out
    if beta != 1:
        bias = ctx.emit1("Mul", [bias, scalar(ctx, beta, bias.dtype)])
    return ctx.emit1("Add", [out, bias])


# Convolution and normalization ------------------------------------------------------
@aten("convolution.default")
def _convolution(ctx, x, weight, bias, stride, padding, dilation, transposed, output_padding, groups):
    if transposed:
        raise ConvertError("transposed convolution is not supported")
    nd = len(x.shape) - 2
    if isinstance(padding, str):
        raise ConvertError(f"padding {padding!r} (export resolves it to sizes)")
    attrs = {"strides": _per_axis(stride, nd), "dilations": _per_axis(dilation, nd),
             "pads": _per_axis(padding, nd) * 2, "group": groups}
    return CONVERTERS["Conv"](ctx, [x, weight] + ([bias] if bias is not None else []), attrs)[0]


def _per_axis(values, nd: int) -> list:
    values = [int(v) for v in (values if isinstance(values, (list, tuple)) else [values])]
    return values * nd if len(values) == 1 else values


@aten("_native_batch_norm_legit_no_training.default")
def _batch_norm(ctx, x, weight, bias, mean, var, momentum, eps):
    for value, what in ((weight, "weight"), (bias, "bias"), (mean, "running_mean"), (var, "running_var")):
        if value is not None and not value.is_const:
            raise ConvertError(f"batch norm {what} must be a constant (a parameter or buffer)")
    channels = x.shape[1]
    dtype = numpy_dtype(x.dtype)
    scale = weight.const if weight is not None else np.ones(channels, dtype)
    shift = bias.const if bias is not None else np.zeros(channels, dtype)
    factor = scale / np.sqrt(var.const + eps)
    offset = shift - mean.const * factor
    channel_shape = (channels,) + (1,) * (len(x.shape) - 2)
    scaled = ctx.emit1("Mul", [x, ctx.const(factor.reshape(channel_shape).astype(dtype), "bn_scale")])
    return [ctx.emit1("Add", [scaled, ctx.const(offset.reshape(channel_shape).astype(dtype), "bn_shift")]), None, None]


@aten("native_layer_norm.default")
def _layer_norm(ctx, x, normalized_shape, weight, bias, eps):
    axis = len(x.shape) - len(normalized_shape)
    if bias is not None and weight is None:
        weight = ctx.const(np.ones(tuple(normalized_shape), numpy_dtype(x.dtype)), "ln_scale")
    inputs = [x] + [v for v in (weight, bias) if v is not None]
    return [ctx.emit1("LayerNormalization", inputs, {"axis": axis, "epsilon": eps}), None, None]


@aten("_softmax.default", "_log_softmax.default")
def _softmax(ctx, x, dim, half_to_float=False):
    op = "LogSoftmax" if "log" in ctx.fx_node.target.__name__ else "Softmax"
    x = cast(ctx, x, ctx.out_dtype())
    return transpose_to_last(ctx, x, axis_of(dim, len(x.shape)),
                             lambda moved: ctx.emit1(op, [moved], {"axis": len(x.shape) - 1}))


# Pooling -------------------------------------------------------------------------
def _pool_2d(ctx, op, x, kernel_size, stride, padding, dilation, ceil_mode, count_include_pad=0):
    if len(x.shape) != 4:
        raise ConvertError(f"{len(x.shape) - 2}-D pooling is not supported (2-D over NCHW is)")
    kernel = _per_axis(kernel_size, 2)
    pads = _per_axis(padding, 2)
    attrs = {"kernel_shape": kernel, "strides": _per_axis(stride, 2) if stride else kernel,
             "dilations": _per_axis(dilation, 2), "pads": pads * 2, "ceil_mode": int(ceil_mode),
             "count_include_pad": int(count_include_pad)}
    return ctx.emit1(op, [x], attrs)


@aten("max_pool2d_with_indices.default")
def _max_pool_indices(ctx, x, kernel_size, stride=(), padding=0, dilation=1, ceil_mode=False):
    return [_pool_2d(ctx, "MaxPool", x, kernel_size, stride, padding, dilation, ceil_mode), None]


@aten("avg_pool2d.default")
def _avg_pool(ctx, x, kernel_size, stride=(), padding=0, ceil_mode=False, count_include_pad=True,
              divisor_override=None):
    if divisor_override is not None:
        raise ConvertError("avg_pool2d with divisor_override is not supported")
    return _pool_2d(ctx, "AveragePool", x, kernel_size, stride, padding, 1, ceil_mode, count_include_pad)


@aten("_adaptive_avg_pool2d.default")
def _adaptive_avg_pool(ctx, x, output_size):
    height, width = x.shape[-2:]
    out_h, out_w = _per_axis(output_size, 2)
    if (out_h, out_w) == (1, 1):
        return ctx.emit1("ReduceMean", [x], {"axes": [len(x.shape) - 2, len(x.shape) - 1], "keepdims": 1})
    if height % out_h or width % out_w:
        raise ConvertError(f"adaptive pooling of {height}x{width} to {out_h}x{out_w} (uneven windows) "
                           "is not supported")
    kernel = [height // out_h, width // out_w]
    return _pool_2d(ctx, "AveragePool", x, kernel, kernel, 0, 1, False)


# Reductions ----------------------------------------------------------------------
def _reduce(ctx, op, x, dim, keepdim):
    rank = len(x.shape)
    dims = list(range(rank)) if dim is None or (isinstance(dim, (list, tuple)) and not dim) else \
        sorted({axis_of(d, rank) for d in (dim if isinstance(dim, (list, tuple)) else [dim])})
    if rank == 0:
        return x
    return ctx.emit1(op, [x], {"axes": dims, "keepdims": int(bool(keepdim))})


@aten("mean.dim", "mean.default", "sum.dim_IntList", "sum.default", "amax.default", "amin.default",
      "prod.dim_int", "prod.default")
def _reduction(ctx, x, dim=None, keepdim=False, dtype=None):
    name = ctx.fx_node.target.__name__.split(".")[0]
    op = {"mean": "ReduceMean", "sum": "ReduceSum", "amax": "ReduceMax", "amin": "ReduceMin",
          "prod": "ReduceProd"}[name]
    x = cast(ctx, x, ctx.out_dtype())
    return _reduce(ctx, op, x, dim, keepdim)


@aten("max.default", "min.default")
def _max_min_all(ctx, x):
    return _reduce(ctx, "ReduceMax" if ctx.fx_node.target.__name__.startswith("max") else "ReduceMin", x, None, False)


@aten("max.dim", "min.dim")
def _max_min_dim(ctx, x, dim, keepdim=False):
    is_max = ctx.fx_node.target.__name__.startswith("max")
    values = _reduce(ctx, "ReduceMax" if is_max else "ReduceMin", x, dim, keepdim)
    return [values, _arg_extreme(ctx, x, dim, keepdim, is_max)]


@aten("argmax.default", "argmin.default")
def _argmax_argmin(ctx, x, dim=None, keepdim=False):
    is_max = ctx.fx_node.target.__name__.startswith("argmax")
    if dim is None:  # over all elements
        return reshape_to(ctx, _arg_extreme(ctx, reshape_to(ctx, x, (x.type.size,)), 0, False, is_max),
                          ctx.out_shape())
    return _arg_extreme(ctx, x, dim, keepdim, is_max)


def _arg_extreme(ctx, x, dim, keepdim, is_max):
    """The index of the first maximum (minimum) along ``dim``."""
    if x.dtype == "bool":
        x = cast(ctx, x, "int32")
    return ctx.emit1("ArgMax" if is_max else "ArgMin", [x], {"axis": axis_of(dim, len(x.shape)),
                                                             "keepdims": int(bool(keepdim)), "select_last_index": 0})


@aten("cumsum.default", "cumprod.default")
def _cumulative(ctx, x, dim, dtype=None):
    op = "CumSum" if ctx.fx_node.target.__name__.startswith("cumsum") else "CumProd"
    return ctx.emit1(op, [cast(ctx, x, ctx.out_dtype())], {"axis": axis_of(dim, len(x.shape)), "exclusive": 0,
                                                           "reverse": 0})


@aten("any.dim", "any.dims", "any.default", "all.dim", "all.dims", "all.default")
def _any_all(ctx, x, dim=None, keepdim=False):
    is_any = ctx.fx_node.target.__name__.startswith("any")
    as_int = ctx.emit1("Cast", [ctx.emit1("Not", [ctx.emit1("Equal", [x, scalar(ctx, 0, x.dtype)])])], {"to": "int32"}) \
        if x.dtype != "bool" else ctx.emit1("Cast", [x], {"to": "int32"})
    reduced = _reduce(ctx, "ReduceMax" if is_any else "ReduceMin", as_int, dim, keepdim)
    return ctx.emit1("Cast", [reduced], {"to": "bool"})


# Attention ---------------------------------------------------------------------
@aten("scaled_dot_product_attention.default")
def _sdpa(ctx, q, k, v, attn_mask=None, dropout_p=0.0, is_causal=False, scale=None, enable_gqa=False):
    """softmax(q @ k^T * scale + bias) @ v, as graph ops that fusion puts back together.

    A boolean mask allows where it is true; rows that allow nothing give zeros, as in torch.
    """
    if dropout_p:
        raise ConvertError("attention dropout is not supported (compile the module in eval mode)")
    if q.dtype not in ("float32", "float64"):
        raise ConvertError(f"attention on {q.dtype} is not supported")
    k, v = _repeat_kv_heads(ctx, q, k), _repeat_kv_heads(ctx, q, v)
    q_len, kv_len = q.shape[-2], k.shape[-2]
    scale = 1.0 / math.sqrt(q.shape[-1]) if scale is None else scale
    perm = list(range(len(k.shape) - 2)) + [len(k.shape) - 1, len(k.shape) - 2]
    scores = ctx.emit1("MatMul", [q, ctx.emit1("Transpose", [k], {"perm": perm})])
    scores = ctx.emit1("Mul", [scores, scalar(ctx, scale, q.dtype)])
    allowed = None
    if is_causal:
        allowed = ctx.const(np.tril(np.ones((q_len, kv_len), dtype=bool)), "causal")
    if attn_mask is not None and attn_mask.dtype == "bool":
        allowed = attn_mask if allowed is None else ctx.emit1("And", [allowed, attn_mask])
    elif attn_mask is not None:
        scores = ctx.emit1("Add", [scores, cast(ctx, attn_mask, q.dtype)])
    if allowed is not None:
        scores = ctx.emit1("Where", [allowed, scores, scalar(ctx, -np.inf, q.dtype)])
    probs = ctx.emit1("Softmax", [scores], {"axis": len(scores.shape) - 1})
    if allowed is not None and not (allowed.is_const and allowed.const.any(axis=-1).all()):
        # rows that allow no key: the softmax of all -inf is NaN, torch gives 0
        row_allowed = ctx.emit1("ReduceMax", [ctx.emit1("Cast", [allowed], {"to": "int32"})],
                                {"axes": [len(allowed.shape) - 1], "keepdims": 1})
        probs = ctx.emit1("Where", [ctx.emit1("Cast", [row_allowed], {"to": "bool"}), probs,
                                    scalar(ctx, 0, q.dtype)])
    return ctx.emit1("MatMul", [probs, v])


def _repeat_kv_heads(ctx, q, kv):
    """Grouped-query attention: each key/value head serves ``q_heads / kv_heads`` consecutive query heads."""
    if len(q.shape) < 3 or q.shape[-3] == kv.shape[-3]:
        return kv
    q_heads, kv_heads = q.shape[-3], kv.shape[-3]
    if q_heads % kv_heads:
        raise ConvertError(f"{q_heads} query heads are not a multiple of {kv_heads} key/value heads")
    *batch, _, length, width = kv.shape
    grouped = reshape_to(ctx, kv, (*batch, kv_heads, 1, length, width))
    grouped = ctx.emit1("Expand", [grouped], {"shape": (*batch, kv_heads, q_heads // kv_heads, length, width)})
    return reshape_to(ctx, grouped, (*batch, q_heads, length, width))
