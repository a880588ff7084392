"""Index-producing, scan and scatter ops: ArgMax/ArgMin, CumSum/CumProd, ScatterElements/ScatterND, TopKIndices
(anchors); Trilu, OneHot, GatherND, Diagonal, ReverseSequence (injective).

Static attributes (the converters resolved them): ``axis`` (non-negative),
``keepdims`` and ``select_last_index`` for the arg ops; ``exclusive`` and
``reverse`` for the scans; ``upper`` for Trilu, with ``k`` an attribute or,
computed at run time, a second input; ``reduction`` for the scatters.
"""
from __future__ import annotations

import math

from ..graph.ir import TensorType
from ..schedule.det import det_kernel
from ..schedule.rows import RowKernel
from ..schedule.scan import scan_kernel
from ..schedule.scatter import scatter_kernel
from ..schedule.topk import topk_kernel
from ..tir.views import TensorView, row_major_unflatten
from ..tir.expr import (Cmp, IntImm, Select, call, cast, const, is_float, logical_and, logical_or, maximum,
                        minimum)
from .nn import AnchorContext
from .registry import ANCHOR, INJECTIVE, register


def _split_axis(shape, axis):
    """(outer, length, inner) extents around ``axis``."""
    return math.prod(shape[:axis]), shape[axis], math.prod(shape[axis + 1:])


def _around(shape, axis, o, k, i):
    """The full index of (outer position, axis position, inner position)."""
    return (*row_major_unflatten(o, shape[:axis]), k, *row_major_unflatten(i, shape[axis + 1:]))


# ArgMax / ArgMin ----------------------------------------------------------
def _infer_arg(node):
    shape = list(node.inputs[0].shape)
    axis = node.attrs["axis"]
    if node.attrs["keepdims"]:
        shape[axis] = 1
    else:
        del shape[axis]
    return [TensorType(tuple(shape), "int64")]


