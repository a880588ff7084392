"""Converters of vision / spatial ops: ConvTranspose, 3-D Conv and pooling, LpPool,
GlobalLpPool, DepthToSpace, SpaceToDepth, CenterCropPad, GridSample, AffineGrid, Col2Im."""
from __future__ import annotations

import numpy as np

from .common import (
    ConvertError,
    const_input,
    converter,
    normalize_axis,
    reshape_to,
    split_same_pad,
)
from .nn import _pool, _spatial_attrs
from .tensor import emit_slice


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
            pads[a], pads[a + nd] = split_same_pad(total, auto_pad)
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


# GridSample ------------------------------------------------------------------------
GRID_MODES = {"bilinear": "linear", "linear": "linear", "nearest": "nearest", "bicubic": "cubic", "cubic": "cubic"}


@converter("GridSample")
def _grid_sample(ctx, inputs, attrs):
    x, grid = inputs
    nd = len(x.shape) - 2
    if nd < 1 or len(grid.shape) != nd + 2 or grid.shape[-1] != nd or grid.shape[0] != x.shape[0]:
        raise ConvertError(f"grid {list(grid.shape)} does not fit input {list(x.shape)}")
    mode = attrs.get("mode", "bilinear" if ctx.opset < 20 else "linear")
    padding = attrs.get("padding_mode", "zeros")
    if mode not in GRID_MODES or padding not in ("zeros", "border", "reflection"):
        raise ConvertError(f"mode {mode!r} with padding_mode {padding!r}")
    if not x.dtype.startswith("float") or not grid.dtype.startswith("float"):
        raise ConvertError(f"GridSample of {x.dtype} over a {grid.dtype} grid")
    return [ctx.emit1("GridSample", [x, grid], {"mode": GRID_MODES[mode], "padding_mode": padding,
                                                 "align_corners": int(attrs.get("align_corners", 0))})]


# AffineGrid ------------------------------------------------------------------------
def _base_coords(size: int, align_corners: bool) -> np.ndarray:
    """Normalized coordinates of the pixel centers (or corners: a single one at -1) along one axis."""
    if align_corners:
        return np.linspace(-1.0, 1.0, size)
    return (2.0 * np.arange(size) + 1.0) / size - 1.0


@converter("AffineGrid")
def _affine_grid(ctx, inputs, attrs):
    """grid[n, *p] = theta[n] @ (x, y[, z], 1) of pixel p: a MatMul of a constant base grid."""
    theta = inputs[0]
    size = [int(s) for s in const_input(inputs[1], "AffineGrid size")]
    spatial = size[2:]
    nd = len(spatial)
    if nd not in (2, 3) or tuple(theta.shape) != (size[0], nd, nd + 1):
        raise ConvertError(f"theta {list(theta.shape)} does not fit size {size}")
    if not theta.dtype.startswith("float"):
        raise ConvertError(f"AffineGrid of {theta.dtype}")
    align = bool(attrs.get("align_corners", 0))
    axes = np.meshgrid(*[_base_coords(s, align) for s in spatial], indexing="ij")
    # homogeneous coordinates with the innermost axis (x) first, as GridSample reads them
    base = np.stack([a.reshape(-1) for a in reversed(axes)] + [np.ones(int(np.prod(spatial)))], axis=1)
    base = ctx.const(base.reshape((1,) + base.shape).astype(theta.dtype), "affine_base")
    theta_t = ctx.emit1("Transpose", [theta], {"perm": [0, 2, 1]})
    grid = ctx.emit1("MatMul", [base, theta_t])
    return [reshape_to(ctx, grid, [size[0]] + spatial + [nd])]


# DepthToSpace / SpaceToDepth / CenterCropPad --------------------------------------------
def _block_size(x, attrs, op):
    if len(x.shape) != 4:
        raise ConvertError(f"{op} needs a 4-D input, got {list(x.shape)}")
    b = int(attrs["blocksize"])
    mode = attrs.get("mode", "DCR")
    if b < 1 or mode not in ("DCR", "CRD"):
        raise ConvertError(f"blocksize {b}, mode {mode!r}")
    return b, mode


