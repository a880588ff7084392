"""Thread binding on the GPU: the default binding of unscheduled functions, and the check that
every block of a scheduled one runs on bound threads.

``bind_default`` gives each loop nest of a function that binds no loop the schedule of a
plain injective kernel: its outer spatial loops fused, split by the block size, bound::

    for i in range(1024):                       for i_j_fused_0 in blockIdx.x(4096):
      for j in range(1024):            ->         for i_j_fused_1 in threadIdx.x(256):
        block B[vi = S: i, vj = S: j]               block B[vi = S: (..) // 1024, vj = S: (..) % 1024]

(reduce loops stay serial in each thread). ``check_bound`` refuses a kernel where some block
would run in every thread of a block, or in every block of the grid, because a loop over its
elements was left serial: "forgot to bind" is an error, never a slow or racy kernel.
"""
from __future__ import annotations

from ...errors import TcompError
from ...tir.expr import IntImm, free_vars
from ...tir.stmt import BlockRealize, For
from ...tir.transform import walk_stmts

DEFAULT_THREADS = 256


class GPULoweringError(TcompError):
    """A function the GPU lowering refuses: unbound loops, unsupported bindings, ..."""


def binds_threads(func) -> bool:
    return any(isinstance(n, For) and n.kind == "thread_binding" for n in walk_stmts(func.body))


def bind_default(func, threads: int = DEFAULT_THREADS):
    """``func`` with each root loop nest that binds no loop given its outer spatial loops fused,
    split by ``threads`` and bound to ``blockIdx.x``/``threadIdx.x``."""
    from ...schedule.schedule import Schedule

    sch = Schedule(func)
    for realize in _first_realize_per_nest(sch.func.body):
        if nest_binds(sch, realize):
            continue  # a nest the schedule bound
        if not bind_nest(sch, realize, threads):
            raise GPULoweringError(f"kernel {func.name}: block {realize.block.name} has no spatial loop to bind to "
                                   f"GPU threads (it reduces over all of its loops); schedule it with rfactor and "
                                   f"bind, the default binding only binds spatial loops")
    return sch.func


def bind_nest(sch, realize, threads) -> bool:
    """Binds the loop nest above ``realize``: its outer spatial loops fused, split by ``threads``
    (an int, or a sampled decision of the design space) and bound to ``blockIdx.x``/``threadIdx.x``
    (``threadIdx.x`` alone where an int ``threads`` covers them). False where it has no such loop."""
    loops = _spatial_prefix(sch.loops_above(realize))
    if not loops:
        return False
    rvs = sch.get_loops(sch.get_block(realize.block.name))[:len(loops)]  # traced: the design space replays it
    fused = sch.fuse(*rvs) if len(rvs) > 1 else rvs[0]
    extent = sch.get_loop(fused).extent
    if isinstance(threads, int) and isinstance(extent, IntImm) and extent.value <= threads:
        sch.bind(fused, "threadIdx.x")
        return True
    outer, inner = sch.split(fused, [None, threads])
    sch.bind(outer, "blockIdx.x")
    sch.bind(inner, "threadIdx.x")
    return True


def nest_binds(sch, realize) -> bool:
    """Whether a loop above ``realize`` (a nest's first block) or inside it is bound to a GPU axis."""
    return any(loop.kind == "thread_binding" for loop in sch.loops_above(realize)) or any(
        isinstance(n, For) and n.kind == "thread_binding" for n in walk_stmts(realize))


def _first_realize_per_nest(body) -> list:
    """The first block realized in each root-level statement (under root allocations)."""
    from ...tir.stmt import Allocate, SeqStmt

    while isinstance(body, Allocate):
        body = body.body
    nests = body.stmts if isinstance(body, SeqStmt) else (body,)
    found = []
    for nest in nests:
        realize = next((n for n in walk_stmts(nest) if isinstance(n, BlockRealize)), None)
        if realize is not None:
            found.append(realize)
    return found


def _spatial_prefix(loops: list) -> list:
    """The outermost loops that are perfectly nested and feed only spatial iterators."""
    prefix = []
    for index, loop in enumerate(loops):
        if loop.kind != "serial" or (index > 0 and loops[index - 1].body is not loop):
            break
        if any(iv.kind == "R" and loop.var in free_vars(value)
               for realize in walk_stmts(loop.body) if isinstance(realize, BlockRealize)
               for iv, value in zip(realize.block.iter_vars, realize.iter_values)):
            break
        prefix.append(loop)
    return prefix


def check_bound(kernel_name: str, nest, launch: dict, warp_blocks: set) -> None:
    """Every block in ``nest`` writing memory shared between threads (global or shared scope)
    must sit under loops bound to each axis of ``launch`` (tag -> extent) whose extent is not 1;
    blocks in ``warp_blocks`` (a warp-wide instruction) are covered by ``threadIdx.x``.
    A loop bound to ``threadIdx`` may not feed a reduce iterator (``cross_thread.py`` has rewritten
    the reductions over ``threadIdx.x`` it can combine across threads)."""
    axes = [tag for tag, extent in launch.items() if not (isinstance(extent, IntImm) and extent.value == 1)]
    _check_under(kernel_name, nest, (), axes, warp_blocks)


def _check_under(kernel_name, stmt, loops: tuple, axes: list, warp_blocks: set) -> None:
    from ...tir.transform import stmt_children

    if isinstance(stmt, For):
        if stmt.kind == "parallel":
            raise GPULoweringError(f"kernel {kernel_name}: loop {stmt.var.name} is parallel; on a GPU bind it to "
                                   f"blockIdx/threadIdx instead (sch.bind)")
        if stmt.thread_tag == "vthread":
            raise GPULoweringError(f"kernel {kernel_name}: loop {stmt.var.name} is bound to vthread, which the GPU "
                                   f"targets do not lower yet")
        loops = loops + (stmt,)
    if isinstance(stmt, BlockRealize):
        _check_block(kernel_name, stmt, loops, axes, warp_blocks)
        return  # nested blocks (a blockized tile) run where their outer block runs
    for child in stmt_children(stmt):
        _check_under(kernel_name, child, loops, axes, warp_blocks)


def _check_block(kernel_name, realize: BlockRealize, loops: tuple, axes: list, warp_blocks: set) -> None:
    blk = realize.block
    threads = {loop.var for loop in loops if (loop.thread_tag or "").startswith("threadIdx")}
    for iv, value in zip(blk.iter_vars, realize.iter_values):
        if iv.kind == "R" and free_vars(value) & threads:
            raise GPULoweringError(f"kernel {kernel_name}: block {blk.name} reduces over a loop bound to threadIdx "
                                   f"(iterator {iv.var.name}); only a block of its own under serial loops, reducing "
                                   f"over threadIdx.x, is combined across threads: bind only spatial loops otherwise")
    if all(buf.scope in ("local", "warp", "warpgroup") for buf in blk.writes):
        return  # each thread (warp) has its own
    bound = {loop.thread_tag for loop in loops if loop.kind == "thread_binding"}
    if blk in warp_blocks:
        bound.add("threadIdx.x")
    missing = [axis for axis in axes if axis not in bound]
    if missing:
        serial = [loop.var.name for loop in loops if loop.kind != "thread_binding"]
        where = f"its loops {', '.join(serial)} run serially" if serial else "it is under no loop of its own"
        raise GPULoweringError(
            f"kernel {kernel_name}: block {blk.name} is not bound to {', '.join(missing)} ({where}), so every "
            f"thread of that axis would run all of it; bind a loop over its elements to each of "
            f"{', '.join(missing)} (sch.bind), e.g. fuse and split its loops first")
