"""Converters of the normalization ops: LayerNormalization (with its Mean / InvStdDev
outputs), RMSNormalization, GroupNormalization, InstanceNormalization,
MeanVarianceNormalization, LpNormalization and LRN.

Normalizing over the trailing axes of a tensor is the LayerNormalization anchor (one
row kernel); group and instance normalization reshape onto it and apply their
per-channel affine transform as a fused epilogue. The rest decompose into reductions
and elementwise ops.
"""
from __future__ import annotations

import numpy as np

from ...graph.ir import numpy_dtype
from ...tir.expr import is_float
from .common import ConvertError, converter, normalize_axis, reshape_to


def _scalar(ctx, value, dtype):
    return ctx.const(np.array(value, dtype=numpy_dtype(dtype)))


def _float_input(x, op):
    if not is_float(x.dtype):
        raise ConvertError(f"{op} on {x.dtype} is not supported")


def _mean(ctx, x, axes):
    return ctx.emit1("ReduceMean", [x], {"axes": list(axes), "keepdims": 1})


def _inv_std(ctx, x, mean, axes, epsilon):
    """1 / sqrt(mean((x - mean)^2) + epsilon) over ``axes`` (kept)."""
    centered = ctx.emit1("Sub", [x, mean])
    var = _mean(ctx, ctx.emit1("Mul", [centered, centered]), axes)
    std = ctx.emit1("Sqrt", [ctx.emit1("Add", [var, _scalar(ctx, epsilon, x.dtype)])])
    return ctx.emit1("Reciprocal", [std])


@converter("LayerNormalization")
def _layer_norm(ctx, inputs, attrs):
    x = inputs[0]
    _float_input(x, "LayerNormalization")
    rank = len(x.shape)
    axis = normalize_axis(attrs.get("axis", -1), rank)
    epsilon = attrs.get("epsilon", 1e-5)
    y = ctx.emit1("LayerNormalization", inputs, {"axis": axis, "epsilon": epsilon})
    outputs = [o for o in ctx.onnx_node.output]
    if len(outputs) == 1 or not any(outputs[1:]):
        return [y]
    axes = range(axis, rank)
    mean = _mean(ctx, x, axes)
    return [y, mean, _inv_std(ctx, x, mean, axes, epsilon)]


@converter("RMSNormalization")
def _rms_norm(ctx, inputs, attrs):
    x, scale = inputs[0], inputs[1]
    _float_input(x, "RMSNormalization")
    rank = len(x.shape)
    axis = normalize_axis(attrs.get("axis", -1), rank)
    mean_square = _mean(ctx, ctx.emit1("Mul", [x, x]), range(axis, rank))
    rms = ctx.emit1("Sqrt", [ctx.emit1("Add", [mean_square, _scalar(ctx, attrs.get("epsilon", 1e-5), x.dtype)])])
    return [ctx.emit1("Mul", [ctx.emit1("Mul", [x, ctx.emit1("Reciprocal", [rms])]), scale])]


def _channel_affine(ctx, y, scale, bias):
    """y * scale[c] + bias[c] over axis 1 of ``y``."""
    shape = (y.shape[1],) + (1,) * (len(y.shape) - 2)
    y = ctx.emit1("Mul", [y, reshape_to(ctx, scale, shape)])
    return ctx.emit1("Add", [y, reshape_to(ctx, bias, shape)])


@converter("InstanceNormalization")
def _instance_norm(ctx, inputs, attrs):
    x, scale, bias = inputs
    _float_input(x, "InstanceNormalization")
    if len(x.shape) < 3:
        raise ConvertError(f"input of rank {len(x.shape)}; (N, C, D1, ...) expected")
    y = ctx.emit1("LayerNormalization", [x], {"axis": 2, "epsilon": attrs.get("epsilon", 1e-5)})
    return [_channel_affine(ctx, y, scale, bias)]


