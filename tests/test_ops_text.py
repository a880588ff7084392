"""TfIdfVectorizer over integer token ids against onnxruntime: random tokens from a small
vocabulary (so n-grams repeat), random pools of uni-, bi- and trigrams, every mode.

Weights follow the spec and onnxruntime (n-gram ``g``'s weight goes to output
``ngram_indexes[g]``); onnx.reference reads them by output position instead, which agrees
only when ``ngram_indexes`` is the identity."""
from __future__ import annotations

import numpy as np
import pytest
from onnx_helpers import check, node, rng


def _pool(sizes: dict, vocabulary: int):
    """pool_int64s and ngram_counts with ``sizes[n]`` distinct random n-grams of each length n."""
    pool, counts = [], []
    for n in sorted(sizes):
        counts.append(len(pool))
        grams = sorted({tuple(int(t) for t in rng().integers(0, vocabulary, n)) for _ in range(8 * sizes[n])})
        assert len(grams) >= sizes[n]
        pool += [t for gram in grams[:sizes[n]] for t in gram]
    return pool, counts


@pytest.mark.parametrize("mode", ["TF", "IDF", "TFIDF"])
@pytest.mark.parametrize("shape,dtype", [((17,), np.int64), ((3, 12), np.int32)], ids=str)
@pytest.mark.parametrize("grams,max_skip", [((1, 2), 0), ((2, 3), 2), ((1, 3), 1)], ids=str)
def test_tfidf_vectorizer(mode, shape, dtype, grams, max_skip):
    vocabulary = 5
    pool, counts = _pool({1: 3, 2: 6, 3: 5}, vocabulary)
    total = 3 + 6 + 5
    indexes = rng().permutation(total + 2)[:total]  # two outputs no n-gram maps to
    tokens = rng().integers(0, vocabulary, shape).astype(dtype)
    attrs = dict(mode=mode, min_gram_length=grams[0], max_gram_length=grams[1], max_skip_count=max_skip,
                 ngram_counts=counts, ngram_indexes=[int(i) for i in indexes], pool_int64s=pool)
    if mode != "TF":
        attrs["weights"] = [float(w) for w in rng().uniform(0.5, 2.0, total)]  # one per n-gram
    check([node("TfIdfVectorizer", ["x"], ["y"], **attrs)], {"x": tokens}, ["y"], opset=9)
