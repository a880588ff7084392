"""GEMM 4096^3 on the GPU: tcomp.tune'd kernels for "cuda" side by side with torch.matmul (cuBLAS).

    python benchmarks/gpu.py [--n 4096] [--trials 96] [--minutes 7] [--db gpu_tuning.db] [--cases fp32,fp16]

Cases: ``fp32`` (C = A @ B in float32; torch with ``allow_tf32 = False``) and ``fp16``
(A, B float16, C accumulated and written in float32; torch.matmul of the float16 tensors,
which accumulates in float32 and writes float16). Each case is tuned with ``tcomp.tune`` up
to ``--trials`` measured candidates (in rounds of ``--batch-size``, stopping early when the
case's share of ``--minutes`` is spent; resumable through ``--db``), its best candidates
confirmed, then the best record is built (``tcomp.build(func, target="cuda", db=...)``) and
timed against torch.matmul, interleaved: ``--rounds`` rounds of (tcomp, torch), each a median
of ``--inner`` device-timed runs (CUDA events) after warm-up; the result is the median over
rounds. The tuned kernel's output is checked against torch's (relative error of the fp64
difference norm). Prints the device, driver, TFLOP/s and the ratio tcomp / cuBLAS.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def gemm_func(n: int, dtype: str):
    from tcomp import tir
    from tcomp.tir.expr import cast

    a = tir.placeholder((n, n), dtype, name="A")
    b = tir.placeholder((n, n), dtype, name="B")
    k = tir.reduce_axis(n, name="k")
    if dtype == "float32":
        c = tir.compute((n, n), lambda i, j: tir.sum(a[i, k] * b[k, j], axis=k), name="C")
    else:
        c = tir.compute((n, n), lambda i, j: tir.sum(cast("float32", a[i, k]) * cast("float32", b[k, j]), axis=k),
                        name="C")
    return tir.create_func([a, b, c], name=f"gemm_{dtype}")


def device_info() -> dict:
    from tcomp.targets.cuda.driver import _call, device_arch, device_name

    version = _call("cuDriverGetVersion")
    info = {"device": device_name(), "arch": device_arch(),
            "cuda_driver_api": f"{version // 1000}.{version % 1000 // 10}"}
    try:
        import subprocess

        info["driver"] = subprocess.run(["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
                                        capture_output=True, text=True, timeout=30).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        info["driver"] = "unknown (no nvidia-smi)"
    return info


def tune(func, trials: int, batch: int, db: str, seconds: float) -> dict:
    """Tunes in rounds of ``batch`` trials until ``trials`` or ``seconds`` run out, then confirms."""
    import tcomp
    from tcomp.tuning.database import Database
    from tcomp.tuning.workload import workload_key

    start, done = time.monotonic(), 0
    while done < trials and time.monotonic() - start < seconds:
        done = min(trials, done + batch)
        tcomp.tune(func, target="cuda", trials=done, db=db, batch_size=batch, seed=0, progress=False,
                   confirm_top=0)
        record = Database(db).best(workload_key(func), "cuda")
        print(f"  {func.name}: {done} trials, best {record.seconds * 1e3:.3f} ms" if record else
              f"  {func.name}: {done} trials, none correct yet", flush=True)
    tcomp.tune(func, target="cuda", trials=done, db=db, progress=False, confirm_top=3, confirm_rounds=3)
    return {"trials": done, "tuning_s": time.monotonic() - start}


def compare(func, n: int, dtype: str, db: str, rounds: int, inner: int) -> dict:
    import torch

    import tcomp
    from tcomp.targets.cuda.driver import elapsed_seconds, synchronize

    kernel = tcomp.build(func, target="cuda", db=db)
    rng = np.random.default_rng(0)
    a = rng.standard_normal((n, n)).astype(dtype)
    b = rng.standard_normal((n, n)).astype(dtype)
    c = np.empty((n, n), dtype=np.float32)
    kernel(a, b, c)
    ta, tb = torch.from_numpy(a).cuda(), torch.from_numpy(b).cuda()
    torch.backends.cuda.matmul.allow_tf32 = False
    reference = (ta.double() @ tb.double()).cpu().numpy()
    error = float(np.linalg.norm(c - reference) / np.linalg.norm(reference))
    torch_error = float(np.linalg.norm(torch.matmul(ta, tb).double().cpu().numpy() - reference)
                        / np.linalg.norm(reference))
    launches, memory = kernel._prepare([a, b, c])  # device copies stay alive while timing

    def ours():
        synchronize()
        return statistics.median(elapsed_seconds(lambda: kernel._launch(launches)) for _ in range(inner))

    def theirs():
        torch.cuda.synchronize()
        times = []
        for _ in range(inner):
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            torch.matmul(ta, tb)
            end.record()
            end.synchronize()
            times.append(start.elapsed_time(end) / 1e3)
        return statistics.median(times)

    for _ in range(3):
        ours(), theirs()
    samples = {"tcomp": [], "torch": []}
    for _ in range(rounds):
        samples["tcomp"].append(ours())
        samples["torch"].append(theirs())
    del memory
    flops = 2.0 * n ** 3
    result = {name: statistics.median(s) for name, s in samples.items()}
    return {"seconds": result, "tflops": {k: flops / v / 1e12 for k, v in result.items()},
            "ratio": result["torch"] / result["tcomp"], "rel_error": error, "torch_rel_error": torch_error}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=4096)
    parser.add_argument("--trials", type=int, default=96)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--minutes", type=float, default=7.0, help="tuning wall time for all cases together")
    parser.add_argument("--db", default="gpu_tuning.db")
    parser.add_argument("--cases", default="fp32,fp16")
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--inner", type=int, default=10)
    args = parser.parse_args()

    info = device_info()
    try:
        import torch

        info["torch"] = f"{torch.__version__} (cuda {torch.version.cuda})"
    except ImportError:
        torch = None
        info["torch"] = "not installed: no cuBLAS comparison"
    print(" ".join(f"{k}={v}" for k, v in info.items()), flush=True)
    cases = [c for c in args.cases.split(",") if c]
    dtypes = {"fp32": "float32", "fp16": "float16"}
    rows = []
    for index, case in enumerate(cases):
        func = gemm_func(args.n, dtypes[case])
        share = args.minutes * 60 / len(cases)
        print(f"tuning {case} ({args.trials} trials at most, {share:.0f} s)", flush=True)
        tuned = tune(func, args.trials, args.batch_size, args.db, share)
        if torch is None:
            continue
        result = compare(func, args.n, dtypes[case], args.db, args.rounds, args.inner)
        rows.append((case, tuned, result))
    print(f"\nGEMM {args.n}^3 on {info['device']} (driver {info['driver']}), median of {args.rounds} interleaved "
          f"rounds x {args.inner} runs")
    print(f"{'case':6} {'trials':>6} {'tune s':>7} {'tcomp TFLOP/s':>14} {'cuBLAS TFLOP/s':>15} {'ratio':>6} "
          f"{'rel err':>9} {'torch err':>9}")
    for case, tuned, r in rows:
        print(f"{case:6} {tuned['trials']:6d} {tuned['tuning_s']:7.0f} {r['tflops']['tcomp']:14.1f} "
              f"{r['tflops']['torch']:15.1f} {r['ratio']:6.2f} {r['rel_error']:9.2e} {r['torch_rel_error']:9.2e}")


if __name__ == "__main__":
    main()
