"""Converters of the loss ops: NegativeLogLikelihoodLoss and SoftmaxCrossEntropyLoss.

Both decompose into graph ops. For input (N, C, d1, ..., dk) and target (N, d1, ..., dk)::

    loss[n, d] = -input[n, target[n, d], d] * weight[target[n, d]]    (0 where target == ignore_index)

a GatherElements over the class axis (its index is clamped, so an out-of-range
ignore_index reads a valid element that the Where then drops). ``mean`` divides the
sum of the losses by the sum of the weights that apply. SoftmaxCrossEntropyLoss is
the same over LogSoftmax(input, axis=1), which is also its optional second output.
"""
from __future__ import annotations

import numpy as np

from ...graph.ir import numpy_dtype
from .common import ConvertError, converter, reshape_to


def _scalar(ctx, value, dtype):
    return ctx.const(np.array(value, dtype=numpy_dtype(dtype)))


def _reduce_all(ctx, op, x):
    return ctx.emit1(op, [x], {"axes": list(range(len(x.shape))), "keepdims": 0})


def _nll(ctx, x, target, weight, attrs):
    """The NegativeLogLikelihoodLoss of log-probabilities ``x`` (N, C, d...) at ``target`` (N, d...)."""
    reduction = attrs.get("reduction", "mean")
    if reduction not in ("none", "sum", "mean"):
        raise ConvertError(f"reduction '{reduction}' is not one of none, sum, mean")
    if len(x.shape) < 2:
        raise ConvertError(f"input must have a class axis: rank {len(x.shape)}")
    if target.dtype not in ("int32", "int64"):
        raise ConvertError(f"target of type {target.dtype}; int32 or int64 expected")
    expected = (x.shape[0],) + tuple(x.shape[2:])
    if tuple(target.shape) != expected:
        raise ConvertError(f"target shape {list(target.shape)} does not match input {list(x.shape)} "
                           f"(expected {list(expected)})")
    dtype = x.dtype
    index = reshape_to(ctx, target, (x.shape[0], 1) + tuple(x.shape[2:]))
    picked = reshape_to(ctx, ctx.emit1("GatherElements", [x, index], {"axis": 1}), target.shape)
    loss = ctx.emit1("Neg", [picked])
    w = None
    if weight is not None:
        if tuple(weight.shape) != (x.shape[1],):
            raise ConvertError(f"weight shape {list(weight.shape)}; [{x.shape[1]}] (one per class) expected")
        w = ctx.emit1("Gather", [weight, target], {"axis": 0})
    if "ignore_index" in attrs:
        ignored = ctx.emit1("Equal", [target, _scalar(ctx, attrs["ignore_index"], target.dtype)])
        w = ctx.emit1("Where", [ignored, _scalar(ctx, 0, dtype), w if w is not None else _scalar(ctx, 1, dtype)])
        loss = ctx.emit1("Where", [ignored, _scalar(ctx, 0, dtype), loss])
    if w is not None:
        loss = ctx.emit1("Mul", [loss, w])
    if reduction == "none":
        return loss
    total = _reduce_all(ctx, "ReduceSum", loss)
    if reduction == "sum":
        return total
    if w is None:
        return ctx.emit1("Div", [total, _scalar(ctx, int(np.prod(target.shape)), dtype)])
    return ctx.emit1("Div", [total, _reduce_all(ctx, "ReduceSum", w)])


@converter("NegativeLogLikelihoodLoss")
def _nll_loss(ctx, inputs, attrs):
    x, target = inputs[0], inputs[1]
    weight = inputs[2] if len(inputs) > 2 else None
    return [_nll(ctx, x, target, weight, attrs)]


@converter("SoftmaxCrossEntropyLoss")
def _softmax_cross_entropy(ctx, inputs, attrs):
    x, target = inputs[0], inputs[1]
    weight = inputs[2] if len(inputs) > 2 else None
    rank = len(x.shape)
    if rank < 2:
        raise ConvertError(f"scores must have a class axis: rank {rank}")
    if rank == 2:
        log_prob = ctx.emit1("LogSoftmax", [x], {"axis": 1})
    else:
        perm = [0] + list(range(2, rank)) + [1]  # classes last for the LogSoftmax
        last = ctx.emit1("LogSoftmax", [ctx.emit1("Transpose", [x], {"perm": perm})], {"axis": rank - 1})
        log_prob = ctx.emit1("Transpose", [last], {"perm": [perm.index(a) for a in range(rank)]})
    return [_nll(ctx, log_prob, target, weight, attrs), log_prob]
