"""ONNX node converters: one function per op type, aware of the model's opset.

A converter receives the import context, the input values (``None`` for an
omitted optional input) and the ONNX attributes, and emits canonical
graph-IR nodes. Where an ONNX op changed between opsets (attributes that
became inputs, Softmax's axis semantics before opset 13 ...), the converter
branches on ``ctx.opset``. Inputs that the canonical op needs as static
attributes must be constants; otherwise the converter raises ``ConvertError``
and the importer reports the node.
"""
from __future__ import annotations

import numpy as np
import onnx

from ..graph.ir import dtype_of_numpy
from ..ops.elementwise import BINARY, FLOAT_ONLY, UNARY
from ..ops.registry import broadcast_shapes


class ConvertError(Exception):
    pass


CONVERTERS: dict = {}


def converter(*names):
    def wrap(fn):
        for name in names:
            CONVERTERS[name] = fn
        return fn

    return wrap


def const_input(value, what: str) -> np.ndarray:
    if value is None:
        return None
    if not value.is_const:
        raise ConvertError(f"{what} must be a constant (tcomp compiles static shapes)")
    return value.const


def _axis(axis: int, rank: int) -> int:
    if not -rank <= axis < max(rank, 1):
        raise ConvertError(f"axis {axis} is out of range for rank {rank}")
    return axis + rank if axis < 0 else axis


def _reshape(ctx, value, shape):
    shape = tuple(int(s) for s in shape)
    if shape == value.shape:
        return value
    return ctx.emit1("Reshape", [value], {"shape": shape})


# Aliases -----------------------------------------------------------------
@converter("Identity", "Dropout")
def _identity(ctx, inputs, attrs):
    if ctx.onnx_node.op_type == "Dropout" and len([o for o in ctx.onnx_node.output if o]) > 1:
        raise ConvertError("the mask output of Dropout is not supported")
    return [inputs[0]]


# Elementwise -----------------------------------------------------------------
@converter(*[name for name in UNARY if name != "Clip"], "IsNaN", "IsInf")
def _unary(ctx, inputs, attrs):
    op = ctx.onnx_node.op_type
    if op in FLOAT_ONLY and not inputs[0].dtype.startswith("float"):
        raise ConvertError(f"{op} on {inputs[0].dtype} is not supported")
    return [ctx.emit1(op, [inputs[0]], attrs)]


@converter(*[name for name in BINARY if name not in ("Max", "Min")], "Where")
def _binary(ctx, inputs, attrs):
    op = ctx.onnx_node.op_type
    if op in ("Add", "Sub", "Mul", "Div", "Pow") and inputs[0].dtype == "bool":
        raise ConvertError(f"{op} on bool is not supported")
    if op == "Pow" and not inputs[0].dtype.startswith("float"):
        raise ConvertError("integer Pow is not supported")
    return [ctx.emit1(op, inputs, attrs)]


@converter("Max", "Min", "Sum", "Mean")
def _variadic(ctx, inputs, attrs):
    op = {"Max": "Max", "Min": "Min", "Sum": "Add", "Mean": "Add"}[ctx.onnx_node.op_type]
    result = inputs[0]
    for value in inputs[1:]:
        result = ctx.emit1(op, [result, value])
    if ctx.onnx_node.op_type == "Mean":
        result = ctx.emit1("Div", [result, ctx.const(np.array(len(inputs), dtype=result.dtype))])
    return [result]


@converter("Cast")
def _cast(ctx, inputs, attrs):
    dtype = dtype_of_numpy(onnx.helper.tensor_dtype_to_np_dtype(attrs["to"]))
    if dtype in ("str", "object") or dtype.startswith("<U"):
        raise ConvertError("Cast to string is not supported")
    return [ctx.emit1("Cast", [inputs[0]], {"to": dtype})]


@converter("CastLike")
def _cast_like(ctx, inputs, attrs):
    return [ctx.emit1("Cast", [inputs[0]], {"to": inputs[1].dtype})]


