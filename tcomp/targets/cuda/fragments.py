"""Accumulator fragments read element by element: a fused epilogue straight from the registers.

The fp32 accumulator of ``mma.sync`` (a ``warp`` buffer) and of ``wgmma`` (a ``warpgroup`` buffer)
lies in the tensor cores' layout (``mma.py``, ``wgmma.py``): element ``(i, j)`` of the buffer (its
last two axes; leading axes number whole tiles) is held by one thread, in one register::

    warp      (16 x 8 tiles):  lane (i % 8) * 4 + (j % 8) / 2
                               register 4 * tile(i / 16, j / 8) + ((i % 16) / 8) * 2 + j % 2
    warpgroup (64 x N tiles):  thread ((i % 64) / 16) * 32 + (i % 8) * 4 + (j % 8) / 2
                               register (cols / 2) * (i / 64) + (j / 8) * 4 + ((i % 16) / 8) * 2 + j % 2

(a warpgroup's register does not depend on the instruction's width N: each 8-column chunk's four
registers follow the previous chunk's). A nest whose loops give each element to the thread holding
it -- the sketches split a tile's rows into (8-row halves, 8 rows) and its columns into (4 pairs,
2), and bind rows x pairs to ``threadIdx.x`` -- may then read the accumulator as a scalar::

    for h, e (unrolled): out[i, j] = f16(max(C_warp[i, j] + bias[j], 0))    # i, j from threadIdx.x, h, e
      -> out[..] = tc_float_to_half(fmaxf(C_warp[(h * 2) + e] + ..., 0.0f));

so an epilogue (cast, bias, activation, residual add) runs on the registers and stores the output
once, in its own dtype, instead of a second kernel reading back an fp32 copy. ``element`` checks,
lane by lane, that the thread reading an element is the one holding it, and that the register is
a constant once unrolled loops are (no ``threadIdx.x`` in it): anything else is a ``RenderError``.
"""
from __future__ import annotations

from ...tir import arith
from ...tir.expr import IntImm, Load, free_vars, substitute
from ..csource import FRAGMENT_LANES, RenderError

WARP_TILE = (16, 8)   # mma.sync's accumulator tile
GROUP_ROWS = 64       # wgmma's accumulator tile rows (4 warps of 16)


def element(renderer, load: Load) -> str:
    """The C text of the register holding ``load``'s element of a ``warp`` or ``warpgroup`` buffer,
    for the thread that reads it (checked, see the module docstring)."""
    buf = load.buffer
    shape = [arith.simplify(s) for s in buf.shape]
    rows_tile = WARP_TILE[0] if buf.scope == "warp" else GROUP_ROWS
    if buf.dtype != "float32" or len(shape) < 2 or not all(isinstance(s, IntImm) for s in shape) \
            or shape[-2].value % rows_tile or shape[-1].value % 8:
        raise RenderError(f"{buf.scope} buffer {buf.name} ({buf.dtype}, shape {[str(s) for s in shape]}) is read "
                          f"element by element, which only whole fp32 accumulator tiles of {rows_tile} x 8 can be")
    *lead, i, j = load.indices
    rows, cols = shape[-2].value, shape[-1].value
    linear = IntImm(0)
    for index, extent in zip(lead, shape[:-2]):
        linear = linear * extent.value + index
    within = ((i % 16) // 8) * 2 + j % 2
    if buf.scope == "warp":
        lane = (i % 8) * 4 + (j % 8) // 2
        register = ((linear * (rows // 16) + i // 16) * (cols // 8) + j // 8) * 4 + within
    else:
        lane = ((i % GROUP_ROWS) // 16) * 32 + (i % 8) * 4 + (j % 8) // 2
        register = (linear * (rows // GROUP_ROWS) + i // GROUP_ROWS) * (cols // 2) + (j // 8) * 4 + within
    thread = renderer.axis("threadIdx.x")
    bounds = renderer.bounds()
    register = arith.simplify(register, bounds)
    if thread is None or thread in free_vars(register) or not _is_thread(lane, thread, FRAGMENT_LANES[buf.scope],
                                                                         bounds):
        raise RenderError(f"{buf.scope} buffer {buf.name} is read at [{', '.join(str(x) for x in load.indices)}], "
                          f"which the reading thread does not hold: bind the rows and column pairs of each "
                          f"accumulator tile to threadIdx.x as the tensor cores lay them out "
                          f"(targets/cuda/fragments.py)")
    return f"{renderer.name(buf)}[{renderer.expr(register)}]"


def _is_thread(lane, thread, lanes: int, bounds: dict) -> bool:
    """Whether ``lane`` (an expression of ``thread`` and other variables) equals ``thread`` for each of
    its ``lanes`` values, whatever the others are."""
    for value in range(lanes):
        at = arith.simplify(substitute(lane, {thread: IntImm(value, thread.dtype)}), bounds)
        if not (isinstance(at, IntImm) and at.value == value):
            return False
    return True
