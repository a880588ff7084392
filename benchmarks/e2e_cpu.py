"""End-to-end CPU latency: tcomp (untuned) vs onnxruntime vs PyTorch eager, measured in one run.

    python benchmarks/e2e_cpu.py [--models resnet18 bert ...] [--repeat 15] [--small] [--trees DIR ...]

Each model is exported once (cached in --cache-dir) from transformers with random
weights. The three systems run in their own processes, interleaved (see
interleave.py); the table shows medians and ratios to onnxruntime. Threads: all
cores for every system. ``--trees`` adds tcomp from other source trees (a directory holding a
``tcomp`` package, e.g. ``git archive <commit> | tar -x -C DIR``), each in its own process in the
same rounds, one line each under the model's row.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
TESTS = HERE.parent / "tests"
sys.path[:0] = [str(HERE), str(TESTS)]

from interleave import interleaved_medians  # noqa: E402
from model_zoo import MODEL_NAMES, build_torch_model, export_model, random_inputs  # noqa: E402


def _feeds(path: str) -> dict:
    return random_inputs(path, np.random.default_rng(0))


def setup_tcomp(name: str, small: bool, path: str, threads: int):
    import tcomp

    start = time.perf_counter()
    mod = tcomp.compile(path, target="cpu", num_threads=threads)
    info = {"compile_s": time.perf_counter() - start, "peak_mib": mod.memory_plan.arena_bytes / 2**20}
    feeds = _feeds(path)
    return info, lambda: mod.run(feeds)[0]


def setup_tree(tree: str, name: str, small: bool, path: str, threads: int):
    """``setup_tcomp`` with the ``tcomp`` package of the source tree ``tree``."""
    sys.path.insert(0, tree)
    import tcomp

    if not tcomp.__file__.startswith(str(Path(tree).resolve())):
        raise RuntimeError(f"tcomp imported from {tcomp.__file__}, not from {tree}")
    return setup_tcomp(name, small, path, threads)


def setup_onnxruntime(name: str, small: bool, path: str, threads: int):
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = threads
    session = onnxruntime.InferenceSession(path, options, providers=["CPUExecutionProvider"])
    feeds = _feeds(path)
    return {}, lambda: session.run(None, feeds)[0]


def setup_torch(name: str, small: bool, path: str, threads: int):
    import torch

    torch.set_num_threads(threads)
    model = build_torch_model(name, small)
    args = [torch.from_numpy(value) for value in _feeds(path).values()]

    def run():
        with torch.inference_mode():
            return model(*args).numpy()

    return {}, run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", default=list(MODEL_NAMES), choices=MODEL_NAMES)
    parser.add_argument("--repeat", type=int, default=15)
    parser.add_argument("--small", action="store_true", help="CI-sized variants of the models")
    parser.add_argument("--threads", type=int, default=len(os.sched_getaffinity(0)))
    parser.add_argument("--cache-dir", type=Path, default=Path("/tmp/tcomp-bench-models"))
    parser.add_argument("--trees", nargs="*", default=[], type=lambda d: str(Path(d).resolve()),
                        help="source trees whose tcomp also runs (e.g. another commit's git archive)")
    args = parser.parse_args()

    header = (f"{'model':14s} {'compile s':>9s} {'tcomp ms':>9s} {'ort ms':>8s} {'torch ms':>9s} "
              f"{'tcomp/ort':>9s} {'tcomp/torch':>11s} {'peak MiB':>8s} {'rel err':>8s}")
    print(f"threads: {args.threads}, medians over {args.repeat} interleaved rounds")
    print(header)
    print("-" * len(header))
    for name in args.models:
        path = str(export_model(name, args.cache_dir, small=args.small))
        common = (name, args.small, path, args.threads)
        systems = {"tcomp": (setup_tcomp, common), "onnxruntime": (setup_onnxruntime, common),
                   "torch": (setup_torch, common), **{tree: (setup_tree, (tree, *common)) for tree in args.trees}}
        t, infos, outputs = interleaved_medians(systems, args.repeat)
        ref = outputs["onnxruntime"]
        rel = float(np.linalg.norm(outputs["tcomp"] - ref) / np.linalg.norm(ref))
        info = infos["tcomp"]
        label = name + ("_small" if args.small else "")
        print(f"{label:14s} {info['compile_s']:9.1f} {t['tcomp'] * 1e3:9.2f} {t['onnxruntime'] * 1e3:8.2f} "
              f"{t['torch'] * 1e3:9.2f} {t['tcomp'] / t['onnxruntime']:9.2f} {t['tcomp'] / t['torch']:11.2f} "
              f"{info['peak_mib']:8.1f} {rel:8.1e}", flush=True)
        for tree in args.trees:
            print(f"  tcomp of {tree}: {t[tree] * 1e3:.2f} ms, {t[tree] / t['onnxruntime']:.2f}x onnxruntime", flush=True)


if __name__ == "__main__":
    main()
