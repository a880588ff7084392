"""The GPU form of a convolution task: an implicit GEMM (2-D Conv, group 1, constant weights).

The output channels are the rows of a matrix product, the output pixels of the whole batch its
columns, the (input channel, kernel row, kernel column) taps its reduction::

    col[kk, m] = x[n, c, oh*SH + r*DH - PT, ow*SW + s*DW - PL] inside the image, else 0
                 (kk = (c, r, s), m = (n, oh, ow) row-major; an operand stage, never materialized)
    C[k, m] = sum_kk f32(w[k, kk]) * f32(col[kk, m])          (w: the weights [K, C, R, S] as [K, C*R*S])
    out[n, k, oh, ow] = epilogue(C[k, m] + bias[k], (n, k, oh, ow))  for m = (n*OH + oh)*OW + ow

``out`` iterates over C's (k, m) and stores at (n, k, oh, ow) (``te.compute``'s ``store``), so that
the tiling rules fold it into C's write-back like any elementwise epilogue (P = 1).

``col`` is annotated as an operand stage (``rules/blocks.py``): the design space keeps it a block
and the GPU sketches inline it into the shared-memory copy of its tile (``inline_operand_stage``), so each thread block gathers its im2col tile straight from ``x``. One
matrix product for every kernel size and stride: the shared-memory tiling covers 1x1 convs (then
``col`` is ``x`` itself, read along its pixels) and 7x7 stems alike, and the pixels of all images
fill tiles together (a 7x7 map alone would leave most of a 128-wide tile idle).

16-bit operands (fp16, bf16; a float16 model's conv reads them through casts to float32, which are
peeled: ``matmul_task.narrowed``) are multiplied and accumulated in fp32 (what the tensor-core sketches
take), the bias added in fp32, the sum given to the epilogue in the conv's own type. The columns are
padded to a multiple of ``PAD_COLUMNS`` and the reduction to a multiple of ``PAD_DEPTH`` (``col`` and
the weights' stage ``w_pad`` read 0 there), so that tiles divide them: tensor-core fragments have no
tails, and SIMT tiles no predicate in their multiply-adds; ``out`` stores no padded column.
"""
from __future__ import annotations

from ..graph.fusion import FusedGroup
from ..schedule.conv import conv_shape
from ..schedule.lower import kernel_inputs
from ..schedule.window import guarded_load
from ..tir import te
from ..tir.expr import (
    Buffer,
    Cmp,
    IntImm,
    Load,
    Select,
    Var,
    cast,
    const,
    dtype_bits,
    logical_and,
    minimum,
    substitute,
)
from ..targets.gpu import tiles
from .matmul_task import narrowed
from .rules.blocks import OPERAND_STAGE

PAD_COLUMNS = 128
PAD_DEPTH = 16


