"""Trains the shipped CPU cost model on measured design-space candidates and template kernels.

    python benchmarks/costmodel_train.py [--dir costmodel_data] [--out tcomp/costmodel/pretrained/cpu.json]

The data is what benchmarks/costmodel_data.py prepared and measured: for each training kernel
(model tasks with their templates, and compute definitions), random samples of its design space,
the best predicted candidates of the predicted compile's evolution, and its template kernel,
each timed by the tuner's Measurer with 2 threads: on an idle 16-core machine (each process pinned
to 2 cores), and the kernels that machine ranks differently (convolutions) again on the idle 2-core
machine the model ships for; ``--dir`` order decides, the last directory that has a kernel wins.
Never measure on a machine shared with other work: libgomp's parallel regions wait for descheduled
threads, and a 0.1 ms kernel then takes 80 ms. The
kernels of the "heldout" split (benchmarks/costmodel_eval.py) are never trained on.

A kernel is one group of the model's target, ``log(best / seconds)`` within the kernel
(``XGBModel.fit_arrays``), so the template and the candidates of a kernel are ranked against
each other: what the predicted compile (``tuning/predicted.py``) and the search ask of it.
A kernel has one template among some 50 candidates, while the predicted compile's decision is
the template against the best predicted candidates: template rows weigh ``--template-weight``
times a candidate's.

``--cv`` instead cross-validates on the training kernels alone (5 folds of whole kernels, each
fold's kernels scored by a model trained on the others) for each of ``--cv-weights``, with
costmodel_eval.py's metrics. On the data of docs/benchmarks.md weighting the templates did not
help (weights 1, 2, 4, 8, 16: pick/template 0.90, 0.96, 0.94, 0.94, 0.92; top-1 1.18, 1.28, 1.20, 1.21, 1.19),
so they weigh as a candidate does.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from costmodel_data import dataset  # noqa: E402

from tcomp.costmodel.xgb import PRETRAINED_DIR, XGBModel  # noqa: E402


TEMPLATE_WEIGHT = 1.0


def fit(data: dict, template_weight: float = TEMPLATE_WEIGHT, params: dict | None = None) -> XGBModel:
    """A fresh XGBModel trained on {kernel: (features, seconds, origins)}, one group per kernel,
    template rows weighted ``template_weight``."""
    model = XGBModel(params)
    model.fit_arrays(np.concatenate([x for x, _, _ in data.values()]),
                     np.concatenate([s for _, s, _ in data.values()]),
                     [name for name, (_, s, _) in data.items() for _ in s],
                     [template_weight if o == "template" else 1.0 for _, _, origins in data.values() for o in origins])
    return model


def cross_validate(data: dict, template_weight: float, folds: int = 5) -> tuple:
    """Mean pairwise accuracy and geometric-mean top-1, top-5, pick/template over the training
    kernels, each kernel scored by a model trained on the other folds' kernels."""
    from costmodel_eval import _gmean, metrics

    names = sorted(data)
    fold_of = {names[i]: k % folds for k, i in enumerate(np.random.default_rng(0).permutation(len(names)))}
    results = []
    for fold in range(folds):
        model = fit({n: d for n, d in data.items() if fold_of[n] != fold}, template_weight, {"nthread": 1})
        results += [metrics(model.predict_arrays(x), s, origins)
                    for name, (x, s, origins) in data.items() if fold_of[name] == fold]
    acc, t1, t5, vt = zip(*results)
    return float(np.mean(acc)), _gmean(t1), _gmean(t5), _gmean(vt)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--dir", action="append", help="prepared and measured by costmodel_data.py "
                        "(repeat for several; default: costmodel_data)")
    parser.add_argument("--out", default=str(PRETRAINED_DIR / "cpu.json"))
    parser.add_argument("--template-weight", type=float, default=TEMPLATE_WEIGHT)
    parser.add_argument("--cv", action="store_true", help="cross-validate on the training kernels; train nothing")
    parser.add_argument("--cv-weights", type=float, nargs="+", default=[1, 2, 4, 8, 16])
    args = parser.parse_args()
    data = dataset(args.dir or ["costmodel_data"], "train")
    if args.cv:
        print(f"5-fold cross-validation over {len(data)} training kernels (folds of whole kernels)")
        print(f"{'template weight':>15s} {'pairwise':>9s} {'top-1':>6s} {'top-5':>6s} {'pick/template':>14s}")
        for weight in args.cv_weights:
            acc, t1, t5, vt = cross_validate(data, weight)
            print(f"{weight:15g} {acc:9.2f} {t1:6.2f} {t5:6.2f} {vt:14.2f}", flush=True)
        return
    fit(data, args.template_weight).save(args.out)
    templates = sum(o.count("template") for _, _, o in data.values())
    print(f"trained on {sum(len(s) for _, s, _ in data.values())} measurements ({templates} templates) "
          f"of {len(data)} kernels -> {args.out}")


if __name__ == "__main__":
    main()
