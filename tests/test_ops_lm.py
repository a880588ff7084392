"""Language-model and normalization operator tests: tcomp vs onnxruntime (or onnx.reference
where onnxruntime lacks the op or opset) on fresh random inputs.

Attention (4-D / 3-D, grouped heads, head sizes, scale, softcap, masks, causal and
sliding windows, past key/value, nonpad_kv_seqlen, qk_matmul_output modes, float16),
RotaryEmbedding, the normalizations (Layer with Mean/InvStdDev, RMS, Group, Instance,
MeanVariance, Lp, LRN), the losses (SoftmaxCrossEntropyLoss, NegativeLogLikelihoodLoss),
Hardmax and the activations / unary math.
"""
from __future__ import annotations

import numpy as np
import pytest
from onnx import TensorProto, helper
from onnx.reference import ReferenceEvaluator

import tcomp
from tcomp.errors import UnsupportedOpError

from onnx_helpers import (
    assert_matches,
    check,
    check_op,
    make_model,
    node,
    rand,
    rand_nonzero,
    randbool,
    randint,
    rng,
    run_tcomp,
    with_static_outputs,
)

F16 = np.float16


def check_onnx_reference(nodes, inputs, outputs, opset, rtol=1e-4, atol=1e-5):
    """Like ``check`` but against onnx.reference, for ops or opsets onnxruntime does not implement."""
    model = make_model(nodes, inputs, outputs, opset)
    refs = [np.asarray(r) for r in ReferenceEvaluator(model).run(None, inputs)]
    ours = run_tcomp(with_static_outputs(model, refs), inputs)
    assert len(ours) == len(refs)
    for name, o, r in zip(outputs, ours, refs):
        assert_matches(o, r, rtol=rtol, atol=atol, name=name)


# ---------------------------------------------------------------------------------------------
# Attention
# ---------------------------------------------------------------------------------------------

def _qkv(batch, q_heads, kv_heads, q_len, kv_len, head, v_head, rank=4, dtype=np.float32):
    if rank == 4:
        shapes = [(batch, q_heads, q_len, head), (batch, kv_heads, kv_len, head), (batch, kv_heads, kv_len, v_head)]
    else:
        shapes = [(batch, q_len, q_heads * head), (batch, kv_len, kv_heads * head), (batch, kv_len, kv_heads * v_head)]
    return {name: rand(shape, -2, 2).astype(dtype) for name, shape in zip("qkv", shapes)}