def conv(group: FusedGroup, params: list, views: dict, layouts: dict, epilogue):
    """The ``out`` tensor of the implicit-GEMM convolution, or None where the convolution is not
    such a task (grouped, not 2-D, integer, or weights computed at run time)."""
    node = group.anchor
    x, w = views[node.inputs[0].uid], views[node.inputs[1].uid]
    bias = views[node.inputs[2].uid] if len(node.inputs) > 2 and node.inputs[2] is not None else None
    shape = conv_shape(node, x, w)
    if shape is None:
        return None
    (x_fn, dtype), (w_fn, w_dtype) = narrowed(x), narrowed(w)
    if dtype != w_dtype:
        return None
    weight = _weight_matrix(group, params, w, w_fn)
    if weight is None:
        return None
    N, C, H, W, K, R, S, OH, OW, SH, SW, DH, DW, PT, PL = shape
    depth, columns = C * R * S, N * OH * OW
    wide = dtype_bits(dtype) == 16
    padded_depth, padded_columns = _round_up(depth, PAD_DEPTH), _round_up(columns, PAD_COLUMNS)
    parts = tiles.reduction_splits(K, padded_columns, depth)  # split, depth is a multiple of 64 parts
    zero = const(0, dtype)

    def col_fn(kk, m):
        c, r, s = _unflatten(kk, (C, R, S))
        n, oh, ow = _unflatten(m, (N, OH, OW))
        value = guarded_load(x_fn, (n, c), oh * SH + r * DH - PT, ow * SW + s * DW - PL, H, W, zero)
        inside = _inside((kk, depth, padded_depth), (m, columns, padded_columns))
        return value if inside is None else Select(inside, _clamped(value, kk, depth, m, columns), zero)

    col = te.compute((padded_depth, padded_columns), col_fn, name="col", annotations={OPERAND_STAGE: True})
    if padded_depth != depth:
        matrix = weight
        weight = te.compute((K, padded_depth), lambda k, kk: Select(
            Cmp("lt", kk, IntImm(depth)), matrix[k, minimum(kk, IntImm(depth - 1))], zero),
            name="w_pad", annotations={OPERAND_STAGE: True})
    part = padded_depth // parts
    red = te.reduce_axis(part, "kk")

    def product(k, m, p=None):
        kk = red if p is None else p * part + red
        a, b = weight[k, kk], col[kk, m]
        return te.sum(cast("float32", a) * cast("float32", b) if wide else a * b, axis=red)

    if parts == 1:
        acc = te.compute((K, padded_columns), lambda k, m: product(k, m), name="C")
    else:
        acc = te.compute((parts, K, padded_columns), lambda p, k, m: product(k, m, p), name="C")
    partial = (lambda p, k, m: acc[k, m]) if parts == 1 else (lambda p, k, m: acc[p, k, m])

    pixel = Var("m")  # the epilogue reads C at the column it is iterated at (below)

    def value_at(n, k, oh, ow):  # in the conv's own type (float32 where the model widened 16-bit inputs)
        value = partial(0, k, pixel)
        for p in range(1, parts):
            value = value + partial(p, k, pixel)
        if bias is not None:
            value = value + cast(value.dtype, bias.fn(k))
        return cast(node.outputs[0].dtype, value)

    nchw = epilogue(value_at)  # over (n, k, oh, ow): its expression, iterated as C is below
    if nchw is None:
        return None

    def at(k, m):
        n, oh, ow = _unflatten(m, (N, OH, OW))
        return n, k, oh, ow

    def element(k, m):
        return substitute(nchw.op.body, {**dict(zip(nchw.op.axes, at(k, m))), pixel: m})

    where = (lambda k, m: Cmp("lt", m, IntImm(columns))) if padded_columns != columns else None
    return te.compute((K, padded_columns), element, name="out", store=(nchw.shape, at), where=where)


def _weight_matrix(group: FusedGroup, params: list, w, w_fn):
    """The constant weights parameter, re-declared as the [K, C*R*S] matrix of the same bytes
    (``params`` updated), or None where the weights (``w_fn``: their element function) are not a
    constant read as they are."""
    probe_vars = [Var(name) for name in "kcrs"]
    probe = w_fn(*probe_vars)
    direct = isinstance(probe, Load) and probe.predicate is None and len(probe.indices) == 4 and all(
        i is var for i, var in zip(probe.indices, probe_vars))
    index = next((i for i, p in enumerate(params) if direct and probe.buffer is p), None)
    if index is None or not kernel_inputs(group)[index].is_const:
        return None
    K, C, R, S = (int(d) for d in w.shape)
    params[index] = Buffer(params[index].name, (K, C * R * S), params[index].dtype)
    return params[index]


def _unflatten(flat, extents: tuple) -> list:
    """Row-major indices of ``flat`` over ``extents`` (axes of extent 1 are 0, the first unbounded)."""
    indices, stride = [], 1
    for position, extent in reversed(list(enumerate(extents))):
        if extent == 1:
            indices.append(IntImm(0))
            continue
        index = flat if stride == 1 else flat // stride
        indices.append(index if position == 0 else index % extent)
        stride *= extent
    return list(reversed(indices))


def _inside(*axes) -> object:
    """``index < extent`` for each (index, extent, padded extent) that is padded, joined; None if none is."""
    conds = [Cmp("lt", index, IntImm(extent)) for index, extent, padded in axes if padded != extent]
    return logical_and(*conds) if conds else None


def _clamped(value, kk, depth: int, m, columns: int):
    """``value`` with ``kk`` and ``m`` clamped into the unpadded extents (padded lanes read in bounds)."""
    mapping = {}
    if isinstance(kk, Var):
        mapping[kk] = minimum(kk, IntImm(depth - 1))
    if isinstance(m, Var):
        mapping[m] = minimum(m, IntImm(columns - 1))
    return substitute(value, mapping)


def _round_up(value: int, multiple: int) -> int:
    return -(-value // multiple) * multiple
