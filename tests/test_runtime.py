"""The executor: output aliasing and repeated runs."""
import numpy as np
import onnx
from onnx import TensorProto, helper

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