def _attention(inputs, outputs, opset=23, input_names=None, **attrs):
    names = input_names or list(inputs)
    return check([node("Attention", names, outputs, **attrs)], inputs, [o for o in outputs if o], opset=opset,
                 rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("rank", [4, 3])
@pytest.mark.parametrize("heads", [(3, 3), (6, 2), (4, 1)])
@pytest.mark.parametrize("lengths", [(5, 7), (1, 9), (6, 6)])
def test_attention_shapes(rank, heads, lengths):
    q_heads, kv_heads = heads
    inputs = _qkv(2, q_heads, kv_heads, *lengths, 8, 5, rank)
    attrs = {"q_num_heads": q_heads, "kv_num_heads": kv_heads} if rank == 3 else {}
    _attention(inputs, ["y"], **attrs)


@pytest.mark.parametrize("attrs", [{"scale": 0.3}, {"softcap": 1.5}, {"is_causal": 1},
                                   {"is_causal": 1, "softcap": 0.7, "scale": 0.05}])
def test_attention_attributes(attrs):
    _attention(_qkv(2, 4, 2, 5, 7, 6, 6), ["y"], **attrs)


@pytest.mark.parametrize("mask_shape", [(5, 7), (2, 1, 5, 7), (2, 4, 5, 7), (1, 5, 7), (7,), (5, 4)])
@pytest.mark.parametrize("kind", ["float", "bool"])
@pytest.mark.parametrize("causal", [0, 1])
def test_attention_masks(mask_shape, kind, causal):
    inputs = _qkv(2, 4, 2, 5, 7, 8, 8)
    if kind == "bool":
        mask = randbool(mask_shape)
        mask[..., 0] = True  # every query keeps a key (fully masked rows: test_attention_fully_masked_rows)
    else:
        mask = rand(mask_shape, -3, 1)
    inputs["m"] = mask
    if causal and kind == "bool" and mask_shape[-1] < 7:
        pytest.skip("a short boolean mask with a causal mask can mask whole rows")
    if causal and len(mask_shape) == 1:
        pytest.skip("no reference: onnxruntime rejects rank-1 masks, onnx.reference fails them with is_causal")
    if len(mask_shape) == 1 or mask_shape[-1] < 7:  # onnxruntime takes neither rank-1 nor short masks
        check_onnx_reference([node("Attention", list(inputs), ["y"], is_causal=causal)], inputs, ["y"], opset=23)
    else:
        _attention(inputs, ["y"], is_causal=causal)


@pytest.mark.parametrize("causal", [0, 1])
@pytest.mark.parametrize("rank", [4, 3])
def test_attention_past_and_present(causal, rank):
    batch, q_heads, kv_heads, past = 2, 4, 2, 6
    inputs = _qkv(batch, q_heads, kv_heads, 3, 3, 8, 5, rank)
    inputs["m"] = rand((3, 3 + past), -2, 1)
    inputs["pk"] = rand((batch, kv_heads, past, 8))
    inputs["pv"] = rand((batch, kv_heads, past, 5))
    attrs = {"q_num_heads": q_heads, "kv_num_heads": kv_heads} if rank == 3 else {}
    _attention(inputs, ["y", "present_key", "present_value"], is_causal=causal, **attrs)


@pytest.mark.parametrize("mode", [0, 1, 2, 3])
def test_attention_qk_matmul_output(mode):
    inputs = _qkv(2, 4, 2, 5, 7, 8, 8)
    inputs["m"] = rand((2, 1, 5, 7), -2, 1)
    _attention(inputs, ["y", "", "", "qk"], qk_matmul_output_mode=mode, softcap=1.3)


def test_attention_fully_masked_rows():
    """Rows without any key to attend give zeros (opset 24 semantics), in Y and in the mode-3 output."""
    inputs = _qkv(1, 2, 2, 4, 5, 8, 8)
    mask = randbool((4, 5))
    mask[1, :] = False
    mask[2, 0] = True
    inputs["m"] = mask
    check_onnx_reference([node("Attention", list(inputs), ["y", "", "", "qk"], qk_matmul_output_mode=3)], inputs,
                         ["y", "qk"], opset=24)


@pytest.mark.parametrize("causal", [0, 1])
def test_attention_nonpad_kv_seqlen(causal):
    batch, kv_len = 3, 8
    inputs = _qkv(batch, 4, 2, 2, kv_len, 8, 8)
    inputs["n"] = rng().integers(3, kv_len + 1, size=batch).astype(np.int64)
    _attention(inputs, ["y"], opset=24, input_names=["q", "k", "v", "", "", "", "n"], is_causal=causal)


@pytest.mark.parametrize("window", [(2, -1), (1, 2), (-1, 0)])
@pytest.mark.parametrize("causal", [0, 1])
def test_attention_sliding_window(window, causal):
    """Opset 25 windows (onnx.reference: onnxruntime lacks opset 25)."""
    inputs = _qkv(2, 2, 1, 4, 6, 8, 8)
    check_onnx_reference([node("Attention", list(inputs), ["y"], is_causal=causal, left_window_size=window[0],
                               right_window_size=window[1])], inputs, ["y"], opset=25)


def test_attention_float16():
    inputs = _qkv(2, 4, 2, 5, 7, 8, 8, dtype=F16)
    inputs["m"] = rand((5, 7), -2, 1).astype(F16)
    check([node("Attention", list(inputs), ["y"], is_causal=1)], inputs, ["y"], opset=23, rtol=5e-3, atol=2e-3)


def test_attention_softmax_precision_double():
    inputs = _qkv(2, 2, 2, 3, 4, 8, 8)
    check_onnx_reference([node("Attention", list(inputs), ["y"], softmax_precision=11)], inputs, ["y"], opset=24)


def _score_graph(name: str, nodes: list):
    """A one-input, one-output modifier graph (FlexAttention's score_mod / prob_mod)."""
    return helper.make_graph(nodes, name, [helper.make_tensor_value_info("s", TensorProto.FLOAT, None)],
                             [helper.make_tensor_value_info("out", TensorProto.FLOAT, None)])


@pytest.mark.parametrize("heads", [(4, 4), (6, 2)])
@pytest.mark.parametrize("mods", ["none", "softcap", "prob_scale"])
def test_flex_attention(heads, mods):
    """FlexAttention (ai.onnx.preview) with grouped heads and modifier subgraphs, vs onnx.reference."""
    inputs = _qkv(2, heads[0], heads[1], 5, 7, 8, 6)
    attrs = {"scale": float(rng().uniform(0.1, 0.5))}
    if mods == "softcap":  # 2 * tanh(s / 2)
        two = helper.make_tensor("two", TensorProto.FLOAT, [], [2.0])
        attrs["score_mod"] = _score_graph("cap", [
            helper.make_node("Constant", [], ["c"], value=two), helper.make_node("Div", ["s", "c"], ["d"]),
            helper.make_node("Tanh", ["d"], ["t"]), helper.make_node("Mul", ["t", "c"], ["out"])])
    elif mods == "prob_scale":
        half = helper.make_tensor("half", TensorProto.FLOAT, [], [0.5])
        attrs["prob_mod"] = _score_graph("halve", [
            helper.make_node("Constant", [], ["c"], value=half), helper.make_node("Mul", ["s", "c"], ["out"])])
    nodes = [helper.make_node("FlexAttention", ["q", "k", "v"], ["y"], domain="ai.onnx.preview", **attrs)]
    model = make_model(nodes, inputs, ["y"], opset=26, extra_opsets={"ai.onnx.preview": 1})
    expected = ReferenceEvaluator(model).run(None, inputs)[0]
    assert_matches(run_tcomp(model, inputs)[0], expected, rtol=1e-4, atol=1e-5)


def test_attention_rejects_ungroupable_heads():
    """Query heads that do not split evenly over the key/value heads: a clear error naming the node."""
    inputs = _qkv(1, 3, 2, 2, 2, 4, 4)
    graph = helper.make_graph([node("Attention", ["q", "k", "v"], ["y"], name="attn")], "g",
                              [helper.make_tensor_value_info(n, TensorProto.FLOAT, a.shape) for n, a in inputs.items()],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3, 2, 4])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 23)], ir_version=10)
    with pytest.raises(UnsupportedOpError, match=r"attn.*Attention.*3 query heads cannot be grouped"):
        tcomp.compile(model)


