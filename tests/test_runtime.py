"""The executor: output aliasing and repeated runs."""
import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper
from webgpu_helpers import requires_webgpu

import tcomp


def _model(nodes, inputs, outputs, initializers=()):
    graph = helper.make_graph(nodes, "g", inputs, outputs, initializer=list(initializers))
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=10)


def test_outputs_that_alias_inputs_constants_or_each_other():
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 3])
    outs = [helper.make_tensor_value_info(n, TensorProto.FLOAT, [2, 3]) for n in ("y", "x", "c", "y2")]
    data = np.random.default_rng().standard_normal((2, 3)).astype(np.float32)
    const = onnx.numpy_helper.from_array(data * 3, "c")
    nodes = [helper.make_node("Relu", ["x"], ["y"]), helper.make_node("Identity", ["y"], ["y2"])]
    mod = tcomp.compile(_model(nodes, [x], outs, [const]))
    assert mod.output_names == ["y", "x", "c", "y2"]
    y, x_out, c, y2 = mod.run({"x": data})
    np.testing.assert_array_equal(y, np.maximum(data, 0))
    np.testing.assert_array_equal(x_out, data)
    np.testing.assert_array_equal(c, data * 3)
    np.testing.assert_array_equal(y2, np.maximum(data, 0))


@pytest.mark.parametrize("target", ["cpu", pytest.param("webgpu", marks=requires_webgpu)])
def test_profile_times_every_step_and_leaves_the_module_running_right(target):
    """Both orders of ``mod.profile`` give one time per step (the cpu executor and the device executor,
    on webgpu); profiling repeats steps on the module's own buffers, so the module's next run must
    still match numpy."""
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [4, 8])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [4, 8])
    rng = np.random.default_rng()
    w = rng.standard_normal((8, 8)).astype(np.float32)
    nodes = [helper.make_node("MatMul", ["x", "w"], ["m"]), helper.make_node("Softmax", ["m"], ["s"], axis=-1),
             helper.make_node("Add", ["s", "x"], ["y"])]
    mod = tcomp.compile(_model(nodes, [x], [y], [onnx.numpy_helper.from_array(w, "w")]), target=target)
    data = rng.standard_normal((4, 8)).astype(np.float32)
    for back_to_back in (False, True):
        steps = mod.profile({"x": data}, repeat=3, back_to_back=back_to_back)
        assert [name for name, _, _ in steps] == [step.kernel for step in mod.executor.steps]
        assert all(seconds > 0 for _, _, seconds in steps)
    m = data @ w
    e = np.exp(m - m.max(axis=-1, keepdims=True))
    np.testing.assert_allclose(mod.run({"x": data})[0], e / e.sum(axis=-1, keepdims=True) + data, rtol=1e-5, atol=1e-5)


def test_profile_order_runs_the_model_or_repeats_each_step_in_place():
    from tcomp.runtime.executor import profile_order

    steps, repeat = 5, 4
    runs = profile_order(steps, repeat, back_to_back=False)
    assert runs == list(range(steps)) * repeat
    in_a_row = profile_order(steps, repeat, back_to_back=True)
    assert sorted(in_a_row) == sorted(runs) and in_a_row == sorted(in_a_row)
