"""ONNX node conformance: how many of ONNX's node test cases onnx.reference, tcomp and onnxruntime pass.

    python benchmarks/onnx_conformance.py [--filter REGEX] [--verbose] [--jobs 2] [--time-limit 60]
                                          [--systems reference tcomp onnxruntime] [--target webgpu]
                                          [--outcomes FILE.jsonl]

Every node case of ``onnx.backend.test`` (``load_model_tests(kind="node")``) runs under each
system in a worker process with a time limit (``tests/onnx_node_suite.py``); a case passes
when all its outputs match within the case's tolerances. The table gives each system's
count over all cases and over the cases that onnx.reference passes (tcomp's goal: 95 %).
``--verbose`` adds, for tcomp, a per-operator summary of the failures among those cases and
each failing case with its error; ``--filter`` runs the cases whose name matches a regex.
``--target cuda|webgpu`` runs reference, tcomp (cpu) and tcomp on that target, and counts the
target's passes over the cases tcomp passes on cpu (``--verbose``: the target's failures among them,
marked where ``tests/onnx_node_exclusions_<target>.txt`` lists them). ``--outcomes`` writes every
(case, system) outcome as a JSON line.
"""
from __future__ import annotations

import argparse
import collections
import json
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE.parent), str(HERE.parent / "tests")]

from onnx_node_suite import HERE as TESTS, SYSTEMS, TIME_LIMIT_S, load_cases, load_exclusions, op_of, run_cases  # noqa: E402

LABELS = {"reference": "onnx.reference", "tcomp": "tcomp", "tcomp-cuda": "tcomp cuda", "tcomp-webgpu": "tcomp webgpu",
          "onnxruntime": "onnxruntime"}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--filter", help="only the cases whose name matches this regex")
    parser.add_argument("--systems", nargs="+", choices=SYSTEMS, default=list(SYSTEMS))
    parser.add_argument("--jobs", type=int, default=None, help="worker processes (default: up to 2)")
    parser.add_argument("--time-limit", type=float, default=TIME_LIMIT_S, help="seconds per case and system")
    parser.add_argument("--target", choices=["cuda", "webgpu"],
                        help="run reference, tcomp and tcomp on this target (instead of --systems)")
    parser.add_argument("--outcomes", help="write every (case, system) outcome to this file, one JSON line each")
    parser.add_argument("--verbose", action="store_true", help="tcomp's failures per operator and per case")
    args = parser.parse_args(argv)

    import onnx
    import onnxruntime

    systems = ["reference"] + [s for s in args.systems if s != "reference"]
    if args.target:
        systems = ["reference", "tcomp", f"tcomp-{args.target}"]
    cases = load_cases(args.filter)
    if not cases:
        print(f"no node case matches {args.filter!r}")
        return 1
    start = time.perf_counter()
    done = collections.Counter()

    def progress(case, system, outcome):
        done[system] += 1
        if done[system] % 200 == 0 or done[system] == len(cases):
            print(f"  {LABELS[system]}: {done[system]}/{len(cases)} ({time.perf_counter() - start:.0f} s)",
                  file=sys.stderr, flush=True)

    outcomes = run_cases(cases, systems, args.jobs, args.time_limit, progress)
    seconds = time.perf_counter() - start
    counted = [c for c in cases if outcomes[(c.name, "reference")].passed]
    if args.outcomes:
        with open(args.outcomes, "w") as out:
            for (name, system), outcome in sorted(outcomes.items()):
                out.write(json.dumps({"case": name, "system": system, "status": outcome.status,
                                      "detail": outcome.detail}) + "\n")

    print(f"ONNX node conformance: {len(cases)} cases of onnx {onnx.__version__}"
          + (f" matching {args.filter!r}" if args.filter else "")
          + f"; onnxruntime {onnxruntime.__version__}; {seconds:.0f} s\n")
    print(f"| {'system':<15} | {'passed':>6} | {'of all':>7} | {f'of the {len(counted)} onnx.reference passes':>34} |")
    print(f"|{'-' * 17}|{'-' * 7}:|{'-' * 8}:|{'-' * 35}:|")
    for system in systems:
        passed = sum(outcomes[(c.name, system)].passed for c in cases)
        among = sum(outcomes[(c.name, system)].passed for c in counted)
        print(f"| {LABELS[system]:<15} | {passed:>6} | {passed / len(cases):>7.1%} | "
              f"{f'{among} ({among / max(len(counted), 1):.1%})':>34} |")
    devices = [s for s in systems if s in ("tcomp-cuda", "tcomp-webgpu")]
    on_cpu = [c for c in counted if "tcomp" in systems and outcomes[(c.name, "tcomp")].passed]
    for system in devices if on_cpu else []:
        passed = sum(outcomes[(c.name, system)].passed for c in on_cpu)
        print(f"\n{LABELS[system]} passes {passed} of the {len(on_cpu)} cases tcomp passes on cpu "
              f"({passed / len(on_cpu):.1%})")
    if args.verbose and "tcomp" in systems:
        _failures(counted, outcomes)
        for system in devices:
            _device_failures(system, on_cpu, outcomes)
    return 0


def _device_failures(system: str, on_cpu: list, outcomes: dict) -> None:
    """``system``'s failures among the cases tcomp passes on cpu, marked where its exclusions list them."""
    path = TESTS / f"onnx_node_exclusions_{system.split('-')[1]}.txt"
    exclusions = load_exclusions(path) if path.exists() else {}
    failing = [c for c in on_cpu if not outcomes[(c.name, system)].passed]
    print(f"\n{LABELS[system]} fails {len(failing)} of them ({sum(c.name in exclusions for c in failing)} listed "
          f"in tests/{path.name}):\n")
    for case in failing:
        outcome = outcomes[(case.name, system)]
        note = f"  [listed: {exclusions[case.name]}]" if case.name in exclusions else ""
        print(f"{case.name}: {outcome.status}: {outcome.detail}{note}")


def _failures(counted: list, outcomes: dict) -> None:
    """tcomp's failures among the cases onnx.reference passes: per operator, then per case."""
    exclusions = load_exclusions()
    failing = [c for c in counted if not outcomes[(c.name, "tcomp")].passed]
    by_op = collections.defaultdict(list)
    for case in failing:
        by_op[op_of(case)].append(case)
    print(f"\ntcomp fails {len(failing)} of them ({sum(c.name in exclusions for c in failing)} excluded "
          f"in tests/onnx_node_exclusions.txt):\n")
    print(f"| {'operator':<28} | failing | statuses |")
    print(f"|{'-' * 30}|--------:|----------|")
    for op, op_cases in sorted(by_op.items(), key=lambda item: (-len(item[1]), item[0])):
        statuses = collections.Counter(outcomes[(c.name, "tcomp")].status for c in op_cases)
        print(f"| {op:<28} | {len(op_cases):>7} | {', '.join(f'{s} {n}' for s, n in statuses.most_common())} |")
    print()
    for case in failing:
        outcome = outcomes[(case.name, "tcomp")]
        note = f"  [excluded: {exclusions[case.name]}]" if case.name in exclusions else ""
        detail = outcome.detail if outcome.status == "unsupported" else f"{outcome.status}: {outcome.detail}"
        print(f"{case.name}: {detail}{note}")


if __name__ == "__main__":
    sys.exit(main())
