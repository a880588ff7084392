"""CPU latency while other processes compete for the cores: tcomp against onnxruntime.

    python benchmarks/cpu_contention.py [--busy 0 2 4] [--workloads conv resnet18]
                                        [--baseline DIR] [--threads 2]

For each number of busy processes (``python -c "while 1: pass"`` at normal priority, started
here and killed afterwards), each system times each workload in its own process: rounds of one
untimed run and ``--inner`` timed runs, the systems taking turns with a pause between them.
Reported: median, mean and 90th percentile of all timed runs. Workloads: ``conv``, ResNet-18's
1x1 stride-2 shortcut convolution (64 -> 128 channels, 56x56 -> 28x28, float32) as a one-node
ONNX model, and the models of ``e2e_cpu.py`` (cached in --cache-dir).

``--baseline DIR`` adds tcomp imported from another source tree (e.g. an older commit:
``git archive COMMIT | tar -x -C DIR``) as the system ``tcomp@DIR``.
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parent / "tests")]

from interleave import interleaved_samples  # noqa: E402
from model_zoo import MODEL_NAMES, export_model, random_inputs  # noqa: E402  (imports no tcomp)



def conv_model(path: Path) -> str:
    """ResNet-18's layer2 shortcut: Conv 1x1, stride 2, 64 -> 128 channels on 56x56."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    weight = numpy_helper.from_array(rng.standard_normal((128, 64, 1, 1)).astype(np.float32), "W")
    bias = numpy_helper.from_array(rng.standard_normal(128).astype(np.float32), "B")
    graph = helper.make_graph(
        [helper.make_node("Conv", ["x", "W", "B"], ["y"], strides=[2, 2])], "conv1x1_s2",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 64, 56, 56])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 128, 28, 28])], [weight, bias])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=10), path)
    return str(path)


def _feeds(path: str) -> dict:
    return random_inputs(path, np.random.default_rng(0))


def setup_tcomp(path: str, threads: int, source: str | None):
    if source is not None:
        sys.path.insert(0, source)
    import tcomp

    mod = tcomp.compile(path, target="cpu", num_threads=threads)
    feeds = _feeds(path)
    return None, lambda: mod.run(feeds)[0]


def setup_onnxruntime(path: str, threads: int, source: str | None):
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = threads
    session = onnxruntime.InferenceSession(path, options, providers=["CPUExecutionProvider"])
    feeds = _feeds(path)
    return None, lambda: session.run(None, feeds)[0]


def measure(systems: dict, rounds: int, inner: int) -> dict:
    """``systems``: name -> (setup, args), taking turns (``interleave.py``). Returns {name: [seconds
    of every timed run]}, after checking that the systems' outputs agree."""
    samples, _, outputs = interleaved_samples(systems, rounds, warmup=0, inner=inner)
    reference = next(iter(outputs.values()))
    for name, output in outputs.items():
        rel = float(np.linalg.norm(output - reference) / np.linalg.norm(reference))
        if rel > 1e-3:
            raise SystemExit(f"{name}'s output differs from the others' (relative error {rel:.1e})")
    return {name: [t for timed in per_round for t in timed] for name, per_round in samples.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--busy", type=int, nargs="+", default=[0, 2, 4])
    parser.add_argument("--workloads", nargs="+", default=["conv", "resnet18"], choices=("conv",) + MODEL_NAMES)
    parser.add_argument("--baseline", type=Path, help="another tcomp source tree, timed as tcomp@DIR")
    parser.add_argument("--threads", type=int, default=len(os.sched_getaffinity(0)))
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument("--inner", type=int, nargs=2, default=[25, 3], metavar=("CONV", "MODEL"),
                        help="timed runs per round for the conv and for a model")
    parser.add_argument("--cache-dir", type=Path, default=Path("/tmp/tcomp-bench-models"))
    args = parser.parse_args()

    args.cache_dir.mkdir(parents=True, exist_ok=True)
    paths = {name: conv_model(args.cache_dir / "conv1x1_s2.onnx") if name == "conv"
             else str(export_model(name, args.cache_dir, small=False)) for name in args.workloads}
    print(f"threads: {args.threads}; median / mean / p90 ms over {args.rounds} rounds")
    print(f"{'busy':>4s} {'workload':9s} {'system':28s} {'median':>8s} {'mean':>8s} {'p90':>8s} {'/ort':>6s}")
    for busy in args.busy:
        hogs = [subprocess.Popen([sys.executable, "-c", "while 1: pass"]) for _ in range(busy)]
        try:
            for workload in args.workloads:
                common = (paths[workload], args.threads)
                systems = {"tcomp": (setup_tcomp, common + (None,))}
                if args.baseline is not None:
                    systems[f"tcomp@{args.baseline}"] = (setup_tcomp, common + (str(args.baseline.resolve()),))
                systems["onnxruntime"] = (setup_onnxruntime, common + (None,))
                inner = args.inner[0] if workload == "conv" else args.inner[1]
                samples = measure(systems, args.rounds, inner)
                ort = float(np.median(samples["onnxruntime"]))
                for name, seconds in samples.items():
                    ms = np.asarray(seconds) * 1e3
                    print(f"{busy:4d} {workload:9s} {name:28s} {np.median(ms):8.3f} {ms.mean():8.3f} "
                          f"{np.percentile(ms, 90):8.3f} {np.median(ms) / (ort * 1e3):6.2f}", flush=True)
        finally:
            for hog in hogs:
                hog.kill()
                hog.wait()


if __name__ == "__main__":
    main()
