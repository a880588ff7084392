"""Vision / spatial operator tests: tcomp vs onnxruntime on fresh random inputs.

Resize and Upsample (every mode, coordinate transform, nearest rounding, opset),
ConvTranspose, 3-D and Lp pooling, GridSample, AffineGrid, DepthToSpace,
SpaceToDepth, CenterCropPad, Col2Im. Shape operands (scales, sizes, roi ...) are
initializers: tcomp compiles static shapes.
"""
from __future__ import annotations

import numpy as np
import pytest
from onnx.reference import ReferenceEvaluator

from onnx_helpers import assert_matches, check, make_model, node, rand, randint, run_tcomp, with_static_outputs

F32 = np.float32
CONV_TOL = 1e-4  # relative-norm tolerance of convolution-like reductions


def _resize(x, opset, inits, names, rtol=1e-4, atol=1e-5, op="Resize", **attrs):
    """Against onnxruntime, except where it departs from the ONNX reference: align_corners and
    tf_crop_and_resize with a fractional scale * length (onnxruntime rounds that length)."""
    nodes = [node(op, ["x"] + names, ["y"], **attrs)]
    scales = inits.get("scales")
    fractional = scales is not None and any(float(s) * n != int(float(s) * n) for s, n in zip(scales, x.shape))
    if fractional and attrs.get("coordinate_transformation_mode") in ("align_corners", "tf_crop_and_resize"):
        return check_onnx_reference(nodes, {"x": x}, ["y"], opset, inits, rtol=rtol, atol=atol)
    return check(nodes, {"x": x}, ["y"], opset=opset, inits=inits, rtol=rtol, atol=atol)


def check_onnx_reference(nodes, inputs, outputs, opset, inits=None, rtol=1e-4, atol=1e-5):
    """Like ``check`` but against onnx.reference, for cases onnxruntime does not implement."""
    model = make_model(nodes, inputs, outputs, opset, inits)
    refs = [np.asarray(r) for r in ReferenceEvaluator(model).run(None, inputs)]
    ours = run_tcomp(with_static_outputs(model, refs), inputs)
    for name, o, r in zip(outputs, ours, refs):
        assert_matches(o, r, rtol=rtol, atol=atol, name=name)


def _f(values):
    return np.array(values, dtype=F32)


def _i(values):
    return np.array(values, dtype=np.int64)


# ---------------------------------------------------------------------------------------------
# Resize
# ---------------------------------------------------------------------------------------------

COORD_MODES = ["half_pixel", "pytorch_half_pixel", "align_corners", "asymmetric"]
NEAREST_MODES = ["round_prefer_floor", "round_prefer_ceil", "floor", "ceil"]
# scales exact in float32, so that nearest rounding ties are exact ties: onnxruntime computes
# source coordinates in float32, the ONNX reference (and tcomp's tables) in float64
SCALES = [[1, 1, 2.0, 3.0], [1, 1, 0.5, 0.75], [1, 1, 1.75, 0.625], [1, 1, 3.0, 1.0]]


@pytest.mark.parametrize("coord", COORD_MODES)
@pytest.mark.parametrize("nearest_mode", NEAREST_MODES)
@pytest.mark.parametrize("scales", SCALES[:3])
def test_resize_nearest_scales(coord, nearest_mode, scales):
    x = rand((2, 3, 7, 9))
    _resize(x, 13, {"roi": _f([]), "scales": _f(scales)}, ["roi", "scales"], mode="nearest",
            coordinate_transformation_mode=coord, nearest_mode=nearest_mode)


@pytest.mark.parametrize("coord", COORD_MODES)
@pytest.mark.parametrize("nearest_mode", NEAREST_MODES)
@pytest.mark.parametrize("scales", [[1, 1, 0.6, 0.7], [1, 1, 1.3, 2.2]])
def test_resize_nearest_rounding_ties(coord, nearest_mode, scales):
    """Scales inexact in float32 make (half-)integer coordinates ties only up to rounding: the
    ONNX reference (float64 coordinates, like tcomp) decides; onnxruntime computes in float32.
    (align_corners is left out: the reference divides by scale * length, not the integer
    output length as the specification and onnxruntime do.)"""
    x = rand((1, 2, 7, 10))
    check_onnx_reference([node("Resize", ["x", "roi", "scales"], ["y"], mode="nearest", nearest_mode=nearest_mode,
                               coordinate_transformation_mode=coord)], {"x": x}, ["y"], 13,
                         {"roi": _f([]), "scales": _f(scales)})


