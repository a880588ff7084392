"""Task scheduler: which kernel of a model gets the next round of measurements.

    scheduler = TaskScheduler([task.weight for task in tasks], round_trials=16)
    scheduler.run(step, trials=512)   # step(index, n) -> (measured, best seconds or None)

Every task gets one round first. Then each round goes to the task whose improvement is
expected to reduce the estimated end-to-end latency (the sum over tasks of weight x best
seconds) the most, in the manner of Ansor's gradient-based scheduler::

    priority = weight x best seconds x expected relative gain of one more round
    expected gain = alpha x recent gain + (1 - alpha) x 1 / (rounds + 1)

The recent gain is the relative improvement of the task's best time per round over its last
``window`` rounds (backward estimate); ``1 / (rounds + 1)`` is what one more round gains if
latency falls like 1 / trials (forward estimate, which keeps exploring tasks that stalled in
proportion to their latency). A task whose search has nothing left to measure, or with no
correct candidate after ``retries`` rounds, gets no more rounds.

``tune_model(model, trials=..., db=...)`` extracts a model's tasks (``tasks.py``) and runs the
scheduler over one ``EvolutionarySearch`` per task (``search.py``), recording every measurement
in the database that ``tcomp.compile(model, db=...)`` then reads. A task's latency is the faster
of its best tuned schedule and its template kernel (measured once, a record of status
``"template"``): what the compiled model will run. After the search, the tuned kernels that
the compile would apply are timed between their neighbours in the model against the templates
(``in_model.py``), and those that do not win there are rejected (the template stays).
"""
from __future__ import annotations

import time
import warnings
from contextlib import nullcontext
from dataclasses import dataclass, field
from typing import Callable

from ..schedule.trace import Trace


@dataclass
class TaskState:
    """A task's record in the scheduler: best seconds after each of its rounds (None: no correct run yet)."""

    weight: int
    history: list = field(default_factory=list)
    trials: int = 0
    finished: bool = False

    @property
    def best(self) -> float | None:
        return self.history[-1] if self.history else None


class TaskScheduler:
    """Allocates measurement rounds to tasks of the given weights (how many kernels of the model run each)."""

    def __init__(self, weights, round_trials: int = 16, window: int = 3, alpha: float = 0.5, retries: int = 2):
        if not weights:
            raise ValueError("TaskScheduler needs at least one task")
        self.tasks = [TaskState(int(w)) for w in weights]
        self.round_trials, self.window, self.alpha, self.retries = round_trials, window, alpha, retries

    def estimated_latency(self) -> float:
        """Sum of weight x best seconds over the tasks with a correct run."""
        return sum(t.weight * t.best for t in self.tasks if t.best is not None)

    def expected_gain(self, index: int) -> float:
        """Expected relative improvement of the task's best time from one more round."""
        task = self.tasks[index]
        rounds = len(task.history)
        recent = 0.0
        span = min(self.window, rounds - 1)
        if span > 0 and task.history[-1 - span] is not None:
            before = task.history[-1 - span]
            recent = (before - task.best) / before / span
        return self.alpha * recent + (1 - self.alpha) / (rounds + 1)

    def priority(self, index: int) -> float:
        """Estimated end-to-end seconds saved by one more round of the task."""
        task = self.tasks[index]
        return task.weight * task.best * self.expected_gain(index)

    def next_task(self) -> int | None:
        """The task for the next round: a task without a round first, then the highest priority."""
        open_tasks = [i for i, t in enumerate(self.tasks) if not t.finished]
        for i in open_tasks:
            if not self.tasks[i].history:
                return i
        scored = [i for i in open_tasks if self.tasks[i].best is not None]
        if scored:
            return max(scored, key=self.priority)
        return open_tasks[0] if open_tasks else None  # none correct yet: retry in order

    def update(self, index: int, measured: int, best: float | None) -> None:
        """Records a round: how many candidates it measured and the task's best seconds since."""
        task = self.tasks[index]
        task.trials += measured
        task.history.append(best)
        if measured == 0 or (best is None and len(task.history) >= self.retries):
            task.finished = True

    def run(self, step: Callable, trials: int, on_round: Callable | None = None,
            may_start: Callable | None = None) -> None:
        """Spends up to ``trials`` measurements: ``step(index, n)`` measures up to ``n`` new
        candidates of task ``index`` and returns ``(measured, best seconds or None)``;
        ``on_round(index, measured)`` after each round; ``may_start(n)`` (a time budget) is
        asked before each round of ``n`` measurements and stops the run when False."""
        spent = 0
        while spent < trials:
            index = self.next_task()
            count = min(self.round_trials, trials - spent)
            if index is None or (may_start is not None and not may_start(count)):
                return
            measured, best = step(index, count)
            self.update(index, measured, best)
            spent += measured
            if on_round is not None:
                on_round(index, measured)


