"""Cost-model quality on held-out kernels: ranking the candidates the search and the predicted compile rank.

    python benchmarks/costmodel_eval.py [--dir costmodel_data [--dir more_data]] [--model other.json]

The held-out kernels of benchmarks/costmodel_data.py (ViT-tiny's tasks, half of MobileNetV2's,
one-op models and compute definitions; none of their workloads is in training) each come with measured
candidates: random samples of the design space, the best predicted candidates of the predicted
compile's evolution, and the template kernel for model tasks. Models score the candidates of one
kernel at a time:

    random        RandomModel (mean over 50 seeds)
    pretrained    the shipped model, tcomp/costmodel/pretrained/cpu.json (cuda.json: --target cuda)
    given         the model file --model (e.g. an earlier pretrained model), if given
    pre on half   the shipped model alone, scored on the half of this kernel's candidates that
                  pre+half is scored on
    pre+half      the shipped model updated with the other half of this kernel's candidates
                  (``XGBModel.fit_arrays``: what the search does after its first batches)

pairwise accuracy: the share of candidate pairs whose measured times differ by more than 5%
(closer pairs are within timing noise) that the model orders correctly. top-1: the measured
time of the model's top pick / the best measured time (1.00 = it picked the best); top-5:
the same for the best of its five top picks (the search measures batches of top picks);
vs template (model tasks): the measured time of the model's pick / the template's, which is
what the predicted compile gains over a template compile on that kernel (below 1 = faster).
"""
from __future__ import annotations

import argparse
import itertools
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from costmodel_data import dataset  # noqa: E402

from tcomp.costmodel.model import RandomModel  # noqa: E402
from tcomp.costmodel.xgb import XGBModel, load_pretrained  # noqa: E402


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


def vs_template(scores, seconds, origins) -> float:
    """The measured time of the pick / the template's (nan without a template)."""
    if "template" not in origins:
        return float("nan")
    return float(seconds[int(np.argmax(scores))] / seconds[origins.index("template")])


def metrics(scores, seconds, origins) -> tuple:
    return (pairwise_accuracy(scores, seconds), top1(scores, seconds), top5(scores, seconds),
            vs_template(scores, seconds, origins))


def _gmean(values) -> float:
    values = [v for v in values if not np.isnan(v)]
    return float(np.exp(np.mean(np.log(values)))) if values else float("nan")


def _half_trained(x, s, name, target: str) -> tuple:
    """Indices of the half of a kernel's candidates scored, and the model updated with the other half."""
    order = np.random.default_rng(0).permutation(len(s))
    train, test = order[: len(s) // 2], order[len(s) // 2:]
    model = load_pretrained(target)
    model.fit_arrays(x[train], s[train], [name] * len(train))
    return test, model


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--dir", action="append", help="prepared and measured by costmodel_data.py "
                        "(repeat for several; default: costmodel_data)")
    parser.add_argument("--model", help="also evaluate this XGBModel file (column 'given')")
    parser.add_argument("--target", default="cpu", help="whose pretrained model: cpu, cuda")
    args = parser.parse_args()
    data = dataset(args.dir or ["costmodel_data"], "heldout")
    models = {"pretrained": load_pretrained(args.target)}
    if args.model:
        models["given"] = XGBModel.load(args.model)
    columns = ["random", *models, "pre on half", "pre+half"]
    results = {c: [] for c in columns}
    print(f"{'kernel':36s} {'n':>3s} " + " ".join(f"{c:>22s}" for c in columns))
    for name, (x, s, origins) in data.items():
        row = {}
        randoms = [metrics(RandomModel(seed).predict(list(range(len(s)))), s, origins) for seed in range(50)]
        row["random"] = tuple(np.mean([r[i] for r in randoms]) for i in range(4))
        for column, model in models.items():
            row[column] = metrics(model.predict_arrays(x), s, origins)
        test, model = _half_trained(x, s, name, args.target)
        half_origins = [origins[i] for i in test]
        row["pre on half"] = metrics(models["pretrained"].predict_arrays(x[test]), s[test], half_origins)
        row["pre+half"] = metrics(model.predict_arrays(x[test]), s[test], half_origins)
        for c in columns:
            results[c].append(row[c])
        print(f"{name[:36]:36s} {len(s):3d} " + " ".join(
            f"acc {row[c][0]:.2f} top1 {row[c][1]:5.2f}" for c in columns), flush=True)
    template_over_best = [s[o.index("template")] / s.min() for _, s, o in data.values() if "template" in o]
    print()
    print(f"{len(data)} held-out kernels ({len(template_over_best)} with a template); "
          f"the template alone: top-1 {_gmean(template_over_best):.2f}")
    print(f"{'model':12s} {'pairwise':>9s} {'top-1':>6s} {'top-5':>6s} {'pick/template':>14s}")
    for c in columns:
        acc, t1, t5, vt = zip(*results[c])
        print(f"{c:12s} {np.mean(acc):9.2f} {_gmean(t1):6.2f} {_gmean(t5):6.2f} {_gmean(vt):14.2f}")
    print("(pairwise: accuracy over pairs >5% apart; top-1, top-5: measured time of the pick (best of 5 "
          "picks) / the best; pick/template: of the pick / the template's; means of ratios are geometric; "
          "pre on half and pre+half score the same half of each kernel's candidates)")


if __name__ == "__main__":
    main()