# ---------------------------------------------------------------------------------------------
# RotaryEmbedding
# ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("interleaved", [0, 1])
@pytest.mark.parametrize("rotary_dim", [0, 4])
@pytest.mark.parametrize("positions", [True, False])
@pytest.mark.parametrize("rank", [4, 3])
def test_rotary_embedding(interleaved, rotary_dim, positions, rank):
    batch, heads, seq, head = 2, 3, 5, 10
    half = (rotary_dim or head) // 2
    x = rand((batch, heads, seq, head) if rank == 4 else (batch, seq, heads * head))
    if positions:
        inputs = {"x": x, "cos": rand((20, half)), "sin": rand((20, half)),
                  "pos": randint((batch, seq), 0, 19)}
    else:
        inputs = {"x": x, "cos": rand((batch, seq, half)), "sin": rand((batch, seq, half))}
    attrs = {"interleaved": interleaved, "rotary_embedding_dim": rotary_dim}
    if rank == 3:
        attrs["num_heads"] = heads
    check_op("RotaryEmbedding", inputs, opset=23, **attrs)


# ---------------------------------------------------------------------------------------------
# Normalizations
# ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("shape,axis", [((4, 37), -1), ((2, 3, 17), 1), ((2, 3, 4, 5), 0), ((3, 5, 1), 2)])
def test_layer_norm_mean_inv_std(shape, axis):
    inputs = {"x": rand(shape, -3, 3), "w": rand(shape[axis:]), "b": rand(shape[axis:])}
    check_op("LayerNormalization", inputs, n_outputs=3, axis=axis, epsilon=1e-3)


