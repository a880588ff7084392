"""Converters of the language-model attention ops: Attention (opsets 23-25), FlexAttention
(ai.onnx.preview) and RotaryEmbedding.

Attention decomposes into graph ops that fusion merges back::

    Q*s @ (K*s)^T -> [softcap] -> + bias -> Softmax -> [fully-masked rows -> 0] -> @ V

``bias`` is the additive mask: the attention mask (a boolean mask becomes 0 / -inf,
a short one is padded with -inf), the causal and sliding-window masks, aligned to the
bottom right (offset by the past length, or per batch by ``nonpad_kv_seqlen``), and the
padding mask of ``nonpad_kv_seqlen``. Position masks are comparisons of index vectors
(fused into the bias, never a (q, kv) constant); rows that no key reaches are found at
compile time where every mask is known, else by a row maximum of the bias. Grouped-query attention runs each key/value head against its group of query
heads as one matmul (the query heads of a group are consecutive). Half-precision inputs
are computed in float32 and rounded once at the end.
"""
from __future__ import annotations

import numpy as np
import onnx

from ...graph.ir import dtype_of_numpy, numpy_dtype
from ...tir.expr import is_float
from .common import ConvertError, converter, reshape_to

NEG_INF = float("-inf")
_HALF = ("float16", "bfloat16")


def _scalar(ctx, value, dtype):
    return ctx.const(np.array(value, dtype=numpy_dtype(dtype)))


def _cast(ctx, value, dtype):
    return value if value.dtype == dtype else ctx.emit1("Cast", [value], {"to": dtype})


