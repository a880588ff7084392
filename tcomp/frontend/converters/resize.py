"""Converters of Resize (opsets 10-19) and Upsample.

Resizing is separable: the output is the input resized along one axis after the
other. For each resized axis the converter computes, at compile time, a table of
``taps`` source indices and weights per output position (the coordinate transform,
nearest rounding, cubic/linear coefficients, antialiasing and ``exclude_outside`` are
all folded into these tables, in float64 as the ONNX reference does), and emits::

    y = sum_k Gather(x, index[:, k], axis) * weight[:, k]       (nearest: one Gather)
    y = Where(outside, extrapolation_value, y)                  (tf_crop_and_resize)

A Gather reads the input directly (no quadratic one-hot matmul): each output element
costs ``taps`` loads per axis. An interpolated axis reads its input ``taps`` times, so
fusion materializes it and each axis becomes one pass; nearest resizes fuse into one
kernel with their consumer.
"""
from __future__ import annotations

import math

import numpy as np

from .common import ConvertError, const_input, converter, normalize_axis

COORDINATE_MODES = ("half_pixel", "half_pixel_symmetric", "pytorch_half_pixel", "align_corners", "asymmetric",
                    "tf_crop_and_resize")
NEAREST_MODES = ("round_prefer_floor", "round_prefer_ceil", "floor", "ceil", "simple")


# Coefficients of one output position, given the fractional offset ``ratio`` in (0, 1] ----
def _nearest_coeffs(ratio, scale, mode):
    if ratio == 1.0:  # an exact source pixel
        return np.array([0.0, 1.0])
    if mode == "simple":  # Resize-10 / Upsample: floor when upsampling, ceil when downsampling
        mode = "ceil" if scale < 1 else "floor"
    up = {"round_prefer_floor": ratio > 0.5, "round_prefer_ceil": ratio >= 0.5, "floor": False, "ceil": True}[mode]
    return np.array([0.0, 1.0]) if up else np.array([1.0, 0.0])


def _linear_coeffs(ratio, scale, antialias):
    if not antialias:
        return np.array([1.0 - ratio, ratio])
    scale = min(scale, 1.0)
    start = int(np.floor(-1 / scale) + 1)
    args = (np.arange(start, 2 - start) - ratio) * scale
    coeffs = np.clip(1 - np.abs(args), 0, 1)
    return coeffs / coeffs.sum()


def _cubic_coeffs(ratio, scale, antialias, a):
    if not antialias:
        r, s = ratio, 1 - ratio
        return np.array([((a * (r + 1) - 5 * a) * (r + 1) + 8 * a) * (r + 1) - 4 * a,
                         ((a + 2) * r - (a + 3)) * r * r + 1,
                         ((a + 2) * s - (a + 3)) * s * s + 1,
                         ((a * (s + 1) - 5 * a) * (s + 1) + 8 * a) * (s + 1) - 4 * a])
    scale = min(scale, 1.0)

    def kernel(x):
        x = abs(x)
        if x <= 1:
            return (a + 2) * x ** 3 - (a + 3) * x * x + 1
        if x < 2:
            return a * x ** 3 - 5 * a * x * x + 8 * a * x - 4 * a
        return 0.0

    start = int(np.floor(-2 / scale) + 1)
    coeffs = np.array([kernel(scale * (i - ratio)) for i in range(start, 2 - start)])
    return coeffs / coeffs.sum()


def _source_coords(mode, out_len, in_len, scale, roi):
    """Source coordinate of every output position (float64), and the positions that
    tf_crop_and_resize extrapolates (None for the other modes). As in the ONNX reference,
    the resized length in the formulas is ``scale * in_len``, not rounded to ``out_len``
    (onnxruntime rounds it: the two differ for align_corners / tf_crop_and_resize when
    ``scale * in_len`` is not an integer)."""
    y = np.arange(out_len, dtype=np.float64)
    out_real = scale * in_len
    if mode == "align_corners":
        return (np.zeros(out_len) if out_real == 1 else y * (in_len - 1) / (out_real - 1)), None
    if mode == "asymmetric":
        return y / scale, None
    if mode == "tf_crop_and_resize":
        start, end = roi
        x = np.full(out_len, (end - start) * (in_len - 1) / 2) if out_real == 1 else \
            y * (end - start) * (in_len - 1) / (out_real - 1)
        x = x + start * (in_len - 1)
        return x, (x < 0) | (x > in_len - 1)
    if mode == "pytorch_half_pixel":
        return (np.full(out_len, -0.5) if out_real == 1 else (y + 0.5) / scale - 0.5), None
    if mode == "half_pixel":
        return (y + 0.5) / scale - 0.5, None
    # half_pixel_symmetric
    offset = in_len / 2 * (1 - out_len / out_real)
    return offset + (y + 0.5) / scale - 0.5, None


