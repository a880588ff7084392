"""A model's fused group as a GPU kernel function (what ``tcomp.compile(model, target="cuda")`` builds).

In order of preference, the first that the GPU lowering accepts (every block bound):

1. a group with data reuse (matmul, conv) that is a tuning task (``tuning/tasks.py``, its GPU form: a
   conv is an implicit GEMM, ``conv_gemm_task.py``): its block form scheduled by the first of the GPU
   design space's tiling sketches that lowers -- wgmma (sm_90), mma.sync (sm_80 on: 16-bit operands, or
   TF32-rounded fp32 ones),
   then shared-memory SIMT tiles (``rules/gpu_tiling.py``) -- each under the decisions that
   ``tiles.py`` ranks for the product's shape (a few tried, best first). Blocks the sketch leaves to
   other rules (a conv's pad stage) lose their CPU loop kinds and get the default binding;
2. a task with row reductions (softmax, layer norm, Reduce*: before 1. for those anchors, also where
   an input has reuse, as an embedding's layer norm): each such block with rows of
   at least 32 elements (or no rows) gets one row per thread block, its elements over the block's
   threads, combined across threads in shared memory (``rules/gpu_reduction.py``, the row's length
   rounded up to a power of two threads, at most 256); where all nests work on the same rows (the
   reductions, then one elementwise nest reading them), one kernel of a row per block with the
   results in shared memory (``gpu_reduction.schedule_rows``); else the other nests get the default
   binding;
3. any other task (elementwise, short rows): its block form, unscheduled;
   each root nest gets the default binding (outer spatial loops over blocks and threads);
4. other groups (scans, top-k, scatters, symbolic shapes): the CPU template (``lower_group``)
   with its loops made serial (no parallel or vector loops), then the default binding.

A nest with no spatial loop (a full reduction to one value, a scan along its only axis) runs in
one thread, bound explicitly (``threadIdx.x`` of extent 1): slow, but never an unbound kernel. So
does a nest storing at indices read from memory (a scatter: duplicate indices keep their order). So
does, as a last resort, every nest of a template whose loops the default binding cannot bind
(``"serial"``: a row's init block not under the row loop, for instance).
With ``"cuda -tf32"`` the tasks' fp32 products round their operands to TF32 (``cuda/tf32.py``), and
the mma.sync sketch takes them (m16n8k8 .tf32) as it takes 16-bit products.
A task with a record in the tuning database (``compile(..., db=)``, records of target ``cuda``, or
``cuda -tf32``)
takes the best record's schedule first. ``func.attrs["gpu_schedule"]`` says which of "tuned",
"tiled", "default", "template", "serial" was taken.
"""
from __future__ import annotations

import math

from ...errors import TcompError
from ...tir import arith
from ...tir.expr import IntImm, Var
from ...tir.stmt import Allocate, BlockRealize, BufferStore, For, SeqStmt
from ...tir.transform import walk_stmts
from ...tuning.rules.blocks import inline_operand_stages
from . import tiles
from .binding import (
    DEFAULT_THREADS,
    _first_realize_per_nest,
    _spatial_prefix,
    bind_default,
    nest_binds,
)
from .lower import lower_for_gpu

TRIES_PER_SKETCH = 3  # ranked decisions tried per sketch before the next sketch
CPU_LOOP_KINDS = ("parallel", "vectorized")
# anchors whose reductions are rows (taken by cross-thread reductions before tiling, even with reuse)
ROW_ANCHORS = ("Softmax", "LogSoftmax", "LayerNormalization", "ReduceSum", "ReduceMean", "ReduceMax", "ReduceMin",
               "ReduceSumSquare", "ReduceL1", "ReduceL2", "ReduceLogSum", "ReduceLogSumExp")


