"""Converters of linear algebra, convolution, pooling, reduction and normalization ops."""
from __future__ import annotations

import numpy as np

from ...tir.expr import is_float
from .common import (
    ConvertError,
    const_input,
    converter,
    normalize_axis,
    reshape_to,
    split_same_pad,
)


# Linear algebra ----------------------------------------------------------------
@converter("MatMul")
def _matmul(ctx, inputs, attrs):
    a, b = inputs
    if a.dtype in ("float16", "bfloat16"):  # computed in float32, rounded once
        wide = [ctx.emit1("Cast", [x], {"to": "float32"}) for x in (a, b)]
        return [ctx.emit1("Cast", [_matmul(ctx, wide, attrs)[0]], {"to": a.dtype})]
    if a.dtype not in ("float32", "float64", "int32", "int64", "uint32", "uint64"):
        raise ConvertError(f"MatMul on {a.dtype} is not supported")
    a2 = reshape_to(ctx, a, (1,) + a.shape) if len(a.shape) == 1 else a
    b2 = reshape_to(ctx, b, b.shape + (1,)) if len(b.shape) == 1 else b
    if a2.shape[-1] != b2.shape[-2]:
        raise ConvertError(f"inner dimensions differ: {list(a.shape)} @ {list(b.shape)}")
    out = ctx.emit1("MatMul", [a2, b2])
    shape = list(out.shape)
    if len(b.shape) == 1:
        shape.pop(-1)
    if len(a.shape) == 1:
        shape.pop(-2 if len(b.shape) != 1 else -1)
    return [reshape_to(ctx, out, shape)]


@converter("Gemm")
def _gemm(ctx, inputs, attrs):
    a, b = inputs[0], inputs[1]
    c = inputs[2] if len(inputs) > 2 else None
    if attrs.get("transA", 0):
        a = ctx.emit1("Transpose", [a], {"perm": [1, 0]})
    if attrs.get("transB", 0):
        b = ctx.emit1("Transpose", [b], {"perm": [1, 0]})
    out = ctx.emit1("MatMul", [a, b])
    alpha, beta = attrs.get("alpha", 1.0), attrs.get("beta", 1.0)
    if alpha != 1.0:
        out = ctx.emit1("Mul", [out, ctx.const(np.array(alpha, dtype=out.dtype))])
    if c is not None and beta != 0.0:
        if beta != 1.0:
            c = ctx.emit1("Mul", [c, ctx.const(np.array(beta, dtype=c.dtype))])
        out = ctx.emit1("Add", [out, c])
    return [out]