@pytest.mark.parametrize("coord", COORD_MODES)
@pytest.mark.parametrize("scales", SCALES)
def test_resize_linear_scales(coord, scales):
    x = rand((2, 3, 7, 9))
    _resize(x, 13, {"roi": _f([]), "scales": _f(scales)}, ["roi", "scales"], mode="linear",
            coordinate_transformation_mode=coord)


@pytest.mark.parametrize("coord", COORD_MODES)
@pytest.mark.parametrize("a, exclude", [(-0.75, 0), (-0.5, 1), (-0.6, 0)])
@pytest.mark.parametrize("scales", SCALES[:3])
def test_resize_cubic_scales(coord, a, exclude, scales):
    x = rand((1, 2, 8, 7))
    _resize(x, 13, {"roi": _f([]), "scales": _f(scales)}, ["roi", "scales"], mode="cubic",
            coordinate_transformation_mode=coord, cubic_coeff_a=a, exclude_outside=exclude)


@pytest.mark.parametrize("mode", ["nearest", "linear", "cubic"])
@pytest.mark.parametrize("sizes", [[1, 3, 13, 5], [1, 3, 4, 17], [2, 3, 6, 9]])
def test_resize_sizes(mode, sizes):
    x = rand((1, 3, 6, 9)) if sizes[0] == 1 else rand((2, 3, 6, 9))
    _resize(x, 13, {"roi": _f([]), "sizes": _i(sizes)}, ["roi", "", "sizes"], mode=mode)


@pytest.mark.parametrize("mode", ["linear", "cubic"])
def test_resize_batch_axes(mode):
    """onnxruntime resizes only the inner axes: onnx.reference is the reference."""
    x = rand((3, 4, 5, 6))
    check_onnx_reference([node("Resize", ["x", "roi", "scales"], ["y"], mode=mode)], {"x": x}, ["y"], 13,
                         {"roi": _f([]), "scales": _f([2.0, 1.0, 0.7, 1.5])})


@pytest.mark.parametrize("mode", ["linear", "nearest"])
@pytest.mark.parametrize("extrapolation", [0.0, 7.5])
def test_resize_tf_crop_and_resize(mode, extrapolation):
    x = rand((1, 2, 8, 9))
    roi = _f([0, 0, -0.2, 0.35, 1, 1, 0.8, 1.3])
    _resize(x, 13, {"roi": roi, "sizes": _i([1, 2, 5, 7])}, ["roi", "", "sizes"], mode=mode,
            coordinate_transformation_mode="tf_crop_and_resize", extrapolation_value=extrapolation)


@pytest.mark.parametrize("dtype", [np.uint8, np.int8, np.int32])
def test_resize_nearest_dtypes(dtype):
    x = randint((1, 2, 5, 6), 0, 100).astype(dtype)
    _resize(x, 13, {"roi": _f([]), "scales": _f([1, 1, 2.5, 0.5])}, ["roi", "scales"], mode="nearest")


@pytest.mark.parametrize("mode, dtype", [("nearest", np.int64), ("linear", np.float64), ("cubic", np.float64)])
def test_resize_dtypes_onnx_reference(mode, dtype):
    """int64 and float64 Resize are not in onnxruntime."""
    x = (rand((1, 2, 5, 6)) * 100).astype(dtype)
    # the reference computes cubic coefficients in float32 (cubic_coeff_a is a float32 attribute)
    rtol, atol = (1e-5, 1e-4) if mode == "cubic" else (1e-10, 1e-9)
    check_onnx_reference([node("Resize", ["x", "roi", "scales"], ["y"], mode=mode)], {"x": x}, ["y"], 13,
                         {"roi": _f([]), "scales": _f([1, 1, 1.5, 2.5])}, rtol=rtol, atol=atol)


