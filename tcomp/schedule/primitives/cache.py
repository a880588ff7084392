"""Caches: ``cache_read`` and ``cache_write`` copy a buffer to a new one of another memory scope.

cache_read(c, 1, "shared") on a matmul whose block C reads C, A, B (``Block.reads`` order)::

    for i, j, k:                              A_shared = alloc(float32[64, 32], scope="shared")
      block C[vi, vj, vk]:              ->    for ax0 in range(64):
        C[vi, vj] += A[vi, vk] * B[..]          for ax1 in range(32):
                                                  block A_shared[v0 = S(64): ax0, v1 = S(32): ax1]:
                                                    A_shared[v0, v1] = A[v0, v1]
                                              for i, j, k:
                                                block C[vi, vj, vk]:
                                                  C[vi, vj] += A_shared[vi, vk] * B[..]

cache_write(c, 0, "local") makes C accumulate into ``C_local`` and appends the copy
``block C_local: C[v0, v1] = C_local[v0, v1]`` after C's loop nest. Both copies cover the
whole buffer and sit at the root of the function; ``compute_at`` / ``reverse_compute_at``
then move them into a loop nest. The new buffer is allocated at the function root and named
``<buffer>_<scope>``.
"""
from __future__ import annotations

from dataclasses import fields, replace

from ...tir.expr import Buffer, Expr, Load, Var, walk
from ...tir.stmt import Allocate, BlockRealize, BufferStore, SeqStmt, block, loop, seq
from ...tir.transform import update_exprs_in_place, walk_stmts
from ..schedule import ScheduleError, primitive

SCOPES = ("global", "shared", "local", "warp", "warpgroup")  # warp(group): a fragment in a warp's (4 warps') registers


@primitive
def cache_read(sch, block, read_buffer_index: int, scope: str):
    """Copies the ``read_buffer_index``-th buffer that ``block`` reads into a new ``scope`` buffer,
    right before the root-level loop nest holding ``block``, which then reads the copy."""
    blk = sch.get_block_obj(block)
    buf = _pick(blk, blk.reads, read_buffer_index, scope, "cache_read", "reads")
    if buf in blk.writes:
        raise ScheduleError(f"cannot cache_read: block {blk.name} writes {buf.name} as well (use cache_write)")
    nest = root_stmt_of(sch, blk)
    writers = [b.name for b in _blocks_in(nest) if buf in b.writes]
    if writers:
        raise ScheduleError(f"cannot cache_read: block {writers[0]} writes {buf.name} in the same loop nest as "
                            f"block {blk.name}; cache before moving the producer there")
    return _cache(sch, blk, nest, buf, scope, write=False)


@primitive
def cache_write(sch, block, write_buffer_index: int, scope: str):
    """Makes ``block`` write a new ``scope`` buffer instead of its ``write_buffer_index``-th one,
    and copies that buffer back right after the root-level loop nest holding ``block``."""
    blk = sch.get_block_obj(block)
    buf = _pick(blk, blk.writes, write_buffer_index, scope, "cache_write", "writes")
    others = [b.name for b in sch.blocks() if b is not blk and buf in b.writes]
    if others:
        raise ScheduleError(f"cannot cache_write: block {others[0]} writes {buf.name} too; the copy back would "
                            f"overwrite it (cache_write before decompose_reduction)")
    if not _writes_every_element(blk, buf):
        raise ScheduleError(f"cannot cache_write: block {blk.name} does not write every element of {buf.name} "
                            f"(its store must be {buf.name}[spatial iterators] over the whole shape)")
    if buf in blk.reads and blk.init is None:
        raise ScheduleError(f"cannot cache_write: block {blk.name} reads the previous values of {buf.name}")
    nest = root_stmt_of(sch, blk)
    readers = [b.name for b in _blocks_in(nest) if b is not blk and buf in b.reads]
    if readers:
        raise ScheduleError(f"cannot cache_write: block {readers[0]} reads {buf.name} in the same loop nest as "
                            f"block {blk.name}, before the copy back")
    return _cache(sch, blk, nest, buf, scope, write=True)


def _cache(sch, blk, nest, buf: Buffer, scope: str, write: bool):
    """Switches ``blk`` to a new ``scope`` buffer ``<buffer>_<scope>`` like ``buf`` (its loads, stores,
    read and write lists), allocated at the root, and copies ``buf`` into it right before the root-level
    ``nest`` (``write``: copies it back into ``buf`` right after). Returns the copy's block."""
    cached = Buffer(unique_name(sch, f"{buf.name}_{scope}"), buf.shape, buf.dtype, scope)
    retarget_buffer(blk, buf, cached)
    blk.reads = tuple(cached if b is buf else b for b in blk.reads)
    blk.writes = tuple(cached if b is buf else b for b in blk.writes)
    copy, copy_block = copy_nest(cached.name, cached, buf) if write else copy_nest(cached.name, buf, cached)
    insert_beside(sch, nest, copy, after=write)
    allocate_at_root(sch, cached)
    return sch.new_rv(copy_block)


