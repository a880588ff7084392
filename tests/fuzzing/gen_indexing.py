"""Generators of index-driven ops: ArgMax/ArgMin, TopK, Hardmax, CumSum, Trilu, GatherElements,
GatherND, OneHot, ReverseSequence, ScatterElements, ScatterND.

Ops that compare elements (ArgMax, TopK, Hardmax) read bit-exact values only, so ties and
orders are the same in both implementations; scatters without a reduction write each
position once (ONNX leaves the order of duplicate writes open).
"""
from __future__ import annotations

import math

import numpy as np

from .builder import MAX_FLOAT_MAG, MAX_INT_MAG, Builder, op_generator, ulps
from .case import BOOL, FLOAT, INT32, INT64, INTS, Spec
from .gen_tensor import ANY_DTYPES, moved


def _numeric(b: Builder, pred=lambda s: True, min_rank: int = 1) -> str:
    dtype = FLOAT if b.chance(0.7) else b.choice(INTS)
    return b.operand(lambda s: s.dtype in (FLOAT,) + INTS and len(s.shape) >= min_rank and pred(s),
                     lambda: b.random_spec(b.shape(b.randint(min_rank, 4)), dtype), reuse=0.7)


def _axis(b: Builder, rank: int) -> tuple:
    """(axis, the attribute's spelling: sometimes negative)."""
    axis = b.randint(0, rank - 1)
    return axis, axis - rank if b.chance(0.3) else axis


def _exact_with_axis(b: Builder) -> tuple | None:
    """(an exact numeric value of rank 1 or more, its spec, a random axis, the axis as spelled); None
    where ``_numeric`` gave an inexact value or a scalar."""
    x = _numeric(b, lambda s: s.exact)
    xs = b.specs[x]
    if not xs.exact or not xs.shape:
        return None
    return (x, xs) + _axis(b, len(xs.shape))


@op_generator("argmax", weight=1.0)
def gen_argmax(b: Builder) -> None:
    found = _exact_with_axis(b)
    if found is None:
        return
    x, xs, axis, spelled = found
    keepdims = b.randint(0, 1)
    shape = tuple(1 if a == axis else d for a, d in enumerate(xs.shape)) if keepdims else \
        xs.shape[:axis] + xs.shape[axis + 1:]
    attrs = {"axis": spelled, "keepdims": keepdims}
    if b.chance(0.4):
        attrs["select_last_index"] = b.randint(0, 1)
    b.emit1(b.choice(("ArgMax", "ArgMin")), [x], Spec(shape, INT64, 0, xs.shape[axis] - 1), **attrs)


@op_generator("topk", weight=1.0)
def gen_topk(b: Builder) -> None:
    found = _exact_with_axis(b)
    if found is None:
        return
    x, xs, axis, spelled = found
    k = b.randint(1, xs.shape[axis])
    shape = tuple(k if a == axis else d for a, d in enumerate(xs.shape))
    attrs = {"axis": spelled}
    if b.chance(0.5):
        attrs["largest"] = b.randint(0, 1)
    b.emit("TopK", [x, b.const([k])], [moved(xs, shape), Spec(shape, INT64, 0, xs.shape[axis] - 1)], **attrs)


@op_generator("hardmax", weight=0.4)
def gen_hardmax(b: Builder) -> None:
    x = b.operand(lambda s: s.dtype == FLOAT and s.exact and len(s.shape) >= 1,
                  lambda: b.float_spec(b.shape(b.randint(1, 3))), reuse=0.7)
    xs = b.specs[x]
    if not xs.shape:
        return
    b.emit1("Hardmax", [x], Spec(xs.shape, FLOAT, 0, 1), axis=_axis(b, len(xs.shape))[1])


