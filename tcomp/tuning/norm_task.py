"""The tuning tasks of row-normalizing groups: Softmax / LogSoftmax and LayerNormalization over
the trailing axes from ``axis``, as the templates of ``schedule/rows.py`` compute them::

    Softmax:    M[r..] = max_j x[r.., j..];  S[r..] = sum_j exp(x[r.., j..] - M[r..])
                out[r.., j..] = epilogue(exp(x - M[r..]) / S[r..])          (LogSoftmax: x - M - log(S))
    LayerNorm:  S1[r..] = sum_j x;  mean = S1 * 1/L;  S2[r..] = sum_j (x - mean)^2
                out[r.., j..] = epilogue((x - mean) * rsqrt(S2 * 1/L + eps) * scale[j..] + bias[j..])

The row statistics are blocks over the row axes without their unit axes (``RowAxes``); the
softmax computes in float32 (float64 for float64 input) and casts its result back, as the
template does; layer normalization is a task for float32 input only (its template's type).
"""
from __future__ import annotations

from ..graph.fusion import FusedGroup
from ..schedule.rows import reciprocal
from ..tir import te
from ..tir.expr import call, cast, is_float
from ..tir.views import broadcast_index
from .reduce_task import RowAxes


def softmax(group: FusedGroup, params: list, views: dict, layouts: dict, epilogue):
    """The ``out`` tensor of a Softmax / LogSoftmax task, or None where it is not a task."""
    node = group.anchor
    x = views[node.inputs[0].uid]
    if not is_float(x.dtype):
        return None
    axis = node.attrs["axis"]
    acc = "float64" if x.dtype == "float64" else "float32"
    ax = RowAxes(x.shape, range(axis, x.ndim))

    def load(idx):
        return cast(acc, x.fn(*idx))

    k0, k1 = ax.reduce_axes("k"), ax.reduce_axes("j")
    m = ax.row_compute(lambda r: te.max(load(ax.index(r, k0)), axis=k0), "M")
    s = ax.row_compute(lambda r: te.sum(call("exp", load(ax.index(r, k1)) - m[r]), axis=k1), "S")

    def value_at(*idx):
        r = ax.row(idx)
        if node.op == "LogSoftmax":
            value = load(idx) - m[r] - call("log", s[r])
        else:
            value = call("exp", load(idx) - m[r]) / s[r]
        return cast(x.dtype, value)

    return epilogue(value_at)


def layer_norm(group: FusedGroup, params: list, views: dict, layouts: dict, epilogue):
    """The ``out`` tensor of a LayerNormalization task, or None where it is not a task."""
    node = group.anchor
    x = views[node.inputs[0].uid]
    if x.dtype not in ("float32", "float16", "bfloat16"):  # 16-bit floats are normalized in float32
        return None
    inputs = list(node.inputs) + [None, None]
    scale, bias = (views[v.uid] if v is not None else None for v in inputs[1:3])
    axis = node.attrs["axis"]
    norm_shape = x.shape[axis:]
    ax = RowAxes(x.shape, range(axis, x.ndim))
    inv_length = reciprocal(ax.length, "float32")

    k0, k1 = ax.reduce_axes("k"), ax.reduce_axes("j")

    def load(idx):
        return cast("float32", x.fn(*idx))

    total = ax.row_compute(lambda r: te.sum(load(ax.index(r, k0)), axis=k0), "S1")

    def centered(idx, r):
        return load(idx) - total[r] * inv_length

    squares = ax.row_compute(lambda r: te.sum(centered(ax.index(r, k1), r) * centered(ax.index(r, k1), r),
                                              axis=k1), "S2")

    def param(view, idx):
        return cast("float32", view.fn(*broadcast_index(idx[axis:], view.shape, norm_shape)))

    def value_at(*idx):
        r = ax.row(idx)
        value = centered(idx, r) * call("rsqrt", squares[r] * inv_length + node.attrs["epsilon"])
        if scale is not None:
            value = value * param(scale, idx)
        if bias is not None:
            value = value + param(bias, idx)
        return cast(x.dtype, value)

    return epilogue(value_at)