@converter("Clip")
def _clip(ctx, inputs, attrs):
    x = inputs[0]
    if ctx.opset < 11:
        bounds = {k: attrs[k] for k in ("min", "max") if k in attrs}
        return [ctx.emit1("Clip", [x], bounds)]
    result = x
    for value, op in zip(inputs[1:3], ("Max", "Min")):
        if value is None:
            continue
        if value.is_const:
            key = "min" if op == "Max" else "max"
            result = ctx.emit1("Clip", [result], {key: value.const.item()})
        else:
            result = ctx.emit1(op, [result, value])
    return [result]


# Shape manipulation ------------------------------------------------------------
@converter("Reshape")
def _reshape_op(ctx, inputs, attrs):
    x = inputs[0]
    shape = list(const_input(inputs[1], "Reshape's shape") if ctx.opset >= 5 else attrs["shape"])
    allowzero = attrs.get("allowzero", 0)
    out = []
    for axis, s in enumerate(shape):
        out.append(x.shape[axis] if s == 0 and not allowzero else int(s))
    if out.count(-1) > 1:
        raise ConvertError("more than one -1 in the target shape")
    if -1 in out:
        known = int(np.prod([s for s in out if s != -1]))
        out[out.index(-1)] = x.type.size // known if known else 0
    if int(np.prod(out)) != x.type.size:
        raise ConvertError(f"cannot reshape {list(x.shape)} to {shape}")
    return [_reshape(ctx, x, out)]


