"""GEMM 1024^3 float32: tcomp.tune vs Apache TVM's MetaSchedule under the same trial budget.

    pip install apache-tvm==0.27 apache-tvm-ffi==0.1.14.post0 psutil   # not a tcomp dependency
    python benchmarks/metaschedule_gemm.py [--trials 64] [--n 1024] [--work-dir DIR]

Tunes C = A @ B with MetaSchedule (``tune_tir``, ``--trials`` as ``max_trials_global``,
``--ms-batch`` candidates per iteration: its default 64) and with ``tcomp.tune`` (``--trials``
measured candidates, ``--batch-size`` per batch, as in tune_gemm.py), one after the other,
recording each tuning's wall time. Then times both best kernels and numpy, interleaved in
separate processes (interleave.py: A B C A B C ..., median after warm-up rounds), every one on
all cores, checks both outputs against numpy and prints: system, trials, tuning wall s, GFLOP/s.

TVM's target is ``{"kind": "llvm", "mcpu": <llvmlite's host CPU name>, "num-cores": <cores>}``.
MetaSchedule's LocalBuilder starts a fresh worker pool for every batch and each worker imports
``tvm.s_tir.tensor_intrin`` (about 20 s here), so its builder timeout is raised from 30 s to
``--ms-build-timeout`` (a loaded 2-core machine otherwise loses whole batches to the timeout).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from gemm_cpu import _feeds, setup_numpy
from interleave import interleaved_medians
from tune_gemm import gemm_func, setup_tuned

INSTALL_HINT = "pip install apache-tvm==0.27 apache-tvm-ffi==0.1.14.post0 psutil"


def _meta_schedule():
    """Returns (tvm, meta_schedule module), or exits with an install hint when TVM is missing."""
    try:
        import tvm
    except ImportError:
        sys.exit(f"Apache TVM is not installed (it is no tcomp dependency); install it with:\n  {INSTALL_HINT}")
    try:
        import tvm.s_tir.meta_schedule as ms
    except ImportError:
        import tvm.meta_schedule as ms
    return tvm, ms


def tvm_target(threads: int) -> dict:
    """The TVM target of this host: LLVM for llvmlite's host CPU name, ``threads`` cores."""
    import llvmlite.binding as llvm

    return {"kind": "llvm", "mcpu": llvm.get_host_cpu_name(), "num-cores": threads}


def tvm_gemm(n: int):
    """C = A @ B as a TVM IRModule (one PrimFunc, ``main``)."""
    tvm, _ = _meta_schedule()
    from tvm import te

    a = te.placeholder((n, n), "float32", name="A")
    b = te.placeholder((n, n), "float32", name="B")
    k = te.reduce_axis((0, n), name="k")
    c = te.compute((n, n), lambda i, j: te.sum(a[i, k] * b[k, j], axis=k), name="C")
    return tvm.IRModule({"main": te.create_prim_func([a, b, c])})


def tune_metaschedule(n: int, threads: int, trials: int, batch: int, work_dir: str, build_timeout: float,
                      seed: int) -> float:
    """Tunes the GEMM with MetaSchedule into ``work_dir`` (a JSON database); returns wall seconds."""
    tvm, ms = _meta_schedule()
    builder = ms.builder.LocalBuilder(timeout_sec=build_timeout)
    start = time.perf_counter()
    ms.tune_tir(tvm_gemm(n), tvm.target.Target(tvm_target(threads)), work_dir, max_trials_global=trials,
                num_trials_per_iter=batch, builder=builder, seed=seed)
    return time.perf_counter() - start


def metaschedule_trials(work_dir: str) -> tuple:
    """(records, records that ran) in a MetaSchedule work directory's tuning records."""
    records = [json.loads(line)[1] for line in Path(work_dir, "database_tuning_record.json").read_text().splitlines()]
    ran = sum(bool(run_secs) and min(run_secs) < 1e9 for _, run_secs, *_ in records)  # failures record 1e10
    return len(records), ran


