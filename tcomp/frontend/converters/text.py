"""Converter of TfIdfVectorizer over integer token ids (string pools are refused: no string tensors).

The pool's n-grams are compile-time data, so the op becomes tensor ops. For every n-gram length
``n`` in ``[min_gram_length, max_gram_length]`` and skip distance ``d`` (only ``d = 1`` for
unigrams, else ``1 .. max_skip_count + 1``), the windows ``x[s], x[s+d], ..., x[s+(n-1)d]``
are compared with every pool n-gram of that length::

    hits[b, s, g]  = AND_i  Equal(x[b, s + i*d], pool[g, i])        # [B, L, P_n], L = C - (n-1)d
    counts[b, g]  += ReduceSum(Cast(hits), axis s)                   # [B, P_n]
    frequency      = Concat(counts over n) @ one_hot(ngram_indexes)   # [B, output size]

then the mode weighs the frequencies: TF as they are, IDF ``weight if frequency > 0``,
TFIDF ``weight * frequency``, with n-gram ``g``'s weight at output ``ngram_indexes[g]``
(weights default to 1).
"""
from __future__ import annotations

import numpy as np

from .common import ConvertError, converter, reshape_to
from .tensor import emit_slice


@converter("TfIdfVectorizer")
def _tfidf_vectorizer(ctx, inputs, attrs):
    x = inputs[0]
    if attrs.get("pool_strings"):
        raise ConvertError("a pool of strings: tcomp compiles numeric tensors only (pool_int64s is supported)")
    if x.dtype not in ("int32", "int64") or len(x.shape) not in (1, 2):
        raise ConvertError(f"input of type {x.dtype} and rank {len(x.shape)} (int32/int64 of rank 1 or 2 expected)")
    mode = attrs.get("mode", "TF")
    if mode not in ("TF", "IDF", "TFIDF"):
        raise ConvertError(f"mode {mode!r} is not TF, IDF or TFIDF")
    pool = np.asarray(attrs.get("pool_int64s", []), dtype=np.int64)
    starts = [int(c) for c in attrs["ngram_counts"]]
    indexes = [int(i) for i in attrs["ngram_indexes"]]
    low, high = int(attrs["min_gram_length"]), int(attrs["max_gram_length"])
    max_skip = int(attrs["max_skip_count"])
    output_size = max(indexes) + 1
    tokens = reshape_to(ctx, x, (1,) + tuple(x.shape)) if len(x.shape) == 1 else x
    if tokens.dtype != "int64":
        tokens = ctx.emit1("Cast", [tokens], {"to": "int64"})
    batch, length = tokens.shape

    counts, columns = [], []
    gram_id = 0  # n-grams are numbered across the pool in order; ngram_indexes maps them to outputs
    for n, start in enumerate(starts, start=1):
        end = starts[n] if n < len(starts) else len(pool)
        grams = pool[start:end].reshape(-1, n)
        ids = range(gram_id, gram_id + len(grams))
        gram_id += len(grams)
        if not low <= n <= high or len(grams) == 0:
            continue
        for distance in ([1] if n == 1 else range(1, max_skip + 2)):
            windows = length - (n - 1) * distance
            if windows <= 0:
                continue
            hits = None
            for i in range(n):
                column = emit_slice(ctx, tokens, [i * distance], [i * distance + windows], [1], [1])
                column = reshape_to(ctx, column, (batch, windows, 1))
                equal = ctx.emit1("Equal", [column, ctx.const(grams[:, i].copy(), "ngram_part")])
                hits = equal if hits is None else ctx.emit1("And", [hits, equal])
            found = ctx.emit1("Cast", [hits], {"to": "float32"})
            counts.append(ctx.emit1("ReduceSum", [found], {"axes": [1], "keepdims": 0}))
            columns.append(ids)
    if not counts:  # no n-gram can match: all frequencies are zero
        frequency = ctx.const(np.zeros((batch, output_size), np.float32), "frequency")
    else:
        scatter = np.zeros((sum(len(c) for c in columns), output_size), np.float32)
        for row, gram in enumerate(g for ids in columns for g in ids):
            scatter[row, indexes[gram]] = 1.0
        stacked = counts[0] if len(counts) == 1 else ctx.emit1("Concat", counts, {"axis": 1})
        frequency = ctx.emit1("MatMul", [stacked, ctx.const(scatter, "ngram_to_output")])
    weighted = _weigh(ctx, frequency, mode, attrs.get("weights"), indexes, output_size)
    return [reshape_to(ctx, weighted, (output_size,)) if len(x.shape) == 1 else weighted]


def _weigh(ctx, frequency, mode: str, weights, indexes: list, output_size: int):
    """The mode's weighting; ``weights[g]`` belongs to pool n-gram ``g`` and so to output ``indexes[g]``
    (the spec and onnxruntime; onnx.reference reads it at output position ``g`` instead)."""
    if mode == "TF":
        return frequency
    per_output = np.ones(output_size, np.float32)
    if weights:
        if len(weights) != len(indexes):
            raise ConvertError(f"{len(weights)} weights for {len(indexes)} n-grams (one each expected)")
        per_output[indexes] = weights
    if mode == "IDF":
        present = ctx.emit1("Cast", [ctx.emit1("Greater", [frequency, ctx.const(np.float32(0), "zero")])],
                            {"to": "float32"})
        return ctx.emit1("Mul", [present, ctx.const(per_output, "idf_weights")])
    return ctx.emit1("Mul", [frequency, ctx.const(per_output, "idf_weights")])
