"""Compile-time evaluation of shape computations over symbolic dimensions.

Exported models compute shapes at run time: ``Shape -> Gather -> Unsqueeze ->
Concat -> Reshape``. With symbolic dimensions those values are object arrays
of ints and ``SymInt``s, and this module evaluates the usual shape ops on them
so that the result is again a constant the converters can read::

    Shape(x: f32[batch, sequence, 768])      -> [batch, sequence, 768]
    Gather(that, 1)                          -> sequence
    Concat([Unsqueeze(batch), [-1], [768]])  -> [batch, -1, 768]

Comparisons are decided only when they hold for every size (symbols are
>= 1): ``Equal(sequence, -1)`` is False, ``Equal(sequence, 1)`` is refused
with a ``SymbolicError`` rather than guessed.
"""
from __future__ import annotations

import operator

import numpy as np
import onnx

from ..graph.symbolic import SymbolicError, SymInt

_BINARY = {"Add": operator.add, "Sub": operator.sub, "Mul": operator.mul}
_COMPARE = {"Equal": "==", "Less": "<", "LessOrEqual": "<=", "Greater": ">", "GreaterOrEqual": ">="}


def decide(a, b, op: str) -> bool:
    """``a op b`` for ints/SymInts, when it holds for every value of the symbols."""
    if not isinstance(a, SymInt) and not isinstance(b, SymInt):
        return {"==": a == b, "<": a < b, "<=": a <= b, ">": a > b, ">=": a >= b}[op]
    if op == "==":
        diff = a - b
        if isinstance(diff, int):
            return diff == 0
        if diff.provable_sign() is not None:
            return False
        raise SymbolicError(f"whether {a} == {b} depends on the symbolic dimensions")
    left = a if isinstance(a, SymInt) else SymInt._of(a)
    return left._compare(b, op)


def _elementwise(fn, *arrays) -> np.ndarray:
    arrays = np.broadcast_arrays(*[np.asarray(a, dtype=object) for a in arrays])
    out = np.empty(arrays[0].shape, dtype=object)
    for index in np.ndindex(out.shape):
        out[index] = fn(*(_scalar(a[index]) for a in arrays))
    return out


def _scalar(x):
    if isinstance(x, SymInt):
        return x
    if isinstance(x, (bool, np.bool_)):
        return bool(x)
    return int(x)


def _div(a, b):
    if isinstance(a, SymInt) or isinstance(b, SymInt):
        return a // b  # exact or SymbolicError
    q = abs(a) // abs(b)  # ONNX integer division truncates toward zero
    return q if (a >= 0) == (b >= 0) else -q


class _SymbolicOperand(Exception):
    """An index-like operand is symbolic: the result is a tensor of symbolic shape, not a constant."""


def _ints(value) -> list:
    values = list(np.asarray(value, dtype=object).reshape(-1))
    if any(isinstance(v, SymInt) for v in values):
        raise _SymbolicOperand
    return [int(v) for v in values]


def evaluate(op: str, inputs: list, attrs: dict, opset: int):
    """Outputs of ``op`` on (possibly symbolic) constant inputs, or None when the result is no
    constant (a tensor of symbolic shape, e.g. a Slice to a symbolic end) or ``op`` is no shape op."""
    try:
        return _evaluate(op, inputs, attrs, opset)
    except _SymbolicOperand:
        return None


def _evaluate(op: str, inputs: list, attrs: dict, opset: int):
    x = inputs[0] if inputs else None
    if op == "Identity":
        return [x]
    if op in _BINARY:
        return [_elementwise(_BINARY[op], inputs[0], inputs[1])]
    if op == "Div":
        return [_elementwise(_div, inputs[0], inputs[1])]
    if op in _COMPARE:
        return [_elementwise(lambda a, b: decide(a, b, _COMPARE[op]), inputs[0], inputs[1]).astype(np.bool_)]
    if op in ("Max", "Min"):
        pick = (lambda a, b: a if decide(a, b, ">=") else b) if op == "Max" else \
            (lambda a, b: a if decide(a, b, "<=") else b)
        result = inputs[0]
        for other in inputs[1:]:
            result = _elementwise(pick, result, other)
        return [result]
    if op == "Where":
        cond = np.asarray(inputs[0], dtype=bool)
        return [_elementwise(lambda c, a, b: a if c else b, cond, inputs[1], inputs[2])]
    if op == "Cast":
        if np.dtype(onnx.helper.tensor_dtype_to_np_dtype(attrs["to"])).kind not in "iu":
            raise SymbolicError("a symbolic size is cast to a non-integer type, which tcomp does not support")
        return [x]
    if op == "Gather":
        axis = attrs.get("axis", 0)
        return [np.take(x, np.asarray(_ints(inputs[1])).reshape(np.shape(inputs[1])), axis=axis)]
    if op == "Unsqueeze":
        axes = attrs["axes"] if opset < 13 else _ints(inputs[1])
        result = np.asarray(x, dtype=object)
        rank = result.ndim + len(axes)
        for axis in sorted(a + rank if a < 0 else a for a in axes):
            result = np.expand_dims(result, axis)
        return [result]
    if op == "Squeeze":
        axes = attrs.get("axes") if opset < 13 else (_ints(inputs[1]) if len(inputs) > 1 and
                                                     inputs[1] is not None else None)
        result = np.asarray(x, dtype=object)
        if axes is None:
            return [result.reshape([s for s in result.shape if s != 1])]
        return [np.squeeze(result, axis=tuple(a + result.ndim if a < 0 else a for a in axes))]
    if op == "Concat":
        return [np.concatenate([np.asarray(v, dtype=object) for v in inputs if v is not None],
                               axis=attrs["axis"])]
    if op == "Reshape":
        shape = _ints(inputs[1])
        shape = [x.shape[i] if s == 0 else s for i, s in enumerate(shape)]
        return [np.asarray(x, dtype=object).reshape(shape)]
    if op == "Slice" and opset >= 10:
        starts, ends = _ints(inputs[1]), _ints(inputs[2])
        axes = _ints(inputs[3]) if len(inputs) > 3 and inputs[3] is not None else range(len(starts))
        steps = _ints(inputs[4]) if len(inputs) > 4 and inputs[4] is not None else [1] * len(starts)
        index = [slice(None)] * np.asarray(x).ndim
        for start, end, axis, step in zip(starts, ends, axes, steps):
            index[axis] = slice(start, end, step)
        return [np.asarray(x, dtype=object)[tuple(index)]]
    if op in ("ReduceProd", "ReduceSum") and np.asarray(x).ndim == 1 and not attrs.get("axes"):
        values = list(np.asarray(x, dtype=object))
        result = 1 if op == "ReduceProd" else 0
        for v in values:
            result = result * v if op == "ReduceProd" else result + v
        keep = attrs.get("keepdims", 1)
        return [np.array([result] if keep else result, dtype=object)]
    if op in ("Not", "And", "Or") and all(np.asarray(v).dtype == bool for v in inputs):
        fn = {"Not": np.logical_not, "And": np.logical_and, "Or": np.logical_or}[op]
        return [fn(*inputs)]
    return None
