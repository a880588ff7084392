"""GEMM 1024^3 float32 tuned by tcomp.tune, then timed against numpy, onnxruntime and the untuned compiler.

    python benchmarks/tune_gemm.py [--n 1024] [--trials 256] [--batch-size 16] [--db tune_gemm.db]

Tunes C = A @ B (at most ``--trials`` measured candidates, resumable through ``--db``), then
times, interleaved in separate processes (interleave.py: A B C D A B ..., median after warm-up
rounds): the tuned kernel (``tcomp.build(func, db=...)``), numpy's matmul, onnxruntime's MatMul
and ``tcomp.compile`` of a one-MatMul ONNX model (the default model-compiler GEMM), all on every
core. Prints GFLOP/s, the tuned kernel's ratio to the best of numpy and onnxruntime, and the
tuning wall time.
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from gemm_cpu import _feeds, setup_numpy, setup_onnxruntime, setup_tcomp
from interleave import interleaved_medians


def gemm_func(n: int):
    from tcomp import tir

    a = tir.placeholder((n, n), "float32", name="A")
    b = tir.placeholder((n, n), "float32", name="B")
    k = tir.reduce_axis(n, name="k")
    c = tir.compute((n, n), lambda i, j: tir.sum(a[i, k] * b[k, j], axis=k), name="C")
    return tir.create_func([a, b, c])


def setup_tuned(n: int, threads: int, db: str):
    import tcomp

    kernel = tcomp.build(gemm_func(n), db=db, num_threads=threads)
    feeds = _feeds(n)
    out = np.empty((n, n), dtype=np.float32)

    def run():
        kernel(feeds["a"], feeds["b"], out)
        return out

    return {}, run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=1024)
    parser.add_argument("--trials", type=int, default=256)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--db", default=None, help="tuning database (default: a fresh temporary file)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--repeat", type=int, default=15)
    args = parser.parse_args()
    import tcomp
    from tcomp.tuning.database import Database
    from tcomp.tuning.workload import workload_key

    n, threads = args.n, len(os.sched_getaffinity(0))
    db = args.db or os.path.join(tempfile.mkdtemp(prefix="tune_gemm_"), "tuning.db")
    func = gemm_func(n)
    start = time.perf_counter()
    tcomp.tune(func, trials=args.trials, db=db, batch_size=args.batch_size, seed=args.seed)
    tuning_s = time.perf_counter() - start
    records = [r for r in Database(db).records(workload_key(func), "cpu") if not r.confirmed]
    best = Database(db).best(workload_key(func), "cpu")
    ok = sum(r.status == "ok" for r in records)
    print(f"tuning: {len(records)} trials measured ({ok} ok), the best re-measured, in {tuning_s:.1f} s wall; "
          f"db {db}")
    if best is None:
        print("no candidate ran correctly: nothing to time")
        return
    print(f"best during tuning (re-measured median): {2 * n**3 / best.seconds / 1e9:.1f} GFLOP/s")

    systems = {"tuned": (setup_tuned, (n, threads, db)), "numpy": (setup_numpy, (n, threads)),
               "ort": (setup_onnxruntime, (n, threads)), "compile": (setup_tcomp, (n, threads))}
    medians, _, outputs = interleaved_medians(systems, args.repeat)
    for name in ("tuned", "compile"):
        np.testing.assert_allclose(outputs[name], outputs["numpy"], rtol=1e-3, atol=1e-2)
    gflops = {key: 2 * n**3 / t / 1e9 for key, t in medians.items()}
    best_peer = max(gflops["numpy"], gflops["ort"])
    print(f"threads: {threads}; median GFLOP/s over {args.repeat} interleaved rounds (n = {n})")
    print(f"{'tuned':>8s} {'numpy':>8s} {'ort':>8s} {'compile':>8s} {'tuned/best(numpy,ort)':>22s}")
    print(f"{gflops['tuned']:8.1f} {gflops['numpy']:8.1f} {gflops['ort']:8.1f} {gflops['compile']:8.1f} "
          f"{gflops['tuned'] / best_peer:22.2f}")


if __name__ == "__main__":
    main()
