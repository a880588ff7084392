"""Device graph executor: the CPU executor's plan (``Step``s over ``Slot``s) run on a GPU.

The plan is the same plain data as ``executor.py``'s; what a device target adds is, per step,
its kernel's launches (``KernelLaunches``: device kernels in order, each with grid and block
extents as expressions of the symbolic sizes, and which of the step's buffers or of its own
temporaries each buffer argument is). Memory::

    constants   one device buffer, uploaded once (at construction)
    arena       one device buffer per binding of the symbolic sizes: intermediates and the
                kernels' temporaries (``memory_plan``, offsets aligned to ``backend.align``)
    inputs      host arrays uploaded per run into one buffer per binding; a device tensor
                (``__cuda_array_interface__``) given as input is used in place, not copied
    outputs     one fresh buffer per run, downloaded into numpy arrays, or handed out as
                device arrays (``device_outputs=True``: ``__dlpack__``, no copy to the host)

The backend protocol (what a device target implements; CUDA: ``targets/cuda/backend.py``).
A buffer argument is a (device buffer, byte offset) pair, never a pointer, so that a target
without pointers (WebGPU: a binding is a buffer and an offset aligned to 256 bytes; size
arguments in a uniform buffer) implements the same protocol::

    align: int                                      alignment of every buffer argument's offset
    allocate(nbytes) -> buffer                      device memory, freed when dropped
    upload(buffer, offset, array)                   host array -> device, array.nbytes bytes
    download(buffer, offset, array)                 device -> host array, array.nbytes bytes
    copy(src, src_offset, dst, dst_offset, nbytes)  device -> device
    function(name) -> handle                        a kernel of the compiled module
    launch(handle, grid, block, buffers, sizes, tile_maps)
                                                    grid/block: 3 ints; buffers: [(buffer, offset)];
                                                    sizes: the kernel's symbolic sizes (ints); tile_maps:
                                                    [TileMapArg with int shapes]: descriptors of buffer
                                                    arguments for bulk copies, passed after the sizes
                                                    (a backend without bulk copies gets none)
    synchronize()                                   waits for everything launched
    external(value) -> DeviceTensor | None          a device tensor of this device given as input
                                                    (None: not a device tensor; InputError: one
                                                    this backend cannot use in place)
    export(buffer, offset, shape, dtype, owner)     an array object on the device (``__dlpack__``)
"""
from __future__ import annotations

import threading
import time
from dataclasses import dataclass

import numpy as np

from ..errors import InputError
from ..graph.ir import numpy_dtype
from ..graph.symbolic import evaluate
from ..tir import arith
from ..tir.expr import IntImm, free_vars, substitute
from .executor import ARENA, CONST, INPUT, PreparedRuns, bind_inputs, profile_order
from .memory_plan import MemoryPlan, plan_memory

PARAM, TEMP = "param", "temp"  # a launch's buffer argument: the step's argument i, or its temporary i
DEVICE_ALIGN = 256             # WebGPU's minimum storage-buffer offset alignment; CUDA is content with it


@dataclass(frozen=True)
class TileMapArg:
    """A tile map argument (``targets/gpu/bulk_copy.py``): the descriptor of buffer argument
    ``buffer`` (its position in the launch's buffers), of ``shape`` (ints or expressions of the
    size variables) and ``dtype``, copied in boxes of ``box`` elements (outermost axis first)."""

    buffer: int
    shape: tuple
    box: tuple
    dtype: str


@dataclass(frozen=True)
class Launch:
    """One device kernel launch: ``grid``/``block`` are 3 extents (ints or expressions of the size
    variables), ``buffers`` (PARAM|TEMP, index) pairs, ``sizes`` names of the symbolic sizes,
    ``tile_maps`` the ``TileMapArg`` passed after them."""

    kernel: str
    grid: tuple
    block: tuple
    buffers: tuple
    sizes: tuple
    tile_maps: tuple = ()


