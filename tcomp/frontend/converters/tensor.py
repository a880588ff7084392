"""Converters of shape manipulation and data movement ops."""
from __future__ import annotations

import numpy as np
from onnx import numpy_helper

from ...graph.symbolic import SymInt, product
from ...ops.registry import broadcast_shapes
from .common import (
    ConvertError,
    const_input,
    converter,
    dims,
    normalize_axis,
    reshape_to,
)


# Shape manipulation ------------------------------------------------------------
@converter("Reshape")
def _reshape_op(ctx, inputs, attrs):
    x = inputs[0]
    shape = dims(const_input(inputs[1], "Reshape's shape") if ctx.opset >= 5 else attrs["shape"])
    allowzero = attrs.get("allowzero", 0)
    out = [x.shape[axis] if _is_int(s, 0) and not allowzero else s for axis, s in enumerate(shape)]
    wildcard = [axis for axis, s in enumerate(out) if _is_int(s, -1)]
    if len(wildcard) > 1:
        raise ConvertError("more than one -1 in the target shape")
    if wildcard:
        known = product(s for axis, s in enumerate(out) if axis != wildcard[0])
        out[wildcard[0]] = x.type.size // known if not _is_int(known, 0) else 0
    if product(out) != x.type.size:
        raise ConvertError(f"cannot reshape {list(x.shape)} to {shape}")
    return [reshape_to(ctx, x, out)]


def _is_int(value, number: int) -> bool:
    return not isinstance(value, SymInt) and value == number


@converter("Flatten")
def _flatten(ctx, inputs, attrs):
    x = inputs[0]
    rank = len(x.shape)
    axis = attrs.get("axis", 1)
    axis = axis + rank if axis < 0 else axis
    if not 0 <= axis <= rank:
        raise ConvertError(f"Flatten axis {attrs.get('axis')} is out of range for rank {rank}")
    return [reshape_to(ctx, x, (product(x.shape[:axis]), product(x.shape[axis:])))]


@converter("Squeeze")
def _squeeze(ctx, inputs, attrs):
    x = inputs[0]
    axes = attrs.get("axes") if ctx.opset < 13 else const_input(inputs[1] if len(inputs) > 1 else None, "axes")
    rank = len(x.shape)
    if axes is None:
        axes = [a for a, s in enumerate(x.shape) if s == 1]
    axes = {normalize_axis(int(a), rank) for a in axes}
    for a in axes:
        if x.shape[a] != 1:
            raise ConvertError(f"cannot squeeze axis {a} of extent {x.shape[a]}")
    return [reshape_to(ctx, x, [s for a, s in enumerate(x.shape) if a not in axes])]


@converter("Unsqueeze")
def _unsqueeze(ctx, inputs, attrs):
    x = inputs[0]
    axes = attrs.get("axes") if ctx.opset < 13 else const_input(inputs[1], "axes")
    rank = len(x.shape) + len(axes)
    axes = sorted(normalize_axis(int(a), rank) for a in axes)
    shape = list(x.shape)
    for a in axes:
        shape.insert(a, 1)
    return [reshape_to(ctx, x, shape)]


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
    axis = normalize_axis(attrs["axis"], len(values[0].shape))
    if len(values) == 1:
        return [values[0]]
    return [ctx.emit1("Concat", values, {"axis": axis})]


# Slice bounds at or beyond this mean "to the end of the axis" (exporters write INT64_MAX)
END_OF_AXIS = 2**31 - 1


def _slice_attrs(ctx, shape, starts, ends, axes, steps):
    rank = len(shape)
    full_starts, full_steps, out_shape = [0] * rank, [1] * rank, list(shape)
    for start, end, axis, step in zip(starts, ends, axes, steps):
        axis = normalize_axis(int(axis), rank)
        extent = shape[axis]
        step = int(step)
        if step == 0:
            raise ConvertError("slice step 0")
        if isinstance(extent, SymInt) or isinstance(start, SymInt) or isinstance(end, SymInt):
            start, count = _symbolic_slice(ctx, extent, start, end, step)
        else:
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


