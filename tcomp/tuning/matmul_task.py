"""The tuning task of a MatMul group (ONNX MatMul, Gemm, batched MatMul with numpy batch
broadcasting) over float operands: the prologue views inlined in the operand loads, the
epilogue as a second block::

    C[b.., i, j] = sum_k A_view[b.., i, k] * B_view[b.., k, j]     (unit axes left out)
    out[b.., i, j] = epilogue(C[b.., i, j], (b.., i, j))
"""
from __future__ import annotations

from ..graph.fusion import FusedGroup
from ..tir import te
from ..tir.expr import IntImm, is_float
from ..tir.views import broadcast_index


def matmul(group: FusedGroup, params: list, views: dict, layouts: dict, epilogue):
    """The ``out`` tensor of the matmul task, or None where the matmul is not a task."""
    a, b = (views[v.uid] for v in group.anchor.inputs)
    if a.dtype != b.dtype or not is_float(a.dtype) or a.ndim < 2 or b.ndim < 2:
        return None
    out_shape = group.anchor.outputs[0].shape
    batch_shape = tuple(out_shape[:-2])
    k = te.reduce_axis(a.shape[-1], name="k")

    # C leaves out the unit axes of the output (a batch of one): plain loop nests for the tuner
    kept = [axis for axis, extent in enumerate(out_shape) if extent != 1] or [len(out_shape) - 1]

    def full_index(c_idx):
        idx = [IntImm(0)] * len(out_shape)
        for axis, index in zip(kept, c_idx):
            idx[axis] = index
        return idx

    def c_fn(*c_idx):
        *batch, i, j = full_index(c_idx)
        lhs = a.fn(*broadcast_index(batch, a.shape[:-2], batch_shape), i, k)
        rhs = b.fn(*broadcast_index(batch, b.shape[:-2], batch_shape), k, j)
        return te.sum(lhs * rhs, axis=k)

    c = te.compute([out_shape[axis] for axis in kept], c_fn, name="C")
    return epilogue(lambda *idx: c[tuple(idx[axis] for axis in kept)])
