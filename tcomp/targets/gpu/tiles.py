"""Tile sizes of the GPU tiling sketches chosen by shape, for untuned kernels (``groups.py``).

A sketch's ``sample_categorical`` decisions fix its tiles; without tuning, each product block
``C`` (rows x cols, ``depth`` deep, ``batch`` times) takes the candidates below, ranked by a
rough time: thread blocks in waves over the multiprocessors, each block's work divided by how
well its tile reuses what it loads (intensity = rows * cols / (rows + cols) per loaded element)
and by how many warps an SM keeps busy. A 1024 x 768 product gets smaller tiles than a
4096 x 4096 one (128 x 128: 8 x 8 per thread), so that its blocks fill 132 SMs::

    simt(rows, cols, depth, batch, sms)      -> [(cost, [ty, S2y, S3y, tx, S2x, S3x, R1, R2]), ...]  (gpu_tiling)
    mma(rows, cols, depth, batch, sms)       -> [(cost, [WM, WN, TM, TN, K1, stages]), ...]          (gpu_tensor_core)
    mma(rows, cols, depth, batch, sms, 8, 4) -> the same for tf32 (8-deep fragments of 4-byte values)
    wgmma(width, rows, cols, depth, batch, sms) -> [(cost, [WG, TM, stages]), ...]                   (gpu_warpgroup)
    reduction_splits(rows, cols, depth)      -> parts of a split reduction (split-K), for a task's form

Cheapest first; values come in each sketch's sampling order; costs compare within one kind of
sketch (the wgmma widths among each other). The tensor-core lists hold only tiles that divide the
block (their fragments have no tails), and are empty where none does.
"""
from __future__ import annotations

import math

MULTIPROCESSORS = {"sm_90": 132, "sm_80": 108, "sm_86": 84, "sm_89": 128, "sm_75": 68, "sm_70": 80}
DEFAULT_MULTIPROCESSORS = 100
REGISTERS = 65536           # per SM
SHARED = 227 * 1024          # per SM, usable by blocks
THREADS = 2048               # per SM
# warps per SM that keep its units busy; simt: 16 ranked 2 blocks of 8 warps above 3 of 4 on small grids (ResNet-50
# 14x14 convs, BERT-base matmuls), which ran 1.1-1.7x slower on an H100 (docs/benchmarks.md, CUDA)
SATURATING_WARPS = {"simt": 12, "mma": 8, "wgmma": 4}
REUSE_COST = {"simt": 16.0, "mma": 64.0, "wgmma": 96.0}
SPLIT_TILE = 64              # split-K: the tile side its block count assumes
SPLIT_BLOCKS_PER_SM = 4      # split-K: blocks per SM it aims at (their loads overlap each other's multiply-adds)
MIN_SPLIT_DEPTH = 256        # split-K: the shallowest part
SPLIT_STEP = 64              # split-K: each part's depth a multiple of it
MAX_SPLITS = 8
REGISTER_REUSE = 4.0         # SIMT: multiply-adds per shared element loaded that keep up with the FMA units


def multiprocessors(arch: str | None) -> int:
    return MULTIPROCESSORS.get((arch or "").rstrip("a"), DEFAULT_MULTIPROCESSORS)


def has_mma_sync(arch: str | None) -> bool:
    """Whether ``arch`` (sm_XY; None: unknown, not a CUDA device) runs mma.sync m16n8k16 (sm_80 on)."""
    return arch is not None and int(arch[3:].rstrip("a")) >= 80


def has_async_copy(arch: str | None) -> bool:
    """Whether ``arch`` has ``cp.async`` (global -> shared copies in flight while computing; sm_80 on)."""
    return has_mma_sync(arch)


def simt(rows: int, cols: int, depth: int, batch: int, sms: int) -> list:
    """gpu_tiling's decisions: 8 or 16 threads per axis (fewer along an axis of at most 8) with register
    tiles of 1 x {1, 2, 4} or 2 x 4, and a 16-deep shared step (shallower for a short reduction). A
    thread's multiply-adds per element it loads from shared memory (``REGISTER_REUSE``: 4, an 8 x 8
    register tile) keep it from waiting on shared memory."""
    reduce = [4, 4] if depth >= 16 else [min(8, _pow2_floor(depth)), 1]
    options = []
    for ty, ry in _simt_axis(rows):
        for tx, rx in _simt_axis(cols):
            tile_r, tile_c = ty * ry[0] * ry[1], tx * rx[0] * rx[1]
            per_thread_r, per_thread_c = ry[0] * ry[1], rx[0] * rx[1]
            threads = ty * tx
            registers = per_thread_r * per_thread_c + per_thread_r + per_thread_c + 24
            shared = (tile_r + tile_c) * reduce[0] * reduce[1] * 4
            reuse = per_thread_r * per_thread_c / (per_thread_r + per_thread_c)
            cost = _cost("simt", rows, cols, depth, batch, tile_r, tile_c, threads, registers, shared, sms)
            options.append((cost / min(1.0, reuse / REGISTER_REUSE), [ty, *ry, tx, *rx, *reduce]))
    return sorted(options, key=lambda o: o[0])