@pytest.mark.parametrize("shape,axis", [((4, 37), -1), ((2, 3, 17), 1), ((2, 3, 4, 5), 0), ((3, 5, 1), -2)])
def test_rms_norm(shape, axis):
    scale_shape = shape[axis:]
    check_op("RMSNormalization", {"x": rand(shape, -3, 3), "s": rand(scale_shape)}, opset=23, axis=axis,
             epsilon=1e-4)


@pytest.mark.parametrize("shape,groups", [((2, 6, 5, 3), 3), ((1, 4, 7), 1), ((3, 8, 2, 2), 8)])
def test_group_norm(shape, groups):
    c = shape[1]
    check_op("GroupNormalization", {"x": rand(shape, -3, 3), "s": rand((c,)), "b": rand((c,))}, opset=21,
             num_groups=groups, epsilon=1e-3)


@pytest.mark.parametrize("shape", [(2, 3, 5, 7), (1, 4, 9), (3, 2, 1, 1, 4)])
def test_instance_norm(shape):
    c = shape[1]
    check_op("InstanceNormalization", {"x": rand(shape, -3, 3), "s": rand((c,)), "b": rand((c,))}, epsilon=1e-3)


@pytest.mark.parametrize("axes", [[1], [0, 2, 3], [-1]])
def test_mean_variance_normalization(axes):
    check_op("MeanVarianceNormalization", {"x": rand((3, 4, 5, 6), -2, 2)}, rtol=1e-3, atol=1e-4, axes=axes)


@pytest.mark.parametrize("p", [1, 2])
@pytest.mark.parametrize("axis", [-1, 0, 1])
def test_lp_normalization(p, axis):
    x = rand((3, 5, 4), -2, 2)
    x[1, :, :] = 0  # zero norms along axes 0 and 2 leave zeros
    check_op("LpNormalization", {"x": x}, p=p, axis=axis)


@pytest.mark.parametrize("size", [1, 3, 5])  # onnxruntime takes odd sizes only
def test_lrn(size):
    check_op("LRN", {"x": rand((2, 7, 4, 5), -2, 2)}, size=size, alpha=0.01, beta=0.6, bias=1.5)


# ---------------------------------------------------------------------------------------------
# Losses
# ---------------------------------------------------------------------------------------------

def _loss_case(shape, x_high: float, reduction: str, weighted: bool, ignore) -> tuple:
    """(inputs, attributes) of a loss over scores ``x`` [N, C, ...] in [-3, ``x_high``]: class targets
    ``t`` [N, ...] (every third one ``ignore`` where given), class weights ``w`` where ``weighted``."""
    inputs = {"x": rand(shape, -3, x_high), "t": randint((shape[0],) + shape[2:], 0, shape[1] - 1)}
    if ignore is not None:
        inputs["t"].flat[:: 3] = ignore
    if weighted:
        inputs["w"] = rand((shape[1],), 0.2, 2)
    attrs = {"reduction": reduction}
    if ignore is not None:
        attrs["ignore_index"] = ignore
    return inputs, attrs


@pytest.mark.parametrize("reduction", ["none", "sum", "mean"])
@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("ignore", [None, 1, -1, 7])
@pytest.mark.parametrize("shape", [(4, 5), (3, 5, 6), (2, 5, 3, 4)])
def test_nll_loss(reduction, weighted, ignore, shape):
    inputs, attrs = _loss_case(shape, 0, reduction, weighted, ignore)
    check_op("NegativeLogLikelihoodLoss", inputs, opset=22, **attrs)


