"""row_fusion: row statistics (softmax's max and exp-sum, layer norm's sums) computed under the
row loop of the output that reads them, so that each row is read while it is in cache::

    for r: M[r] = max_j x[r, j]                     for r in parallel(R):
    for r: S[r] = sum_j exp(x[r, j] - M[r])   ->      M[r] = max_j x[r, j]
    for r, j: out[r, j] = exp(x - M[r]) / S[r]        S[r] = sum_j exp(x[r, j] - M[r])
                                                      for j0: for j1 in vectorized(v): out[r, j] = ...

It applies at the first of the reductions without data reuse that the kernel's output block reads
(blocks in program order up to the output: reductions, each read by the output). The output's
loops over the statistics' axes are fused and made parallel, its other loops fused, split by a
sampled vector width and vectorized, and each statistic is moved under the row loop
(``compute_at``, last one first). Two sketches: the statistics' reductions serial, or each
factored by a sampled width (``rfactor``) whose per-lane partials are vectorized::

      M_rf[r, l] = -inf (vectorized l);  for j0: for l in vectorized(v): M_rf[r, l] = max(.., x[r, j0*v + l])
      for l: M[r] = max(M[r], M_rf[r, l])

    sketches = apply(func, sch, "M")
"""
from __future__ import annotations

from ...schedule.schedule import Schedule
from ...tir import arith
from ...tir.expr import IntImm
from .blocks import (
    attempt,
    consumers,
    find_block,
    fork,
    has_reuse,
    is_output,
    is_pending,
    is_spatial,
    loop_kinds,
)

VECTOR_MAX = 64


def _chain(sch: Schedule, name: str):
    """(statistics block names, output block name) where the rule applies at ``name``, else None."""
    blocks = sch.blocks()
    first = find_block(sch, name)
    if first is None or is_spatial(first) or has_reuse(first) or not is_pending(sch, name):
        return None
    start = blocks.index(first)
    stats = []
    for blk in blocks[start:]:
        if is_spatial(blk):
            break
        stats.append(blk)
    rest = blocks[start + len(stats):]
    if len(rest) != 1 or not is_output(sch, rest[0]) or not is_pending(sch, rest[0].name):
        return None
    out = rest[0]
    if any(not is_spatial(b) and out in consumers(sch, b) for b in blocks[:start]):
        return None  # a statistic before it was scheduled on its own
    if not all(not has_reuse(s) and is_pending(sch, s.name) and out in consumers(sch, s) for s in stats):
        return None
    ranks = {len(s.writes[0].shape) for s in stats if len(s.writes) == 1}
    if len(ranks) != 1 or len(stats[0].writes) != 1:
        return None
    rank = ranks.pop()
    loops = sch.loops_above(out)
    rows = [loop.extent for loop in loops[:rank]]
    if len(loops) <= rank or any(not isinstance(arith.simplify(e), IntImm) for e in rows):
        return None
    if [int(arith.simplify(e).value) for e in rows] != [int(s.value) for s in stats[0].writes[0].shape]:
        return None  # the output's leading loops are not the statistics' rows
    return [s.name for s in stats], out.name, rank


def apply(func, sch: Schedule, name: str) -> list:
    chain = _chain(sch, name)
    if chain is None:
        return []
    sketches = []
    for factored in (False, True):
        new = fork(func, sch)
        if _sketch(new, *chain, factored):
            sketches.append(new)
    return sketches


def _sketch(sch: Schedule, stats: list, out: str, rank: int, factored: bool) -> bool:
    block = sch.get_block(out)
    loops = sch.get_loops(block)
    row = sch.fuse(*loops[:rank]) if rank > 1 else loops[0]
    cols = loops[rank:]
    col = sch.fuse(*cols) if len(cols) > 1 else cols[0]
    if not isinstance(arith.simplify(sch.get_loop(col).extent), IntImm):
        return False
    _, lanes = sch.split(col, sch.sample_perfect_tile(col, 2, VECTOR_MAX))
    sch.vectorize(lanes)
    for stat in reversed(stats):
        if not attempt(sch, "compute_at", sch.get_block(stat), row):
            return False
    if not attempt(sch, "parallel", row):  # after compute_at: its check sees the fused rows as one loop
        return False
    return not factored or all(_rfactor(sch, stat) for stat in stats)


def _rfactor(sch: Schedule, name: str) -> bool:
    """The statistic's innermost reduce loop split by a sampled width, its inner part factored
    into per-lane partials (vectorized, their init too)."""
    block = sch.get_block(name)
    kinds = loop_kinds(sch, sch.get_block_obj(block))
    if "R" not in kinds:
        return False
    loops = sch.get_loops(block)
    k = loops[len(kinds) - 1 - kinds[::-1].index("R")]
    if not isinstance(arith.simplify(sch.get_loop(k).extent), IntImm):
        return False
    _, inner = sch.split(k, sch.sample_perfect_tile(k, 2, VECTOR_MAX))
    rf = attempt(sch, "rfactor", inner, len(sch.get_block_obj(block).writes[0].shape))
    if rf is False:
        return False
    rf_kinds = loop_kinds(sch, sch.get_block_obj(rf))
    init = sch.decompose_reduction(rf, sch.get_loops(rf)[rf_kinds.index("R")])
    return all(attempt(sch, "vectorize", sch.get_loops(b)[-1]) for b in (rf, init))