@dataclass(frozen=True)
class KernelLaunches:
    """What running one step's kernel means on the device: its launches in order and its
    temporaries' sizes in bytes (ints or expressions)."""

    launches: tuple
    temporaries: tuple


@dataclass(frozen=True)
class DeviceTensor:
    """A tensor already on the device (an input given as a device tensor)."""

    buffer: object
    offset: int
    shape: tuple
    dtype: np.dtype


class _Prepared:
    """Everything that depends on one binding of the symbolic sizes."""

    def __init__(self, plan, arena, inputs, input_offsets, output_shapes, output_offsets, output_bytes, calls):
        self.plan = plan
        self.arena = arena
        self.inputs = inputs                  # buffer for host inputs
        self.input_offsets = input_offsets
        self.output_shapes = output_shapes
        self.output_offsets = output_offsets
        self.output_bytes = output_bytes
        self.calls = calls                    # per step: [(function, grid, block, [(kind, buffer | index,
                                              #             offset | None)], sizes, tile maps)]


class DeviceExecutor:
    """Runs ``steps`` (``executor.Step``) whose kernels ``module.launches[name]`` describes, on the
    backend ``module.backend()``, which is opened on the first run (compiling needs no device)."""

    def __init__(self, module, steps, inputs, outputs, output_sources, constants, intermediates,
                 constraints=()):
        self.jit = module
        self.steps = steps
        self.inputs = inputs
        self.outputs = outputs
        self.output_sources = output_sources
        self.intermediates = intermediates
        self.constraints = list(constraints)
        self.runs = PreparedRuns(inputs, self._prepare)
        self.symbols = self.runs.symbols
        self._lock = threading.Lock()
        self._host_constants = [np.ascontiguousarray(c) for c in constants]
        self._backend = None

    def __getstate__(self) -> dict:
        """A compiled module pickles without its device state (compile on a machine without a GPU, run
        on one): the backend, prepared runs and lock are made anew where it is unpickled."""
        state = dict(self.__dict__)
        for key in ("_lock", "_backend", "_functions", "constants", "const_offsets", "runs", "symbols"):
            state.pop(key, None)
        return state

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self.runs = PreparedRuns(self.inputs, self._prepare)
        self.symbols = self.runs.symbols
        self._lock = threading.Lock()
        self._backend = None

    @property
    def backend(self):
        """The device backend: the compiled module loaded, constants uploaded (on first use)."""
        if self._backend is None:
            backend = self.jit.backend()
            self._functions = {launch.kernel: backend.function(launch.kernel)
                               for step in self.steps for launch in self.jit.launches[step.kernel].launches}
            self._backend = backend
            self.constants, self.const_offsets = self._upload_constants(self._host_constants)
        return self._backend

    def _upload_constants(self, arrays: list) -> tuple:
        offsets, total = _layout([a.nbytes for a in arrays], self.backend.align)
        buffer = self.backend.allocate(max(total, 1))
        for array, offset in zip(arrays, offsets):
            if array.nbytes:
                self.backend.upload(buffer, offset, array)
        return buffer, offsets

    # -------------------------------------------------------------- binding
    def bind(self, feeds: dict) -> tuple:
        """Checks the feeds; returns ([numpy array | DeviceTensor] per input, {symbol: size})."""
        values = {}
        for name, value in feeds.items():
            device = self.backend.external(value)
            values[name] = device if device is not None else _host(name, value)
        binding = bind_inputs(self.inputs, self.constraints, {n: (v.shape, v.dtype) for n, v in values.items()})
        return [values[spec.name] for spec in self.inputs], binding

    def _prepare(self, binding: dict) -> _Prepared:
        align = self.backend.align
        lifetimes = {i: (m.first, m.last) for i, m in enumerate(self.intermediates)}
        sizes = {i: evaluate(m.nbytes, binding) for i, m in enumerate(self.intermediates)}
        temporaries = {}  # (step, index) -> arena key
        for number, step in enumerate(self.steps):
            for index, nbytes in enumerate(self.jit.launches[step.kernel].temporaries):
                temporaries[(number, index)] = ("temp", number, index)
                lifetimes[("temp", number, index)] = (number, number)
                sizes[("temp", number, index)] = _int(nbytes, binding, step.kernel)
        plan = plan_memory(lifetimes, sizes, align)
        arena = self.backend.allocate(max(plan.arena_bytes, 1))
        input_bytes = [int(np.prod([evaluate(s, binding) for s in spec.shape], dtype=np.int64))
                       * np.dtype(numpy_dtype(spec.dtype)).itemsize for spec in self.inputs]
        input_offsets, input_total = _layout(input_bytes, align)
        output_shapes = [tuple(evaluate(s, binding) for s in spec.shape) for spec in self.outputs]
        output_bytes = [int(np.prod(shape, dtype=np.int64)) * np.dtype(numpy_dtype(spec.dtype)).itemsize
                        for shape, spec in zip(output_shapes, self.outputs)]
        output_offsets, _ = _layout(output_bytes, align)
        calls = []
        for number, step in enumerate(self.steps):
            calls.append([])
            for launch in self.jit.launches[step.kernel].launches:
                grid = tuple(_int(e, binding, launch.kernel) for e in launch.grid)
                block = tuple(_int(e, binding, launch.kernel) for e in launch.block)
                if 0 in grid or 0 in block:
                    continue  # nothing to compute (a zero-sized tensor)
                buffers = []
                for kind, index in launch.buffers:
                    if kind == TEMP:
                        buffers.append((ARENA, arena, plan.offsets[temporaries[(number, index)]]))
                        continue
                    slot = step.args[index]
                    if slot.kind == CONST:
                        buffers.append((CONST, self.constants, self.const_offsets[slot.index]))
                    elif slot.kind == ARENA:
                        buffers.append((ARENA, arena, plan.offsets[slot.index]))
                    else:
                        buffers.append((slot.kind, slot.index, None))
                maps = [TileMapArg(m.buffer, tuple(_int(e, binding, launch.kernel) for e in m.shape), m.box, m.dtype)
                        for m in launch.tile_maps]
                calls[-1].append((self._functions[launch.kernel], grid, block, buffers,
                                  [binding[name] for name in launch.sizes], maps))
        return _Prepared(plan, arena, self.backend.allocate(max(input_total, 1)), input_offsets,
                         output_shapes, output_offsets, output_bytes, calls)

    @property
    def memory_plan(self) -> MemoryPlan | None:
        """The memory plan of the last binding run."""
        return self.runs.memory_plan

    # -------------------------------------------------------------- running
    def _begin(self, values: list, binding: dict) -> tuple:
        """(prepared plan, input buffers, output buffers) of a run with ``binding`` (lock held): the
        plan prepared, this run's inputs staged, its outputs allocated."""
        prepared = self.runs.get(binding)
        return prepared, self._stage_inputs(values, prepared), self._output_buffers(prepared)

    def run(self, feeds: dict, device_outputs: bool = False) -> list:
        """Outputs as numpy arrays, or as device arrays (``backend.export``) with ``device_outputs``."""
        values, binding = self.bind(feeds)
        backend = self.backend
        with self._lock:
            prepared, inputs, outputs = self._begin(values, binding)
            for calls in prepared.calls:
                for call in calls:
                    self._launch(call, inputs, outputs)
            self._copy_outputs(inputs, outputs, prepared)
            backend.synchronize()
            results = []
            for spec, shape, (buffer, offset) in zip(self.outputs, prepared.output_shapes, outputs):
                dtype = np.dtype(numpy_dtype(spec.dtype))
                if device_outputs:
                    results.append(backend.export(buffer, offset, shape, dtype, buffer))
                    continue
                array = np.empty(shape, dtype=dtype)
                if array.nbytes:
                    backend.download(buffer, offset, array)
                results.append(array)
        return results

    def profile(self, feeds: dict, repeat: int = 10, back_to_back: bool = False) -> list:
        """Median seconds per step over ``repeat`` timings after one untimed run (``profile_order``;
        wall time of the step's launches, the device synchronized after each step)."""
        values, binding = self.bind(feeds)
        backend = self.backend
        with self._lock:
            prepared, inputs, outputs = self._begin(values, binding)
            times = [[] for _ in self.steps]
            order = list(range(len(prepared.calls))) + profile_order(len(prepared.calls), repeat, back_to_back)
            for position, index in enumerate(order):
                start = time.perf_counter()
                for call in prepared.calls[index]:
                    self._launch(call, inputs, outputs)
                backend.synchronize()
                if position >= len(prepared.calls):  # the first run is untimed
                    times[index].append(time.perf_counter() - start)
        return [float(np.median(t)) for t in times]

    def _stage_inputs(self, values: list, prepared: _Prepared) -> list:
        """(buffer, offset) per input: host arrays uploaded, device tensors in place."""
        inputs = []
        for value, offset in zip(values, prepared.input_offsets):
            if isinstance(value, DeviceTensor):
                inputs.append((value.buffer, value.offset))
                continue
            if value.nbytes:
                self.backend.upload(prepared.inputs, offset, value)
            inputs.append((prepared.inputs, offset))
        return inputs

    def _output_buffers(self, prepared: _Prepared) -> list:
        """(buffer, offset) per output, in one fresh buffer (the caller may keep device outputs)."""
        _, total = _layout(prepared.output_bytes, self.backend.align)
        buffer = self.backend.allocate(max(total, 1))
        return [(buffer, offset) for offset in prepared.output_offsets]

    def _launch(self, call, inputs: list, outputs: list) -> None:
        function, grid, block, buffers, sizes, tile_maps = call
        args = [(ref, offset) if offset is not None else (inputs if kind == INPUT else outputs)[ref]
                for kind, ref, offset in buffers]
        self.backend.launch(function, grid, block, args, sizes, tile_maps)

    def _copy_outputs(self, inputs: list, outputs: list, prepared: _Prepared) -> None:
        """Outputs that no kernel writes (an input, a constant or another output passed through)."""
        for index, source in enumerate(self.output_sources):
            if source is None or not prepared.output_bytes[index]:
                continue
            if source.kind == CONST:
                src = (self.constants, self.const_offsets[source.index])
            else:
                src = (inputs if source.kind == INPUT else outputs)[source.index]
            self.backend.copy(*src, *outputs[index], prepared.output_bytes[index])