@pytest.mark.parametrize("reduction", ["none", "sum", "mean"])
@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("ignore", [None, 2])
@pytest.mark.parametrize("shape", [(4, 5), (3, 5, 6), (2, 5, 3, 4)])
def test_softmax_cross_entropy(reduction, weighted, ignore, shape):
    inputs, attrs = _loss_case(shape, 3, reduction, weighted, ignore)
    check_op("SoftmaxCrossEntropyLoss", inputs, opset=13, n_outputs=2, **attrs)


# ---------------------------------------------------------------------------------------------
# Activations and unary math
# ---------------------------------------------------------------------------------------------

MATH_CASES = [
    ("Tan", -1.4, 1.4), ("Asin", -0.99, 0.99), ("Acos", -0.99, 0.99), ("Atan", -10, 10), ("Sinh", -5, 5),
    ("Cosh", -5, 5), ("Asinh", -50, 50), ("Acosh", 1.0, 50), ("Atanh", -0.99, 0.99),
]


@pytest.mark.parametrize("op,lo,hi", MATH_CASES)
@pytest.mark.parametrize("shape", [(7, 13), (2, 3, 67), (5,)])
def test_unary_math(op, lo, hi, shape):
    check_op(op, {"x": rand(shape, lo, hi)}, opset=22)


NUMPY_MATH = {"Tan": np.tan, "Asin": np.arcsin, "Acos": np.arccos, "Atan": np.arctan, "Sinh": np.sinh,
              "Cosh": np.cosh, "Asinh": np.arcsinh, "Acosh": np.arccosh, "Atanh": np.arctanh}


@pytest.mark.parametrize("op,lo,hi", MATH_CASES)
def test_unary_math_double(op, lo, hi):
    """float64 (numpy as the reference: onnxruntime has float kernels only)."""
    x = rand((3, 17), lo, hi, dtype=np.float64)
    model = make_model([node(op, ["x"], ["y"])], {"x": x}, ["y"], opset=22)
    (ours,) = run_tcomp(model, {"x": x})
    assert_matches(ours, NUMPY_MATH[op](x), rtol=1e-12, atol=1e-14)


def test_inverse_hyperbolic_near_zero():
    """asinh/atanh of tiny values keep their relative accuracy."""
    x = (rand_nonzero((4, 9), 1e-3, 1.0) * 1e-4).astype(np.float32)
    for op in ("Asinh", "Atanh", "Sinh", "Tan"):
        check_op(op, {"x": x}, opset=22, rtol=1e-5, atol=0)


@pytest.mark.parametrize("op,attrs,lo,hi", [
    ("Celu", {}, -5, 5), ("Celu", {"alpha": 2.5}, -5, 5), ("Mish", {}, -20, 20), ("Softsign", {}, -9, 9),
    ("Shrink", {}, -2, 2), ("Shrink", {"lambd": 1.1, "bias": 0.3}, -3, 3), ("ThresholdedRelu", {}, -3, 3),
    ("ThresholdedRelu", {"alpha": 0.4}, -3, 3), ("Swish", {}, -8, 8), ("Swish", {"alpha": 0.6}, -8, 8),
])
def test_activations(op, attrs, lo, hi):
    opset = 24 if op == "Swish" else 22
    check_op(op, {"x": rand((3, 4, 37), lo, hi)}, opset=opset, **attrs)


@pytest.mark.parametrize("op", ["Celu", "Softsign", "ThresholdedRelu"])  # (Mish: the reference rounds log1p)
def test_activations_float16(op):
    """float16 against onnx.reference (onnxruntime lacks these float16 kernels)."""
    x = rand((5, 33), -4, 4).astype(F16)
    check_onnx_reference([node(op, ["x"], ["y"])], {"x": x}, ["y"], opset=22, rtol=2e-3, atol=2e-3)


@pytest.mark.parametrize("alpha", [None, 0.7])
def test_swiglu(alpha):
    """SwiGLU (opset 28) against onnx.reference."""
    inputs = {"a": rand((3, 4, 9), -6, 6), "b": rand((3, 4, 9))}
    attrs = {} if alpha is None else {"alpha": alpha}
    check_onnx_reference([node("SwiGLU", ["a", "b"], ["y"], **attrs)], inputs, ["y"], opset=28)


