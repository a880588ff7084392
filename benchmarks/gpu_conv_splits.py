"""ResNet-50's small-map convolutions (batch 32) on the GPU under forced split-K parts and SIMT tiles:
what ``tiles.reduction_splits`` and ``tiles.simt`` choose, against the alternatives, kernel by kernel.

    python benchmarks/gpu_conv_splits.py [--parts 1,2,4,8] [--dtypes fp32,fp16]

Each (conv, dtype, parts, tile) is compiled for the device (``tcomp.compile(model, target="cuda")``) in a
process of its own, with ``tiles.reduction_splits`` replaced by the forced parts and, for a forced tile
("64x128": rows x cols of C per thread block), ``tiles.simt`` keeping only tiles of that size ("rank": the
untuned choice); then timed with ``mod.profile`` (its kernels summed: the product and, split, the epilogue
that adds the parts). Prints each one's schedule, launches (grid, block) and time; a forced tile that does not
lower shows the default binding's launch (millions of blocks) and is no figure.
"""
from __future__ import annotations

import argparse
import pickle
import sys
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

CONVS = {"3x3 512 7x7": (32, 512, 512, 7, 3, 1, 1), "3x3 256 14x14": (32, 256, 256, 14, 3, 1, 1),
         "1x1 2048>512 7x7": (32, 2048, 512, 7, 1, 1, 0), "1x1 1024>256 14x14": (32, 1024, 256, 14, 1, 1, 0)}
TILES = {"rank": None, "64x64": (64, 64), "128x64": (128, 64), "64x128": (64, 128), "128x128": (128, 128),
         "32x64": (32, 64)}


def compile_one(conv: str, dtype: str, parts: int, tile: str) -> bytes:
    import tcomp
    from tcomp.targets.gpu import tiles
    from test_gpu_conv import conv_model

    tiles.reduction_splits = lambda *args, **kwargs: parts
    if TILES[tile] is not None:
        ranked = tiles.simt
        tiles.simt = lambda *args: [o for o in ranked(*args)
                                    if (o[1][0] * o[1][1] * o[1][2], o[1][3] * o[1][4] * o[1][5]) == TILES[tile]]
    model = conv_model(*CONVS[conv], dtype=np.float32 if dtype == "fp32" else np.float16)
    return pickle.dumps(tcomp.compile(model, target="cuda"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--parts", default="1,2,4,8")
    parser.add_argument("--dtypes", default="fp32,fp16")
    parser.add_argument("--tiles", default=",".join(TILES), help="fp32 SIMT tiles (fp16 takes the ranked wgmma tile)")
    args = parser.parse_args()
    jobs = [(conv, dtype, int(parts), tile) for conv in CONVS for dtype in args.dtypes.split(",")
            for parts in args.parts.split(",")
            for tile in (args.tiles.split(",") if dtype == "fp32" else ["rank"])]
    with ProcessPoolExecutor(16, mp_context=get_context("spawn"), max_tasks_per_child=1) as pool:
        blobs = list(pool.map(compile_one, *zip(*jobs)))
    import torch

    for (conv, dtype, parts, tile), blob in zip(jobs, blobs):
        mod = pickle.loads(blob)
        n, c, _, size, *_ = CONVS[conv]
        x = torch.randn(n, c, size, size, device="cuda", dtype=torch.float32 if dtype == "fp32" else torch.float16)
        seconds = sum(p[2] for p in mod.profile({"x": x}, repeat=20))
        (kernel,) = mod.kernels.values()
        launches = [(l.grid, l.block) for l in mod.executor.jit.launches[kernel.name].launches]
        print(f"{conv:19} {dtype} P={parts} tile={tile:8} {seconds * 1e3:7.3f} ms  "
              f"{kernel.func.attrs['gpu_schedule']} {launches}", flush=True)


if __name__ == "__main__":
    main()
