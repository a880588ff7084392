"""XGBoost cost model over loop-IR features, trained online; a pretrained CPU model ships.

    from tcomp.costmodel.xgb import XGBModel, load_pretrained
    model = load_pretrained("cpu")                 # tcomp/costmodel/pretrained/cpu.json
    scores = model.predict([sch.func for sch in candidates])
    model.update(funcs, seconds, groups=[key] * len(funcs))    # groups: workload keys
    model.save("model.json")                       # model.json + model.json.meta.json

The target of a measured func is the log of its throughput relative to the fastest
measurement of its workload, ``log(best_seconds / seconds)`` <= 0, so kernels of different
sizes train one model (the log keeps slow candidates apart from very slow ones, which
ranks better than the plain ratio); rows are weighted by ``0.2 + best_seconds / seconds`` so
that the order among the fast candidates, which the search picks from, counts most. Each ``update`` retrains on every measurement so far (with the group bests as they are
now); a model loaded from a file keeps its trees as the starting point and adds new ones
on top. Files are xgboost's JSON model format plus a small JSON sidecar (never pickle).
xgboost is imported on first use, so ``import tcomp`` does not import it.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from .features import FEATURE_LENGTH, FEATURE_NAMES, extract
from .model import CostModel, default_group

DEFAULT_PARAMS = {"objective": "reg:squarederror", "max_depth": 6, "eta": 0.1, "subsample": 0.9,
                  "colsample_bytree": 0.9, "min_child_weight": 2, "tree_method": "hist", "verbosity": 0}
PRETRAINED_DIR = Path(__file__).parent / "pretrained"
FAST_WEIGHT = 0.2   # row weight FAST_WEIGHT + relative throughput: mistakes among fast candidates cost more


def _xgb():
    import xgboost

    return xgboost


class XGBModel(CostModel):
    """Gradient-boosted trees on ``features.extract``; ``num_rounds`` trees per training."""

    def __init__(self, params: dict | None = None, num_rounds: int = 200, seed: int = 0):
        self.params = {**DEFAULT_PARAMS, **(params or {}), "seed": seed}
        self.num_rounds = num_rounds
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

    def fit_arrays(self, x: np.ndarray, seconds: np.ndarray, groups: list, weights=None) -> None:
        """Trains on feature rows ``x`` with measured ``seconds`` grouped by workload ``groups``;
        ``weights``: per-row factors on the rows' weights (default 1)."""
        if len(x) == 0:
            return
        xgb = _xgb()
        relative = relative_throughput(seconds, groups)
        weight = (FAST_WEIGHT + relative) * (1.0 if weights is None else np.asarray(weights, dtype=np.float64))
        dtrain = xgb.DMatrix(x, label=np.log(relative), weight=weight, feature_names=list(FEATURE_NAMES))
        self.booster = xgb.train(self.params, dtrain, num_boost_round=self.num_rounds, xgb_model=self.base)

    def predict(self, funcs: list) -> np.ndarray:
        """Predicted log relative throughput (higher = faster); zeros before any training."""
        x = np.asarray([extract(f) for f in funcs], dtype=np.float32).reshape(-1, FEATURE_LENGTH)
        return self.predict_arrays(x)

    def predict_arrays(self, x: np.ndarray) -> np.ndarray:
        booster = self.booster or self.base
        if booster is None or len(x) == 0:
            return np.zeros(len(x))
        return booster.predict(_xgb().DMatrix(x, feature_names=list(FEATURE_NAMES))).astype(np.float64)

    def save(self, path: str) -> None:
        """Writes ``path`` (xgboost JSON) and ``path + ".meta.json"``."""
        booster = self.booster or self.base
        if booster is None:
            raise ValueError("XGBModel.save: the model has not been trained")
        booster.save_model(str(path))
        meta = {"model": "xgb", "feature_length": FEATURE_LENGTH, "feature_names": list(FEATURE_NAMES),
                "params": self.params, "num_rounds": self.num_rounds,
                "target": "log(best_seconds / seconds) within a workload"}
        with open(f"{path}.meta.json", "w") as f:
            json.dump(meta, f, indent=1)

    @classmethod
    def load(cls, path: str) -> XGBModel:
        with open(f"{path}.meta.json") as f:
            meta = json.load(f)
        if meta.get("model") != "xgb":
            raise ValueError(f"{path}.meta.json is not an XGBModel sidecar")
        if meta["feature_names"] != list(FEATURE_NAMES):
            raise ValueError(f"{path}: trained on other features than tcomp.costmodel.features extracts; "
                             f"retrain it (benchmarks/costmodel_train.py)")
        params = dict(meta["params"])
        model = cls(params, meta["num_rounds"], params.pop("seed", 0))
        model.base = _xgb().Booster(model_file=str(path))
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


def _group_ids(groups: list) -> np.ndarray:
    index: dict = {}
    return np.asarray([index.setdefault(g, len(index)) for g in groups], dtype=np.int64)
