"""Buffer layout: ``storage_align`` pads the stride of one axis of an allocated buffer;
``storage_swizzle`` permutes the 16-byte chunks of each row instead (``Buffer.swizzle``).

The buffer keeps its shape and every index stays as it is; only its strides change, so each
row starts at an address with ``stride % factor == offset`` (elements), e.g. to spread the
rows of a shared-memory tile over different banks. storage_align(b, 0, axis=0, factor=32,
offset=8) on a block writing ``A_shared``::

    A_shared = alloc(float32[64, 64], scope="shared")
      ->
    A_shared = alloc(float32[64, 64], strides=[72, 1], scope="shared")

The allocation grows to span the padded rows (``Buffer.storage_elements``). Only buffers
allocated inside the function are aligned: a parameter's layout is the caller's. Align inner
axes before outer ones: a call recomputes the strides of ``axis`` and keeps those inside it.

storage_swizzle(b, 0) spreads the rows over the banks without padding: indices stay, the
renderer stores element offset ``o`` of a 64-wide fp16 tile at ``o ^ ((o >> 6) & 7) << 3``
(chunk ``c`` of row ``r`` at chunk ``c ^ (r % 8)``), so the tile takes no extra memory::

    A_shared = alloc(float16[128, 64], scope="shared")  ->  the same, swizzled=True
"""
from __future__ import annotations

from ...tir import arith
from ...tir.expr import IntImm
from ...tir.stmt import Allocate
from ...tir.transform import walk_stmts
from ..schedule import ScheduleError, primitive


@primitive
def storage_align(sch, block, buffer_index: int, axis: int, factor: int, offset: int):
    """Pads the stride of ``axis`` of the ``buffer_index``-th buffer ``block`` writes so that
    ``stride % factor == offset``."""
    blk = sch.get_block_obj(block)
    if not isinstance(buffer_index, int) or not 0 <= buffer_index < len(blk.writes):
        raise ScheduleError(f"cannot storage_align: block {blk.name} writes {len(blk.writes)} buffers; "
                            f"index {buffer_index!r} is out of range")
    buf = blk.writes[buffer_index]
    rank = len(buf.shape)
    where = f"cannot storage_align {buf.name}"
    if not isinstance(axis, int) or not -rank <= axis < rank:
        raise ScheduleError(f"{where}: axis {axis!r} is out of range for rank {rank}")
    axis %= rank
    if axis == rank - 1:
        raise ScheduleError(f"{where}: axis {axis} is the innermost (its stride is 1)")
    if not isinstance(factor, int) or factor < 1 or not isinstance(offset, int) or not 0 <= offset < factor:
        raise ScheduleError(f"{where}: need factor >= 1 and 0 <= offset < factor, got {factor}, {offset}")
    if not any(isinstance(n, Allocate) and n.buffer is buf for n in walk_stmts(sch.func.body)):
        raise ScheduleError(f"{where}: it is a parameter of {sch.func.name}; only buffers allocated inside "
                            f"the function (cache_read/cache_write, intermediates) can be padded")
    strides = buf.strides()
    for outer in range(axis):
        natural = arith.simplify(strides[outer + 1] * buf.shape[outer + 1])
        if arith.simplify(strides[outer] - natural) != IntImm(0):
            raise ScheduleError(f"{where}: axis {outer} is already aligned; align inner axes first")
    align(buf, axis, factor, offset)


def align(buf, axis: int, factor: int, offset: int) -> None:
    """Pads ``buf``'s stride of ``axis`` to ``stride % factor == offset`` (the axes inside keep theirs)
    and records the request, so that compaction (``schedule/compact.py``) pads the smaller buffer alike."""
    strides = buf.strides()
    stride = arith.simplify(strides[axis + 1] * buf.shape[axis + 1])
    strides[axis] = arith.simplify(stride + (offset - stride) % factor)
    for outer in reversed(range(axis)):
        strides[outer] = arith.simplify(strides[outer + 1] * buf.shape[outer + 1])
    buf.explicit_strides = tuple(strides)
    buf.alignment = tuple(a for a in buf.alignment if a[0] != axis) + ((axis, factor, offset),)


@primitive
def storage_swizzle(sch, block, buffer_index: int):
    """XOR-swizzles the 16-byte chunks of each row of the ``buffer_index``-th buffer ``block``
    writes (an allocated buffer without padded strides; the layout is ``Buffer.swizzle``)."""
    blk = sch.get_block_obj(block)
    if not isinstance(buffer_index, int) or not 0 <= buffer_index < len(blk.writes):
        raise ScheduleError(f"cannot storage_swizzle: block {blk.name} writes {len(blk.writes)} buffers; "
                            f"index {buffer_index!r} is out of range")
    buf = blk.writes[buffer_index]
    where = f"cannot storage_swizzle {buf.name}"
    if not any(isinstance(n, Allocate) and n.buffer is buf for n in walk_stmts(sch.func.body)):
        raise ScheduleError(f"{where}: it is a parameter of {sch.func.name}; only buffers allocated inside "
                            f"the function can be swizzled")
    if buf.explicit_strides is not None:
        raise ScheduleError(f"{where}: its strides are padded (storage_align); swizzling replaces padding")
    if len(buf.shape) < 2:
        raise ScheduleError(f"{where}: it has no rows (rank {len(buf.shape)})")
    buf.swizzled = True
