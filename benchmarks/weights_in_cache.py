"""Is a kernel slower in the model because of its weights or because of its input? Per step of a CPU compile:

    python benchmarks/weights_in_cache.py --model resnet18 [--threads 2] [--rounds 10]

For each step (median seconds over ``--rounds`` runs of the model up to it), three timings:

* "in model": the steps before it run, then the step (as ``mod.profile``);
* "again": the same step called once more right after (its weights and input now in cache);
* "weights read": the steps before it run, then its constant arguments are read by numpy in this
  thread (a sum over each), then the step: its input is where the model left it (written by the
  previous step, on whichever core), its weights are in the caches.

Where "weights read" is close to "again" and "in model" is slower, the step waits for its weights
(from memory: a model's weights can exceed the last-level cache, so each run reads them again);
where "weights read" stays close to "in model", it is the input or the kernel itself. A caveat:
numpy reads the weights on one core, so weights larger than that core's L2 also evict what the
previous step left there (its output, this step's input): "weights read" then overstates.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parent / "tests")]

from model_zoo import MODEL_NAMES, export_model, random_inputs  # noqa: E402


def step_times(mod, feeds: dict, rounds: int) -> dict:
    """{column: [median seconds per step]} for the three columns of the module docstring."""
    from tcomp.runtime.executor import CONST

    ex = mod.executor
    inputs, binding = ex.bind(feeds)
    prepared = ex.runs.get(binding)
    outputs = ex._start(prepared, inputs)  # noqa: F841  (kept alive while kernels write to it)
    calls = prepared.calls

    def run_before(index: int) -> None:
        for fn, address, _ in calls[:index]:
            fn(address)

    def timed(index: int) -> float:
        fn, address, _ = calls[index]
        start = time.perf_counter()
        fn(address)
        return time.perf_counter() - start

    columns = {"in model": [], "again": [], "weights read": []}
    samples = {name: [[] for _ in calls] for name in columns}
    for _ in range(rounds):
        for index, step in enumerate(ex.steps):
            run_before(index)
            samples["in model"][index].append(timed(index))
            samples["again"][index].append(timed(index))
            run_before(index)
            for slot in step.args:
                if slot.kind == CONST:
                    float(ex.constants[slot.index].sum())
            samples["weights read"][index].append(timed(index))
    return {name: [float(np.median(s)) for s in per_step] for name, per_step in samples.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="resnet18", choices=MODEL_NAMES)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--cache-dir", type=Path, default=Path("/tmp/tcomp-bench-models"))
    args = parser.parse_args()
    import tcomp
    from tcomp.runtime.executor import CONST

    path = str(export_model(args.model, args.cache_dir))
    mod = tcomp.compile(path, target="cpu", num_threads=args.threads)
    times = step_times(mod, random_inputs(path, np.random.default_rng(0)), args.rounds)
    ex = mod.executor
    print(f"{'step':>4s} {'kernel':24s} {'in model':>9s} {'again':>9s} {'weights read':>13s} {'weights MB':>10s}")
    for index, step in enumerate(ex.steps):
        mb = sum(ex.constants[s.index].nbytes for s in step.args if s.kind == CONST) / 1e6
        print(f"{index:4d} {step.kernel[:24]:24s} " + " ".join(
            f"{times[name][index] * 1e3:{w}.3f}" for name, w in (("in model", 9), ("again", 9), ("weights read", 13)))
            + f" {mb:10.2f}")
    print(f"{'':4s} {'sum':24s} " + " ".join(f"{sum(times[name]) * 1e3:{w}.3f}" for name, w in (
        ("in model", 9), ("again", 9), ("weights read", 13))))


if __name__ == "__main__":
    main()
