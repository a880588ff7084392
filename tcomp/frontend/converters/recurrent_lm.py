"""Converters of the stateful sequence-model ops: CausalConvWithState and LinearAttention.

CausalConvWithState is a depthwise 1-D convolution over the input preceded by the
carried state (or zeros), with an optional SiLU; the new state is the last
``kernel - 1`` positions of that padded input. The convolution is the Conv anchor
over a height of 1 (half precision computed in float32).

LinearAttention (linear / gated / delta / gated-delta rules) is the LinearAttentionScan
anchor (``tcomp.ops.linear_attention``) over float32 views of its inputs in heads-major
layouts; its packed result is sliced into the output and the present state.
"""
from __future__ import annotations

import numpy as np

from .common import ConvertError, converter, reshape_to

_HALF = ("float16", "bfloat16")


def _cast(ctx, value, dtype):
    return value if value.dtype == dtype else ctx.emit1("Cast", [value], {"to": dtype})


@converter("CausalConvWithState")
def _causal_conv_with_state(ctx, inputs, attrs):
    inputs = list(inputs) + [None] * (4 - len(inputs))
    x, weight, bias, past = inputs[:4]
    activation = attrs.get("activation", "none")
    if activation not in ("none", "silu", "swish"):
        raise ConvertError(f"activation '{activation}' is not one of none, silu, swish")
    if len(x.shape) != 3 or len(weight.shape) != 3:
        raise ConvertError(f"input {list(x.shape)} and weight {list(weight.shape)} must be (B, C, L) and (C, 1, K)")
    batch, channels, length = x.shape
    kernel = weight.shape[2]
    if tuple(weight.shape[:2]) != (channels, 1):
        raise ConvertError(f"weight {list(weight.shape)} must be ({channels}, 1, K): one filter per channel")
    if past is not None and tuple(past.shape) != (batch, channels, kernel - 1):
        raise ConvertError(f"past_state {list(past.shape)} must be {[batch, channels, kernel - 1]}")
    if past is not None:
        padded = ctx.emit1("Concat", [past, x], {"axis": 2})
    elif kernel > 1:
        padded = ctx.emit1("Pad", [x], {"pads": [0, 0, kernel - 1, 0, 0, 0], "mode": "constant", "value": 0.0})
    else:
        padded = x
    dtype = "float32" if x.dtype in _HALF else x.dtype
    span = length + kernel - 1
    conv_inputs = [reshape_to(ctx, _cast(ctx, padded, dtype), (batch, channels, 1, span)),
                   reshape_to(ctx, _cast(ctx, weight, dtype), (channels, 1, 1, kernel))]
    if bias is not None:
        conv_inputs.append(_cast(ctx, bias, dtype))
    conv = ctx.emit1("Conv", conv_inputs, {"strides": [1, 1], "dilations": [1, 1], "pads": [0, 0, 0, 0],
                                           "group": channels})
    out = _cast(ctx, reshape_to(ctx, conv, (batch, channels, length)), x.dtype)
    if activation != "none":  # SiLU in float32 of the rounded convolution
        wide = _cast(ctx, out, "float32")
        out = _cast(ctx, ctx.emit1("Mul", [wide, ctx.emit1("Sigmoid", [wide])]), x.dtype)
    state = ctx.emit1("Slice", [padded], {"starts": [0, 0, span - (kernel - 1)], "steps": [1, 1, 1],
                                          "out_shape": [batch, channels, kernel - 1]})
    return [out, state]


