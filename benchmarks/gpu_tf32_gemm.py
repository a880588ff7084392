"""The tf32 mma.sync GEMM (``"cuda -tf32"``'s tensor-core sketch) on the GPU: its tiles swept, and what the
fragments' TF32 rounding costs.

    python benchmarks/gpu_tf32_gemm.py [--n 4096] [--repeat 10]

Tiles: the sketch of ``C = round_tf32(A) @ round_tf32(B)`` (``tests/cuda_kernels.mma_gemm(..., "tf32")``)
under fixed decisions -- warps (rows x cols), 16 x 8 fragments per warp, 8-deep steps per shared tile,
pipeline stages -- the first being ``tiles.mma``'s untuned choice. Rounding: that first kernel rebuilt with
the dialect's ``tc_tf32_bits`` (which rounds each fragment register before ``mma.sync``) replaced by
integer arithmetic (with and without the NaN guard) and by none (the tensor cores then drop the low 13
mantissa bits). Each line: the median device time of ``repeat`` launches, the best of three such medians.
"""
from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

TILES = [((2, 2), (4, 8), 2, 4), ((4, 2), (4, 8), 2, 4), ((2, 4), (4, 8), 4, 3), ((2, 4), (4, 8), 1, 4),
         ((2, 4), (4, 4), 2, 4), ((2, 4), (2, 8), 2, 4), ((4, 4), (2, 4), 2, 4)]
CVT = '  unsigned int r; asm("cvt.rna.tf32.f32 %0, %1;" : "=r"(r) : "f"(x)); return r & 0xffffe000u;'
ROUNDINGS = {
    "integer, NaN guard": "  unsigned int u = __float_as_uint(x);\n"
                          "  return (u & 0x7fffffffu) > 0x7f800000u ? u : (u + 0x1000u) & 0xffffe000u;",
    "integer, no guard": "  return (__float_as_uint(x) + 0x1000u) & 0xffffe000u;",
    "none (truncation)": "  return __float_as_uint(x);",
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=4096)
    parser.add_argument("--repeat", type=int, default=10)
    args = parser.parse_args()

    import cuda_kernels as kernels

    import tcomp
    import tcomp.targets.cuda.kernel as kernel_module
    from tcomp.targets.cuda.dialect import CUDA
    from tcomp.targets.cuda.driver import device_arch, device_name
    from tcomp.targets.gpu import tiles

    n = args.n
    rng = np.random.default_rng(0)
    a, b = (rng.standard_normal((n, n)).astype(np.float32) for _ in range(2))
    wm, wn, tm, tn, k1, stages = tiles.mma(n, n, n, 1, tiles.multiprocessors(device_arch()), 8, 4)[0][1]
    ranked = ((wm, wn), (tm, tn), k1, stages)

    def timed(label: str, sch) -> None:
        kernel = tcomp.build(sch.func, target="cuda")
        seconds = min(kernel.time(a, b, repeat=args.repeat) for _ in range(3))
        print(f"  {label:48} {seconds * 1e3:7.3f} ms {2 * n ** 3 / seconds / 1e12:7.1f} TFLOP/s", flush=True)

    print(f"GEMM {n}^3 tf32 on {device_name()} ({device_arch()}): tiles (warps, fragments per warp, 8-deep steps, "
          f"stages), the first tiles.mma's choice", flush=True)
    for warps, fragments, depth, stages in [ranked] + [t for t in TILES if t != ranked]:
        sch = kernels.mma_gemm(n, n, n, "tf32", warps=warps, tiles=fragments, depth=depth, stages=stages)
        timed(f"warps {warps} fragments {fragments} depth {depth} stages {stages}", sch)
    print("the first tile, fragment rounding:", flush=True)
    sch = kernels.mma_gemm(n, n, n, "tf32", warps=ranked[0], tiles=ranked[1], depth=ranked[2], stages=ranked[3])
    if CVT not in CUDA.preamble:
        raise SystemExit("the dialect's tc_tf32_bits changed: update CVT")
    timed("cvt.rna.tf32.f32 (as built)", sch)
    for label, body in ROUNDINGS.items():
        kernel_module.CUDA = dataclasses.replace(CUDA, preamble=CUDA.preamble.replace(CVT, body))
        timed(label, sch)
    kernel_module.CUDA = CUDA


if __name__ == "__main__":
    main()
