"""Bad input gets a clear error that names what was wrong."""
import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

import tcomp


def _model(nodes, inputs, outputs, initializers=(), opset=17):
    graph = helper.make_graph(nodes, "g", inputs, outputs, initializer=list(initializers))
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)], ir_version=10)


def _relu_model():
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 3])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 3])
    return _model([helper.make_node("Relu", ["x"], ["y"], name="relu0")], [x], [y])


def test_unsupported_op_names_op_node_and_opset():
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [4])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [4])
    model = _model([helper.make_node("RandomUniformLike", ["x"], ["y"], name="my_random")], [x], [y], opset=15)
    with pytest.raises(tcomp.UnsupportedOpError) as info:
        tcomp.compile(model)
    message = str(info.value)
    assert "RandomUniformLike" in message and "my_random" in message and "opset 15" in message


def test_unsupported_attribute_is_reported_as_such():
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 3])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT8E4M3FN, [2, 3])
    params = [numpy_helper.from_array(np.array(np.random.default_rng().random() + 0.5, np.float32), "scale"),
              helper.make_tensor("zero", TensorProto.FLOAT8E4M3FN, [], [0])]
    node = helper.make_node("QuantizeLinear", ["x", "scale", "zero"], ["y"], name="q", saturate=0)
    with pytest.raises(tcomp.UnsupportedOpError, match=r"q.*QuantizeLinear.*without saturation"):
        tcomp.compile(_model([node], [x], [y], params, opset=19))


def test_model_failing_the_checker_says_why():
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [2])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [2])
    # Relu's input "missing" is produced by no node and is no graph input
    model = _model([helper.make_node("Relu", ["missing"], ["y"], name="r")], [x], [y])
    with pytest.raises(tcomp.ModelError, match="onnx.checker"):
        tcomp.compile(model)


def test_unreadable_file_and_missing_file(tmp_path):
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"this is not a protobuf")
    with pytest.raises(tcomp.ModelError):
        tcomp.compile(str(bad))
    with pytest.raises(tcomp.ModelError, match="not found"):
        tcomp.compile(str(tmp_path / "nope.onnx"))


def test_wrong_input_name_shape_and_dtype():
    mod = tcomp.compile(_relu_model())
    good = np.random.default_rng().standard_normal((2, 3)).astype(np.float32)
    with pytest.raises(tcomp.InputError, match=r"unknown input name.*\['x'\]"):
        mod.run({"X": good})
    with pytest.raises(tcomp.InputError, match=r"missing input 'x'"):
        mod.run({})
    with pytest.raises(tcomp.InputError, match=r"shape \[3, 2\], expected \[2, 3\]"):
        mod.run({"x": good.T.copy()})
    with pytest.raises(tcomp.InputError, match=r"dtype float64, expected float32"):
        mod.run({"x": good.astype(np.float64)})
    np.testing.assert_array_equal(mod.run({"x": good})[0], np.maximum(good, 0))


def test_symbolic_dimension_compiles_once_and_checks_sizes_at_run_time():
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 3])
    w = helper.make_tensor_value_info("w", TensorProto.FLOAT, ["batch", 3])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 3])
    model = _model([helper.make_node("Add", ["x", "w"], ["y"])], [x, w], [y])
    mod = tcomp.compile(model)
    rng = np.random.default_rng()
    for batch in (1, 5):
        a, b = (rng.standard_normal((batch, 3)).astype(np.float32) for _ in range(2))
        np.testing.assert_array_equal(mod.run({"x": a, "w": b})[0], a + b)
    a = rng.standard_normal((4, 3)).astype(np.float32)
    with pytest.raises(tcomp.InputError, match="input 'w' has batch=2 .*input 'x' has batch=4"):
        mod.run({"x": a, "w": a[:2]})
    with pytest.raises(tcomp.InputError, match=r"has shape \[4, 2\], expected \[batch, 3\]"):
        mod.run({"x": a[:, :2], "w": a[:, :2]})
    static = tcomp.compile(model, input_shapes={"x": (5, 3), "w": (5, 3)})
    with pytest.raises(tcomp.InputError, match=r"expected \[5, 3\]"):
        static.run({"x": a, "w": a})


def test_size_constraint_of_the_model_is_checked_at_run_time():
    """x[:, :seq] of a 4-wide constant needs seq <= 4: a larger sequence is refused, never read out of bounds."""
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, "seq"])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, "seq"])
    table = numpy_helper.from_array(np.arange(4, dtype=np.float32).reshape(1, 4), "table")
    nodes = [helper.make_node("Shape", ["x"], ["shape"], start=1, end=2),
             helper.make_node("Constant", [], ["zero"], value=numpy_helper.from_array(np.array([0], np.int64))),
             helper.make_node("Constant", [], ["axis"], value=numpy_helper.from_array(np.array([1], np.int64))),
             helper.make_node("Slice", ["table", "zero", "shape", "axis"], ["part"]),
             helper.make_node("Add", ["x", "part"], ["y"])]
    mod = tcomp.compile(_model(nodes, [x], [y], [table]))
    data = np.random.default_rng().standard_normal((1, 3)).astype(np.float32)
    np.testing.assert_allclose(mod.run({"x": data})[0], data + np.arange(3, dtype=np.float32))
    with pytest.raises(tcomp.InputError, match="seq=6 violate a constraint.*Slice.*seq <= 4"):
        mod.run({"x": np.zeros((1, 6), np.float32)})


def test_unknown_target():
    with pytest.raises(tcomp.TcompError, match="available targets: cpu"):
        tcomp.compile(_relu_model(), target="tpu")


def test_non_constant_shape_operand_is_reported():
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 3])
    s = helper.make_tensor_value_info("s", TensorProto.INT64, [2])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [3, 2])
    model = _model([helper.make_node("Reshape", ["x", "s"], ["y"], name="dyn_reshape")], [x, s], [y])
    with pytest.raises(tcomp.UnsupportedOpError, match=r"dyn_reshape.*must be a constant"):
        tcomp.compile(model)


def test_cli_reports_errors_without_traceback(tmp_path, capsys):
    from tcomp.cli import main

    path = tmp_path / "m.onnx"
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [4])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [4])
    onnx.save(_model([helper.make_node("Unique", ["x"], ["y"], name="uq")], [x], [y], opset=11), path)
    assert main(["run", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("tcomp: error:") and "Unique" in err and "Traceback" not in err



def test_thread_count_is_validated_and_one_thread_works():
    with pytest.raises(tcomp.TcompError, match="num_threads must be at least 1"):
        tcomp.compile(_relu_model(), num_threads=0)
    mod = tcomp.compile(_relu_model(), num_threads=1)
    data = np.random.default_rng().standard_normal((2, 3)).astype(np.float32)
    np.testing.assert_array_equal(mod.run({"x": data})[0], np.maximum(data, 0))
