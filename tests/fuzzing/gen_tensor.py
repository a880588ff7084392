"""Generators of data-movement ops: Reshape, Flatten, Transpose, Slice, Concat, Gather, Expand, Pad,
Squeeze, Unsqueeze, Split, Tile. Their outputs keep the input's bounds and error bound."""
from __future__ import annotations

import math

import numpy as np

from .builder import MAX_SIZE, Builder, op_generator
from .case import BOOL, FLOAT, INT32, INT64, INTS, Spec

ANY_DTYPES = (FLOAT, FLOAT, FLOAT, INT32, INT64, BOOL)


def moved(spec: Spec, shape) -> Spec:
    return Spec(tuple(shape), spec.dtype, spec.lo, spec.hi, spec.away, spec.err)


def _source(b: Builder, pred=lambda s: True, rank: int | None = None) -> str:
    """Any value (of any dtype) satisfying ``pred``, or a new one."""
    def make():
        return b.random_spec(b.shape(rank) if rank is not None else b.shape(), b.choice(ANY_DTYPES))

    return b.operand(lambda s: pred(s) and (rank is None or len(s.shape) == rank), make, reuse=0.85)


def _axis_source(b: Builder) -> tuple | None:
    """(a value of rank 1 or more, its spec, its rank, a random axis of it); None where ``_source``
    made a scalar."""
    x = _source(b, lambda s: len(s.shape) >= 1)
    spec = b.specs[x]
    rank = len(spec.shape)
    if rank == 0:
        return None
    return x, spec, rank, b.randint(0, rank - 1)


def factorize(b: Builder, size: int, rank: int) -> list:
    """A random shape of ``rank`` with ``size`` elements."""
    dims = [1] * rank
    if rank == 0:
        return dims
    remaining = size
    p = 2
    factors = []
    while remaining > 1:
        while remaining % p == 0:
            factors.append(p)
            remaining //= p
        p += 1
    for f in factors:
        dims[b.randint(0, rank - 1)] *= f
    return dims


@op_generator("reshape", weight=2.0)
def gen_reshape(b: Builder) -> None:
    x = _source(b)
    xs = b.specs[x]
    rank = b.randint(1 if xs.size != 1 else 0, 5)
    target = factorize(b, xs.size, rank)
    literal = list(target)
    if literal and b.chance(0.3):
        literal[b.randint(0, rank - 1)] = -1
    for axis in range(min(rank, len(xs.shape))):  # 0 copies the input's extent
        if literal[axis] == xs.shape[axis] and b.chance(0.3):
            literal[axis] = 0
    if literal.count(-1) and 0 in target:
        return
    b.emit1("Reshape", [x, b.const(literal)], moved(xs, target))


