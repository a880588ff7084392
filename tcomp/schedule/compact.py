"""Buffer compaction: an allocated buffer that is used only under one loop is allocated inside
that loop, shrunk to the region one iteration touches (TVM's CompactBufferAllocation).

After ``cache_write(C, 0, "local")`` and ``reverse_compute_at`` of the write-back under the
tile loop ``i_1``, the cache spans the whole output although each tile touches 8 x 64 of it::

    C_local = alloc(float32[1024, 1024], scope="local")     for i_0 in parallel(16):
    for i_0 in parallel(16):                                  for i_1 in range(8):
      for i_1 in range(8):                          ->          C_local = alloc(float32[8, 64], scope="local")
        ... C_local[i_0*64 + i_1*8 + ii, j] ...                 ... C_local[ii, j - j_0*64] ...

A small buffer inside the loop lives on each thread's stack, in registers where the
accesses allow, and never aliases the function's arguments.

It applies only where it is sound: one iteration of the loop must write the whole region
before reading it (the first block touching the buffer writes all of it, and a reduction's
accumulation loops all lie inside the loop), the region must have constant extents, and
the buffer must have no padded strides.

On a GPU each thread has its own ``local`` buffers and each thread block its own ``shared``
ones, so their regions are per thread (per block): loops bound to ``threadIdx``/``blockIdx``
(``blockIdx`` only, for ``shared``) are not relaxed, and a ``shared`` buffer is allocated
outside every ``threadIdx`` loop. GPU lowering first gives all loops bound to one axis one
variable, so a region written in it holds in every nest of the kernel.
"""
from __future__ import annotations

from ..tir import arith
from ..tir.expr import Buffer, IntImm, Load, free_vars, rewrite, substitute
from ..tir.stmt import Allocate, BlockRealize, BufferStore, For
from ..tir.transform import update_exprs_in_place, walk_stmts
from .primitives.layout import align
from .regions import hull, read_indices, write_indices


def compact_buffers(sch) -> None:
    """Compacts every allocated buffer of ``sch.func`` that qualifies (in place)."""
    for alloc in [n for n in walk_stmts(sch.func.body) if isinstance(n, Allocate)]:
        _compact(sch, alloc)


def _compact(sch, alloc: Allocate) -> None:
    buf = alloc.buffer
    alignment = buf.alignment
    if buf.explicit_strides is not None and not alignment:  # a layout chosen otherwise
        return
    users = [n for n in walk_stmts(alloc.body) if isinstance(n, BlockRealize)
             and (buf in n.block.reads or buf in n.block.writes)]
    if not users:
        return
    loop = _common_loop(sch, users, alloc)
    if loop is not None and buf.scope == "shared":
        loop = _outside_threads(sch, loop)
    if loop is None or not _first_user_writes_all(sch, users, loop, buf):
        return
    region = _region(sch, users, loop, buf)
    if region is None or not all(isinstance(arith.simplify(r.extent), IntImm) for r in region.ranges):
        return
    shape = tuple(arith.simplify(r.extent) for r in region.ranges)
    if all(s.value == getattr(arith.simplify(full), "value", None) for s, full in zip(shape, buf.shape)):
        return
    small = Buffer(buf.name, shape, buf.dtype, buf.scope)
    small.swizzled = buf.swizzled
    for axis, factor, offset in alignment:  # storage_align's padding, on the smaller shape
        align(small, axis, factor, offset)
    mins = [r.min for r in region.ranges]
    for realize in users:
        _rebase(realize, buf, small, mins)
    sch.replace(alloc, alloc.body)
    loop.body = Allocate(small, loop.body)


def _common_loop(sch, users: list, alloc: Allocate) -> For | None:
    """The innermost loop enclosing every user, below ``alloc``."""
    chains = [sch.loops_above(u) for u in users]
    common = None
    for level in zip(*chains):
        if any(x is not level[0] for x in level):
            break
        common = level[0]
    if common is None or id(common) not in {id(n) for n in walk_stmts(alloc.body)}:
        return None
    return common