def _spatial_attrs(attrs, kernel_shape, in_spatial):
    nd = len(kernel_shape)
    strides = list(attrs.get("strides", [1] * nd))
    dilations = list(attrs.get("dilations", [1] * nd))
    pads = list(attrs.get("pads", [0] * (2 * nd)))
    auto_pad = attrs.get("auto_pad", "NOTSET")
    if auto_pad in ("SAME_UPPER", "SAME_LOWER"):
        pads = [0] * (2 * nd)
        for axis in range(nd):
            out = -(-in_spatial[axis] // strides[axis])
            total = max(0, (out - 1) * strides[axis] + dilations[axis] * (kernel_shape[axis] - 1) + 1
                        - in_spatial[axis])
            pads[axis], pads[axis + nd] = split_same_pad(total, auto_pad)
    elif auto_pad == "VALID":
        pads = [0] * (2 * nd)
    elif auto_pad != "NOTSET":
        raise ConvertError(f"auto_pad {auto_pad}")
    return {"strides": strides, "dilations": dilations, "pads": pads}


def _spatial_as_2d(spatial: dict) -> dict:
    """1-D window attributes as 2-D ones over a height of 1."""
    return {"strides": [1] + spatial["strides"], "dilations": [1] + spatial["dilations"],
            "pads": [0, spatial["pads"][0], 0, spatial["pads"][1]]}


@converter("Conv")
def _conv(ctx, inputs, attrs):
    x, w = inputs[0], inputs[1]
    bias = inputs[2] if len(inputs) > 2 else None
    nd = len(x.shape) - 2
    if nd not in (1, 2, 3):
        raise ConvertError(f"{nd}-D convolution is not supported (1-D, 2-D and 3-D are)")
    if not is_float(x.dtype):
        raise ConvertError(f"Conv on {x.dtype}")
    if x.dtype in ("float16", "bfloat16"):  # computed in float32, rounded once
        wide = [v if v is None else ctx.emit1("Cast", [v], {"to": "float32"}) for v in inputs]
        return [ctx.emit1("Cast", [_conv(ctx, wide, attrs)[0]], {"to": x.dtype})]
    if nd == 3:
        from .vision import conv_3d
        return [conv_3d(ctx, x, w, bias, attrs)]
    return [emit_conv(ctx, x, w, [bias] if bias is not None else [], attrs)]


def emit_conv(ctx, x, w, extra: list, attrs: dict):
    """The graph's ``Conv`` of ``x`` by ``w`` (1-D or 2-D, channels first) with the ``extra`` inputs (a
    bias or none) and the ONNX ``attrs`` (auto_pad, strides, dilations, pads, group); a 1-D one is
    emitted as a 2-D one of height 1 between reshapes."""
    spatial = _spatial_attrs(attrs, w.shape[2:], x.shape[2:])
    group = attrs.get("group", 1)
    nd = len(x.shape) - 2
    if nd == 1:
        x = reshape_to(ctx, x, x.shape[:2] + (1,) + x.shape[2:])
        w = reshape_to(ctx, w, w.shape[:2] + (1,) + w.shape[2:])
        spatial = _spatial_as_2d(spatial)
    if x.shape[1] != w.shape[1] * group:
        raise ConvertError(f"input has {x.shape[1]} channels, weights expect {w.shape[1]} x {group} groups")
    out = ctx.emit1("Conv", [x, w] + extra, {**spatial, "group": group})
    if nd == 1:
        out = reshape_to(ctx, out, out.shape[:2] + out.shape[3:])
    return out


@converter("MaxPool", "AveragePool")
def _pool(ctx, inputs, attrs, op=None):
    x = inputs[0]
    with_indices = op is None and ctx.onnx_node.op_type == "MaxPool" and \
        len([o for o in ctx.onnx_node.output if o]) > 1
    op = op or ctx.onnx_node.op_type
    nd = len(x.shape) - 2
    if nd not in (1, 2, 3):
        raise ConvertError(f"{nd}-D pooling is not supported (1-D, 2-D and 3-D are)")
    kernel = list(attrs["kernel_shape"])
    spatial = _spatial_attrs(attrs, kernel, x.shape[2:])
    if with_indices:
        from .vision import max_pool_indices
        values = _pool(ctx, inputs, attrs, op)[0]
        return [values, max_pool_indices(ctx, x, values, kernel, spatial, attrs)]
    if nd == 3:  # separable: 2-D pooling over (H, W), then over D
        from .vision import pool_3d
        return [pool_3d(ctx, op, x, kernel, spatial, attrs)]
    if nd == 1:  # as 2-D with a height of 1
        x = reshape_to(ctx, x, x.shape[:2] + (1,) + x.shape[2:])
        kernel = [1] + kernel
        spatial = _spatial_as_2d(spatial)
    extra = {"ceil_mode": attrs.get("ceil_mode", 0), "count_include_pad": attrs.get("count_include_pad", 0)}
    out = ctx.emit1(op, [x], {"kernel_shape": kernel, **spatial, **extra})
    if nd == 1:
        out = reshape_to(ctx, out, out.shape[:2] + out.shape[3:])
    return [out]


@converter("GlobalAveragePool", "GlobalMaxPool")
def _global_pool(ctx, inputs, attrs):
    x = inputs[0]
    op = "ReduceMean" if ctx.onnx_node.op_type == "GlobalAveragePool" else "ReduceMax"
    return [ctx.emit1(op, [x], {"axes": list(range(2, len(x.shape))), "keepdims": 1})]


@converter("ReduceSum", "ReduceMean", "ReduceMax", "ReduceMin", "ReduceProd", "ReduceSumSquare", "ReduceL1",
           "ReduceL2", "ReduceLogSum", "ReduceLogSumExp")
def _reduce(ctx, inputs, attrs):
    x = inputs[0]
    op = ctx.onnx_node.op_type
    axes_as_input = ctx.opset >= 18 or (op == "ReduceSum" and ctx.opset >= 13)
    if axes_as_input:
        axes = const_input(inputs[1], "reduction axes") if len(inputs) > 1 and inputs[1] is not None else None
    else:
        axes = attrs.get("axes")
    rank = len(x.shape)
    if axes is None or len(axes) == 0:
        if attrs.get("noop_with_empty_axes", 0):
            return [x]
        axes = list(range(rank))
    axes = sorted({normalize_axis(int(a), rank) for a in axes})
    if op not in ("ReduceMax", "ReduceMin", "ReduceSum", "ReduceProd") and not is_float(x.dtype):
        raise ConvertError(f"{op} on {x.dtype}")
    reduce_attrs = {"axes": axes, "keepdims": attrs.get("keepdims", 1)}
    if x.dtype == np.dtype(bool):  # ReduceMax/Min on bool (opset 20) are any/all: reduce 0/1 bytes
        as_bytes = ctx.emit1("Cast", [x], {"to": "uint8"})
        return [ctx.emit1("Cast", [ctx.emit1(op, [as_bytes], reduce_attrs)], {"to": "bool"})]
    return [ctx.emit1(op, [x], reduce_attrs)]


def _batchnorm_training(ctx, inputs, eps, momentum):
    """BatchNormalization-14 with training_mode=1: normalize by the batch's statistics; outputs
    (Y, running_mean, running_var), each running value ``momentum * given + (1 - momentum) * batch``
    (the batch variance is the population variance, as onnx.reference)."""
    x, scale, bias, mean, var = inputs
    if not is_float(x.dtype) or len(x.shape) < 2:
        raise ConvertError(f"training-mode BatchNormalization of a {x.dtype} tensor of rank {len(x.shape)}")
    axes = [a for a in range(len(x.shape)) if a != 1]
    channel_shape = (x.shape[1],) + (1,) * (len(x.shape) - 2)

    def scalar(value):
        return ctx.const(np.array(value, dtype=x.dtype), "bn_constant")

    def per_channel(value):
        return reshape_to(ctx, value, channel_shape)

    batch_mean = ctx.emit1("ReduceMean", [x], {"axes": axes, "keepdims": 1})
    centered = ctx.emit1("Sub", [x, batch_mean])
    batch_var = ctx.emit1("ReduceMean", [ctx.emit1("Mul", [centered, centered])], {"axes": axes, "keepdims": 1})
    std = ctx.emit1("Sqrt", [ctx.emit1("Add", [batch_var, scalar(eps)])])
    y = ctx.emit1("Add", [ctx.emit1("Mul", [ctx.emit1("Div", [centered, std]), per_channel(scale)]),
                          per_channel(bias)])

    def running(given, batch):
        kept = ctx.emit1("Mul", [given, scalar(momentum)])
        return ctx.emit1("Add", [kept, ctx.emit1("Mul", [reshape_to(ctx, batch, given.shape), scalar(1 - momentum)])])

    return [y, running(mean, batch_mean), running(var, batch_var)]


@converter("Softmax", "LogSoftmax")
def _softmax(ctx, inputs, attrs):
    x = inputs[0]
    op = ctx.onnx_node.op_type
    rank = len(x.shape)
    if ctx.opset < 13:
        return [ctx.emit1(op, [x], {"axis": normalize_axis(attrs.get("axis", 1), rank)})]
    axis = normalize_axis(attrs.get("axis", -1), rank)
    if axis == rank - 1:
        return [ctx.emit1(op, [x], {"axis": axis})]
    perm = [a for a in range(rank) if a != axis] + [axis]
    moved = ctx.emit1("Transpose", [x], {"perm": perm})
    soft = ctx.emit1(op, [moved], {"axis": rank - 1})
    inverse = [perm.index(a) for a in range(rank)]
    return [ctx.emit1("Transpose", [soft], {"perm": inverse})]


@converter("BatchNormalization")
def _batchnorm(ctx, inputs, attrs):
    x, scale, bias, mean, var = inputs[:5]
    if attrs.get("training_mode", 0) and ctx.opset >= 14:
        return _batchnorm_training(ctx, inputs[:5], attrs.get("epsilon", 1e-5), attrs.get("momentum", 0.9))
    if attrs.get("training_mode", 0) or len([o for o in ctx.onnx_node.output if o]) > 1:
        raise ConvertError("training-mode BatchNormalization before opset 14 is not supported")
    for value, what in ((scale, "scale"), (bias, "bias"), (mean, "mean"), (var, "var")):
        const_input(value, f"BatchNormalization {what}")
    eps = attrs.get("epsilon", 1e-5)
    factor = scale.const / np.sqrt(var.const + eps)
    shift = bias.const - mean.const * factor
    channel_shape = (-1,) + (1,) * (len(x.shape) - 2)
    dtype = x.dtype
    scaled = ctx.emit1("Mul", [x, ctx.const(factor.reshape(channel_shape).astype(dtype), "bn_scale")])
    return [ctx.emit1("Add", [scaled, ctx.const(shift.reshape(channel_shape).astype(dtype), "bn_shift")])]
