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

Each ``update`` retrains on every measurement so far (with the group bests as they are now). A
fresh model trains ``num_rounds`` trees. A model loaded from a file (the pretrained one the search
starts from) keeps its trees and adds at most ``num_rounds`` new ones on top, as many as
cross-validation on the new measurements says help: each workload's rows are dealt into
``UPDATE_FOLDS`` folds, each fold is scored by trees trained on the others, and the count of new
trees (``UPDATE_ROUNDS``; 0 = the loaded model alone) whose held-out scores order the most
measured pairs within each workload (weighted by their log time ratio, pairs within
``PAIR_TOLERANCE`` skipped) is trained on all rows. The count is chosen again once the rows have
grown by ``RECHOOSE_GROWTH`` (a search updates after every batch: the cross-validation runs a few
times per session, the training on all rows at every update). So a few candidates of a kernel
that the loaded model already ranks well leave it as it is, or nearly (updated with half of each
held-out kernel's candidates and scored on the other half, docs/benchmarks.md: CPU pairwise
accuracy 0.84 alone, 0.83 updated, where 200 new trees always gave 0.77), and where it ranks a
kernel badly new trees take over (cuda: 0.69 alone, 0.79 updated). A
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
UPDATE_FOLDS = 5                                  # cross-validation folds of an update on a loaded model
UPDATE_ROUNDS = (0, 4, 8, 16, 32, 64, 128, 200)   # new trees it chooses from (at most num_rounds)
TRAIN_THREADS = 1   # few rows: threads mostly wait on each other (a loaded 2-core machine: 40x slower with 2)
PAIR_TOLERANCE = 0.05           # pairs closer than this in time are timing noise, not an order to learn
RECHOOSE_GROWTH = 1.5   # the count of new trees is cross-validated again once the rows grew by this factor


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
        self.base_scale = 1.0       # its scale (the model's while no new trees are kept)
        self.chosen = (0, 0)        # (new trees, rows) of the last cross-validation on top of base
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
        x = np.asarray(x, dtype=np.float32)[:, self.columns]
        seconds = np.asarray(seconds, dtype=np.float64)
        if self.base is None:
            rounds = self.num_rounds
        else:
            if len(x) >= RECHOOSE_GROWTH * self.chosen[1]:
                self.chosen = (self._held_out_rounds(x, seconds, groups), len(x))
            rounds = self.chosen[0]
        if rounds == 0:
            self.booster, self.scale = None, self.base_scale
            return
        self.booster = self._train(x, seconds, groups, rounds)
        ranking = self.params["objective"].startswith("rank:")
        self.scale = _within_group_slope(self._raw(x), np.log(relative_throughput(seconds, groups)), groups) \
            if ranking else 1.0

    def _train(self, x: np.ndarray, seconds: np.ndarray, groups: list, rounds: int):
        """A Booster of ``rounds`` new trees (on top of ``base`` if loaded) fitted to the rows."""
        xgb = _xgb()
        relative = relative_throughput(seconds, groups)
        label = np.log(relative)
        params = {**self.params, "nthread": TRAIN_THREADS}
        if params["objective"].startswith("rank:"):
            ids = _group_ids(groups)
            order = np.argsort(ids, kind="stable")      # xgboost wants each query's rows together
            dtrain = xgb.DMatrix(x[order], label=label[order], qid=ids[order], feature_names=self.feature_names)
        else:
            dtrain = xgb.DMatrix(x, label=label, weight=FAST_WEIGHT + relative, feature_names=self.feature_names)
        return xgb.train(params, dtrain, num_boost_round=rounds, xgb_model=self.base)

    def _held_out_rounds(self, x: np.ndarray, seconds: np.ndarray, groups: list) -> int:
        """How many new trees on top of ``base`` order held-out measurements best: each workload's
        rows dealt into ``UPDATE_FOLDS`` folds (seeded), every fold scored by the trees trained on
        the other folds (``UPDATE_ROUNDS`` up to ``num_rounds``: prefixes of one booster per fold);
        0 unless some count agrees with more (log-ratio weighted) pairs than the base alone."""
        ids = _group_ids(groups)
        choices = [r for r in UPDATE_ROUNDS if r <= self.num_rounds]
        if len(choices) < 2:
            return 0
        fold = np.empty(len(ids), dtype=np.int64)
        rng = np.random.default_rng(self.params["seed"])
        for group in range(ids.max() + 1):
            rows = np.flatnonzero(ids == group)
            fold[rng.permutation(rows)] = np.arange(len(rows)) % UPDATE_FOLDS
        base_trees = self.base.num_boosted_rounds()
        held_out = np.zeros((len(choices), len(ids)))
        for k in range(UPDATE_FOLDS):
            train, test = np.flatnonzero(fold != k), np.flatnonzero(fold == k)
            if len(test) == 0 or len(train) == 0:
                continue
            booster = self._train(x[train], seconds[train], [groups[i] for i in train], choices[-1])
            dtest = _xgb().DMatrix(x[test], feature_names=self.feature_names)
            for c, rounds in enumerate(choices):
                held_out[c, test] = booster.predict(dtest, iteration_range=(0, base_trees + rounds))
        agreement = [_pair_agreement(scores, seconds, ids) for scores in held_out]
        best = int(np.argmax(agreement))
        return choices[best] if agreement[best] > agreement[0] else 0

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
        model.scale = model.base_scale = meta.get("scale", 1.0)
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


def _pair_agreement(scores, seconds, ids) -> float:
    """The share of pairs of one group's rows more than ``PAIR_TOLERANCE`` apart in time that
    ``scores`` order as the times do (ties count half), each pair weighted by its log time
    ratio (a mistake between far-apart candidates costs more); 0 without such pairs."""
    right = total = 0.0
    for group in range(ids.max() + 1):
        rows = np.flatnonzero(ids == group)
        log_s, score = np.log(seconds[rows]), scores[rows]
        gap = log_s[:, None] - log_s[None, :]          # > 0: row j is faster than row i
        weight = np.where(gap > np.log1p(PAIR_TOLERANCE), gap, 0.0)
        agree = np.sign(score[None, :] - score[:, None])     # +1: j scored above i
        right += np.sum(weight * (agree + 1) / 2)
        total += np.sum(weight)
    return right / total if total > 0 else 0.0


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