def gpu_group_func(group, target: str, db=None, name: str = "kernel", cache: dict | None = None):
    """The GPU kernel function of ``group``, bound (``lower_for_gpu`` accepts it); the best record of
    ``db`` (a tuning ``Database``) for the target's kind comes first. ``target``: "cuda", "webgpu",
    or with an architecture ("cuda -arch=sm_90": its sketches and multiprocessors; plain "cuda"
    asks device 0). ``cache`` (a dict kept across the groups of a model) returns the function made
    for an earlier group of the same workload (the layers of a transformer are scheduled once)."""
    from ...schedule.lower import lower_group
    from ...tuning.tasks import database_target, group_func, tuned_group_func
    from ...tuning.workload import workload_key

    target_kind = target.split()[0]
    task = group_func(group, target)  # "cuda -tf32": fp32 products round their operands (cuda/tf32.py)
    key = workload_key(task) if task is not None and cache is not None else None
    if key is not None and key in cache:
        return _copy(cache[key])
    candidates = []
    if task is not None and db is not None:
        candidates.append((lambda: tuned_group_func(group, db, database_target(target), task), "tuned"))
    if task is not None:
        tiled, rows = (lambda: tiled_func(task, target), "tiled"), (lambda: _reduction(task, target_kind), "reduction")
        row_anchor = group.anchor is not None and group.anchor.op in ROW_ANCHORS
        candidates += [rows, tiled] if row_anchor else [tiled, rows]
        candidates.append((lambda: _bound(task), "default"))
    candidates.append((lambda: _bound(lower_group(group, name, 1, 1)), "template"))
    candidates.append((lambda: _bound(lower_group(group, name, 1, 1), serial=True), "serial"))
    errors = []
    for make, how in candidates:
        try:
            func = make()
            if func is None:
                continue
            lower_for_gpu(func, target_kind)
        except TcompError as exc:
            errors.append(f"{how}: {exc}")
            continue
        if task is not None and "param_layouts" in task.attrs and how != "template":
            func.attrs["param_layouts"] = task.attrs["param_layouts"]
        func.attrs.update({"ops": group.label, "gpu_schedule": how})
        if key is not None:
            cache[key] = _copy(func)  # as made: the caller may rename what it is given
        return func
    raise TcompError(f"cannot lower the fused group {group.label} for {target_kind}: " + "; ".join(errors))


def _copy(func):
    from ...schedule.schedule import Schedule

    return Schedule(func).func


def tiled_func(func, target: str):
    """``func`` scheduled by the first of the design space's tiling sketches that lowers (tensor cores
    first: wgmma, then mma.sync, then shared-memory SIMT tiles), each under its decisions ranked by
    shape (``tiles.py``, best first); None where ``func`` has no block with data reuse."""
    found = _tiled(func, target)
    return None if found is None else found[1]


def tiled_trace(func, target: str):
    """The trace (a design-space sketch with its decisions) of ``tiled_func``'s schedule, or None:
    the candidate the tuner measures first (``tuning/tuner.py``)."""
    found = _tiled(func, target)
    return None if found is None else found[0]


def _tiled(func, target: str):
    """(trace, scheduled and bound func) of ``tiled_func``, or None."""
    from ...build import lower
    from ...schedule.schedule import Schedule
    from ...tuning.rules import multi_level_tiling
    from ...tuning.space import design_space

    sch = Schedule(func)
    products = [blk.name for blk in sch.blocks() if multi_level_tiling.applies(sch, blk.name)]
    if not products:
        return None
    shape = _product_shape(sch, products[0])
    arch = _arch(target)
    candidates = [(_sketch_rank(trace), cost, position, trace, values)
                  for position, trace in enumerate(design_space(func, target, intrinsics=False))
                  for cost, values in _ranked_values(trace, shape, arch)[:TRIES_PER_SKETCH]]
    errors = []
    for _, _, _, trace, values in sorted(candidates, key=lambda c: c[:3]):
        try:
            sch = trace.apply_to(func, decisions=_decisions(trace, values, products[0]))
            scheduled = _bound(lower(sch.func), vectors=True)
            lower_for_gpu(scheduled, target.split()[0])
            return sch.trace, scheduled
        except TcompError as exc:
            errors.append(str(exc))
    raise TcompError("no tiling sketch applies: " + "; ".join(errors))


