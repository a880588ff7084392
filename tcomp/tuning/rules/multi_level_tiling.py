"""multi_level_tiling: blocks with data reuse (matmul, batch matmul, conv) tiled by a structure.

The CPU structure is "SSRSRS": each spatial loop split into 4 levels, each reduce loop into 2,
ordered S0 S1 R0 S2 R1 S3 (for a matmul: i0 j0 i1 j1 k0 i2 j2 k1 i3 j3)::

    for i0_j0 in parallel(...):             # S0, fused
      for i1, j1:                           # S1: the cache tile
        for k0:                             # R0
          for i2, j2:                       # S2
            for k1:                         # R1
              for i3 in unrolled, j3 in vectorized:   # S3: the register tile
                C_local[i, j] += A[i, k] * B[k, j]
        C[...] = relu(C_local[...])         # write-back (+ fused epilogue), vectorized

Tile sizes are ``sample_perfect_tile`` decisions (a symbolic extent is split by fixed factors
instead). Sketches: no cache, and ``cache_write(C, "local")`` written back under the last S0
or S1 loop (``Structure.write_levels``), each also with the operands the row loops do not
index (B) packed into a per-R0-step panel; an elementwise epilogue (relu, bias) is folded
into the write-back (``reverse_compute_inline``) or moved under the tile
(``reverse_compute_at``). The init is decomposed out of the reduction loops.

A ``Structure`` holds the pattern and the target's finishing step (parallel / vectorize /
unroll on the CPU); the GPU structure (``gpu_tiling.GPU``, "SSRRSRS" with S0 bound to
blockIdx, S1 to threadIdx, operands staged in shared memory) makes its own sketches.

    sketches = apply(func, sch, "C", CPU)
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from ...schedule.schedule import Schedule
from ...tir import arith
from ...schedule.regions import read_indices
from ...tir.expr import IntImm, free_vars
from .blocks import (
    access_strides,
    attempt,
    consumers,
    find_block,
    fork,
    has_reuse,
    is_pending,
    is_spatial,
    loop_kinds,
)


@dataclass(frozen=True)
class Structure:
    pattern: str            # "S"/"R" per tile level, outermost first
    write_levels: tuple     # S levels under whose last loop a cache write-back may go
    vector_max: int         # innermost tile bound of the vectorized (last spatial) loop
    inner_max: int          # innermost tile bound of the other spatial loops
    finish: Callable        # finish(sch, block_rv, tiles): target annotations on the tiled nest
    sketches: Callable | None = None  # sketches(func, sch, name): a structure that tiles its own way (GPU)


@dataclass
class Tiles:
    """The loops of a tiled block: ``levels[n]`` are the loops of pattern level n, in order."""

    levels: list
    spatial: list           # per spatial loop of the block, its tile loops (outermost first)
    reduce: list            # per reduce loop, its tile loops

    def last_of_s_level(self, level: int):
        return self.spatial[-1][level]


def applies(sch: Schedule, name: str) -> bool:
    blk = find_block(sch, name)
    if blk is None or not is_pending(sch, name) or is_spatial(blk) or not has_reuse(blk):
        return False
    kinds = loop_kinds(sch, blk)
    return all(kinds) and "S" in kinds and len(blk.writes) == 1


def apply(func, sch: Schedule, name: str, structure: Structure) -> list:
    """One sketch per cache-write choice (none, or at each of ``structure.write_levels``)."""
    if not applies(sch, name):
        return []
    if structure.sketches is not None:
        return structure.sketches(func, sch, name)
    sketches = []
    for level in (None,) + tuple(structure.write_levels):
        for pack in ((False, True) if level is not None else (False,)):
            new = fork(func, sch)
            if _sketch(new, name, structure, level, pack):
                sketches.append(new)
    return sketches


def tile(sch: Schedule, block_rv, structure: Structure) -> Tiles:
    """Splits the block's loops by the pattern and reorders them level by level."""
    kinds = loop_kinds(sch, sch.get_block_obj(block_rv))
    loops = sch.get_loops(block_rv)
    n_s, n_r = structure.pattern.count("S"), structure.pattern.count("R")
    last_s = max(i for i, k in enumerate(kinds) if k == "S")
    spatial, reduce = [], []
    for index, (loop, kind) in enumerate(zip(loops, kinds)):
        if kind == "S":
            bound = structure.vector_max if index == last_s else structure.inner_max
            spatial.append(split_levels(sch, loop, n_s, bound, vector=index == last_s))
        else:
            reduce.append(split_levels(sch, loop, n_r, None, vector=False))
    levels, used = [], {"S": 0, "R": 0}
    for char in structure.pattern:
        group = spatial if char == "S" else reduce
        levels.append([tiles[used[char]] for tiles in group])
        used[char] += 1
    order = [loop for level in levels for loop in level]
    if len(order) > 1:
        sch.reorder(*order)
    return Tiles(levels, spatial, reduce)


def split_levels(sch: Schedule, loop, n: int, bound: int | None, vector: bool) -> list:
    """``n`` loops from ``loop``: sampled perfect tiles, or for a symbolic extent fixed factors
    (the innermost 16 on the vectorized loop, 1 elsewhere)."""
    if n == 1:
        return [loop]
    if isinstance(arith.simplify(sch.get_loop(loop).extent), IntImm):
        factors = sch.sample_perfect_tile(loop, n, bound)
    else:
        factors = [None] + [1] * (n - 2) + [16 if vector else 1]
    return sch.split(loop, factors)