def setup_metaschedule(n: int, threads: int, work_dir: str):
    """Worker setup: the best MetaSchedule record applied and compiled; run() -> C as numpy."""
    tvm, ms = _meta_schedule()
    target = tvm.target.Target(tvm_target(threads))
    database = ms.database.JSONDatabase(work_dir=work_dir)
    sch = ms.tir_integration.compile_tir(database, tvm_gemm(n), target)
    if sch is None:
        raise RuntimeError(f"MetaSchedule's database in {work_dir} has no valid record")
    kernel = tvm.compile(sch.mod, target)
    feeds = _feeds(n)
    dev = tvm.cpu()
    a, b = tvm.runtime.tensor(feeds["a"], dev), tvm.runtime.tensor(feeds["b"], dev)
    c = tvm.runtime.tensor(np.empty((n, n), dtype=np.float32), dev)

    def run():
        kernel(a, b, c)
        return c.numpy()

    return {}, run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=1024)
    parser.add_argument("--trials", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=16, help="tcomp candidates per measured batch")
    parser.add_argument("--ms-batch", type=int, default=64, help="MetaSchedule num_trials_per_iter")
    parser.add_argument("--ms-build-timeout", type=float, default=120.0)
    parser.add_argument("--work-dir", default=None, help="where both databases go (default: a fresh temporary one)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--repeat", type=int, default=15)
    args = parser.parse_args()
    _meta_schedule()
    import tcomp
    from tcomp.tuning.database import Database
    from tcomp.tuning.workload import workload_key

    n, threads = args.n, len(os.sched_getaffinity(0))
    work_dir = args.work_dir or tempfile.mkdtemp(prefix="metaschedule_gemm_")
    ms_dir, db = os.path.join(work_dir, "metaschedule"), os.path.join(work_dir, "tcomp.db")
    print(f"target: {tvm_target(threads)}; work dir {work_dir}", flush=True)

    ms_seconds = tune_metaschedule(n, threads, args.trials, args.ms_batch, ms_dir, args.ms_build_timeout, args.seed)
    ms_records, ms_ran = metaschedule_trials(ms_dir)
    print(f"MetaSchedule: {ms_records} trials ({ms_ran} ran) in {ms_seconds:.1f} s wall", flush=True)

    func = gemm_func(n)
    start = time.perf_counter()
    tcomp.tune(func, trials=args.trials, db=db, batch_size=args.batch_size, seed=args.seed, progress=False)
    tcomp_seconds = time.perf_counter() - start
    records, searched = Database(db).records(workload_key(func), "cpu"), Database(db).trials(workload_key(func), "cpu")
    print(f"tcomp: {searched} trials ({sum(r.status == 'ok' and not r.confirmed for r in records)} ok) and "
          f"{len(records) - searched} confirmation re-measurements in {tcomp_seconds:.1f} s wall", flush=True)

    systems = {"metaschedule": (setup_metaschedule, (n, threads, ms_dir)),
               "tcomp": (setup_tuned, (n, threads, db)), "numpy": (setup_numpy, (n, threads))}
    medians, _, outputs = interleaved_medians(systems, args.repeat)
    for name in ("metaschedule", "tcomp"):
        np.testing.assert_allclose(outputs[name], outputs["numpy"], rtol=1e-3, atol=1e-2)
    gflops = {key: 2 * n**3 / t / 1e9 for key, t in medians.items()}
    rows = [("TVM MetaSchedule 0.27", str(ms_records), f"{ms_seconds:.1f}", gflops["metaschedule"]),
            ("tcomp.tune", str(searched), f"{tcomp_seconds:.1f}", gflops["tcomp"]),
            ("numpy (reference)", "-", "-", gflops["numpy"])]
    print(f"n = {n}, threads: {threads}; median GFLOP/s over {args.repeat} interleaved rounds; "
          "outputs match numpy")
    print(f"{'system':<22s} {'trials':>6s} {'tuning wall s':>14s} {'GFLOP/s':>8s}")
    for name, trials, seconds, rate in rows:
        print(f"{name:<22s} {trials:>6s} {seconds:>14s} {rate:8.1f}")


if __name__ == "__main__":
    main()
