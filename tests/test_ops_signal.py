"""Signal operator tests: DFT (opsets 17 and 20), STFT, window and mel-filter generators.

Against onnxruntime on fresh random signals; the inverse one-sided DFT (irfft), which
onnxruntime does not implement, against onnx.reference. Shape operands (axis,
dft_length, frame_step, sizes) are initializers: tcomp compiles static shapes.
"""
from __future__ import annotations

import numpy as np
import pytest
from onnx.reference import ReferenceEvaluator

from onnx_helpers import assert_matches, check, make_model, node, rand, run_tcomp, with_static_outputs

import tcomp

TOL = {"rtol": 1e-4, "atol": 1e-4}


def _dft(x, opset, axis=None, length=None, **attrs):
    inits, names = {}, ["x"]
    if length is not None:
        inits["n"] = np.array(length, dtype=np.int64)
    names.append("n" if length is not None else "")
    if opset >= 20 and axis is not None:
        inits["axis"] = np.array(axis, dtype=np.int64)
        names.append("axis")
    elif axis is not None:
        attrs["axis"] = axis
    while names[-1] == "":
        names.pop()
    return [node("DFT", names, ["y"], **attrs)], inits


@pytest.mark.parametrize("opset", [17, 20])
@pytest.mark.parametrize("shape,axis", [((2, 16, 1), 1), ((3, 7, 5, 2), 1), ((3, 7, 5, 2), 2), ((1, 12, 2), -2)])
@pytest.mark.parametrize("inverse", [0, 1])
def test_dft(opset, shape, axis, inverse):
    if opset < 20 and axis < 0:
        pytest.skip("opset 17 takes a non-negative axis")
    nodes, inits = _dft(rand(shape), opset, axis, inverse=inverse)
    check(nodes, {"x": rand(shape)}, ["y"], opset=opset, inits=inits, **TOL)


@pytest.mark.parametrize("length", [5, 16, 23])
@pytest.mark.parametrize("onesided", [0, 1])
def test_dft_length_onesided(length, onesided):
    x = rand((2, 16, 1))
    nodes, inits = _dft(x, 17, 1, length, onesided=onesided)
    check(nodes, {"x": x}, ["y"], opset=17, inits=inits, **TOL)


@pytest.mark.parametrize("length", [None, 9, 14])
def test_irfft_against_onnx_reference(length):
    x = rand((3, 8, 2))
    nodes, inits = _dft(x, 20, 1, length, inverse=1, onesided=1)
    model = make_model(nodes, {"x": x}, ["y"], 20, inits)
    ref = np.asarray(ReferenceEvaluator(model).run(None, {"x": x})[0])
    ours = run_tcomp(with_static_outputs(model, [ref]), {"x": x})[0]
    assert_matches(ours, ref, **TOL)


@pytest.mark.parametrize("window", [None, "const", "input"])
@pytest.mark.parametrize("signal", [(2, 100, 1), (1, 64, 2)])
def test_stft(window, signal):
    frame = 16
    x = rand(signal)
    feeds, inits = {"x": x}, {"step": np.array(6, dtype=np.int64), "len": np.array(frame, dtype=np.int64)}
    names = ["x", "step", "", "len"]
    if window is not None:
        w = np.hanning(frame).astype(np.float32) + rand((frame,), 0, 0.1)
        (inits if window == "const" else feeds)["w"] = w
        names[2] = "w"
    onesided = int(signal[2] == 1)
    check([node("STFT", names, ["y"], onesided=onesided)], feeds, ["y"], opset=17, inits=inits, **TOL)


@pytest.mark.parametrize("op", ["HannWindow", "HammingWindow", "BlackmanWindow"])
@pytest.mark.parametrize("periodic", [0, 1])
def test_windows(op, periodic):
    check([node(op, ["n"], ["y"], periodic=periodic)], {}, ["y"], opset=17,
          inits={"n": np.array(int(np.random.default_rng().integers(3, 40)), dtype=np.int64)})


def test_window_size_at_run_time_is_a_shape_operand():
    model = make_model([node("HannWindow", ["n"], ["y"])], {"n": np.array(10, dtype=np.int32)}, ["y"], 17)
    model = with_static_outputs(model, [np.zeros(10, np.float32)])
    with pytest.raises(tcomp.ShapeOperandError, match="HannWindow operand 0 must be a constant"):
        tcomp.compile(model)