def _host(name: str, value) -> np.ndarray:
    """``value`` as a C-contiguous numpy array (a torch CPU tensor converts without a copy)."""
    if type(value).__module__.startswith("torch") and hasattr(value, "numpy"):
        value = value.detach().numpy()
    try:
        return np.asarray(value, order="C")  # ascontiguousarray would make a 0-d array 1-d
    except Exception as exc:  # an object numpy cannot read
        raise InputError(f"input '{name}': expected a numpy array or a device tensor, got {type(value).__name__} "
                         f"({exc})") from None


def _layout(nbytes: list, align: int) -> tuple:
    """Offsets of buffers of ``nbytes`` placed one after another at multiples of ``align``, and the total."""
    offsets, total = [], 0
    for n in nbytes:
        offsets.append(total)
        total += -(-max(n, 1) // align) * align
    return offsets, total


def _int(expr, binding: dict, what: str) -> int:
    """An extent (int or size expression) under ``binding`` ({size name: int})."""
    if isinstance(expr, int):
        return expr
    value = arith.simplify(substitute(expr, {v: IntImm(binding[v.name]) for v in free_vars(expr)}))
    if not isinstance(value, IntImm):
        raise InputError(f"kernel {what}: cannot evaluate the extent {expr} for sizes {binding}")
    return max(0, value.value)