def _heads_major(ctx, x, heads, what):
    """(B, T, H*D) float32 -> (B, H, T, D)."""
    batch, length, hidden = x.shape
    if hidden % heads:
        raise ConvertError(f"{what} hidden size {hidden} is not a multiple of {heads} heads")
    x = reshape_to(ctx, _cast(ctx, x, "float32"), (batch, length, heads, hidden // heads))
    return ctx.emit1("Transpose", [x], {"perm": [0, 2, 1, 3]})


def _slice_rows(ctx, x, start, count):
    """x[..., start:start + count] of a 3-D value."""
    return ctx.emit1("Slice", [x], {"starts": [0, 0, start], "steps": [1, 1, 1],
                                    "out_shape": [x.shape[0], x.shape[1], count]})


@converter("LinearAttention")
def _linear_attention(ctx, inputs, attrs):
    inputs = list(inputs) + [None] * (6 - len(inputs))
    q, k, v, past, decay, beta = inputs[:6]
    rule = attrs.get("update_rule", "gated_delta")
    if rule not in ("linear", "gated", "delta", "gated_delta"):
        raise ConvertError(f"update_rule '{rule}' is not one of linear, gated, delta, gated_delta")
    gated, delta = rule in ("gated", "gated_delta"), rule in ("delta", "gated_delta")
    if gated != (decay is not None) or delta != (beta is not None):
        raise ConvertError(f"update_rule '{rule}' {'needs' if gated else 'forbids'} decay and "
                           f"{'needs' if delta else 'forbids'} beta")
    q_heads, kv_heads = attrs.get("q_num_heads", 0), attrs.get("kv_num_heads", 0)
    if q_heads <= 0 or kv_heads <= 0 or q_heads % kv_heads:
        raise ConvertError(f"q_num_heads ({q_heads}) must be a positive multiple of kv_num_heads ({kv_heads})")
    if any(len(x.shape) != 3 for x in (q, k, v)):
        raise ConvertError("query, key and value must be (B, T, H*D)")
    batch, length, _ = q.shape
    group = q_heads // kv_heads
    k4, v4 = _heads_major(ctx, k, kv_heads, "key"), _heads_major(ctx, v, kv_heads, "value")
    dk, dv = k4.shape[3], v4.shape[3]
    if q.shape[2] != q_heads * dk:
        raise ConvertError(f"query hidden size {q.shape[2]} is not q_num_heads x key head size {dk}")
    q5 = reshape_to(ctx, _cast(ctx, q, "float32"), (batch, length, kv_heads, group, dk))
    q5 = ctx.emit1("Transpose", [q5], {"perm": [0, 2, 3, 1, 4]})
    scan_inputs = [q5, k4, v4]
    if gated:
        if decay.shape[-1] not in (kv_heads, kv_heads * dk):
            raise ConvertError(f"decay's last axis {decay.shape[-1]} is neither kv_num_heads nor kv_num_heads*dk")
        factor = _heads_major(ctx, decay, kv_heads, "decay")
        scan_inputs.append(ctx.emit1("Exp", [factor]))
    if delta:
        if beta.shape[-1] not in (kv_heads, 1):
            raise ConvertError(f"beta's last axis {beta.shape[-1]} is neither kv_num_heads nor 1")
        scan_inputs.append(_heads_major(ctx, beta, beta.shape[-1], "beta"))
    if past is not None:
        if tuple(past.shape) != (batch, kv_heads, dk, dv):
            raise ConvertError(f"past_state {list(past.shape)} must be {[batch, kv_heads, dk, dv]}")
        scan_inputs.append(_cast(ctx, past, "float32"))
    scale = attrs.get("scale") or 1.0 / np.sqrt(dk)
    scan_attrs = {"length": length, "group": group, "dk": dk, "dv": dv, "scale": float(scale), "gated": gated,
                  "delta": delta, "past": past is not None}
    packed = ctx.emit1("LinearAttentionScan", scan_inputs, scan_attrs)
    outputs = reshape_to(ctx, _slice_rows(ctx, packed, 0, length * group * dv),
                         (batch, kv_heads, length, group, dv))
    outputs = ctx.emit1("Transpose", [outputs], {"perm": [0, 2, 1, 3, 4]})
    y = _cast(ctx, reshape_to(ctx, outputs, (batch, length, q_heads * dv)), q.dtype)
    state = reshape_to(ctx, _slice_rows(ctx, packed, length * group * dv, dk * dv), (batch, kv_heads, dk, dv))
    state = _cast(ctx, state, past.dtype if past is not None else q.dtype)
    return [y, state]
