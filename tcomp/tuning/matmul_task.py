"""The tuning task of a MatMul group (ONNX MatMul, Gemm, batched MatMul with numpy batch
broadcasting) over float operands: the prologue views inlined in the operand loads, the
epilogue as a second block::

    C[b.., i, j] = sum_k A_view[b.., i, k] * B_view[b.., k, j]     (unit axes left out)
    out[b.., i, j] = epilogue(C[b.., i, j], (b.., i, j))

The GPU form (``matmul_gpu``) stages operands read through prologues and accumulates 16-bit
products in fp32.
"""
from __future__ import annotations

from ..graph.fusion import FusedGroup
from ..tir import te
from ..tir.expr import Cast, IntImm, Load, Var, cast, dtype_bits, is_float
from ..tir.views import broadcast_index
from .rules.blocks import OPERAND_STAGE


def matmul(group: FusedGroup, params: list, views: dict, layouts: dict, epilogue, gpu: bool = False):
    """The ``out`` tensor of the matmul task, or None where the matmul is not a task; ``gpu``: the GPU
    form (``matmul_gpu``)."""
    a, b = (views[v.uid] for v in group.anchor.inputs)
    if a.dtype != b.dtype or not is_float(a.dtype) or a.ndim < 2 or b.ndim < 2:
        return None
    (a_fn, dtype), (b_fn, b_dtype) = (narrowed(a), narrowed(b)) if gpu else ((a.fn, a.dtype), (b.fn, b.dtype))
    if b_dtype != dtype:
        (a_fn, dtype), (b_fn, b_dtype) = (a.fn, a.dtype), (b.fn, b.dtype)
    if gpu:
        a_fn, b_fn = operand(a_fn, a.shape, "A"), operand(b_fn, b.shape, "B")
    wide = gpu and dtype_bits(dtype) == 16
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
        lhs = a_fn(*broadcast_index(batch, a.shape[:-2], batch_shape), i, k)
        rhs = b_fn(*broadcast_index(batch, b.shape[:-2], batch_shape), k, j)
        return te.sum(cast("float32", lhs) * cast("float32", rhs) if wide else lhs * rhs, axis=k)

    c = te.compute([out_shape[axis] for axis in kept], c_fn, name="C")

    def value_at(*idx):
        return cast(group.anchor.outputs[0].dtype, c[tuple(idx[axis] for axis in kept)])

    return epilogue(value_at)


def matmul_gpu(group: FusedGroup, params: list, views: dict, layouts: dict, epilogue):
    """The GPU form: an operand read through a prologue (a transpose, a scale, a reshape) is an
    operand stage, which the GPU sketches compute once per element in the shared-memory copy of its
    tile, in the type it is stored in (a float16 model's widening casts peeled, ``narrowed``), so that
    tensor cores see 16-bit tiles; 16-bit products accumulate in fp32 (``C = sum f32(A) * f32(B)``)."""
    return matmul(group, params, views, layouts, epilogue, gpu=True)


def narrowed(view) -> tuple:
    """(element function, dtype) of ``view`` without a widening cast of 16-bit floats (a float16
    matmul or conv is imported as casts to float32 around a float32 one: its operands as stored)."""
    probe = view.fn(*(Var(f"i{axis}") for axis in range(len(view.shape))))
    if isinstance(probe, Cast) and is_float(probe.dtype) and dtype_bits(probe.value.dtype) == 16:
        return (lambda *idx: view.fn(*idx).value), probe.value.dtype
    return view.fn, view.dtype


def operand(fn, shape, name: str):
    """``fn`` where it loads a buffer at its indices, else an operand stage of ``fn`` (``name``)."""
    variables = [Var(f"i{axis}") for axis in range(len(shape))]
    probe = fn(*variables)
    if isinstance(probe, Load) and probe.predicate is None and len(probe.indices) == len(variables) and all(
            index is var for index, var in zip(probe.indices, variables)):
        return fn
    stage = te.compute(shape, fn, name=f"{name}_stage", annotations={OPERAND_STAGE: True})
    return lambda *idx: stage[tuple(idx)]