def _sketch(sch: Schedule, name: str, structure: Structure, write_level: int | None, pack: bool) -> bool:
    block = sch.get_block(name)
    tiles = tile(sch, block, structure)
    epilogue_at = tiles.last_of_s_level(write_level if write_level is not None else structure.write_levels[-1])
    if write_level is not None:
        writeback = sch.cache_write(block, 0, "local")
        _fold_epilogues(sch, writeback)
        if not attempt(sch, "reverse_compute_at", writeback, epilogue_at, True):
            return False
    else:
        _move_epilogue(sch, name, epilogue_at)
    structure.finish(sch, block, tiles)
    return not pack or _pack_panels(sch, block, tiles)


def _pack_panels(sch: Schedule, block, tiles: Tiles) -> bool:
    """Copies the operands that the row loops do not index (B of a matmul, the weights of a
    conv) into a panel per R0 step: ``cache_read`` then ``compute_at`` the outermost reduce
    tile, where buffer compaction makes the panel a small contiguous per-thread buffer
    (``B_local[k1, j2*j3]`` rows read by vector loads) instead of strided rows of B."""
    if not tiles.reduce or len(tiles.spatial) < 2:
        return False
    blk = sch.get_block_obj(block)
    spatial = [iv.var for iv in blk.iter_vars if iv.kind == "S"]
    rows = spatial[-2]
    outputs = set(blk.writes)
    panels = [buf for buf in blk.reads if buf not in outputs and len(buf.shape) >= 2
              and not any(rows in free_vars(i) for idx in read_indices(blk, buf) for i in idx)]
    if not panels:
        return False
    for buf in panels:
        copy = attempt(sch, "cache_read", block, [b.name for b in sch.get_block_obj(block).reads].index(buf.name),
                       "local")
        if not copy or not attempt(sch, "compute_at", copy, tiles.reduce[0][0]):
            return False
    return True


def _fold_epilogues(sch: Schedule, writeback) -> None:
    """Folds elementwise consumers of the write-back's output into it, one after another."""
    while True:
        after = consumers(sch, sch.get_block_obj(writeback))
        if len(after) != 1 or not is_spatial(after[0]) or not is_pending(sch, after[0].name):
            return
        if not attempt(sch, "reverse_compute_inline", sch.get_block(after[0].name)):
            return


def _move_epilogue(sch: Schedule, name: str, loop) -> None:
    """Moves an elementwise consumer of the block under ``loop`` (after the tile's reduction)."""
    after = consumers(sch, find_block(sch, name))
    if len(after) == 1 and is_spatial(after[0]) and is_pending(sch, after[0].name):
        attempt(sch, "reverse_compute_at", sch.get_block(after[0].name), loop, True)


def cpu_finish(sch: Schedule, block, tiles: Tiles) -> None:
    """Parallel fused S0 loops, vectorized innermost spatial loop, unrolled other S3 loops, the
    init decomposed before the first reduce loop; the nests beside the block (write-back,
    epilogue, init) vectorized by ``LANES`` along their innermost loop (a tail under a predicate:
    their extents are products of sampled tiles), a write-back that stores across its lanes
    transposed (``_transposed_write``)."""
    outer = sch.fuse(*tiles.levels[0]) if len(tiles.levels[0]) > 1 else tiles.levels[0][0]
    sch.parallel(outer)
    *rows, lanes = tiles.spatial
    sch.vectorize(lanes[-1])
    for row in rows:
        sch.unroll(row[-1])
    if tiles.reduce:
        sch.decompose_reduction(block, tiles.reduce[0][0])
    main = sch.get(block)
    root = sch.loops_above(main)[0]
    for blk in sch.blocks():
        loops = sch.loops_above(blk)
        if blk is not main and loops and loops[0] is root and loops[-1].kind == "serial":
            block_rv = sch.get_block(blk.name)
            if not _transposed_write(sch, block_rv):
                sch.vectorize(sch.split(sch.get_loops(block_rv)[-1], [None, LANES])[1])


def _transposed_write(sch: Schedule, block) -> bool:
    """Where the nest's store is contiguous along its next-to-innermost loop and strided along the
    innermost (a conv's write-back from pixel-major C to NCHW), ``TRANSPOSED`` iterations of the
    former unrolled around ``LANES`` of the latter: the code generator transposes them in registers
    (``targets/cpu/transposed.py``) instead of scattering each vector (a tail group, where the
    sampled tiles leave one, runs as before)."""
    loops = sch.get_loops(block)
    if len(loops) < 2:
        return False
    store = access_strides(sch, block, loops[-2:])[0]
    if store is None or store[0] != 1 or store[1] in (0, 1):
        return False
    pixels_o, pixels_i = sch.split(loops[-2], [None, TRANSPOSED])
    lanes_o, lanes_i = sch.split(loops[-1], [None, LANES])
    sch.reorder(pixels_o, lanes_o, pixels_i, lanes_i)
    sch.unroll(pixels_i)
    sch.vectorize(lanes_i)
    return True

LANES = 16
TRANSPOSED = 8  # pixels of a transposed write-back group
CPU = Structure("SSRSRS", write_levels=(0, 1), vector_max=64, inner_max=16, finish=cpu_finish)