@op_generator("cumsum", weight=1.0)
def gen_cumsum(b: Builder) -> None:
    x = _numeric(b)
    xs = b.specs[x]
    if not xs.shape:
        return
    axis, spelled = _axis(b, len(xs.shape))
    n = xs.shape[axis]
    mag = n * xs.mag
    if mag > (MAX_INT_MAG if xs.dtype in INTS else MAX_FLOAT_MAG):
        return
    attrs = {k: 1 for k in ("exclusive", "reverse") if b.chance(0.4)}
    lo, hi = min(n * xs.lo, xs.lo, 0.0), max(n * xs.hi, xs.hi, 0.0)
    err = 0.0 if xs.dtype in INTS else n * xs.err + ulps(mag, n)
    b.emit1("CumSum", [x, b.const(spelled, b.choice((np.int64, np.int32)))], Spec(xs.shape, xs.dtype, lo, hi, 0.0, err),
            **attrs)


@op_generator("trilu", weight=0.7, min_opset=14)
def gen_trilu(b: Builder) -> None:
    x = b.operand(lambda s: len(s.shape) >= 2, lambda: b.random_spec(b.shape(b.randint(2, 4)), b.choice(ANY_DTYPES)),
                  reuse=0.7)
    xs = b.specs[x]
    if len(xs.shape) < 2:
        return
    inputs = [x]
    if b.chance(0.6):
        inputs.append(b.const(b.randint(-3, 3)))
    attrs = {"upper": b.randint(0, 1)} if b.chance(0.7) else {}
    b.emit1("Trilu", inputs, Spec(xs.shape, xs.dtype, min(xs.lo, 0), max(xs.hi, 0), 0.0, xs.err), **attrs)


def _indices(b: Builder, shape, extent: int, unique_along: int | None = None) -> str:
    """int64/int32 indices in [-extent, extent - 1] of ``shape``: a constant or a graph input.

    With ``unique_along``, the indices along that axis are distinct (a scatter writes each position once).
    """
    dtype = b.choice((INT64, INT64, INT32))
    if unique_along is not None:
        moved_shape = list(shape)
        count = moved_shape.pop(unique_along)
        lines = [b.rng.permutation(extent)[:count] for _ in range(math.prod(moved_shape))]
        data = np.moveaxis(np.array(lines).reshape(*moved_shape, count), -1, unique_along)
        data = np.where(b.rng.random(data.shape) < 0.3, data - extent, data)
        return b.const(data, dtype)
    if b.chance(0.5):
        return b.const(b.rng.integers(-extent, extent, size=shape), dtype)
    return b.new_value(Spec(shape, dtype, -extent, extent - 1), weight=False)


@op_generator("gather_elements", weight=1.0)
def gen_gather_elements(b: Builder) -> None:
    data = b.operand(lambda s: len(s.shape) >= 1, lambda: b.random_spec(b.shape(b.randint(1, 3)), b.choice(ANY_DTYPES)),
                     reuse=0.7)
    ds = b.specs[data]
    if not ds.shape:
        return
    axis, spelled = _axis(b, len(ds.shape))
    shape = tuple(b.randint(1, 5) if a == axis else b.randint(1, d) for a, d in enumerate(ds.shape))
    indices = _indices(b, shape, ds.shape[axis])
    b.emit1("GatherElements", [data, indices], moved(ds, shape), axis=spelled)


@op_generator("gather_nd", weight=0.8)
def gen_gather_nd(b: Builder) -> None:
    data = b.operand(lambda s: len(s.shape) >= 1, lambda: b.random_spec(b.shape(b.randint(1, 3)), b.choice(ANY_DTYPES)),
                     reuse=0.7)
    ds = b.specs[data]
    rank = len(ds.shape)
    if rank == 0:
        return
    batch = 1 if rank >= 2 and b.chance(0.3) else 0
    depth = b.randint(1, rank - batch)
    outer = tuple(b.choice((1, 2, 3)) for _ in range(b.randint(0, 2)))
    idx_shape = ds.shape[:batch] + outer + (depth,)
    idx = np.stack([b.rng.integers(0, ds.shape[batch + j], size=ds.shape[:batch] + outer) for j in range(depth)], -1)
    indices = b.const(idx)
    shape = ds.shape[:batch] + outer + ds.shape[batch + depth:]
    attrs = {"batch_dims": batch} if batch or b.chance(0.2) else {}
    assert idx.shape == idx_shape
    b.emit1("GatherND", [data, indices], moved(ds, shape), **attrs)


