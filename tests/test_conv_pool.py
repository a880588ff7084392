"""Conv (+ Relu) + MaxPool as one kernel (schedule/conv_pool.py, graph/passes.py's fuse_conv_maxpool):
where it applies the compiled model runs one ``conv+maxpool`` kernel and matches onnxruntime on
fresh random inputs; where the conv's output is read elsewhere too, the two kernels stay."""
from __future__ import annotations

import numpy as np
import pytest

import tcomp
from onnx_helpers import (assert_matches, compile_and_check_fresh_feeds, make_model, node, rand, reference,
                          with_static_outputs)

TOL = 1e-5
STEM = {"strides": [2, 2], "pads": [3, 3, 3, 3]}
POOL = {"kernel_shape": [3, 3], "strides": [2, 2], "pads": [1, 1, 1, 1]}

CASES = [
    # name, x shape, w shape, conv attrs, relu, bias, pool attrs
    ("stem_tail_columns", (1, 3, 40, 40), (64, 3, 7, 7), STEM, True, True, POOL),   # 10 pooled columns
    ("stem_16_columns", (1, 3, 64, 64), (64, 3, 7, 7), STEM, True, True, POOL),
    ("batch2_no_relu_no_bias_2x2", (2, 4, 30, 30), (32, 4, 3, 3), {"pads": [1, 1, 1, 1]}, False, False,
     {"kernel_shape": [2, 2], "strides": [2, 2]}),
    ("ceil_mode_unpadded", (1, 3, 48, 48), (64, 3, 7, 7), STEM, True, True,
     {"kernel_shape": [3, 3], "strides": [2, 2], "ceil_mode": 1}),
    ("asymmetric_pads_stride1_pool", (1, 5, 34, 36), (32, 5, 3, 3), {"pads": [0, 1, 2, 1]}, True, True,
     {"kernel_shape": [3, 2], "strides": [1, 1], "pads": [1, 0, 2, 1]}),
]


def _kinds(mod) -> list:
    return [k.func.attrs.get("kind") for k in mod.kernels.values()]


@pytest.mark.parametrize("xs,ws,conv,relu,bias,pool", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
@pytest.mark.parametrize("schedule", ["template", "predicted"])
def test_conv_relu_maxpool_is_one_kernel(xs, ws, conv, relu, bias, pool, schedule):
    inputs = ["x", "w", "b"] if bias else ["x", "w"]
    nodes = [node("Conv", inputs, ["c"], **conv)]
    if relu:
        nodes.append(node("Relu", ["c"], ["r"]))
    nodes.append(node("MaxPool", ["r" if relu else "c"], ["y"], **pool))
    inits = {"w": rand(ws, -0.3, 0.3), **({"b": rand((ws[0],))} if bias else {})}
    model = make_model(nodes, {"x": rand(xs)}, ["y"], inits=inits)
    mod = compile_and_check_fresh_feeds(model, lambda: {"x": rand(xs)}, relnorm=TOL, schedule=schedule)
    assert _kinds(mod) == ["conv+maxpool"], _kinds(mod)


def test_conv_output_read_twice_keeps_two_kernels():
    """The conv's map is a second output: it is written, so the pool stays a kernel of its own."""
    nodes = [node("Conv", ["x", "w", "b"], ["c"], **STEM), node("Relu", ["c"], ["r"]),
             node("MaxPool", ["r"], ["y"], **POOL)]
    feeds = {"x": rand((1, 3, 40, 40))}
    model = make_model(nodes, feeds, ["y", "r"], inits={"w": rand((64, 3, 7, 7), -0.3, 0.3), "b": rand((64,))})
    refs = reference(model, feeds)
    mod = tcomp.compile(with_static_outputs(model, refs), schedule="template")
    assert "conv+maxpool" not in _kinds(mod)
    for ours, ref in zip(mod.run(feeds), refs):
        assert_matches(ours, ref, relnorm=TOL)


def test_relu_before_pool_is_applied_to_every_tap():
    """Negative conv outputs everywhere: the pooled values are the Relu's zeros, not the conv's maxima."""
    nodes = [node("Conv", ["x", "w", "b"], ["c"], **STEM), node("Relu", ["c"], ["r"]),
             node("MaxPool", ["r"], ["y"], **POOL)]
    feeds = {"x": rand((1, 3, 40, 40), 0.5, 1.0)}
    model = make_model(nodes, feeds, ["y"], inits={"w": rand((64, 3, 7, 7), -0.3, -0.1), "b": rand((64,))})
    refs = reference(model, feeds)
    mod = tcomp.compile(with_static_outputs(model, refs), schedule="template")
    assert _kinds(mod) == ["conv+maxpool"]
    out = mod.run(feeds)[0]
    assert_matches(out, refs[0], relnorm=TOL)
    assert np.count_nonzero(out == 0) > out.size // 2


def test_tuning_tasks_are_the_compiled_groups():
    """The tuner takes its tasks from the groups ``compile`` lowers: the fused Conv+Relu+MaxPool is not a
    task (no records could apply to it), the conv after it is."""
    from tcomp.tuning.tasks import extract_tasks, model_groups

    nodes = [node("Conv", ["x", "w", "b"], ["c"], **STEM), node("Relu", ["c"], ["r"]),
             node("MaxPool", ["r"], ["p"], **POOL), node("Conv", ["p", "w2"], ["y"], pads=[1, 1, 1, 1])]
    feeds = {"x": rand((1, 3, 64, 64))}
    inits = {"w": rand((64, 3, 7, 7), -0.3, 0.3), "b": rand((64,)), "w2": rand((32, 64, 3, 3), -0.1, 0.1)}
    model = make_model(nodes, feeds, ["y"], inits=inits)
    refs = reference(model, feeds)
    model = with_static_outputs(model, refs)
    assert [g.label for g in model_groups(model)] == ["ConvMaxPool", "Conv"]
    (task,) = extract_tasks(model)
    assert task.group_labels == ["Conv"]
    assert_matches(tcomp.compile(model, schedule="template").run(feeds)[0], refs[0], relnorm=TOL)