def _symbolic_slice(ctx, extent, start, end, step):
    """(start, count) of a unit-step slice involving symbolic sizes; the bounds the result
    relies on become run-time constraints instead of clamps."""
    if step != 1:
        raise ConvertError("a slice with a step other than 1 over a symbolic extent is not supported")
    if not isinstance(start, SymInt) and start < 0:
        start = extent + start
    if not isinstance(end, SymInt) and end >= END_OF_AXIS:
        end = extent
    elif not isinstance(end, SymInt) and end < 0:
        end = extent + end
    for value, what in ((start, "start"), (end, "end")):
        if isinstance(value, SymInt) or isinstance(extent, SymInt):
            ctx.require(value, "<=", extent, f"slices [{start}:{end}] of an axis of {extent} ({what} in bounds)")
            ctx.require(value, ">=", 0, f"slices [{start}:{end}] ({what} not negative)")
    count = end - start
    if isinstance(count, SymInt) or isinstance(start, SymInt):
        ctx.require(count, ">=", 0, f"slices [{start}:{end}] (end not before start)")
    return start, count


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
    return [emit_slice(ctx, x, starts, ends, axes, steps)]


def emit_slice(ctx, x, starts, ends, axes, steps):
    sliced = _slice_attrs(ctx, x.shape, dims(starts), dims(ends), axes, steps)
    if sliced["out_shape"] == list(x.shape) and all(s == 1 for s in sliced["steps"]):
        return x
    return ctx.emit1("Slice", [x], sliced)


@converter("Split")
def _split(ctx, inputs, attrs):
    x = inputs[0]
    axis = normalize_axis(attrs.get("axis", 0), len(x.shape))
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
        outputs.append(emit_slice(ctx, x, [start], [start + int(size)], [axis], [1]))
        start += int(size)
    return outputs


@converter("Gather")
def _gather(ctx, inputs, attrs):
    data, indices = inputs
    axis = normalize_axis(attrs.get("axis", 0), len(data.shape))
    if indices.dtype not in ("int64", "int32"):
        raise ConvertError(f"Gather indices of type {indices.dtype}")
    return [ctx.emit1("Gather", [data, indices], {"axis": axis})]


@converter("GatherElements")
def _gather_elements(ctx, inputs, attrs):
    data, indices = inputs
    return [ctx.emit1("GatherElements", [data, indices], {"axis": normalize_axis(attrs.get("axis", 0), len(data.shape))})]


@converter("Expand")
def _expand(ctx, inputs, attrs):
    x = inputs[0]
    target = dims(const_input(inputs[1], "Expand's shape"))
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
            axes = [normalize_axis(int(a), rank) for a in const_input(inputs[3], "Pad axes")]
            full = [0] * (2 * rank)
            for i, axis in enumerate(axes):
                full[axis], full[axis + rank] = pads[i], pads[i + len(axes)]
            pads = full
    if mode not in ("constant", "edge", "reflect", "wrap"):
        raise ConvertError(f"Pad mode {mode}")
    if any(p < 0 for p in pads):  # negative pads crop: a slice, then the non-negative padding
        starts = [max(0, -pads[a]) for a in range(rank)]
        ends = [x.shape[a] - max(0, -pads[a + rank]) for a in range(rank)]
        x = emit_slice(ctx, x, starts, ends, list(range(rank)), [1] * rank)
        pads = [max(0, p) for p in pads]
    if not any(pads):
        return [x]
    return [ctx.emit1("Pad", [x], {"pads": pads, "mode": mode, "value": value})]




@converter("ConstantOfShape")
def _constant_of_shape(ctx, inputs, attrs):
    shape = dims(const_input(inputs[0], "ConstantOfShape's shape"))
    fill = attrs.get("value")
    fill = np.zeros(1, dtype=np.float32) if fill is None else numpy_helper.to_array(fill)
    return [ctx.emit1("Expand", [ctx.const(fill.reshape(()))], {"shape": tuple(shape)})]


@converter("Range")
def _range(ctx, inputs, attrs):
    start, limit, delta = (const_input(v, f"Range's {what}").reshape(()).item()
                           for v, what in zip(inputs, ("start", "limit", "delta")))
    dtype = inputs[0].dtype
    if isinstance(start, SymInt) or isinstance(delta, SymInt):
        raise ConvertError("a symbolic start or delta of Range is not supported (a symbolic limit is)")
    if delta == 0:
        raise ConvertError("Range with delta 0")
    span = limit - start
    length = span // delta if isinstance(span, SymInt) else max(0, -(-span // delta))
    if isinstance(length, SymInt):
        ctx.require(length, ">=", 0, f"computes Range({start}, {limit}, {delta}) (limit not before start)")
    return [ctx.emit1("Range", [], {"start": start, "delta": delta, "length": length, "dtype": dtype})]
