"""Injective data-movement ops: each output element is one input element (or a pad value).

Attributes are static (the importer resolved them): Reshape has ``shape``,
Slice has per-axis ``starts``/``steps`` of the full rank, Pad has ``pads`` of
length 2*rank.
"""
from __future__ import annotations

from ..graph.ir import TensorType
from ..tir.views import TensorView, broadcast_index, row_major_flatten, row_major_unflatten
from ..tir.expr import (Cmp, IntImm, Select, cast, const, logical_and, maximum, minimum)
from .registry import INJECTIVE, register


def _clamp(index, extent):
    return minimum(maximum(index, 0), extent - 1)


# Reshape ---------------------------------------------------------------
def _infer_reshape(node):
    return [TensorType(tuple(node.attrs["shape"]), node.inputs[0].dtype)]


def _view_reshape(node, views):
    (src,) = views
    shape = tuple(node.attrs["shape"])

    def fn(*idx):
        return src.fn(*row_major_unflatten(row_major_flatten(idx, shape), src.shape))

    return [TensorView(shape, src.dtype, fn)]


register("Reshape", INJECTIVE, _infer_reshape, _view_reshape)


# Transpose -------------------------------------------------------------
def _infer_transpose(node):
    shape = node.inputs[0].shape
    return [TensorType(tuple(shape[p] for p in node.attrs["perm"]), node.inputs[0].dtype)]


register("Transpose", INJECTIVE, _infer_transpose, lambda node, views: [views[0].transpose(node.attrs["perm"])])


# Expand ----------------------------------------------------------------
def _infer_expand(node):
    return [TensorType(tuple(node.attrs["shape"]), node.inputs[0].dtype)]


def _view_expand(node, views):
    (src,) = views
    shape = tuple(node.attrs["shape"])
    return [TensorView(shape, src.dtype, lambda *idx: src.fn(*broadcast_index(idx, src.shape, shape)))]


register("Expand", INJECTIVE, _infer_expand, _view_expand)


# Slice -----------------------------------------------------------------
def _infer_slice(node):
    return [TensorType(tuple(node.attrs["out_shape"]), node.inputs[0].dtype)]


def _view_slice(node, views):
    (src,) = views
    starts, steps = node.attrs["starts"], node.attrs["steps"]
    return [TensorView(tuple(node.attrs["out_shape"]), src.dtype,
                       lambda *idx: src.fn(*(i * step + start for i, start, step in zip(idx, starts, steps))))]


register("Slice", INJECTIVE, _infer_slice, _view_slice)


# Concat ----------------------------------------------------------------
def _infer_concat(node):
    axis = node.attrs["axis"]
    shape = list(node.inputs[0].shape)
    shape[axis] = sum(v.shape[axis] for v in node.inputs)
    return [TensorType(tuple(shape), node.inputs[0].dtype)]


def _view_concat(node, views):
    axis = node.attrs["axis"]
    out = _infer_concat(node)[0]

    def fn(*idx):
        offsets = []
        total = 0
        for view in views:
            offsets.append(total)
            total += view.shape[axis]
        result = None
        for view, offset in reversed(list(zip(views, offsets))):
            local = list(idx)
            local[axis] = _clamp(idx[axis] - offset, view.shape[axis])
            value = view.fn(*local)
            result = value if result is None else Select(Cmp("lt", idx[axis], IntImm(offset + view.shape[axis])),
                                                          value, result)
        return result

    return [TensorView(out.shape, out.dtype, fn)]


register("Concat", INJECTIVE, _infer_concat, _view_concat)


# Gather ----------------------------------------------------------------
def _infer_gather(node):
    data, indices = node.inputs
    axis = node.attrs["axis"]
    shape = data.shape[:axis] + indices.shape + data.shape[axis + 1:]
    return [TensorType(tuple(shape), data.dtype)]


def _view_gather(node, views):
    data, indices = views
    axis = node.attrs["axis"]
    rank = indices.ndim
    extent = data.shape[axis]

    def fn(*idx):
        j = cast("int64", indices.fn(*idx[axis:axis + rank]))
        j = Select(Cmp("lt", j, IntImm(0)), j + extent, j)
        return data.fn(*idx[:axis], _clamp(j, extent), *idx[axis + rank:])

    return [TensorView(_infer_gather(node)[0].shape, data.dtype, fn)]


register("Gather", INJECTIVE, _infer_gather, _view_gather)


# GatherElements ----------------------------------------------------------
def _view_gather_elements(node, views):
    data, indices = views
    axis = node.attrs["axis"]
    extent = data.shape[axis]

    def fn(*idx):
        j = cast("int64", indices.fn(*idx))
        j = Select(Cmp("lt", j, IntImm(0)), j + extent, j)
        return data.fn(*idx[:axis], _clamp(j, extent), *idx[axis + 1:])

    return [TensorView(indices.shape, data.dtype, fn)]


register("GatherElements", INJECTIVE, lambda node: [TensorType(node.inputs[1].shape, node.inputs[0].dtype)],
         _view_gather_elements)


# Tile ------------------------------------------------------------------
def _infer_tile(node):
    shape = tuple(s * r for s, r in zip(node.inputs[0].shape, node.attrs["repeats"]))
    return [TensorType(shape, node.inputs[0].dtype)]


def _view_tile(node, views):
    (src,) = views
    return [TensorView(_infer_tile(node)[0].shape, src.dtype,
                       lambda *idx: src.fn(*(i % s for i, s in zip(idx, src.shape))))]


register("Tile", INJECTIVE, _infer_tile, _view_tile)


# Pad -------------------------------------------------------------------
def _infer_pad(node):
    shape = node.inputs[0].shape
    pads = node.attrs["pads"]
    rank = len(shape)
    return [TensorType(tuple(s + pads[a] + pads[a + rank] for a, s in enumerate(shape)), node.inputs[0].dtype)]


def _view_pad(node, views):
    (src,) = views
    pads, mode = node.attrs["pads"], node.attrs.get("mode", "constant")
    rank = src.ndim
    value = const(node.attrs.get("value", 0), src.dtype)

    def fn(*idx):
        local, conds = [], []
        for axis, i in enumerate(idx):
            extent = src.shape[axis]
            j = i - pads[axis]
            if pads[axis] == 0 and pads[axis + rank] == 0:
                local.append(i)
                continue
            if mode == "constant":
                conds.append(logical_and(Cmp("ge", j, IntImm(0)), Cmp("lt", j, IntImm(extent))))
                local.append(_clamp(j, extent))
            elif mode == "edge":
                local.append(_clamp(j, extent))
            elif mode == "reflect":
                period = max(2 * extent - 2, 1)
                r = j % period
                local.append(Select(Cmp("lt", r, IntImm(extent)), r, period - r))
            elif mode == "wrap":
                local.append(j % extent)
            else:
                raise ValueError(f"unknown pad mode {mode}")
        loaded = src.fn(*local)
        cond = logical_and(*conds)
        return loaded if cond is None else Select(cond, loaded, value)

    return [TensorView(_infer_pad(node)[0].shape, src.dtype, fn)]


register("Pad", INJECTIVE, _infer_pad, _view_pad)


# Range -----------------------------------------------------------------
def _view_range(node, views):
    a = node.attrs
    dtype = a["dtype"]
    return [TensorView((a["length"],), dtype, lambda i: const(a["start"], dtype) + cast(dtype, i) * a["delta"])]


register("Range", INJECTIVE, lambda node: [TensorType((node.attrs["length"],), node.attrs["dtype"])], _view_range)
