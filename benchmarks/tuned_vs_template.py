"""A tuning database's best kernels against their templates, timed hot and with caches cold.

    python benchmarks/tuned_vs_template.py --model resnet18 --db /tmp/r18_tune/resnet18.db [--tasks KEY ...] [--runs 30]

For each task of the model (``tuning/tasks.extract_tasks``) that has a best record in ``--db`` (or
each task whose workload key starts with one of ``--tasks``): its template kernel and its best
record, built here on 2 threads, each timed ``--runs`` times (median, ms) in two ways, one after
the other: hot (the same arrays again and again, as the tuner's worker timed until 6d4f1ce) and
cold (64 MB written before each run, ``tuning/worker.py``'s ``FLUSH_BYTES``, as the worker times
now). ``benchmarks/profile_cpu.py --db`` gives what the same kernels take in the model.
"""
from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE.parent), str(HERE.parent / "tests")]

from model_zoo import MODEL_NAMES, export_model  # noqa: E402


def median_ms(kernel, arrays: list, runs: int, flush: np.ndarray | None) -> float:
    kernel.time(*arrays, repeat=3, warmup=3)
    samples = []
    for _ in range(runs):
        if flush is not None:
            np.add(flush, 1.0, out=flush)
        samples.append(kernel.time(*arrays, repeat=1, warmup=0))
    return statistics.median(samples) * 1e3


def main() -> None:
    import tcomp
    from tcomp.schedule.trace import Trace
    from tcomp.tuning.database import Database
    from tcomp.tuning.tasks import extract_tasks
    from tcomp.tuning.worker import FLUSH_BYTES

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="resnet18", choices=MODEL_NAMES)
    parser.add_argument("--db", required=True)
    parser.add_argument("--tasks", nargs="+", default=[], help="workload key prefixes (default: every tuned task)")
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--cache-dir", type=Path, default=Path("/tmp/tcomp-bench-models"))
    args = parser.parse_args()

    db = Database(args.db)
    flush = np.zeros(FLUSH_BYTES // 4, np.float32)
    rng = np.random.default_rng(0)
    print(f"{'task':28s} {'group':16s} {'template hot':>12s} {'tuned hot':>10s} {'template cold':>13s} {'tuned cold':>10s}")
    for task in extract_tasks(str(export_model(args.model, args.cache_dir))):
        record = db.best(task.workload, "cpu")
        wanted = any(task.workload.startswith(p) for p in args.tasks) if args.tasks else record is not None
        if not wanted or record is None or task.template is None:
            continue
        kernels = [(tcomp.build(task.template, "cpu", num_threads=args.threads), task.template),
                   (tcomp.build(Trace.from_json(record.trace).apply_to(task.func).func, "cpu",
                                num_threads=args.threads), task.func)]
        times = {}
        for mode in ("hot", "cold"):
            for name, (kernel, func) in zip(("template", "tuned"), kernels):
                arrays = [rng.standard_normal([int(d.value) for d in p.shape]).astype(p.dtype) for p in func.params]
                times[name, mode] = median_ms(kernel, arrays, args.runs, flush if mode == "cold" else None)
        print(f"{task.name:28s} {task.group_labels[0][:16]:16s} {times['template', 'hot']:12.3f} "
              f"{times['tuned', 'hot']:10.3f} {times['template', 'cold']:13.3f} {times['tuned', 'cold']:10.3f}", flush=True)


if __name__ == "__main__":
    main()
