"""Trains the shipped CPU cost model: random schedules of training kernels, measured in-process.

    python benchmarks/costmodel_train.py [--per-kernel 64] [--dataset costmodel_dataset.jsonl]
                                         [--out tcomp/costmodel/pretrained/cpu.json]

Each training kernel (matmuls of several shapes, batch matmul, conv2d with a padding stage,
reductions, elementwise) gets ``--per-kernel`` random schedules (``sample_schedule``: multi-level
tiling of every block's loops, loop orders, a fused parallel outer loop, vectorized inner
loop, unrolling, inlined producers; each step skipped where the schedule refuses it). Each
candidate is built and timed with ``tcomp.build(...).time()`` (the minimum of several runs); candidates whose build fails
are skipped. The measurements (kernel, trace JSON, seconds) go to ``--dataset`` (JSON lines;
an existing file is reused, ``--fresh`` remeasures; features are extracted from the replayed
traces, so a change of features needs no new measurements), then an XGBModel trains on all of them
and is saved as the pretrained model. The held-out kernels of benchmarks/costmodel_eval.py
are not in this set.

The shipped model was trained on measurements taken on an otherwise idle 16-core machine,
each kernel pinned to 2 cores with ``--num-threads 2`` (like the 2-core machine it ships
for): measurements on a 2-core machine that other jobs share are unusable (a parallel loop
waits whole scheduler time slices for its second thread). Seven kernels at a time::

    taskset -c 0,1 python benchmarks/costmodel_train.py --measure-only --only matmul_256 \
        --per-kernel 160 --num-threads 2 --dataset train_matmul_256.jsonl   # ... one per kernel
    cat train_*.jsonl > train.jsonl
    python benchmarks/costmodel_train.py --dataset train.jsonl             # trains, saves
"""
from __future__ import annotations

import argparse
import json
import random
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

import tcomp  # noqa: E402
from tcomp import tir  # noqa: E402
from tcomp.costmodel.features import FEATURE_LENGTH, extract  # noqa: E402
from tcomp.costmodel.xgb import PRETRAINED_DIR, XGBModel  # noqa: E402
from tcomp.tir import expr as te  # noqa: E402


def matmul(m, n, k):
    a = tir.placeholder((m, k), "float32", name="A")
    b = tir.placeholder((k, n), "float32", name="B")
    r = tir.reduce_axis(k, name="k")
    c = tir.compute((m, n), lambda i, j: tir.sum(a[i, r] * b[r, j], axis=r), name="C")
    return tir.create_func([a, b, c])


def batch_matmul(bs, m, n, k):
    a = tir.placeholder((bs, m, k), "float32", name="A")
    b = tir.placeholder((bs, k, n), "float32", name="B")
    r = tir.reduce_axis(k, name="k")
    c = tir.compute((bs, m, n), lambda q, i, j: tir.sum(a[q, i, r] * b[q, r, j], axis=r), name="C")
    return tir.create_func([a, b, c])


def conv2d(c_in, hw, c_out, ksize):
    """NCHW conv (batch 1, stride 1, 'same' padding) with an explicit padding stage."""
    pad = ksize // 2
    x = tir.placeholder((c_in, hw, hw), "float32", name="X")
    w = tir.placeholder((c_out, c_in, ksize, ksize), "float32", name="W")
    zero = te.const(0.0, "float32")

    def clamp(e):
        return te.minimum(te.maximum(e - pad, 0), hw - 1)

    def inside(e):
        return te.BinOp("and", e >= pad, e < hw + pad)

    xp = tir.compute((c_in, hw + 2 * pad, hw + 2 * pad), lambda c, h, v: te.Select(
        te.BinOp("and", inside(h), inside(v)), x[c, clamp(h), clamp(v)], zero), name="Xp") if pad else None
    src = xp if xp is not None else x
    rc, rh, rw = tir.reduce_axis(c_in, "rc"), tir.reduce_axis(ksize, "rh"), tir.reduce_axis(ksize, "rw")
    y = tir.compute((c_out, hw, hw), lambda o, h, v: tir.sum(src[rc, h + rh, v + rw] * w[o, rc, rh, rw],
                                                             axis=[rc, rh, rw]), name="Y")
    return tir.create_func([x, w, y])


def row_reduce(m, n, combiner="sum"):
    a = tir.placeholder((m, n), "float32", name="A")
    r = tir.reduce_axis(n, name="r")
    b = tir.compute((m,), lambda i: getattr(tir, combiner)(a[i, r], axis=r), name="B")
    return tir.create_func([a, b])


def col_reduce(m, n):
    a = tir.placeholder((m, n), "float32", name="A")
    r = tir.reduce_axis(m, name="r")
    b = tir.compute((n,), lambda j: tir.sum(a[r, j], axis=r), name="B")
    return tir.create_func([a, b])