@pytest.mark.parametrize("mode", ["nearest", "linear"])
@pytest.mark.parametrize("scales", [[1, 1, 2.0, 2.0], [1, 1, 0.5, 0.4], [1, 1, 1.5, 3.0]])
def test_resize_opset10(mode, scales):
    x = rand((1, 3, 6, 10))
    _resize(x, 10, {"scales": _f(scales)}, ["scales"], mode=mode)


@pytest.mark.parametrize("coord", ["half_pixel", "align_corners", "asymmetric", "tf_crop_and_resize"])
def test_resize_opset11(coord):
    x = rand((1, 2, 6, 7))
    roi = _f([0, 0, 0.1, 0.2, 1, 1, 0.9, 1.0])
    _resize(x, 11, {"roi": roi, "scales": _f([1, 1, 1.5, 0.75])}, ["roi", "scales"], mode="linear",
            coordinate_transformation_mode=coord)


@pytest.mark.parametrize("axes", [[2, 3], [3, 2], [-1], [1]])
@pytest.mark.parametrize("mode", ["nearest", "linear"])
def test_resize_axes(axes, mode):
    x = rand((1, 3, 6, 7))
    scales = _f([2.0, 0.6][:len(axes)])
    _resize(x, 18, {"scales": scales}, ["", "scales"], mode=mode, axes=axes)


@pytest.mark.parametrize("policy", ["stretch", "not_larger", "not_smaller"])
@pytest.mark.parametrize("sizes", [[9, 13], [4, 5]])
def test_resize_keep_aspect_ratio(policy, sizes):
    x = rand((1, 2, 6, 7))
    _resize(x, 18, {"sizes": _i(sizes)}, ["", "", "sizes"], mode="nearest", axes=[2, 3],
            keep_aspect_ratio_policy=policy)


@pytest.mark.parametrize("mode", ["linear", "cubic"])
@pytest.mark.parametrize("scales", [[1, 1, 0.6, 0.8], [1, 1, 0.34, 0.5], [1, 1, 2.0, 0.7]])
def test_resize_antialias(mode, scales):
    x = rand((1, 2, 12, 15))
    _resize(x, 18, {"scales": _f(scales)}, ["", "scales"], mode=mode, antialias=1)


@pytest.mark.parametrize("scales", [[1, 1, 0.6, 0.8], [1, 1, 1.7, 2.3]])
def test_resize_half_pixel_symmetric(scales):
    x = rand((1, 2, 7, 9))
    _resize(x, 19, {"scales": _f(scales)}, ["", "scales"], mode="linear",
            coordinate_transformation_mode="half_pixel_symmetric")


def test_resize_fuses_with_consumer():
    """nearest 2x upsampling then an elementwise op: one kernel, still exact."""
    x = rand((2, 4, 5, 6))
    nodes = [node("Resize", ["x", "", "scales"], ["r"], mode="nearest"), node("Relu", ["r"], ["y"])]
    check(nodes, {"x": x}, ["y"], opset=13, inits={"scales": _f([1, 1, 2, 2])})


def test_resize_refuses_linear_integers():
    x = randint((1, 1, 4, 4), 0, 9).astype(np.uint8)
    with pytest.raises(Exception, match="linear resize of uint8"):
        _resize(x, 13, {"roi": _f([]), "scales": _f([1, 1, 2, 2])}, ["roi", "scales"], mode="linear")


@pytest.mark.parametrize("opset, mode", [(9, "nearest"), (9, "linear"), (7, "nearest")])
def test_upsample(opset, mode):
    x = rand((1, 2, 4, 5))
    scales = [1.0, 1.0, 2.0, 3.0]
    if opset < 9:
        _resize(x, opset, {}, [], op="Upsample", mode=mode, scales=scales)
    else:
        _resize(x, opset, {"scales": _f(scales)}, ["scales"], op="Upsample", mode=mode)


# ---------------------------------------------------------------------------------------------
# ConvTranspose
# ---------------------------------------------------------------------------------------------

def _conv_transpose(x_shape, w_shape, bias=True, opset=17, **attrs):
    x, w = rand(x_shape), rand(w_shape)
    inits = {"w": w}
    names = ["x", "w"]
    if bias:
        inits["b"] = rand((w_shape[1] * attrs.get("group", 1),))
        names.append("b")
    check([node("ConvTranspose", names, ["y"], **attrs)], {"x": x}, ["y"], opset=opset, inits=inits,
          relnorm=CONV_TOL)


