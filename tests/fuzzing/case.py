"""A fuzz case: a graph as plain data, and what every value in it may hold.

Every value has a ``Spec``: static shape, dtype, an interval ``[lo, hi]`` that contains
every element, ``away`` (every element has ``|x| >= away``: safe denominators) and
``err``, a bound on the absolute difference between two correct implementations (0 for
values computed bit-exactly: integers, inputs, data movement, comparisons). Graph inputs
and random weights are drawn from their specs on every instantiation, so a regression
test built from a case sees fresh data each run; ``consts`` are literal tensors (shapes,
axes, indices, pads) that the graph's structure depends on.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import onnx
from onnx import helper, numpy_helper
from onnx_helpers import IR_VERSION

FLOAT, INT32, INT64, BOOL = "float32", "int32", "int64", "bool"
INTS = (INT32, INT64)


@dataclass
class Spec:
    shape: tuple
    dtype: str
    lo: float = 0.0
    hi: float = 1.0
    away: float = 0.0
    err: float = 0.0

    def __post_init__(self):  # plain Python numbers: the repr is the regression tests' source
        self.shape = tuple(int(s) for s in self.shape)
        self.lo, self.hi, self.away, self.err = float(self.lo), float(self.hi), float(self.away), float(self.err)

    @property
    def mag(self) -> float:
        return max(abs(self.lo), abs(self.hi))

    @property
    def size(self) -> int:
        return math.prod(self.shape)

    @property
    def exact(self) -> bool:
        return self.err == 0.0

    def draw(self, rng: np.random.Generator) -> np.ndarray:
        """Elements inside ``[lo, hi]`` with ``|x| >= away``."""
        return np.asarray(self._draw(rng))

    def _draw(self, rng: np.random.Generator):
        if self.dtype == BOOL:
            return rng.random(self.shape) < 0.5
        if self.dtype in INTS:
            lo, hi = math.ceil(self.lo), math.floor(self.hi)
            x = np.asarray(rng.integers(lo, hi + 1, size=self.shape))
            for _ in range(100):
                bad = np.abs(x) < self.away
                if not bad.any():
                    break
                x[bad] = rng.integers(lo, hi + 1, size=int(bad.sum()))
            return x.astype(self.dtype)
        if self.away <= 0 or self.lo >= self.away or self.hi <= -self.away:
            return rng.uniform(self.lo, self.hi, size=self.shape).astype(FLOAT)
        # |x| in [away, ...] on whichever sides of zero the interval reaches
        sides = [s for s, reach in ((1.0, self.hi), (-1.0, -self.lo)) if reach >= self.away]
        sign = np.asarray(rng.choice(sides, size=self.shape))
        top = np.where(sign > 0, self.hi, -self.lo)
        mag = self.away + rng.random(self.shape) * (top - self.away)
        return (sign * mag).astype(FLOAT)


@dataclass
class N:
    """One ONNX node."""

    op: str
    inputs: list
    outputs: list
    attrs: dict = field(default_factory=dict)


@dataclass
class Case:
    opset: int
    nodes: list                  # of N, in topological order
    specs: dict                  # value name -> Spec (inputs, weights and node outputs)
    inputs: list                 # graph inputs (fed at run time)
    weights: list                # initializers drawn from their spec
    consts: dict = field(default_factory=dict)   # literal initializers: name -> array
    outputs: list = field(default_factory=list)

    def instantiate(self, rng: np.random.Generator):
        """(ONNX model, feeds) with inputs and weights drawn from ``rng``."""
        feeds = {name: self.specs[name].draw(rng) for name in self.inputs}
        inits = [numpy_helper.from_array(self.specs[name].draw(rng), name) for name in self.weights]
        inits += [numpy_helper.from_array(np.asarray(value), name) for name, value in self.consts.items()]
        graph = helper.make_graph(
            [helper.make_node(n.op, n.inputs, n.outputs, **n.attrs) for n in self.nodes], "fuzz",
            [helper.make_tensor_value_info(name, helper.np_dtype_to_tensor_dtype(np.dtype(self.specs[name].dtype)),
                                           list(self.specs[name].shape)) for name in self.inputs],
            [helper.make_tensor_value_info(name, helper.np_dtype_to_tensor_dtype(np.dtype(self.specs[name].dtype)),
                                           list(self.specs[name].shape)) for name in self.outputs],
            initializer=inits)
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", self.opset)], ir_version=IR_VERSION,
                                  producer_name="tcomp-fuzz")
        onnx.checker.check_model(model)  # not onnx's shape inference: it differs from onnxruntime on ceil_mode pools
        return model, feeds

    def pruned(self) -> Case:
        """The case without nodes, inputs, weights and constants that no output depends on."""
        live = set(self.outputs)
        kept = []
        for n in reversed(self.nodes):
            if any(o in live for o in n.outputs):
                kept.append(n)
                live.update(i for i in n.inputs if i)
        kept.reverse()
        names = live | {o for n in kept for o in n.outputs}
        return Case(self.opset, kept, {k: v for k, v in self.specs.items() if k in names},
                    [i for i in self.inputs if i in live], [w for w in self.weights if w in live],
                    {k: v for k, v in self.consts.items() if k in live}, list(self.outputs))

    def to_python(self) -> str:
        """The case as a Python expression over ``Case``, ``N``, ``Spec`` and ``np``."""
        lines = [f"Case(opset={self.opset}, nodes=["]
        lines += [f"    N({n.op!r}, {n.inputs!r}, {n.outputs!r}{', ' + repr(n.attrs) if n.attrs else ''}),"
                  for n in self.nodes]
        lines.append("], specs={")
        lines += [f"    {name!r}: {spec!r}," for name, spec in self.specs.items()]
        lines.append(f"}}, inputs={self.inputs!r}, weights={self.weights!r}, consts={{")
        lines += [f"    {name!r}: np.array({np.asarray(value).tolist()!r}, dtype=np.{np.asarray(value).dtype}),"
                  for name, value in self.consts.items()]
        lines.append(f"}}, outputs={self.outputs!r})")
        return "\n".join(lines)
