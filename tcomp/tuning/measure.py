"""Measuring candidates in an isolated worker process, with time limits.

    with Measurer(func, target="cpu", timeout_s=20.0, repeat=5) as measurer:
        results = measurer.measure([trace_a, trace_b])
    results[0]  ->  MeasureResult(status="ok", seconds=0.0012, detail="")

Each candidate is a trace replayed on ``func`` with its recorded decisions, built, run once on
random inputs and compared with the unscheduled ``func`` (the reference), then timed (median
of ``repeat`` runs). On ``target="cuda"`` both run on the GPU: the reference is the unscheduled
func under the default binding (one thread per output element running the plain loop), the
candidate is timed on the device (``CudaKernel.time``, CUDA events). Statuses: "ok";
"build_error" (the trace does not apply, or the program does not build or run); "wrong" (outputs
differ from the reference; detail says by how much); "crash" (the worker process died, e.g. a
segfault); "timeout" (no answer in ``timeout_s``). On a GPU target several workers build and
check candidates at once (``workers``; the timings themselves take turns). After a crash or
timeout a fresh worker (new random inputs, reference rebuilt) takes the next candidate; the
caller never sees more than a result. If the reference itself fails (it does not build, crashes
or hangs), every candidate of the batch gets that status, with a detail that
says it was the reference.

The worker is ``python -m tcomp.tuning.worker``, a fresh interpreter (no fork: LLVM's and
OpenMP's state do not survive one). Symbolic sizes of ``func`` take the values in ``sizes``
(by name; ``DEFAULT_SIZE`` otherwise).
"""
from __future__ import annotations

import io
import os
import select
import signal
import subprocess
import sys
import tempfile
import threading
import time
import weakref
from dataclasses import dataclass

from ..tir.transform import used_size_vars
from .worker import read_message, write_message

DEFAULT_SIZE = 64
MAX_GPU_WORKERS = 8
STARTUP_TIMEOUT_S = 120.0  # the worker importing tcomp on a busy machine; not the candidate's time
STATUSES = ("ok", "build_error", "crash", "timeout", "wrong")


@dataclass(frozen=True)
class MeasureResult:
    status: str             # one of STATUSES
    seconds: float | None   # median run time when "ok"
    detail: str = ""        # why it failed


class _WorkerGone(Exception):
    def __init__(self, status: str, detail: str):
        super().__init__(detail)
        self.status, self.detail = status, detail


class Measurer:
    """Builds, checks and times candidate schedules of ``func`` in worker processes.

    ``workers``: how many candidates are built and checked at once (each in its own worker, on a
    GPU target only: timing on the CPU needs the cores to itself); default ``default_workers``.
    Timing is never concurrent: a worker times its candidate holding a lock that the workers of
    this measurer share (``fcntl.flock`` on a temporary file)."""

    def __init__(self, func, target: str = "cpu", timeout_s: float = 20.0, repeat: int = 5,
                 num_threads: int | None = None, sizes: dict | None = None, workers: int | None = None):
        self.func = getattr(func, "func", func)
        self.target, self.timeout_s, self.repeat, self.num_threads = target, timeout_s, repeat, num_threads
        self.size_vars = used_size_vars(self.func)
        given = dict(sizes or {})
        self.sizes = {v: int(given.get(v.name, DEFAULT_SIZE)) for v in self.size_vars}
        self.workers = workers if workers is not None else default_workers(target)
        self._timing_lock = tempfile.NamedTemporaryFile(prefix="tcomp-timing-", suffix=".lock")  # noqa: SIM115
        self._pool = [_Worker(self) for _ in range(self.workers)]

    def measure(self, traces) -> list:
        """One MeasureResult per trace (a Trace or its JSON text), in order."""
        texts = [trace if isinstance(trace, str) else trace.to_json() for trace in traces]
        results: list = [None] * len(texts)
        pending = iter(range(len(texts)))
        claim = threading.Lock()
        reference_failed: list = []

        def serve(worker):
            while True:
                with claim:
                    index = next(pending, None)
                if index is None:
                    return
                results[index] = worker.measure(texts[index], reference_failed)

        busy = self._pool[:max(1, min(len(self._pool), len(texts)))]
        if len(busy) == 1:
            serve(busy[0])
        else:
            threads = [threading.Thread(target=serve, args=(worker,)) for worker in busy]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
        return results

    def close(self) -> None:
        """Stops the workers (a later ``measure`` starts fresh ones)."""
        for worker in self._pool:
            worker.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def default_workers(target: str) -> int:
    """Candidates measured at once by default: 1 on the CPU (timings need the cores); on a GPU
    target as many as the cores build in parallel (building is the CPU's work; timing is locked)."""
    kind = target.split()[0] if target.split() else target
    return 1 if kind == "cpu" else max(1, min(MAX_GPU_WORKERS, (os.cpu_count() or 1) - 1))


