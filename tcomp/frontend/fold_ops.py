"""Replacements for ``onnx.reference`` ops that compute other values than the ONNX specification.

The importer folds nodes whose inputs are all constant through ``onnx.reference``; these
classes take the place of the reference's own (``ReferenceEvaluator(new_ops=FOLD_OPS)``).
Wrong output *shapes* of the reference are caught generically (``onnx_importer``
compares them with onnx's shape inference); wrong values are fixed here, one class per op.
"""
from __future__ import annotations

import math

import numpy as np
from onnx.reference.op_run import OpRun


class LpNormalization(OpRun):
    """x / ||x||_p along ``axis``; the reference sums x ** p without the absolute value (p = 1)."""

    op_domain = ""

    def _run(self, x, axis=None, p=None):
        axis = self.axis if axis is None else axis
        p = self.p if p is None else p
        norm = np.sum(np.abs(x) ** p, axis=axis, keepdims=True) ** (1.0 / p)
        return (np.where(norm == 0, 0, x / np.where(norm == 0, 1, norm)).astype(x.dtype),)


class LRN(OpRun):
    """x / (bias + alpha / size * sum of squares over the channel window) ** beta; the reference's
    window is off (size 1 mixes neighbouring channels)."""

    op_domain = ""

    def _run(self, x, alpha=None, beta=None, bias=None, size=None):
        alpha = self.alpha if alpha is None else alpha
        beta = self.beta if beta is None else beta
        bias = self.bias if bias is None else bias
        size = self.size if size is None else size
        channels = x.shape[1]
        square_sum = np.zeros_like(x)
        for c in range(channels):
            lo, hi = max(0, c - (size - 1) // 2), min(channels - 1, c + math.ceil((size - 1) / 2))
            square_sum[:, c] = np.sum(x[:, lo:hi + 1] ** 2, axis=1)
        return ((x / (bias + alpha / size * square_sum) ** beta).astype(x.dtype),)


FOLD_OPS = [LpNormalization, LRN]
