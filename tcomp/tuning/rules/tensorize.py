"""tensorize: where a registered intrinsic matches a block, a sketch that computes it with the intrinsic.

The intrinsic's description fixes its loops (``dot_16x4_vnni``: a spatial loop of 16 and a
reduce loop of 4). The block's last spatial loops and last reduce loops are split by those
extents, the outer parts tiled as S0 S1 R (S0 fused and parallel; tiles sampled) and the
inner parts put innermost in the description's order, then ``tensorize`` replaces them (on a
GPU target the fused S0 loop is bound to ``blockIdx.x`` instead, a warp per thread block)::

    for i0_j0 in parallel(...):  for i1, j1:  for k0:
      dot_16x4_vnni(&A[i, k0 * 4], &B[j // 16, k0, 0, 0], &C[i, j * 16])

The sketch is built on a fork; where any step refuses (extents not divisible, operands laid
out differently from the description, dtypes) the intrinsic gives no sketch.

    sketches = apply(func, sch, "C", "cpu")
"""
from __future__ import annotations

from ...schedule.intrinsics import description_nest, get_intrinsic, list_intrinsics
from ...schedule.schedule import Schedule, ScheduleError
from ...tir import arith
from ...tir.expr import IntImm
from .blocks import find_block, fork, is_pending, is_spatial, loop_kinds
from .multi_level_tiling import split_levels


def apply(func, sch: Schedule, name: str, target: str) -> list:
    blk = find_block(sch, name)
    if blk is None or not is_pending(sch, name) or is_spatial(blk):
        return []
    sketches = []
    for intrinsic in list_intrinsics(target):
        new = fork(func, sch)
        try:
            _sketch(new, name, intrinsic, target)
        except ScheduleError:
            continue
        sketches.append(new)
    return sketches


def _description_kinds(intrinsic: str) -> list:
    """(kind, extent) of the description's loops, outermost first."""
    nest = description_nest(get_intrinsic(intrinsic))
    realize = nest.realize
    result = []
    for loop in nest.loops:
        kinds = {iv.kind for iv, value in zip(realize.block.iter_vars, realize.iter_values)
                 if any(v is loop.var for v in arith.linear_form(value).terms)}
        if len(kinds) != 1:
            raise ScheduleError(f"intrinsic {intrinsic}: loop {loop.var.name} feeds {kinds or 'no'} iterators")
        result.append((kinds.pop(), loop.extent.value))
    return result


def _sketch(sch: Schedule, name: str, intrinsic: str, target: str) -> None:
    block = sch.get_block(name)
    kinds = loop_kinds(sch, sch.get_block_obj(block))
    loops = sch.get_loops(block)
    wanted = _description_kinds(intrinsic)
    by_kind = {k: [loop for loop, kind in zip(loops, kinds) if kind == k] for k in ("S", "R")}
    if "" in kinds:
        raise ScheduleError(f"block {name}: a loop feeds both spatial and reduce iterators")
    inner = {}
    for kind in ("S", "R"):
        need = [extent for k, extent in wanted if k == kind]
        if len(need) > len(by_kind[kind]):
            raise ScheduleError(f"block {name}: fewer {kind} loops than intrinsic {intrinsic} has")
        for loop, extent in zip(by_kind[kind][len(by_kind[kind]) - len(need):], need):
            size = arith.simplify(sch.get_loop(loop).extent)
            if not isinstance(size, IntImm) or size.value % extent:
                raise ScheduleError(f"block {name}: a loop's extent {size} is not a multiple of {extent}")
            outer, inner_loop = sch.split(loop, [None, extent])
            inner[loop] = (outer, inner_loop)
    outers = {kind: [inner[l][0] if l in inner else l for l in by_kind[kind]] for kind in ("S", "R")}
    s_tiles = [split_levels(sch, loop, 2, None, vector=False) for loop in outers["S"]]
    inner_loops = _in_description_order(wanted, by_kind, inner)
    order = [t[0] for t in s_tiles] + [t[1] for t in s_tiles] + outers["R"] + inner_loops
    sch.reorder(*order)
    sch.tensorize(inner_loops[0], intrinsic)
    parallel = [t[0] for t in s_tiles]
    outer = sch.fuse(*parallel) if len(parallel) > 1 else parallel[0]
    if target in GPU_TARGETS:
        sch.bind(outer, "blockIdx.x")  # one warp per thread block runs the warp-wide intrinsic
    else:
        sch.parallel(outer)


GPU_TARGETS = ("cuda",)


def _in_description_order(wanted: list, by_kind: dict, inner: dict) -> list:
    """The inner split loops, ordered like the description's loops."""
    pools = {kind: [inner[l][1] for l in by_kind[kind] if l in inner] for kind in ("S", "R")}
    return [pools[kind].pop(0) for kind, _ in wanted]
