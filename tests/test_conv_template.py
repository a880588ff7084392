"""The direct convolution template (schedule/conv.py): where it applies (output channels a multiple
of the vector width, images large enough) the compiled model runs it and matches onnxruntime on
fresh random inputs; elsewhere the implicit GEMM stays, as correct."""
from __future__ import annotations

import numpy as np
import pytest

import tcomp
from onnx_helpers import assert_matches, make_model, node, rand, reference, with_static_outputs
from tcomp.schedule.conv import conv_tiles

TOL = 1e-5

CASES = [
    # name, x shape, w shape, attrs, direct (the template applies)
    ("3x3_pad1", (1, 16, 14, 14), (32, 16, 3, 3), {"pads": [1, 1, 1, 1]}, True),
    ("batch2_stride2_asym", (2, 8, 17, 15), (16, 8, 3, 3), {"strides": [2, 2], "pads": [0, 1, 2, 1]}, True),
    ("dilation2", (1, 5, 20, 20), (48, 5, 3, 3), {"dilations": [2, 2], "pads": [2, 2, 2, 2]}, True),
    ("1x1", (1, 24, 12, 12), (64, 24, 1, 1), {}, True),
    ("1x1_stride2_nopad", (1, 16, 16, 16), (32, 16, 1, 1), {"strides": [2, 2]}, True),
    ("stem_7x7_s2", (1, 3, 40, 40), (32, 3, 7, 7), {"strides": [2, 2], "pads": [3, 3, 3, 3]}, True),
    ("rect_3x5", (1, 6, 12, 16), (16, 6, 3, 5), {"pads": [1, 2, 1, 2]}, True),
    ("valid_no_pad", (1, 4, 10, 10), (16, 4, 3, 3), {}, True),
    ("channels_18", (1, 8, 12, 12), (18, 8, 3, 3), {"pads": [1, 1, 1, 1]}, False),  # not a multiple of lanes
    ("prime_image", (1, 8, 13, 13), (32, 8, 3, 3), {"pads": [1, 1, 1, 1]}, False),  # 1-pixel tiles
]


def _compiled(model, **options):
    mod = tcomp.compile(model, **options)
    tiles = [k.func.attrs.get("tiles") if k.func.attrs.get("kind") == "direct conv" else None
             for k in mod.kernels.values()]
    return mod, tiles


def _check(nodes, inputs, inits, direct: bool, schedule: str = "template"):
    model = make_model(nodes, inputs, ["y"], inits=inits)
    refs = reference(model, inputs)
    mod, tiles = _compiled(with_static_outputs(model, refs), schedule=schedule)
    assert bool(tiles and tiles[0]) == direct, tiles
    assert_matches(mod.run(inputs)[0], refs[0], relnorm=TOL)


