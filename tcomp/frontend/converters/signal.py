"""Converters of the signal ops: DFT, STFT and the window / mel-filter generators.

A DFT is one MatMul by a constant matrix: the transformed axis is moved next to the
trailing (real, imaginary) axis, the two flattened together (``[P, L * c]``), and the
matrix maps them to ``[P, n_out * c_out]``, in float64 (the sums of O(n) terms whose
exact result is often 0 keep numpy's accuracy). It holds the twiddle factors (computed in
float64), truncation or zero padding to ``dft_length``, one-sidedness, the 1/n of the
inverse and, for an inverse one-sided transform (irfft), the Hermitian completion. STFT
gathers the frames with constant indices and folds a constant window into the matrix.

HannWindow, HammingWindow, BlackmanWindow and MelWeightMatrix depend only on their
scalar operands: the importer folds them when those are constants.
"""
from __future__ import annotations

import numpy as np

from .common import ConvertError, const_input, converter, normalize_axis, reshape_to


def dft_matrix(length: int, channels: int, n: int, inverse: bool, onesided: bool) -> tuple:
    """(matrix [length * channels, n_out * c_out], n_out, c_out) of a DFT of ``n`` points over
    ``length`` input samples of ``channels`` (1 real, 2 complex) components."""
    if inverse and onesided:  # irfft: a half spectrum in, n real samples out
        n_out, c_out = n, 1
        k = np.arange(length)[:, None]
        t = np.arange(n)[None, :]
        weight = np.where((k == 0) | ((n % 2 == 0) & (k == n // 2)), 1.0, 2.0) * (k <= n // 2)
        angle = 2 * np.pi * k * t / n
        rows = [weight * np.cos(angle) / n, -weight * np.sin(angle) / n][:channels]
        matrix = np.stack(rows, axis=1).reshape(length * channels, n_out)
        return matrix, n_out, c_out
    n_out = n // 2 + 1 if onesided else n
    j = np.arange(length)[:, None]
    k = np.arange(n_out)[None, :]
    sign = 1.0 if inverse else -1.0
    angle = 2 * np.pi * j * k / n
    cos, sin = np.cos(angle) * (j < n), sign * np.sin(angle) * (j < n)
    if inverse:
        cos, sin = cos / n, sin / n
    # (a + ib)(cos + i sin) = (a cos - b sin) + i (a sin + b cos)
    real_row = np.stack([cos, sin], axis=-1)               # from a: re += a cos, im += a sin
    imag_row = np.stack([-sin, cos], axis=-1)              # from b: re -= b sin, im += b cos
    rows = [real_row, imag_row][:channels]
    matrix = np.stack(rows, axis=1).reshape(length * channels, n_out * 2)
    return matrix, n_out, 2


def _apply_dft(ctx, x, axis: int, n: int, inverse: bool, onesided: bool, window=None):
    """The DFT of ``x`` ([..., L, ..., c]) along ``axis``; ``window`` (constant, length L) weights
    the input samples."""
    rank = len(x.shape)
    channels = x.shape[-1]
    if channels not in (1, 2):
        raise ConvertError(f"the last axis of the signal has {channels} components (1 or 2 expected)")
    if axis == rank - 1:
        raise ConvertError("the DFT axis cannot be the last (real, imaginary) axis")
    if onesided and not inverse and channels == 2:
        raise ConvertError("a one-sided DFT takes a real signal")
    others = [a for a in range(rank - 1) if a != axis]
    perm = others + [axis, rank - 1]
    moved = x if perm == list(range(rank)) else ctx.emit1("Transpose", [x], {"perm": perm})
    length = x.shape[axis]
    outer = [x.shape[a] for a in others]
    matrix, n_out, c_out = dft_matrix(length, channels, n, inverse, onesided)
    if window is not None:
        matrix = matrix * np.repeat(window.astype(np.float64), channels)[:, None]
    flat = reshape_to(ctx, moved, (int(np.prod(outer)), length * channels))
    if flat.dtype != "float64":
        flat = ctx.emit1("Cast", [flat], {"to": "float64"})
    product = ctx.emit1("MatMul", [flat, ctx.const(matrix, "dft_matrix")])
    if x.dtype != "float64":
        product = ctx.emit1("Cast", [product], {"to": x.dtype})
    out = reshape_to(ctx, product, outer + [n_out, c_out])
    inverse_perm = [perm.index(a) for a in range(rank)]
    return out if inverse_perm == list(range(rank)) else ctx.emit1("Transpose", [out], {"perm": inverse_perm})


def _check_float(op, x):
    if x.dtype not in ("float32", "float64"):
        raise ConvertError(f"{op} on {x.dtype} is not supported (float32 and float64 are)")


@converter("DFT")
def _dft(ctx, inputs, attrs):
    x = inputs[0]
    _check_float("DFT", x)
    rank = len(x.shape)
    if ctx.opset >= 20:
        given = inputs[2] if len(inputs) > 2 else None
        axis = int(const_input(given, "DFT axis")) if given is not None else -2
    else:
        axis = attrs.get("axis", 1)
    axis = normalize_axis(axis, rank)
    inverse, onesided = bool(attrs.get("inverse", 0)), bool(attrs.get("onesided", 0))
    length_input = inputs[1] if len(inputs) > 1 else None
    if length_input is not None:
        n = int(const_input(length_input, "dft_length"))
    elif inverse and onesided:
        n = 2 * (x.shape[axis] - 1)
    else:
        n = x.shape[axis]
    if n < 1:
        raise ConvertError(f"dft_length {n} (positive expected)")
    return [_apply_dft(ctx, x, axis, n, inverse, onesided)]


@converter("STFT")
def _stft(ctx, inputs, attrs):
    x, step_input = inputs[0], inputs[1]
    window = inputs[2] if len(inputs) > 2 else None
    length_input = inputs[3] if len(inputs) > 3 else None
    _check_float("STFT", x)
    if len(x.shape) != 3:
        raise ConvertError(f"the signal has rank {len(x.shape)} ([batch, length, 1 or 2] expected)")
    step = int(const_input(step_input, "frame_step"))
    if length_input is not None:
        frame = int(const_input(length_input, "frame_length"))
    elif window is not None:
        frame = window.shape[0]
    else:
        frame = x.shape[1]
    if window is not None and window.shape[0] != frame:
        raise ConvertError(f"the window has {window.shape[0]} samples, frame_length is {frame}")
    if step < 1 or not 1 <= frame <= x.shape[1]:
        raise ConvertError(f"frame_step {step} and frame_length {frame} do not frame a signal of {x.shape[1]}")
    frames = 1 + (x.shape[1] - frame) // step
    index = np.arange(frames)[:, None] * step + np.arange(frame)[None, :]
    framed = ctx.emit1("Gather", [x, ctx.const(index.astype(np.int64), "frame_index")], {"axis": 1})
    weights = None
    if window is not None:
        if window.is_const:
            weights = window.const
        else:  # a window computed at run time multiplies the frames
            framed = ctx.emit1("Mul", [framed, reshape_to(ctx, window, (frame, 1))])
    onesided = bool(attrs.get("onesided", 1))
    return [_apply_dft(ctx, framed, 2, frame, False, onesided, weights)]


@converter("HannWindow", "HammingWindow", "BlackmanWindow", "MelWeightMatrix")
def _generator(ctx, inputs, attrs):
    """These fold at import when their operands are constants; otherwise their output shape
    depends on run-time values."""
    for index, value in enumerate(inputs):
        const_input(value, f"{ctx.onnx_node.op_type} operand {index}")
    raise ConvertError("the reference evaluator cannot compute it on these operands")
