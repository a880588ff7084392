"""``tcomp.build``: one PrimFunc (scheduled or not) compiled into a callable kernel.

    kernel = tcomp.build(sch.func, target="cpu")
    c = kernel(a, b)               # outputs not passed are allocated and returned
    kernel(a, b, c)                # or preallocated by the caller
    seconds = kernel.time(a, b, c) # median of several runs after a warm-up

Arrays are numpy arrays matching the parameters in order; symbolic extents are read
from the arrays' shapes (a mismatch between two arrays is an error that names them).
"""
from __future__ import annotations

import ctypes
import statistics
import time

import numpy as np

from .errors import InputError, TcompError
from .tir import arith
from .tir.expr import IntImm, Var, substitute
from .tir.stmt import PrimFunc
from .tir.transform import used_size_vars

TARGETS = ("cpu", "cuda", "webgpu")


def build(func, target: str = "cpu", num_threads: int | None = None, db=None) -> "Kernel":
    """Compiles ``func`` (a PrimFunc, or a Schedule's ``func``) for ``target``; with ``db`` (a
    tuning database or its path, see ``tcomp.tune``) the best record of ``func``'s workload is
    applied first (none: ``func`` is built as given)."""
    func = getattr(func, "func", func)  # a Schedule
    if not isinstance(func, PrimFunc):
        raise TcompError(f"tcomp.build takes a PrimFunc or a Schedule, got {type(func).__name__}")
    kind = target.split()[0] if target.strip() else target
    if kind not in TARGETS or (kind == "cpu" and target != "cpu"):
        raise TcompError(f"tcomp.build: unknown target {target!r} (known: cpu, cuda, 'cuda -arch=sm_XY', webgpu)")
    if db is not None:
        from .tuning.tasks import database_target

        func = _tuned(func, database_target(target), db)  # "cuda -tf32" reads its own records
    if kind == "cuda":
        from .targets.cuda.kernel import build_cuda

        return build_cuda(func, target)
    if kind == "webgpu":
        from .targets.webgpu.kernel import build_webgpu

        return build_webgpu(func, target)
    from .targets.cpu.jit import host_target

    func = lower(func)
    module = host_target(num_threads).build([func])
    return Kernel(func, module)


def lower(func: PrimFunc) -> PrimFunc:
    """The copy of ``func`` that code generation takes: buffers used under one loop compacted
    into it (``schedule/compact.py``), symbolic sizes listed."""
    from .schedule.compact import compact_buffers
    from .schedule.schedule import Schedule

    lowered = Schedule(func)
    compact_buffers(lowered)
    lowered.func.size_vars = used_size_vars(lowered.func)
    return lowered.func


def _tuned(func: PrimFunc, target: str, db) -> PrimFunc:
    """``func`` scheduled by the best record of its workload in ``db``, or ``func`` itself."""
    from .schedule.trace import Trace
    from .tuning.database import Database
    from .tuning.workload import workload_key

    database = db if isinstance(db, Database) else Database(db)
    best = database.best(workload_key(func), target)
    return func if best is None else Trace.from_json(best.trace).apply_to(func).func


class Kernel:
    """A compiled PrimFunc: call it with numpy arrays, time it, read its assembly."""

    def __init__(self, func: PrimFunc, module):
        self.func = func
        self.module = module
        self._entry = module.function(func.name)

    def __call__(self, *arrays):
        arrays, returned = self._arguments(arrays)
        self._run(arrays)
        if not returned:
            return None
        outputs = [arrays[i] for i in returned]
        return outputs[0] if len(outputs) == 1 else tuple(outputs)

    def time(self, *arrays, repeat: int = 10, warmup: int = 2) -> float:
        """Median seconds of ``repeat`` runs after ``warmup`` runs."""
        arrays, _ = self._arguments(arrays)
        for _ in range(warmup):
            self._run(arrays)
        samples = []
        for _ in range(repeat):
            start = time.perf_counter()
            self._run(arrays)
            samples.append(time.perf_counter() - start)
        return statistics.median(samples)

    def assembly(self) -> str:
        return self.module.assembly()

    def _run(self, arrays) -> None:
        sizes = self._sizes(arrays)
        pointers = [a.ctypes.data for a in arrays] + [sizes[v] for v in self.func.size_vars]
        args = (ctypes.c_void_p * len(pointers))(*pointers)
        self._entry(ctypes.addressof(args))

    def _sizes(self, arrays) -> dict:
        sizes: dict = {}
        for buf, array in zip(self.func.params, arrays):
            for axis, extent in enumerate(buf.shape):
                if isinstance(extent, Var) and extent not in sizes:
                    sizes[extent] = array.shape[axis]
        return sizes

    def _arguments(self, arrays) -> tuple:
        """All parameter arrays (missing trailing ones allocated) and the positions allocated."""
        params = self.func.params
        if len(arrays) > len(params):
            raise InputError(f"{self.func.name} takes {len(params)} arrays, got {len(arrays)}")
        arrays = [np.asarray(a) for a in arrays]
        sizes: dict = {}
        for buf, array in zip(params, arrays):
            self._check(buf, array, sizes)
        returned = list(range(len(arrays), len(params)))
        for buf in params[len(arrays):]:
            shape = []
            for extent in buf.shape:
                value = arith.simplify(substitute(extent, {v: IntImm(n) for v, n in sizes.items()}))
                if not isinstance(value, IntImm):
                    raise InputError(f"{self.func.name}: cannot allocate {buf.name}: its extent {extent} is not "
                                     f"given by the arrays passed; pass {buf.name} as well")
                shape.append(value.value)
            arrays.append(np.zeros(shape, dtype=_numpy_dtype(buf.dtype)))
        return arrays, returned

    def _check(self, buf, array: np.ndarray, sizes: dict) -> None:
        want = _numpy_dtype(buf.dtype)
        if array.dtype != want:
            raise InputError(f"{self.func.name}: {buf.name} must be {np.dtype(want).name}, got {array.dtype}")
        if array.ndim != len(buf.shape):
            raise InputError(f"{self.func.name}: {buf.name} must have rank {len(buf.shape)}, got shape "
                             f"{list(array.shape)}")
        if not array.flags.c_contiguous:
            raise InputError(f"{self.func.name}: {buf.name} must be C-contiguous (np.ascontiguousarray)")
        for axis, extent in enumerate(buf.shape):
            value = arith.simplify(substitute(extent, {v: IntImm(n) for v, n in sizes.items()}))
            if isinstance(value, IntImm):
                if value.value != array.shape[axis]:
                    raise InputError(f"{self.func.name}: {buf.name} axis {axis} must be {value.value}, got "
                                     f"{array.shape[axis]}")
            elif isinstance(extent, Var):
                sizes[extent] = array.shape[axis]
            else:
                raise InputError(f"{self.func.name}: {buf.name} axis {axis} has extent {extent}, which the arrays "
                                 f"before it do not determine")


def _numpy_dtype(dtype: str):
    if dtype == "bfloat16":
        import ml_dtypes

        return ml_dtypes.bfloat16
    return np.dtype(dtype)