def elementwise(m, n, kind="exp_add"):
    a = tir.placeholder((m, n), "float32", name="A")
    b = tir.placeholder((m, n), "float32", name="B")
    if kind == "exp_add":
        c = tir.compute((m, n), lambda i, j: te.call("exp", a[i, j]) + b[i, j], name="C")
    elif kind == "transpose_add":
        c = tir.compute((m, n), lambda i, j: a[j, i] * 2.0 + b[i, j], name="C")
    else:  # relu(a) * b + a, two stages
        t = tir.compute((m, n), lambda i, j: te.maximum(a[i, j], 0.0), name="T")
        c = tir.compute((m, n), lambda i, j: t[i, j] * b[i, j] + a[i, j], name="C")
    return tir.create_func([a, b, c])


TRAIN_KERNELS = {
    "matmul_256": lambda: matmul(256, 256, 256),
    "matmul_128x512x256": lambda: matmul(128, 512, 256),
    "matmul_512x128x128": lambda: matmul(512, 128, 128),
    "matmul_64x1024x64": lambda: matmul(64, 1024, 64),
    "matmul_384x384x64": lambda: matmul(384, 384, 64),
    "bmm_8x128x128x64": lambda: batch_matmul(8, 128, 128, 64),
    "conv2d_32x28x64_3": lambda: conv2d(32, 28, 64, 3),
    "conv2d_64x14x64_1": lambda: conv2d(64, 14, 64, 1),
    "rowsum_1024": lambda: row_reduce(1024, 1024),
    "rowmax_256x4096": lambda: row_reduce(256, 4096, "max"),
    "colsum_1024": lambda: col_reduce(1024, 1024),
    "exp_add_1024": lambda: elementwise(1024, 1024, "exp_add"),
    "transpose_add_512": lambda: elementwise(512, 512, "transpose_add"),
    "relu_mul_add_768": lambda: elementwise(768, 768, "relu_mul_add"),
}


def _kinds(sch, block, loops) -> list:
    """"R" for loops feeding a reduce iterator of ``block``, else "S"."""
    realize = sch.realize_of(sch.get_block_obj(block))
    reduce_vars = set()
    for iv, value in zip(realize.block.iter_vars, realize.iter_values):
        if iv.kind == "R":
            reduce_vars |= te.free_vars(value)
    return ["R" if sch.get(loop).var in reduce_vars else "S" for loop in loops]


def _try(fn, *args):
    try:
        return fn(*args)
    except tcomp.ScheduleError:
        return None


def sample_schedule(func, seed: int):
    """A random schedule of ``func`` (a Schedule); steps the schedule refuses are skipped."""
    rng = random.Random(seed)
    sch = tcomp.Schedule(func, seed=seed)
    names = [b.name for b in sch.blocks()]
    for name in names[:-1]:          # producers: inline some of them
        if rng.random() < 0.5:
            _try(sch.compute_inline, sch.get_block(name))
    for name in [b.name for b in sch.blocks()]:
        block = sch.get_block(name)
        loops = sch.get_loops(block)
        kinds = _kinds(sch, block, loops)
        has_reduce = "R" in kinds
        s_levels = rng.choice([2, 3, 4] if has_reduce else [1, 2, 2, 3])
        tiles = {"S": [], "R": []}
        for loop, kind in zip(loops, kinds):
            n = s_levels if kind == "S" else rng.choice([1, 2, 2])
            factors = _try(sch.sample_perfect_tile, loop, n, rng.choice([4, 8, 16, 32, 64]))
            parts = _try(sch.split, loop, factors) if factors is not None and n > 1 else None
            tiles[kind].append(parts if parts else [loop])
        order = _order(tiles, rng)
        _try(sch.reorder, *order)
        outer = [t[0] for t in tiles["S"] if len(t) > 1][:rng.choice([1, 2, 3])]
        if outer and rng.random() < 0.85 and order[:len(outer)] == outer:
            fused = _try(sch.fuse, *outer) if len(outer) > 1 else outer[0]
            if fused is not None:
                _try(sch.parallel, fused)
        if rng.random() < 0.8:
            _try(sch.vectorize, sch.get_loops(block)[-1])
        if rng.random() < 0.4:
            inner = sch.get_loops(block)[-3:-1]
            if inner:
                _try(sch.unroll, rng.choice(inner))
    return sch


def _order(tiles: dict, rng: random.Random) -> list:
    """Loop order: SSRSRS-style levels (spatial and reduce tiles interleaved) or a shuffle."""
    s, r = tiles["S"], tiles["R"]
    if rng.random() < 0.2:
        loops = [l for t in s + r for l in t]
        rng.shuffle(loops)
        return loops
    order: list = []
    depth = max([len(t) for t in s + r] or [0])
    for level in range(depth):
        order += [t[level] for t in s if len(t) > level and level < len(t) - 1]
        order += [t[level] for t in r if len(t) > level]
    order += [t[-1] for t in s]
    seen: list = []
    for loop in order:
        if loop not in seen:
            seen.append(loop)
    if rng.random() < 0.3 and len(s) > 1:  # swap the innermost spatial tiles
        seen[-1], seen[-2] = seen[-2], seen[-1]
    return seen


SLOW_SECONDS = 0.02