def _pick(blk, buffers: tuple, index: int, scope: str, what: str, verb: str) -> Buffer:
    if scope not in SCOPES:
        raise ScheduleError(f"cannot {what}: unknown scope {scope!r} (known: {', '.join(SCOPES)})")
    if not isinstance(index, int) or not 0 <= index < len(buffers):
        names = ", ".join(b.name for b in buffers) or "nothing"
        raise ScheduleError(f"cannot {what}: block {blk.name} {verb} {len(buffers)} buffers ({names}); "
                            f"index {index!r} is out of range")
    return buffers[index]


def _writes_every_element(blk, buf: Buffer) -> bool:
    """Every store to ``buf`` in ``blk`` is ``buf[v0, ..., vn]`` with spatial iterators spanning its shape."""
    spatial = {iv.var: iv.extent for iv in blk.iter_vars if iv.kind == "S"}
    stores = [n for stmt in (blk.init, blk.body) if stmt is not None for n in walk_stmts(stmt)
              if isinstance(n, BufferStore) and n.buffer is buf]
    return all(len({id(i) for i in store.indices}) == len(store.indices)
               and all(isinstance(i, Var) and i in spatial and spatial[i] == extent
                       for i, extent in zip(store.indices, buf.shape))
               for store in stores)


def _blocks_in(stmt) -> list:
    return [n.block for n in walk_stmts(stmt) if isinstance(n, BlockRealize)]


def copy_nest(name: str, src: Buffer, dst: Buffer) -> tuple:
    """``for ax0, ax1, ...: block name: dst[v0, v1, ...] = src[v0, v1, ...]`` over the whole buffer,
    and its block."""
    axes = [Var(f"ax{index}") for index in range(len(src.shape))]
    realize = block(name, [("S", extent, ax) for extent, ax in zip(src.shape, axes)],
                    lambda *v: BufferStore(dst, Load(src, tuple(v)), tuple(v)))
    for index, iv in enumerate(realize.block.iter_vars):
        iv.var.name = f"v{index}"
    stmt = realize
    for ax, extent in reversed(list(zip(axes, src.shape))):
        stmt = loop(ax, extent, stmt)
    return stmt, _blocks_in(stmt)[0]  # a unit axis gets no loop: its substitution copies the block


def retarget_buffer(blk, old: Buffer, new: Buffer) -> None:
    """Makes every load and store of ``old`` inside ``blk`` use ``new`` (in place)."""
    for stmt in (blk.init, blk.body):
        if stmt is None:
            continue
        update_exprs_in_place(stmt, lambda expr: _retarget(expr, old, new))
        for node in walk_stmts(stmt):
            if isinstance(node, BufferStore) and node.buffer is old:
                node.buffer = new


def _retarget(expr: Expr, old: Buffer, new: Buffer) -> Expr:
    if not any(isinstance(e, Load) and e.buffer is old for e in walk(expr)):
        return expr
    changes = {}
    for f in fields(expr):
        value = getattr(expr, f.name)
        if isinstance(value, Expr):
            changes[f.name] = _retarget(value, old, new)
        elif isinstance(value, tuple):
            changes[f.name] = tuple(_retarget(v, old, new) if isinstance(v, Expr) else v for v in value)
    if isinstance(expr, Load) and expr.buffer is old:
        changes["buffer"] = new
    return replace(expr, **changes)


def unique_name(sch, base: str) -> str:
    """``base``, or ``base_1``, ``base_2`` ... where a buffer or block already has that name."""
    taken = {b.name for b in sch.func.params} | {b.name for b in sch.blocks()}
    taken |= {n.buffer.name for n in walk_stmts(sch.func.body) if isinstance(n, Allocate)}
    name, count = base, 0
    while name in taken:
        count += 1
        name = f"{base}_{count}"
    return name


def root_body(func):
    """The function body below its root allocations (one statement or the root sequence)."""
    body = func.body
    while isinstance(body, Allocate):
        body = body.body
    return body


def root_stmt_of(sch, node):
    """The root-level statement (a child of the root sequence, or the root itself) holding ``node``."""
    root = root_body(sch.func)
    if not isinstance(root, SeqStmt):
        return root
    chain = sch.ancestors(node) + [node]
    return chain[next(i for i, n in enumerate(chain) if n is root) + 1]


def insert_beside(sch, anchor, stmt, after: bool) -> None:
    """Puts ``stmt`` right before (or after) ``anchor``, flattening into an enclosing sequence."""
    parent = sch.parents().get(id(anchor))
    if isinstance(parent, SeqStmt):
        position = next(i for i, s in enumerate(parent.stmts) if s is anchor) + (1 if after else 0)
        parent.stmts = parent.stmts[:position] + (stmt,) + parent.stmts[position:]
    else:
        sch.replace(anchor, seq(anchor, stmt) if after else seq(stmt, anchor))


def allocate_at_root(sch, buf: Buffer) -> None:
    """Allocates ``buf`` for the whole function, inside the existing root allocations."""
    root = root_body(sch.func)
    sch.replace(root, Allocate(buf, root))
