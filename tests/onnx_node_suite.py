"""ONNX's own node test cases (``onnx.backend.test``) run by several systems, each case isolated.

Shared by ``tests/test_onnx_node_suite.py`` and ``benchmarks/onnx_conformance.py``.

    cases = load_cases(r"test_reduce_")
    outcomes = run_cases(cases, ["reference", "tcomp"])     # {(case name, system): Outcome}

Systems: ``reference`` (``onnx.reference.ReferenceEvaluator``), ``tcomp`` (``tcomp.backend``,
one thread), ``tcomp-cuda`` (``tcomp.backend`` on the ``cuda`` target: needs a GPU),
``tcomp-webgpu`` (``tcomp.backend.TcompRep`` on the ``webgpu`` target: wgpu, lavapipe without a
GPU) and ``onnxruntime`` (CPU, one thread). Every (case, system) runs in a worker
process (``onnx_helpers.Worker``) under a time limit, so a crash or a hang fails that one
run; ``jobs`` workers run side by side. A case passes when every data set's outputs match
the expected ones within the case's tolerances, compared the way ``onnx.backend.test``
compares them (``Runner.assert_similar_outputs``).

A tcomp mismatch is ``CLOSER`` when, on every floating output, tcomp's largest error against
the exact result (``onnx.reference`` on the model with every float type widened to float64)
is no larger than the expected output's: the case's expected data carries low-precision
rounding of one particular algorithm (numpy's float32 FFT, float16 softmax step by step).

``onnx_node_exclusions.txt`` lists the cases tcomp does not pass, one per line with the
reason (``load_exclusions``).
"""
from __future__ import annotations

import os
import re
import sys
import threading
import traceback
import warnings
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE.parent), str(HERE)]

from onnx_helpers import Worker, worker_main  # noqa: E402

SYSTEMS = ("reference", "tcomp", "tcomp-cuda", "tcomp-webgpu", "onnxruntime")
EXCLUSIONS_PATH = HERE / "onnx_node_exclusions.txt"
TIME_LIMIT_S = 60.0  # per case and system
RECYCLE_AFTER = 150  # cases per worker process before a fresh one (JIT code accumulates)
# outcome statuses
PASS, MISMATCH, UNSUPPORTED, ERROR = "pass", "mismatch", "unsupported", "error"
CLOSER = "closer"  # outside the tolerances, but nearer the exact result than the expected output is
PRECISION_REASON = "precision:"  # how an exclusion for a CLOSER case starts


@dataclass(frozen=True)
class Outcome:
    status: str   # pass, mismatch (a wrong answer), closer, unsupported (tcomp.UnsupportedOpError), error
    detail: str = ""

    @property
    def passed(self) -> bool:
        return self.status == PASS


def load_cases(pattern: str | None = None) -> list:
    """The node cases (``onnx.backend.test.loader``) whose name matches ``pattern`` (a regex), by name."""
    from onnx.backend.test.loader import load_model_tests

    with warnings.catch_warnings():  # the case generators overflow casts on purpose
        warnings.simplefilter("ignore")
        cases = load_model_tests(kind="node")
    regex = re.compile(pattern) if pattern else None
    return sorted((c for c in cases if regex is None or regex.search(c.name)), key=lambda c: c.name)


