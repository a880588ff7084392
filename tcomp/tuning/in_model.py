"""In-model verification: a model's tuned kernels timed between their neighbours, against the templates.

    verdicts = verify_in_model(model, tasks, database, "cpu")   # {workload: verdict TuningRecord}

The tuner's worker times each candidate alone; between its neighbours in the model a kernel
can rank differently (GPT-2's kept tuned matmuls ran 1-3% faster than their templates in the
worker and 12-29% slower in the model: docs/benchmarks.md). So after the search the model is
compiled twice on the tuning target, with the database (``tcomp.compile(db=...)``: the records
that the compile applies) and with the templates alone (``schedule="template"``, no database),
the two modules' ``profile`` (per-step seconds in the model, ``runtime/executor.py``) run in
turns on the same random inputs, ``ROUNDS`` rounds of ``RUNS`` timed runs of the model each.
A step's time is the median over the rounds of its per-round median; a task's time, the sum
over its steps (the groups running its tuned kernel). Each task whose tuned kernel ran gets a
verdict in the database (``database.py``)::

    task t3 (3 groups): tuned 3 x 1.737 ms, template 3 x 1.222 ms in the model
      -> {"workload": "<t3>", "trace": "<its best record's trace>", "status": "rejected",
          "seconds": 0.005211, "baseline": 0.003666, ...}

"verified" where the tuned steps take at most ``1 - MARGIN`` of the template's (a 2% win; the
same kernel checked again in another process came out up to 2-4% apart: docs/benchmarks.md,
"In-model verification"), else "rejected",
and ``tasks.tuned_group_func`` (so ``tcomp.compile(db=...)``) then keeps the template. The
compile with the database changes once tasks are rejected (their neighbours' caches too), so
the kept ones are verified once more in the model without them (``PASSES``); the latest verdict
counts. Nothing is measured where every record the compile applies has a verdict already (a
resumed tuning with no trials left).

The target's module must run here: on a GPU target without a device (or without its driver),
the step is skipped with a warning that says why, and the records apply unverified.
"""
from __future__ import annotations

import warnings

import numpy as np

from ..errors import TcompError
from ..graph.ir import numpy_dtype
from .database import TuningRecord
from .tasks import template_seconds

ROUNDS = 15   # interleaved rounds: each module profiled once per round
RUNS = 2      # timed runs of the model per profile call (after one untimed run)
MARGIN = 0.02  # a tuned kernel must take at most 98% of its template's time in the model
PASSES = 2    # verifications: once, then once more without the rejected records where any


def verify_in_model(model, tasks, database, target: str = "cpu", measure_target: str | None = None,
                    input_shapes: dict | None = None, timer=None, rounds: int = ROUNDS,
                    margin: float = MARGIN, passes: int = PASSES) -> dict:
    """Commits in-model verdicts for the tasks (``tasks.extract_tasks`` of ``model``) whose
    records ``tcomp.compile(model, target=measure_target, db=database)`` applies; returns
    {workload: latest verdict record} of those (empty where nothing needed verifying or the
    modules cannot run here: warned). ``target``: the records' target (``database_target``);
    ``timer(modules, feeds, rounds)`` -> per module, per step seconds (default
    ``interleaved_step_times``)."""
    from ..compiler import compile

    measure_target = measure_target or target
    timer = timer or interleaved_step_times
    if not any(_unverified(task, database, target) for task in tasks):
        return {}
    verdicts: dict = {}
    template_module = None
    try:
        for _ in range(passes):
            tuned_module = compile(model, target=measure_target, input_shapes=input_shapes, db=database,
                                   schedule="template")
            steps = tuned_steps(tuned_module)
            if not steps:
                break
            if template_module is None:
                template_module = compile(model, target=measure_target, input_shapes=input_shapes,
                                          schedule="template")
                feeds = random_feeds(template_module)
            _check_same_steps(tuned_module, template_module)
            tuned, template = timer([tuned_module, template_module], feeds, rounds)
            rejected = 0
            for workload, indices in steps.items():
                record = database.best(workload, target)
                seconds = sum(tuned[i] for i in indices)
                baseline = sum(template[i] for i in indices)
                status = "verified" if seconds <= (1 - margin) * baseline else "rejected"
                verdicts[workload] = TuningRecord(workload, target, record.trace, seconds, status, baseline=baseline)
                database.commit(verdicts[workload])
                rejected += status == "rejected"
            if rejected in (0, len(steps)):
                break
    except Exception as exc:  # noqa: BLE001 - e.g. no device for a GPU target: the records apply unverified
        warnings.warn(f"in-model verification of the tuned kernels skipped on {measure_target}: "
                      f"{type(exc).__name__}: {exc}")
    return verdicts


def _unverified(task, database, target: str) -> bool:
    """Whether the compile applies the task's best record (it beats the template's measurement)
    and no verdict judged that record yet."""
    record = database.best(task.workload, target)
    template = template_seconds(database, task.workload, target)
    if record is None or (template is not None and template <= record.seconds):
        return False
    return database.verdict(task.workload, target, record.trace) is None


def tuned_steps(module) -> dict:
    """{workload: [step index]} of the module's steps that run a tuned kernel (``attrs["tuned"]``,
    set by ``tasks.tuned_group_func``); steps are the module's groups in order."""
    steps: dict = {}
    for kernel in module.kernels.values():
        workload = kernel.func.attrs.get("tuned")
        if workload is not None:
            steps.setdefault(workload, []).extend(kernel.groups)
    return {workload: sorted(indices) for workload, indices in steps.items()}


def _check_same_steps(a, b) -> None:
    labels = [group.label for group in a.groups], [group.label for group in b.groups]
    if labels[0] != labels[1]:
        raise TcompError("the tuned and template compiles fused the model differently; steps do not match")


def random_feeds(module, seed: int = 0) -> dict:
    """Random inputs of the module's (static) input shapes: floats standard normal, integers 0 or 1
    (valid indices and masks), booleans random."""
    rng = np.random.default_rng(seed)
    feeds = {}
    for spec in module.inputs:
        if not all(isinstance(s, (int, np.integer)) for s in spec.shape):
            raise TcompError(f"input '{spec.name}' has symbolic dimensions {list(spec.shape)}; give input_shapes")
        dtype = np.dtype(numpy_dtype(spec.dtype))
        if dtype.kind == "f":
            feeds[spec.name] = rng.standard_normal(spec.shape).astype(dtype)
        elif dtype.kind == "b":
            feeds[spec.name] = rng.integers(0, 2, spec.shape).astype(bool)
        else:
            feeds[spec.name] = rng.integers(0, 2, spec.shape).astype(dtype)
    return feeds


def interleaved_step_times(modules: list, feeds: dict, rounds: int = ROUNDS, runs: int = RUNS) -> list:
    """Per module, each step's median seconds in the model: ``rounds`` rounds in which every module
    is profiled once (``runs`` timed runs after one untimed; the order reversed every other round);
    per step the median over the rounds of the round's median."""
    samples = [[] for _ in modules]
    for r in range(rounds):
        order = list(range(len(modules)))
        for index in order if r % 2 == 0 else order[::-1]:
            samples[index].append([seconds for _, _, seconds in modules[index].profile(feeds, runs)])
    return [[float(t) for t in np.median(np.array(s), axis=0)] for s in samples]
