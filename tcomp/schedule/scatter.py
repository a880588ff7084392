"""Default CPU schedule for scatters: copy the data, then apply the updates in order.

::

    for r in parallel(...): for jo, ji in vectorized(16): out[idx] = data[idx]     # the copy
    for u0 in range(U0): for u1 in range(U1): ...                                # serial: duplicates
      out[target(u)] = combine(out[target(u)], updates[u])                        # apply in order

The output is read back while updates apply, so scatter anchors take no epilogue.
"""
from __future__ import annotations

from typing import Callable

from ..tir.expr import BinOp, Buffer, Var
from ..tir.stmt import BufferStore, PrimFunc, block, loop, seq
from .elementwise import injective_kernel

COMBINE = {"none": lambda old, new: new, "add": lambda old, new: old + new, "mul": lambda old, new: old * new,
           "max": lambda old, new: BinOp("max", old, new), "min": lambda old, new: BinOp("min", old, new)}


def scatter_kernel(name: str, out: Buffer, data: Callable, updates_shape, target: Callable, update: Callable,
                   reduction: str, params, lanes: int) -> PrimFunc:
    """``out = data``, then ``out[target(u)] = combine(out[target(u)], update(u))`` for every ``u`` in order."""
    copy = injective_kernel(f"{name}_copy", out, data, params, lanes).body
    loop_vars = [Var(f"u{axis}") for axis in range(len(updates_shape))]

    def body(*u):
        index = tuple(target(*u))
        return BufferStore(out, COMBINE[reduction](out[index], update(*u)), index)

    nest = block(f"{name}_scatter", [("S", e, v) for e, v in zip(updates_shape, loop_vars)], body)
    for var, extent in reversed(list(zip(loop_vars, updates_shape))):
        nest = loop(var, extent, nest)
    return PrimFunc(name, tuple(params), seq(copy, nest), {"kind": "scatter"})