@op_generator("flatten", weight=0.5)
def gen_flatten(b: Builder) -> None:
    x = _source(b)
    xs = b.specs[x]
    rank = len(xs.shape)
    axis = b.randint(-rank, rank)
    outer = math.prod(xs.shape[:axis + rank if axis < 0 else axis])
    b.emit1("Flatten", [x], moved(xs, (outer, xs.size // outer)), axis=axis)


@op_generator("transpose", weight=2.0)
def gen_transpose(b: Builder) -> None:
    x = _source(b, lambda s: len(s.shape) >= 2)
    xs = b.specs[x]
    if len(xs.shape) < 2:
        return
    if b.chance(0.15):
        b.emit1("Transpose", [x], moved(xs, xs.shape[::-1]))
        return
    perm = [int(p) for p in b.rng.permutation(len(xs.shape))]
    b.emit1("Transpose", [x], moved(xs, [xs.shape[p] for p in perm]), perm=perm)


def slice_length(extent: int, start: int, end: int, step: int) -> int:
    """Elements that ONNX Slice takes along one axis."""
    start = start + extent if start < 0 else start
    end = end + extent if end < 0 else end
    if step > 0:
        start, end = min(max(start, 0), extent), min(max(end, 0), extent)
        return max(0, -(-(end - start) // step))
    start, end = min(max(start, 0), extent - 1), min(max(end, -1), extent - 1)
    return max(0, -(-(start - end) // -step))


def _slice_bound(b: Builder, extent: int) -> int:
    return b.choice((b.randint(-extent, extent), b.randint(0, extent), 2 ** 62, -(2 ** 62), -extent - 3))


@op_generator("slice", weight=2.5)
def gen_slice(b: Builder) -> None:
    x = _source(b, lambda s: len(s.shape) >= 1 and s.size > 1)
    xs = b.specs[x]
    rank = len(xs.shape)
    if rank == 0:
        return
    axes = sorted(int(a) for a in b.rng.choice(rank, size=b.randint(1, rank), replace=False))
    starts, ends, steps, shape = [], [], [], list(xs.shape)
    for axis in axes:
        extent = xs.shape[axis]
        for _ in range(20):
            step = b.choice((1, 1, 1, 2, 3, -1, -1, -2))
            start, end = _slice_bound(b, extent), _slice_bound(b, extent)
            count = slice_length(extent, start, end, step)
            if count > 0:
                break
        else:
            return
        starts.append(start)
        ends.append(end)
        steps.append(step)
        shape[axis] = count
    index_dtype = b.choice((np.int64, np.int64, np.int32))
    if index_dtype == np.int32:
        starts = [max(min(s, 2 ** 31 - 1), -2 ** 31) for s in starts]
        ends = [max(min(e, 2 ** 31 - 1), -2 ** 31) for e in ends]
    inputs = [x, b.const(starts, index_dtype), b.const(ends, index_dtype)]
    if b.chance(0.8) or any(s != 1 for s in steps) or axes != list(range(len(axes))):
        inputs.append(b.const([a - rank if b.chance(0.3) else a for a in axes], index_dtype))
        if b.chance(0.7) or any(s != 1 for s in steps):
            inputs.append(b.const(steps, index_dtype))
    b.emit1("Slice", inputs, moved(xs, shape))


def _match(b: Builder, shape: tuple, axis: int, dtype: str) -> str:
    """A value of ``shape`` except along ``axis``."""
    def fits(s):
        return (s.dtype == dtype and len(s.shape) == len(shape)
                and all(d == e for i, (d, e) in enumerate(zip(s.shape, shape)) if i != axis))

    def make():
        new = list(shape)
        new[axis] = b.choice((1, 2, 3, 5))
        return b.random_spec(new, dtype)

    return b.operand(fits, make, reuse=0.4)


@op_generator("concat", weight=2.0)
def gen_concat(b: Builder) -> None:
    found = _axis_source(b)
    if found is None:
        return
    x, xs, rank, axis = found
    parts = [x] + [_match(b, xs.shape, axis, xs.dtype) for _ in range(b.randint(1, 3))]
    b.rng.shuffle(parts)
    specs = [b.specs[p] for p in parts]
    shape = list(xs.shape)
    shape[axis] = sum(s.shape[axis] for s in specs)
    if math.prod(shape) > MAX_SIZE:
        return
    spec = Spec(shape, xs.dtype, min(s.lo for s in specs), max(s.hi for s in specs), min(s.away for s in specs),
                max(s.err for s in specs))
    b.emit1("Concat", parts, spec, axis=axis - rank if b.chance(0.3) else axis)


@op_generator("gather", weight=1.5)
def gen_gather(b: Builder) -> None:
    found = _axis_source(b)
    if found is None:
        return
    data, ds, rank, axis = found
    extent = ds.shape[axis]
    index_shape = b.shape(b.choice((0, 1, 1, 2)), max_size=16)
    index_dtype = b.choice((INT64, INT64, INT32))

    def fits(s):
        return s.dtype in INTS and s.lo >= -extent and s.hi <= extent - 1 and len(s.shape) <= 2

    which = b.rng.random()
    if which < 0.4:
        indices = b.const(b.rng.integers(-extent, extent, size=index_shape), index_dtype)
        index_shape = b.consts[indices].shape
    else:
        indices = b.operand(fits, lambda: Spec(index_shape, index_dtype, -extent, extent - 1), reuse=0.3)
        index_shape = b.specs[indices].shape
    shape = ds.shape[:axis] + tuple(index_shape) + ds.shape[axis + 1:]
    if math.prod(shape) > MAX_SIZE:
        return
    b.emit1("Gather", [data, indices], moved(ds, shape), axis=axis - rank if b.chance(0.3) else axis)


@op_generator("expand", weight=1.0)
def gen_expand(b: Builder) -> None:
    x = _source(b)
    xs = b.specs[x]
    target = [b.choice((2, 3, 4)) if d == 1 and b.chance(0.6) else (1 if b.chance(0.2) else d) for d in xs.shape]
    for _ in range(b.randint(0, 2) if len(target) < 4 else 0):
        target.insert(0, b.choice((1, 2, 3)))
    shape = np.broadcast_shapes(xs.shape, tuple(target))
    if math.prod(shape) > MAX_SIZE:
        return
    b.emit1("Expand", [x, b.const(target)], moved(xs, shape))


@op_generator("pad", weight=1.5)
def gen_pad(b: Builder) -> None:
    x = _source(b, lambda s: len(s.shape) >= 1)
    xs = b.specs[x]
    rank = len(xs.shape)
    if rank == 0:
        return
    mode = b.choice(("constant", "constant", "edge", "reflect"))
    pads = []
    for side in range(2):
        for axis in range(rank):
            extent = xs.shape[axis]
            if mode == "reflect":
                pads.append(b.randint(0, min(2, extent - 1)))
            elif mode == "edge":
                pads.append(b.randint(0, 2))
            else:
                pads.append(b.randint(-1 if extent > 2 else 0, 2) if b.chance(0.6) else 0)
    shape = [xs.shape[a] + pads[a] + pads[a + rank] for a in range(rank)]
    if math.prod(shape) > MAX_SIZE or min(shape) < 1:
        return
    lo, hi, away = xs.lo, xs.hi, xs.away
    inputs = [x]
    if mode == "constant" and b.chance(0.5) and xs.dtype != BOOL:
        value = float(np.asarray(b.rng.uniform(xs.lo, xs.hi)).astype(xs.dtype))
        inputs += [None, b.const(value, xs.dtype)]
        lo, hi, away = min(lo, value), max(hi, value), min(away, abs(value))
    elif mode == "constant":
        lo, hi, away = min(lo, 0), max(hi, 0), 0.0
    if b.opset >= 18 and b.chance(0.3):  # only some axes, given by the axes input
        axes = sorted(int(a) for a in b.rng.choice(rank, size=b.randint(1, rank), replace=False))
        pads_in = [pads[a] for a in axes] + [pads[a + rank] for a in axes]
        shape = [xs.shape[a] + (pads[a] + pads[a + rank] if a in axes else 0) for a in range(rank)]
        inputs[1:2] = [b.const(pads_in)]
        while len(inputs) < 3:
            inputs.append(None)
        inputs.append(b.const([a - rank if b.chance(0.3) else a for a in axes]))
    else:
        inputs[1:2] = [b.const(pads)]
    inputs = ["" if i is None else i for i in inputs]
    b.emit1("Pad", inputs, Spec(shape, xs.dtype, lo, hi, away, xs.err), mode=mode)


@op_generator("squeeze", weight=1.0)
def gen_squeeze(b: Builder) -> None:
    x = _source(b, lambda s: 1 in s.shape)
    xs = b.specs[x]
    ones = [a for a, d in enumerate(xs.shape) if d == 1]
    if not ones:
        return
    rank = len(xs.shape)
    if b.chance(0.25):
        b.emit1("Squeeze", [x], moved(xs, [d for d in xs.shape if d != 1]))
        return
    axes = sorted(int(a) for a in b.rng.choice(ones, size=b.randint(1, len(ones)), replace=False))
    shape = [d for a, d in enumerate(xs.shape) if a not in axes]
    b.emit1("Squeeze", [x, b.const([a - rank if b.chance(0.3) else a for a in axes])], moved(xs, shape))


@op_generator("unsqueeze", weight=1.0)
def gen_unsqueeze(b: Builder) -> None:
    x = _source(b, lambda s: len(s.shape) <= 4)
    xs = b.specs[x]
    out_rank = len(xs.shape) + b.randint(1, 2)
    axes = sorted(int(a) for a in b.rng.choice(out_rank, size=out_rank - len(xs.shape), replace=False))
    shape, rest = [], iter(xs.shape)
    for a in range(out_rank):
        shape.append(1 if a in axes else next(rest))
    b.emit1("Unsqueeze", [x, b.const([a - out_rank if b.chance(0.3) else a for a in axes])], moved(xs, shape))


@op_generator("split", weight=1.0)
def gen_split(b: Builder) -> None:
    x = _source(b, lambda s: len(s.shape) >= 1 and max(s.shape) > 1)
    xs = b.specs[x]
    splittable = [a for a, d in enumerate(xs.shape) if d > 1]
    if not splittable:
        return
    axis = b.choice(splittable)
    extent = xs.shape[axis]
    rank = len(xs.shape)
    attrs = {"axis": axis - rank if b.chance(0.3) else axis}
    inputs = [x]
    divisors = [k for k in range(2, min(extent, 4) + 1) if extent % k == 0]
    if divisors and b.opset < 18 and b.chance(0.3):  # equal parts
        count = b.choice(divisors)
        sizes = [extent // count] * count
    elif b.opset >= 18 and b.chance(0.3):
        count = b.randint(2, min(extent, 4))
        chunk = -(-extent // count)
        sizes = [min(chunk, extent - i * chunk) for i in range(count)]
        if min(sizes) < 1:
            return
        attrs["num_outputs"] = count
    else:
        cuts = sorted(int(c) for c in b.rng.choice(np.arange(1, extent), size=b.randint(1, min(3, extent - 1)),
                                                  replace=False))
        bounds = [0] + cuts + [extent]
        sizes = [bounds[i + 1] - bounds[i] for i in range(len(bounds) - 1)]
        inputs.append(b.const(sizes))
    specs = []
    for size in sizes:
        shape = list(xs.shape)
        shape[axis] = size
        specs.append(moved(xs, shape))
    b.emit("Split", inputs, specs, **attrs)


@op_generator("tile", weight=0.7)
def gen_tile(b: Builder) -> None:
    x = _source(b, lambda s: len(s.shape) >= 1)
    xs = b.specs[x]
    if not xs.shape:
        return
    repeats = [b.choice((1, 1, 2, 3)) for _ in xs.shape]
    shape = [d * r for d, r in zip(xs.shape, repeats)]
    if math.prod(shape) > MAX_SIZE:
        return
    b.emit1("Tile", [x, b.const(repeats)], moved(xs, shape))
