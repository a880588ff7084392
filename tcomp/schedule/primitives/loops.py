"""Loop transformations: ``split``.

split(i, [None, 16]) on ``for i in range(100)``::

    for i in range(100):                      for i_0 in range(7):
      block B[vi = S(100): i]:          ->      for i_1 in range(16):
        ...                                       block B[vi = S(100): i_0 * 16 + i_1] where i_0 * 16 + i_1 < 100:
"""
from __future__ import annotations

from ...tir import arith
from ...tir.expr import IntImm, Var, as_expr, logical_and
from ...tir.stmt import BlockRealize, For
from ...tir.transform import substitute_in_place, walk_stmts
from ..schedule import ScheduleError, primitive


@primitive
def split(sch, loop, factors):
    """Splits ``loop`` into ``len(factors)`` nested loops, outermost first.

    One factor may be ``None`` (inferred: the extent divided by the others, rounded up).
    Where the factors' product exceeds the extent, the blocks below get a predicate.
    """
    node = sch.get_loop(loop)
    factors = list(factors)
    if len(factors) < 2:
        raise ScheduleError(f"split of loop {node.var.name}: give at least two factors, got {factors}")
    if sum(f is None for f in factors) > 1:
        raise ScheduleError(f"split of loop {node.var.name}: at most one factor may be None")
    for f in factors:
        if f is not None and (not isinstance(f, int) or f < 1):
            raise ScheduleError(f"split of loop {node.var.name}: factors must be positive ints, got {factors}")
    if node.kind != "serial":
        raise ScheduleError(f"split of loop {node.var.name}: it is {node.kind}; split before changing its kind")
    extent = arith.simplify(node.extent)
    known = 1
    for f in factors:
        if f is not None:
            known *= int(f)
    if None in factors:
        inferred = arith.simplify((extent + (known - 1)) // known) if known > 1 else extent
        factors = [inferred if f is None else IntImm(int(f)) for f in factors]
    else:
        factors = [IntImm(int(f)) for f in factors]
    product = as_expr(1)
    for f in factors:
        product = product * f
    product = arith.simplify(product)
    if isinstance(extent, IntImm) and isinstance(product, IntImm) and product.value < extent.value:
        raise ScheduleError(f"split of loop {node.var.name}: the factors cover {product.value} of its "
                            f"{extent.value} iterations")
    new_vars = [Var(f"{node.var.name}_{index}") for index in range(len(factors))]
    fused = as_expr(0)
    for v, f in zip(new_vars, factors):
        fused = fused * f + v
    fused = arith.simplify(fused)
    body = node.body
    substitute_in_place(body, {node.var: fused})
    exact = isinstance(extent, IntImm) and isinstance(product, IntImm) and product.value == extent.value
    if not exact and arith.simplify(product - extent) != IntImm(0):
        _guard_blocks(body, fused < extent)
    new_loop = body
    for v, f in reversed(list(zip(new_vars, factors))):
        new_loop = For(v, f, new_loop, annotations={})
    sch.replace(node, new_loop)
    loops, current = [], new_loop
    for _ in factors:
        loops.append(sch.new_rv(current))
        current = current.body
    return loops


def _guard_blocks(body, cond) -> None:
    """Adds ``cond`` to the predicate of every block realized in ``body`` (in place)."""
    for node in walk_stmts(body):
        if isinstance(node, BlockRealize):
            node.predicate = logical_and(*(c for c in (node.predicate, cond) if c is not None))