@pytest.mark.parametrize("strides, kernel, pads, dilations, output_padding", [
    ([1, 1], [3, 3], [0, 0, 0, 0], [1, 1], [0, 0]),
    ([2, 2], [4, 4], [1, 1, 1, 1], [1, 1], [0, 0]),
    ([2, 2], [3, 3], [1, 1, 1, 1], [1, 1], [1, 1]),
    ([3, 2], [3, 5], [0, 2, 1, 0], [1, 1], [2, 1]),
    ([2, 2], [3, 3], [0, 0, 0, 0], [2, 2], [0, 0]),      # dilation sharing a factor with the stride
    ([4, 3], [3, 2], [1, 0, 2, 1], [2, 1], [1, 0]),
    ([3, 3], [2, 1], [0, 0, 0, 0], [1, 1], [0, 0]),      # kernel smaller than stride: bias-only phases
    ([1, 2], [2, 3], [1, 1, 0, 2], [3, 2], [0, 1]),
])
def test_conv_transpose_2d(strides, kernel, pads, dilations, output_padding):
    _conv_transpose((2, 5, 6, 7), [5, 3] + kernel, strides=strides, pads=pads, dilations=dilations,
                    output_padding=output_padding)


@pytest.mark.parametrize("group, ci, co_g", [(2, 6, 3), (3, 3, 1), (4, 8, 5)])
def test_conv_transpose_groups(group, ci, co_g):
    _conv_transpose((1, ci, 5, 6), (ci, co_g, 3, 3), group=group, strides=[2, 2], pads=[1, 0, 0, 1])


@pytest.mark.parametrize("auto_pad", ["SAME_UPPER", "SAME_LOWER", "VALID"])
@pytest.mark.parametrize("strides", [[2, 2], [3, 1]])
def test_conv_transpose_auto_pad(auto_pad, strides):
    _conv_transpose((1, 3, 5, 6), (3, 2, 3, 4), strides=strides, auto_pad=auto_pad)


@pytest.mark.parametrize("output_shape", [[10, 12], [11, 13], [9, 14]])
def test_conv_transpose_output_shape(output_shape):
    _conv_transpose((1, 3, 5, 6), (3, 2, 3, 3), strides=[2, 2], output_shape=output_shape)


def test_conv_transpose_1d():
    _conv_transpose((2, 4, 11), (4, 3, 5), strides=[3], pads=[1, 2], output_padding=[1])


def test_conv_transpose_3d():
    _conv_transpose((1, 3, 4, 5, 3), (3, 2, 3, 2, 3), strides=[2, 1, 2], pads=[1, 0, 0, 0, 1, 1],
                    dilations=[1, 2, 1])


def test_conv_transpose_no_bias_float64():
    x, w = rand((1, 4, 5, 5), dtype=np.float64), rand((4, 3, 4, 4), dtype=np.float64)
    check_onnx_reference([node("ConvTranspose", ["x", "w"], ["y"], strides=[2, 2], pads=[1, 1, 1, 1])],
                         {"x": x}, ["y"], 17, {"w": w}, rtol=1e-10, atol=1e-12)


def test_conv_transpose_epilogue_fuses():
    """A decoder block: ConvTranspose -> Add(skip) -> Relu, the epilogue in the same kernel."""
    x, w, b, skip = rand((1, 8, 9, 9)), rand((8, 4, 4, 4)), rand((4,)), rand((1, 4, 18, 18))
    nodes = [node("ConvTranspose", ["x", "w", "b"], ["c"], strides=[2, 2], pads=[1, 1, 1, 1]),
             node("Add", ["c", "skip"], ["s"]), node("Relu", ["s"], ["y"])]
    check(nodes, {"x": x, "skip": skip}, ["y"], inits={"w": w, "b": b}, relnorm=CONV_TOL)


def test_conv_transpose_large_channels():
    _conv_transpose((1, 64, 17, 19), (64, 32, 4, 4), strides=[2, 2], pads=[1, 1, 1, 1])


