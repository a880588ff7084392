"""Square float32 GEMM on the CPU: tcomp's default (untuned) schedule vs numpy vs onnxruntime.

    python benchmarks/gemm_cpu.py [--sizes 512 1024 2048] [--repeat 15]

Each system runs in its own process on all cores, interleaved (see interleave.py);
the table shows median GFLOP/s and tcomp's ratio to the best peer.
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from interleave import interleaved_medians  # noqa: E402


def _feeds(n: int) -> dict:
    rng = np.random.default_rng(0)
    return {"a": rng.standard_normal((n, n), dtype=np.float32), "b": rng.standard_normal((n, n), dtype=np.float32)}


def _matmul_model(n: int):
    from onnx import TensorProto, helper

    values = [helper.make_tensor_value_info(name, TensorProto.FLOAT, [n, n]) for name in "abc"]
    graph = helper.make_graph([helper.make_node("MatMul", ["a", "b"], ["c"])], "gemm", values[:2], values[2:])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=10)


def setup_tcomp(n: int, threads: int):
    import tcomp

    mod = tcomp.compile(_matmul_model(n), num_threads=threads)
    feeds = _feeds(n)
    return {}, lambda: mod.run(feeds)[0]


def setup_numpy(n: int, threads: int):
    feeds = _feeds(n)
    return {}, lambda: feeds["a"] @ feeds["b"]


def setup_onnxruntime(n: int, threads: int):
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = threads
    session = onnxruntime.InferenceSession(_matmul_model(n).SerializeToString(), options,
                                           providers=["CPUExecutionProvider"])
    feeds = _feeds(n)
    return {}, lambda: session.run(None, feeds)[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[512, 1024, 2048])
    parser.add_argument("--repeat", type=int, default=15)
    args = parser.parse_args()
    threads = len(os.sched_getaffinity(0))
    print(f"threads: {threads}; median GFLOP/s over {args.repeat} interleaved rounds")
    print(f"{'n':>6s} {'tcomp':>8s} {'numpy':>8s} {'ort':>8s} {'tcomp/best':>10s}")
    for n in args.sizes:
        systems = {"tcomp": (setup_tcomp, (n, threads)), "numpy": (setup_numpy, (n, threads)),
                   "ort": (setup_onnxruntime, (n, threads))}
        medians, _, outputs = interleaved_medians(systems, args.repeat)
        np.testing.assert_allclose(outputs["tcomp"], outputs["numpy"], rtol=1e-3, atol=1e-2)
        gflops = {key: 2 * n**3 / t / 1e9 for key, t in medians.items()}
        best = max(gflops["numpy"], gflops["ort"])
        print(f"{n:6d} {gflops['tcomp']:8.1f} {gflops['numpy']:8.1f} {gflops['ort']:8.1f} "
              f"{gflops['tcomp'] / best:10.2f}", flush=True)


if __name__ == "__main__":
    main()