def _arg_kernel(node, views, ctx: AnchorContext):
    """Two passes per row: the extreme value, then the first (or last) index holding it (or a NaN)."""
    (x,) = views
    axis, keep, last = node.attrs["axis"], node.attrs["keepdims"], node.attrs["select_last_index"]
    outer, length, inner = _split_axis(x.shape, axis)

    def load(row, j):
        return x.fn(*_around(x.shape, axis, row // inner, j, row % inner))

    k = RowKernel(ctx.name, outer * inner, length, x.dtype, ctx.lanes)
    best = k.reduce("max" if node.op == "ArgMax" else "min", load)

    def candidate(row, j):
        value = load(row, j)
        hit = logical_or(Cmp("eq", value, best), call("isnan", value, dtype="bool") if is_float(x.dtype) else None)
        return Select(hit, j, IntImm(-1 if last else length))

    index = k.reduce("max" if last else "min", candidate, dtype="int64")

    def store(row):
        idx = _around(x.shape, axis, row // inner, IntImm(0), row % inner)
        return ctx.store(index, idx if keep else idx[:axis] + idx[axis + 1:])

    k.store_row(store)
    return k.build(ctx.params, {"kind": "reduce", "rows": outer * inner, "length": length})


register("ArgMax", ANCHOR, _infer_arg, kernel=_arg_kernel)
register("ArgMin", ANCHOR, _infer_arg, kernel=_arg_kernel)


# CumSum / CumProd -----------------------------------------------------------
def _infer_same(node):
    return [TensorType(node.inputs[0].shape, node.inputs[0].dtype)]


def _scan_kernel(node, views, ctx: AnchorContext):
    (x,) = views
    axis = node.attrs["axis"]
    outer, length, inner = _split_axis(x.shape, axis)
    return scan_kernel(ctx.name, outer, length, inner, "sum" if node.op == "CumSum" else "prod",
                       lambda o, k, i: x.fn(*_around(x.shape, axis, o, k, i)),
                       lambda value, o, k, i: ctx.store(value, _around(x.shape, axis, o, k, i)),
                       ctx.params, ctx.lanes, x.dtype, bool(node.attrs["exclusive"]), bool(node.attrs["reverse"]))


register("CumSum", ANCHOR, _infer_same, kernel=_scan_kernel)
register("CumProd", ANCHOR, _infer_same, kernel=_scan_kernel)


# Trilu ----------------------------------------------------------------------
def _view_trilu(node, views):
    x = views[0]
    upper = node.attrs["upper"]

    def fn(*idx):
        k = cast("int64", views[1].fn(*[IntImm(0)] * views[1].ndim)) if len(views) > 1 else IntImm(node.attrs["k"])
        offset = idx[-1] - idx[-2]  # column - row
        keep = Cmp("ge", offset, k) if upper else Cmp("le", offset, k)
        return Select(keep, x.fn(*idx), const(0, x.dtype))

    return [TensorView(x.shape, x.dtype, fn)]


register("Trilu", INJECTIVE, _infer_same, _view_trilu)


def _normalized_index(value, extent):
    """An index read from a tensor, negative values counted from the end (int64)."""
    j = cast("int64", value)
    return Select(Cmp("lt", j, IntImm(0)), j + extent, j)


def _clamped(index, extent):
    return minimum(maximum(index, IntImm(0)), IntImm(max(extent - 1, 0)))


# OneHot ---------------------------------------------------------------------
def _infer_onehot(node):
    indices, values = node.inputs
    shape = list(indices.shape)
    shape.insert(node.attrs["axis"], node.attrs["depth"])
    return [TensorType(tuple(shape), values.dtype)]


def _view_onehot(node, views):
    indices, values = views
    axis, depth = node.attrs["axis"], node.attrs["depth"]

    def fn(*idx):
        j = idx[:axis] + idx[axis + 1:]
        hit = Cmp("eq", _normalized_index(indices.fn(*j), depth), idx[axis])
        return Select(hit, values.fn(IntImm(1)), values.fn(IntImm(0)))

    return [TensorView(_infer_onehot(node)[0].shape, values.dtype, fn)]


register("OneHot", INJECTIVE, _infer_onehot, _view_onehot)


# GatherND -------------------------------------------------------------------
def _infer_gathernd(node):
    data, indices = node.inputs
    batch = node.attrs["batch_dims"]
    return [TensorType(tuple(indices.shape[:-1]) + tuple(data.shape[batch + indices.shape[-1]:]), data.dtype)]


def _view_gathernd(node, views):
    data, indices = views
    batch = node.attrs["batch_dims"]
    depth = indices.shape[-1]
    lead = indices.ndim - 1

    def fn(*idx):
        picked = []
        for axis in range(depth):
            extent = data.shape[batch + axis]
            picked.append(_clamped(_normalized_index(indices.fn(*idx[:lead], IntImm(axis)), extent), extent))
        return data.fn(*idx[:batch], *picked, *idx[lead:])

    return [TensorView(_infer_gathernd(node)[0].shape, data.dtype, fn)]


register("GatherND", INJECTIVE, _infer_gathernd, _view_gathernd)


# ReverseSequence --------------------------------------------------------------
def _view_reverse_sequence(node, views):
    x, lengths = views
    batch_axis, time_axis = node.attrs["batch_axis"], node.attrs["time_axis"]

    def fn(*idx):
        t = idx[time_axis]
        n = cast("int64", lengths.fn(idx[batch_axis]))
        source = list(idx)
        source[time_axis] = _clamped(Select(Cmp("lt", t, n), n - 1 - t, t), x.shape[time_axis])
        return x.fn(*source)

    return [TensorView(x.shape, x.dtype, fn)]


register("ReverseSequence", INJECTIVE, _infer_same, _view_reverse_sequence)


# TensorScatter (a KV-cache write) ------------------------------------------------
def _view_tensor_scatter(node, views):
    """present[b, ..., s, ...] = update[b, ..., s - w[b], ...] where 0 <= s - w[b] < length, else past.

    ``circular`` takes ``s - w[b]`` modulo the cache length (writes wrap around)."""
    past, update, write_indices = views
    axis, circular = node.attrs["axis"], node.attrs["mode"] == "circular"
    capacity, length = past.shape[axis], update.shape[axis]

    def fn(*idx):
        offset = idx[axis] - cast("int64", write_indices.fn(idx[0]))
        if circular:
            offset = offset % capacity
        inside = Cmp("lt", offset, IntImm(length))
        if not circular:
            inside = logical_and(Cmp("ge", offset, IntImm(0)), inside)
        source = list(idx)
        source[axis] = minimum(maximum(offset, IntImm(0)), IntImm(length - 1))
        return Select(inside, update.fn(*source), past.fn(*idx))

    return [TensorView(past.shape, past.dtype, fn)]


register("TensorScatter", INJECTIVE, _infer_same, _view_tensor_scatter)


# Diagonal (Einsum's repeated labels) -------------------------------------------
def _infer_diagonal(node):
    x = node.inputs[0]
    drop = node.attrs["axes"][1]
    return [TensorType(x.shape[:drop] + x.shape[drop + 1:], x.dtype)]


def _view_diagonal(node, views):
    """Axis ``b`` of ``axes = (a, b)``, a < b, follows axis ``a``: out[.., i@a, ..] = x[.., i@a, .., i@b, ..]."""
    (x,) = views
    a, b = node.attrs["axes"]
    return [TensorView(_infer_diagonal(node)[0].shape, x.dtype,
                       lambda *idx: x.fn(*idx[:b], idx[a], *idx[b:]))]


register("Diagonal", INJECTIVE, _infer_diagonal, _view_diagonal)


# ScatterElements / ScatterND (anchors without epilogue) -------------------------
def _scatter_kernel(node, views, ctx: AnchorContext):
    data, indices, updates = views
    if node.op == "ScatterElements":
        axis = node.attrs["axis"]
        extent = data.shape[axis]

        def target(*u):
            j = _clamped(_normalized_index(indices.fn(*u), extent), extent)
            return (*u[:axis], j, *u[axis + 1:])
    else:
        depth, lead = indices.shape[-1], indices.ndim - 1

        def target(*u):
            picked = [_clamped(_normalized_index(indices.fn(*u[:lead], IntImm(axis)), data.shape[axis]),
                               data.shape[axis]) for axis in range(depth)]
            return (*picked, *u[lead:])

    return scatter_kernel(ctx.name, ctx.out, data.fn, updates.shape, target, updates.fn,
                          node.attrs["reduction"], ctx.params, ctx.lanes)


register("ScatterElements", ANCHOR, _infer_same, kernel=_scatter_kernel, epilogue=False)
register("ScatterND", ANCHOR, _infer_same, kernel=_scatter_kernel, epilogue=False)


# TopK (indices; the values are a GatherElements of them) ------------------------
def _infer_topk(node):
    shape = list(node.inputs[0].shape)
    shape[node.attrs["axis"]] = node.attrs["k"]
    return [TensorType(tuple(shape), "int64")]


def _topk_kernel(node, views, ctx: AnchorContext):
    (x,) = views
    axis, k = node.attrs["axis"], node.attrs["k"]
    outer, length, inner = _split_axis(x.shape, axis)
    out_shape = _infer_topk(node)[0].shape
    return topk_kernel(ctx.name, outer * inner, length, k, bool(node.attrs["largest"]),
                       lambda row, j: x.fn(*_around(x.shape, axis, row // inner, j, row % inner)),
                       lambda index, row, t: ctx.store(index, _around(out_shape, axis, row // inner, t, row % inner)),
                       ctx.params, ctx.lanes, x.dtype)


register("TopKIndices", ANCHOR, _infer_topk, kernel=_topk_kernel)


# Det ----------------------------------------------------------------------------
def _det_kernel(node, views, ctx: AnchorContext):
    (x,) = views
    n = x.shape[-1]
    lead = x.shape[:-2]
    return det_kernel(ctx.name, math.prod(lead), n,
                      lambda b, i, j: x.fn(*row_major_unflatten(b, lead), i, j) if lead else x.fn(i, j),
                      lambda value, b: ctx.store(value, row_major_unflatten(b, lead) if lead else ()),
                      ctx.params, x.dtype)


register("Det", ANCHOR, lambda node: [TensorType(node.inputs[0].shape[:-2], node.inputs[0].dtype)],
         kernel=_det_kernel)
