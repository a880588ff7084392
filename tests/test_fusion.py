"""Graph simplification, fusion and memory planning, checked on real models and against onnxruntime."""
import numpy as np
import onnxruntime
import pytest
from onnx import TensorProto, helper, numpy_helper

import tcomp
from model_zoo import export_model, random_inputs
from tcomp.runtime.memory_plan import plan_memory


def _check_against_ort(model, feeds, mod=None):
    mod = mod or tcomp.compile(model)
    session = onnxruntime.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    for ours, ref in zip(mod.run(feeds), session.run(None, feeds)):
        np.testing.assert_allclose(ours, ref, rtol=1e-4, atol=1e-4)
    return mod


def test_bert_qkv_projections_are_one_kernel(zoo_dir):
    path = export_model("bert", zoo_dir, small=True)
    mod = tcomp.compile(path)
    labels = [g.label for g in mod.groups]
    assert sum("horizontal x3" in label for label in labels) == 2  # one per layer
    # the GELU after the intermediate dense layer is that matmul's epilogue
    assert sum(label.startswith("MatMul+Add") and "Erf" in label for label in labels) == 2
    assert sum(g.anchor is not None and g.anchor.op == "Softmax" for g in mod.groups) == 2


def test_resnet_conv_epilogues_fuse(zoo_dir):
    path = export_model("resnet18", zoo_dir, small=True)
    mod = tcomp.compile(path)
    labels = [g.label for g in mod.groups]
    assert "Conv+Add+Relu" in labels and "Conv+Relu" in labels
    assert all(g.anchor is not None for g in mod.groups)  # no standalone elementwise kernel left
    assert mod.memory_plan.arena_bytes < mod.memory_plan.unplanned_bytes


def test_float16_convs_write_float16_between_them():
    """A float16 model's convs are imported as casts to float32 around float32 convs: the epilogue
    ending in the next conv's widening cast stops before it, so the float16 value is written (half the
    bytes) and the cast is the next conv's prologue."""
    rng = np.random.default_rng()
    weights = [numpy_helper.from_array((rng.standard_normal((8, 8, 3, 3)) * 0.2).astype(np.float16), f"w{i}")
               for i in range(2)]
    nodes = [helper.make_node("Conv", ["x", "w0"], ["c0"], pads=[1, 1, 1, 1]), helper.make_node("Relu", ["c0"], ["r"]),
             helper.make_node("Conv", ["r", "w1"], ["y"], pads=[1, 1, 1, 1])]
    graph = helper.make_graph(nodes, "convs", [helper.make_tensor_value_info("x", TensorProto.FLOAT16, [1, 8, 6, 6])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT16, [1, 8, 6, 6])], weights)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=10)
    mod = tcomp.compile(model)
    assert [g.anchor.op for g in mod.groups] == ["Conv", "Conv"]
    assert mod.groups[0].output.dtype == "float16"
    x = rng.standard_normal((1, 8, 6, 6)).astype(np.float16)
    session = onnxruntime.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    np.testing.assert_allclose(mod.run({"x": x})[0].astype(np.float32),
                               session.run(None, {"x": x})[0].astype(np.float32), rtol=1e-2, atol=1e-2)


def test_mobilenet_pads_and_batchnorm_fold_into_convs(zoo_dir):
    path = export_model("mobilenetv2", zoo_dir, small=True)
    mod = tcomp.compile(path)
    ops = {node.op for node in mod.graph.nodes}
    assert "Pad" not in ops and "BatchNormalization" not in ops
    assert all(g.anchor is not None and g.anchor.op == "Conv" for g in mod.groups)


def test_conv_batchnorm_fold_matches_onnxruntime():
    rng = np.random.default_rng()
    c = 5
    inits = [numpy_helper.from_array(rng.standard_normal((c, 3, 3, 3)).astype(np.float32), "w"),
             numpy_helper.from_array(rng.standard_normal(c).astype(np.float32), "b")]
    for name in ("scale", "bias", "mean"):
        inits.append(numpy_helper.from_array(rng.standard_normal(c).astype(np.float32), name))
    inits.append(numpy_helper.from_array(rng.uniform(0.5, 2, c).astype(np.float32), "var"))
    nodes = [helper.make_node("Conv", ["x", "w", "b"], ["c"], pads=[1, 1, 1, 1]),
             helper.make_node("BatchNormalization", ["c", "scale", "bias", "mean", "var"], ["y"], epsilon=1e-3)]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 3, 9, 11])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, c, 9, 11])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 15)], ir_version=10)
    mod = _check_against_ort(model, {"x": rng.standard_normal((2, 3, 9, 11)).astype(np.float32)})
    assert [g.label for g in mod.groups] == ["Conv"]


def test_multi_consumer_values_are_materialized_once():
    rng = np.random.default_rng()
    nodes = [helper.make_node("Exp", ["x"], ["e"]),
             helper.make_node("Add", ["e", "x"], ["a"]),
             helper.make_node("Mul", ["e", "x"], ["m"])]
    vi = [helper.make_tensor_value_info(n, TensorProto.FLOAT, [3, 37]) for n in ("x", "a", "m")]
    model = helper.make_model(helper.make_graph(nodes, "g", vi[:1], vi[1:]),
                              opset_imports=[helper.make_opsetid("", 17)], ir_version=10)
    mod = _check_against_ort(model, {"x": rng.standard_normal((3, 37)).astype(np.float32)})
    assert sorted(g.label for g in mod.groups) == ["Add", "Exp", "Mul"]


def test_memory_plan_never_overlaps_live_buffers():
    rng = np.random.default_rng()
    for _ in range(50):
        count = int(rng.integers(1, 30))
        lifetimes, sizes = {}, {}
        for uid in range(count):
            first = int(rng.integers(0, 20))
            lifetimes[uid] = (first, first + int(rng.integers(0, 6)))
            sizes[uid] = int(rng.integers(1, 5000))
        plan = plan_memory(lifetimes, sizes)
        for a in range(count):
            for b in range(a + 1, count):
                (fa, la), (fb, lb) = lifetimes[a], lifetimes[b]
                if la < fb or lb < fa:
                    continue
                a0, b0 = plan.offsets[a], plan.offsets[b]
                assert a0 + sizes[a] <= b0 or b0 + sizes[b] <= a0
                assert max(a0 + sizes[a], b0 + sizes[b]) <= plan.arena_bytes


@pytest.mark.parametrize("name", ["bert", "gpt2"])
def test_identical_layers_share_kernels(name, zoo_dir):
    path = export_model(name, zoo_dir, small=True)
    mod = tcomp.compile(path)
    assert len(mod.kernels) < len(mod.groups)
    feeds = random_inputs(path, np.random.default_rng())
    ref = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, feeds)
    np.testing.assert_allclose(mod.run(feeds)[0], ref[0], rtol=1e-4, atol=1e-4)
