"""int8 and bf16 GEMM on the CPU: a tensorized schedule (AVX-512 VNNI / BF16 dot products) against the
plain vectorized schedule of the same compute, both written with the Schedule API.

    python benchmarks/tensorize_gemm.py [--size 1024] [--repeat 9]

The compute (``tests/dot_gemm.py``) is ``C[i, j] = sum_k acc(A[i, k]) * acc(B[j // 16, k // d, j % 16, k % d])``
with B packed [N/16, K/d, 16, d] (d = 4 for u8 x s8 -> s32, d = 2 for bf16 x bf16 -> f32), the layout
the instructions read. Schedules (the i loop is parallel in both):

    vectorized:  i, j_0, k, j_1 (vectorized 16)
    tensorized:  i, j_0, k_0, [j_1 (16), k_1 (d)] -> one dot_16x4_vnni / dot_16x2_bf16 call

Both kernels run in this process, interleaved (A B A B ...) after a warm-up; the table shows
the median GOP/s, the ratio and whether the assembly holds the instruction.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

import tcomp  # noqa: E402
import dot_gemm  # noqa: E402

CASES = {  # name: (intrinsic, instruction, A dtype, B dtype, accumulator, depth)
    "int8": ("dot_16x4_vnni", "vpdpbusd", "uint8", "int8", "int32", 4),
    "bf16": ("dot_16x2_bf16", "vdpbf16ps", "bfloat16", "bfloat16", "float32", 2),
}


def vectorized(func):
    sch = tcomp.Schedule(func)
    i, j, k = sch.get_loops(sch.get_block("C"))
    jo, ji = sch.split(j, [None, 16])
    sch.reorder(jo, k, ji)
    sch.vectorize(ji)
    sch.parallel(i)
    return sch


def tensorized(func, intrinsic: str, depth: int):
    sch = tcomp.Schedule(func)
    sch.tensorize(dot_gemm.tile(sch, depth, parallel=True), intrinsic)
    return sch


def interleaved(kernels: dict, arrays: list, repeat: int, warmup: int = 2) -> dict:
    """Median seconds per kernel, runs alternating between the kernels."""
    for _ in range(warmup):
        for kernel in kernels.values():
            kernel(*arrays)
    samples = {name: [] for name in kernels}
    for _ in range(repeat):
        for name, kernel in kernels.items():
            start = time.perf_counter()
            kernel(*arrays)
            samples[name].append(time.perf_counter() - start)
    return {name: float(np.median(s)) for name, s in samples.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=1024)
    parser.add_argument("--repeat", type=int, default=9)
    args = parser.parse_args()
    n = args.size
    print(f"GEMM {n}^3, {len(os.sched_getaffinity(0))} threads; median GOP/s over {args.repeat} interleaved runs")
    print(f"{'case':>5s} {'vectorized':>11s} {'tensorized':>11s} {'ratio':>6s}  instruction in assembly")
    for case, (intrinsic, instruction, a_dtype, b_dtype, acc, depth) in CASES.items():
        func = dot_gemm.packed_gemm(n, n, n, a_dtype, b_dtype, acc, depth)
        kernels = {"vectorized": tcomp.build(vectorized(func)),
                   "tensorized": tcomp.build(tensorized(func, intrinsic, depth))}
        a, b, ref = dot_gemm.inputs(np.random.default_rng(0), n, n, n, a_dtype, depth)
        c = np.zeros((n, n), dtype=acc)
        for kernel in kernels.values():
            kernel(a, b, c)
            if acc == "int32":
                np.testing.assert_array_equal(c, ref)
            else:
                np.testing.assert_allclose(c, ref, rtol=1e-3, atol=1e-3)
        seconds = interleaved(kernels, [a, b, c], args.repeat)
        gops = {name: 2 * n**3 / t / 1e9 for name, t in seconds.items()}
        found = {name: instruction in kernel.assembly() for name, kernel in kernels.items()}
        print(f"{case:>5s} {gops['vectorized']:11.1f} {gops['tensorized']:11.1f} "
              f"{gops['tensorized'] / gops['vectorized']:6.2f}  {instruction}: tensorized {found['tensorized']}, "
              f"vectorized {found['vectorized']}", flush=True)


if __name__ == "__main__":
    main()
