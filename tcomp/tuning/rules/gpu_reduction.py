"""gpu_reduction: a reduction without data reuse on a GPU (softmax's row max and exp-sum, layer
norm's sums, ReduceSum / Mean / Max over any axes, a full sum): one row per thread block, the
row's elements spread over the block's threads and combined across them in shared memory
(``targets/gpu/cross_thread.py``)::

    for i, k0, k1:                           for i in blockIdx.x(R):
      M[i] = max(M[i], x[i, k0, k1])   ->      for k_1 in threadIdx.x(T):
                                                 for k_0 in range(ceil(L / T)):       (L = K0 * K1)
                                                   M[i] = max(M[i], x[i, (k_0 * T + k_1) ..])  where k_0 * T + k_1 < L

Consecutive threads read consecutive elements of a row (coalesced). The spatial loops are fused
and bound to ``blockIdx.x`` (a full reduction has none: one block), the reduce loops fused and
split by ``T`` threads, a ``sample_categorical`` decision over powers of two up to the row's
length rounded up (``THREADS``). A reduction with rows shorter than ``MIN_ROW`` elements (many
short rows) does not apply: one thread per row (the default binding) serves it better.

    sketches = apply(func, sch, "M")          # design space (cuda, webgpu)
    schedule(sch, "M", threads=128)           # fixed threads (tcomp.compile's default schedule)
"""
from __future__ import annotations

from ...schedule.schedule import Schedule
from ...tir import arith
from ...tir.expr import IntImm
from .blocks import find_block, fork, is_pending, is_spatial, loop_kinds

THREADS = (32, 64, 128, 256, 512, 1024)
MIN_ROW = 32


def applies(sch: Schedule, name: str) -> bool:
    """A pending reduction whose loops are spatial, then reduce, with rows of at least ``MIN_ROW``
    elements (or no spatial loop at all). Blocks with reuse qualify too (an embedding's layer norm
    reads rows that ids select): the caller gives multi-level tiling precedence where it wants."""
    blk = find_block(sch, name)
    if blk is None or is_spatial(blk) or not is_pending(sch, name):
        return False
    kinds = loop_kinds(sch, blk)
    if "" in kinds or "R" not in kinds or kinds != sorted(kinds, reverse=True):
        return False  # mixed loops, or no loop left to reduce over (a window of one element: only spatial ones)
    length = row_length(sch, name)
    return "S" not in kinds or length is None or length >= MIN_ROW


def row_length(sch: Schedule, name: str) -> int | None:
    """The number of elements each output element reduces (None where symbolic)."""
    blk = find_block(sch, name)
    length = 1
    for loop, kind in zip(sch.loops_above(blk), loop_kinds(sch, blk)):
        extent = arith.simplify(loop.extent)
        if kind == "R":
            if not isinstance(extent, IntImm):
                return None
            length *= extent.value
    return length


def default_threads(sch: Schedule, name: str) -> int:
    """The row's length rounded up to a power of two, within 32 .. 256 (1024 for a full reduction)."""
    length = row_length(sch, name) or THREADS[-1]
    full = "S" not in loop_kinds(sch, find_block(sch, name))
    cap = THREADS[-1] if full else 256
    threads = THREADS[0]
    while threads < length and threads < cap:
        threads *= 2
    return threads


def apply(func, sch: Schedule, name: str) -> list:
    if not applies(sch, name):
        return []
    sch = fork(func, sch)
    candidates = [t for t in THREADS if t <= max(default_threads(sch, name), THREADS[0] * 2)]
    schedule(sch, name, sch.sample_categorical(candidates, [1] * len(candidates)))
    return [sch]


def schedule(sch: Schedule, name: str, threads) -> None:
    """Binds block ``name``'s rows to ``blockIdx.x`` and its reduction to ``threads`` threads
    (an int, or a sampled decision)."""
    block = sch.get_block(name)
    loops = sch.get_loops(block)
    kinds = loop_kinds(sch, sch.get_block_obj(block))
    spatial = [loop for loop, kind in zip(loops, kinds) if kind == "S"]
    reduce = [loop for loop, kind in zip(loops, kinds) if kind == "R"]
    fused = sch.fuse(*reduce) if len(reduce) > 1 else reduce[0]
    per_thread, thread = sch.split(fused, [None, threads])
    sch.reorder(thread, per_thread)
    if spatial:
        sch.bind(sch.fuse(*spatial) if len(spatial) > 1 else spatial[0], "blockIdx.x")
    sch.bind(thread, "threadIdx.x")