def _simt_axis(extent: int) -> list:
    """(threads, (S2, S3)) along one axis."""
    counts = (8, 16) if extent > 8 else (max(4, _pow2_ceil(extent)),)
    return [(threads, registers) for threads in counts for registers in ((1, 1), (1, 2), (1, 4), (2, 4))]


def mma(rows: int, cols: int, depth: int, batch: int, sms: int, step: int = 16, size: int = 2) -> list:
    """gpu_tensor_core's decisions: warps (WM x WN), 16 x 8 fragments per warp (TM x TN), step*K1-deep
    steps, pipeline stages; tiles that divide rows, cols and depth. ``step``, ``size``: the fragments'
    depth and the operands' bytes (16, 2 for fp16 / bf16; 8, 4 for tf32)."""
    options = []
    for wm in (1, 2, 4):
        for wn in (1, 2, 4):
            for tm in (1, 2, 4):
                for tn in (2, 4, 8):
                    tile_r, tile_c = 16 * wm * tm, 8 * wn * tn
                    k1 = next((k for k in (2, 1, 4) if depth % (step * k) == 0), None)
                    if rows % tile_r or cols % tile_c or k1 is None or wm * wn < 2:
                        continue
                    stages = 4 if depth >= 4 * step * k1 else 2
                    threads = 32 * wm * wn
                    registers = tm * tn * 4 + tm * 4 + tn * 2 + 40
                    if threads * registers > REGISTERS:  # one block would not fit the register file: spills
                        continue
                    shared = stages * (tile_r + tile_c) * step * k1 * size
                    cost = _cost("mma", rows, cols, depth, batch, tile_r, tile_c, threads, registers, shared, sms)
                    options.append((cost, [wm, wn, tm, tn, k1, stages]))
    return sorted(options, key=lambda o: o[0])


def wgmma(width: int, rows: int, cols: int, depth: int, batch: int, sms: int) -> list:
    """gpu_warpgroup's decisions for one width (its sketch): warpgroups (WG), 64-row tiles per
    warpgroup (TM), pipeline stages; tiles that divide rows and cols, a depth of 64-deep steps."""
    if cols % width or depth % 64:
        return []
    options = []
    for wg in (1, 2):
        for tm in ((1, 2) if width == 128 else (1,)):
            tile_r = 64 * wg * tm
            if rows % tile_r:
                continue
            stage = (tile_r + width) * 64 * 2
            # with 3 stages or more one wgmma group stays in flight (gpu/async_mma.py), the copies
            # S - 2 steps ahead
            stages = max(2, min(4, depth // 64, SHARED // stage))
            threads = 128 * wg
            registers = tm * width // 2 + 40
            shared = stages * stage
            cost = _cost("wgmma", rows, cols, depth, batch, tile_r, width, threads, registers, shared, sms)
            options.append((cost, [wg, tm, stages]))
    return sorted(options, key=lambda o: o[0])


def reduction_splits(rows: int, cols: int, depth: int, sms: int = MULTIPROCESSORS["sm_90"]) -> int:
    """Parts to split a product's reduction into (split-K: each part a batch of blocks, the parts added
    by the consumer), a power of two: doubled while the product's ``SPLIT_TILE``-square tiles (times
    the parts) come to fewer than ``SPLIT_BLOCKS_PER_SM`` per SM and each part stays at least
    ``MIN_SPLIT_DEPTH`` deep, a multiple of ``SPLIT_STEP`` (a wgmma step: no part padded).
    512 x 1664 x 4608 (ResNet-50's 3x3 conv on 7x7 maps, batch 32) -> 4 (832 blocks of 1152-deep
    reductions, not 208 of 4608); 64 x 401408 x 147 (its stem) -> 1."""
    blocks = math.ceil(rows / SPLIT_TILE) * math.ceil(cols / SPLIT_TILE)
    parts = 1
    while (blocks * parts < SPLIT_BLOCKS_PER_SM * sms and depth // (2 * parts) >= MIN_SPLIT_DEPTH
           and depth % (2 * parts * SPLIT_STEP) == 0 and parts < MAX_SPLITS):
        parts *= 2
    return parts


def _cost(kind: str, rows: int, cols: int, depth: int, batch: int, tile_r: int, tile_c: int, threads: int,
          registers: int, shared: int, sms: int) -> float:
    """Relative time of a product tiled so: waves of blocks, each block's multiply-adds slowed by
    loads (``REUSE_COST`` / intensity) and by too few warps on its SM."""
    blocks = batch * math.ceil(rows / tile_r) * math.ceil(cols / tile_c)
    per_sm = max(1, min(THREADS // threads, REGISTERS // (threads * min(registers, 255)), SHARED // max(shared, 1), 32))
    waves = math.ceil(blocks / (sms * per_sm))
    resident = min(per_sm, math.ceil(blocks / sms))
    busy = min(1.0, resident * threads / 32 / SATURATING_WARPS[kind])
    intensity = tile_r * tile_c / (tile_r + tile_c)
    return waves * resident * tile_r * tile_c * depth * (1 + REUSE_COST[kind] / intensity) / busy


def _pow2_floor(n: int) -> int:
    return 1 << (max(1, n).bit_length() - 1)


def _pow2_ceil(n: int) -> int:
    return 1 << (max(1, n) - 1).bit_length()
