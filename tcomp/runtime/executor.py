"""Graph executor: runs a compiled model's kernels in order over planned memory.

The plan is plain data (``Step``: kernel name + where each argument lives), so
the same plan can be written out as C for an ahead-of-time export: one
``void **args`` array per step and a call per kernel.
"""
from __future__ import annotations

import ctypes
import threading
import time
from dataclasses import dataclass

import numpy as np

from ..errors import InputError
from ..graph.ir import numpy_dtype

# Where a kernel argument lives.
INPUT, OUTPUT, CONST, ARENA = "input", "output", "const", "arena"


@dataclass(frozen=True)
class Slot:
    kind: str       # INPUT / OUTPUT (index into inputs/outputs), CONST (index into constants), ARENA (byte offset)
    index: int


@dataclass
class Step:
    kernel: str
    args: list      # [Slot]
    label: str      # fused ops, for reports


@dataclass(frozen=True)
class TensorSpec:
    name: str
    shape: tuple
    dtype: str


class Executor:
    def __init__(self, jit, steps, inputs, outputs, output_sources, constants, arena_bytes):
        self.jit = jit
        self.steps = steps
        self.inputs = inputs                  # [TensorSpec]
        self.outputs = outputs                # [TensorSpec]
        self.output_sources = output_sources  # per output: None (a kernel writes it) or Slot to copy from
        self.constants = [np.ascontiguousarray(c) for c in constants]
        self.arena = np.empty(max(arena_bytes, 64) + 64, dtype=np.uint8)
        base = self.arena.ctypes.data
        self._arena_base = base + (-base % 64)
        self._lock = threading.Lock()
        self._functions = {name: jit.function(name) for name in {s.kernel for s in steps}}
        self._calls = []
        self._patches = []   # (args array, position, kind, index)
        for step in steps:
            array = (ctypes.c_void_p * len(step.args))()
            for position, slot in enumerate(step.args):
                if slot.kind == CONST:
                    array[position] = self.constants[slot.index].ctypes.data
                elif slot.kind == ARENA:
                    array[position] = self._arena_base + slot.index
                else:
                    self._patches.append((array, position, slot.kind, slot.index))
            self._calls.append((self._functions[step.kernel], ctypes.addressof(array), array))

    def check_inputs(self, feeds: dict) -> list:
        expected = [spec.name for spec in self.inputs]
        unknown = [name for name in feeds if name not in expected]
        if unknown:
            raise InputError(f"unknown input name(s) {unknown}; the model's inputs are {expected}")
        arrays = []
        for spec in self.inputs:
            if spec.name not in feeds:
                raise InputError(f"missing input '{spec.name}' ({spec.dtype}{list(spec.shape)}); "
                                 f"the model's inputs are {expected}")
            array = np.asarray(feeds[spec.name])
            want = np.dtype(numpy_dtype(spec.dtype))
            if array.dtype != want:
                raise InputError(f"input '{spec.name}' has dtype {array.dtype}, expected {want}")
            if tuple(array.shape) != tuple(spec.shape):
                raise InputError(f"input '{spec.name}' has shape {list(array.shape)}, expected {list(spec.shape)}")
            arrays.append(np.ascontiguousarray(array))
        return arrays

    def _bind(self, inputs: list) -> list:
        """Points the argument arrays at this run's inputs and fresh outputs (lock held)."""
        outputs = [np.empty(spec.shape, dtype=numpy_dtype(spec.dtype)) for spec in self.outputs]
        for array, position, kind, index in self._patches:
            array[position] = (inputs if kind == INPUT else outputs)[index].ctypes.data
        return outputs

    def run(self, feeds: dict) -> list:
        inputs = self.check_inputs(feeds)
        with self._lock:
            outputs = self._bind(inputs)
            for fn, address, _ in self._calls:
                fn(address)
            for index, source in enumerate(self.output_sources):
                if source is not None:  # an output that no kernel writes: a copy
                    table = {INPUT: inputs, CONST: self.constants, OUTPUT: outputs}[source.kind]
                    outputs[index][...] = table[source.index]
        return outputs

    def profile(self, feeds: dict, repeat: int = 10) -> list:
        """Median seconds per step over ``repeat`` runs (after one warm-up run)."""
        inputs = self.check_inputs(feeds)
        times = [[] for _ in self.steps]
        with self._lock:
            outputs = self._bind(inputs)  # noqa: F841  (kept alive while kernels write to it)
            for _ in range(repeat + 1):
                for index, (fn, address, _) in enumerate(self._calls):
                    start = time.perf_counter()
                    fn(address)
                    times[index].append(time.perf_counter() - start)
        return [float(np.median(t[1:])) for t in times]
