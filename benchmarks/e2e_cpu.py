"""End-to-end CPU latency: tcomp (untuned) vs onnxruntime vs PyTorch eager, measured in one run.

    python benchmarks/e2e_cpu.py [--models resnet18 bert ...] [--repeat 20] [--small]

Each model is exported once (cached in --cache-dir) from transformers with random
weights. After warm-up the three systems run interleaved (A B C A B C ...) and the
median of each is reported, with ratios to onnxruntime. Threads: all cores for
every system (onnxruntime intra-op threads and torch.set_num_threads set alike).
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from model_zoo import MODEL_NAMES, build_torch_model, export_model, random_inputs  # noqa: E402

import tcomp  # noqa: E402


def _timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def bench_model(name: str, small: bool, cache_dir: Path, repeat: int, warmup: int, threads: int) -> dict:
    import onnxruntime
    import torch

    path = export_model(name, cache_dir, small=small)
    start = time.perf_counter()
    mod = tcomp.compile(str(path), target="cpu", num_threads=threads)
    compile_s = time.perf_counter() - start

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = threads
    session = onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    torch.set_num_threads(threads)
    model = build_torch_model(name, small)
    feeds = random_inputs(path, np.random.default_rng())
    torch_args = [torch.from_numpy(feeds[n]) for n in mod.input_names]

    def run_torch():
        with torch.inference_mode():
            model(*torch_args)

    systems = {"tcomp": lambda: mod.run(feeds), "onnxruntime": lambda: session.run(None, feeds),
               "torch": run_torch}
    ours, ref = mod.run(feeds)[0], session.run(None, feeds)[0]
    rel = float(np.linalg.norm(ours - ref) / np.linalg.norm(ref))
    for fn in systems.values():
        for _ in range(warmup):
            fn()
    times = {key: [] for key in systems}
    for _ in range(repeat):
        for key, fn in systems.items():
            times[key].append(_timed(fn))
    medians = {key: float(np.median(t)) for key, t in times.items()}
    return {"model": name + ("_small" if small else ""), "compile_s": compile_s, "rel_err": rel,
            "peak_mib": mod.memory_plan.arena_bytes / 2**20, **medians}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", default=list(MODEL_NAMES), choices=MODEL_NAMES)
    parser.add_argument("--repeat", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--small", action="store_true", help="CI-sized variants of the models")
    parser.add_argument("--threads", type=int, default=len(os.sched_getaffinity(0)))
    parser.add_argument("--cache-dir", type=Path, default=Path("/tmp/tcomp-bench-models"))
    args = parser.parse_args()

    header = (f"{'model':14s} {'compile s':>9s} {'tcomp ms':>9s} {'ort ms':>8s} {'torch ms':>9s} "
              f"{'tcomp/ort':>9s} {'tcomp/torch':>11s} {'peak MiB':>8s} {'rel err':>8s}")
    print(f"threads: {args.threads}, repeat: {args.repeat} (interleaved, medians)")
    print(header)
    print("-" * len(header))
    for name in args.models:
        r = bench_model(name, args.small, args.cache_dir, args.repeat, args.warmup, args.threads)
        print(f"{r['model']:14s} {r['compile_s']:9.1f} {r['tcomp'] * 1e3:9.2f} {r['onnxruntime'] * 1e3:8.2f} "
              f"{r['torch'] * 1e3:9.2f} {r['tcomp'] / r['onnxruntime']:9.2f} {r['tcomp'] / r['torch']:11.2f} "
              f"{r['peak_mib']:8.1f} {r['rel_err']:8.1e}", flush=True)


if __name__ == "__main__":
    main()
