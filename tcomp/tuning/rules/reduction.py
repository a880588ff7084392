"""reduction: reductions without data reuse (row sums, row max, a full sum, pooling windows).

plain: the spatial loops fused and parallel, the reduction serial inside::

    for i in parallel(M):  for k in range(K):  B[i] = max(B[i], A[i, k])

rfactor: the innermost reduce loop split by a sampled factor v (at most 64); its inner part
becomes a spatial axis of ``B_rf`` and is vectorized, then B reduces B_rf::

    for i in parallel(M):
      for k0:  for k1 in vectorized(v):  B_rf[i, k1] = max(B_rf[i, k1], A[i, k0 * v + k1])
      for k1:  B[i] = max(B[i], B_rf[i, k1])

spatial vector: where an input is read along the output's innermost axis (pooling windows, a
reduction over a leading axis), that axis is split by a sampled width v, the reduce loops moved
between its parts, and the inner part vectorized (whole vectors of outputs accumulate)::

    for n_c_oh_ow0 in parallel(...):
      for ow1 in vectorized(v): P[.., ow] = -inf
      for r, s:  for ow1 in vectorized(v):  P[.., ow] = max(P[.., ow], X[.., oh*2 + r, ow*2 + s])
      for ow1 in vectorized(v): out[.., ow] = epilogue(P[.., ow])     (its one elementwise consumer)

A symbolic reduce extent gets only the plain sketch (rfactor needs an exact split).

    sketches = apply(func, sch, "B")
"""
from __future__ import annotations

from ...schedule.regions import read_indices
from ...schedule.schedule import Schedule
from ...tir import arith
from ...tir.expr import IntImm, free_vars
from .blocks import (
    attempt,
    consumers,
    find_block,
    fork,
    is_pending,
    is_spatial,
    loop_kinds,
)

VECTOR_MAX = 64


def applies(sch: Schedule, name: str) -> bool:
    blk = find_block(sch, name)
    return blk is not None and is_pending(sch, name) and not is_spatial(blk) and \
        all(loop_kinds(sch, blk))


def apply(func, sch: Schedule, name: str) -> list:
    if not applies(sch, name):
        return []
    sketches = [_plain(fork(func, sch), name)]
    rf = fork(func, sch)
    if _rfactor(rf, name):
        sketches.append(rf)
    vec = fork(func, sch)
    if _spatial_vector(vec, name):
        sketches.append(vec)
    return sketches


def _parallel_spatial(sch: Schedule, block) -> None:
    """Fuses the leading spatial loops of ``block`` and makes them parallel."""
    kinds = loop_kinds(sch, sch.get_block_obj(block))
    loops = sch.get_loops(block)
    count = next((i for i, k in enumerate(kinds) if k != "S"), len(kinds))
    if count:
        sch.parallel(sch.fuse(*loops[:count]) if count > 1 else loops[0])


def _plain(sch: Schedule, name: str) -> Schedule:
    _parallel_spatial(sch, sch.get_block(name))
    return sch


def _rfactor(sch: Schedule, name: str) -> bool:
    block = sch.get_block(name)
    kinds = loop_kinds(sch, sch.get_block_obj(block))
    loops = sch.get_loops(block)
    if kinds != sorted(kinds, reverse=True):  # spatial loops first, then reduce loops
        return False
    k = loops[len(kinds) - 1]
    if not isinstance(arith.simplify(sch.get_loop(k).extent), IntImm):
        return False
    _, inner = sch.split(k, sch.sample_perfect_tile(k, 2, VECTOR_MAX))
    rank = len(sch.get_block_obj(block).writes[0].shape)
    rf = attempt(sch, "rfactor", inner, rank)
    if rf is False:
        return False
    rf_kinds = loop_kinds(sch, sch.get_block_obj(rf))
    sch.decompose_reduction(rf, sch.get_loops(rf)[rf_kinds.index("R")])  # before the first reduce loop left
    _parallel_spatial(sch, rf)  # the spatial loops it shares with the final reduction
    rf_name = sch.get_block_obj(rf).name
    for blk in [b.name for b in sch.blocks() if b.name in (rf_name, f"{rf_name}_init")]:
        attempt(sch, "vectorize", sch.get_loops(sch.get_block(blk))[-1])
    return True


def _spatial_vector(sch: Schedule, name: str) -> bool:
    block = sch.get_block(name)
    blk = sch.get_block_obj(block)
    kinds = loop_kinds(sch, blk)
    loops = sch.get_loops(block)
    if "S" not in kinds or "R" not in kinds or kinds != sorted(kinds, reverse=True):
        return False
    last = loops[kinds.count("S") - 1]
    if not isinstance(arith.simplify(sch.get_loop(last).extent), IntImm) or not _read_along(sch, blk, last):
        return False
    outer, inner = sch.split(last, sch.sample_perfect_tile(last, 2, VECTOR_MAX))
    reduce_loops = [loop for loop, kind in zip(loops, kinds) if kind == "R"]
    sch.reorder(*reduce_loops, inner)
    _epilogue_under(sch, name, outer)  # before the init is split off and the loops fused: exact regions
    init = sch.decompose_reduction(block, reduce_loops[0])
    _parallel_spatial(sch, block)
    sch.vectorize(inner)
    return attempt(sch, "vectorize", sch.get_loops(init)[-1]) is not False


def _epilogue_under(sch: Schedule, name: str, loop) -> None:
    """Moves the one elementwise consumer of block ``name`` (its epilogue) under ``loop``, right
    after the elements it reads are reduced, its innermost loop vectorized."""
    after = consumers(sch, find_block(sch, name))
    if len(after) != 1 or not is_spatial(after[0]) or not is_pending(sch, after[0].name):
        return
    epilogue = sch.get_block(after[0].name)
    if attempt(sch, "reverse_compute_at", epilogue, loop, True):  # unit loops kept: one loop structure for every sampled width
        attempt(sch, "vectorize", sch.get_loops(epilogue)[-1])


def _read_along(sch: Schedule, blk, loop) -> bool:
    """Whether the inputs of ``blk`` indexed by ``loop`` are all read with it in their last index."""
    var = sch.get_loop(loop).var
    realize = sch.realize_of(blk)
    fed = {iv.var for iv, value in zip(blk.iter_vars, realize.iter_values) if var in free_vars(value)}
    reads = [indices for buf in blk.reads if buf not in blk.writes for indices in read_indices(blk, buf)
             if any(fed & free_vars(i) for i in indices)]
    return bool(reads) and all(fed & free_vars(indices[-1]) for indices in reads)
