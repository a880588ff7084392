"""End-to-end CPU latency: tcomp (untuned) vs onnxruntime vs PyTorch eager, measured in one run.

    python benchmarks/e2e_cpu.py [--models resnet18 bert ...] [--repeat 20] [--small]

Each model is exported once (cached in --cache-dir) from transformers with random
weights. Each system lives in its own worker process (so that one system's spinning
thread pool never competes with another's); the parent asks them in turn, A B C A B C
..., for a round: one untimed run (threads wake, weights return to cache), then three
timed runs whose median is the round's sample. Reported: the median over rounds, and
ratios to onnxruntime. Threads: all cores for every system.
"""
from __future__ import annotations

import argparse
import multiprocessing
import os
import sys
import time
from pathlib import Path

import numpy as np

TESTS = Path(__file__).resolve().parent.parent / "tests"
SYSTEMS = ("tcomp", "onnxruntime", "torch")
INNER_RUNS = 3  # timed runs per system per round, after one untimed run


def _worker(system: str, name: str, small: bool, path: str, threads: int, conn) -> None:
    """Sets a system up, then answers each request with the seconds of one run."""
    sys.path.insert(0, str(TESTS))
    from model_zoo import build_torch_model, random_inputs

    feeds = random_inputs(path, np.random.default_rng(0))
    info = {}
    if system == "tcomp":
        import tcomp

        start = time.perf_counter()
        mod = tcomp.compile(path, target="cpu", num_threads=threads)
        info = {"compile_s": time.perf_counter() - start, "peak_mib": mod.memory_plan.arena_bytes / 2**20}

        def run():
            return mod.run(feeds)[0]
    elif system == "onnxruntime":
        import onnxruntime

        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = threads
        session = onnxruntime.InferenceSession(path, options, providers=["CPUExecutionProvider"])

        def run():
            return session.run(None, feeds)[0]
    else:
        import torch

        torch.set_num_threads(threads)
        model = build_torch_model(name, small)
        args = [torch.from_numpy(feeds[key]) for key in feeds]

        def run():
            with torch.inference_mode():
                return model(*args).numpy()

    conn.send((info, run()))
    while conn.recv() == "run":
        run()  # settle: wake this system's threads, bring its weights back into cache
        samples = []
        for _ in range(INNER_RUNS):
            start = time.perf_counter()
            run()
            samples.append(time.perf_counter() - start)
        conn.send(float(np.median(samples)))


def bench_model(name: str, small: bool, cache_dir: Path, repeat: int, warmup: int, threads: int) -> dict:
    sys.path.insert(0, str(TESTS))
    from model_zoo import export_model

    path = str(export_model(name, cache_dir, small=small))
    ctx = multiprocessing.get_context("spawn")
    workers, info, outputs = {}, {}, {}
    for system in SYSTEMS:
        parent, child = ctx.Pipe()
        proc = ctx.Process(target=_worker, args=(system, name, small, path, threads, child), daemon=True)
        proc.start()
        workers[system] = (proc, parent)
        system_info, outputs[system] = parent.recv()
        info.update(system_info)
    times = {system: [] for system in SYSTEMS}
    for round_index in range(warmup + repeat):
        for system, (_, conn) in workers.items():
            conn.send("run")
            elapsed = conn.recv()
            if round_index >= warmup:
                times[system].append(elapsed)
    for proc, conn in workers.values():
        conn.send("stop")
        proc.join()
    ref = outputs["onnxruntime"]
    rel = float(np.linalg.norm(outputs["tcomp"] - ref) / np.linalg.norm(ref))
    medians = {system: float(np.median(t)) for system, t in times.items()}
    return {"model": name + ("_small" if small else ""), "rel_err": rel, **info, **medians}


def main() -> None:
    sys.path.insert(0, str(TESTS))
    from model_zoo import MODEL_NAMES

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
    print(f"threads: {args.threads}, {args.repeat} interleaved rounds after {args.warmup} warm-up rounds, medians")
    print(header)
    print("-" * len(header))
    for name in args.models:
        r = bench_model(name, args.small, args.cache_dir, args.repeat, args.warmup, args.threads)
        print(f"{r['model']:14s} {r['compile_s']:9.1f} {r['tcomp'] * 1e3:9.2f} {r['onnxruntime'] * 1e3:8.2f} "
              f"{r['torch'] * 1e3:9.2f} {r['tcomp'] / r['onnxruntime']:9.2f} {r['tcomp'] / r['torch']:11.2f} "
              f"{r['peak_mib']:8.1f} {r['rel_err']:8.1e}", flush=True)


if __name__ == "__main__":
    main()
