"""Graph executor: runs a compiled model's kernels in order over planned memory.

The plan is plain data (``Step``: kernel name, where each buffer argument
lives, which symbolic sizes follow), so the same plan can be written out as C
for an ahead-of-time export: one ``void **args`` array per step and a call per
kernel.

Symbolic dimensions (``batch``, ``sequence``) are bound from the input shapes
of each run. The sizes of intermediates, the memory plan and the argument
arrays depend on that binding, so they are prepared once per distinct binding
and cached; a model with static shapes has exactly one.
"""
from __future__ import annotations

import ctypes
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass

import numpy as np

from ..errors import InputError
from ..graph.ir import numpy_dtype
from ..graph.symbolic import SymInt, evaluate
from .memory_plan import MemoryPlan, plan_memory

# Where a kernel argument lives.
INPUT, OUTPUT, CONST, ARENA = "input", "output", "const", "arena"

# Distinct bindings of the symbolic sizes whose prepared plans are kept.
CACHED_BINDINGS = 16


@dataclass(frozen=True)
class Slot:
    kind: str       # INPUT / OUTPUT (index into inputs/outputs), CONST (index into constants), ARENA (intermediate)
    index: int


@dataclass
class Step:
    kernel: str
    args: list      # [Slot] for the buffers, then the kernel's symbolic sizes
    label: str      # fused ops, for reports
    sizes: tuple = ()   # names of the symbolic sizes passed after the buffers


@dataclass(frozen=True)
class TensorSpec:
    name: str
    shape: tuple    # ints and SymInts
    dtype: str


@dataclass(frozen=True)
class Intermediate:
    """A tensor in the arena: live from step ``first`` to step ``last``; ``nbytes`` may be symbolic."""

    first: int
    last: int
    nbytes: object


class _Prepared:
    """Everything that depends on one binding of the symbolic sizes."""

    def __init__(self, plan: MemoryPlan, arena: np.ndarray, calls: list, patches: list, output_shapes: list):
        self.plan = plan
        self.arena = arena
        self.calls = calls          # (function, args address, args array)
        self.patches = patches      # (args array, position, INPUT/OUTPUT, index)
        self.output_shapes = output_shapes


class PreparedRuns:
    """What an executor prepares per binding of the symbolic sizes (``prepare(binding)``: memory
    plan, arena, argument arrays), the ``CACHED_BINDINGS`` most recently used kept; a model with
    static shapes has one. ``memory_plan``: the plan of the last binding run."""

    def __init__(self, inputs: list, prepare):
        self.symbols = sorted({name for spec in inputs for s in spec.shape if isinstance(s, SymInt)
                               for name in s.symbols})
        self._prepare = prepare
        self._cache: OrderedDict = OrderedDict()
        self.last_binding: dict = {}

    def get(self, binding: dict):
        """The prepared run of ``binding`` (prepared now where it is not cached), now the last."""
        key = tuple(binding[name] for name in self.symbols)
        prepared = self._cache.get(key)
        if prepared is None:
            prepared = self._cache[key] = self._prepare(binding)
            if len(self._cache) > CACHED_BINDINGS:
                self._cache.popitem(last=False)
        self._cache.move_to_end(key)
        self.last_binding = binding
        return prepared

    @property
    def memory_plan(self) -> MemoryPlan | None:
        prepared = self._cache.get(tuple(self.last_binding.get(name) for name in self.symbols))
        return prepared.plan if prepared is not None else None