@converter("Flatten")
def _flatten(ctx, inputs, attrs):
    x = inputs[0]
    rank = len(x.shape)
    axis = attrs.get("axis", 1)
    axis = axis + rank if axis < 0 else axis
    if not 0 <= axis <= rank:
        raise ConvertError(f"Flatten axis {attrs.get('axis')} is out of range for rank {rank}")
    outer = int(np.prod(x.shape[:axis]))
    return [_reshape(ctx, x, (outer, x.type.size // outer if outer else 0))]


@converter("Squeeze")
def _squeeze(ctx, inputs, attrs):
    x = inputs[0]
    axes = attrs.get("axes") if ctx.opset < 13 else const_input(inputs[1] if len(inputs) > 1 else None, "axes")
    rank = len(x.shape)
    if axes is None:
        axes = [a for a, s in enumerate(x.shape) if s == 1]
    axes = {_axis(int(a), rank) for a in axes}
    for a in axes:
        if x.shape[a] != 1:
            raise ConvertError(f"cannot squeeze axis {a} of extent {x.shape[a]}")
    return [_reshape(ctx, x, [s for a, s in enumerate(x.shape) if a not in axes])]


@converter("Unsqueeze")
def _unsqueeze(ctx, inputs, attrs):
    x = inputs[0]
    axes = attrs.get("axes") if ctx.opset < 13 else const_input(inputs[1], "axes")
    rank = len(x.shape) + len(axes)
    axes = sorted(_axis(int(a), rank) for a in axes)
    shape = list(x.shape)
    for a in axes:
        shape.insert(a, 1)
    return [_reshape(ctx, x, shape)]


@converter("Transpose")
def _transpose(ctx, inputs, attrs):
    x = inputs[0]
    perm = list(attrs.get("perm", reversed(range(len(x.shape)))))
    if perm == list(range(len(x.shape))):
        return [x]
    return [ctx.emit1("Transpose", [x], {"perm": perm})]


@converter("Concat")
def _concat(ctx, inputs, attrs):
    values = [v for v in inputs if v is not None and v.type.size > 0]
    if not values:
        values = [inputs[0]]
    axis = _axis(attrs["axis"], len(values[0].shape))
    if len(values) == 1:
        return [values[0]]
    return [ctx.emit1("Concat", values, {"axis": axis})]


def _slice_attrs(shape, starts, ends, axes, steps):
    rank = len(shape)
    full_starts, full_steps, out_shape = [0] * rank, [1] * rank, list(shape)
    for start, end, axis, step in zip(starts, ends, axes, steps):
        axis = _axis(int(axis), rank)
        extent = shape[axis]
        step = int(step)
        if step == 0:
            raise ConvertError("slice step 0")
        start, end = int(start), int(end)
        start = start + extent if start < 0 else start
        end = end + extent if end < 0 else end
        if step > 0:
            start, end = min(max(start, 0), extent), min(max(end, 0), extent)
            count = max(0, -(-(end - start) // step))
        else:
            start, end = min(max(start, 0), extent - 1), min(max(end, -1), extent - 1)
            count = max(0, -(-(start - end) // -step))
        full_starts[axis], full_steps[axis], out_shape[axis] = start, step, count
    return {"starts": full_starts, "steps": full_steps, "out_shape": out_shape}


@converter("Slice")
def _slice(ctx, inputs, attrs):
    x = inputs[0]
    if ctx.opset < 10:
        starts, ends = attrs["starts"], attrs["ends"]
        axes = attrs.get("axes", list(range(len(starts))))
        steps = [1] * len(starts)
    else:
        starts = const_input(inputs[1], "Slice starts")
        ends = const_input(inputs[2], "Slice ends")
        axes = const_input(inputs[3], "Slice axes") if len(inputs) > 3 and inputs[3] is not None \
            else list(range(len(starts)))
        steps = const_input(inputs[4], "Slice steps") if len(inputs) > 4 and inputs[4] is not None \
            else [1] * len(starts)
    return [_emit_slice(ctx, x, starts, ends, axes, steps)]


def _emit_slice(ctx, x, starts, ends, axes, steps):
    sliced = _slice_attrs(x.shape, starts, ends, axes, steps)
    if sliced["out_shape"] == list(x.shape) and all(s == 1 for s in sliced["steps"]):
        return x
    return ctx.emit1("Slice", [x], sliced)


@converter("Split")
def _split(ctx, inputs, attrs):
    x = inputs[0]
    axis = _axis(attrs.get("axis", 0), len(x.shape))
    count = len(ctx.onnx_node.output)
    if ctx.opset < 13:
        sizes = attrs.get("split")
    else:
        sizes = const_input(inputs[1] if len(inputs) > 1 else None, "Split sizes")
    if sizes is None:
        extent = x.shape[axis]
        if ctx.opset >= 18 and "num_outputs" in attrs:
            chunk = -(-extent // attrs["num_outputs"])
            sizes = [min(chunk, extent - i * chunk) for i in range(attrs["num_outputs"])]
        else:
            sizes = [extent // count] * count
    outputs, start = [], 0
    for size in sizes:
        outputs.append(_emit_slice(ctx, x, [start], [start + int(size)], [axis], [1]))
        start += int(size)
    return outputs


@converter("Gather")
def _gather(ctx, inputs, attrs):
    data, indices = inputs
    axis = _axis(attrs.get("axis", 0), len(data.shape))
    if indices.dtype not in ("int64", "int32"):
        raise ConvertError(f"Gather indices of type {indices.dtype}")
    return [ctx.emit1("Gather", [data, indices], {"axis": axis})]


@converter("GatherElements")
def _gather_elements(ctx, inputs, attrs):
    data, indices = inputs
    return [ctx.emit1("GatherElements", [data, indices], {"axis": _axis(attrs.get("axis", 0), len(data.shape))})]


@converter("Expand")
def _expand(ctx, inputs, attrs):
    x = inputs[0]
    target = [int(s) for s in const_input(inputs[1], "Expand's shape")]
    try:
        shape = broadcast_shapes(x.shape, tuple(target))
    except ValueError as exc:
        raise ConvertError(str(exc)) from None
    if shape == x.shape:
        return [x]
    return [ctx.emit1("Expand", [x], {"shape": shape})]


@converter("Tile")
def _tile(ctx, inputs, attrs):
    repeats = [int(r) for r in const_input(inputs[1], "Tile repeats")]
    return [ctx.emit1("Tile", [inputs[0]], {"repeats": repeats})]


@converter("Pad")
def _pad(ctx, inputs, attrs):
    x = inputs[0]
    rank = len(x.shape)
    mode = attrs.get("mode", "constant")
    if ctx.opset < 11:
        pads, value = list(attrs["pads"]), attrs.get("value", 0.0)
    else:
        pads = [int(p) for p in const_input(inputs[1], "Pad pads")]
        value = const_input(inputs[2], "Pad value").item() if len(inputs) > 2 and inputs[2] is not None else 0
        if len(inputs) > 3 and inputs[3] is not None:
            axes = [_axis(int(a), rank) for a in const_input(inputs[3], "Pad axes")]
            full = [0] * (2 * rank)
            for i, axis in enumerate(axes):
                full[axis], full[axis + rank] = pads[i], pads[i + len(axes)]
            pads = full
    if mode not in ("constant", "edge", "reflect"):
        raise ConvertError(f"Pad mode {mode}")
    if any(p < 0 for p in pads):  # negative pads crop: a slice, then the non-negative padding
        starts = [max(0, -pads[a]) for a in range(rank)]
        ends = [x.shape[a] - max(0, -pads[a + rank]) for a in range(rank)]
        x = _emit_slice(ctx, x, starts, ends, list(range(rank)), [1] * rank)
        pads = [max(0, p) for p in pads]
    if not any(pads):
        return [x]
    return [ctx.emit1("Pad", [x], {"pads": pads, "mode": mode, "value": value})]


# Linear algebra ----------------------------------------------------------------
@converter("MatMul")
def _matmul(ctx, inputs, attrs):
    a, b = inputs
    if a.dtype not in ("float32", "float64", "int32", "int64", "uint32", "uint64"):
        raise ConvertError(f"MatMul on {a.dtype} is not supported")
    a2 = _reshape(ctx, a, (1,) + a.shape) if len(a.shape) == 1 else a
    b2 = _reshape(ctx, b, b.shape + (1,)) if len(b.shape) == 1 else b
    if a2.shape[-1] != b2.shape[-2]:
        raise ConvertError(f"inner dimensions differ: {list(a.shape)} @ {list(b.shape)}")
    out = ctx.emit1("MatMul", [a2, b2])
    shape = list(out.shape)
    if len(b.shape) == 1:
        shape.pop(-1)
    if len(a.shape) == 1:
        shape.pop(-2 if len(b.shape) != 1 else -1)
    return [_reshape(ctx, out, shape)]


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
            small, big = total // 2, total - total // 2
            pads[axis], pads[axis + nd] = (small, big) if auto_pad == "SAME_UPPER" else (big, small)
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
    if nd not in (1, 2):
        raise ConvertError(f"{nd}-D convolution is not supported (1-D and 2-D are)")
    if not x.dtype.startswith("float"):
        raise ConvertError(f"Conv on {x.dtype}")
    spatial = _spatial_attrs(attrs, w.shape[2:], x.shape[2:])
    group = attrs.get("group", 1)
    if nd == 1:
        x = _reshape(ctx, x, x.shape[:2] + (1,) + x.shape[2:])
        w = _reshape(ctx, w, w.shape[:2] + (1,) + w.shape[2:])
        spatial = _spatial_as_2d(spatial)
    if x.shape[1] != w.shape[1] * group:
        raise ConvertError(f"input has {x.shape[1]} channels, weights expect {w.shape[1]} x {group} groups")
    out = ctx.emit1("Conv", [x, w] + ([bias] if bias is not None else []), {**spatial, "group": group})
    if nd == 1:
        out = _reshape(ctx, out, out.shape[:2] + out.shape[3:])
    return [out]


@converter("MaxPool", "AveragePool")
def _pool(ctx, inputs, attrs):
    x = inputs[0]
    op = ctx.onnx_node.op_type
    nd = len(x.shape) - 2
    if nd not in (1, 2):
        raise ConvertError(f"{nd}-D pooling is not supported (1-D and 2-D are)")
    if op == "MaxPool" and len([o for o in ctx.onnx_node.output if o]) > 1:
        raise ConvertError("the Indices output of MaxPool is not supported")
    kernel = list(attrs["kernel_shape"])
    spatial = _spatial_attrs(attrs, kernel, x.shape[2:])
    if nd == 1:  # as 2-D with a height of 1
        x = _reshape(ctx, x, x.shape[:2] + (1,) + x.shape[2:])
        kernel = [1] + kernel
        spatial = _spatial_as_2d(spatial)
    extra = {"ceil_mode": attrs.get("ceil_mode", 0), "count_include_pad": attrs.get("count_include_pad", 0)}
    out = ctx.emit1(op, [x], {"kernel_shape": kernel, **spatial, **extra})
    if nd == 1:
        out = _reshape(ctx, out, out.shape[:2] + out.shape[3:])
    return [out]


@converter("GlobalAveragePool", "GlobalMaxPool")
def _global_pool(ctx, inputs, attrs):
    x = inputs[0]
    op = "ReduceMean" if ctx.onnx_node.op_type == "GlobalAveragePool" else "ReduceMax"
    return [ctx.emit1(op, [x], {"axes": list(range(2, len(x.shape))), "keepdims": 1})]


@converter("ReduceSum", "ReduceMean", "ReduceMax", "ReduceMin", "ReduceProd", "ReduceSumSquare", "ReduceL1",
           "ReduceL2", "ReduceLogSumExp")
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
    axes = sorted({_axis(int(a), rank) for a in axes})
    if op not in ("ReduceMax", "ReduceMin", "ReduceSum", "ReduceProd") and not x.dtype.startswith("float"):
        raise ConvertError(f"{op} on {x.dtype}")
    return [ctx.emit1(op, [x], {"axes": axes, "keepdims": attrs.get("keepdims", 1)})]


@converter("Softmax", "LogSoftmax")
def _softmax(ctx, inputs, attrs):
    x = inputs[0]
    op = ctx.onnx_node.op_type
    rank = len(x.shape)
    if ctx.opset < 13:
        return [ctx.emit1(op, [x], {"axis": _axis(attrs.get("axis", 1), rank)})]
    axis = _axis(attrs.get("axis", -1), rank)
    if axis == rank - 1:
        return [ctx.emit1(op, [x], {"axis": axis})]
    perm = [a for a in range(rank) if a != axis] + [axis]
    moved = ctx.emit1("Transpose", [x], {"perm": perm})
    soft = ctx.emit1(op, [moved], {"axis": rank - 1})
    inverse = [perm.index(a) for a in range(rank)]
    return [ctx.emit1("Transpose", [soft], {"perm": inverse})]


@converter("LayerNormalization")
def _layernorm(ctx, inputs, attrs):
    if len([o for o in ctx.onnx_node.output if o]) > 1:
        raise ConvertError("the Mean and InvStdDev outputs are not supported")
    x = inputs[0]
    axis = _axis(attrs.get("axis", -1), len(x.shape))
    return [ctx.emit1("LayerNormalization", inputs, {"axis": axis, "epsilon": attrs.get("epsilon", 1e-5)})]


@converter("BatchNormalization")
def _batchnorm(ctx, inputs, attrs):
    x, scale, bias, mean, var = inputs[:5]
    if attrs.get("training_mode", 0) or len([o for o in ctx.onnx_node.output if o]) > 1:
        raise ConvertError("training-mode BatchNormalization is not supported")
    for value, what in ((scale, "scale"), (bias, "bias"), (mean, "mean"), (var, "var")):
        const_input(value, f"BatchNormalization {what}")
    eps = attrs.get("epsilon", 1e-5)
    factor = scale.const / np.sqrt(var.const + eps)
    shift = bias.const - mean.const * factor
    channel_shape = (-1,) + (1,) * (len(x.shape) - 2)
    dtype = x.dtype
    scaled = ctx.emit1("Mul", [x, ctx.const(factor.reshape(channel_shape).astype(dtype), "bn_scale")])
    return [ctx.emit1("Add", [scaled, ctx.const(shift.reshape(channel_shape).astype(dtype), "bn_shift")])]