def _outside_threads(sch, loop: For) -> For | None:
    """``loop``, or the innermost loop above it outside every ``threadIdx`` loop (None: no such loop)."""
    chain = sch.loops_above(loop) + [loop]
    for index, node in enumerate(chain):
        if (node.thread_tag or "").startswith("threadIdx"):
            return chain[index - 1] if index > 0 else None
    return loop


def _per_instance(loop: For, scope: str) -> bool:
    """Whether each instance of a ``scope`` buffer sees a single iteration of ``loop`` (a loop bound
    to a GPU axis that has its own copy: every axis for ``local``; every axis but ``threadIdx.x``,
    the lanes that share one fragment, for ``warp`` and ``warpgroup``; ``blockIdx`` for ``shared``)."""
    tag = loop.thread_tag or ""
    if scope in ("warp", "warpgroup"):
        return tag.startswith(("threadIdx", "blockIdx")) and tag != "threadIdx.x"
    return (scope == "local" and tag.startswith(("threadIdx", "blockIdx"))) or \
        (scope == "shared" and tag.startswith("blockIdx"))


def _first_user_writes_all(sch, users: list, loop: For, buf) -> bool:
    """Whether one iteration of ``loop`` writes the buffer's whole region before it reads any of
    it: the first user writes it (its own elements only, and accumulates only over loops
    inside ``loop``) and its written region is the region of all users."""
    first = users[0].block
    if buf not in first.writes:
        return False
    if buf in first.reads and first.init is None:
        return False
    inside = {id(n) for n in walk_stmts(loop.body)}
    for iv, value in zip(first.iter_vars, users[0].iter_values):
        if iv.kind == "R":
            feeding = [x for x in sch.loops_above(users[0]) if x.var in free_vars(value)]
            if any(id(x) not in inside for x in feeding):
                return False
    written = _region(sch, users[:1], loop, buf, writes_only=True)
    every = _region(sch, users, loop, buf)
    return written is not None and every is not None and written.exact and \
        all(str(arith.simplify(a.min)) == str(arith.simplify(b.min)) and
            str(arith.simplify(a.extent)) == str(arith.simplify(b.extent))
            for a, b in zip(written.ranges, every.ranges))


def _region(sch, users: list, loop: For, buf, writes_only: bool = False):
    accesses, inner, bounds = [], {}, {}
    for realize in users:
        loops = sch.loops_above(realize)
        below = loops[[id(x) for x in loops].index(id(loop)) + 1:]
        inner.update({x.var: x.extent for x in below if not _per_instance(x, buf.scope)})
        bounds.update({x.var: (0, x.extent.value - 1 if isinstance(x.extent, IntImm) else None) for x in loops})
        binding = dict(zip((iv.var for iv in realize.block.iter_vars), realize.iter_values))
        found = write_indices(realize.block, buf)
        if not writes_only:
            found = found + read_indices(realize.block, buf)
        accesses.extend((idx, binding) for idx in found)
    return hull(buf, accesses, inner, bounds) if accesses else None


def _rebase(realize: BlockRealize, old: Buffer, new: Buffer, mins: list) -> None:
    """Points ``realize``'s accesses of ``old`` at ``new``, each index less its region minimum
    (written in loop variables: the block's iterators are replaced by their bindings)."""
    block = realize.block
    binding = {iv.var: value for iv, value in zip(block.iter_vars, realize.iter_values)}

    def shift(indices):
        return tuple(arith.simplify(substitute(i, binding) - m) for i, m in zip(indices, mins))

    def rebased(e):
        if isinstance(e, Load) and e.buffer is old:
            indices = tuple(rewrite(i, rebased) for i in e.indices)
            pred = rewrite(e.predicate, rebased) if e.predicate is not None else None
            return Load(new, shift(indices), pred)
        return None

    def visit(e):
        return rewrite(e, rebased)

    for stmt in (block.init, block.body):
        if stmt is None:
            continue
        update_exprs_in_place(stmt, visit)
        for node in walk_stmts(stmt):
            if isinstance(node, BufferStore) and node.buffer is old:
                node.buffer, node.indices = new, shift(node.indices)
    block.reads = tuple(new if b is old else b for b in block.reads)
    block.writes = tuple(new if b is old else b for b in block.writes)