class Executor:
    def __init__(self, jit, steps, inputs, outputs, output_sources, constants, intermediates, constraints=()):
        self.jit = jit
        self.steps = steps
        self.inputs = inputs                  # [TensorSpec]
        self.outputs = outputs                # [TensorSpec]
        self.output_sources = output_sources  # per output: None (a kernel writes it) or Slot to copy from
        self.constants = [np.ascontiguousarray(c) for c in constants]
        self.intermediates = intermediates    # [Intermediate], indexed by ARENA slots
        self.constraints = list(constraints)  # (lhs, op, rhs, reason) over the symbolic sizes
        self.runs = PreparedRuns(inputs, self._prepare)
        self.symbols = self.runs.symbols
        self._lock = threading.Lock()
        self._functions = {name: jit.function(name) for name in {s.kernel for s in steps}}
        if not self.symbols:
            self.runs.get({})

    # -------------------------------------------------------------- binding
    def bind(self, feeds: dict) -> tuple:
        """Checks the feeds; returns (contiguous input arrays, {symbol: size})."""
        arrays = {name: np.asarray(value) for name, value in feeds.items()}
        binding = bind_inputs(self.inputs, self.constraints, {n: (a.shape, a.dtype) for n, a in arrays.items()})
        return [np.ascontiguousarray(arrays[spec.name]) for spec in self.inputs], binding

    def _prepare(self, binding: dict) -> _Prepared:
        lifetimes = {i: (m.first, m.last) for i, m in enumerate(self.intermediates)}
        sizes = {i: evaluate(m.nbytes, binding) for i, m in enumerate(self.intermediates)}
        plan = plan_memory(lifetimes, sizes)
        arena = np.empty(max(plan.arena_bytes, 64) + 64, dtype=np.uint8)
        base = arena.ctypes.data + (-arena.ctypes.data % 64)
        calls, patches = [], []
        for step in self.steps:
            array = (ctypes.c_void_p * (len(step.args) + len(step.sizes)))()
            for position, slot in enumerate(step.args):
                if slot.kind == CONST:
                    array[position] = self.constants[slot.index].ctypes.data
                elif slot.kind == ARENA:
                    array[position] = base + plan.offsets[slot.index]
                else:
                    patches.append((array, position, slot.kind, slot.index))
            for position, name in enumerate(step.sizes, start=len(step.args)):
                array[position] = binding[name]
            calls.append((self._functions[step.kernel], ctypes.addressof(array), array))
        output_shapes = [tuple(evaluate(s, binding) for s in spec.shape) for spec in self.outputs]
        return _Prepared(plan, arena, calls, patches, output_shapes)

    @property
    def memory_plan(self) -> MemoryPlan | None:
        """The memory plan of the last binding run (the only one for static shapes)."""
        return self.runs.memory_plan

    def _start(self, prepared: _Prepared, inputs: list) -> list:
        """Points the argument arrays at this run's inputs and fresh outputs (lock held)."""
        outputs = [np.empty(shape, dtype=numpy_dtype(spec.dtype))
                   for shape, spec in zip(prepared.output_shapes, self.outputs)]
        for array, position, kind, index in prepared.patches:
            array[position] = (inputs if kind == INPUT else outputs)[index].ctypes.data
        return outputs

    # -------------------------------------------------------------- running
    def run(self, feeds: dict) -> list:
        inputs, binding = self.bind(feeds)
        with self._lock:
            prepared = self.runs.get(binding)
            outputs = self._start(prepared, inputs)
            for fn, address, _ in prepared.calls:
                fn(address)
            for index, source in enumerate(self.output_sources):
                if source is not None:  # an output that no kernel writes: a copy
                    table = {INPUT: inputs, CONST: self.constants, OUTPUT: outputs}[source.kind]
                    outputs[index][...] = np.reshape(table[source.index], outputs[index].shape)
        return outputs

    def profile(self, feeds: dict, repeat: int = 10, back_to_back: bool = False) -> list:
        """Median seconds per step over ``repeat`` timings after one untimed run (``profile_order``)."""
        inputs, binding = self.bind(feeds)
        times = [[] for _ in self.steps]
        with self._lock:
            prepared = self.runs.get(binding)
            outputs = self._start(prepared, inputs)  # noqa: F841  (kept alive while kernels write to it)
            for fn, address, _ in prepared.calls:
                fn(address)
            for index in profile_order(len(prepared.calls), repeat, back_to_back):
                fn, address, _ = prepared.calls[index]
                start = time.perf_counter()
                fn(address)
                times[index].append(time.perf_counter() - start)
        return [float(np.median(t)) for t in times]


def profile_order(steps: int, repeat: int, back_to_back: bool) -> list:
    """The step indices a profile times, in order: ``repeat`` runs of the model (each step between
    its neighbours, as it runs), or with ``back_to_back`` each step ``repeat`` times in a row (its
    data left in cache by itself, as a kernel timed alone; its inputs come from the steps before
    it, which ran just before, so the order is still a run of the model)::

        steps 3, repeat 2:  [0, 1, 2, 0, 1, 2]      back_to_back: [0, 0, 1, 1, 2, 2]"""
    if back_to_back:
        return [index for index in range(steps) for _ in range(repeat)]
    return [index for _ in range(repeat) for index in range(steps)]


def bind_inputs(specs: list, constraints: list, described: dict) -> dict:
    """Checks the inputs (``described``: {name: (shape, numpy dtype)}) against ``specs``
    ([TensorSpec]) and the model's constraints; returns {symbol: size}. Raises ``InputError``."""
    expected = [spec.name for spec in specs]
    unknown = [name for name in described if name not in expected]
    if unknown:
        raise InputError(f"unknown input name(s) {unknown}; the model's inputs are {expected}")
    binding, bound_by = {}, {}
    for spec in specs:
        if spec.name not in described:
            raise InputError(f"missing input '{spec.name}' ({spec.dtype}{list(spec.shape)}); "
                             f"the model's inputs are {expected}")
        shape, dtype = described[spec.name]
        want = np.dtype(numpy_dtype(spec.dtype))
        if dtype != want:
            raise InputError(f"input '{spec.name}' has dtype {dtype}, expected {want}")
        if len(shape) != len(spec.shape):
            raise InputError(f"input '{spec.name}' has shape {list(shape)}, expected rank "
                             f"{len(spec.shape)} {_shape_str(spec.shape)}")
        for axis, (got, dim) in enumerate(zip(shape, spec.shape)):
            if isinstance(dim, SymInt):
                (name,) = dim.symbols  # graph inputs have plain symbols as dimensions
                if name in binding and binding[name] != got:
                    raise InputError(f"input '{spec.name}' has {name}={got} (axis {axis}), but "
                                     f"{bound_by[name]} has {name}={binding[name]}")
                if got < 1:
                    raise InputError(f"input '{spec.name}' has {name}={got} (axis {axis}); symbolic "
                                     f"dimensions must be at least 1")
                binding[name], bound_by[name] = got, f"input '{spec.name}'"
            elif got != dim:
                raise InputError(f"input '{spec.name}' has shape {list(shape)}, expected "
                                 f"{_shape_str(spec.shape)}")
    for lhs, op, rhs, reason in constraints:
        a, b = evaluate(lhs, binding), evaluate(rhs, binding)
        if not {"==": a == b, "<=": a <= b, ">=": a >= b}[op]:
            sizes = ", ".join(f"{k}={v}" for k, v in binding.items())
            raise InputError(f"inputs with {sizes} violate a constraint of the model: {reason} "
                             f"needs {lhs} {op} {rhs}, which is {a} {op} {b}")
    return binding


def _shape_str(shape) -> str:
    return "[" + ", ".join(str(s) for s in shape) + "]"
