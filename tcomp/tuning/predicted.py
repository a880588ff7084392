"""Untuned schedules picked by the shipped cost model: what ``tcomp.compile`` runs without tuning.

    choose = PredictedSchedules(target)      # a resolved CPU target (lanes, threads); db=, model=
    func = choose(group)                     # a scheduled task function, or None: the template

For each fused group that is a tuning task (``tasks.group_func``; work at least ``MIN_WORK``
iterations) the candidates are the group's template kernel (``schedule/lower.py``, what a
compile without the cost model runs) and the ``TOP`` best predicted candidates of the task's
design space, found by the search's evolution (``EvolutionarySearch.predicted``: random
samples of the sketches, mutated over a few generations, scored by the model; nothing is
measured). The pretrained model (``costmodel/pretrained/<target>.json``) scores them all as
candidates of one kernel, which is what it was trained to rank; the best predicted is chosen
where the model predicts it at least ``MARGIN`` (1.5x) faster than the template, else the
template stays: the model's pick on held-out kernels is 1.06x the best measured on average, and on
schedules unlike its training data it errs by more (ResNet-18's direct conv templates ran 1.15-1.3x
faster than the candidates it predicted 1.35x faster than them), while the templates are safe::

    group MatMul+Add (128x768 @ 768x3072)
      template                         score -0.41
      sketch 2, tiles [4,2,16,..] ...  score  0.02   <- chosen (0.43 > MARGIN): lowered like a tuned record
      ...

Everything is deterministic (fixed seed) and each workload is predicted once per compile
(the layers of a transformer share one choice). Groups below ``MIN_WORK`` keep the template
without loading the model: the many tiny kernels of small models (and the ONNX node tests)
compile as fast as before. With a tuning database, a workload that has records there is
decided by them instead (``tasks.tuned_group_func``: the best tuned record, or the template
where it measured faster): measurements win over predictions.
"""
from __future__ import annotations

import math

from ..schedule.lower import lower_group
from ..tir.stmt import BlockRealize, BufferStore, For
from ..tir.transform import stmt_children
from .tasks import group_func, scheduled_task, template_seconds, tuned_group_func
from .workload import workload_key

# Iterations (sum over the task's statements of their loop trip counts: multiply-adds of a
# matmul, elements of an elementwise kernel) below which the template is kept: 2**20 is a
# matmul of 128x128x64, about 10 microseconds, where schedules differ by microseconds.
MIN_WORK = 2 ** 20
SEED = 0            # of the evolution: the same model and task give the same choice
POPULATION = 16     # evolution of the prediction (the search: 48 and 3 generations); compile time
GENERATIONS = 2
TOP = 8             # best predicted design-space candidates scored next to the template
MARGIN = math.log(1.5)  # predicted log-throughput gain over the template that a candidate needs


class PredictedSchedules:
    """``group -> PrimFunc or None`` for ``tcomp.compile``: the predicted-best schedule of a task
    group, or None where the template stays (see the module docstring)."""

    def __init__(self, target, db=None, db_target: str = "cpu", model=None):
        """``db``: a ``Database`` whose records (of target ``db_target``) win; ``model``: a
        ``CostModel`` (default: the pretrained CPU model, loaded on first use)."""
        self.target, self.db, self.db_target = target, db, db_target
        self._model = model
        self._choices: dict = {}   # workload -> trace JSON of the chosen candidate, None: template

    @property
    def model(self):
        """The cost model, loaded on first use (no task above ``MIN_WORK``: never)."""
        if self._model is None:
            from ..costmodel.xgb import load_pretrained

            self._model = load_pretrained("cpu")
        return self._model

    def __call__(self, group):
        func = group_func(group)
        if func is None:
            return None
        workload = workload_key(func)
        if self.db is not None and (self.db.best(workload, self.db_target) is not None
                                    or template_seconds(self.db, workload, self.db_target) is not None):
            return tuned_group_func(group, self.db, self.db_target, func)
        if iterations(func) < MIN_WORK:
            return None
        if workload not in self._choices:
            template = lower_group(group, "template", self.target.lanes(32), self.target.num_threads)
            self._choices[workload] = self.choose(func, template)
        trace = self._choices[workload]
        return scheduled_task(group, func, trace, {"predicted": workload}) if trace is not None else None

    def choose(self, func, template) -> str | None:
        """The trace JSON of the best predicted candidate of ``func``'s design space, or None where
        the model does not score it ``MARGIN`` above ``template``."""
        scored = ranked_candidates(func, self.model)
        if not scored:
            return None
        template_score = float(self.model.predict([template])[0])
        score, best = scored[0]
        return best.key if score > template_score + MARGIN else None


def ranked_candidates(func, model, target: str = "cpu", top: int = TOP) -> list:
    """The ``top`` best predicted candidates of ``func``'s design space as (score, Candidate),
    best first (the search's evolution with the compile's fixed seed and sizes)."""
    from .search import EvolutionarySearch
    from .space import design_space

    search = EvolutionarySearch(func, design_space(func, target), model, target=target, seed=SEED,
                                population=POPULATION, generations=GENERATIONS)
    return search.predicted(top)


def iterations(func) -> int:
    """Sum over the stores of ``func``'s block bodies of their enclosing loops' trip counts (a
    symbolic extent counts as ``MIN_WORK``); reduction inits are not counted."""
    total = 0

    def visit(stmt, trip):
        nonlocal total
        if isinstance(stmt, For):
            visit(stmt.body, trip * (stmt.extent.value if hasattr(stmt.extent, "value") else MIN_WORK))
        elif isinstance(stmt, BlockRealize):
            visit(stmt.block.body, trip)
        elif isinstance(stmt, BufferStore):
            total += trip
        else:
            for child in stmt_children(stmt):
                visit(child, trip)

    visit(func.body, 1)
    return total


__all__ = ["PredictedSchedules", "ranked_candidates", "iterations", "MIN_WORK"]