@pytest.mark.parametrize("axis", [0, 1, -1])
@pytest.mark.parametrize("opset", [11, 13])
def test_hardmax(axis, opset):
    x = rand((3, 4, 5))
    x[0, 1, :] = 0.5  # ties: the first maximum wins
    check_op("Hardmax", {"x": x}, opset=opset, axis=axis)


def test_hardmax_integer_like_ties():
    x = randint((6, 7), -2, 2).astype(np.float32)
    check_op("Hardmax", {"x": x}, opset=13)


# ---------------------------------------------------------------------------------------------
# CausalConvWithState (opset 27: onnx.reference)
# ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("kernel", [1, 3, 4])
@pytest.mark.parametrize("with_bias", [False, True])
@pytest.mark.parametrize("with_past", [False, True])
@pytest.mark.parametrize("activation", ["none", "silu"])
def test_causal_conv_with_state(kernel, with_bias, with_past, activation):
    batch, channels, length = 2, 5, 7
    inputs = {"x": rand((batch, channels, length), -2, 2), "w": rand((channels, 1, kernel))}
    names = ["x", "w", "", ""]
    if with_bias:
        inputs["b"] = rand((channels,))
        names[2] = "b"
    if with_past:
        if kernel == 1:
            pytest.skip("the past state of a 1-wide kernel is empty: tcomp takes no zero-size graph inputs")
        inputs["s"] = rand((batch, channels, kernel - 1), -2, 2)
        names[3] = "s"
    while names[-1] == "":
        names.pop()
    check_onnx_reference([node("CausalConvWithState", names, ["y", "state"], activation=activation)], inputs,
                         ["y", "state"], opset=27)


# ---------------------------------------------------------------------------------------------
# LinearAttention (opset 27: onnx.reference)
# ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("rule,per_key_decay,scalar_beta", [
    ("linear", False, False), ("gated", False, False), ("gated", True, False), ("delta", False, False),
    ("delta", False, True), ("gated_delta", False, False), ("gated_delta", True, True)])
@pytest.mark.parametrize("heads", [(2, 2), (4, 2), (3, 1)])
@pytest.mark.parametrize("with_past", [False, True])
def test_linear_attention(rule, per_key_decay, scalar_beta, heads, with_past):
    batch, length, dk, dv = 2, 5, 4, 3
    q_heads, kv_heads = heads
    inputs = {"q": rand((batch, length, q_heads * dk)), "k": rand((batch, length, kv_heads * dk)),
              "v": rand((batch, length, kv_heads * dv))}
    names = ["q", "k", "v", "", "", ""]
    if with_past:
        inputs["s"] = rand((batch, kv_heads, dk, dv))
        names[3] = "s"
    if rule in ("gated", "gated_delta"):
        inputs["d"] = rand((batch, length, kv_heads * dk if per_key_decay else kv_heads), -1.0, 0.0)
        names[4] = "d"
    if rule in ("delta", "gated_delta"):
        inputs["b"] = rand((batch, length, 1 if scalar_beta else kv_heads), 0.0, 1.0)
        names[5] = "b"
    while names[-1] == "":
        names.pop()
    check_onnx_reference([node("LinearAttention", names, ["y", "state"], update_rule=rule, q_num_heads=q_heads,
                               kv_num_heads=kv_heads, scale=0.0 if with_past else 0.7)],
                         inputs, ["y", "state"], opset=27, rtol=1e-4, atol=1e-5)


def test_linear_attention_float16():
    inputs = {"q": rand((1, 6, 8)).astype(F16), "k": rand((1, 6, 8)).astype(F16), "v": rand((1, 6, 6)).astype(F16),
              "d": rand((1, 6, 2), -1, 0).astype(F16), "b": rand((1, 6, 2), 0, 1).astype(F16)}
    check_onnx_reference([node("LinearAttention", ["q", "k", "v", "", "d", "b"], ["y", "state"], q_num_heads=2,
                               kv_num_heads=2)], inputs, ["y", "state"], opset=27, rtol=2e-3, atol=2e-3)
