"""GPU lowering: a scheduled PrimFunc -> device kernels a C-like renderer prints.

Each root-level loop nest becomes one kernel (a grid-wide dependency between nests is a
kernel boundary); global buffers allocated at the root become device memory of the run::

    C_tmp = alloc(float32[1024], scope="global")      DeviceProgram(temporaries=[C_tmp], kernels=[
    for b in blockIdx.x(4): for t in threadIdx.x(256):  ->   f_kernel0: launch {blockIdx.x: 4, threadIdx.x: 256},
      ... C_tmp[b * 256 + t] = ..                           f_kernel1: launch {threadIdx.x: 1024}])
    for t in threadIdx.x(1024): .. C_tmp[t] ..

On the way: a function that binds no loop gets the default binding (``binding.py``); all loops
bound to one axis share one variable (``threadIdx_x``), so buffers compacted per thread or per
block (``schedule/compact.py``) are indexed alike in every nest; each kernel is checked to be
bound (``check_bound``), reductions over ``threadIdx.x`` become shared-memory trees
(``cross_thread.py``), its shared buffers are hoisted to its top and barriers inserted
(``barriers.py``); loops annotated ``pipeline_stages`` are software-pipelined (``pipeline.py``, with
bulk copies where asked and possible: ``bulk_copy.py``) and asynchronous matrix instructions waited
for (``async_mma.py``).
Nothing here is specific to a vendor.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

from ...tir import arith
from ...tir.expr import BinOp, IntImm, Var
from ...tir.stmt import Allocate, BlockRealize, Evaluate, For, PrimFunc, SeqStmt, Stmt
from ...tir.transform import buffer_accesses, substitute_in_place, used_size_vars, walk_stmts
from .async_mma import wait_for_async_mma
from .barriers import insert_barriers
from .binding import GPULoweringError, bind_default, binds_threads, check_bound
from .bulk_copy import tile_maps
from .cross_thread import lower_cross_thread
from .pipeline import pipeline_loops

MAX_THREADS_PER_BLOCK = 1024
WARP = 32


@dataclass
class DeviceKernel:
    """One ``__global__`` function: its buffers (global memory), the launch extent of each GPU
    axis (expressions of the size variables), its shared buffers, its body, and the tile maps
    (``bulk_copy.TileMap``) of the buffers it copies in bulk, passed after the sizes."""

    name: str
    params: tuple
    size_vars: tuple
    launch: dict
    shared: tuple
    body: Stmt
    tile_maps: tuple = ()


@dataclass
class DeviceProgram:
    """The kernels of one PrimFunc, launched in order, and the device memory they need."""

    func: PrimFunc
    kernels: tuple
    temporaries: tuple   # global buffers allocated at the root: device memory for the run
    written: tuple       # parameters some kernel writes (copied back to the host)


def lower_for_gpu(func: PrimFunc, target_kind: str) -> DeviceProgram:
    """Lowers ``func`` (scheduled with ``bind``, or unscheduled) to device kernels for a GPU target
    kind (``"cuda"``); raises ``GPULoweringError`` naming the block or loop it cannot lower."""
    from ...schedule.compact import compact_buffers
    from ...schedule.schedule import Schedule

    if not binds_threads(func):
        func = bind_default(func)
    sch = Schedule(func)
    _share_axis_variables(sch.func.body)
    compact_buffers(sch)
    lowered = sch.func
    lowered.body = wait_for_async_mma(pipeline_loops(lowered.body, target_kind), target_kind)
    lowered.size_vars = used_size_vars(lowered)

    body, temporaries = lowered.body, []
    while isinstance(body, Allocate):
        if body.buffer.scope != "global":
            raise GPULoweringError(f"kernel {func.name}: {body.buffer.scope} buffer {body.buffer.name} spans the "
                                   f"whole function; move its producer under the blockIdx loops of its consumer "
                                   f"(compute_at) so each thread block (or thread) has its own")
        temporaries.append(body.buffer)
        body = body.body
    nests = body.stmts if isinstance(body, SeqStmt) else (body,)
    memory = list(lowered.params) + temporaries
    kernels = []
    for index, nest in enumerate(nests):
        base = re.sub(r"[^A-Za-z0-9_]", "_", func.name)
        name = f"{base}_kernel" if len(nests) == 1 else f"{base}_kernel{index}"
        kernels.append(_kernel(name, nest, memory, lowered.size_vars, target_kind))
    written = tuple(buf for buf in lowered.params
                    if any(isinstance(n, BlockRealize) and buf in n.block.writes for n in walk_stmts(lowered.body)))
    return DeviceProgram(lowered, tuple(kernels), tuple(temporaries), written)


def _share_axis_variables(body: Stmt) -> None:
    """Gives every loop bound to one GPU axis the same variable (``threadIdx_x``), in place."""
    axis_vars: dict = {}
    for node in list(walk_stmts(body)):
        if isinstance(node, For) and node.kind == "thread_binding":
            var = axis_vars.setdefault(node.thread_tag, Var(node.thread_tag.replace(".", "_")))
            if node.var is not var:
                substitute_in_place(node.body, {node.var: var})
                node.var = var


def _kernel(name: str, nest: Stmt, memory: list, size_vars: tuple, target_kind: str) -> DeviceKernel:
    nest = lower_cross_thread(name, nest)
    launch = _launch_extents(name, nest)
    warp_blocks = _warp_blocks(nest, target_kind)
    if warp_blocks:
        width = max(warp_blocks.values())
        lanes = launch.setdefault("threadIdx.x", IntImm(width))
        if not (isinstance(lanes, IntImm) and lanes.value == width) or set(warp_blocks.values()) != {width}:
            raise GPULoweringError(f"kernel {name}: block {next(iter(warp_blocks)).name} calls a warp-wide "
                                   f"instruction, so threadIdx.x must have {width} threads (one warp or warpgroup), "
                                   f"not {lanes}; blocks of one kernel may not mix warp and warpgroup instructions")
    if not launch:
        blocks = [n.block.name for n in walk_stmts(nest) if isinstance(n, BlockRealize)]
        raise GPULoweringError(f"kernel {name}: the loop nest of block {', '.join(blocks) or '?'} binds no loop to "
                               f"blockIdx/threadIdx, so one GPU thread would run all of it; bind its loops "
                               f"(sch.bind) - only a function that binds no loop at all gets a default binding")
    check_bound(name, nest, launch, warp_blocks)
    threads = 1
    for tag, extent in launch.items():
        if tag.startswith("threadIdx"):
            if not isinstance(extent, IntImm):
                raise GPULoweringError(f"kernel {name}: the loops bound to {tag} have the symbolic extent {extent}; "
                                       f"split them by a constant number of threads")
            threads *= extent.value
    if threads > MAX_THREADS_PER_BLOCK:
        raise GPULoweringError(f"kernel {name}: {threads} threads per block, more than {MAX_THREADS_PER_BLOCK}")
    nest, shared = _hoist_shared(name, nest)
    nest = insert_barriers(nest)
    reads, writes = buffer_accesses(nest)
    used = set(reads) | set(writes)
    params = tuple(buf for buf in memory if buf in used)
    return DeviceKernel(name, params, size_vars, launch, shared, nest, tile_maps(nest))


def _launch_extents(name: str, nest: Stmt) -> dict:
    """Axis tag -> the largest extent of the loops bound to it (loops with less are guarded)."""
    launch: dict = {}
    for node in walk_stmts(nest):
        if isinstance(node, For) and node.kind == "thread_binding":
            known = launch.get(node.thread_tag)
            extent = arith.simplify(node.extent)
            if known is None:
                launch[node.thread_tag] = extent
            elif str(known) != str(extent):
                launch[node.thread_tag] = arith.simplify(BinOp("max", known, extent))
    return launch


def _warp_blocks(nest: Stmt, target_kind: str) -> dict:
    """Blocks whose body is a tensor intrinsic that a whole warp (or warpgroup) executes on
    ``target_kind``, and the threads of ``threadIdx.x`` it takes (the implementation's ``lanes``, 32
    where it has none)."""
    from ...schedule.intrinsics import get_intrinsic, is_intrinsic_call

    found = {}
    for node in walk_stmts(nest):
        if isinstance(node, BlockRealize) and isinstance(node.block.body, Evaluate) \
                and is_intrinsic_call(node.block.body.value):
            implementation = get_intrinsic(node.block.body.value.name).implementations.get(target_kind)
            if getattr(implementation, "warp_wide", False):
                found[node.block] = getattr(implementation, "lanes", WARP)
    return found


def _hoist_shared(name: str, nest: Stmt) -> tuple:
    """``nest`` without its shared-buffer allocations, and those buffers (constant sizes only)."""
    shared = []

    def visit(stmt):
        if isinstance(stmt, Allocate):
            if stmt.buffer.scope == "global":
                raise GPULoweringError(f"kernel {name}: global buffer {stmt.buffer.name} is allocated inside the "
                                       f"kernel; allocate it at the root (a separate loop nest computes it)")
            if stmt.buffer.scope == "shared":
                size = arith.simplify(stmt.buffer.storage_elements())
                if not isinstance(size, IntImm):
                    raise GPULoweringError(f"kernel {name}: shared buffer {stmt.buffer.name} has the symbolic size "
                                           f"{size}; tile with constant factors")
                shared.append(stmt.buffer)
                return visit(stmt.body)
            return Allocate(stmt.buffer, visit(stmt.body))
        if isinstance(stmt, For):
            return For(stmt.var, stmt.extent, visit(stmt.body), stmt.kind, stmt.thread_tag, stmt.annotations)
        if isinstance(stmt, SeqStmt):
            return SeqStmt(tuple(visit(s) for s in stmt.stmts))
        return stmt  # blocks allocate nothing inside (compaction places allocations under loops)

    return visit(nest), tuple(shared)