# ---------------------------------------------------------------------------------------------
# GridSample
# ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("mode", ["linear", "nearest", "cubic"])
@pytest.mark.parametrize("padding", ["zeros", "border", "reflection"])
@pytest.mark.parametrize("align", [0, 1])
def test_grid_sample_2d(mode, padding, align):
    x = rand((2, 3, 7, 9))
    grid = rand((2, 5, 11, 2), -1.4, 1.4)   # also outside [-1, 1]: the padding modes matter
    nodes = [node("GridSample", ["x", "grid"], ["y"], mode=mode, padding_mode=padding, align_corners=align)]
    if (mode, padding) == ("cubic", "border"):  # onnxruntime differs from the ONNX reference here
        check_onnx_reference(nodes, {"x": x, "grid": grid}, ["y"], 20)
    else:
        check(nodes, {"x": x, "grid": grid}, ["y"], opset=20)


@pytest.mark.parametrize("mode", ["bilinear", "nearest", "bicubic"])
def test_grid_sample_opset16(mode):
    x, grid = rand((1, 2, 6, 5)), rand((1, 4, 3, 2), -1.2, 1.2)
    check([node("GridSample", ["x", "grid"], ["y"], mode=mode)], {"x": x, "grid": grid}, ["y"], opset=16)


@pytest.mark.parametrize("mode", ["linear", "nearest"])
@pytest.mark.parametrize("padding", ["zeros", "border", "reflection"])
def test_grid_sample_3d(mode, padding):
    x = rand((1, 2, 4, 5, 6))
    grid = rand((1, 3, 4, 5, 3), -1.3, 1.3)
    check([node("GridSample", ["x", "grid"], ["y"], mode=mode, padding_mode=padding)], {"x": x, "grid": grid},
          ["y"], opset=20)


def test_grid_sample_from_affine_grid_fused():
    """The usual spatial-transformer pair: a computed grid feeding GridSample."""
    x, theta = rand((2, 3, 8, 10)), rand((2, 2, 3), -0.8, 0.8)
    nodes = [node("AffineGrid", ["theta", "size"], ["grid"], align_corners=0),
             node("GridSample", ["x", "grid"], ["y"], mode="linear")]
    check(nodes, {"x": x, "theta": theta}, ["y"], opset=20, inits={"size": _i([2, 3, 6, 7])})


# ---------------------------------------------------------------------------------------------
# AffineGrid, DepthToSpace, SpaceToDepth, CenterCropPad
# ---------------------------------------------------------------------------------------------

# (a single pixel with align_corners is left out: onnxruntime puts it at 1, the reference at -1)
@pytest.mark.parametrize("size, align", [([2, 3, 5, 7], 0), ([2, 3, 5, 7], 1), ([1, 2, 1, 4], 0),
                                         ([2, 1, 3, 4, 5], 0), ([1, 1, 2, 3, 4], 1)])
def test_affine_grid(size, align):
    nd = len(size) - 2
    theta = rand((size[0], nd, nd + 1))
    check([node("AffineGrid", ["theta", "size"], ["y"], align_corners=align)], {"theta": theta}, ["y"], opset=20,
          inits={"size": _i(size)})


@pytest.mark.parametrize("mode", ["DCR", "CRD"])
@pytest.mark.parametrize("shape, block", [((2, 8, 3, 5), 2), ((1, 27, 2, 3), 3), ((1, 4, 1, 1), 2)])
def test_depth_to_space(mode, shape, block):
    check([node("DepthToSpace", ["x"], ["y"], blocksize=block, mode=mode)], {"x": rand(shape)}, ["y"], opset=13)


@pytest.mark.parametrize("shape, block", [((2, 3, 4, 6), 2), ((1, 2, 9, 3), 3)])
@pytest.mark.parametrize("dtype", [F32, np.uint8])
def test_space_to_depth(shape, block, dtype):
    x = randint(shape, -50, 50).astype(dtype)
    check([node("SpaceToDepth", ["x"], ["y"], blocksize=block)], {"x": x}, ["y"], opset=13)


def test_space_to_depth_crd():
    """mode (opset 28) is newer than onnxruntime: onnx.reference is the reference."""
    check_onnx_reference([node("SpaceToDepth", ["x"], ["y"], blocksize=2, mode="CRD")], {"x": rand((2, 3, 4, 6))},
                         ["y"], 28)


