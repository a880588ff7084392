"""A few random graphs from the fuzzer (tests/fuzzing), a fresh seed every run.

The seed is in the failure message; ``python benchmarks/fuzz.py --seed SEED --graphs 1``
reproduces and minimizes the graph.
"""
from __future__ import annotations

import numpy as np
import pytest
from fuzzing.graph_gen import generate
from fuzzing.runner import run_case

GRAPHS = 30
_FIRST_SEED = int(np.random.SeedSequence().entropy % 2 ** 31)


@pytest.mark.parametrize("index", range(GRAPHS))
def test_random_graph(index):
    seed = _FIRST_SEED + index
    outcome = run_case(generate(seed), np.random.default_rng(seed))
    assert outcome.status == "ok", f"graph seed {seed}: {outcome.status}: {outcome.detail}"
