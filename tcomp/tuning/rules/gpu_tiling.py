"""The GPU structure of multi-level tiling: thread blocks, threads, register tiles, shared operands.

Each spatial loop is split into 4 levels and each reduce loop into 3, ordered
S0 S1 R0 R1 S2 R2 S3 ("SSRRSRS"; for a matmul: i0 j0 i1 j1 k0 k1 i2 j2 k2 i3 j3)::

    for i0 in blockIdx.y, j0 in blockIdx.x:             # S0: one tile of C per thread block
      for i1 in threadIdx.y, j1 in threadIdx.x:         # S1: one register tile per thread
        C_local = 0                                     # (init, unrolled)
        for k0:                                         # R0: one shared tile of A and B per step
          A_shared[..] = A[..]   (all threads, vector loads)
          B_shared[..] = B[..]
          for k1, i2, j2, k2, i3, j3 (unrolled):        # R1 S2 R2 S3: the register tile
            C_local[i, j] += A_shared[i, k] * B_shared[k, j]
        C[..] = C_local[..]  (+ fused epilogue, unrolled)

The threads per axis, the register tile (S2 x S3) and the shared tile's depth (R1 x R2) are
``sample_categorical`` decisions over powers of two (at most 32 threads per axis, so at most
1024 per block); extents they do not divide get predicated tails. Only the last two spatial
loops get threads (``threadIdx.y``, ``threadIdx.x``); the others are tiled across blocks
(``blockIdx.z``). Each thread's tile is contiguous (no virtual threads: the per-thread
buffer compaction shrinks a contiguous tile to registers, a strided one it would not).

Sketches: the tiled block alone, and with A and B staged in ``shared`` memory at R0, copied by
all threads of the block (the fused copy loop split by the block's threads and a sampled
vector width). Both write through ``C_local`` (registers).

    sketches = apply(func, sch, "C")
"""
from __future__ import annotations

from ...schedule.schedule import Schedule
from . import gpu_tensor_core, gpu_warpgroup
from .blocks import attempt, contiguous_last, find_block, fork, inline_operand_stage, loop_kinds, source_strides

THREADS = (4, 8, 16, 32)
THREAD_PROBS = (1, 2, 3, 2)
REGISTERS_OUTER = (1, 2)          # S2
REGISTERS_INNER = (1, 2, 4, 8)    # S3
REDUCE_OUTER = (1, 2, 4, 8)       # R1
REDUCE_INNER = (1, 2, 4)          # R2
VECTOR_BYTES = (4, 8, 16)         # cooperative copies: bytes per thread and access
STAGES = (1, 2)                   # cuda: shared stages of copied (not gathered) operands, cp.async ahead


def apply(func, sch: Schedule, name: str, pipelined: bool = False) -> list:
    """A sketch without and one with shared-memory operands (each where every step applies), and
    for 16-bit products accumulated in fp32 the tensor-core sketch (``gpu_tensor_core.py``).
    ``pipelined``: where no operand is a gather, the shared one samples its pipeline stages (S = 2:
    the next step's tiles copied by ``cp.async`` while this one computes, ``targets/gpu/pipeline.py``)."""
    sketches = gpu_tensor_core.apply(func, sch, name)
    for shared in (False, True):
        new = fork(func, sch)
        if _sketch(new, name, shared, pipelined):
            sketches.append(new)
    return sketches


def apply_cuda(func, sch: Schedule, name: str) -> list:
    """``apply``'s sketches, pipelined: the structure of cuda targets (WebGPU has no async copies)."""
    return apply(func, sch, name, pipelined=True)


def apply_hopper(func, sch: Schedule, name: str) -> list:
    """``apply_cuda``'s sketches and, for 16-bit products accumulated in fp32, the warpgroup (wgmma)
    sketches (``gpu_warpgroup.py``): the structure of sm_90 targets."""
    return gpu_warpgroup.apply(func, sch, name) + apply_cuda(func, sch, name)


def _uniform(sch: Schedule, values: tuple, probs: tuple | None = None):
    return sch.sample_categorical(list(values), list(probs or [1] * len(values)))


def _sketch(sch: Schedule, name: str, shared: bool, pipelined: bool = False) -> bool:
    block = sch.get_block(name)
    blk = sch.get_block_obj(block)
    kinds = loop_kinds(sch, blk)
    loops = sch.get_loops(block)
    spatial = [loop for loop, kind in zip(loops, kinds) if kind == "S"]
    reduce = [loop for loop, kind in zip(loops, kinds) if kind == "R"]
    threaded = spatial[-2:]
    tags = ("threadIdx.y", "threadIdx.x")[-len(threaded):]
    s_tiles, threads = [], []
    for loop in spatial:
        if any(loop == t for t in threaded):
            factors = [None, _uniform(sch, THREADS, THREAD_PROBS), _uniform(sch, REGISTERS_OUTER),
                       _uniform(sch, REGISTERS_INNER)]
            threads.append(factors[1])
        else:
            factors = [None, 1, 1, 1]
        s_tiles.append(sch.split(loop, factors))
    r_tiles = []
    for index, loop in enumerate(reduce):
        innermost = index == len(reduce) - 1
        factors = [None, _uniform(sch, REDUCE_OUTER), _uniform(sch, REDUCE_INNER)] if innermost else [None, 1, 1]
        r_tiles.append(sch.split(loop, factors))
    order = ([t[0] for t in s_tiles] + [t[0] for t in r_tiles] + [t[1] for t in s_tiles] + [t[1] for t in r_tiles]
             + [t[2] for t in s_tiles] + [t[2] for t in r_tiles] + [t[3] for t in s_tiles])
    sch.reorder(*order)
    _bind_blocks(sch, [t[0] for t in s_tiles], len(threaded))
    thread_loops = [t[1] for t, loop in zip(s_tiles, spatial) if any(loop == x for x in threaded)]
    for loop, tag in zip(thread_loops, tags):
        sch.bind(loop, tag)
    inner = [t[1] for t in r_tiles] + [t[2] for t in s_tiles] + [t[2] for t in r_tiles] + [t[3] for t in s_tiles]
    for loop in inner:
        sch.unroll(loop)
    writeback = sch.cache_write(block, 0, "local")
    _fold_epilogues(sch, writeback)
    if not attempt(sch, "reverse_compute_at", writeback, s_tiles[-1][0], True):
        return False
    _bind_per_thread(sch, writeback, len(spatial), list(zip(tags, threads)))
    if r_tiles:
        sch.decompose_reduction(block, r_tiles[0][0])  # the init's loops keep their kinds
    if shared and r_tiles:
        return _share_operands(sch, block, r_tiles[-1][0], list(zip(tags, threads)), pipelined)
    return not shared