@pytest.mark.parametrize("shape, target, axes", [
    ((5, 8, 3), [3, 11, 3], None), ((6, 7, 2), [9, 4], [0, 1]), ((2, 5, 7), [3, 3], [-1, 1]),
    ((4, 4), [4, 2], None)])
def test_center_crop_pad(shape, target, axes):
    attrs = {} if axes is None else {"axes": axes}
    check([node("CenterCropPad", ["x", "shape"], ["y"], **attrs)], {"x": rand(shape)}, ["y"], opset=18,
          inits={"shape": _i(target)})


# ---------------------------------------------------------------------------------------------
# 3-D pooling, LpPool, GlobalLpPool
# ---------------------------------------------------------------------------------------------

POOL_3D = [
    {"kernel_shape": [2, 2, 2]},
    {"kernel_shape": [3, 2, 3], "strides": [2, 1, 2], "pads": [1, 0, 1, 1, 1, 0]},
    {"kernel_shape": [2, 3, 2], "strides": [2, 2, 1], "pads": [0, 1, 0, 1, 1, 1], "ceil_mode": 1},
    {"kernel_shape": [2, 2, 2], "dilations": [2, 1, 2], "strides": [1, 2, 1]},
    {"kernel_shape": [3, 3, 3], "auto_pad": "SAME_UPPER", "strides": [2, 2, 2]},
]


@pytest.mark.parametrize("attrs", POOL_3D)
@pytest.mark.parametrize("op, extra", [("MaxPool", {}), ("AveragePool", {"count_include_pad": 0}),
                                       ("AveragePool", {"count_include_pad": 1})])
def test_pool_3d(attrs, op, extra):
    x = rand((2, 3, 6, 7, 5))
    check([node(op, ["x"], ["y"], **attrs, **extra)], {"x": x}, ["y"], opset=19)


LP_POOL = [
    {"kernel_shape": [3, 3]},
    {"kernel_shape": [3, 2], "strides": [2, 2], "pads": [1, 1, 0, 1]},
    {"kernel_shape": [3, 3], "auto_pad": "SAME_UPPER"},
    {"kernel_shape": [2, 3], "dilations": [2, 1], "pads": [1, 0, 1, 2]},
    {"kernel_shape": [3, 3], "strides": [2, 2], "pads": [1, 1, 1, 1], "ceil_mode": 1},
]


@pytest.mark.parametrize("attrs", LP_POOL)
@pytest.mark.parametrize("p", [1, 2, 3])
def test_lp_pool_2d(attrs, p):
    check([node("LpPool", ["x"], ["y"], p=p, **attrs)], {"x": rand((2, 3, 8, 9))}, ["y"], opset=18)


@pytest.mark.parametrize("shape, attrs", [((1, 3, 11), {"kernel_shape": [3], "strides": [2], "pads": [1, 1]}),
                                          ((1, 2, 5, 6, 4), {"kernel_shape": [2, 3, 2], "pads": [1, 1, 0, 0, 1, 1]})])
def test_lp_pool_1d_3d(shape, attrs):
    check([node("LpPool", ["x"], ["y"], p=2, **attrs)], {"x": rand(shape)}, ["y"], opset=18)


@pytest.mark.parametrize("p", [1, 2, 3])
@pytest.mark.parametrize("shape", [(2, 3, 5, 6), (1, 4, 7), (1, 2, 3, 4, 5)])
def test_global_lp_pool(p, shape):
    check([node("GlobalLpPool", ["x"], ["y"], p=p)], {"x": rand(shape)}, ["y"], opset=18)


# ---------------------------------------------------------------------------------------------
# Col2Im
# ---------------------------------------------------------------------------------------------

def _blocks(image, block, strides, dilations, pads):
    nd = len(image)
    return [(i + pads[a] + pads[a + nd] - d * (k - 1) - 1) // s + 1
            for a, (i, k, s, d) in enumerate(zip(image, block, strides, dilations))]


