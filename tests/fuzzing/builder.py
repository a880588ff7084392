"""The graph under construction, and the registry of op generators.

An op generator is ``fn(b: Builder) -> None``: it picks operands among the values built so
far (``b.pick``) or creates new ones (``b.operand``, graph inputs or random weights), and
emits one or a few nodes with the specs of their outputs (``b.emit``). It may emit nothing
when the graph offers no suitable operand. Register one with ``@op_generator(...)``; a new
op of tcomp is one more generator in ``gen_elementwise``, ``gen_tensor`` or ``gen_nn``.
"""
from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from .case import BOOL, FLOAT, INTS, Case, N, Spec

MAX_SIZE = 16384         # elements of any value
MAX_FLOAT_MAG = 1e4      # values above are not used as operands
MAX_INT_MAG = 2 ** 20    # int results stay far from overflow and exact as float32
MAX_REL_ERR = 1e-3       # values whose error bound exceeds this fraction of their magnitude are not used
EPS = 2.0 ** -23         # float32 unit roundoff at 1 (x2)
EXTENTS = (1, 1, 2, 3, 4, 5, 7, 8, 9, 13, 16, 17)
LARGE_EXTENTS = (1, 3, 8, 17, 31, 33, 64, 65, 97)   # vector tails, register tiles, parallel loops


def ulps(mag: float, n: float = 1.0) -> float:
    """An error of ``n`` float32 rounding steps at magnitude ``mag``."""
    return n * EPS * max(mag, 1e-30)


@dataclass(frozen=True)
class OpGenerator:
    name: str
    weight: float
    fn: Callable
    min_opset: int


GENERATORS: list = []


def op_generator(name: str, weight: float = 1.0, min_opset: int = 1):
    def wrap(fn):
        GENERATORS.append(OpGenerator(name, weight, fn, min_opset))
        return fn

    return wrap


def usable(spec: Spec) -> bool:
    """Whether a value may be an operand: bounded magnitude and a small relative error bound."""
    if spec.dtype == FLOAT:
        return spec.mag <= MAX_FLOAT_MAG and spec.err <= MAX_REL_ERR * max(spec.mag, 1.0)
    return spec.mag <= MAX_INT_MAG


class Builder:
    def __init__(self, rng: np.random.Generator, opset: int):
        self.rng = rng
        self.opset = opset
        self.specs: dict = {}
        self.values: list = []      # operand candidates in creation order
        self.inputs: list = []
        self.weights: list = []
        self.consts: dict = {}
        self.nodes: list = []
        self.uses: Counter = Counter()

    # random helpers ------------------------------------------------------------------
    def chance(self, p: float) -> bool:
        return bool(self.rng.random() < p)

    def choice(self, seq):
        return seq[int(self.rng.integers(len(seq)))]

    def randint(self, lo: int, hi: int) -> int:
        """An integer in [lo, hi]."""
        return int(self.rng.integers(lo, hi + 1))

    def shape(self, rank: int | None = None, max_size: int = 512) -> tuple:
        """A random shape; one in ten is large (up to 8192 elements)."""
        if rank is None:
            rank = self.choice((0, 1, 1, 2, 2, 2, 3, 3, 3, 4, 4))
        extents = EXTENTS
        if self.chance(0.1):
            extents, max_size = LARGE_EXTENTS, max(max_size, 8192)
        while True:
            shape = tuple(self.choice(extents) for _ in range(rank))
            if math.prod(shape) <= max_size:
                return shape

    def float_spec(self, shape, lo: float = -2.0, hi: float = 2.0) -> Spec:
        return Spec(shape, FLOAT, lo, hi)

    def random_spec(self, shape, dtype: str) -> Spec:
        if dtype == FLOAT:
            return self.float_spec(shape, *self.choice(((-2.0, 2.0), (-1.0, 1.0), (-5.0, 5.0), (0.5, 3.0))))
        if dtype in INTS:
            return Spec(shape, dtype, *self.choice(((-5, 5), (-100, 100), (0, 9))))
        return Spec(shape, BOOL, 0, 1)

    # building ------------------------------------------------------------------------
    def name(self, prefix: str) -> str:
        return f"{prefix}{len(self.specs) + len(self.consts)}"

    def new_value(self, spec: Spec, weight: bool | None = None) -> str:
        """A new graph input, or (``weight``; random when None) an initializer drawn from ``spec``."""
        if weight is None:
            weight = self.chance(0.15)
        name = self.name("w" if weight else "x")
        self.specs[name] = spec
        (self.weights if weight else self.inputs).append(name)
        self.values.append(name)
        return name

    def const(self, array, dtype=np.int64) -> str:
        name = self.name("c")
        self.consts[name] = np.asarray(array, dtype=dtype)
        return name

    def emit(self, op: str, inputs: list, out_specs: list, **attrs) -> list:
        outputs = []
        for spec in out_specs:
            name = self.name("v")
            self.specs[name] = spec
            outputs.append(name)
        self.nodes.append(N(op, list(inputs), outputs, attrs))
        for name in inputs:
            if name:
                self.uses[name] += 1
        self.values.extend(outputs)
        return outputs

    def emit1(self, op: str, inputs: list, spec: Spec, **attrs) -> str:
        return self.emit(op, inputs, [spec], **attrs)[0]

    # operands ------------------------------------------------------------------------
    def pick(self, pred: Callable = lambda spec: True) -> str | None:
        """An existing value satisfying ``pred``: the newest one (chains) or any (fan-out)."""
        found = [v for v in self.values if usable(self.specs[v]) and pred(self.specs[v])]
        if not found:
            return None
        return found[-1] if self.chance(0.5) else self.choice(found)

    def operand(self, pred: Callable, make: Callable, reuse: float = 0.5) -> str:
        """An existing value satisfying ``pred`` (with probability ``reuse``), else a new one of spec ``make()``."""
        found = self.pick(pred) if self.chance(reuse) else None
        return found if found is not None else self.new_value(make())

    def finish(self) -> Case:
        """The case; values nobody reads, and a few that are read, are its outputs."""
        produced = [o for n in self.nodes for o in n.outputs]
        outputs = [v for v in produced if self.uses[v] == 0 or self.chance(0.08)]
        return Case(self.opset, self.nodes, self.specs, self.inputs, self.weights, self.consts, outputs).pruned()


def broadcast(*shapes) -> tuple | None:
    try:
        return tuple(int(s) for s in np.broadcast_shapes(*shapes))
    except ValueError:
        return None


def partner_shape(b: Builder, shape: tuple) -> tuple:
    """A random shape that broadcasts with ``shape``: trailing dims kept, set to 1 or stretched from 1."""
    if b.chance(0.3):
        return shape
    kept = shape[len(shape) - b.randint(0, len(shape)):] if shape else ()
    dims = [b.choice((2, 3, 5)) if d == 1 and b.chance(0.3) else (1 if b.chance(0.3) else d) for d in kept]
    if len(dims) == len(shape) and len(dims) < 4 and b.chance(0.15):
        dims.insert(0, b.choice((1, 2, 3)))
    return tuple(dims)