def _bind_per_thread(sch: Schedule, block, count: int, threads: list) -> None:
    """The last ``count`` loops of ``block`` (a thread block's tile) split so that each thread
    (``threads``: (tag, count) of the last axes) runs its own contiguous tile, unrolled."""
    loops = sch.get_loops(block)[-count:]
    outer, inner = [], []
    for loop in loops[:count - len(threads)]:
        inner.append(loop)
    for loop, (_, n) in zip(loops[count - len(threads):], threads):
        a, b = sch.split(loop, [n, None])
        outer.append(a)
        inner.append(b)
    sch.reorder(*outer, *inner)
    for loop, (tag, _) in zip(outer, threads):
        sch.bind(loop, tag)
    for loop in inner:
        sch.unroll(loop)


def _bind_blocks(sch: Schedule, outer: list, threaded: int) -> None:
    """S0 loops: the threaded axes' to blockIdx.y / blockIdx.x, the others fused to blockIdx.z."""
    rest, mine = outer[:len(outer) - threaded], outer[len(outer) - threaded:]
    if rest:
        sch.bind(sch.fuse(*rest) if len(rest) > 1 else rest[0], "blockIdx.z")
    for loop, tag in zip(mine, ("blockIdx.y", "blockIdx.x")[-len(mine):]):
        sch.bind(loop, tag)


def _share_operands(sch: Schedule, block, at, threads: list, pipelined: bool = False) -> bool:
    """Each operand read by the block (not its output) copied into ``shared`` at loop ``at`` by all
    threads: an operand stage (an im2col gather) computed in its copy, the copy's loops ordered so
    that the source's contiguous axis is innermost (a transposed operand is read along its rows),
    fused, split by the threads of each axis and a vector width (none for a gather: consecutive
    threads read consecutive elements); ``pipelined`` and no gather: ``at`` samples its stages."""
    blk = sch.get_block_obj(block)
    operands = [buf for buf in blk.reads if buf not in blk.writes and len(buf.shape) >= 1]
    gathers = False
    for buf in operands:
        index = [b.name for b in sch.get_block_obj(block).reads].index(buf.name)
        copy = attempt(sch, "cache_read", block, index, "shared")
        if not copy or not attempt(sch, "compute_at", copy, at):
            return False
        inline_operand_stage(sch, copy)
        loops = sch.get_loops(copy)
        own = contiguous_last(sch, copy, loops[_position(sch, loops, at) + 1:])
        gather = not source_strides(sch, copy, own)
        gathers = gathers or gather
        fused = sch.fuse(*own) if len(own) > 1 else own[0]
        counts = [count for _, count in threads]
        if gather:
            parts = sch.split(fused, [None] + counts)
        else:
            lanes = _uniform(sch, tuple(max(1, b * 8 // _bits(buf.dtype)) for b in VECTOR_BYTES))
            parts = sch.split(fused, [None] + counts + [lanes])
            sch.vectorize(parts[-1])
            parts = parts[:-1]
        for loop, (tag, _) in zip(parts[1:], threads):
            sch.bind(loop, tag)
        sch.unroll(parts[0])  # a thread's loads issued back to back (a gather's above all)
    if pipelined and not gathers:
        sch.annotate(at, "pipeline_stages", _uniform(sch, STAGES))
    return True


def _position(sch: Schedule, loops: list, at) -> int:
    target = sch.get_loop(at)
    return next(i for i, loop in enumerate(loops) if sch.get_loop(loop) is target)


def _bits(dtype: str) -> int:
    from ...tir.expr import dtype_bits

    return dtype_bits(dtype)


def _fold_epilogues(sch: Schedule, writeback) -> None:
    from .multi_level_tiling import _fold_epilogues as fold

    fold(sch, writeback)


def _structure(sketches):
    from .multi_level_tiling import Structure

    return Structure("SSRRSRS", write_levels=(1,), vector_max=max(REGISTERS_INNER), inner_max=max(REGISTERS_INNER),
                     finish=None, sketches=sketches)


GPU = _structure(apply)
CUDA = _structure(apply_cuda)
HOPPER = _structure(apply_hopper)
