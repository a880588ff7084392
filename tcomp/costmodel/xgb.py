"""XGBoost cost model over loop-IR features, trained online; a pretrained CPU model ships.

    from tcomp.costmodel.xgb import XGBModel, load_pretrained
    model = load_pretrained("cpu")                 # tcomp/costmodel/pretrained/cpu.json
    scores = model.predict([sch.func for sch in candidates])
    model.update(funcs, seconds, groups=[key] * len(funcs))    # groups: workload keys
    model.save("model.json")                       # model.json + model.json.meta.json

The label of a measured func is the log of its throughput relative to the fastest
measurement of its workload, ``log(best_seconds / seconds)`` <= 0. The default objective,
``rank:pairwise``, makes each workload one query and learns the order of pairs of its
measurements (a logistic loss on score differences), so kernels of different
sizes train one model and only the order among a kernel's candidates, which is what the search
and the predicted compile use, is fitted. Its scores are then scaled (``scale``, the
least-squares slope of the label on the scores within each workload of the training data) so
that a difference of scores estimates a log-throughput ratio, as a regression's does (a
margin asked of a candidate over the template reads in those units). With a
regression objective (``reg:squarederror``, as the shipped cuda model was trained) the model
fits the label itself, rows weighted ``0.2 + best_seconds / seconds`` so that mistakes among the
fast candidates cost more. Cross-validated on the CPU data (benchmarks/costmodel_train.py
``--cv``), the ranking objective picks better.

Each ``update`` retrains on every measurement so far (with the group bests as they are now); a
model loaded from a file keeps its trees as the starting point and adds new ones on top. A
model uses the features it was trained on, by name (``feature_names`` in the sidecar), so a
model file trained before feature groups were added keeps working. Files are xgboost's JSON
model format plus a small JSON sidecar (never pickle). xgboost is imported on first use, so
``import tcomp`` does not import it.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from .features import FEATURE_LENGTH, FEATURE_NAMES, extract
from .model import CostModel, default_group

DEFAULT_PARAMS = {"objective": "rank:pairwise", "max_depth": 6, "eta": 0.1, "subsample": 0.9,
                  "colsample_bytree": 0.9, "min_child_weight": 2, "tree_method": "hist", "verbosity": 0}
PRETRAINED_DIR = Path(__file__).parent / "pretrained"
FAST_WEIGHT = 0.2   # regression: row weight FAST_WEIGHT + relative throughput (fast candidates count more)


def _xgb():
    import xgboost

    return xgboost


class XGBModel(CostModel):
    """Gradient-boosted trees on ``features.extract``; ``num_rounds`` trees per training."""

    def __init__(self, params: dict | None = None, num_rounds: int = 200, seed: int = 0,
                 feature_names: list | None = None):
        """``feature_names``: the features the trees use (default: all of ``features.FEATURE_NAMES``)."""
        self.params = {**DEFAULT_PARAMS, **(params or {}), "seed": seed}
        self.num_rounds = num_rounds
        self.feature_names = list(feature_names or FEATURE_NAMES)
        missing = [n for n in self.feature_names if n not in FEATURE_NAMES]
        if missing:
            raise ValueError(f"XGBModel: features {missing[:3]} are not extracted by tcomp.costmodel.features; "
                             f"retrain the model (benchmarks/costmodel_train.py)")
        self.columns = np.asarray([FEATURE_NAMES.index(n) for n in self.feature_names])
        self.scale = 1.0            # ranking scores times this: differences in log-throughput units
        self.base = None            # a Booster loaded from a file: new trees go on top of it
        self.booster = None
        self.features: list = []
        self.seconds: list = []
        self.groups: list = []

    def update(self, funcs: list, seconds: list, groups: list | None = None) -> None:
        """Adds measurements (failed ones: None or non-finite seconds are skipped) and retrains."""
        groups = groups if groups is not None else [default_group(f) for f in funcs]
        for func, sec, group in zip(funcs, seconds, groups, strict=True):
            if sec is not None and np.isfinite(sec) and sec > 0:
                self.features.append(extract(func))
                self.seconds.append(float(sec))
                self.groups.append(group)
        self.fit_arrays(np.asarray(self.features, dtype=np.float32).reshape(-1, FEATURE_LENGTH),
                        np.asarray(self.seconds), list(self.groups))

    def fit_arrays(self, x: np.ndarray, seconds: np.ndarray, groups: list) -> None:
        """Trains on feature rows ``x`` (``features.extract``) with measured ``seconds`` grouped by
        workload ``groups`` (one ranking query per group)."""
        if len(x) == 0:
            return
        xgb = _xgb()
        relative = relative_throughput(seconds, groups)
        x = np.asarray(x, dtype=np.float32)[:, self.columns]
        label = np.log(relative)
        ranking = self.params["objective"].startswith("rank:")
        if ranking:
            ids = _group_ids(groups)
            order = np.argsort(ids, kind="stable")      # xgboost wants each query's rows together
            dtrain = xgb.DMatrix(x[order], label=label[order], qid=ids[order], feature_names=self.feature_names)
        else:
            dtrain = xgb.DMatrix(x, label=label, weight=FAST_WEIGHT + relative, feature_names=self.feature_names)
        self.booster = xgb.train(self.params, dtrain, num_boost_round=self.num_rounds, xgb_model=self.base)
        self.scale = _within_group_slope(self._raw(x), label, groups) if ranking else 1.0

    def predict(self, funcs: list) -> np.ndarray:
        """Scores, higher = faster: predicted log relative throughput up to a constant per
        workload (a ranking model's scores times ``scale``); zeros before any training."""
        x = np.asarray([extract(f) for f in funcs], dtype=np.float32).reshape(-1, FEATURE_LENGTH)
        return self.predict_arrays(x)

    def predict_arrays(self, x: np.ndarray) -> np.ndarray:
        """Scores of feature rows (``features.extract``); zeros before any training."""
        if (self.booster or self.base) is None or len(x) == 0:
            return np.zeros(len(x))
        return self.scale * self._raw(np.asarray(x, dtype=np.float32)[:, self.columns])

    def _raw(self, x: np.ndarray) -> np.ndarray:
        booster = self.booster or self.base
        return booster.predict(_xgb().DMatrix(x, feature_names=self.feature_names)).astype(np.float64)

    def save(self, path: str) -> None:
        """Writes ``path`` (xgboost JSON) and ``path + ".meta.json"``."""
        booster = self.booster or self.base
        if booster is None:
            raise ValueError("XGBModel.save: the model has not been trained")
        booster.save_model(str(path))
        meta = {"model": "xgb", "feature_length": len(self.feature_names), "feature_names": self.feature_names,
                "params": self.params, "num_rounds": self.num_rounds, "scale": self.scale,
                "target": "log(best_seconds / seconds) within a workload (rank objectives: one query each)"}
        with open(f"{path}.meta.json", "w") as f:
            json.dump(meta, f, indent=1)

    @classmethod
    def load(cls, path: str) -> XGBModel:
        with open(f"{path}.meta.json") as f:
            meta = json.load(f)
        if meta.get("model") != "xgb":
            raise ValueError(f"{path}.meta.json is not an XGBModel sidecar")
        params = dict(meta["params"])
        try:
            model = cls(params, meta["num_rounds"], params.pop("seed", 0), meta["feature_names"])
        except ValueError as e:
            raise ValueError(f"{path}: {e}") from None
        model.base = _xgb().Booster(model_file=str(path))
        model.scale = meta.get("scale", 1.0)
        return model


def load_pretrained(target: str = "cpu") -> XGBModel:
    """The model shipped in the package for ``target`` (trained by benchmarks/costmodel_train.py)."""
    path = PRETRAINED_DIR / f"{target}.json"
    if not path.exists():
        raise FileNotFoundError(f"no pretrained cost model for target {target!r} ({path})")
    return XGBModel.load(str(path))


def relative_throughput(seconds, groups: list) -> np.ndarray:
    """``best / seconds`` per measurement, ``best`` the fastest of its group."""
    seconds = np.asarray(seconds, dtype=np.float64)
    ids = _group_ids(groups)
    best = np.full(ids.max() + 1 if len(ids) else 0, np.inf)
    np.minimum.at(best, ids, seconds)
    return best[ids] / seconds


def _within_group_slope(scores, label, groups: list) -> float:
    """The least-squares slope of ``label`` on ``scores``, both centered within each group: the
    factor that makes a ranking model's score differences estimate log-throughput ratios."""
    ids = _group_ids(groups)
    counts = np.bincount(ids)

    def centered(v):
        return v - (np.bincount(ids, v) / counts)[ids]

    s, y = centered(np.asarray(scores, dtype=np.float64)), centered(label)
    slope = np.sum(s * y) / np.sum(s * s) if np.sum(s * s) > 0 else 0.0
    return float(slope) if slope > 0 else 1.0     # no fit (all equal): the order is all there is


def _group_ids(groups: list) -> np.ndarray:
    index: dict = {}
    return np.asarray([index.setdefault(g, len(index)) for g in groups], dtype=np.int64)