def _product_shape(sch, name: str) -> tuple:
    """(rows, cols, depth, batch) of product block ``name``: its last two spatial loops, the
    product of its reduce loops, the product of its other spatial loops."""
    from ...tuning.rules.blocks import loop_kinds

    blk = sch.get_block_obj(sch.get_block(name))
    extents = [int(arith.simplify(loop.extent).value) for loop in sch.loops_above(blk)]
    kinds = loop_kinds(sch, blk)
    spatial = [e for e, k in zip(extents, kinds) if k == "S"]
    depth = math.prod(e for e, k in zip(extents, kinds) if k == "R")
    rows, cols = ([1] + spatial)[-2:]
    return rows, cols, depth, math.prod(spatial[:-2])


def _sketch_kind(trace) -> tuple:
    """("wgmma", width), ("mma", 0), ("mma", 8) (tf32: 8-deep fragments), ("simt", 0), or ("other", 0)
    for other tensorized sketches
    (WMMA reading global memory in place: slow, and no operand stage gathers into it)."""
    names = [inst.inputs[-1] for inst in trace.instructions
             if inst.kind == "tensorize" and isinstance(inst.inputs[-1], str)]
    for name in names:
        if name.startswith("wgmma_64x") and "x64_" in name:
            return "wgmma", int(name.split("x")[1])
        if name.startswith("mma_16x8x16"):
            return "mma", 0
        if name.startswith("mma_16x8x8_tf32"):
            return "mma", 8
    return ("other", 0) if names else ("simt", 0)


def _sketch_rank(trace) -> tuple:
    """Tensor cores first (wgmma, then mma.sync), then shared-memory SIMT tiles, then the others; the
    tiles' costs order the candidates of one rank (the wgmma widths among each other)."""
    kind, _ = _sketch_kind(trace)
    shared = any(i.kind == "cache_read" for i in trace.instructions)
    return {"wgmma": 0, "mma": 1, "simt": 2, "other": 3}[kind], not shared


def _ranked_values(trace, shape: tuple, arch: str | None) -> list:
    """``tiles.py``'s (cost, decisions) for the sketch, cheapest first (none for mma.sync before sm_80)."""
    kind, width = _sketch_kind(trace)
    rows, cols, depth, batch = shape
    sms = tiles.multiprocessors(arch)
    if kind == "wgmma":
        return tiles.wgmma(width, rows, cols, depth, batch, sms)
    if kind == "mma":
        return tiles.mma(rows, cols, depth, batch, sms, *((8, 4) if width else ())) if tiles.has_mma_sync(arch) else []
    if kind == "other":
        return []
    ranked = tiles.simt(rows, cols, depth, batch, sms)
    threaded = sum(1 for i in trace.instructions if i.kind == "bind" and i.inputs[-1] == "threadIdx.x")
    return ranked if rows > 1 or threaded == 0 else [(cost, values[3:]) for cost, values in ranked]


def _decisions(trace, values: list, product: str) -> dict:
    """The sample_categorical decisions (candidate indices) taking ``values`` in sampling order from
    the first after the sketch of block ``product`` begins (its ``get_block``); the largest
    candidate for the others (vector widths, other blocks' threads)."""
    decisions = {}
    begin = next((i for i, inst in enumerate(trace.instructions)
                  if inst.kind == "get_block" and inst.inputs[:1] == (product,)), 0)
    samples = [(index, tuple(inst.inputs[0])) for index, inst in enumerate(trace.instructions)
               if inst.kind == "sample_categorical"]
    for index, candidates in samples:
        if index < begin:
            decisions[index] = len(candidates) - 1
    samples = [(index, candidates) for index, candidates in samples if index >= begin]
    for position, (index, candidates) in enumerate(samples):
        value = values[position] if position < len(values) else None
        decisions[index] = candidates.index(value) if value in candidates else len(candidates) - 1
    return decisions


def _arch(target: str) -> str | None:
    if not target.startswith("cuda"):
        return None
    from ...tuning.space import _cuda_arch

    return _cuda_arch(target)


