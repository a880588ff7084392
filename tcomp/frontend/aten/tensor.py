"""Converters of ATen shape manipulation, indexing and data movement ops.

Result shapes come from the FX node (``ctx.out_shape()``), which torch.export
computed; the converters choose the graph-IR op that produces them.
"""
from __future__ import annotations

import numpy as np

from ...graph.ir import Value
from ...graph.symbolic import SymInt, product
from ..converters.common import ConvertError, reshape_to
from .common import aten, axis_of, cast, scalar

END_OF_AXIS = 2 ** 62  # torch spells "to the end" as a huge end (sys.maxsize)


@aten("view.default", "_unsafe_view.default", "unsqueeze.default", "squeeze.dims")
def _reshape(ctx, x, *shape_args):
    return reshape_to(ctx, x, ctx.out_shape())


@aten("permute.default")
def _permute(ctx, x, dims):
    perm = [axis_of(d, len(x.shape)) for d in dims]
    return x if perm == list(range(len(perm))) else ctx.emit1("Transpose", [x], {"perm": perm})


@aten("expand.default")
def _expand(ctx, x, size, implicit=False):
    shape = ctx.out_shape()
    return x if shape == x.shape else ctx.emit1("Expand", [x], {"shape": shape})


def slice_axis(ctx, x, axis: int, start, end, step: int = 1):
    """``x[..., start:end:step, ...]`` on ``axis`` with Python's clamping of start and end."""
    extent = x.shape[axis]
    if step <= 0:
        raise ConvertError(f"slice step {step} (must be positive)")
    if isinstance(extent, SymInt) or isinstance(start, SymInt) or isinstance(end, SymInt):
        start, count = _symbolic_slice(extent, start, end, step)
    else:
        start, end, step = slice(start, end, step).indices(extent)
        count = len(range(start, end, step))
    if count == extent:
        return x
    starts, steps, shape = [0] * len(x.shape), [1] * len(x.shape), list(x.shape)
    starts[axis], steps[axis], shape[axis] = start, step, count
    return ctx.emit1("Slice", [x], {"starts": starts, "steps": steps, "out_shape": shape})


def _symbolic_slice(extent, start, end, step):
    """(start, count) of a unit-step slice over symbolic sizes; torch.export checked its bounds for every size
    it allows."""
    if step != 1:
        raise ConvertError(f"a slice with step {step} over the symbolic extent {extent} is not supported")
    start = 0 if start is None else start
    end = extent if end is None or (isinstance(end, int) and end >= END_OF_AXIS) else end
    start = extent + start if isinstance(start, int) and start < 0 else start
    end = extent + end if isinstance(end, int) and end < 0 else end
    return start, end - start


@aten("slice.Tensor")
def _slice(ctx, x, dim=0, start=None, end=None, step=1):
    return slice_axis(ctx, x, axis_of(dim, len(x.shape)), start, end, step)


@aten("select.int")
def _select(ctx, x, dim, index):
    axis = axis_of(dim, len(x.shape))
    if not isinstance(x.shape[axis], SymInt):
        if not -x.shape[axis] <= index < x.shape[axis]:
            raise ConvertError(f"index {index} is out of range for dimension {dim} of extent {x.shape[axis]}")
        index %= x.shape[axis]
    elif index < 0:
        index = x.shape[axis] + index
    return reshape_to(ctx, slice_axis(ctx, x, axis, index, index + 1), ctx.out_shape())


@aten("split_with_sizes.default")
def _split(ctx, x, sizes, dim=0):
    axis = axis_of(dim, len(x.shape))
    outputs, start = [], 0
    for size in sizes:
        outputs.append(slice_axis(ctx, x, axis, start, start + size))
        start += size
    return outputs


@aten("cat.default")
def _cat(ctx, tensors, dim=0):
    dtype = ctx.out_dtype()  # empty tensors (torch allows 1-D empty ones beside any rank) add nothing
    values = [cast(ctx, t, dtype) for t in tensors if t.type.size > 0] or [cast(ctx, tensors[0], dtype)]
    if len(values) == 1:
        return values[0]
    return ctx.emit1("Concat", values, {"axis": axis_of(dim, len(values[0].shape))})


@aten("flip.default")
def _flip(ctx, x, dims):
    rank = len(x.shape)
    axes = {axis_of(d, rank) for d in dims}
    starts = [x.shape[a] - 1 if a in axes else 0 for a in range(rank)]
    steps = [-1 if a in axes else 1 for a in range(rank)]
    return ctx.emit1("Slice", [x], {"starts": starts, "steps": steps, "out_shape": list(x.shape)})


