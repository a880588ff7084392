"""``generate(seed)``: a random valid ONNX graph over the ops tcomp supports.

The graph starts from one random input and grows by random op generators (registered
in ``gen_elementwise``, ``gen_tensor``, ``gen_indexing`` and ``gen_nn``) until it has 3 to 20 nodes. Each
generator reads the newest value (chains that fusion merges), an older one (fan-out,
shared values) or new inputs and random weights (initializers that constant folding
and the Conv folding passes see). The same seed always gives the same case.
"""
from __future__ import annotations

import numpy as np

from . import gen_elementwise, gen_indexing, gen_nn, gen_tensor  # noqa: F401  (they register the generators)
from .builder import GENERATORS, Builder
from .case import Case

OPSETS = (13, 17, 17, 18, 20)


def generate(seed: int, min_nodes: int = 3, max_nodes: int = 20) -> Case:
    rng = np.random.default_rng(seed)
    b = Builder(rng, int(rng.choice(OPSETS)))
    generators = [g for g in GENERATORS if g.min_opset <= b.opset]
    weights = np.array([g.weight for g in generators])
    target = b.randint(min_nodes, max_nodes)
    b.new_value(b.random_spec(b.shape(), "float32"), weight=False)
    for _ in range(50 * max_nodes):
        if len(b.nodes) >= target:
            break
        generators[int(rng.choice(len(generators), p=weights / weights.sum()))].fn(b)
    return b.finish()
