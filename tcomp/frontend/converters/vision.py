"""Converters of vision / spatial ops: ConvTranspose, LpPool, GlobalLpPool, DepthToSpace,
SpaceToDepth, CenterCropPad, GridSample, AffineGrid, Col2Im."""
from __future__ import annotations

import numpy as np

from .common import ConvertError, const_input, converter, normalize_axis, reshape_to


# ConvTranspose -------------------------------------------------------------------
def conv_transpose_attrs(attrs, in_sp, kernel):
    """strides, dilations, pads (begins + ends) and the output's spatial extents."""
    nd = len(kernel)
    strides = list(attrs.get("strides", [1] * nd))
    dilations = list(attrs.get("dilations", [1] * nd))
    out_pad = list(attrs.get("output_padding", [0] * nd))
    pads = list(attrs.get("pads", [0] * (2 * nd)))
    auto_pad = attrs.get("auto_pad", "NOTSET")
    for what, values in (("strides", strides), ("dilations", dilations), ("output_padding", out_pad),
                         ("pads", pads)):
        if len(values) != (2 * nd if what == "pads" else nd):
            raise ConvertError(f"{what} {values} does not fit {nd} spatial axes")
    if min(strides) < 1 or min(dilations) < 1:
        raise ConvertError(f"strides {strides} and dilations {dilations} must be positive")
    full = [s * (i - 1) + op + (k - 1) * d + 1 for s, i, op, k, d in zip(strides, in_sp, out_pad, kernel, dilations)]
    output_shape = attrs.get("output_shape")
    if output_shape is not None and len(output_shape) != nd:
        raise ConvertError(f"output_shape {list(output_shape)} does not fit {nd} spatial axes")
    if output_shape is not None or auto_pad in ("SAME_UPPER", "SAME_LOWER"):
        out = list(output_shape) if output_shape is not None else [i * s for i, s in zip(in_sp, strides)]
        pads = [0] * (2 * nd)
        for a in range(nd):
            total = full[a] - out[a]
            small, big = total // 2, total - total // 2
            pads[a], pads[a + nd] = (small, big) if auto_pad == "SAME_UPPER" else (big, small)
    elif auto_pad == "VALID":
        pads = [0] * (2 * nd)
    elif auto_pad != "NOTSET":
        raise ConvertError(f"auto_pad {auto_pad}")
    out = [f - pads[a] - pads[a + nd] for a, f in enumerate(full)]
    if min(out) <= 0:
        raise ConvertError(f"output spatial shape {out} is empty")
    return {"strides": strides, "dilations": dilations, "pads": pads, "out_spatial": out}


@converter("ConvTranspose")
def _conv_transpose(ctx, inputs, attrs):
    x, w = inputs[0], inputs[1]
    bias = inputs[2] if len(inputs) > 2 and inputs[2] is not None else None
    nd = len(x.shape) - 2
    if nd < 1 or len(w.shape) != nd + 2:
        raise ConvertError(f"input {list(x.shape)} and weights {list(w.shape)} do not make a convolution")
    if x.dtype not in ("float32", "float64"):
        raise ConvertError(f"ConvTranspose on {x.dtype}")
    group = attrs.get("group", 1)
    if x.shape[1] != w.shape[0] or x.shape[1] % group:
        raise ConvertError(f"input has {x.shape[1]} channels, weights {w.shape[0]} in {group} groups")
    kernel = list(attrs.get("kernel_shape", w.shape[2:]))
    if kernel != list(w.shape[2:]):
        raise ConvertError(f"kernel_shape {kernel} differs from the weights' {list(w.shape[2:])}")
    spatial = conv_transpose_attrs(attrs, x.shape[2:], kernel)
    return [ctx.emit1("ConvTranspose", [x, w] + ([bias] if bias is not None else []), {**spatial, "group": group})]
