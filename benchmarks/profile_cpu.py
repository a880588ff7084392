"""Per-kernel CPU profile of one model: tcomp's kernels next to onnxruntime's nodes.

    python benchmarks/profile_cpu.py --model resnet18 [--threads 1 2] [--repeat 20] [--schedule predicted] [--db DB]

For each thread count: tcomp's ``mod.profile(feeds)`` (median seconds per step, the kernel
called alone from Python once per run of the model, between its neighbours), "alone" (the same
step called ``--repeat`` times in a row, ``back_to_back=True``: its data left in cache by itself,
as when a kernel is timed by itself, hot) and onnxruntime's profiler (``enable_profiling``: each
node's ``kernel_time``, median over the runs). A tcomp step is matched to the onnxruntime node of
its fused nodes (an onnxruntime node named like one of them or like one of their outputs:
onnxruntime names fused and NCHWc nodes after an output, ``torch.onnx.export`` names a
node's outputs ``<node>_output_<i>``); onnxruntime nodes left unmatched are summed in one
row. Rows are in execution order, then the sums of the kernels; the first line gives both
systems' end-to-end medians (runs of the whole model, in this one process, not interleaved:
``e2e_cpu.py`` is the comparison of record).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parent / "tests")]

from interleave import round_samples  # noqa: E402
from model_zoo import MODEL_NAMES, export_model, random_inputs  # noqa: E402


def tcomp_profile(path: str, feeds: dict, threads: int, repeat: int, schedule: str, db: str | None) -> tuple:
    """([(names of the group's nodes, label, kernel name, tiles, seconds, seconds alone)], end-to-end median)."""
    import tcomp

    mod = tcomp.compile(path, target="cpu", num_threads=threads, schedule=schedule, db=db)
    times = mod.profile(feeds, repeat)
    alone = [seconds for _, _, seconds in mod.profile(feeds, repeat, back_to_back=True)]
    kernel_of = {index: kernel for kernel in mod.kernels.values() for index in kernel.groups}
    rows = []
    for index, (group, (name, label, seconds), by_itself) in enumerate(zip(mod.groups, times, alone)):
        names = {n.name for n in group.nodes}
        attrs = kernel_of[index].func.attrs
        tiles = "tuned" if attrs.get("tuned") else attrs.get("tiles", attrs.get("kind", ""))
        rows.append((names, label, name, str(tiles), seconds, by_itself))
    return rows, _median_run(lambda: mod.run(feeds), repeat)


def ort_profile(path: str, feeds: dict, threads: int, repeat: int) -> tuple:
    """({node name: (op, median seconds)}, end-to-end median)."""
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = threads
    session = onnxruntime.InferenceSession(path, options, providers=["CPUExecutionProvider"])
    e2e = _median_run(lambda: session.run(None, feeds), repeat)
    options.enable_profiling = True
    options.profile_file_prefix = f"/tmp/ort_profile_{os.getpid()}"
    session = onnxruntime.InferenceSession(path, options, providers=["CPUExecutionProvider"])
    for _ in range(repeat + 1):
        session.run(None, feeds)
    trace = Path(session.end_profiling())
    events = json.loads(trace.read_text())
    trace.unlink()
    per_node = defaultdict(list)
    ops = {}
    for event in events:
        if event.get("cat") == "Node" and event["name"].endswith("_kernel_time"):
            node = event["name"][: -len("_kernel_time")].removesuffix("_nchwc")
            per_node[node].append(event["dur"] * 1e-6)
            ops[node] = event["args"].get("op_name", "")
    return {node: (ops[node], float(np.median(d[1:] or d))) for node, d in per_node.items()}, e2e


def _median_run(run, repeat: int) -> float:
    return float(np.median(round_samples(run, repeat)))


def report(rows: list, ort: dict, tcomp_e2e: float, ort_e2e: float, threads: int) -> str:
    lines = [f"threads {threads}: end to end tcomp {tcomp_e2e * 1e3:.2f} ms, onnxruntime {ort_e2e * 1e3:.2f} ms "
             f"({tcomp_e2e / ort_e2e:.2f}x)",
             f"{'step':>4s} {'fused ops':22s} {'kernel':20s} {'schedule':48s} {'tcomp ms':>9s} {'alone ms':>9s} "
             f"{'ort ms':>8s} "
             f"{'ort op':12s} {'ratio':>6s}"]
    matched, total_t, total_a = set(), 0.0, 0.0
    for step, (names, label, kernel, tiles, seconds, alone) in enumerate(rows):
        node = next((n for n in ort if n not in matched and n.split("_output_")[0] in names), None)
        op, theirs = ort.get(node, ("", None))
        if theirs is not None:
            matched.add(node)
        total_t += seconds
        total_a += alone
        ratio = f"{seconds / theirs:6.2f}" if theirs else f"{'':>6s}"
        theirs_s = f"{theirs * 1e3:8.3f}" if theirs is not None else f"{'-':>8s}"
        lines.append(f"{step:4d} {label[:22]:22s} {kernel[:20]:20s} {tiles[:48]:48s} {seconds * 1e3:9.3f} "
                     f"{alone * 1e3:9.3f} "
                     f"{theirs_s} {op[:12]:12s} {ratio}")
    total_o = sum(t for _, t in ort.values())
    other = {node: v for node, v in ort.items() if node not in matched}
    lines.append(f"     {'onnxruntime nodes no step matched':91s} {'':9s} {'':9s} "
                 f"{sum(t for _, t in other.values()) * 1e3:8.3f} "
                 f"({', '.join(sorted({op for op, _ in other.values()}))})")
    lines.append(f"     {'sum of kernels':91s} {total_t * 1e3:9.3f} {total_a * 1e3:9.3f} {total_o * 1e3:8.3f} "
                 f"{'':12s} {total_t / total_o:6.2f}")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="resnet18", choices=MODEL_NAMES)
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--repeat", type=int, default=20)
    parser.add_argument("--schedule", default="predicted", choices=["predicted", "template"])
    parser.add_argument("--db", help="a tuning database: its best records where they beat the templates")
    parser.add_argument("--cache-dir", type=Path, default=Path("/tmp/tcomp-bench-models"))
    args = parser.parse_args()
    path = str(export_model(args.model, args.cache_dir))
    feeds = random_inputs(path, np.random.default_rng(0))
    for threads in args.threads:
        rows, tcomp_e2e = tcomp_profile(path, feeds, threads, args.repeat, args.schedule, args.db)
        ort, ort_e2e = ort_profile(path, feeds, threads, args.repeat)
        print(report(rows, ort, tcomp_e2e, ort_e2e, threads), "\n", flush=True)


if __name__ == "__main__":
    main()
