"""The measurement worker: a fresh Python process that builds, checks and times candidates.

The parent (``measure.Measurer``) starts ``python -m tcomp.tuning.worker`` and talks to it over
stdin/stdout with length-prefixed pickles (inter-process only, nothing is stored)::

    -> ("setup", func, size_vars, sizes)   <- ("ok", None) | ("error", status, detail)
    -> ("measure", trace_json, repeat)     <- ("ok", seconds, detail) | (status, None, detail)

``setup`` builds the unscheduled ``func``, draws random inputs (fresh in every worker) and runs
it once: its outputs are the reference. ``measure`` replays a trace on ``func``, builds it, runs
it once on copies of the same inputs, compares with the reference and times it (on the CPU with
the caches evicted before each run, ``FLUSH_BYTES``).
A crash or hang kills only this process; the parent notices and starts another.
"""
from __future__ import annotations

import fcntl
import os
import pickle
import struct
import sys
import time

import numpy as np

# Seconds of runs before each timing: a kernel's first milliseconds of runs in a fresh worker are up
# to 3x slower than later ones, so a candidate measured first (the template, in its own worker)
# looked slower than it is (docs/benchmarks.md, "Templates measured warm").
WARMUP_S = 0.02
# Bytes written before each timed run on the CPU (twice the 32 MB last-level cache of the 2-core
# development machine): a run starts with caches cold, as a kernel in a model does, whose weights
# were last read a whole model run before (docs/benchmarks.md, ResNet-18 tuned, 6d4f1ce rows).
FLUSH_BYTES = 64 << 20

_TOLERANCE = {"float64": 1e-9, "float32": 1e-3, "float16": 5e-2, "bfloat16": 2.5e-1}


def write_message(stream, message) -> None:
    data = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
    stream.write(struct.pack("<Q", len(data)) + data)
    stream.flush()


def read_message(stream):
    """The next message, or None at end of input."""
    header = stream.read(8)
    if len(header) < 8:
        return None
    size = struct.unpack("<Q", header)[0]
    data = b""
    while len(data) < size:
        chunk = stream.read(size - len(data))
        if not chunk:
            return None
        data += chunk
    return pickle.loads(data)


