"""Recurrent operator tests (RNN, GRU, LSTM): tcomp vs onnxruntime on fresh random inputs.

Directions, initial states, biases, sequence_lens (constant and fed at run time), batch-major
layout, non-default activations with their alpha/beta, clip, GRU's linear_before_reset,
LSTM peepholes and input_forget; every output (Y, Y_h, Y_c).
"""
from __future__ import annotations

import numpy as np
import pytest
from onnx import helper

from onnx.reference import ReferenceEvaluator

from onnx_helpers import assert_matches, check, make_model, node, rand, randint, run_tcomp, with_static_outputs

GATES = {"RNN": 1, "GRU": 3, "LSTM": 4}
TOL = {"rtol": 1e-4, "atol": 1e-5}


def _case(op, seq=4, batch=3, inp=5, hidden=6, directions=1, layout=0, bias=True, lens=None, lens_input=False,
          initial=True, peepholes=False, outputs=None, **attrs):
    g = GATES[op]
    x_shape = (batch, seq, inp) if layout else (seq, batch, inp)
    state_shape = (batch, directions, hidden) if layout else (directions, batch, hidden)
    feeds = {"X": rand(x_shape, -1, 1)}
    inits = {"W": rand((directions, g * hidden, inp), -0.5, 0.5), "R": rand((directions, g * hidden, hidden), -0.5, 0.5)}
    names = ["X", "W", "R"]
    if bias:
        inits["B"] = rand((directions, 2 * g * hidden), -0.5, 0.5)
    names.append("B" if bias else "")
    if lens is not None:
        (feeds if lens_input else inits)["L"] = np.array(lens, dtype=np.int32)
    names.append("L" if lens is not None else "")
    if initial:
        feeds["H0"] = rand(state_shape, -1, 1)
        if op == "LSTM":
            feeds["C0"] = rand(state_shape, -1, 1)
    names.append("H0" if initial else "")
    if op == "LSTM":
        names.append("C0" if initial else "")
        if peepholes:
            inits["P"] = rand((directions, 3 * hidden), -0.5, 0.5)
        names.append("P" if peepholes else "")
    while names[-1] == "":
        names.pop()
    direction = {1: "forward", 2: "bidirectional"}[directions] if "direction" not in attrs else attrs.pop("direction")
    outs = outputs or (["Y", "Y_h", "Y_c"] if op == "LSTM" else ["Y", "Y_h"])
    node_outs = [o if o in outs else "" for o in (["Y", "Y_h", "Y_c"] if op == "LSTM" else ["Y", "Y_h"])]
    while node_outs[-1] == "":
        node_outs.pop()
    attrs = {"hidden_size": hidden, "direction": direction, **{k: v for k, v in attrs.items() if v != []}}
    nodes = [node(op, names, node_outs, **attrs)]
    if not layout:
        check(nodes, feeds, outs, opset=14, inits=inits, **TOL)
        return
    # onnxruntime does not implement the batch-major layout: onnx.reference does
    nodes[0].attribute.append(helper.make_attribute("layout", 1))
    model = make_model(nodes, feeds, outs, 14, inits)
    refs = [np.asarray(r) for r in ReferenceEvaluator(model).run(None, feeds)]
    ours = run_tcomp(with_static_outputs(model, refs), feeds)
    for name, o, r in zip(outs, ours, refs):
        assert_matches(o, r, name=name, **TOL)


@pytest.mark.parametrize("op", ["RNN", "GRU", "LSTM"])
@pytest.mark.parametrize("direction", ["forward", "reverse", "bidirectional"])
def test_directions(op, direction):
    _case(op, directions=2 if direction == "bidirectional" else 1, direction=direction)


@pytest.mark.parametrize("op", ["RNN", "GRU", "LSTM"])
def test_defaults_no_bias_no_initial_state(op):
    _case(op, bias=False, initial=False, seq=3, batch=1, inp=2, hidden=7)


@pytest.mark.parametrize("op", ["RNN", "GRU", "LSTM"])
@pytest.mark.parametrize("lens_input", [False, True])
def test_sequence_lens(op, lens_input):
    lens = randint((4,), 1, 5, dtype=np.int32)
    lens[0] = 5
    _case(op, seq=5, batch=4, directions=2, lens=list(lens), lens_input=lens_input)


@pytest.mark.parametrize("op", ["RNN", "GRU", "LSTM"])
def test_batch_major_layout(op):
    _case(op, layout=1, directions=2, seq=3, batch=2)


@pytest.mark.parametrize("op", ["RNN", "GRU", "LSTM"])
def test_only_last_state(op):
    _case(op, outputs=["Y_h"])


def test_rnn_activations_with_parameters():
    _case("RNN", directions=2, activations=["LeakyRelu", "HardSigmoid"], activation_alpha=[0.2, 0.3],
          activation_beta=[0.4])


@pytest.mark.parametrize("acts", [["Relu", "Tanh"], ["HardSigmoid", "Softsign"], ["Sigmoid", "Affine"]])
def test_gru_activations(acts):
    alpha = [0.25, 1.5] if acts[0] == "HardSigmoid" or acts[1] == "Affine" else []
    _case("GRU", activations=acts, activation_alpha=alpha, activation_beta=[0.4] if alpha else [])


@pytest.mark.parametrize("lbr", [0, 1])
def test_gru_linear_before_reset(lbr):
    _case("GRU", directions=2, linear_before_reset=lbr)


def test_lstm_peepholes():
    _case("LSTM", directions=2, peepholes=True)


@pytest.mark.parametrize("op", ["RNN", "GRU"])  # onnxruntime's LSTM clips differently from the spec
def test_clip(op):
    _case(op, clip=0.7)


def test_lstm_activations():
    _case("LSTM", activations=["HardSigmoid", "Elu", "Softsign"], activation_alpha=[0.3, 0.8],
          activation_beta=[0.45])


def test_lstm_input_forget():
    _case("LSTM", directions=2, input_forget=1)
