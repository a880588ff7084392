"""Tensor views: the compute-definition layer between graph ops and loop nests.

A ``TensorView`` is a shape, a dtype and a function from index expressions to
the scalar expression of that element. A buffer is a view that loads; an
elementwise op is a view that combines its inputs' views. Composing views is
how fusion inlines producers into consumers::

    x = TensorView.of_buffer(X)                                   # x[i, j] = X[i, j]
    y = TensorView(x.shape, x.dtype, lambda i, j: maximum(x.fn(i, j), 0.0))
    y.transpose((1, 0))[j, i]                                     # -> max(X[i, j], 0.0)
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from .expr import Buffer, Expr, IntImm, as_expr


@dataclass(frozen=True)
class TensorView:
    shape: tuple
    dtype: str
    fn: Callable

    @staticmethod
    def of_buffer(buf: Buffer) -> "TensorView":
        shape = tuple(int(s.value) if isinstance(s, IntImm) else s for s in buf.shape)
        return TensorView(shape, buf.dtype, lambda *idx: buf[tuple(idx)])

    @property
    def ndim(self) -> int:
        return len(self.shape)

    def __getitem__(self, indices) -> Expr:
        if not isinstance(indices, tuple):
            indices = (indices,)
        if len(indices) != len(self.shape):
            raise IndexError(f"view of rank {len(self.shape)} indexed with {len(indices)} indices")
        return self.fn(*(as_expr(i) for i in indices))

    def transpose(self, perm) -> "TensorView":
        src = self.fn
        shape = tuple(self.shape[p] for p in perm)
        inverse = [0] * len(perm)
        for out_axis, in_axis in enumerate(perm):
            inverse[in_axis] = out_axis

        def fn(*idx):
            return src(*(idx[inverse[axis]] for axis in range(len(perm))))

        return TensorView(shape, self.dtype, fn)


def broadcast_index(idx, in_shape, out_shape):
    """Maps an index of ``out_shape`` to the numpy-broadcast operand of ``in_shape``."""
    offset = len(out_shape) - len(in_shape)
    result = []
    for axis, extent in enumerate(in_shape):
        result.append(IntImm(0) if extent == 1 and out_shape[axis + offset] != 1 else idx[axis + offset])
    return tuple(result)


def row_major_unflatten(flat: Expr, shape) -> list:
    """Multi-index of a row-major flat offset: [(flat // s1*s2..) % s0, ...]."""
    idx = []
    for axis in reversed(range(len(shape))):
        extent = shape[axis]
        if axis == 0:
            idx.append(flat)
        else:
            idx.append(flat % extent)
            flat = flat // extent
    return list(reversed(idx))


def row_major_flatten(idx, shape) -> Expr:
    flat: Expr = IntImm(0)
    for index, extent in zip(idx, shape):
        flat = flat * extent + index
    return flat