def random_inputs(func, rng) -> list:
    return [rng.standard_normal([int(e.value) for e in b.shape]).astype(np.float32) for b in func.params[:-1]]


def measure_kernel(name: str, func, count: int, seed: int = 0, repeat: int = 5, num_threads: int | None = None) -> list:
    """[(schedule, seconds)] of ``count`` distinct random schedules (failed builds skipped).

    Seconds are the minimum of at least ``repeat`` runs (up to 30 or 50 ms of runs): the
    minimum filters out runs slowed by other processes on the machine, which stall the
    parallel loops' threads for whole scheduler time slices."""
    rng = np.random.default_rng(seed)
    inputs = random_inputs(func, rng)
    seen, results = set(), []
    for attempt in range(count * 3):
        if len(results) >= count:
            break
        sch = sample_schedule(func, seed * 100003 + attempt)
        text = str(sch.func)
        if text in seen:
            continue
        seen.add(text)
        try:
            kernel = tcomp.build(sch.func, num_threads=num_threads)
            seconds = kernel.time(*inputs, repeat=1, warmup=0)
            if seconds < SLOW_SECONDS:  # clearly slow candidates are timed once
                runs = max(repeat, min(30, int(0.05 / max(seconds, 1e-6))))
                seconds = min(kernel.time(*inputs, repeat=1, warmup=0) for _ in range(runs))
        except tcomp.TcompError as err:
            print(f"  {name}: build failed: {str(err)[:100]}")
            continue
        results.append((sch, seconds))
    return results


def dataset_arrays(path: Path, kernels: dict) -> tuple:
    """(features, seconds, kernel names) of a dataset file, features from the replayed traces."""
    funcs = {name: make() for name, make in kernels.items()}
    rows = [json.loads(line) for line in Path(path).read_text().splitlines()]
    x = [extract(tcomp.Trace.from_json(r["trace"]).apply_to(funcs[r["kernel"]]).func) for r in rows]
    return (np.asarray(x, dtype=np.float32).reshape(-1, FEATURE_LENGTH), np.asarray([r["seconds"] for r in rows]),
            [r["kernel"] for r in rows])


def measure_to_file(kernels: dict, path: Path, per_kernel: int, seed_base: int, num_threads: int | None) -> None:
    """Measures ``per_kernel`` random schedules of each kernel into ``path`` (JSON lines)."""
    start = time.perf_counter()
    with Path(path).open("w") as f:
        for index, (name, make) in enumerate(kernels.items()):
            results = measure_kernel(name, make(), per_kernel, seed=seed_base + index, num_threads=num_threads)
            for sch, seconds in results:
                f.write(json.dumps({"kernel": name, "seconds": seconds, "trace": sch.trace.to_json()}) + "\n")
            times = sorted(s for _, s in results)
            print(f"{name:22s} {len(results):3d} candidates, best {times[0] * 1e3:8.3f} ms, "
                  f"median {times[len(times) // 2] * 1e3:8.3f} ms  ({time.perf_counter() - start:.0f} s)", flush=True)


def measure_args(parser: argparse.ArgumentParser, per_kernel: int, dataset: str) -> None:
    parser.add_argument("--per-kernel", type=int, default=per_kernel)
    parser.add_argument("--dataset", nargs="+", default=[dataset], help="JSON lines files (measured into the first)")
    parser.add_argument("--fresh", action="store_true", help="measure again even if the dataset exists")
    parser.add_argument("--only", nargs="*", help="measure only these kernels")
    parser.add_argument("--measure-only", action="store_true")
    parser.add_argument("--num-threads", type=int, default=None, help="threads of each measured kernel")


def ensure_measured(args, kernels: dict, seed_base: int) -> None:
    if args.fresh or args.measure_only or not Path(args.dataset[0]).exists():
        names = args.only or list(kernels)
        seeds = {name: seed_base + i for i, name in enumerate(kernels)}
        with Path(args.dataset[0]).open("w"):
            pass
        for name in names:
            part = Path(f"{args.dataset[0]}.{name}")
            measure_to_file({name: kernels[name]}, part, args.per_kernel, seeds[name], args.num_threads)
            with Path(args.dataset[0]).open("a") as f:
                f.write(part.read_text())
            part.unlink()


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    measure_args(parser, 64, "costmodel_dataset.jsonl")
    parser.add_argument("--out", default=str(PRETRAINED_DIR / "cpu.json"))
    args = parser.parse_args()
    ensure_measured(args, TRAIN_KERNELS, 1)
    if args.measure_only:
        return
    parts = [dataset_arrays(path, TRAIN_KERNELS) for path in args.dataset]
    x = np.concatenate([p[0] for p in parts])
    seconds = np.concatenate([p[1] for p in parts])
    groups = [g for p in parts for g in p[2]]
    model = XGBModel()
    model.fit_arrays(x, seconds, groups)
    model.save(args.out)
    print(f"trained on {len(seconds)} measurements of {len(set(groups))} kernels -> {args.out}")


if __name__ == "__main__":
    main()
