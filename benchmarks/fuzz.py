"""Differential fuzzing: random valid ONNX graphs, tcomp against onnxruntime.

    python benchmarks/fuzz.py --graphs 1000 [--seed S] [--save-failures DIR] [--timeout 60]

Graph ``i`` is ``generate(S + i)`` (tests/fuzzing/graph_gen.py) with inputs drawn from
``default_rng(S + i)``; the seed S is printed (random unless given), so
``--seed S+i --graphs 1`` reproduces one graph. Each graph compiles and runs in an isolated
worker process with a time limit. Every failure is minimized (delta debugging) and printed as
Python code for tests/test_fuzz_regressions.py (and written to DIR with --save-failures).
"""
from __future__ import annotations

import argparse
import collections
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE.parent / "tests"), str(HERE.parent)]

from fuzzing.graph_gen import generate
from fuzzing.minimize import minimize
from fuzzing.runner import STATUSES, TIMEOUT_S, run_case


def _report_failure(seed: int, status: str, detail: str, case, timeout: float, save_dir: Path | None) -> None:
    print(f"\n=== graph seed {seed}: {status}: {detail.splitlines()[0] if detail else ''}", flush=True)

    def still_fails(smaller):
        return run_case(smaller, np.random.default_rng(seed), timeout).status == status

    small = minimize(case, still_fails)
    outcome = run_case(small, np.random.default_rng(seed), timeout)
    code = small.to_python()
    print(f"minimized to {len(small.nodes)} node(s): {outcome.detail.splitlines()[0] if outcome.detail else ''}")
    print(code, flush=True)
    if save_dir is not None:
        save_dir.mkdir(parents=True, exist_ok=True)
        (save_dir / f"seed_{seed}.py").write_text(f"# {status}: {detail}\n\nCASE = {code}\n")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--graphs", type=int, default=100)
    parser.add_argument("--seed", type=int, default=None, help="first graph's seed (default: random)")
    parser.add_argument("--save-failures", type=Path, default=None, metavar="DIR",
                        help="write each minimized failure as Python code into DIR")
    parser.add_argument("--timeout", type=float, default=TIMEOUT_S, help="seconds per graph before it counts as a hang")
    args = parser.parse_args(argv)
    seed = args.seed if args.seed is not None else int(np.random.SeedSequence().entropy % 2 ** 31)
    print(f"seed {seed}, {args.graphs} graphs", flush=True)
    counts = collections.Counter()
    nodes = 0
    start = time.perf_counter()
    for i in range(args.graphs):
        case = generate(seed + i)
        nodes += len(case.nodes)
        outcome = run_case(case, np.random.default_rng(seed + i), args.timeout)
        counts[outcome.status] += 1
        if outcome.status != "ok":
            _report_failure(seed + i, outcome.status, outcome.detail, case, args.timeout, args.save_failures)
    elapsed = time.perf_counter() - start
    print(f"\ngraphs run: {args.graphs} ({nodes} nodes, seeds {seed}..{seed + args.graphs - 1}, {elapsed:.0f} s)")
    print(", ".join(f"{status if status != 'ok' else 'passed'}: {counts[status]}" for status in STATUSES))
    return 0 if counts["ok"] == args.graphs else 1


if __name__ == "__main__":
    sys.exit(main())
