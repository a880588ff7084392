"""The design space of a kernel: sketches, each a trace whose sampling instructions draw a candidate.

    sketches = design_space(func, target="cpu")
    sch = sketches[0].apply_to(func, resample=True, seed=7)   # one candidate program
    kernel = tcomp.build(sch)

How sketches are made (rules in ``rules/``):

1. ``auto_inline`` inlines elementwise producers into their consumers.
2. Each remaining block, in program order, that no earlier step scheduled (a spatial epilogue
   moved under a matmul tile is scheduled), is given to the first rules that apply; each
   sketch so far forks into one per result:
   - blocks with data reuse (matmul, batch matmul, conv): ``tensorize`` sketches for every
     registered intrinsic that matches, plus ``multi_level_tiling`` (the target's structure;
     no cache / cache-write at each level);
   - other reductions: ``reduction`` (plain parallel, rfactor), and on the CPU, where they are row
     statistics of the output (softmax, layer norm), ``row_fusion`` (computed under its row loop);
   - spatial blocks: ``injective`` (fuse, split by the vector width, parallel, vectorize).
   On GPU targets the blocks without reuse take ``gpu_reduction`` (rows across the threads of a
   thread block) or else ``gpu_binding`` (outer spatial loops over blocks and threads), so that
   every candidate binds every block.
3. A block no rule takes stays as it is.

Never empty: a kernel no rule applies to gives one empty trace (the unscheduled program).
"""
from __future__ import annotations

from ..schedule.schedule import Schedule
from ..targets.gpu import tiles
from ..tir.stmt import PrimFunc
from .rules import (
    auto_inline,
    gpu_binding,
    gpu_reduction,
    gpu_tiling,
    injective,
    multi_level_tiling,
    reduction,
    row_fusion,
    tensorize,
)
from .rules.blocks import find_block, is_operand_stage

STRUCTURES = {"cpu": multi_level_tiling.CPU, "cuda": gpu_tiling.CUDA, "webgpu": gpu_tiling.GPU}
GPU_KINDS = ("cuda", "webgpu")


def design_space(func: PrimFunc, target: str = "cpu", intrinsics: bool = True) -> list:
    """The sketches (Traces with sampling instructions) for ``func`` on ``target`` (a kind, or
    ``"cuda -arch=sm_90"``: sm_90 adds the wgmma sketches; plain ``"cuda"`` asks device 0 where
    there is one). ``intrinsics=False`` leaves out the ``tensorize`` rule's sketches (the
    structures' own tensor-core sketches stay)."""
    kind = target.split()[0] if target.split() else target
    if kind not in STRUCTURES:
        raise ValueError(f"design_space: unknown target {target!r} (known: {', '.join(STRUCTURES)})")
    structure = STRUCTURES[kind]
    if kind == "cuda":
        arch = _cuda_arch(target)
        if arch in ("sm_90", "sm_90a"):
            structure = gpu_tiling.HOPPER
        elif not tiles.has_async_copy(arch):
            structure = gpu_tiling.GPU  # no cp.async to pipeline the shared copies with
    base = Schedule(func, seed=0)
    auto_inline.apply(base)
    sketches = [base]
    for name in [b.name for b in base.blocks()]:
        sketches = [new for sch in sketches for new in _rules(func, sch, name, kind, structure, intrinsics) or [sch]]
    return [sch.trace for sch in sketches]


def _cuda_arch(target: str) -> str | None:
    """The architecture a cuda target names, else device 0's; None without a GPU."""
    from ..errors import TcompError
    from ..targets.cuda.kernel import parse_target

    arch = parse_target(target)
    if arch is None:
        try:
            from ..targets.cuda.driver import device_arch

            arch = device_arch()
        except TcompError:
            return None
    return arch


def _rules(func, sch: Schedule, name: str, target: str, structure, intrinsics: bool = True) -> list:
    """The sketches that block ``name`` forks ``sch`` into ([] where no rule applies, and for an
    operand stage: the product's sketches gather it into their tiles)."""
    blk = find_block(sch, name)
    if blk is not None and is_operand_stage(blk):
        return []
    if multi_level_tiling.applies(sch, name):
        tensorized = tensorize.apply(func, sch, name, target) if intrinsics else []
        return tensorized + multi_level_tiling.apply(func, sch, name, structure)
    if target in GPU_KINDS:
        return gpu_reduction.apply(func, sch, name) or gpu_binding.apply(func, sch, name) or \
            tensorize.apply(func, sch, name, target)
    fused_rows = row_fusion.apply(func, sch, name) if target == "cpu" else []
    return fused_rows + reduction.apply(func, sch, name) or injective.apply(func, sch, name) or \
        tensorize.apply(func, sch, name, target)