@converter("GroupNormalization")
def _group_norm(ctx, inputs, attrs):
    x, scale, bias = inputs
    _float_input(x, "GroupNormalization")
    groups = attrs["num_groups"]
    n, channels = x.shape[0], x.shape[1]
    if groups <= 0 or channels % groups:
        raise ConvertError(f"{channels} channels cannot be split into {groups} groups")
    grouped = reshape_to(ctx, x, (n, groups, int(np.prod(x.shape[1:])) // groups))
    y = ctx.emit1("LayerNormalization", [grouped], {"axis": 2, "epsilon": attrs.get("epsilon", 1e-5)})
    if tuple(scale.shape) != (channels,) or tuple(bias.shape) != (channels,):
        raise ConvertError(f"scale {list(scale.shape)} and bias {list(bias.shape)}: one per channel "
                           f"({channels}) expected (opset 21)")
    return [_channel_affine(ctx, reshape_to(ctx, y, x.shape), scale, bias)]


@converter("MeanVarianceNormalization")
def _mvn(ctx, inputs, attrs):
    x = inputs[0]
    _float_input(x, "MeanVarianceNormalization")
    axes = sorted({normalize_axis(a, len(x.shape)) for a in attrs.get("axes", [0, 2, 3])})
    mean = _mean(ctx, x, axes)
    mean_of_square = _mean(ctx, ctx.emit1("Mul", [x, x]), axes)
    var = ctx.emit1("Sub", [mean_of_square, ctx.emit1("Mul", [mean, mean])])
    std = ctx.emit1("Add", [ctx.emit1("Sqrt", [var]), _scalar(ctx, 1e-9, x.dtype)])
    return [ctx.emit1("Div", [ctx.emit1("Sub", [x, mean]), std])]


@converter("LpNormalization")
def _lp_norm(ctx, inputs, attrs):
    x = inputs[0]
    _float_input(x, "LpNormalization")
    axis = normalize_axis(attrs.get("axis", -1), len(x.shape))
    p = attrs.get("p", 2)
    if p not in (1, 2):
        raise ConvertError(f"p = {p}; 1 or 2 expected")
    norm = ctx.emit1("ReduceL1" if p == 1 else "ReduceL2", [x], {"axes": [axis], "keepdims": 1})
    zero = _scalar(ctx, 0, x.dtype)
    is_zero = ctx.emit1("Equal", [norm, zero])
    return [ctx.emit1("Where", [is_zero, zero, ctx.emit1("Div", [x, norm])])]


@converter("LRN")
def _lrn(ctx, inputs, attrs):
    """x / (bias + alpha / size * sum of x^2 over the channel window) ^ beta."""
    x = inputs[0]
    _float_input(x, "LRN")
    size = attrs["size"]
    rank = len(x.shape)
    if rank < 3 or size < 1:
        raise ConvertError(f"input of rank {rank} with size {size}; (N, C, D1, ...) and size >= 1 expected")
    before, after = (size - 1) // 2, size // 2
    square = ctx.emit1("Mul", [x, x])
    pads = [0] * (2 * rank)
    pads[1], pads[rank + 1] = before, after
    padded = ctx.emit1("Pad", [square], {"pads": pads, "mode": "constant", "value": 0.0}) if size > 1 else square
    total = None
    for offset in range(size):  # the window as a sum of shifted slices (fused into one loop)
        starts = [0] * rank
        starts[1] = offset
        out_shape = list(x.shape)
        part = padded if size == 1 else ctx.emit1("Slice", [padded], {"starts": starts, "steps": [1] * rank,
                                                                      "out_shape": out_shape})
        total = part if total is None else ctx.emit1("Add", [total, part])
    dtype = x.dtype
    scaled = ctx.emit1("Mul", [total, _scalar(ctx, attrs.get("alpha", 1e-4) / size, dtype)])
    base = ctx.emit1("Add", [scaled, _scalar(ctx, attrs.get("bias", 1.0), dtype)])
    denom = ctx.emit1("Pow", [base, _scalar(ctx, attrs.get("beta", 0.75), dtype)])
    return [ctx.emit1("Div", [x, denom])]
