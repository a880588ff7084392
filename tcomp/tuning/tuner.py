"""``tcomp.tune``: tune PrimFuncs into a database that ``tcomp.build(func, db=...)`` reads.

    best = tcomp.tune(func, target="cpu", trials=64, db="tuning.db")   # {workload key: TuningRecord}
    kernel = tcomp.build(func, target="cpu", db="tuning.db")           # the best record applied
    tcomp.tune("model.onnx", trials=512, db="tuning.db")               # a whole model (task_scheduler)

Each distinct workload (``workload_key``) is searched by ``EvolutionarySearch`` until the
database holds ``trials`` measurements of it; then its ``confirm_top`` fastest candidates are
measured ``confirm_rounds`` more times each (``search.confirm_best``) and the best is chosen
by those medians. A second call with the same arguments measures nothing (and an interrupted
one goes on where it stopped).
"""
from __future__ import annotations

from ..errors import TcompError
from ..tir.stmt import PrimFunc
from .database import Database
from .tasks import database_target
from .workload import workload_key


def tune(func_or_funcs, target: str = "cpu", trials: int = 64, db="tuning.db", model=None,
         batch_size: int = 16, seed: int | None = None, progress: bool = True,
         confirm_top: int = 5, confirm_rounds: int = 3, max_seconds: float | None = None,
         verify: bool = True) -> dict:
    """Tunes each PrimFunc (one or a list) with up to ``trials`` measurements per workload.

    ``db``: a path or a ``Database``; ``model``: a ``CostModel`` (default: the pretrained one of
    ``target`` where shipped, else a fresh ``XGBModel``), trained online; ``confirm_top``,
    ``confirm_rounds``: how many of the fastest candidates are measured again at the end, how
    many times (0: none). Returns {workload key: best TuningRecord or None when no candidate
    ran correctly}.

    An ONNX model (path or ModelProto) is tuned as a whole instead, ``trials`` in all, shared by
    its kernels by the task scheduler (``task_scheduler.tune_model``, whose [TaskResult] this returns),
    within ``max_seconds`` of wall time where given; then, with ``verify``, its tuned kernels are
    timed in the model against the templates and the compile keeps the template wherever the tuned
    kernel does not win there (``in_model.py``).
    """
    if not isinstance(func_or_funcs, (PrimFunc, list, tuple)):
        from .task_scheduler import tune_model

        return tune_model(func_or_funcs, target, trials, db, cost_model=model, batch_size=batch_size,
                          seed=seed, progress=progress, confirm_top=confirm_top, confirm_rounds=confirm_rounds,
                          max_seconds=max_seconds, verify=verify)
    if max_seconds is not None:
        raise TcompError("tcomp.tune: max_seconds applies to whole models; a PrimFunc is tuned for `trials`")
    funcs = _funcs(func_or_funcs)
    measure_target, target = target, database_target(target)  # e.g. "cuda -arch=sm_90", "cuda"
    database = db if isinstance(db, Database) else Database(db)
    model = model if model is not None else _default_model(target)
    workloads: dict = {}
    for func in funcs:
        workloads.setdefault(workload_key(func), func)
    remaining = {key: max(0, trials - database.trials(key, target)) for key in workloads}
    bar = _progress_bar(sum(remaining.values()), progress)
    try:
        for key, func in workloads.items():
            _tune_one(func, target, measure_target, remaining[key], database, model, batch_size, seed, bar,
                      (confirm_top, confirm_rounds))
    finally:
        if bar is not None:
            bar.close()
    return {key: database.best(key, target) for key in workloads}


def _tune_one(func, target, measure_target, trials, database, model, batch_size, seed, bar, confirm) -> None:
    """Searches one workload for ``trials`` measurements (0: none) on ``measure_target``, records
    under ``target``, then confirms its best."""
    from .measure import Measurer
    from .search import EvolutionarySearch, confirm_best
    from .space import design_space

    with Measurer(func, target=measure_target) as measurer:  # starts a worker only when it measures
        if trials:
            search = EvolutionarySearch(func, design_space(func, target), model, measurer, database,
                                        target=target, seed=seed, first=_untuned_traces(func, measure_target))

            def on_batch(batch, results):
                if bar is not None:
                    bar.update(len(batch))
                    best = database.best(search.workload, target)
                    if best is not None:
                        bar.set_postfix_str(f"{func.name}: best {best.seconds * 1e3:.3f} ms")

            search.run(trials, batch_size, on_batch)
        if bar is not None:
            bar.set_postfix_str(f"{func.name}: measuring the best again")
        confirm_best(func, measurer, database, target, top=confirm[0], rounds=confirm[1])


def _untuned_traces(func, target: str) -> tuple:
    """On a GPU target, the trace of the tiled schedule an untuned compile gives such a product
    (``groups.tiled_trace``; measured first, so tuning keeps at least it); on the CPU none (its
    templates are not design-space traces)."""
    if target.split()[0] not in ("cuda", "webgpu"):
        return ()
    from ..targets.gpu.groups import tiled_trace

    trace = tiled_trace(func, target)
    return () if trace is None else (trace,)


def _funcs(func_or_funcs) -> list:
    funcs = [func_or_funcs] if isinstance(func_or_funcs, PrimFunc) else list(func_or_funcs)
    for func in funcs:
        if not isinstance(func, PrimFunc):
            raise TcompError(f"tcomp.tune takes a PrimFunc or a list of them, got {type(func).__name__}")
    return funcs


def _default_model(target: str):
    from ..costmodel.xgb import XGBModel, load_pretrained

    try:
        return load_pretrained(target)
    except FileNotFoundError:
        return XGBModel()


def _progress_bar(total: int, enabled: bool):
    if not enabled or total == 0:
        return None
    from tqdm import tqdm

    return tqdm(total=total, desc="tuning", unit="trial")
