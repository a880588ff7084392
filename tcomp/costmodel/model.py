"""The cost-model interface that the schedule search scores candidates with, and a random model.

    model = RandomModel(seed=0)
    model.update(funcs, seconds)          # measured candidates (scheduled PrimFuncs)
    scores = model.predict(funcs)         # np.ndarray, higher = predicted faster
    model.save("model.json"); model = RandomModel.load("model.json")

Scores only rank candidates of one kernel against each other; they are not seconds.
``update`` may take ``groups`` (one workload key per func) so a model can compare each
measurement with others of the same kernel; without it a model groups funcs by their
parameters (a schedule never changes them).
"""
from __future__ import annotations

import json
from abc import ABC, abstractmethod

import numpy as np


class CostModel(ABC):
    """Predicts relative speed of scheduled PrimFuncs; trained online on measurements."""

    @abstractmethod
    def update(self, funcs: list, seconds: list, groups: list | None = None) -> None:
        """Learns from measured candidates (``seconds`` per func; ``groups``: workload keys)."""

    @abstractmethod
    def predict(self, funcs: list) -> np.ndarray:
        """Scores, one per func, higher = predicted faster."""

    @abstractmethod
    def save(self, path: str) -> None:
        """Writes the model (plain files, never pickle)."""

    @classmethod
    @abstractmethod
    def load(cls, path: str) -> CostModel:
        """Reads a model written by ``save``."""


def default_group(func) -> str:
    """A workload key from the parameters (names, dtypes, shapes) that schedules leave unchanged."""
    func = getattr(func, "func", func)
    params = ";".join(f"{b.name}:{b.dtype}{[str(s) for s in b.shape]}" for b in func.params)
    return f"{func.name}({params})"


class RandomModel(CostModel):
    """Uniform random scores: the baseline a learned model must beat."""

    def __init__(self, seed: int | None = None):
        self.seed = seed
        self.rng = np.random.default_rng(seed)

    def update(self, funcs: list, seconds: list, groups: list | None = None) -> None:
        """Learns nothing."""

    def predict(self, funcs: list) -> np.ndarray:
        return self.rng.random(len(funcs))

    def save(self, path: str) -> None:
        with open(path, "w") as f:
            json.dump({"model": "random", "seed": self.seed}, f)

    @classmethod
    def load(cls, path: str) -> RandomModel:
        with open(path) as f:
            data = json.load(f)
        if data.get("model") != "random":
            raise ValueError(f"{path} is not a RandomModel file")
        return cls(seed=data.get("seed"))
