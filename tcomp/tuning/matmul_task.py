"""The tuning task of a MatMul group (ONNX MatMul, Gemm, batched MatMul with numpy batch
broadcasting) over float operands: the prologue views inlined in the operand loads, the
epilogue as a second block::

    C[b.., i, j] = sum_k A_view[b.., i, k] * B_view[b.., k, j]     (unit axes left out)
    out[b.., i, j] = epilogue(C[b.., i, j], (b.., i, j))

On GPUs (``matmul_wide``) 16-bit operands are widened: ``C = sum f32(A) * f32(B)``, rounded back
before the epilogue.
"""
from __future__ import annotations

from ..graph.fusion import FusedGroup
from ..tir import te
from ..tir.expr import IntImm, cast, dtype_bits, is_float
from ..tir.views import broadcast_index


def matmul(group: FusedGroup, params: list, views: dict, layouts: dict, epilogue, wide: bool = False):
    """The ``out`` tensor of the matmul task, or None where the matmul is not a task. ``wide``:
    16-bit float operands are multiplied and summed in fp32 and the sum rounded back
    (``C = sum f32(A) * f32(B)``: what tensor cores compute)."""
    a, b = (views[v.uid] for v in group.anchor.inputs)
    if a.dtype != b.dtype or not is_float(a.dtype) or a.ndim < 2 or b.ndim < 2:
        return None
    wide = wide and dtype_bits(a.dtype) == 16
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
        return te.sum(cast("float32", lhs) * cast("float32", rhs) if wide else lhs * rhs, axis=k)

    c = te.compute([out_shape[axis] for axis in kept], c_fn, name="C")

    def value_at(*idx):
        value = c[tuple(idx[axis] for axis in kept)]
        return cast(a.dtype, value) if wide else value

    return epilogue(value_at)


def matmul_wide(group: FusedGroup, params: list, views: dict, layouts: dict, epilogue):
    """``matmul`` with 16-bit products accumulated in fp32 (the GPU form)."""
    return matmul(group, params, views, layouts, epilogue, wide=True)