def axis_taps(in_len, out_len, scale, coeffs_fn, coord_mode, roi=None, exclude_outside=False):
    """(index[out_len, taps] in [0, in_len), weight[out_len, taps] float64, extrapolated mask or None)."""
    x, outside = _source_coords(coord_mode, out_len, in_len, scale, roi)
    floor = np.floor(x)
    ratios = np.where(x == floor, 1.0, x - floor)
    weights = np.stack([np.asarray(coeffs_fn(float(r), scale), dtype=np.float64) for r in ratios])
    taps = weights.shape[1]
    # the `taps` source pixels nearest to x (ties to the smaller index), as in the ONNX reference
    half = int(np.ceil(taps / 2))
    padded = x + half
    p = np.floor(padded).astype(np.int64)
    frac = padded - p
    if taps % 2 == 0:
        first = p + np.where(frac == 0, -(taps // 2), -(taps // 2) + 1)
    else:
        first = p + np.where(frac <= 0.5, -((taps - 1) // 2), -((taps - 1) // 2) + 1)
    index = first[:, None] + np.arange(taps)[None, :] - half
    if exclude_outside:
        weights = np.where((index < 0) | (index >= in_len), 0.0, weights)
        total = weights.sum(axis=1, keepdims=True)
        weights = weights / np.where(total == 0, 1.0, total)
    return np.clip(index, 0, in_len - 1), weights, outside


def _resize_axis(ctx, x, axis, index, weights, outside, extrapolation_value, nearest):
    rank = len(x.shape)
    bcast = (-1,) + (1,) * (rank - axis - 1)
    if nearest:
        picked = index[np.arange(len(index)), np.argmax(weights, axis=1)]
        y = ctx.emit1("Gather", [x, ctx.const(picked.astype(np.int64), "resize_index")], {"axis": axis})
    else:
        y = None
        for k in range(index.shape[1]):
            if not np.any(weights[:, k]):
                continue
            g = ctx.emit1("Gather", [x, ctx.const(index[:, k].astype(np.int64), "resize_index")], {"axis": axis})
            w = ctx.const(weights[:, k].reshape(bcast).astype(x.dtype), "resize_weight")
            term = ctx.emit1("Mul", [g, w])
            y = term if y is None else ctx.emit1("Add", [y, term])
    if outside is not None and outside.any():
        fill = ctx.const(np.array(extrapolation_value, dtype=x.dtype), "extrapolation")
        y = ctx.emit1("Where", [ctx.const(outside.reshape(bcast)), fill, y])
    return y


def emit_resize(ctx, x, mode, scales, sizes, *, axes=None, roi=None, coord_mode="half_pixel",
                nearest_mode="round_prefer_floor", cubic_a=-0.75, exclude_outside=False, extrapolation_value=0.0,
                antialias=False, policy="stretch"):
    """Resizes ``x`` along ``axes``; ``scales`` or ``sizes`` (one per axis) gives the output size."""
    rank = len(x.shape)
    axes = list(range(rank)) if axes is None else [normalize_axis(int(a), rank) for a in axes]
    if len(set(axes)) != len(axes):
        raise ConvertError(f"repeated axes {axes}")
    if mode not in ("nearest", "linear", "cubic"):
        raise ConvertError(f"mode {mode!r}")
    if coord_mode not in COORDINATE_MODES:
        raise ConvertError(f"coordinate_transformation_mode {coord_mode!r}")
    if mode == "nearest" and nearest_mode not in NEAREST_MODES:
        raise ConvertError(f"nearest_mode {nearest_mode!r}")
    if mode != "nearest" and x.dtype not in ("float32", "float64"):
        raise ConvertError(f"{mode} resize of {x.dtype} is not supported (float32/float64 are)")
    in_shape = [x.shape[a] for a in axes]
    if sizes is not None:
        if len(sizes) != len(axes):
            raise ConvertError(f"{len(sizes)} sizes for {len(axes)} axes")
        scales = [int(s) / n for s, n in zip(sizes, in_shape)]
        if policy != "stretch":
            if policy not in ("not_larger", "not_smaller"):
                raise ConvertError(f"keep_aspect_ratio_policy {policy!r}")
            scale = min(scales) if policy == "not_larger" else max(scales)
            scales = [scale] * len(axes)
            sizes = [int(scale * n + 0.5) for n in in_shape]
    else:
        if scales is None or len(scales) != len(axes):
            raise ConvertError(f"Resize needs one scale per axis ({len(axes)}), got "
                               f"{None if scales is None else len(scales)}")
        scales = [float(s) for s in scales]
        if any(s <= 0 for s in scales):
            raise ConvertError(f"scales must be positive, got {scales}")
        sizes = [int(s * n) for s, n in zip(scales, in_shape)]
    if roi is not None and len(roi) not in (0, 2 * len(axes), 2 * rank):
        raise ConvertError(f"roi of length {len(roi)} for {len(axes)} axes")
    if roi is not None and len(roi) == 2 * rank and len(axes) != rank:
        roi = [roi[a] for a in axes] + [roi[a + rank] for a in axes]
    use_roi = coord_mode == "tf_crop_and_resize"
    if use_roi and (roi is None or len(roi) == 0):
        raise ConvertError("tf_crop_and_resize needs a roi")

    if mode == "nearest":
        def coeffs(r, s):
            return _nearest_coeffs(r, s, nearest_mode)
    elif mode == "linear":
        def coeffs(r, s):
            return _linear_coeffs(r, s, antialias)
    else:
        def coeffs(r, s):
            return _cubic_coeffs(r, s, antialias, cubic_a)

    y = x
    for i, axis in enumerate(axes):
        scale, size, n = scales[i], int(sizes[i]), in_shape[i]
        axis_roi = (float(roi[i]), float(roi[i + len(axes)])) if use_roi else None
        if size <= 0:
            raise ConvertError(f"output extent {size} along axis {axis}")
        if math.isclose(scale, 1.0) and size == n and (axis_roi is None or (
                math.isclose(axis_roi[0], 0.0) and math.isclose(axis_roi[1], 1.0))):
            continue
        index, weights, outside = axis_taps(n, size, scale, coeffs, coord_mode, axis_roi, exclude_outside)
        y = _resize_axis(ctx, y, axis, index, weights, outside, extrapolation_value, mode == "nearest")
    return y


def _nonempty(value, what):
    data = const_input(value, what)
    return None if data is None or data.size == 0 else [v.item() for v in data.reshape(-1)]


@converter("Resize")
def _resize(ctx, inputs, attrs):
    x = inputs[0]
    mode = attrs.get("mode", "nearest")
    if ctx.opset < 11:  # Resize-10: (X, scales), asymmetric coordinates like Upsample
        scales = _nonempty(inputs[1], "Resize scales")
        return [emit_resize(ctx, x, mode, scales, None, coord_mode="asymmetric", nearest_mode="simple")]
    def get(i, what):
        return _nonempty(inputs[i], what) if len(inputs) > i and inputs[i] is not None else None

    roi, scales, sizes = get(1, "Resize roi"), get(2, "Resize scales"), get(3, "Resize sizes")
    if (scales is None) == (sizes is None):
        raise ConvertError("exactly one of scales and sizes must be given")
    return [emit_resize(ctx, x, mode, scales, sizes, axes=attrs.get("axes"), roi=roi,
                        coord_mode=attrs.get("coordinate_transformation_mode", "half_pixel"),
                        nearest_mode=attrs.get("nearest_mode", "round_prefer_floor"),
                        cubic_a=attrs.get("cubic_coeff_a", -0.75), exclude_outside=bool(attrs.get("exclude_outside", 0)),
                        extrapolation_value=attrs.get("extrapolation_value", 0.0),
                        antialias=bool(attrs.get("antialias", 0)),
                        policy=attrs.get("keep_aspect_ratio_policy", "stretch"))]


@converter("Upsample")
def _upsample(ctx, inputs, attrs):
    scales = attrs.get("scales") if ctx.opset < 9 else _nonempty(inputs[1], "Upsample scales")
    mode = attrs.get("mode", "nearest")
    if mode == "bilinear":
        mode = "linear"
    if any(s < 1 for s in scales or []):
        raise ConvertError(f"Upsample scales must be >= 1, got {scales}")
    return [emit_resize(ctx, inputs[0], mode, scales, None, coord_mode="asymmetric", nearest_mode="simple")]
