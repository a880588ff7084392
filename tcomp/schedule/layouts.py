"""Layouts in which a kernel reads its constant parameters (``func.attrs["param_layouts"]``).

The compiler re-lays a constant out once, at compile time, for the kernels that ask for it
(``{parameter index: layout}``). A layout is a permutation of the constant's axes (a tuple, as
``numpy.transpose`` takes it), or a ``Blocked`` one: an axis split into blocks first, then a
permutation of the axes after the split::

    (1, 2, 3, 0)                          w[k, c, r, s] -> w_t[c, r, s, k]
    Blocked(0, 32, (0, 2, 3, 4, 1))       w[k, c, r, s] -> w_b[k // 32, c, r, s, k % 32]
    Winograd(32)                          w[k, c, 3, 3] -> u[k // 32, e, c, k % 32]  (G w G^T, e = 4*a + b)

    array = relayout(weights, layout)     # what the kernel reads
    shape = source_shape(array.shape, layout)   # the constant's own shape, back from the kernel's
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Blocked:
    """Axis ``axis`` split into ``(extent // block, block)``, then the axes permuted by ``perm``."""

    axis: int
    block: int
    perm: tuple


@dataclass(frozen=True)
class Winograd:
    """3x3 filters ``w[K, C, 3, 3]`` as Winograd F(2x2, 3x3) transforms ``G w G^T`` (4 x 4 points
    ``e``), output channels in blocks of ``block``: ``u[K // block, 16, C, block]``
    (``schedule/winograd.py``)."""

    block: int


def relayout(array: np.ndarray, layout) -> np.ndarray:
    """``array`` (a constant as the graph holds it) in ``layout``, contiguous."""
    if isinstance(layout, Winograd):
        from .winograd import filter_transform

        K, C = array.shape[:2]
        u = filter_transform(array).reshape(K // layout.block, layout.block, C, 16)
        return np.ascontiguousarray(u.transpose(0, 3, 2, 1).astype(array.dtype))
    if isinstance(layout, Blocked):
        shape = list(array.shape)
        shape[layout.axis:layout.axis + 1] = [shape[layout.axis] // layout.block, layout.block]
        return np.ascontiguousarray(array.reshape(shape).transpose(layout.perm))
    return np.ascontiguousarray(array.transpose(layout))


def source_shape(shape: tuple, layout) -> tuple:
    """The shape of the constant that ``layout`` lays out as ``shape``."""
    if isinstance(layout, Winograd):
        return (shape[0] * shape[3], shape[2], 3, 3)
    perm = layout.perm if isinstance(layout, Blocked) else layout
    split = [0] * len(shape)
    for axis, source in enumerate(perm):
        split[source] = shape[axis]
    if isinstance(layout, Blocked):
        split[layout.axis:layout.axis + 2] = [split[layout.axis] * split[layout.axis + 1]]
    return tuple(split)
