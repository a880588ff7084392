"""Converters of indexing and scan ops: ArgMax/ArgMin, CumSum/CumProd, Trilu, EyeLike, OneHot, GatherND,
ReverseSequence, ScatterElements (and Scatter), ScatterND, TensorScatter, TopK."""
from __future__ import annotations

import numpy as np
import onnx

from ...graph.ir import dtype_of_numpy
from .common import ConvertError, const_input, converter, normalize_axis, reshape_to


@converter("ArgMax", "ArgMin")
def _arg(ctx, inputs, attrs):
    x = inputs[0]
    if x.dtype == "bool":
        raise ConvertError(f"{ctx.onnx_node.op_type} on bool is not supported")
    if not x.shape:
        raise ConvertError("the input must have at least one axis")
    axis = normalize_axis(attrs.get("axis", 0), len(x.shape))
    if x.shape[axis] == 0:
        raise ConvertError(f"cannot take {ctx.onnx_node.op_type} over the empty axis {axis}")
    return [ctx.emit1(ctx.onnx_node.op_type, [x], {"axis": axis, "keepdims": attrs.get("keepdims", 1),
                                                  "select_last_index": attrs.get("select_last_index", 0)})]


@converter("CumSum", "CumProd")
def _cumulative(ctx, inputs, attrs):
    x = inputs[0]
    op = ctx.onnx_node.op_type
    if x.dtype == "bool" or not x.shape:
        raise ConvertError(f"{op} needs a numeric tensor of rank >= 1, got {x.dtype}{list(x.shape)}")
    axis = normalize_axis(int(np.asarray(const_input(inputs[1], f"{op}'s axis")).reshape(())), len(x.shape))
    if x.type.size == 0:
        return [x]
    return [ctx.emit1(op, [x], {"axis": axis, "exclusive": attrs.get("exclusive", 0),
                                "reverse": attrs.get("reverse", 0)})]


@converter("Trilu")
def _trilu(ctx, inputs, attrs):
    x = inputs[0]
    if len(x.shape) < 2:
        raise ConvertError(f"Trilu needs a tensor of rank >= 2, got rank {len(x.shape)}")
    k = inputs[1] if len(inputs) > 1 else None
    node_attrs = {"upper": attrs.get("upper", 1), "k": 0}
    if k is not None and k.type.size != 1:
        raise ConvertError(f"Trilu's k must hold one value, got shape {list(k.shape)}")
    if k is None or k.is_const:
        node_attrs["k"] = int(k.const.reshape(())) if k is not None else 0
        return [ctx.emit1("Trilu", [x], node_attrs)]
    return [ctx.emit1("Trilu", [x, k], node_attrs)]  # k read at run time


@converter("EyeLike")
def _eye_like(ctx, inputs, attrs):
    """A constant: only the input's (static) shape matters."""
    x = inputs[0]
    if len(x.shape) != 2:
        raise ConvertError(f"EyeLike needs a 2-D input, got rank {len(x.shape)}")
    dtype = onnx.helper.tensor_dtype_to_np_dtype(attrs["dtype"]) if "dtype" in attrs else np.dtype(x.dtype)
    if dtype_of_numpy(dtype) in ("str", "object"):
        raise ConvertError(f"EyeLike to {dtype} is not supported")
    return [ctx.const(np.eye(*x.shape, k=attrs.get("k", 0), dtype=dtype), "eye")]


@converter("OneHot")
def _onehot(ctx, inputs, attrs):
    indices, depth, values = inputs
    depth = np.asarray(const_input(depth, "OneHot's depth"))
    if depth.size != 1:
        raise ConvertError(f"OneHot's depth must hold one value, got shape {list(depth.shape)}")
    depth = int(depth.reshape(()))  # a float depth is truncated, as in onnxruntime
    if depth < 1:
        raise ConvertError(f"OneHot's depth must be positive, got {depth}")
    if values.type.size != 2:
        raise ConvertError(f"OneHot's values must hold [off, on], got shape {list(values.shape)}")
    if indices.dtype == "bool":
        raise ConvertError("OneHot indices of type bool")
    axis = normalize_axis(attrs.get("axis", -1), len(indices.shape) + 1)
    values = reshape_to(ctx, values, (2,))
    return [ctx.emit1("OneHot", [indices, values], {"axis": axis, "depth": depth})]


@converter("GatherND")
def _gathernd(ctx, inputs, attrs):
    data, indices = inputs
    batch = attrs.get("batch_dims", 0)
    if indices.dtype != "int64" or not indices.shape:
        raise ConvertError(f"GatherND indices must be int64 of rank >= 1, got {indices.dtype}{list(indices.shape)}")
    depth = indices.shape[-1]
    if batch < 0 or batch >= min(len(data.shape), len(indices.shape)):
        raise ConvertError(f"batch_dims {batch} is out of range for ranks {len(data.shape)} and {len(indices.shape)}")
    if batch + depth > len(data.shape):
        raise ConvertError(f"indices of depth {depth} after {batch} batch axes exceed data rank {len(data.shape)}")
    if data.shape[:batch] != indices.shape[:batch]:
        raise ConvertError(f"batch axes differ: data {list(data.shape[:batch])}, indices {list(indices.shape[:batch])}")
    return [ctx.emit1("GatherND", [data, indices], {"batch_dims": batch})]


