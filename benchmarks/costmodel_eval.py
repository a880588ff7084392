"""Cost-model quality on kernels held out from training: pairwise accuracy and top-1 regret.

    python benchmarks/costmodel_eval.py [--per-kernel 48] [--dataset costmodel_eval.jsonl] [--fresh]

Each held-out kernel (shapes and kernels not in benchmarks/costmodel_train.py) gets
``--per-kernel`` random schedules, built and timed in-process (measurements cached in
``--dataset``). Models score the candidates of one kernel at a time:

    random        RandomModel (mean over 50 seeds)
    pretrained    the shipped model, tcomp/costmodel/pretrained/cpu.json
    online-other  a fresh XGBModel trained on the other held-out kernels only
    pre+other     the shipped model updated with the other held-out kernels
    pre+half      the shipped model updated with half of this kernel's candidates (what the
                  search does after its first batches), scored on the other half

pairwise accuracy: the share of candidate pairs whose measured times differ by more than 5%
(closer pairs are within timing noise) that the model orders correctly. top-1: the measured
time of the model's top pick / the best measured time (1.00 = it picked the best); top-5:
the same for the best of its five top picks (the search measures batches of top picks).
"""
from __future__ import annotations

import argparse
import itertools
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from costmodel_train import (  # noqa: E402
    TRAIN_KERNELS,
    batch_matmul,
    col_reduce,
    conv2d,
    dataset_arrays,
    ensure_measured,
    matmul,
    measure_args,
)

from tcomp import tir  # noqa: E402
from tcomp.costmodel.model import RandomModel  # noqa: E402
from tcomp.costmodel.xgb import XGBModel, load_pretrained  # noqa: E402
from tcomp.tir import expr as te  # noqa: E402


def tanh_gelu(m, n):
    a = tir.placeholder((m, n), "float32", name="X")
    c = tir.compute((m, n), lambda i, j: a[i, j] * (te.call("tanh", a[i, j] * 0.79788) + 1.0) * 0.5, name="Y")
    return tir.create_func([a, c])


HELD_OUT = {
    "matmul_320x192x256": lambda: matmul(320, 192, 256),
    "matmul_96x768x512": lambda: matmul(96, 768, 512),
    "bmm_4x96x192x128": lambda: batch_matmul(4, 96, 192, 128),
    "conv2d_16x56x32_3": lambda: conv2d(16, 56, 32, 3),
    "colsum_2048x512": lambda: col_reduce(2048, 512),
    "tanh_gelu_640x1024": lambda: tanh_gelu(640, 1024),
}
assert not set(HELD_OUT) & set(TRAIN_KERNELS)


def pairwise_accuracy(scores, seconds, tolerance=0.05) -> float:
    right = total = 0
    for i, j in itertools.combinations(range(len(seconds)), 2):
        fast, slow = (i, j) if seconds[i] < seconds[j] else (j, i)
        if seconds[slow] <= seconds[fast] * (1 + tolerance):
            continue
        total += 1
        right += scores[fast] > scores[slow]
    return right / max(total, 1)


def top1(scores, seconds) -> float:
    return float(seconds[int(np.argmax(scores))] / np.min(seconds))


def top5(scores, seconds) -> float:
    """The best measured time among the model's 5 top picks / the best (a search measures batches)."""
    return float(np.min(seconds[np.argsort(-np.asarray(scores))[:5]]) / np.min(seconds))


def load_dataset(paths: list) -> dict:
    """{kernel: (features, seconds)} from dataset files."""
    parts = [dataset_arrays(path, HELD_OUT) for path in paths]
    x = np.concatenate([p[0] for p in parts])
    seconds = np.concatenate([p[1] for p in parts])
    groups = [g for p in parts for g in p[2]]
    return {name: (x[[g == name for g in groups]], seconds[[g == name for g in groups]]) for name in dict.fromkeys(groups)}


def _metrics(scores, seconds) -> tuple:
    return pairwise_accuracy(scores, seconds), top1(scores, seconds), top5(scores, seconds)


def _gmean(values) -> float:
    return float(np.exp(np.mean(np.log(values))))


def _fit(model: XGBModel, parts: list) -> XGBModel:
    x = np.concatenate([p[0] for p in parts])
    s = np.concatenate([p[1] for p in parts])
    groups = [g for p in parts for g in [p[2]] * len(p[1])]
    model.fit_arrays(x, s, groups)
    return model


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    measure_args(parser, 48, "costmodel_eval.jsonl")
    args = parser.parse_args()
    ensure_measured(args, HELD_OUT, 1000)
    if args.measure_only:
        return
    data = load_dataset(args.dataset)
    pretrained = load_pretrained("cpu")
    columns = ["random", "pretrained", "online-other", "pre+other", "pre+half"]
    results = {c: ([], [], []) for c in columns}
    print(f"{'kernel':22s} {'n':>3s} " + " ".join(f"{c:>17s}" for c in columns))
    for name, (x, s) in data.items():
        others = [(ox, os_, oname) for oname, (ox, os_) in data.items() if oname != name]
        row = {}
        randoms = [RandomModel(seed).predict(list(range(len(s)))) for seed in range(50)]
        row["random"] = tuple(float(np.mean([fn(r, s) for r in randoms])) for fn in (pairwise_accuracy, top1, top5))
        scores = pretrained.predict_arrays(x)
        row["pretrained"] = _metrics(scores, s)
        scores = _fit(XGBModel(), others).predict_arrays(x)
        row["online-other"] = _metrics(scores, s)
        scores = _fit(load_pretrained("cpu"), others).predict_arrays(x)
        row["pre+other"] = _metrics(scores, s)
        order = np.random.default_rng(0).permutation(len(s))
        train, test = order[: len(s) // 2], order[len(s) // 2:]
        scores = _fit(load_pretrained("cpu"), [(x[train], s[train], name)]).predict_arrays(x[test])
        row["pre+half"] = _metrics(scores, s[test])
        for c in columns:
            for i in range(3):
                results[c][i].append(row[c][i])
        print(f"{name:22s} {len(s):3d} " + " ".join(f"acc {row[c][0]:.2f} top1 {row[c][1]:4.2f}" for c in columns))
    print(f"{'mean':22s} {'':3s} " + " ".join(
        f"acc {np.mean(results[c][0]):.2f} top1 {_gmean(results[c][1]):4.2f}" for c in columns))
    print(f"{'mean top-5':26s} " + " ".join(f"{'':9s}{_gmean(results[c][2]):4.2f}" for c in columns))
    print("(acc: pairwise ranking accuracy over pairs >5% apart; top1: measured time of the top pick / best; "
          "means of top1 and top-5 are geometric)")


if __name__ == "__main__":
    main()