def _reduction(func, target_kind: str):
    """``func`` as one kernel of a row per block where its nests all work on the same rows
    (``gpu_reduction.schedule_rows``, if it lowers for ``target_kind``), else with each reduction that
    ``rules/gpu_reduction.py`` applies to bound across threads (its default thread count), the rest
    bound by default; None where none applies."""
    from ...schedule.schedule import Schedule
    from ...tuning.rules import gpu_reduction

    sch = Schedule(func)
    names = [blk.name for blk in sch.blocks() if gpu_reduction.applies(sch, blk.name)]
    if not names:
        return None
    rows = Schedule(func)  # one kernel (its rows' results in shared memory) where every nest works on the same rows
    if gpu_reduction.schedule_rows(rows, max(gpu_reduction.default_threads(rows, name) for name in names)):
        try:
            scheduled = _bound(rows.func)
            lower_for_gpu(scheduled, target_kind)
            return scheduled
        except TcompError:
            pass
    for name in names:
        gpu_reduction.schedule(sch, name, gpu_reduction.default_threads(sch, name))
    return _bound(sch.func)


def _bound(func, serial: bool = False, threads: int = DEFAULT_THREADS, vectors: bool = False):
    """``func`` with CPU loop kinds made serial (``vectors``: vectorized loops kept, a GPU sketch's
    vector copies of shared tiles, which the renderer writes as 16-byte or ``cp.async`` accesses),
    nests without a spatial loop (every nest, with ``serial``) in one thread, and every other nest
    given the default binding (``threads`` per block)."""
    from ...schedule.schedule import Schedule

    sch = Schedule(func)  # a private copy; its blocks are the ones asked about below
    inline_operand_stages(sch)  # an im2col stage left by no sketch is read in place, never materialized
    func = sch.func
    serial_kinds = ("parallel",) if vectors else CPU_LOOP_KINDS
    for node in walk_stmts(func.body):
        if isinstance(node, For) and node.kind in serial_kinds:
            node.kind = "serial"
    scattering = {id(n) for nest in _root_nests(func.body) if _stores_indirectly(nest)
                  for n in walk_stmts(nest) if isinstance(n, BlockRealize)}
    one_thread = {id(realize) for realize in _first_realize_per_nest(func.body)
                  if not nest_binds(sch, realize) and (serial or id(realize) in scattering
                                                       or not _spatial_prefix(sch.loops_above(realize)))}
    if one_thread or serial:
        func.body = _wrap_nests(func.body, one_thread, serial)
    body = func.body
    while serial and isinstance(body, Allocate):  # one thread runs everything: its buffers are device memory
        body.buffer.scope = "global"
        body = body.body
    return bind_default(func, threads)


def _root_nests(body) -> tuple:
    while isinstance(body, Allocate):
        body = body.body
    return body.stmts if isinstance(body, SeqStmt) else (body,)


def _stores_indirectly(nest) -> bool:
    """Whether ``nest`` stores at an index read from memory (a scatter): two of its iterations may
    write one element, in an order (or combining) that threads racing each other would lose, so it
    runs in one thread, in the template's order."""
    from ...tir.expr import Load, walk

    return any(isinstance(n, BufferStore) and any(isinstance(e, Load) for i in n.indices for e in walk(i))
               for n in walk_stmts(nest))


def _wrap_nests(body, serial: set, every: bool = False):
    """``body`` with each root nest whose first block is in ``serial`` (``every``: each nest that binds
    no loop) under a loop of one iteration bound to ``threadIdx.x`` (one thread runs it)."""
    if isinstance(body, Allocate):
        return Allocate(body.buffer, _wrap_nests(body.body, serial, every))
    nests = body.stmts if isinstance(body, SeqStmt) else (body,)
    wrapped = []
    for nest in nests:
        first = next((id(n) for n in walk_stmts(nest) if isinstance(n, BlockRealize)), None)
        unbound = not any(isinstance(n, For) and n.kind == "thread_binding" for n in walk_stmts(nest))
        one = first in serial or (every and unbound)
        wrapped.append(For(Var("one"), IntImm(1), nest, "thread_binding", "threadIdx.x") if one else nest)
    return SeqStmt(tuple(wrapped)) if isinstance(body, SeqStmt) else wrapped[0]