@converter("ReverseSequence")
def _reverse_sequence(ctx, inputs, attrs):
    x, lengths = inputs
    batch_axis, time_axis = attrs.get("batch_axis", 1), attrs.get("time_axis", 0)
    if {batch_axis, time_axis} != {0, 1} or len(x.shape) < 2:
        raise ConvertError(f"batch_axis {batch_axis} and time_axis {time_axis} must be 0 and 1 (rank >= 2)")
    if lengths.shape != (x.shape[batch_axis],):
        raise ConvertError(f"sequence_lens of shape {list(lengths.shape)} for a batch of {x.shape[batch_axis]}")
    return [ctx.emit1("ReverseSequence", [x, lengths], {"batch_axis": batch_axis, "time_axis": time_axis})]


@converter("TensorScatter")
def _tensor_scatter(ctx, inputs, attrs):
    past, update = inputs[:2]
    write_indices = inputs[2] if len(inputs) > 2 else None
    rank = len(past.shape)
    axis = normalize_axis(attrs.get("axis", -2), rank)
    mode = attrs.get("mode", "linear")
    if mode not in ("linear", "circular"):
        raise ConvertError(f"mode {mode!r} is not linear or circular")
    if axis == 0:
        raise ConvertError("axis 0 is the batch axis; the sequence axis must come after it")
    if len(update.shape) != rank or any(u != p for a, (u, p) in enumerate(zip(update.shape, past.shape))
                                        if a != axis):
        raise ConvertError(f"update of shape {list(update.shape)} for a cache of shape {list(past.shape)} "
                           f"(all but axis {axis} must agree)")
    if update.dtype != past.dtype:
        raise ConvertError(f"update of type {update.dtype} for a cache of type {past.dtype}")
    if write_indices is None:
        write_indices = ctx.const(np.zeros(past.shape[0], dtype=np.int64), "write_indices")
    elif write_indices.shape != (past.shape[0],):
        raise ConvertError(f"write_indices of shape {list(write_indices.shape)} for a batch of {past.shape[0]}")
    return [ctx.emit1("TensorScatter", [past, update, write_indices], {"axis": axis, "mode": mode})]


REDUCTIONS = ("none", "add", "mul", "max", "min")


@converter("ScatterElements", "Scatter", "ScatterND")
def _scatter(ctx, inputs, attrs):
    data, indices, updates = inputs
    op = ctx.onnx_node.op_type
    reduction = attrs.get("reduction", "none")
    if reduction not in REDUCTIONS:
        raise ConvertError(f"reduction {reduction!r} is not one of {', '.join(REDUCTIONS)}")
    if indices.dtype not in ("int32", "int64"):
        raise ConvertError(f"{op} indices of type {indices.dtype}")
    if updates.dtype != data.dtype:
        raise ConvertError(f"updates of type {updates.dtype} for data of type {data.dtype}")
    if op == "ScatterND":
        depth = indices.shape[-1] if indices.shape else 0
        if not indices.shape or depth > len(data.shape):
            raise ConvertError(f"indices of shape {list(indices.shape)} for data of rank {len(data.shape)}")
        expected = indices.shape[:-1] + data.shape[depth:]
        if updates.shape != expected:
            raise ConvertError(f"updates of shape {list(updates.shape)}, expected {list(expected)}")
        return [ctx.emit1("ScatterND", [data, indices, updates], {"reduction": reduction})]
    axis = normalize_axis(attrs.get("axis", 0), len(data.shape))
    if updates.shape != indices.shape or len(indices.shape) != len(data.shape):
        raise ConvertError(f"indices {list(indices.shape)} and updates {list(updates.shape)} must have one shape "
                           f"of the data's rank {len(data.shape)}")
    return [ctx.emit1("ScatterElements", [data, indices, updates], {"axis": axis, "reduction": reduction})]


@converter("TopK")
def _topk(ctx, inputs, attrs):
    """Indices from a selection kernel; values gathered with them."""
    x = inputs[0]
    if x.dtype == "bool" or not x.shape:
        raise ConvertError(f"TopK needs a numeric tensor of rank >= 1, got {x.dtype}{list(x.shape)}")
    if ctx.opset < 10:
        k = attrs["k"]
    else:
        k = np.asarray(const_input(inputs[1], "TopK's k"))
        if k.size != 1:
            raise ConvertError(f"TopK's k must hold one value, got shape {list(k.shape)}")
        k = int(k.reshape(()))
    axis = normalize_axis(attrs.get("axis", -1), len(x.shape))
    if not 1 <= k <= x.shape[axis]:
        raise ConvertError(f"k = {k} is not in [1, {x.shape[axis]}] (the extent of axis {axis})")
    indices = ctx.emit1("TopKIndices", [x], {"axis": axis, "k": k, "largest": attrs.get("largest", 1)})
    return [ctx.emit1("GatherElements", [x, indices], {"axis": axis}), indices]


MAX_DET_ORDER = 64  # the matrix is copied to the stack


@converter("Det")
def _det(ctx, inputs, attrs):
    x = inputs[0]
    if len(x.shape) < 2 or x.shape[-1] != x.shape[-2] or not x.dtype.startswith("float"):
        raise ConvertError(f"Det needs float square matrices [..., n, n], got {x.dtype}{list(x.shape)}")
    if not 1 <= x.shape[-1] <= MAX_DET_ORDER:
        raise ConvertError(f"matrices of order {x.shape[-1]}: supported up to {MAX_DET_ORDER}")
    return [ctx.emit1("Det", [x])]