@pytest.mark.parametrize("xs,ws,attrs,direct", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_conv_bias(xs, ws, attrs, direct):
    _check([node("Conv", ["x", "w", "b"], ["y"], **attrs)], {"x": rand(xs)},
           {"w": rand(ws, -0.3, 0.3), "b": rand((ws[0],))}, direct)


UNPADDED = [
    # x shape, w shape, attrs: padded convs whose taps read the input itself (no pad stage)
    ((2, 8, 55, 55), (32, 8, 3, 3), {"strides": [2, 2], "pads": [1, 1, 1, 1]}),
    ((1, 3, 63, 63), (32, 3, 7, 7), {"strides": [2, 2], "pads": [3, 3, 3, 3]}),
    ((1, 5, 29, 48), (32, 5, 3, 3), {"pads": [0, 1, 2, 1]}),
    ((1, 4, 19, 40), (32, 4, 3, 3), {"pads": [1, 2, 1, 2], "dilations": [1, 2]}),
    ((2, 16, 29, 28), (32, 16, 3, 3), {"pads": [1, 1, 1, 1]}),  # odd: not Winograd (schedule/winograd.py)
]


@pytest.mark.parametrize("xs,ws,attrs", UNPADDED, ids=[str(c[0]) for c in UNPADDED])
def test_padded_conv_without_pad_stage(xs, ws, attrs):
    """Padded convs with one-row register tiles: no pad buffer, the taps' rows bounded by the loop,
    the border tiles masked by column; they match onnxruntime on random inputs."""
    nodes = [node("Conv", ["x", "w", "b"], ["c"], **attrs), node("Relu", ["c"], ["y"])]
    model = make_model(nodes, {"x": rand(xs)}, ["y"], inits={"w": rand(ws, -0.3, 0.3), "b": rand((ws[0],))})
    x = rand(xs)
    refs = reference(model, {"x": x})
    mod = tcomp.compile(with_static_outputs(model, refs), schedule="template")
    funcs = [k.func for k in mod.kernels.values() if k.func.attrs.get("kind") == "direct conv"]
    assert len(funcs) == 1 and "pad = alloc" not in str(funcs[0]), [str(f) for f in funcs]
    assert_matches(mod.run({"x": x})[0], refs[0], relnorm=TOL)


def test_residual_relu_epilogue_and_predicted_schedule():
    """Conv + Add(x) + Relu (a ResNet block's tail): the epilogue reads the residual at the output's
    index in the write-back; the default (predicted) compile runs as correct."""
    x = rand((1, 32, 14, 14))
    nodes = [node("Conv", ["x", "w", "b"], ["c"], pads=[1, 1, 1, 1]), node("Add", ["c", "x"], ["s"]),
             node("Relu", ["s"], ["y"])]
    inits = {"w": rand((32, 32, 3, 3), -0.2, 0.2), "b": rand((32,))}
    _check(nodes, {"x": x}, inits, True)
    _check(nodes, {"x": x}, inits, True, schedule="predicted")


def test_weights_computed_at_run_time():
    """Weights that are a graph input are read as they are (no re-layout)."""
    _check([node("Conv", ["x", "w"], ["y"], pads=[1, 1, 1, 1])],
           {"x": rand((1, 8, 12, 12)), "w": rand((16, 8, 3, 3))}, {}, True)


def test_tiles_fill_the_registers_and_bands_feed_every_thread():
    """ResNet-18's shapes: two vectors of output channels by up to 12 pixels of a row, bands of rows
    within 16 KiB of accumulators, at least 4 bands per thread, weight blocks within 40 KiB."""
    for oh, k, c in ((56, 64, 64), (28, 128, 128), (14, 256, 256), (7, 512, 512)):
        t = conv_tiles(1, oh, oh, k, c, 3, 3, lanes=16, num_threads=2)
        assert t.k3 == 32 and t.oh3 * t.ow3 <= 12 and oh % t.ow3 == 0
        assert t.rows * t.oh3 * oh * t.k3 * 4 <= 16 * 1024 and (k // t.k3) * (oh // (t.oh3 * t.rows)) >= 8
        assert t.rc1 * 9 * t.k3 * 4 <= 40 * 1024 and c % t.rc1 == 0
    assert conv_tiles(1, 13, 13, 32, 8, 3, 3, lanes=16, num_threads=2) is None  # prime: 1-pixel tiles
    assert conv_tiles(1, 14, 14, 24, 8, 3, 3, lanes=16, num_threads=2) is None  # 24 channels


def test_symbolic_batch_keeps_the_implicit_gemm():
    model = make_model([node("Conv", ["x", "w"], ["y"], pads=[1, 1, 1, 1])], {"x": rand((2, 8, 12, 12))}, ["y"],
                       inits={"w": rand((16, 8, 3, 3))})
    model.graph.input[0].type.tensor_type.shape.dim[0].dim_param = "batch"
    model.graph.output[0].type.tensor_type.shape.dim[0].dim_param = "batch"
    x = rand((3, 8, 12, 12))
    mod, tiles = _compiled(model, schedule="template")
    assert tiles == [None]
    assert_matches(mod.run({"x": x})[0], reference(model, {"x": x})[0], relnorm=TOL)


def test_outer_loops_are_not_unrolled_by_llvm():
    """A 14-pixel x 32-channel register tile accumulated over a 16-channel loop inside the 3 x 3
    taps' loops: the code generator keeps LLVM from unrolling the tap loops (the channel loop's
    copies keep their 28 accumulators in other registers: moves and spills at every iteration in
    conv kernels), so the tile's FMAs appear once in the assembly (AVX-512 hosts)."""
    from tcomp import tir

    x = tir.placeholder((64, 30, 30), name="X")
    w = tir.placeholder((64, 3, 3, 64), name="W")
    rc, rr, rs = tir.reduce_axis(64, "rc"), tir.reduce_axis(3, "rr"), tir.reduce_axis(3, "rs")
    c = tir.compute((28, 28, 64), lambda oh, ow, k: tir.sum(x[rc, oh + rr, ow + rs] * w[rc, rr, rs, k],
                                                            axis=[rc, rr, rs]), name="C")
    sch = tcomp.Schedule(tir.create_func([x, w, c]))
    block = sch.get_block("C")
    oh, ow, k, rc, rr, rs = sch.get_loops(block)
    ow0, ow1 = sch.split(ow, [None, 14])
    k0, k1 = sch.split(k, [None, 32])
    rc0, rc1 = sch.split(rc, [None, 16])
    sch.reorder(oh, ow0, k0, rc0, rr, rs, rc1, ow1, k1)
    sch.reverse_compute_at(sch.cache_write(block, 0, "local"), k0, True)
    sch.parallel(oh)
    sch.unroll(ow1)
    sch.vectorize(k1)
    sch.decompose_reduction(block, rc0)
    kernel = tcomp.build(sch)
    xv, wv = rand((64, 30, 30)), rand((64, 3, 3, 64))
    want = np.einsum("crsk,cxyrs->xyk", wv, np.lib.stride_tricks.sliding_window_view(xv, (3, 3), axis=(1, 2)))
    np.testing.assert_allclose(kernel(xv, wv), want, rtol=1e-4, atol=1e-4)
    if "avx512f" not in kernel.module.target.features:
        pytest.skip("the instruction count is AVX-512's")
    assert kernel.assembly().count("vfmadd") == 14 * 2


def test_blocked_weight_layout_and_its_source_shape():
    """The template reads constant weights as w_b[k // kb, c, r, s, k % kb] (relaid once by the compiler)."""
    from tcomp.schedule.layouts import Blocked, relayout, source_shape

    w = rand((64, 3, 5, 7))
    layout = Blocked(0, 32, (0, 2, 3, 4, 1))
    blocked = relayout(w, layout)
    assert blocked.shape == (2, 3, 5, 7, 32) and blocked.flags.c_contiguous
    k, c, r, s = 37, 2, 4, 6
    assert blocked[k // 32, c, r, s, k % 32] == w[k, c, r, s]
    assert source_shape(blocked.shape, layout) == w.shape
    assert source_shape(relayout(w, (1, 2, 3, 0)).shape, (1, 2, 3, 0)) == w.shape