@op_generator("onehot", weight=0.6)
def gen_onehot(b: Builder) -> None:
    depth = b.randint(1, 7)
    # int64 indices and depth: the type combinations onnxruntime implements for float and int64 values
    indices = b.operand(lambda s: s.dtype == INT64 and s.lo >= -depth and s.hi <= depth - 1 and 1 <= len(s.shape) <= 3,
                        lambda: Spec(b.shape(b.randint(1, 2), 64), INT64, -depth, depth - 1), reuse=0.3)
    shape = list(b.specs[indices].shape)
    axis = b.randint(-len(shape) - 1, len(shape))
    shape.insert(axis if axis >= 0 else len(shape) + 1 + axis, depth)
    dtype = b.choice((FLOAT, INT64))
    off, on = sorted(b.rng.integers(-3, 4, size=2).tolist())
    values = b.const([off, on], dtype)
    attrs = {"axis": axis} if axis != -1 or b.chance(0.3) else {}
    b.emit1("OneHot", [indices, b.const(depth), values], Spec(shape, dtype, off, on), **attrs)


@op_generator("reverse_sequence", weight=0.5)
def gen_reverse_sequence(b: Builder) -> None:
    x = b.operand(lambda s: len(s.shape) >= 2, lambda: b.random_spec(b.shape(b.randint(2, 4)), b.choice(ANY_DTYPES)),
                  reuse=0.7)
    xs = b.specs[x]
    if len(xs.shape) < 2:
        return
    batch_axis = b.randint(0, 1)
    time_axis = 1 - batch_axis
    lengths = b.rng.integers(1, xs.shape[time_axis] + 1, size=xs.shape[batch_axis])
    lens = b.const(lengths) if b.chance(0.6) else b.new_value(Spec((xs.shape[batch_axis],), INT64, 1,
                                                                  xs.shape[time_axis]), weight=False)
    b.emit1("ReverseSequence", [x, lens], moved(xs, xs.shape), batch_axis=batch_axis, time_axis=time_axis)


@op_generator("scatter", weight=1.0)
def gen_scatter(b: Builder) -> None:
    data = b.operand(lambda s: len(s.shape) >= 1 and s.dtype != BOOL,
                     lambda: b.random_spec(b.shape(b.randint(1, 3)), b.choice((FLOAT, FLOAT, INT64, INT32))), reuse=0.7)
    ds = b.specs[data]
    rank = len(ds.shape)
    if rank == 0:
        return
    reduction = b.choice(("none", "none", "add", "max", "min")) if b.opset >= 18 else "none"
    if b.chance(0.5):  # ScatterElements
        op = "ScatterElements"
        axis, spelled = _axis(b, rank)
        shape = tuple(b.randint(1, d) for d in ds.shape)
        indices = _indices(b, shape, ds.shape[axis], unique_along=axis if reduction == "none" else None)
        attrs = {"axis": spelled}
        upd_shape, count = shape, ds.shape[axis]
    else:
        op = "ScatterND"
        depth = b.randint(1, rank)
        outer = b.randint(1, min(4, math.prod(ds.shape[:depth])))
        flat = b.rng.choice(math.prod(ds.shape[:depth]), size=outer, replace=reduction != "none")
        idx = np.stack(np.unravel_index(flat, ds.shape[:depth]), -1)
        indices = b.const(idx)
        attrs = {}
        upd_shape, count = (outer,) + ds.shape[depth:], outer
    updates = b.new_value(b.random_spec(upd_shape, ds.dtype), weight=b.chance(0.3))
    us = b.specs[updates]
    if reduction != "none":
        attrs["reduction"] = reduction
    if reduction == "add":
        mag = ds.mag + count * us.mag
        lo, hi, err = -mag, mag, ds.err + count * us.err + ulps(mag, count + 1)
    else:
        lo, hi, err = min(ds.lo, us.lo), max(ds.hi, us.hi), max(ds.err, us.err)
    if ds.dtype in INTS:
        err = 0.0
    b.emit1(op, [data, indices, updates], Spec(ds.shape, ds.dtype, lo, hi, 0.0, err), **attrs)