class Session:
    """One function under measurement: its inputs and reference outputs."""

    def __init__(self, func, size_vars, sizes: dict, target: str, num_threads, timing_lock: str):
        import tcomp
        from tcomp.tir import expr
        from tcomp.tir.transform import buffer_accesses

        for var in size_vars:  # unpickled size vars are new objects: make them the registered ones
            expr._size_vars[var.name] = var
        self.func, self.target, self.num_threads, self.timing_lock = func, target, num_threads, timing_lock
        self._flush = None   # the cache-evicting buffer of CPU timings, made on first use
        written = buffer_accesses(func.body)[1]
        self.outputs = [i for i, buf in enumerate(func.params) if buf in written]
        rng = np.random.default_rng()
        self.inputs = [_random_array(buf, sizes, rng) for buf in func.params]
        reference = tcomp.build(func, target, num_threads=num_threads)
        self.reference = self.run(reference)

    def run(self, kernel) -> list:
        """The output arrays of one run of ``kernel`` on copies of the inputs."""
        arrays = [a.copy() for a in self.inputs]
        kernel(*arrays)
        return [arrays[i] for i in self.outputs]

    def measure(self, trace_json: str, repeat: int) -> tuple:
        import tcomp
        from tcomp.schedule.trace import Trace

        try:
            sch = Trace.from_json(trace_json).apply_to(self.func)
            kernel = tcomp.build(sch.func, self.target, num_threads=self.num_threads)
            outputs = self.run(kernel)
        except Exception as exc:  # noqa: BLE001 - every failure to apply or build is the candidate's
            return "build_error", None, f"{type(exc).__name__}: {exc}"
        for index, ours, ref in zip(self.outputs, outputs, self.reference):
            problem = mismatch(ours, ref)
            if problem:
                return "wrong", None, f"{self.func.params[index].name}: {problem}"
        arrays = [a.copy() for a in self.inputs]
        with open(self.timing_lock, "rb") as lock:  # the measurer's workers time one at a time
            fcntl.flock(lock, fcntl.LOCK_EX)
            warm_until = time.perf_counter() + WARMUP_S
            while time.perf_counter() < warm_until:
                kernel.time(*arrays, repeat=1, warmup=0)
            seconds = self._cold_time(kernel, arrays, repeat) if self.target == "cpu" else \
                kernel.time(*arrays, repeat=repeat, warmup=1)
        return "ok", seconds, ""

    def _cold_time(self, kernel, arrays, repeat: int) -> float:
        """Median seconds of ``repeat`` runs, each after ``FLUSH_BYTES`` written (caches evicted)."""
        if self._flush is None:
            self._flush = np.zeros(FLUSH_BYTES // 4, np.float32)
        samples = []
        for _ in range(repeat):
            np.add(self._flush, 1.0, out=self._flush)
            samples.append(kernel.time(*arrays, repeat=1, warmup=0))
        return float(np.median(samples))


def mismatch(ours: np.ndarray, ref: np.ndarray) -> str:
    """Why ``ours`` differs from ``ref`` ("" when they agree).

    Integers and booleans must match exactly; floats within a dtype's tolerance relative to the
    largest reference magnitude (reordered accumulation changes the last bits), with NaN and
    infinities in the same places.
    """
    dtype = str(ref.dtype)
    if dtype not in _TOLERANCE:
        bad = np.argwhere(ours != ref)
        if bad.size:
            at = tuple(int(i) for i in bad[0])
            return f"{len(bad)} of {ref.size} elements differ, first at {at}: {ours[at]} vs {ref[at]}"
        return ""
    a, b = ours.astype(np.float64), ref.astype(np.float64)
    finite = np.isfinite(b)
    if not np.array_equal(finite, np.isfinite(a)) or not np.array_equal(a[~finite], b[~finite], equal_nan=True):
        return "NaN or infinity at different positions"
    if not finite.any():
        return ""
    error = np.abs(a - b)[finite]
    scale = max(float(np.max(np.abs(b[finite]))), 1.0)
    worst = float(np.max(error))
    if worst > _TOLERANCE[dtype] * scale:
        return f"max abs error {worst:.3g} (tolerance {_TOLERANCE[dtype] * scale:.3g})"
    return ""


def _random_array(buf, sizes: dict, rng) -> np.ndarray:
    """Standard normal floats, small positive integers (1..4: safe divisors), random booleans."""
    from tcomp.build import _numpy_dtype
    from tcomp.tir import arith
    from tcomp.tir.expr import IntImm, substitute

    shape = [arith.simplify(substitute(e, {v: IntImm(n) for v, n in sizes.items()})) for e in buf.shape]
    shape = [e.value for e in shape]
    dtype = _numpy_dtype(buf.dtype)
    if buf.dtype == "bool":
        return rng.random(shape) < 0.5
    if buf.dtype.startswith(("int", "uint")):
        return rng.integers(1, 5, size=shape).astype(dtype)
    return rng.standard_normal(shape).astype(dtype)


def main() -> None:
    requests = os.fdopen(os.dup(0), "rb", buffering=0)
    replies = os.fdopen(os.dup(1), "wb", buffering=0)
    os.dup2(2, 1)  # whatever tcomp or generated code prints goes to stderr, not into the protocol
    write_message(replies, ("ready",))
    session = None
    while (message := read_message(requests)) is not None:
        if message[0] == "setup":
            try:
                session = Session(*message[1:])
                write_message(replies, ("ok", None))
            except Exception as exc:  # noqa: BLE001
                write_message(replies, ("error", "build_error", f"{type(exc).__name__}: {exc}"))
        else:
            try:
                write_message(replies, session.measure(*message[1:]))
            except Exception as exc:  # noqa: BLE001 - e.g. a run that raises: the candidate failed
                write_message(replies, ("build_error", None, f"{type(exc).__name__}: {exc}"))


if __name__ == "__main__":
    sys.exit(main())
