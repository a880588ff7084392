"""Converters of the stateful sequence-model ops: CausalConvWithState.

CausalConvWithState is a depthwise 1-D convolution over the input preceded by the
carried state (or zeros), with an optional SiLU; the new state is the last
``kernel - 1`` positions of that padded input. The convolution is the Conv anchor
over a height of 1 (half precision computed in float32).
"""
from __future__ import annotations

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