@converter("DepthToSpace")
def _depth_to_space(ctx, inputs, attrs):
    x = inputs[0]
    b, mode = _block_size(x, attrs, "DepthToSpace")
    n, c, h, w = x.shape
    if c % (b * b):
        raise ConvertError(f"{c} channels are not a multiple of blocksize^2 = {b * b}")
    if mode == "DCR":
        split, perm = (n, b, b, c // (b * b), h, w), [0, 3, 4, 1, 5, 2]
    else:
        split, perm = (n, c // (b * b), b, b, h, w), [0, 1, 4, 2, 5, 3]
    moved = ctx.emit1("Transpose", [reshape_to(ctx, x, split)], {"perm": perm})
    return [reshape_to(ctx, moved, (n, c // (b * b), h * b, w * b))]


@converter("SpaceToDepth")
def _space_to_depth(ctx, inputs, attrs):
    x = inputs[0]
    b, mode = _block_size(x, attrs, "SpaceToDepth")
    n, c, h, w = x.shape
    if h % b or w % b:
        raise ConvertError(f"spatial extents {h}x{w} are not multiples of blocksize {b}")
    perm = [0, 3, 5, 1, 2, 4] if mode == "DCR" else [0, 1, 3, 5, 2, 4]
    moved = ctx.emit1("Transpose", [reshape_to(ctx, x, (n, c, h // b, b, w // b, b))], {"perm": perm})
    return [reshape_to(ctx, moved, (n, c * b * b, h // b, w // b))]


@converter("CenterCropPad")
def _center_crop_pad(ctx, inputs, attrs):
    """A centered Slice where the target is smaller, a centered zero Pad where it is larger."""
    x = inputs[0]
    rank = len(x.shape)
    target = [int(s) for s in const_input(inputs[1], "CenterCropPad shape")]
    axes = [normalize_axis(int(a), rank) for a in attrs.get("axes", range(rank))]
    if len(axes) != len(target):
        raise ConvertError(f"shape {target} for axes {axes}")
    starts, ends, pads = [0] * rank, list(x.shape), [0] * (2 * rank)
    for axis, size in zip(axes, target):
        extent = x.shape[axis]
        if size < extent:
            starts[axis] = (extent - size) // 2
            ends[axis] = starts[axis] + size
        elif size > extent:
            pads[axis] = (size - extent) // 2
            pads[axis + rank] = size - extent - pads[axis]
    if starts != [0] * rank or ends != list(x.shape):
        x = emit_slice(ctx, x, starts, ends, list(range(rank)), [1] * rank)
    if any(pads):
        x = ctx.emit1("Pad", [x], {"pads": pads, "mode": "constant", "value": 0})
    return [x]


# 3-D convolution -------------------------------------------------------------------------
def conv_3d(ctx, x, w, bias, attrs):
    """Conv over 3 spatial axes (nn.py's converter hands them here): one implicit GEMM."""
    group = attrs.get("group", 1)
    if x.shape[1] != w.shape[1] * group or w.shape[0] % group:
        raise ConvertError(f"input has {x.shape[1]} channels, weights expect {w.shape[1]} x {group} groups")
    spatial = _spatial_attrs(attrs, w.shape[2:], x.shape[2:])
    return ctx.emit1("ConvND", [x, w] + ([bias] if bias is not None else []), {**spatial, "group": group})


# Pooling: 3-D, LpPool, GlobalLpPool ------------------------------------------------------
def pool_3d(ctx, op, x, kernel, spatial, attrs):
    """3-D MaxPool/AveragePool as two 2-D pools: over (H, W) with depth folded into the
    channels, then over D. Exact: a box's max is the max of its planes' maxima, and its tap
    count (inside the image, or image + pads) is the depth count times the plane count."""
    n, c, d, h, w = x.shape
    extra = {"ceil_mode": attrs.get("ceil_mode", 0), "count_include_pad": attrs.get("count_include_pad", 0)}
    pads, strides, dilations = spatial["pads"], spatial["strides"], spatial["dilations"]
    planes = ctx.emit1(op, [reshape_to(ctx, x, (n, c * d, h, w))], {
        "kernel_shape": kernel[1:], "strides": strides[1:], "dilations": dilations[1:],
        "pads": [pads[1], pads[2], pads[4], pads[5]], **extra})
    oh, ow = planes.shape[2:]
    depth = ctx.emit1(op, [reshape_to(ctx, planes, (n, c, d, oh * ow))], {
        "kernel_shape": [kernel[0], 1], "strides": [strides[0], 1], "dilations": [dilations[0], 1],
        "pads": [pads[0], 0, pads[3], 0], **extra})
    return reshape_to(ctx, depth, (n, c, depth.shape[2], oh, ow))


def _lp_power(ctx, x, p):
    """|x|^p, with multiplies for p = 1, 2."""
    if p == 1:
        return ctx.emit1("Abs", [x])
    if p == 2:
        return ctx.emit1("Mul", [x, x])
    return ctx.emit1("Pow", [ctx.emit1("Abs", [x]), ctx.const(np.array(p, dtype=x.dtype))])


def _lp_root(ctx, x, p):
    if p == 1:
        return x
    if p == 2:
        return ctx.emit1("Sqrt", [x])
    return ctx.emit1("Pow", [x, ctx.const(np.array(1.0 / p, dtype=x.dtype))])


def _lp_order(ctx, x, attrs):
    p = attrs.get("p", 2)
    if not x.dtype.startswith("float") or p <= 0:
        raise ConvertError(f"Lp pooling of {x.dtype} with p={p}")
    return float(p) if ctx.opset < 2 else int(p)


def _taps_inside(out_len, kernel, stride, dilation, begin, end, in_len):
    """Per output position: the window taps inside the input extended by its pads."""
    starts = np.arange(out_len)[:, None] * stride - begin + np.arange(kernel)[None, :] * dilation
    return ((starts >= -begin) & (starts < in_len + end)).sum(axis=1)


@converter("LpPool")
def _lp_pool(ctx, inputs, attrs):
    """(sum over the window of |x|^p)^(1/p), zeros outside the input: an AveragePool that
    counts the pads, times its (compile-time) tap counts."""
    x = inputs[0]
    p = _lp_order(ctx, x, attrs)
    avg_attrs = {**{k: v for k, v in attrs.items() if k != "p"}, "count_include_pad": 1}
    avg = _pool(ctx, [_lp_power(ctx, x, p)], avg_attrs, op="AveragePool")[0]
    kernel = list(attrs["kernel_shape"])
    spatial = _spatial_attrs(attrs, kernel, x.shape[2:])
    nd, total = len(kernel), avg
    for axis in range(nd):
        counts = _taps_inside(avg.shape[2 + axis], kernel[axis], spatial["strides"][axis],
                              spatial["dilations"][axis], spatial["pads"][axis], spatial["pads"][axis + nd],
                              x.shape[2 + axis])
        shape = (-1,) + (1,) * (nd - 1 - axis)
        total = ctx.emit1("Mul", [total, ctx.const(counts.reshape(shape).astype(x.dtype), "lp_pool_taps")])
    return [_lp_root(ctx, total, p)]


@converter("GlobalLpPool")
def _global_lp_pool(ctx, inputs, attrs):
    x = inputs[0]
    p = _lp_order(ctx, x, attrs)
    summed = ctx.emit1("ReduceSum", [_lp_power(ctx, x, p)], {"axes": list(range(2, len(x.shape))), "keepdims": 1})
    return [_lp_root(ctx, summed, p)]


# Col2Im --------------------------------------------------------------------------------
@converter("Col2Im")
def _col2im(ctx, inputs, attrs):
    x = inputs[0]
    image = [int(v) for v in const_input(inputs[1], "Col2Im image_shape")]
    block = [int(v) for v in const_input(inputs[2], "Col2Im block_shape")]
    nd = len(image)
    strides = list(attrs.get("strides", [1] * nd))
    dilations = list(attrs.get("dilations", [1] * nd))
    pads = list(attrs.get("pads", [0] * (2 * nd)))
    if len(block) != nd or len(x.shape) != 3 or x.shape[1] % int(np.prod(block)):
        raise ConvertError(f"input {list(x.shape)} does not fit blocks {block} of an image {image}")
    blocks = [(i + pads[a] + pads[a + nd] - d * (k - 1) - 1) // s + 1
              for a, (i, k, s, d) in enumerate(zip(image, block, strides, dilations))]
    if min(blocks) < 1 or int(np.prod(blocks)) != x.shape[2]:
        raise ConvertError(f"{x.shape[2]} columns, but the image holds {blocks} blocks")
    return [ctx.emit1("Col2Im", [x], {"image_shape": image, "block_shape": block, "strides": strides,
                                       "dilations": dilations, "pads": pads})]


# RoiAlign ------------------------------------------------------------------------------
@converter("RoiAlign")
def _roi_align(ctx, inputs, attrs):
    x, rois, batch_index = inputs
    if len(x.shape) != 4 or len(rois.shape) != 2 or rois.shape[1] != 4 or batch_index.shape != rois.shape[:1]:
        raise ConvertError(f"input {list(x.shape)}, rois {list(rois.shape)}, batch_indices "
                           f"{list(batch_index.shape)}")
    if not x.dtype.startswith("float"):
        raise ConvertError(f"RoiAlign of {x.dtype}")
    sampling = int(attrs.get("sampling_ratio", 0))
    if sampling <= 0:
        raise ConvertError("sampling_ratio 0 (samples per bin from each roi's size) is not supported: tcomp "
                           "compiles static loops; give a positive sampling_ratio")
    mode = attrs.get("mode", "avg")
    coord_mode = attrs.get("coordinate_transformation_mode", "half_pixel")
    if mode not in ("avg", "max") or coord_mode not in ("half_pixel", "output_half_pixel"):
        raise ConvertError(f"mode {mode!r}, coordinate_transformation_mode {coord_mode!r}")
    return [ctx.emit1("RoiAlign", [x, rois, batch_index], {
        "output_height": int(attrs.get("output_height", 1)), "output_width": int(attrs.get("output_width", 1)),
        "sampling_ratio": sampling, "spatial_scale": float(attrs.get("spatial_scale", 1.0)), "mode": mode,
        "half_pixel": coord_mode == "half_pixel" and ctx.opset >= 16})]


# MaxPool's Indices -------------------------------------------------------------------------
def max_pool_indices(ctx, x, values, kernel, spatial, attrs):
    """The Indices output of MaxPool (nn.py's converter computes the values)."""
    order = attrs.get("storage_order", 0)
    if order not in (0, 1):
        raise ConvertError(f"storage_order {order}")
    return ctx.emit1("MaxPoolIndices", [x], {"kernel_shape": kernel, **spatial, "storage_order": order,
                                              "out_spatial": list(values.shape[2:])})


# MaxUnpool ---------------------------------------------------------------------------------
@converter("MaxUnpool")
def _max_unpool(ctx, inputs, attrs):
    """Zeros with X scattered to its flat Indices (as MaxPool returns them): a ScatterND
    into the unpooled shape; an output_shape beyond it extends every axis at its end."""
    x, indices = inputs[0], inputs[1]
    nd = len(x.shape) - 2
    kernel = list(attrs["kernel_shape"])
    strides = list(attrs.get("strides", [1] * nd))
    pads = list(attrs.get("pads", [0] * (2 * nd)))
    if len(kernel) != nd or indices.shape != x.shape or indices.dtype != "int64":
        raise ConvertError(f"input {list(x.shape)}, indices {list(indices.shape)} ({indices.dtype}), kernel {kernel}")
    shape = list(x.shape[:2]) + [(i - 1) * s - pads[a] - pads[a + nd] + k
                                 for a, (i, s, k) in enumerate(zip(x.shape[2:], strides, kernel))]
    total = int(np.prod(shape))
    zeros = ctx.emit1("Expand", [ctx.const(np.zeros((1,), dtype=x.dtype))], {"shape": (total,)})
    flat = ctx.emit1("ScatterND", [zeros, reshape_to(ctx, indices, (x.type.size, 1)),
                                   reshape_to(ctx, x, (x.type.size,))], {"reduction": "none"})
    y = reshape_to(ctx, flat, shape)
    if len(inputs) > 2 and inputs[2] is not None:
        out = [int(s) for s in const_input(inputs[2], "MaxUnpool output_shape")]
        if len(out) != nd + 2 or out[:2] != shape[:2] or any(o < s for o, s in zip(out, shape)):
            raise ConvertError(f"output_shape {out} is smaller than the unpooled shape {shape}")
        if out != shape:
            y = ctx.emit1("Pad", [y], {"pads": [0] * (nd + 2) + [o - s for o, s in zip(out, shape)],
                                       "mode": "constant", "value": 0})
    return [y]


# DeformConv --------------------------------------------------------------------------------
@converter("DeformConv")
def _deform_conv(ctx, inputs, attrs):
    x, w, offset = inputs[:3]
    bias = inputs[3] if len(inputs) > 3 else None
    mask = inputs[4] if len(inputs) > 4 else None
    if len(x.shape) != 4:
        raise ConvertError(f"{len(x.shape) - 2}-D DeformConv is not supported (2-D is)")
    if x.dtype not in ("float32", "float64"):
        raise ConvertError(f"DeformConv on {x.dtype}")
    group, offset_group = attrs.get("group", 1), attrs.get("offset_group", 1)
    kernel = list(w.shape[2:])
    spatial = _spatial_attrs({k: v for k, v in attrs.items() if k in ("strides", "dilations", "pads")},
                             kernel, x.shape[2:])
    taps = kernel[0] * kernel[1]
    out = [(i + spatial["pads"][a] + spatial["pads"][a + 2] - d * (k - 1) - 1) // s + 1
           for a, (i, k, s, d) in enumerate(zip(x.shape[2:], kernel, spatial["strides"], spatial["dilations"]))]
    if x.shape[1] != w.shape[1] * group or w.shape[0] % group or x.shape[1] % offset_group:
        raise ConvertError(f"input {list(x.shape)}, weights {list(w.shape)}, group {group}, offset_group "
                           f"{offset_group}")
    if tuple(offset.shape) != (x.shape[0], offset_group * 2 * taps, *out):
        raise ConvertError(f"offset {list(offset.shape)}, expected {[x.shape[0], offset_group * 2 * taps] + out}")
    if mask is not None and tuple(mask.shape) != (x.shape[0], offset_group * taps, *out):
        raise ConvertError(f"mask {list(mask.shape)}, expected {[x.shape[0], offset_group * taps] + out}")
    operands = [x, w, offset] + [v for v in (bias, mask) if v is not None]
    return [ctx.emit1("DeformConv", operands, {**spatial, "group": group, "offset_group": offset_group,
                                               "has_bias": bias is not None, "has_mask": mask is not None})]
