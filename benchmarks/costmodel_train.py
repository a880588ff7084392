"""Trains the shipped CPU cost model on measured design-space candidates and template kernels.

    python benchmarks/costmodel_train.py [--dir costmodel_data] [--out tcomp/costmodel/pretrained/cpu.json]

The data is what benchmarks/costmodel_data.py prepared and measured: for each training kernel
(model tasks with their templates, and compute definitions), random samples of its design space,
the best predicted candidates of the predicted compile's evolution, and its template kernel,
each timed by the tuner's Measurer with 2 threads on an idle 16-core machine (each process pinned
to 2 cores: the 2-core machine the model ships for is unusable for timing while shared). The
kernels of the "heldout" split (benchmarks/costmodel_eval.py) are never trained on.

A kernel is one group of the model's target, ``log(best / seconds)`` within the kernel
(``XGBModel.fit_arrays``), so the template and the candidates of a kernel are ranked against
each other: what the predicted compile (``tuning/predicted.py``) and the search ask of it.
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


def fit(data: dict) -> XGBModel:
    """A fresh XGBModel trained on {kernel: (features, seconds, origins)}, one group per kernel."""
    model = XGBModel()
    model.fit_arrays(np.concatenate([x for x, _, _ in data.values()]),
                     np.concatenate([s for _, s, _ in data.values()]),
                     [name for name, (_, s, _) in data.items() for _ in s])
    return model


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--dir", default="costmodel_data", help="prepared and measured by costmodel_data.py")
    parser.add_argument("--out", default=str(PRETRAINED_DIR / "cpu.json"))
    args = parser.parse_args()
    data = dataset(args.dir, "train")
    fit(data).save(args.out)
    templates = sum(o.count("template") for _, _, o in data.values())
    print(f"trained on {sum(len(s) for _, s, _ in data.values())} measurements ({templates} templates) "
          f"of {len(data)} kernels -> {args.out}")


if __name__ == "__main__":
    main()