@dataclass
class TaskResult:
    """What tuning did for one task: seconds of its best tuned schedule and of its template (None:
    not measured or none correct), how many candidates were measured, and the in-model verdict of
    the best schedule (``in_model.py``; None where none was made): its status ("verified",
    "rejected"), the tuned and template kernels' seconds in the model (summed over the groups)."""

    task: object
    tuned: float | None
    template: float | None
    trials: int
    verdict: object = None   # the verdict TuningRecord: .status, .seconds (tuned), .baseline (template)

    @property
    def applied(self) -> bool:
        """Whether ``tcomp.compile(db=...)`` runs the tuned schedule: it measured faster than the
        template and the model did not reject it."""
        if self.tuned is None or (self.template is not None and self.template <= self.tuned):
            return False
        return self.verdict is None or self.verdict.status != "rejected"

    @property
    def best(self) -> float | None:
        """What the kernel takes after ``tcomp.compile(db=...)`` as the worker measured it: the
        tuned schedule where applied, else the template."""
        if self.applied:
            return self.tuned
        return self.template if self.template is not None else self.tuned


def tune_model(model, target: str = "cpu", trials: int = 512, db="tuning.db", input_shapes: dict | None = None,
               cost_model=None, round_trials: int = 16, batch_size: int = 16, seed: int | None = None,
               progress: bool = True, confirm_top: int = 5, confirm_rounds: int = 3,
               max_seconds: float | None = None, verify: bool = True) -> list:
    """Tunes the tasks of an ONNX model (path or ModelProto) or graph with ``trials``
    measurements in all; returns [TaskResult] (heaviest task first). Records go to ``db``
    (a path or a ``Database``), which ``tcomp.compile(model, target=target, db=db)`` applies.

    Each task's template kernel is measured once too (a record of status ``"template"``), so
    that compile keeps the template where the search found nothing faster. At the end each
    task's ``confirm_top`` fastest candidates are measured ``confirm_rounds`` more
    times (``search.confirm_best``), the template once in each of those rounds, and those
    medians pick its best. Then, with ``verify``, the tuned kernels that the compile would apply
    are timed in the model against the templates (``in_model.verify_in_model``; outside
    ``max_seconds``) and those that do not win there are rejected: the compile keeps their templates.

    ``max_seconds`` bounds the wall time: no round starts that would not leave time, at the
    seconds per trial seen so far, for the round and for confirming every searched task.

    A run on a database that earlier runs filled goes on from there: a task with search records
    enters the scheduler as having had a round (its best so far, its trials), so tasks that no
    run reached get their first rounds before any searched task gets another."""
    from .in_model import verify_in_model
    from .measure import Measurer
    from .search import EvolutionarySearch, confirm_best
    from .space import design_space
    from .tasks import database_target, extract_tasks, open_database, template_seconds
    from .tuner import _default_model

    tasks = extract_tasks(model, target, input_shapes)
    measure_target, target = target, database_target(target)  # e.g. "cuda -arch=sm_90", "cuda"
    database = open_database(db)
    cost_model = cost_model if cost_model is not None else _default_model(target)
    if not tasks:
        return []
    scheduler = TaskScheduler([t.weight for t in tasks], round_trials)
    searches: dict = {}
    bar = _progress_bar(trials, progress)

    def result(index) -> TaskResult:
        task = tasks[index]
        record = database.best(task.workload, target)
        verdict = database.verdict(task.workload, target, record.trace) if record is not None else None
        return TaskResult(task, record.seconds if record is not None else None,
                          template_seconds(database, task.workload, target), scheduler.tasks[index].trials, verdict)

    for index, task in enumerate(tasks):
        searched = sum(r.status != "template" and not r.confirmed for r in database.records(task.workload, target))
        if searched:
            scheduler.tasks[index].trials = searched
            scheduler.tasks[index].history.append(result(index).best)

    def step(index, count):
        task = tasks[index]
        try:
            if index not in searches:
                _measure_template(task, database, target, measure_target)
                searches[index] = EvolutionarySearch(task.func, design_space(task.func, target), cost_model,
                                                     Measurer(task.func, target=measure_target), database,
                                                     target=target, seed=seed)
            return searches[index].run(count, batch_size), result(index).best
        except Exception as exc:  # a bug in one task's search must not stop the model's tuning
            warnings.warn(f"tuning {task.name} ({task.group_labels[0]}) stopped: {type(exc).__name__}: {exc}")
            return 0, result(index).best
        finally:  # one measuring worker alive at a time; the next round starts a fresh one
            if index in searches:
                searches[index].measurer.close()

    def on_round(index, measured):
        if bar is not None:
            bar.update(measured)
            bar.set_postfix_str(f"{tasks[index].name}; model ~{scheduler.estimated_latency() * 1e3:.3f} ms")

    def confirm(index):
        task = tasks[index]
        try:
            template = Measurer(task.template, target=measure_target) if task.template is not None else nullcontext()
            with Measurer(task.func, target=measure_target) as measurer, template as template_measurer:
                confirm_best(task.func, measurer, database, target, confirm_top, confirm_rounds, template_measurer)
        except Exception as exc:  # noqa: BLE001 - as in step: the other tasks are confirmed still
            warnings.warn(f"measuring the best of {task.name} ({task.group_labels[0]}) again failed: "
                          f"{type(exc).__name__}: {exc}")

    start = time.perf_counter()

    def may_start(count: int) -> bool:
        spent = sum(t.trials for t in scheduler.tasks)
        if max_seconds is None or spent == 0:
            return True
        per_trial = (time.perf_counter() - start) / spent
        confirming = len(searches) * confirm_top if confirm_rounds else 0
        return time.perf_counter() - start + (count + confirming) * per_trial <= max_seconds

    try:
        scheduler.run(step, trials, on_round, may_start)
        for index in range(len(tasks)):  # all: a task searched by an interrupted run too
            confirm(index)
        if verify:
            if bar is not None:
                bar.set_postfix_str("timing the tuned kernels in the model")
            verify_in_model(model, tasks, database, target, measure_target, input_shapes)
    finally:
        if bar is not None:
            bar.close()
    return [result(index) for index in range(len(tasks))]


