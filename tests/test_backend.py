"""tcomp.backend (the ONNX backend API) and specialization on shape operands (``constant_inputs``).

References are numpy; inputs are fresh random arrays. The models run in this process: they
are tiny, and every error path here is a Python exception.
"""
from __future__ import annotations

import numpy as np
import pytest
from onnx import TensorProto, helper

import tcomp
import tcomp.backend
from onnx_helpers import IR_VERSION, rng


def _reduce_model(dims=(3, 4, 5)):
    """ReduceSum whose axes are a graph input (opset 18)."""
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, list(dims))
    axes = helper.make_tensor_value_info("axes", TensorProto.INT64, [None])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["a", "b", "c"])
    graph = helper.make_graph([helper.make_node("ReduceSum", ["x", "axes"], ["y"])], "g", [x, axes], [y])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)], ir_version=IR_VERSION)


def test_shape_operand_error_names_the_input_and_constant_inputs_specialize():
    model = _reduce_model()
    with pytest.raises(tcomp.ShapeOperandError, match="reduction axes") as info:
        tcomp.compile(model, input_shapes={"axes": (1,)})
    assert info.value.input_names == ["axes"]
    axis = int(rng().integers(0, 3))
    mod = tcomp.compile(model, constant_inputs={"axes": np.array([axis], dtype=np.int64)})
    assert mod.input_names == ["x"]
    x = rng().standard_normal((3, 4, 5)).astype(np.float32)
    np.testing.assert_allclose(mod.run({"x": x})[0], x.sum(axis=axis, keepdims=True), rtol=1e-5, atol=1e-5)


def test_constant_inputs_are_checked():
    model = _reduce_model()
    with pytest.raises(tcomp.TcompError, match="not inputs of the model"):
        tcomp.compile(model, constant_inputs={"nope": np.array([0])})
    with pytest.raises(tcomp.TcompError, match="dtype int32"):
        tcomp.compile(model, constant_inputs={"axes": np.array([0], dtype=np.int32)})


def test_backend_recompiles_per_operand_value_and_shape():
    rep = tcomp.backend.prepare(_reduce_model(), "CPU")
    x = rng().standard_normal((3, 4, 5)).astype(np.float32)
    for axes in ([0], [2], [0, 1], [2]):
        (y,) = rep.run([x, np.array(axes, dtype=np.int64)])
        np.testing.assert_allclose(y, x.sum(axis=tuple(axes), keepdims=True), rtol=1e-5, atol=1e-5)
    assert rep.frozen == {"axes"}
    assert len(rep._cache) == 3  # the repeated [2] reused its module


def test_backend_takes_symbolic_shapes_from_the_arrays():
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 4])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", 4])
    graph = helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "g", [x], [y])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=IR_VERSION)
    rep = tcomp.backend.prepare(model)
    for n in (2, 7):
        data = rng().standard_normal((n, 4)).astype(np.float32)
        np.testing.assert_array_equal(rep.run({"x": data})[0], np.maximum(data, 0))


def test_backend_device_and_run_node():
    assert tcomp.backend.supports_device("CPU") and tcomp.backend.supports_device("CUDA")
    assert not tcomp.backend.supports_device("TPU")
    a, b = (rng().standard_normal((2, 3)).astype(np.float32) for _ in range(2))
    (out,) = tcomp.backend.run_node(helper.make_node("Add", ["a", "b"], ["c"]), [a, b])
    np.testing.assert_allclose(out, a + b, rtol=1e-6)


def test_sequence_input_is_refused_at_its_node():
    seq = helper.make_tensor_sequence_value_info("s", TensorProto.FLOAT, [2])
    out = helper.make_tensor_sequence_value_info("t", TensorProto.FLOAT, [2])
    graph = helper.make_graph([helper.make_node("Identity", ["s"], ["t"])], "g", [seq], [out])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=IR_VERSION)
    with pytest.raises(tcomp.UnsupportedOpError, match="input 's' is a sequence"):
        tcomp.backend.prepare(model).run([[np.zeros(2, np.float32)]])
