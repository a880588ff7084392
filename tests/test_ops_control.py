"""Control-flow tests (If, Loop, Scan): tcomp vs onnxruntime on fresh random inputs.

Subgraphs read names of the enclosing graph, nest, carry state and produce scan outputs;
loops end by trip count or by a condition that folds at every iteration. Conditions and
trip counts that tcomp cannot know at compile time are reported.
"""
from __future__ import annotations

import numpy as np
import pytest
from onnx import TensorProto, helper

from onnx_helpers import check, make_model, node, rand, with_static_outputs

import tcomp

F = TensorProto.FLOAT


def _graph(nodes, name, inputs, outputs):
    """A subgraph; ``inputs``/``outputs`` are (name, elem type, shape or None)."""
    return helper.make_graph(nodes, name, [helper.make_tensor_value_info(n, t, s) for n, t, s in inputs],
                             [helper.make_tensor_value_info(n, t, s) for n, t, s in outputs])


def _const(name, value):
    return node("Constant", [], [name], value=helper.make_tensor(name, TensorProto.INT64 if np.asarray(value).dtype.kind
                                                                   == "i" else F, np.shape(value),
                                                                   np.asarray(value).ravel().tolist()))


def _branches():
    then = _graph([node("Relu", ["x"], ["r"]), node("Mul", ["r", "x"], ["t_out"])], "then", [],
                  [("t_out", F, None)])
    other = _graph([node("Neg", ["x"], ["e_out"])], "else", [], [("e_out", F, None)])
    return then, other


@pytest.mark.parametrize("flag", [True, False])
def test_if_constant_condition(flag):
    then, other = _branches()
    other = _graph([node("ReduceSum", ["x"], ["e_out"], keepdims=0)], "else", [], [("e_out", F, None)])
    check([node("If", ["c"], ["y"], then_branch=then, else_branch=other), node("Add", ["y", "x"], ["z"])],
          {"x": rand((3, 5))}, ["z"], opset=11, inits={"c": np.array(flag)})


@pytest.mark.parametrize("flag", [True, False])
def test_if_run_time_condition(flag):
    then, other = _branches()
    check([node("If", ["c"], ["y"], then_branch=then, else_branch=other)], {"x": rand((4, 7)), "c": np.array(flag)},
          ["y"], opset=13)


def test_if_run_time_condition_with_different_shapes_is_reported():
    then, _ = _branches()
    other = _graph([node("ReduceSum", ["x"], ["e_out"], keepdims=0)], "else", [], [("e_out", F, None)])
    model = make_model([node("If", ["c"], ["y"], then_branch=then, else_branch=other)],
                       {"x": rand((4, 7)), "c": np.array(True)}, ["y"], 13)
    model = with_static_outputs(model, [np.zeros((4, 7), np.float32)])
    with pytest.raises(tcomp.ShapeOperandError, match="If condition.*differ in shape.*\\bc\\b"):
        tcomp.compile(model)


def _accumulating_body(extra=()):
    """(i, cond, acc) -> (cond, acc + x * i, acc) reading ``x`` from the enclosing graph."""
    return _graph([node("Cast", ["i"], ["fi"], to=F), node("Mul", ["x", "fi"], ["xi"]),
                   node("Add", ["acc", "xi"], ["acc_out"]), node("Identity", ["acc"], ["scan"]), *extra],
                  "body", [("i", TensorProto.INT64, []), ("cond", TensorProto.BOOL, []), ("acc", F, None)],
                  [("cond_out", TensorProto.BOOL, []), ("acc_out", F, None), ("scan", F, None)])


@pytest.mark.parametrize("trips", [1, 5])
def test_loop_trip_count(trips):
    body = _accumulating_body([node("Identity", ["cond"], ["cond_out"])])
    check([node("Loop", ["n", "c", "a0"], ["a", "s"], body=body)], {"x": rand((2, 3)), "a0": rand((2, 3))},
          ["a", "s"], opset=13, inits={"n": np.array(trips, dtype=np.int64), "c": np.array(True)})


def test_loop_condition_folds_each_iteration():
    """No trip count: the body's condition i < 3 ends the loop after 4 iterations."""
    body = _accumulating_body([_const("three", 3), node("Less", ["i", "three"], ["cond_out"])])
    check([node("Loop", ["", "c", "a0"], ["a", "s"], body=body)], {"x": rand((5,)), "a0": rand((5,))},
          ["a", "s"], opset=13, inits={"c": np.array(True)})


def test_loop_with_nested_if():
    inner_then = _graph([node("Add", ["acc", "x"], ["o"])], "t", [], [("o", F, None)])
    inner_else = _graph([node("Sub", ["acc", "x"], ["o2"])], "e", [], [("o2", F, None)])
    body = _graph([_const("two", 2), node("Mod", ["i", "two"], ["m"]), _const("zero", 0), node("Equal", ["m", "zero"], ["even"]),
                   node("If", ["even"], ["acc_out"], then_branch=inner_then, else_branch=inner_else),
                   node("Identity", ["cond"], ["cond_out"])],
                  "body", [("i", TensorProto.INT64, []), ("cond", TensorProto.BOOL, []), ("acc", F, None)],
                  [("cond_out", TensorProto.BOOL, []), ("acc_out", F, None)])
    check([node("Loop", ["n", "", "a0"], ["a"], body=body)], {"x": rand((3, 4)), "a0": rand((3, 4))}, ["a"],
          opset=13, inits={"n": np.array(5, dtype=np.int64)})


def test_loop_data_dependent_condition_is_reported():
    body = _accumulating_body([node("ReduceSum", ["acc_out"], ["total"], keepdims=0),
                               node("Constant", [], ["zero"], value_float=0.0),
                               node("Less", ["total", "zero"], ["cond_out"])])
    model = make_model([node("Loop", ["n", "", "a0"], ["a", "s"], body=body)], {"x": rand((2,)), "a0": rand((2,))},
                       ["a", "s"], 13, {"n": np.array(4, dtype=np.int64)})
    model = with_static_outputs(model, [np.zeros(2, np.float32), np.zeros((4, 2), np.float32)])
    with pytest.raises(tcomp.UnsupportedOpError, match="Loop body's condition output must be a constant"):
        tcomp.compile(model)


@pytest.mark.parametrize("directions", [(0, 0, 0), (1, 0, 1)])
def test_scan(directions):
    """Two states, two scan inputs (one along axis 1), two scan outputs (one along axis 1)."""
    in_dir, out_dir0, out_dir1 = directions
    body = _graph([node("Add", ["s0", "a"], ["s0_out"]), node("Mul", ["s1", "b"], ["s1_out"]),
                   node("Sub", ["s0_out", "s1_out"], ["o0"]), node("Tanh", ["a"], ["o1"])], "body",
                  [("s0", F, None), ("s1", F, None), ("a", F, None), ("b", F, None)],
                  [("s0_out", F, None), ("s1_out", F, None), ("o0", F, None), ("o1", F, None)])
    feeds = {"s0": rand((3,)), "s1": rand((3,)), "xa": rand((4, 3)), "xb": rand((3, 4), 0.5, 1.5)}
    check([node("Scan", ["s0", "s1", "xa", "xb"], ["f0", "f1", "y0", "y1"], body=body, num_scan_inputs=2,
                scan_input_axes=[0, 1], scan_input_directions=[in_dir, 0], scan_output_axes=[0, 1],
                scan_output_directions=[out_dir0, out_dir1])], feeds, ["f0", "f1", "y0", "y1"], opset=11)