@pytest.mark.parametrize("image, block, strides, dilations, pads", [
    ([5, 6], [2, 3], [1, 1], [1, 1], [0, 0, 0, 0]),
    ([7, 8], [3, 3], [2, 3], [1, 1], [1, 0, 1, 2]),
    ([9, 7], [2, 2], [1, 2], [3, 2], [0, 1, 2, 1]),
])
def test_col2im_2d(image, block, strides, dilations, pads):
    columns = int(np.prod(_blocks(image, block, strides, dilations, pads)))
    x = rand((2, 3 * int(np.prod(block)), columns))
    check([node("Col2Im", ["x", "image", "block"], ["y"], strides=strides, dilations=dilations, pads=pads)],
          {"x": x}, ["y"], opset=18, inits={"image": _i(image), "block": _i(block)})


def test_col2im_3d():
    """N-D Col2Im is not in onnxruntime: onnx.reference is the reference."""
    image, block, strides = [4, 5, 3], [2, 2, 2], [2, 1, 1]
    columns = int(np.prod(_blocks(image, block, strides, [1, 1, 1], [0] * 6)))
    check_onnx_reference([node("Col2Im", ["x", "image", "block"], ["y"], strides=strides)],
                         {"x": rand((1, 2 * 8, columns))}, ["y"], 18, {"image": _i(image), "block": _i(block)})


# ---------------------------------------------------------------------------------------------
# 3-D Conv
# ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("w_shape, attrs", [
    ((4, 3, 3, 3, 3), {}),
    ((5, 3, 2, 3, 1), {"strides": [2, 1, 2], "pads": [1, 0, 1, 0, 1, 0]}),
    ((6, 1, 3, 2, 3), {"group": 3, "dilations": [1, 2, 1], "pads": [1, 1, 1, 1, 0, 1]}),
    ((4, 3, 3, 3, 3), {"auto_pad": "SAME_UPPER", "strides": [2, 2, 2]}),
])
@pytest.mark.parametrize("bias", [False, True])
def test_conv_3d(w_shape, attrs, bias):
    ci = w_shape[1] * attrs.get("group", 1)
    inits = {"w": rand(w_shape)}
    if bias:
        inits["b"] = rand((w_shape[0],))
    nodes = [node("Conv", ["x"] + list(inits), ["c"], **attrs), node("Relu", ["c"], ["y"])]
    check(nodes, {"x": rand((2, ci, 5, 6, 7))}, ["y"], inits=inits, relnorm=CONV_TOL)


# ---------------------------------------------------------------------------------------------
# RoiAlign
# ---------------------------------------------------------------------------------------------

def _rois(count, height, width, scale):
    """Boxes (x1, y1, x2, y2) in input coordinates / scale, some reaching past the image."""
    corner = rand((count, 2), -2.0, 1.0) * np.array([width, height], dtype=F32) / scale
    size = rand((count, 2), 0.1, 1.2) * np.array([width, height], dtype=F32) / scale
    return np.concatenate([corner, corner + size], axis=1).astype(F32)


@pytest.mark.parametrize("mode", ["avg", "max"])
@pytest.mark.parametrize("coord", ["half_pixel", "output_half_pixel"])
@pytest.mark.parametrize("sampling, scale, out", [(2, 1.0, (5, 5)), (1, 0.5, (3, 7)), (3, 0.25, (2, 4))])
def test_roi_align(mode, coord, sampling, scale, out):
    x = rand((2, 3, 9, 11))
    rois = _rois(5, 9, 11, scale)
    batch = randint((5,), 0, 1)
    check([node("RoiAlign", ["x", "rois", "batch"], ["y"], mode=mode, coordinate_transformation_mode=coord,
                sampling_ratio=sampling, spatial_scale=scale, output_height=out[0], output_width=out[1])],
          {"x": x, "rois": rois, "batch": batch}, ["y"], opset=16)


def test_roi_align_refuses_adaptive_sampling():
    x, rois, batch = rand((1, 2, 6, 6)), _rois(2, 6, 6, 1.0), randint((2,), 0, 0)
    with pytest.raises(Exception, match="sampling_ratio 0"):
        check([node("RoiAlign", ["x", "rois", "batch"], ["y"], sampling_ratio=0)],
              {"x": x, "rois": rois, "batch": batch}, ["y"], opset=16)