# Measurements of a template kernel (their median counts, like the re-measured tuned candidates').
TEMPLATE_MEASUREMENTS = 3


def _measure_template(task, database, target: str, measure_target: str) -> None:
    """Commits "template" records (under ``target``) of the task's template kernel, measured on
    ``measure_target`` (once per database)."""
    from .database import TuningRecord
    from .measure import Measurer
    from .tasks import template_seconds

    if task.template is None or template_seconds(database, task.workload, target) is not None:
        return
    with Measurer(task.template, target=measure_target) as measurer:
        results = measurer.measure([Trace()] * TEMPLATE_MEASUREMENTS)
    for measured in results:
        if measured.status == "ok":
            database.commit(TuningRecord(task.workload, target, Trace().to_json(), measured.seconds, "template"))


def report(results: list) -> str:
    """A per-kernel table: latency share (weight x kernel time over the sum), kernel time (what the
    compile runs: tuned where applied, else template), tuned and template times as the worker
    measured them, then the in-model verdict: the tuned and template kernels' times per group
    between their neighbours in the model and "kept" / "rejected" (- where none was made),
    weight, trials."""
    from .in_model import MARGIN

    total = sum(r.task.weight * r.best for r in results if r.best is not None)

    def ms(seconds):
        return f"{seconds * 1e3:10.4f}" if seconds is not None else f"{'-':>10}"

    lines = [f"{'kernel':<28} {'share':>7} {'kernel ms':>10} {'tuned ms':>10} {'template':>10} "
             f"{'model tuned':>11} {'model tmpl':>10} {'in model':>8} {'weight':>6} {'trials':>6}  groups"]
    for r in results:
        share = f"{100 * r.task.weight * r.best / total:6.1f}%" if r.best is not None and total else "      -"
        verdict = r.verdict
        in_model = (f"{ms(verdict.seconds / r.task.weight):>11} {ms(verdict.baseline / r.task.weight)} "
                    f"{'kept' if verdict.status == 'verified' else 'rejected':>8}") if verdict is not None else \
            f"{'-':>11} {'-':>10} {'-':>8}"
        lines.append(f"{r.task.name:<28} {share} {ms(r.best)} {ms(r.tuned)} {ms(r.template)} {in_model} "
                     f"{r.task.weight:>6} {r.trials:>6}  {r.task.group_labels[0]}")
    lines.append(f"estimated latency of these kernels: {total * 1e3:.4f} ms")
    verdicts = [r.verdict for r in results if r.verdict is not None]
    if verdicts:
        kept = [v for v in verdicts if v.status == "verified"]
        lines.append(f"in the model (medians of interleaved runs, per group): {len(kept)} of {len(verdicts)} tuned "
                     f"kernels kept, {sum(v.baseline - v.seconds for v in kept) * 1e3:.4f} ms saved; a kernel is "
                     f"kept where it takes at most {100 * (1 - MARGIN):.0f}% of its template's time")
    return "\n".join(lines)


def _progress_bar(total: int, enabled: bool):
    if not enabled or total == 0:
        return None
    from tqdm import tqdm

    return tqdm(total=total, desc="tuning", unit="trial")
