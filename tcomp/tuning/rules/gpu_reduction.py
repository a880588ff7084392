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

A function whose nests all work on the same rows -- row reductions, then one elementwise nest that
reads their results (softmax: max, exp-sum, quotient; layer norm: sum, squared deviations,
normalize) -- can run as one kernel, one row per thread block (``schedule_rows``): the
reductions are computed at the consumer's row loop, their results (intermediate buffers) kept in
the block's shared memory, and each nest spreads the row over the same threads::

    for i in blockIdx.x(R):                                  (up to 3 row loops: blockIdx.z, y, x)
      for t in threadIdx.x(T): M_shared[0] = max(..x[i, k0 * T + t]..)     (cross_thread.py's tree)
      for t in threadIdx.x(T): S_shared[0] = sum(..exp(x[i, ..] - M_shared[0])..)
      for t in threadIdx.x(T): for j0: out[i, j0 * T + t] = exp(x[i, ..] - M_shared[0]) / S_shared[0]

(``barriers.py`` separates the nests) instead of a kernel per nest exchanging the results through
global memory.
"""
from __future__ import annotations

from ...schedule.schedule import Schedule
from ...tir import arith
from ...tir.expr import IntImm
from .blocks import find_block, fork, is_pending, is_spatial, loop_kinds

THREADS = (32, 64, 128, 256, 512, 1024)
BLOCK_AXES = ("blockIdx.z", "blockIdx.y", "blockIdx.x")  # schedule_rows: a row's loops, innermost last
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


def schedule_rows(sch: Schedule, threads: int) -> bool:
    """The one-kernel form above, on ``threads`` threads per row; False (``sch`` then unusable) where
    the function is not row reductions followed by one spatial nest over the same rows."""
    from .blocks import attempt

    blocks = list(sch.blocks())
    *reductions, last = blocks
    if not reductions or not is_spatial(last) or not all(applies(sch, b.name) for b in reductions):
        return False
    rows = len([k for k in loop_kinds(sch, reductions[0]) if k == "S"])
    extents = [arith.simplify(loop.extent) for loop in sch.loops_above(last)]
    if rows == 0 or len(extents) <= rows or any(
            [arith.simplify(loop.extent) for loop, kind in zip(sch.loops_above(b), loop_kinds(sch, b)) if kind == "S"]
            != extents[:rows] for b in reductions):
        return False  # the reductions' rows are not the consumer's leading loops
    names = [b.name for b in reductions]
    results = [buf for b in reductions for buf in b.writes]
    if any(buf in sch.func.params or buf.scope != "global" for buf in results):
        return False
    if rows > len(BLOCK_AXES):
        return False
    consumer = sch.get_block(last.name)
    loops = sch.get_loops(consumer)
    cols = sch.fuse(*loops[rows:]) if len(loops) - rows > 1 else loops[rows]
    per_thread, thread = sch.split(cols, [None, threads])
    sch.reorder(thread, per_thread)
    for loop, axis in zip(loops[:rows], BLOCK_AXES[-rows:]):  # not fused: compute_at's regions stay exact
        sch.bind(loop, axis)
    row = loops[rows - 1]
    sch.bind(thread, "threadIdx.x")
    for name in reversed(names):  # each before the nests that read it
        if not attempt(sch, "compute_at", sch.get_block(name), row):
            return False
    for name in names:
        block = sch.get_block(name)
        kinds = loop_kinds(sch, sch.get_block_obj(block))
        reduce = [loop for loop, kind in zip(sch.get_loops(block), kinds) if kind == "R"]
        fused = sch.fuse(*reduce) if len(reduce) > 1 else reduce[0]
        per_thread, thread = sch.split(fused, [None, threads])
        sch.reorder(thread, per_thread)
        sch.bind(thread, "threadIdx.x")
    for buf in results:  # a row's result, computed and read by one block: its shared memory (compacted per block)
        buf.scope = "shared"
    return True