# ---------------------------------------------------------------------------------------------
# MaxPool with Indices
# ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("attrs", [
    {"kernel_shape": [2, 2], "strides": [2, 2]},
    {"kernel_shape": [3, 3], "pads": [1, 1, 1, 1]},
    {"kernel_shape": [3, 2], "strides": [2, 1], "pads": [1, 0, 1, 1], "ceil_mode": 1},
    {"kernel_shape": [2, 3], "dilations": [2, 1], "pads": [1, 0, 0, 1]},
    {"kernel_shape": [3, 3], "strides": [2, 2], "auto_pad": "SAME_LOWER"},
])
@pytest.mark.parametrize("storage_order", [0, 1])
def test_max_pool_indices_2d(attrs, storage_order):
    check([node("MaxPool", ["x"], ["y", "i"], storage_order=storage_order, **attrs)], {"x": rand((2, 3, 7, 9))},
          ["y", "i"], opset=12)


@pytest.mark.parametrize("shape, attrs", [((2, 3, 11), {"kernel_shape": [3], "strides": [2], "pads": [1, 1]}),
                                          ((1, 2, 4, 5, 6), {"kernel_shape": [2, 2, 3], "strides": [2, 1, 2]})])
def test_max_pool_indices_1d_3d(shape, attrs):
    check([node("MaxPool", ["x"], ["y", "i"], **attrs)], {"x": rand(shape)}, ["y", "i"], opset=12)


# ---------------------------------------------------------------------------------------------
# MaxUnpool
# ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("shape, attrs, output_shape", [
    ((2, 3, 8, 10), {"kernel_shape": [2, 2], "strides": [2, 2]}, None),
    ((1, 2, 7, 9), {"kernel_shape": [3, 3], "strides": [2, 2], "pads": [1, 1, 1, 1]}, None),
    ((1, 2, 8, 8), {"kernel_shape": [2, 2], "strides": [2, 2]}, [1, 2, 9, 10]),
    ((1, 2, 9), {"kernel_shape": [3], "strides": [3]}, None),
])
def test_max_unpool_after_max_pool(shape, attrs, output_shape):
    names = ["y", "i"] + (["out_shape"] if output_shape is not None else [])
    nodes = [node("MaxPool", ["x"], ["y", "i"], **attrs), node("MaxUnpool", names, ["u"], **attrs)]
    if output_shape is None:
        check(nodes, {"x": rand(shape)}, ["u"], opset=12)
    else:  # onnxruntime reads the indices in output_shape's layout, the ONNX reference (and tcomp) in the
        # unpooled shape's, extended at the ends
        check_onnx_reference(nodes, {"x": rand(shape)}, ["u"], 12, {"out_shape": _i(output_shape)})


# ---------------------------------------------------------------------------------------------
# DeformConv
# ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("c, co, group, offset_group, attrs", [
    (3, 4, 1, 1, {}),
    (4, 6, 2, 2, {"strides": [2, 1], "pads": [1, 1, 0, 1]}),
    (2, 3, 1, 2, {"dilations": [2, 1], "pads": [1, 0, 1, 0]}),
])
@pytest.mark.parametrize("with_mask", [False, True])
def test_deform_conv(c, co, group, offset_group, attrs, with_mask):
    k = (3, 2)
    h, w = 6, 7
    pads, strides, dil = attrs.get("pads", [0] * 4), attrs.get("strides", [1, 1]), attrs.get("dilations", [1, 1])
    out = [(n + pads[a] + pads[a + 2] - d * (kk - 1) - 1) // s + 1
           for a, (n, kk, s, d) in enumerate(zip((h, w), k, strides, dil))]
    inputs = {"x": rand((2, c, h, w)), "offset": rand((2, offset_group * 2 * k[0] * k[1], *out), -2.0, 2.0)}
    names = ["x", "w", "offset", "b"]
    if with_mask:
        inputs["mask"] = rand((2, offset_group * k[0] * k[1], *out), 0.0, 1.0)
        names.append("mask")
    inits = {"w": rand((co, c // group, *k)), "b": rand((co,))}
    check([node("DeformConv", names, ["y"], group=group, offset_group=offset_group, **attrs)], inputs, ["y"],
          opset=19, inits=inits, relnorm=CONV_TOL)