def load_exclusions(path: Path = EXCLUSIONS_PATH) -> dict:
    """{case name: reason} from lines ``test_name: reason``; ``#`` starts a comment line."""
    exclusions = {}
    for number, line in enumerate(path.read_text().splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        name, sep, reason = line.partition(":")
        name, reason = name.strip(), reason.strip()
        if not sep or not reason or not name.startswith("test_"):
            raise ValueError(f"{path.name}:{number}: expected 'test_name: reason', got {line!r}")
        if name in exclusions:
            raise ValueError(f"{path.name}:{number}: {name} is listed twice")
        exclusions[name] = reason
    return exclusions


def op_of(case) -> str:
    """The case's operator: its name's op if a node has it, else the first node's."""
    ops = [n.op_type for n in case.model.graph.node]
    squashed = case.name[len("test_"):].replace("_", "").lower()
    matching = [op for op in ops if squashed.startswith(op.lower())]
    return max(matching, key=len) if matching else (ops[0] if ops else "?")


def _payload(case) -> tuple:
    """What a worker needs to run ``case``: model bytes, data sets as arrays, tolerances."""
    from onnx.backend.test.runner import _normalize_tensor

    data_sets = [([_normalize_tensor(a) for a in inputs], [_normalize_tensor(a) for a in outputs])
                 for inputs, outputs in case.data_sets]
    return case.model.SerializeToString(), data_sets, case.rtol, case.atol


def run_cases(cases: list, systems, jobs: int | None = None, time_limit: float = TIME_LIMIT_S,
              progress=None) -> dict:
    """{(case name, system): Outcome} for every case under every system, ``jobs`` workers at a time.

    ``progress(case, system, outcome)`` is called as results come in (from worker threads).
    """
    jobs = jobs or min(2, os.cpu_count() or 1)
    tasks = [(case, system) for case in cases for system in systems]
    local = threading.local()
    lock = threading.Lock()
    workers = []

    def one(task):
        case, system = task
        if getattr(local, "worker", None) is None or local.count >= RECYCLE_AFTER:
            if getattr(local, "worker", None) is not None:
                local.worker.stop()
            local.worker, local.count = Worker(__file__), 0
            with lock:
                workers.append(local.worker)
        local.count += 1
        try:
            outcome = Outcome(*local.worker.call("run_case", system, *_payload(case), timeout=time_limit))
        except AssertionError as exc:  # the worker crashed or hung
            outcome = Outcome(ERROR, str(exc))
        if progress is not None:
            with lock:
                progress(case, system, outcome)
        return (case.name, system), outcome

    try:
        with ThreadPoolExecutor(jobs) as pool:
            return dict(pool.map(one, tasks))
    finally:
        for worker in workers:
            worker.stop()


# In the worker process ------------------------------------------------------------------
def _run_case(system: str, model_bytes: bytes, data_sets: list, rtol: float, atol: float) -> tuple:
    """(status, detail) of one case under ``system``."""
    from onnx.backend.test.runner import Runner

    import tcomp

    model = onnx.ModelProto()
    model.ParseFromString(model_bytes)
    try:
        run = _RUNNERS[system](model)
        for inputs, expected in data_sets:
            outputs = run(inputs)
            try:
                Runner.assert_similar_outputs(expected, list(outputs), rtol, atol)
            except AssertionError as exc:
                lines = [line.strip() for line in str(exc).strip().splitlines() if line.strip()]
                summary = "; ".join(lines[:1] + [line for line in lines[1:] if line.startswith(("Mismatch", "Max "))])
                if system.startswith("tcomp"):
                    closer = _closer_than_expected(model, inputs, expected, list(outputs))
                    if closer:
                        return CLOSER, f"{closer}; {summary}"[:500]
                return MISMATCH, summary[:500]
    except tcomp.UnsupportedOpError as exc:
        return UNSUPPORTED, str(exc)[:500]
    except Exception as exc:  # noqa: BLE001 - every failure is an outcome
        where = traceback.extract_tb(exc.__traceback__)[-1]
        return ERROR, f"{type(exc).__name__}: {str(exc)[:400]} ({Path(where.filename).name}:{where.lineno})"
    return PASS, ""


_FLOAT_TYPES = (onnx.TensorProto.FLOAT, onnx.TensorProto.FLOAT16, onnx.TensorProto.BFLOAT16)


def _closer_than_expected(model, inputs: list, expected: list, outputs: list) -> str:
    """"" when some output of ``outputs`` is farther from the exact result than ``expected`` is;
    else a line with both errors. The exact result: ``onnx.reference`` in float64."""
    from onnx.reference import ReferenceEvaluator

    try:
        exact = ReferenceEvaluator(_widened_to_float64(model)).run(None, dict(zip(_feed_names(model), [
            a.astype(np.float64) if a.dtype.kind == "f" or a.dtype.name == "bfloat16" else a for a in inputs])))
    except Exception:  # noqa: BLE001 - no exact result, no claim
        return ""
    errors = []
    for ours, theirs, truth in zip(outputs, expected, exact):
        ours, theirs, truth = (np.asarray(a) for a in (ours, theirs, truth))
        if truth.dtype != np.float64 or ours.shape != truth.shape or theirs.shape != truth.shape:
            return ""
        mine = float(np.max(np.abs(ours.astype(np.float64) - truth), initial=0.0))
        reference = float(np.max(np.abs(theirs.astype(np.float64) - truth), initial=0.0))
        if not mine <= reference:
            return ""
        errors.append(f"largest error against float64: tcomp {mine:.3g}, expected output {reference:.3g}")
    return "; ".join(errors)


def _widened_to_float64(model: onnx.ModelProto) -> onnx.ModelProto:
    """``model`` with every float32/float16/bfloat16 tensor type, cast and constant made float64."""
    wide = onnx.ModelProto()
    wide.CopyFrom(model)

    def widen_tensor(tensor):
        if tensor.data_type in _FLOAT_TYPES:
            tensor.CopyFrom(onnx.numpy_helper.from_array(
                onnx.numpy_helper.to_array(tensor).astype(np.float64), tensor.name))

    def widen(graph):
        for info in list(graph.input) + list(graph.output) + list(graph.value_info):
            if info.type.tensor_type.elem_type in _FLOAT_TYPES:
                info.type.tensor_type.elem_type = onnx.TensorProto.DOUBLE
        for init in graph.initializer:
            widen_tensor(init)
        for node in graph.node:
            for attr in node.attribute:
                if attr.name == "to" and attr.i in _FLOAT_TYPES:
                    attr.i = onnx.TensorProto.DOUBLE
                elif attr.type == onnx.AttributeProto.TENSOR:
                    widen_tensor(attr.t)
                elif attr.type == onnx.AttributeProto.GRAPH:
                    widen(attr.g)

    widen(wide.graph)
    return wide


def _feed_names(model: onnx.ModelProto) -> list:
    initializers = {init.name for init in model.graph.initializer}
    return [i.name for i in model.graph.input if i.name not in initializers]


def _reference(model):
    from onnx.reference import ReferenceEvaluator

    evaluator = ReferenceEvaluator(model)
    names = _feed_names(model)
    return lambda inputs: evaluator.run(None, dict(zip(names, inputs)))


def _tcomp(model):
    import tcomp.backend

    rep = tcomp.backend.prepare(model, "CPU", num_threads=1)
    return rep.run


def _tcomp_cuda(model):
    import tcomp.backend

    return tcomp.backend.prepare(model, "CUDA").run


def _tcomp_webgpu(model):
    import tcomp.backend

    return tcomp.backend.TcompRep(model, "webgpu").run


def _onnxruntime(model):
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = options.inter_op_num_threads = 1
    options.log_severity_level = 3  # errors only
    session = ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
    names = _feed_names(model)
    return lambda inputs: session.run(None, dict(zip(names, inputs)))


_RUNNERS = {"reference": _reference, "tcomp": _tcomp, "tcomp-cuda": _tcomp_cuda, "tcomp-webgpu": _tcomp_webgpu,
            "onnxruntime": _onnxruntime}

if __name__ == "__main__" and sys.argv[1:] == ["--worker"]:
    warnings.simplefilter("ignore")
    np.seterr(all="ignore")
    worker_main({"run_case": _run_case})


def full_run_cases() -> tuple:
    """(the cases of a target's full run: those onnx.reference passes and ``onnx_node_exclusions.txt``
    does not exclude, the workers to run them with: one a core but one, at most 16)."""
    cases, excluded = load_cases(), load_exclusions()
    jobs = max(1, min(16, (os.cpu_count() or 2) - 1))
    reference = run_cases(cases, ["reference"], jobs)
    return [case for case in cases if reference[(case.name, "reference")].passed and case.name not in excluded], jobs


def check_exclusions_well_formed(path: Path) -> None:
    """A target's exclusion list names existing cases, none that every target excludes."""
    listed = load_exclusions(path)
    names = {case.name for case in load_cases()}
    assert not sorted(set(listed) - names), f"{path.name} lists cases that do not exist"
    assert not sorted(set(listed) & set(load_exclusions())), "cases excluded on every target belong in one list"


def check_target_outcomes(ours: dict, path: Path, target: str, accepted=(PASS,)) -> None:
    """{case name: Outcome} of a target's full run against its exclusion list ``path``: every case
    not listed has an ``accepted`` status, and no listed case passes (a stale entry)."""
    listed = load_exclusions(path)
    failing = sorted(f"{name} ({o.status}: {o.detail[:150]})" for name, o in ours.items()
                     if o.status not in accepted and name not in listed)
    stale = sorted(name for name in listed if name in ours and ours[name].status == PASS)
    print(f"tcomp on {target} passes {sum(o.status == PASS for o in ours.values())} of the {len(ours)} node cases counted")
    assert not stale, f"{path.name} lists cases that pass on {target} (remove them): {stale}"
    assert not failing, f"node cases failing on {target} that {path.name} does not list: {failing}"