def _split_heads(ctx, x, heads, what):
    """(B, S, H*D) -> (B, H, S, D)."""
    batch, seq, hidden = x.shape
    if heads <= 0 or hidden % heads:
        raise ConvertError(f"{what} hidden size {hidden} is not a multiple of {heads} heads")
    x = reshape_to(ctx, x, (batch, seq, heads, hidden // heads))
    return ctx.emit1("Transpose", [x], {"perm": [0, 2, 1, 3]})


class _Bias:
    """The additive attention bias: a constant part (numpy) plus graph terms.

    ``known`` models the whole bias in numpy while every term is known at compile time
    (position masks are emitted as index comparisons, not as constants, but modelled
    here), to find the fully masked rows without a run-time reduction.
    """

    def __init__(self, ctx, dtype):
        self.ctx, self.dtype = ctx, dtype
        self.static = np.zeros((), dtype=numpy_dtype(dtype))
        self.terms: list = []
        self.known = np.zeros((), dtype=np.float64)

    def add(self, term):
        if term.is_const:
            self.static = self.static + term.const.astype(self.static.dtype)
            if self.known is not None:
                self.known = self.known + term.const.astype(np.float64)
        else:
            self.terms.append(term)
            self.known = None

    def add_allowed(self, allowed, pattern=None):
        """Adds 0 where ``allowed`` (a bool value), -inf elsewhere; ``pattern`` is its numpy value if known."""
        ctx = self.ctx
        self.terms.append(ctx.emit1("Where", [allowed, _scalar(ctx, 0, self.dtype), _scalar(ctx, NEG_INF, self.dtype)]))
        if pattern is None:
            self.known = None
        elif self.known is not None:
            self.known = self.known + np.where(pattern, 0.0, NEG_INF)

    def value(self):
        """The whole bias as one value, or None when it is all zero."""
        ctx = self.ctx
        result = None
        if self.static.ndim or self.static != 0:
            result = ctx.const(self.static, "attn_bias")
        for term in self.terms:
            result = term if result is None else ctx.emit1("Add", [result, term])
        return result

    def all_masked_rows(self, bias):
        """A bool value, true for the query rows of ``bias`` that are -inf for every key; None if none are."""
        ctx = self.ctx
        if bias is None:
            return None
        if self.known is not None:
            rows = np.isneginf(np.max(self.known, axis=-1, keepdims=True)) if self.known.ndim else None
            return ctx.const(rows) if rows is not None and rows.any() else None
        row_max = ctx.emit1("ReduceMax", [bias], {"axes": [len(bias.shape) - 1], "keepdims": 1})
        return ctx.emit1("Equal", [row_max, _scalar(ctx, NEG_INF, bias.dtype)])


def _mask_bias(ctx, mask, kv_len, dtype):
    """The attention mask as an additive bias of ``dtype``, padded with -inf up to ``kv_len`` keys."""
    if mask.dtype == "bool":
        mask = ctx.emit1("Where", [mask, _scalar(ctx, 0, dtype), _scalar(ctx, NEG_INF, dtype)])
    else:
        mask = _cast(ctx, mask, dtype)
    short = kv_len - mask.shape[-1]
    if short < 0:
        raise ConvertError(f"attn_mask has {mask.shape[-1]} keys, more than the {kv_len} of the keys")
    if short:
        rank = len(mask.shape)
        pads = [0] * (2 * rank)
        pads[2 * rank - 1] = short
        mask = ctx.emit1("Pad", [mask], {"pads": pads, "mode": "constant", "value": NEG_INF})
    return mask


def _position_masks(ctx, bias, attrs, q_len, kv_len, past_len, nonpad):
    """Causal and sliding-window masks: query i, at absolute position p = i + offset, sees key j
    where 0 <= p - j (causal), p - j <= left, j - p <= right.

    ``offset`` is the past length, or ``nonpad_kv_seqlen[b] - q_len`` per batch (run time).
    The masks are comparisons of index vectors, fused into the bias: no (q, kv) constant.
    """
    causal = bool(attrs.get("is_causal", 0))
    left, right = attrs.get("left_window_size", -1), attrs.get("right_window_size", -1)
    if left < -1 or right < -1:
        raise ConvertError("left_window_size and right_window_size must be -1 or nonnegative")
    if not causal and left < 0 and right < 0:
        return
    rows = np.arange(q_len, dtype=np.int64).reshape(q_len, 1) + (past_len if nonpad is None else 0)
    cols = np.arange(kv_len, dtype=np.int64).reshape(1, kv_len)
    diff = ctx.emit1("Sub", [ctx.const(rows), ctx.const(cols)])
    pattern = None
    if nonpad is None:
        pattern = np.ones((q_len, kv_len), dtype=bool)
        d = rows - cols
    else:
        n = reshape_to(ctx, _cast(ctx, nonpad, "int64"), (nonpad.shape[0], 1, 1, 1))
        offset = ctx.emit1("Sub", [n, ctx.const(np.array(q_len, dtype=np.int64))])
        diff = ctx.emit1("Add", [diff, offset])
    conds = []
    for on, op, bound, test in ((causal, "GreaterOrEqual", 0, lambda d: d >= 0),
                                (left >= 0, "LessOrEqual", left, lambda d: d <= left),
                                (right >= 0, "GreaterOrEqual", -right, lambda d: d >= -right)):
        if on:
            conds.append(ctx.emit1(op, [diff, ctx.const(np.array(bound, dtype=np.int64))]))
            if pattern is not None:
                pattern &= test(d)
    allowed = conds[0]
    for cond in conds[1:]:
        allowed = ctx.emit1("And", [allowed, cond])
    bias.add_allowed(allowed, pattern)


@converter("Attention")
def _attention(ctx, inputs, attrs):
    inputs = list(inputs) + [None] * (7 - len(inputs))
    q, k, v, mask, past_key, past_value, nonpad = inputs[:7]
    out_dtype = q.dtype
    if not is_float(out_dtype):
        raise ConvertError(f"Attention on {out_dtype} is not supported")
    rank = len(q.shape)
    if rank not in (3, 4) or len(k.shape) != rank or len(v.shape) != rank:
        raise ConvertError(f"Q, K and V must all be 3-D or all 4-D, got ranks {len(q.shape)}, "
                           f"{len(k.shape)}, {len(v.shape)}")
    if (past_key is None) != (past_value is None):
        raise ConvertError("past_key and past_value must be given together")
    if nonpad is not None and past_key is not None:
        raise ConvertError("nonpad_kv_seqlen cannot be combined with past_key / past_value")
    dtype = "float32" if out_dtype in _HALF else out_dtype
    if rank == 3:
        for name in ("q_num_heads", "kv_num_heads"):
            if name not in attrs:
                raise ConvertError(f"3-D inputs need the {name} attribute")
        q = _split_heads(ctx, q, attrs["q_num_heads"], "Q")
        k = _split_heads(ctx, k, attrs["kv_num_heads"], "K")
        v = _split_heads(ctx, v, attrs["kv_num_heads"], "V")
    if past_key is not None:
        k = ctx.emit1("Concat", [past_key, k], {"axis": 2})
        v = ctx.emit1("Concat", [past_value, v], {"axis": 2})
    present_key, present_value = k, v
    batch, q_heads, q_len, head_size = q.shape
    kv_heads, kv_len = k.shape[1], k.shape[2]
    if q_heads % kv_heads or v.shape[1] != kv_heads:
        raise ConvertError(f"{q_heads} query heads cannot be grouped over {kv_heads} key / {v.shape[1]} "
                           f"value heads")
    if k.shape[3] != head_size:
        raise ConvertError(f"query head size {head_size} differs from key head size {k.shape[3]}")
    group = q_heads // kv_heads

    scale = attrs.get("scale")
    if scale is None:
        scale = 1.0 / np.sqrt(head_size)
    # sqrt(scale) on both Q and K (rounded to the input type), as the ONNX function does
    root = _scalar(ctx, np.array(np.sqrt(scale), dtype=numpy_dtype(out_dtype)).astype(np.float64), dtype)
    qs = ctx.emit1("Mul", [_cast(ctx, q, dtype), root])
    ks = ctx.emit1("Mul", [_cast(ctx, k, dtype), root])
    kt = ctx.emit1("Transpose", [ks], {"perm": [0, 1, 3, 2]})
    qs = reshape_to(ctx, qs, (batch, kv_heads, group * q_len, head_size))
    scores = raw = reshape_to(ctx, ctx.emit1("MatMul", [qs, kt]), (batch, q_heads, q_len, kv_len))
    softcap = attrs.get("softcap", 0.0)
    if softcap > 0:
        capped = ctx.emit1("Tanh", [ctx.emit1("Div", [scores, _scalar(ctx, softcap, dtype)])])
        scores = ctx.emit1("Mul", [capped, _scalar(ctx, softcap, dtype)])

    masks = _Bias(ctx, dtype)
    if mask is not None:
        masks.add(_mask_bias(ctx, mask, kv_len, dtype))
    past_len = past_key.shape[2] if past_key is not None else 0
    _position_masks(ctx, masks, attrs, q_len, kv_len, past_len, nonpad)
    if nonpad is not None:
        n = reshape_to(ctx, nonpad, (nonpad.shape[0], 1, 1, 1))
        keys = ctx.const(np.arange(kv_len, dtype=np.int64).reshape(1, 1, 1, kv_len))
        masks.add_allowed(ctx.emit1("Less", [keys, _cast(ctx, n, "int64")]))
    bias = masks.value()
    biased = scores if bias is None else ctx.emit1("Add", [scores, bias])

    precision = attrs.get("softmax_precision")
    soft_dtype = dtype_of_numpy(onnx.helper.tensor_dtype_to_np_dtype(precision)) if precision else dtype
    if soft_dtype in _HALF:
        soft_dtype = "float32"
    probs = ctx.emit1("Softmax", [_cast(ctx, biased, soft_dtype)], {"axis": 3})
    masked_rows = masks.all_masked_rows(bias)
    if masked_rows is not None:  # a row with no key to attend gives zeros, not 0/0
        probs = ctx.emit1("Where", [masked_rows, _scalar(ctx, 0, soft_dtype), probs])
    probs = _cast(ctx, probs, dtype)

    pv = reshape_to(ctx, probs, (batch, kv_heads, group * q_len, kv_len))
    y = reshape_to(ctx, ctx.emit1("MatMul", [pv, _cast(ctx, v, dtype)]), (batch, q_heads, q_len, v.shape[3]))
    if rank == 3:
        y = ctx.emit1("Transpose", [y], {"perm": [0, 2, 1, 3]})
        y = reshape_to(ctx, y, (batch, q_len, q_heads * v.shape[3]))

    mode = attrs.get("qk_matmul_output_mode", 0)
    if mode not in (0, 1, 2, 3):
        raise ConvertError(f"qk_matmul_output_mode {mode} is not one of 0, 1, 2, 3")
    qk_out = {0: raw, 1: scores, 2: biased, 3: probs}[mode]  # raw, softcapped, biased, softmax
    return [_cast(ctx, y, out_dtype), present_key, present_value, _cast(ctx, qk_out, out_dtype)]


@converter("FlexAttention", domain="ai.onnx.preview")
def _flex_attention(ctx, inputs, attrs):
    """FlexAttention (ai.onnx.preview): 4-D attention whose scores and probabilities pass through
    the ``score_mod`` / ``prob_mod`` subgraphs (imported inline, like If branches)::

        scores = (Q*s) @ (K*s)^T  ->  score_mod  ->  Softmax  ->  prob_mod  ->  @ V
    """
    from .control import import_subgraph  # control imports this module's package: bind late

    q, k, v = inputs[:3]
    if not all(x is not None and len(x.shape) == 4 for x in (q, k, v)):
        raise ConvertError("Q, K and V must be 4-D (batch, heads, sequence, head size)")
    out_dtype = q.dtype
    if not is_float(out_dtype):
        raise ConvertError(f"FlexAttention on {out_dtype} is not supported")
    batch, q_heads, q_len, head_size = q.shape
    kv_heads, kv_len = k.shape[1], k.shape[2]
    if k.shape[3] != head_size or v.shape[1] != kv_heads or v.shape[2] != kv_len:
        raise ConvertError(f"K {list(k.shape)} and V {list(v.shape)} do not fit Q {list(q.shape)}")
    if q_heads % kv_heads:
        raise ConvertError(f"{q_heads} query heads cannot be grouped over {kv_heads} key/value heads")
    group = q_heads // kv_heads
    precision = attrs.get("softmax_precision")
    dtype = dtype_of_numpy(onnx.helper.tensor_dtype_to_np_dtype(precision)) if precision else \
        ("float32" if out_dtype in _HALF else out_dtype)
    scale = attrs.get("scale")
    scale = 1.0 / np.sqrt(head_size) if scale is None else scale
    root = _scalar(ctx, np.array(np.sqrt(np.float32(scale)), dtype=numpy_dtype(out_dtype)).astype(np.float64), dtype)
    qs = reshape_to(ctx, ctx.emit1("Mul", [_cast(ctx, q, dtype), root]), (batch, kv_heads, group * q_len, head_size))
    kt = ctx.emit1("Transpose", [ctx.emit1("Mul", [_cast(ctx, k, dtype), root])], {"perm": [0, 1, 3, 2]})
    scores = reshape_to(ctx, ctx.emit1("MatMul", [qs, kt]), (batch, q_heads, q_len, kv_len))
    scores = _modified(ctx, import_subgraph, attrs.get("score_mod"), scores, "score_mod")
    probs = _modified(ctx, import_subgraph, attrs.get("prob_mod"), ctx.emit1("Softmax", [scores], {"axis": 3}),
                      "prob_mod")
    pv = reshape_to(ctx, probs, (batch, kv_heads, group * q_len, kv_len))
    y = reshape_to(ctx, ctx.emit1("MatMul", [pv, _cast(ctx, v, dtype)]), (batch, q_heads, q_len, v.shape[3]))
    return [_cast(ctx, y, out_dtype)]


def _modified(ctx, import_subgraph, graph, value, what):
    """``graph`` (one input, one output of the same shape) applied to ``value``; ``value`` if no graph."""
    if graph is None:
        return value
    if len(graph.input) != 1 or len(graph.output) != 1:
        raise ConvertError(f"{what} must take one input and give one output")
    (result,) = import_subgraph(ctx, graph, [value])
    if result.shape != value.shape:
        raise ConvertError(f"{what} changes the shape {list(value.shape)} to {list(result.shape)}")
    return _cast(ctx, result, value.dtype)


def _slice_last(ctx, x, start, count, step=1):
    """x[..., start : start + count * step : step]."""
    rank = len(x.shape)
    starts, steps = [0] * rank, [1] * rank
    starts[-1], steps[-1] = start, step
    if start == 0 and step == 1 and count == x.shape[-1]:
        return x
    return ctx.emit1("Slice", [x], {"starts": starts, "steps": steps, "out_shape": list(x.shape[:-1]) + [count]})


@converter("RotaryEmbedding")
def _rotary_embedding(ctx, inputs, attrs):
    """Rotates pairs of features by the cached angles: (x1, x2) -> (cos x1 - sin x2, sin x1 + cos x2).

    The pairs are the two halves of the rotated features, or neighbours (``interleaved``).
    Works in the input's layout: (B, H, S, D), or (B, S, H, D) for 3-D inputs.
    """
    x, cos, sin = inputs[:3]
    positions = inputs[3] if len(inputs) > 3 else None
    rank = len(x.shape)
    if rank == 4:
        batch, _, seq, head_size = x.shape
        x4, angle_shape = x, (batch, 1, seq)
    elif rank == 3:
        heads = attrs.get("num_heads", 0)
        batch, seq, hidden = x.shape
        if heads <= 0 or hidden % heads:
            raise ConvertError(f"3-D input needs num_heads dividing its hidden size {hidden}, got {heads}")
        head_size = hidden // heads
        x4, angle_shape = reshape_to(ctx, x, (batch, seq, heads, head_size)), (batch, seq, 1)
    else:
        raise ConvertError(f"input of rank {rank}; 3-D or 4-D expected")
    rot = attrs.get("rotary_embedding_dim", 0) or head_size
    if rot % 2 or rot > head_size:
        raise ConvertError(f"rotary_embedding_dim {rot} must be even and at most the head size {head_size}")
    half = rot // 2
    angles = []
    for cache, what in ((cos, "cos_cache"), (sin, "sin_cache")):
        if positions is not None:
            cache = ctx.emit1("Gather", [cache, positions], {"axis": 0})
        if tuple(cache.shape) != (batch, seq, half):
            raise ConvertError(f"{what} gives angles of shape {list(cache.shape)}, expected "
                               f"{[batch, seq, half]}")
        angles.append(reshape_to(ctx, _cast(ctx, cache, x.dtype), angle_shape + (half,)))
    c, s = angles
    if attrs.get("interleaved", 0):
        x1, x2 = _slice_last(ctx, x4, 0, half, 2), _slice_last(ctx, x4, 1, half, 2)
    else:
        x1, x2 = _slice_last(ctx, x4, 0, half), _slice_last(ctx, x4, half, half)
    real = ctx.emit1("Sub", [ctx.emit1("Mul", [c, x1]), ctx.emit1("Mul", [s, x2])])
    imag = ctx.emit1("Add", [ctx.emit1("Mul", [s, x1]), ctx.emit1("Mul", [c, x2])])
    if attrs.get("interleaved", 0):
        pair = tuple(real.shape) + (1,)
        both = ctx.emit1("Concat", [reshape_to(ctx, real, pair), reshape_to(ctx, imag, pair)], {"axis": 4})
        rotated = reshape_to(ctx, both, tuple(real.shape[:-1]) + (rot,))
    else:
        rotated = ctx.emit1("Concat", [real, imag], {"axis": 3})
    if rot < head_size:
        rotated = ctx.emit1("Concat", [rotated, _slice_last(ctx, x4, rot, head_size - rot)], {"axis": 3})
    return [reshape_to(ctx, rotated, x.shape)]