@aten("repeat.default")
def _repeat(ctx, x, repeats):
    x = reshape_to(ctx, x, (1,) * (len(repeats) - len(x.shape)) + x.shape)
    return ctx.emit1("Tile", [x], {"repeats": [int(r) for r in repeats]})


@aten("constant_pad_nd.default")
def _pad(ctx, x, pad, value=0):
    rank = len(x.shape)
    if len(pad) % 2 or len(pad) > 2 * rank:
        raise ConvertError(f"pad {list(pad)} does not pair up with the {rank} dimensions")
    begins, ends = [0] * rank, [0] * rank
    for i in range(len(pad) // 2):  # torch lists (begin, end) pairs from the last dimension
        begins[rank - 1 - i], ends[rank - 1 - i] = int(pad[2 * i]), int(pad[2 * i + 1])
    for axis in range(rank):  # negative padding crops
        if begins[axis] < 0 or ends[axis] < 0:
            x = slice_axis(ctx, x, axis, max(0, -begins[axis]), x.shape[axis] - max(0, -ends[axis]))
    pads = [max(0, p) for p in begins + ends]
    if not any(pads):
        return x
    return ctx.emit1("Pad", [x], {"pads": pads, "mode": "constant", "value": value})


# Indexing --------------------------------------------------------------------------
@aten("sym_size.int")
def _sym_size(ctx, x, dim):
    return x.shape[axis_of(dim, len(x.shape))]


@aten("embedding.default")
def _embedding(ctx, weight, indices, padding_idx=-1, scale_grad_by_freq=False, sparse=False):
    return ctx.emit1("Gather", [weight, _int_indices(ctx, indices)], {"axis": 0})


@aten("index_select.default")
def _index_select(ctx, x, dim, index):
    return ctx.emit1("Gather", [x, _int_indices(ctx, index)], {"axis": axis_of(dim, len(x.shape))})


@aten("gather.default")
def _gather(ctx, x, dim, index, sparse_grad=False):
    return ctx.emit1("GatherElements", [x, _int_indices(ctx, index)], {"axis": axis_of(dim, len(x.shape))})


def _int_indices(ctx, indices):
    if indices.dtype not in ("int64", "int32"):
        raise ConvertError(f"indices of dtype {indices.dtype} (integer indices are supported)")
    return indices


@aten("index.Tensor")
def _index(ctx, x, indices):
    """Advanced indexing ``x[..., i, j, ...]``: the indexed dimensions merge into one, read by a Gather."""
    dims = [d for d, index in enumerate(indices) if index is not None]
    index_values = [_int_indices(ctx, indices[d]) if indices[d].dtype != "bool" else None for d in dims]
    if any(v is None for v in index_values):
        raise ConvertError("boolean mask indexing (its result shape depends on the data)")
    if dims != list(range(dims[0], dims[-1] + 1)):  # torch puts the index dimensions first
        rest = [d for d in range(len(x.shape)) if d not in dims]
        x = ctx.emit1("Transpose", [x], {"perm": dims + rest})
        dims = list(range(len(dims)))
    first, extents = dims[0], [x.shape[d] for d in dims]
    flat = _flat_index(ctx, index_values, extents)
    merged = reshape_to(ctx, x, x.shape[:first] + (product(extents),) + x.shape[dims[-1] + 1:])
    return ctx.emit1("Gather", [merged, flat], {"axis": first})


def _flat_index(ctx, indices, extents) -> Value:
    """The row-major position of (indices...) in a block of ``extents``, negative indices wrapped."""
    strides = [product(extents[i + 1:]) for i in range(len(extents))]
    if all(v.is_const for v in indices) and not any(isinstance(e, SymInt) for e in extents):
        parts = [np.where(v.const < 0, v.const + extent, v.const).astype(np.int64) * stride
                 for v, extent, stride in zip(indices, extents, strides)]
        return ctx.const(sum(parts[1:], parts[0]), "flat_index")
    flat = None
    for value, extent, stride in zip(indices, extents, strides):
        value = cast(ctx, value, "int64")
        wrapped = ctx.emit1("Where", [ctx.emit1("Less", [value, scalar(ctx, 0, "int64")]),
                                      ctx.emit1("Add", [value, scalar(ctx, extent, "int64")]), value])
        term = ctx.emit1("Mul", [wrapped, scalar(ctx, stride, "int64")]) if stride != 1 else wrapped
        flat = term if flat is None else ctx.emit1("Add", [flat, term])
    return flat
