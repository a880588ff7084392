"""Default CPU schedule for injective kernels: ``out[idx] = f(idx)``.

The innermost axis is split by the vector width (tail lanes masked); the
other axes are fused into one loop, parallel when there is enough work::

    for r in parallel(prod(shape[:-1])):
      for jo in range(ceil(L / 16)):
        for ji in vectorized(16):
          block out[v0 = S(...): r // ..., ..., vj = S(L): jo * 16 + ji] where jo * 16 + ji < L:
            out[v0, ..., vj] = f(v0, ..., vj)
"""
from __future__ import annotations

from ..tir.views import row_major_unflatten
from ..tir.expr import Buffer, Cmp, Var, as_expr
from ..tir.stmt import BufferStore, PrimFunc, block, loop
from .extents import ceil_div, divisible, extent_of, is_static, product

# Below this many elements a kernel runs on one thread (waking the pool costs more).
PARALLEL_MIN_ELEMENTS = 1 << 14


def injective_kernel(name: str, out: Buffer, value_fn, params, lanes: int, attrs: dict | None = None) -> PrimFunc:
    """``value_fn(*idx)`` gives the element at ``idx`` of ``out``; extents may be symbolic."""
    shape = [extent_of(s) for s in out.shape]
    if not shape:
        body = block(name, [], lambda: BufferStore(out, value_fn(), ()))
        return PrimFunc(name, tuple(params), body, {"kind": "injective", **(attrs or {})})
    total = product(shape)
    inner = shape[-1]
    if is_static(inner) and inner < lanes // 2 and len(shape) > 1:
        # Short rows: vectorize over the flattened index instead.
        outer_shape, inner = [], total
    else:
        outer_shape = shape[:-1]
    rows = product(outer_shape)
    r, jo, ji = Var("r"), Var("jo"), Var("ji")
    j = jo * lanes + ji
    flat = r * inner + j
    idx = row_major_unflatten(flat, shape) if not outer_shape else row_major_unflatten(r, outer_shape) + [j]
    iters = [("S", extent, value) for extent, value in zip(shape, idx)]
    predicate = None if divisible(inner, lanes) else Cmp("lt", j, as_expr(inner))
    body_block = block(name, iters, lambda *v: BufferStore(out, value_fn(*v), v), predicate=predicate)
    big = not is_static(total) or total >= PARALLEL_MIN_ELEMENTS
    kind = "parallel" if big and not (is_static(rows) and rows == 1) else "serial"
    nest = loop(r, rows, loop(jo, ceil_div(inner, lanes), loop(ji, lanes, body_block, "vectorized")), kind)
    return PrimFunc(name, tuple(params), nest, {"kind": "injective", **(attrs or {})})
