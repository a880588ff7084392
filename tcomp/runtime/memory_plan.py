"""Static memory planning: intermediate tensors share one arena.

Each intermediate has a lifetime [first write, last read] in kernel order.
Buffers are placed largest first at the lowest aligned offset (64 bytes; device
targets ask for 256, WebGPU's binding-offset alignment) that does not overlap a
buffer with an intersecting lifetime (greedy best fit).
"""
from __future__ import annotations

from dataclasses import dataclass

ALIGN = 64


@dataclass
class MemoryPlan:
    offsets: dict          # value uid -> byte offset in the arena
    arena_bytes: int       # peak intermediate memory
    unplanned_bytes: int   # what separate allocations would take


def _align(n: int, align: int = ALIGN) -> int:
    return -(-n // align) * align


def plan_memory(lifetimes: dict, sizes: dict, align: int = ALIGN) -> MemoryPlan:
    """``lifetimes[uid] = (first, last)`` step indices; ``sizes[uid]`` in bytes; offsets are multiples
    of ``align``."""
    placed: list = []   # (offset, end, first, last)
    offsets = {}
    for uid in sorted(lifetimes, key=lambda u: (-sizes[u], lifetimes[u][0])):
        first, last = lifetimes[uid]
        size = _align(max(sizes[uid], 1), align)
        conflicts = sorted((off, end) for off, end, f, l in placed if not (l < first or last < f))
        offset = 0
        for off, end in conflicts:
            if offset + size <= off:
                break
            offset = max(offset, end)
        offsets[uid] = offset
        placed.append((offset, offset + size, first, last))
    arena = max((end for _, end, _, _ in placed), default=0)
    return MemoryPlan(offsets, arena, sum(_align(max(s, 1), align) for s in sizes.values()))
