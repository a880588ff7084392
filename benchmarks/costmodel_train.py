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

A kernel is one group of the model's label, ``log(best / seconds)`` within the kernel
(``XGBModel.fit_arrays``): one ranking query (``rank:pairwise``, the default) or, with a
regression objective, the value to fit. The template and the candidates of a kernel are
ranked against each other: what the predicted compile (``tuning/predicted.py``) and the search
ask of it.

``--cv`` instead cross-validates on the training kernels alone for each of ``--cv-objectives``:
5 folds of whole kernels, each fold's kernels scored by a model trained on the others, repeated
with 3 fold assignments (xgboost seeded alike), with costmodel_eval.py's metrics; the held-out
kernels stay unseen. On the data of docs/benchmarks.md the ranking objective picked better
(top-1 1.22 against 1.23, top-5 1.03 against 1.07, pairwise accuracy 0.83 both), so it ships.
``--cv-score-dir`` scores the folds on other directories' measurements of the same kernels (e.g.
more candidates measured): training sets are then compared on the same labels.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from costmodel_data import dataset  # noqa: E402

from tcomp.costmodel.xgb import DEFAULT_PARAMS, PRETRAINED_DIR, XGBModel  # noqa: E402


CV_SEEDS = (0, 1, 2)


def fit(data: dict, params: dict | None = None, seed: int = 0) -> XGBModel:
    """A fresh XGBModel trained on {kernel: (features, seconds, origins)}, one group per kernel."""
    model = XGBModel(params, seed=seed)
    model.fit_arrays(np.concatenate([x for x, _, _ in data.values()]),
                     np.concatenate([s for _, s, _ in data.values()]),
                     [name for name, (_, s, _) in data.items() for _ in s])
    return model


def cross_validate(data: dict, params: dict | None = None, folds: int = 5, scored: dict | None = None) -> tuple:
    """Mean pairwise accuracy and geometric-mean top-1, top-5, pick/template over the training
    kernels, each kernel scored by a model trained on the other folds' kernels; means over
    ``CV_SEEDS`` (fold assignment and xgboost seed). ``scored``: the measurements a fold's
    kernels are scored on (default ``data``), so that training sets compare on the same labels."""
    from costmodel_eval import _gmean, metrics

    scored = scored or data
    names = sorted(set(data) | set(scored))
    per_seed = []
    for seed in CV_SEEDS:
        perm = np.random.default_rng(seed).permutation(len(names))
        fold_of = {names[i]: k % folds for k, i in enumerate(perm)}
        results = []
        for fold in range(folds):
            model = fit({n: d for n, d in data.items() if fold_of[n] != fold}, params, seed)
            results += [metrics(model.predict_arrays(x), s, origins)
                        for name, (x, s, origins) in scored.items() if fold_of[name] == fold]
        acc, t1, t5, vt = zip(*results)
        per_seed.append((float(np.mean(acc)), _gmean(t1), _gmean(t5), _gmean(vt)))
    return tuple(float(np.mean(column)) for column in zip(*per_seed))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--dir", action="append", help="prepared and measured by costmodel_data.py "
                        "(repeat for several; default: costmodel_data)")
    parser.add_argument("--out", default=str(PRETRAINED_DIR / "cpu.json"))
    parser.add_argument("--objective", default=DEFAULT_PARAMS["objective"], help="xgboost objective")
    parser.add_argument("--cv", action="store_true", help="cross-validate on the training kernels; train nothing")
    parser.add_argument("--cv-objectives", nargs="+", default=["rank:pairwise", "reg:squarederror"])
    parser.add_argument("--cv-score-dir", action="append", help="--cv: score the folds' kernels on these "
                        "directories' measurements (repeatable; default: --dir's)")
    args = parser.parse_args()
    data = dataset(args.dir or ["costmodel_data"], "train")
    if args.cv:
        scored = dataset(args.cv_score_dir, "train") if args.cv_score_dir else data
        print(f"5-fold cross-validation over {len(data)} training kernels (folds of whole kernels), "
              f"{len(CV_SEEDS)} fold assignments")
        print(f"{'objective':>18s} {'pairwise':>9s} {'top-1':>6s} {'top-5':>6s} {'pick/template':>14s}")
        for objective in args.cv_objectives:
            acc, t1, t5, vt = cross_validate(data, {"objective": objective}, scored=scored)
            print(f"{objective:>18s} {acc:9.2f} {t1:6.2f} {t5:6.2f} {vt:14.2f}", flush=True)
        return
    fit(data, {"objective": args.objective}).save(args.out)
    templates = sum(o.count("template") for _, _, o in data.values())
    print(f"trained on {sum(len(s) for _, s, _ in data.values())} measurements ({templates} templates) "
          f"of {len(data)} kernels ({args.objective}) -> {args.out}")


if __name__ == "__main__":
    main()