class _Worker:
    """One worker process of a Measurer: started on first use and after a crash or timeout."""

    def __init__(self, measurer: Measurer):
        self.measurer = measurer
        self._proc = None
        self._stderr = None
        self._finalizer = None

    def measure(self, text: str, reference_failed: list) -> MeasureResult:
        """The result of one candidate; once a reference has failed (``reference_failed`` holds its
        _WorkerGone), every later candidate of the batch gets its status."""
        m = self.measurer
        try:
            if reference_failed:
                raise reference_failed[0]
            self._ensure_worker()
        except _WorkerGone as gone:  # the reference failed: so does every candidate of the batch
            reference_failed[:1] = [gone]
            return MeasureResult(gone.status, None, gone.detail)
        try:
            status, seconds, detail = self._call(("measure", text, m.repeat), m.timeout_s)
        except _WorkerGone as gone:
            return MeasureResult(gone.status, None, gone.detail)
        return MeasureResult(status, seconds, detail)

    def close(self) -> None:
        if self._finalizer is not None:
            self._finalizer()
        self._proc = self._stderr = self._finalizer = None

    def _ensure_worker(self) -> None:
        """A running worker holding the reference; raises _WorkerGone if the reference fails."""
        if self._proc is not None and self._proc.poll() is None:
            return
        self.close()
        m = self.measurer
        package_root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (package_root, env.get("PYTHONPATH")) if p)
        self._stderr = tempfile.TemporaryFile()  # noqa: SIM115 - closed by _stop with the worker
        self._proc = subprocess.Popen([sys.executable, "-m", "tcomp.tuning.worker"], env=env,
                                      stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                      stderr=self._stderr, bufsize=0)
        self._finalizer = weakref.finalize(self, _stop, self._proc, self._stderr)
        self._call(None, STARTUP_TIMEOUT_S)  # the "ready" message
        setup = ("setup", m.func, m.size_vars, m.sizes, m.target, m.num_threads, m._timing_lock.name)
        try:
            reply = self._call(setup, m.timeout_s)
        except _WorkerGone as gone:
            raise _WorkerGone(gone.status, f"the reference (unscheduled func) failed: {gone.detail}") from None
        if reply[0] != "ok":
            self.close()
            raise _WorkerGone(reply[1], f"the reference (unscheduled func) failed: {reply[2]}")

    def _call(self, message, timeout: float):
        """Sends ``message`` (None: only reads) and returns the reply, or raises _WorkerGone."""
        proc = self._proc
        try:
            if message is not None:
                write_message(proc.stdin, message)
            reply = _read_with_deadline(proc.stdout, time.monotonic() + timeout)
        except BrokenPipeError:
            reply = None
        if reply is _TIMED_OUT:
            self.close()
            raise _WorkerGone("timeout", f"no answer within {timeout:g} s (worker killed)")
        if reply is None:
            code = proc.wait()
            why = f"killed by {signal.Signals(-code).name}" if code < 0 else f"exited with status {code}"
            tail = self._stderr_tail()
            self.close()
            raise _WorkerGone("crash", f"worker {why}" + (f"; stderr: {tail}" if tail else ""))
        return reply

    def _stderr_tail(self, chars: int = 600) -> str:
        self._stderr.seek(0, os.SEEK_END)
        self._stderr.seek(max(0, self._stderr.tell() - chars))
        return self._stderr.read().decode(errors="replace").strip()


_TIMED_OUT = object()


def _read_with_deadline(stream, deadline: float):
    """The next message from ``stream``; ``_TIMED_OUT`` past ``deadline``; None at end of stream."""
    fd = stream.fileno()
    buffer = b""
    need = 8
    while True:
        remaining = deadline - time.monotonic()
        ready, _, _ = select.select([fd], [], [], max(remaining, 0))
        if not ready:
            return _TIMED_OUT
        chunk = os.read(fd, need - len(buffer))
        if not chunk:
            return None
        buffer += chunk
        if len(buffer) == need:
            if need == 8:
                need += int.from_bytes(buffer, "little")
                if need == 8:
                    return None
            else:
                return read_message(io.BytesIO(buffer))


def _stop(proc, stderr) -> None:
    try:
        proc.stdin.close()
    except OSError:
        pass
    if proc.poll() is None:
        proc.kill()
    proc.wait()
    proc.stdout.close()
    stderr.close()
