"""Whole models tuned by tcomp, then timed against onnxruntime and the untuned compile in one run.

    python benchmarks/tune_models.py --models resnet18 bert [--minutes 30] [--trials 2000] [--repeat 15]

For each model (exported once into --cache-dir, as benchmarks/e2e_cpu.py does): ``tcomp.tune`` of
the whole model (``task_scheduler.tune_model``: at most --trials measurements and --minutes of wall
time, confirming each kernel's best at the end, inside the budget; then the tuned kernels timed in
the model against the templates, ``tuning/in_model.py``, outside the budget: the compile keeps the
template where a tuned kernel does not win there) into ``<db-dir>/<model>.db``; a database that
exists already is resumed where it holds fewer trials (``--no-tune``: only time).
Then four systems run interleaved in their own processes (``interleave.py``), 2 threads each:
the tuned compile (``tcomp.compile(model, db=...)``), the untuned compile (schedules predicted
by the shipped cost model), the templates alone (``schedule="template"``), and onnxruntime.
The table shows the tuning wall time (- with --no-tune), the trials in the database, medians,
and the ratios to onnxruntime.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parent / "tests")]

from e2e_cpu import setup_onnxruntime  # noqa: E402
from interleave import interleaved_medians  # noqa: E402
from model_zoo import MODEL_NAMES, export_model, random_inputs  # noqa: E402


def setup_tcomp(name: str, small: bool, path: str, threads: int, db: str | None, schedule: str = "predicted"):
    import tcomp

    mod = tcomp.compile(path, target="cpu", num_threads=threads, db=db, schedule=schedule)
    tuned = sum(len(k.groups) for k in mod.kernels.values() if k.func.attrs.get("tuned"))
    feeds = random_inputs(path, np.random.default_rng(0))
    return {"tuned_groups": tuned, "groups": len(mod.groups)}, lambda: mod.run(feeds)[0]


def tune(path: str, db: Path, trials: int, minutes: float, seed: int) -> float:
    """Tunes the model into ``db`` (resumed); the wall time."""
    from tcomp.tuning.task_scheduler import report, tune_model

    start = time.perf_counter()
    results = tune_model(path, trials=trials, db=str(db), seed=seed, max_seconds=minutes * 60)
    seconds = time.perf_counter() - start
    print(report(results), flush=True)
    return seconds


def measured_trials(db: Path) -> int:
    """Candidates the searches measured into ``db`` (template measurements and confirmations left out)."""
    from tcomp.tuning.database import Database

    if not db.exists():
        return 0
    database = Database(db)
    records = [r for key in database.workloads() for r in database.records(*key)]
    return sum(r.status != "template" and not r.confirmed for r in records)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", default=["resnet18", "bert"], choices=MODEL_NAMES)
    parser.add_argument("--trials", type=int, default=2000)
    parser.add_argument("--minutes", type=float, default=30.0)
    parser.add_argument("--repeat", type=int, default=15)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=len(os.sched_getaffinity(0)))
    parser.add_argument("--no-tune", action="store_true", help="time the databases as they are")
    parser.add_argument("--db-dir", type=Path, default=Path("/tmp/tcomp-tuning"))
    parser.add_argument("--cache-dir", type=Path, default=Path("/tmp/tcomp-bench-models"))
    args = parser.parse_args()
    args.db_dir.mkdir(parents=True, exist_ok=True)

    rows = []
    for name in args.models:
        path = str(export_model(name, args.cache_dir))
        db = args.db_dir / f"{name}.db"
        seconds = None if args.no_tune else tune(path, db, args.trials, args.minutes, args.seed)
        tuning = {"seconds": seconds, "trials": measured_trials(db)}
        common = (name, False, path, args.threads)
        systems = {"tuned": (setup_tcomp, common + (str(db),)), "untuned": (setup_tcomp, common + (None,)),
                   "template": (setup_tcomp, common + (None, "template")),
                   "onnxruntime": (setup_onnxruntime, common)}
        t, infos, outputs = interleaved_medians(systems, args.repeat)
        ref = outputs["onnxruntime"]
        rel = float(np.linalg.norm(outputs["tuned"] - ref) / np.linalg.norm(ref))
        rows.append((name, tuning, t, infos["tuned"], rel))

    print(f"\nthreads: {args.threads}; medians over {args.repeat} interleaved rounds")
    header = (f"{'model':12s} {'tuning s':>8s} {'trials':>6s} {'tuned groups':>12s} {'tuned ms':>9s} "
              f"{'untuned ms':>10s} {'template ms':>11s} {'ort ms':>8s} {'tuned/ort':>9s} {'untuned/ort':>11s} {'rel err':>8s}")
    print(header)
    print("-" * len(header))
    for name, tuning, t, info, rel in rows:
        seconds = f"{tuning['seconds']:8.0f}" if tuning["seconds"] is not None else f"{'-':>8s}"
        print(f"{name:12s} {seconds} {tuning['trials']:6d} "
              f"{info['tuned_groups']:>5d} of {info['groups']:<4d} {t['tuned'] * 1e3:9.2f} {t['untuned'] * 1e3:10.2f} "
              f"{t['template'] * 1e3:11.2f} "
              f"{t['onnxruntime'] * 1e3:8.2f} {t['tuned'] / t['onnxruntime']:9.2f} "
              f"{t['untuned'] / t['onnxruntime']:11.2f} {rel:8.1e}")


if __name__ == "__main__":
    main()
