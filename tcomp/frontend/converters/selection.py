"""Converters of ops whose output extents depend on input values: Compress, NonZero, Unique,
NonMaxSuppression.

tcomp compiles static shapes. Compress is a Gather once its condition is known at
compile time (a constant, or a graph input the model is specialized on); the
others need the values of their data inputs, so they compile only when those
are constant (then the importer folds them) and are refused otherwise, naming
the operand (``NotConstantError``: the backend may specialize on it).
"""
from __future__ import annotations

import numpy as np

from .common import ConvertError, NotConstantError, const_input, converter, normalize_axis, reshape_to


@converter("Compress")
def _compress(ctx, inputs, attrs):
    x, condition = inputs
    condition = np.asarray(const_input(condition, "Compress's condition (it decides the output's extent)"))
    if condition.ndim != 1:
        raise ConvertError(f"the condition must be 1-D, got shape {list(condition.shape)}")
    if "axis" in attrs:
        axis = normalize_axis(attrs["axis"], len(x.shape))
    else:
        x, axis = reshape_to(ctx, x, (x.type.size,)), 0
    if condition.size > x.shape[axis]:
        raise ConvertError(f"a condition of {condition.size} values for an axis of extent {x.shape[axis]}")
    picked = np.nonzero(condition)[0].astype(np.int64)
    if picked.size == 0:
        raise ConvertError("the condition selects nothing (empty outputs are not supported)")
    return [ctx.emit1("Gather", [x, ctx.const(picked, "compress_indices")], {"axis": axis})]


@converter("NonZero", "Unique")
def _value_shaped(ctx, inputs, attrs):
    raise NotConstantError(inputs[0], f"{ctx.onnx_node.op_type}'s input (the output's extent depends on its values)")


@converter("NonMaxSuppression")
def _nms(ctx, inputs, attrs):
    computed = next(v for v in inputs if v is not None and not v.is_const)  # all constant: folded before
    raise NotConstantError(computed, "NonMaxSuppression's inputs (the output's extent depends on their values)")
