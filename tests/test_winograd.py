"""The Winograd F(2x2, 3x3) CPU kernel (schedule/winograd.py): its transforms reproduce a 3x3
correlation in numpy; where it applies (3x3, stride 1, pad 1, even output sizes, enough rows of
tiles, constant weights) the compiled model runs it and matches onnxruntime on fresh random
inputs; elsewhere the direct conv stays."""
from __future__ import annotations

import numpy as np
import pytest
from onnx_helpers import (
    assert_matches,
    compile_and_check_fresh_feeds,
    make_model,
    node,
    rand,
    reference,
    with_static_outputs,
)

import tcomp
from tcomp.schedule.conv import ConvShape
from tcomp.schedule.layouts import Winograd, relayout, source_shape
from tcomp.schedule.winograd import (
    AT,
    BAND_BYTES,
    BT,
    band_bytes,
    filter_transform,
    winograd_plan,
)

TOL = 1e-5
PAD1 = {"pads": [1, 1, 1, 1]}

CASES = [
    # name, x shape, w shape, bias, residual (Conv + Add(x) + Relu)
    ("resnet_56", (1, 64, 56, 56), (64, 64, 3, 3), True, False),
    ("resnet_28_residual", (1, 128, 28, 28), (128, 128, 3, 3), True, True),
    ("batch2_no_bias", (2, 16, 28, 28), (32, 16, 3, 3), False, False),
    ("one_vector_of_channels_rect", (1, 8, 20, 36), (16, 8, 3, 3), True, False),  # 18 tiles a row: 2 vectors
    ("three_channels", (1, 3, 32, 32), (48, 3, 3, 3), True, False),
    ("groups_of_blocks_residual", (1, 64, 14, 14), (64, 64, 3, 3), True, True),   # 7 rows: 2 bands a row
]


def _kinds(mod) -> list:
    return [k.func.attrs.get("kind") for k in mod.kernels.values()]


def test_transforms_compute_a_3x3_correlation():
    """A^T [(G g G^T) * (B^T d B)] A is the valid 3x3 correlation of a 4x4 patch d (2x2 outputs)."""
    d, g = np.random.default_rng().standard_normal((2, 4, 4))[0], np.random.default_rng().standard_normal((3, 3))
    u = filter_transform(g[None, None])[0, 0]
    bt, at = np.array(BT, dtype=np.float64), np.array(AT, dtype=np.float64)
    y = at @ (u * (bt @ d @ bt.T)) @ at.T
    want = np.array([[np.sum(d[i:i + 3, j:j + 3] * g) for j in range(2)] for i in range(2)])
    np.testing.assert_allclose(y, want, rtol=1e-12, atol=1e-12)


def test_weight_layout_and_its_source_shape():
    w = rand((64, 5, 3, 3))
    u = relayout(w, Winograd(32))
    assert u.shape == (2, 16, 5, 32) and u.dtype == np.float32 and u.flags.c_contiguous
    k, c, a, b = 37, 3, 2, 1
    np.testing.assert_allclose(u[k // 32, 4 * a + b, c, k % 32], filter_transform(w)[k, c, a, b], rtol=1e-6)
    assert source_shape(u.shape, Winograd(32)) == w.shape


@pytest.mark.parametrize("xs,ws,bias,residual", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
@pytest.mark.parametrize("schedule", ["template", "predicted"])
def test_winograd_conv_matches_onnxruntime(xs, ws, bias, residual, schedule):
    inputs = ["x", "w", "b"] if bias else ["x", "w"]
    nodes = [node("Conv", inputs, ["c"], **PAD1)]
    if residual:
        nodes += [node("Add", ["c", "x"], ["s"]), node("Relu", ["s"], ["y"])]
    else:
        nodes.append(node("Relu", ["c"], ["y"]))
    inits = {"w": rand(ws, -0.3, 0.3), **({"b": rand((ws[0],))} if bias else {})}
    model = make_model(nodes, {"x": rand(xs)}, ["y"], inits=inits)
    mod = compile_and_check_fresh_feeds(model, lambda: {"x": rand(xs)}, relnorm=TOL, schedule=schedule)
    assert _kinds(mod) == ["winograd conv"], _kinds(mod)


def test_plans_of_resnet_shapes_and_the_band_buffers_bound():
    """ResNet-18's 56x56 and 28x28 convs: one group (a band per row of tiles); 14x14: two groups
    (7 rows for 2 threads); a wide map with many channels: its band's buffers would exceed
    ``BAND_BYTES`` (on a thread's stack): the direct conv stays."""
    def shape(c, hw):
        return ConvShape(1, c, hw, hw, c, 3, 3, hw, hw, 1, 1, 1, 1, 1, 1)

    assert winograd_plan(shape(64, 56), 16, 2) == (32, 7, 1)
    assert winograd_plan(shape(128, 28), 16, 2) == (32, 7, 1)
    assert winograd_plan(shape(256, 14), 16, 2) == (32, 7, 2)
    assert band_bytes(256, 112, 32, 16) > BAND_BYTES and winograd_plan(shape(256, 112), 16, 2) is None


OTHERS = [
    # name, x shape, w shape, attrs, constant weights: the direct conv (or implicit GEMM) stays
    ("stride2", (1, 16, 28, 28), (32, 16, 3, 3), {"strides": [2, 2], "pads": [1, 1, 1, 1]}, True),
    ("odd_height", (1, 16, 29, 28), (32, 16, 3, 3), PAD1, True),
    ("unpadded", (1, 16, 30, 30), (32, 16, 3, 3), {}, True),
    ("few_rows_of_tiles", (1, 16, 14, 14), (32, 16, 3, 3), PAD1, True),   # 7 bands for 2 threads
    ("weights_an_input", (1, 16, 28, 28), (32, 16, 3, 3), PAD1, False),
]


@pytest.mark.parametrize("xs,ws,attrs,const", [c[1:] for c in OTHERS], ids=[c[0] for c in OTHERS])
def test_other_convs_keep_their_kernels(xs, ws, attrs, const):
    feeds = {"x": rand(xs)} if const else {"x": rand(xs), "w": rand(ws, -0.3, 0.3)}
    inits = {"w": rand(ws, -0.3, 0.3)} if const else {}
    model = make_model([node("Conv", ["x", "w"], ["y"], **attrs)], feeds, ["y"], inits=inits)
    refs = reference(model, feeds)
    mod = tcomp.compile(with_static_outputs(model, refs), schedule="template", num_threads=2)
    assert "winograd conv" not in _kinds(mod), _kinds(mod)
    assert_matches(mod.run(feeds)[0], refs[0], relnorm=TOL)
