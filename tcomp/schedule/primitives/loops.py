"""Loop transformations: ``split``, ``fuse``, ``reorder``; loop kinds: ``parallel``, ``vectorize``,
``unroll``, ``bind``; ``annotate`` / ``unannotate`` of blocks and loops.

split(i, [None, 16]) on ``for i in range(100)``::

    for i in range(100):                      for i_0 in range(7):
      block B[vi = S(100): i]:          ->      for i_1 in range(16):
        ...                                       block B[vi = S(100): i_0 * 16 + i_1] where i_0 * 16 + i_1 < 100:

fuse(i, j) on a perfect nest::

    for i in range(M):                        for i_j_fused in range(M * 16):
      for j in range(16):               ->      block B[vi = S(M): i_j_fused // 16, vj = S(16): i_j_fused % 16]:
        block B[vi = S(M): i, vj = S(16): j]:

reorder(k, j) on ``i, j, k`` gives ``i, k, j`` (the loops listed take the listed order, in the
positions they occupy; loops between them that are not listed stay where they are).

Changing a loop's kind is checked against the blocks below it: a loop *feeds* a block iterator
when its variable appears in the iterator's binding. Running a loop's iterations at the same
time (parallel, vectorized, bound to GPU blocks) is sound only when every block below it has an
iterator that the loop feeds (else all iterations write the same elements) and none of those
iterators is a reduce iterator (else the iterations accumulate into one element: a data race).
"""
from __future__ import annotations

import itertools

from ...tir import arith
from ...tir.expr import IntImm, Var, as_expr, free_vars, logical_and
from ...tir.stmt import Block, BlockRealize, For
from ...tir.transform import substitute_in_place, walk_stmts
from ..schedule import IntRV, ScheduleError, primitive

THREAD_AXES = ("blockIdx.x", "blockIdx.y", "blockIdx.z", "threadIdx.x", "threadIdx.y", "threadIdx.z", "vthread")


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
    _require_serial(node, "split")
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


@primitive
def fuse(sch, *loops):
    """Fuses adjacent loops of a perfect nest, given outermost first, into one loop.

    The fused loop runs over the product of the extents (symbolic extents allowed); each old
    loop variable becomes ``(fused // inner extents) % its extent``. Returns the fused loop.
    """
    if not loops:
        raise ScheduleError("fuse: give at least one loop")
    nodes = [sch.get_loop(rv) for rv in loops]
    names = ", ".join(n.var.name for n in nodes)
    if len({id(n) for n in nodes}) != len(nodes):
        raise ScheduleError(f"fuse of loops {names}: a loop appears twice")
    for outer, inner in itertools.pairwise(nodes):
        if outer.body is not inner:
            if any(n is outer for n in sch.ancestors(inner)):
                why = "it is not directly inside it (the nest between them is not perfect, or loops are skipped)"
            elif any(n is inner for n in sch.ancestors(outer)):
                why = "it encloses it: give the loops outermost first"
            else:
                why = "they are not nested"
            raise ScheduleError(f"fuse of loops {names}: loop {inner.var.name} cannot fuse with "
                                f"{outer.var.name}: {why}")
    for node in nodes:
        _require_serial(node, "fuse")
    _check_extents_independent(nodes, nodes, "fuse")
    if len(nodes) == 1:
        return sch.new_rv(nodes[0])
    extents = [arith.simplify(n.extent) for n in nodes]
    fused_var = Var("_".join(n.var.name for n in nodes) + "_fused")
    mapping, inner_product = {}, as_expr(1)
    for index in reversed(range(len(nodes))):
        value = fused_var if index == len(nodes) - 1 else fused_var // inner_product
        if index > 0:
            value = value % extents[index]
        mapping[nodes[index].var] = arith.simplify(value)
        inner_product = arith.simplify(inner_product * extents[index])
    body = nodes[-1].body
    substitute_in_place(body, mapping)
    new_loop = For(fused_var, inner_product, body, annotations={})
    sch.replace(nodes[0], new_loop)
    return sch.new_rv(new_loop)


@primitive
def reorder(sch, *loops):
    """Puts loops of one perfect nest in the order given (outermost first).

    The listed loops take the positions that the listed loops occupy now; loops between them
    that are not listed keep their place. Loops keep their handles, kinds and annotations.
    """
    nodes = [sch.get_loop(rv) for rv in loops]
    names = ", ".join(n.var.name for n in nodes)
    if len({id(n) for n in nodes}) != len(nodes):
        raise ScheduleError(f"reorder of loops {names}: a loop appears twice")
    if len(nodes) < 2:
        return
    inner = max(nodes, key=lambda n: len(sch.loops_above(n)))
    enclosing = {id(n) for n in sch.loops_above(inner)}
    strays = [n.var.name for n in nodes if n is not inner and id(n) not in enclosing]
    if strays:
        raise ScheduleError(f"reorder of loops {names}: they are not on one chain of nested loops "
                            f"({', '.join(strays)} does not enclose {inner.var.name})")
    outer = min(nodes, key=lambda n: len(sch.loops_above(n)))
    chain = [outer]   # outer, its body, ... down to inner: each the only statement of the previous
    while chain[-1] is not inner:
        if not isinstance(chain[-1].body, For):
            raise ScheduleError(f"reorder of loops {names}: the nest between {outer.var.name} and {inner.var.name} "
                                f"is not perfect (the body of loop {chain[-1].var.name} is more than one loop)")
        chain.append(chain[-1].body)
    listed = {id(n) for n in nodes}
    order = iter(nodes)
    new_chain = [next(order) if id(n) in listed else n for n in chain]
    _check_extents_independent(new_chain, chain, "reorder")
    for index, node in enumerate(new_chain[:-1]):
        if node.kind == "vectorized":
            raise ScheduleError(f"reorder of loops {names}: loop {node.var.name} is vectorized and would "
                                f"enclose loop {new_chain[index + 1].var.name}; a vectorized loop stays innermost")
    innermost_body = inner.body
    sch.replace(outer, new_chain[0])
    for node, child in itertools.pairwise(new_chain):
        node.body = child
    new_chain[-1].body = innermost_body


@primitive
def parallel(sch, loop):
    """Runs ``loop``'s iterations on the thread pool. Every block below must be fed by the loop
    through spatial iterators only (a loop feeding a reduce iterator would race on the sum)."""
    node = sch.get_loop(loop)
    _require_serial(node, "parallel")
    _check_data_parallel(sch, node, "parallel", "the threads would race on the same elements")
    node.kind = "parallel"


@primitive
def vectorize(sch, loop):
    """Makes ``loop`` a SIMD loop: innermost (no loop inside), constant extent, and feeding only
    spatial iterators of the blocks below (lanes of one vector cannot accumulate into one element)."""
    node = sch.get_loop(loop)
    _require_serial(node, "vectorize")
    for inside in walk_stmts(node.body):
        if isinstance(inside, For):
            raise ScheduleError(f"vectorize of loop {node.var.name}: it contains loop {inside.var.name}; "
                                f"only an innermost loop can be vectorized")
    if not isinstance(arith.simplify(node.extent), IntImm):
        raise ScheduleError(f"vectorize of loop {node.var.name}: its extent {node.extent} is not a constant "
                            f"(split it by a constant factor and vectorize the inner loop)")
    _check_data_parallel(sch, node, "vectorize", "the vector lanes would write the same elements")
    node.kind = "vectorized"


@primitive
def unroll(sch, loop):
    """Marks ``loop`` to be unrolled (the CPU code generator unrolls constant extents up to 64
    and keeps other loops as ordinary loops)."""
    node = sch.get_loop(loop)
    _require_serial(node, "unroll")
    node.kind = "unrolled"


@primitive
def bind(sch, loop, thread_axis: str):
    """Binds ``loop`` to a GPU grid axis: ``blockIdx.x/y/z``, ``threadIdx.x/y/z`` or ``vthread``.

    A loop feeding a reduce iterator cannot be bound to ``blockIdx.*`` (thread blocks cannot
    accumulate into one element); bound to ``threadIdx.*`` it asks for a cross-thread reduction.
    """
    node = sch.get_loop(loop)
    if thread_axis not in THREAD_AXES:
        raise ScheduleError(f"bind of loop {node.var.name}: unknown thread axis {thread_axis!r} "
                            f"(one of {', '.join(THREAD_AXES)})")
    _require_serial(node, "bind")
    if thread_axis != "vthread":
        nested = [n for n in sch.loops_above(node) if n.thread_tag == thread_axis]
        nested += [n for n in walk_stmts(node.body) if isinstance(n, For) and n.thread_tag == thread_axis]
        if nested:
            raise ScheduleError(f"bind of loop {node.var.name} to {thread_axis}: loop {nested[0].var.name} "
                                f"nested with it is bound to {thread_axis} already")
    reduce_ok = not thread_axis.startswith("blockIdx")
    _check_data_parallel(sch, node, f"bind to {thread_axis}", "the threads would race on the same elements",
                         allow_reduce=reduce_ok)
    node.kind = "thread_binding"
    node.thread_tag = thread_axis


@primitive
def annotate(sch, block_or_loop, key: str, value):
    """Sets ``annotations[key] = value`` on a block or loop (a hint for later passes and codegen)."""
    node = sch.get(block_or_loop)
    if not isinstance(key, str) or not key:
        raise ScheduleError(f"annotate of {_describe(node)}: the key must be a non-empty string, got {key!r}")
    node.annotations[key] = _plain_value(value)


@primitive
def unannotate(sch, block_or_loop, key: str):
    """Removes the annotation ``key`` from a block or loop."""
    node = sch.get(block_or_loop)
    if key not in node.annotations:
        have = ", ".join(map(repr, node.annotations)) or "none"
        raise ScheduleError(f"unannotate of {_describe(node)}: it has no annotation {key!r} (it has {have})")
    del node.annotations[key]


# ---------------------------------------------------------------- checks and helpers
def _describe(node) -> str:
    return f"block {node.name}" if isinstance(node, Block) else f"loop {node.var.name}"


def _plain_value(value):
    if isinstance(value, IntRV):
        return int(value)
    if isinstance(value, (list, tuple)):
        return [_plain_value(v) for v in value]
    return value


def _require_serial(node: For, what: str) -> None:
    if node.kind == "serial":
        return
    kind = f"bound to {node.thread_tag}" if node.kind == "thread_binding" else node.kind
    if what in ("split", "fuse"):
        raise ScheduleError(f"{what} of loop {node.var.name}: it is {kind}; {what} before changing its kind")
    raise ScheduleError(f"{what} of loop {node.var.name}: it is {kind} already; only a serial loop can change kind")


def _check_extents_independent(new_order: list, loops: list, what: str) -> None:
    """No loop's extent may use the variable of a loop that would enclose it only now or be fused."""
    for index, node in enumerate(new_order):
        outside = {n.var for n in new_order[:index]}
        others = {n.var for n in loops if n is not node}
        used = free_vars(node.extent) & others
        if what == "reorder":
            used -= outside
        if used:
            raise ScheduleError(f"{what} of loop {node.var.name}: its extent {node.extent} depends on loop "
                                f"{next(iter(used)).name}")


def _fed_iterators(loop: For) -> list:
    """(block, iter_var) pairs below ``loop`` whose binding uses its variable (through nested blocks too)."""
    derived = {loop.var}
    fed = []
    for node in walk_stmts(loop.body):
        if isinstance(node, BlockRealize):
            for iv, value in zip(node.block.iter_vars, node.iter_values):
                if free_vars(value) & derived:
                    derived.add(iv.var)
                    fed.append((node.block, iv))
    return fed


def _check_data_parallel(sch, node: For, what: str, race: str, allow_reduce: bool = False) -> None:
    fed = _fed_iterators(node)
    if not allow_reduce:
        for blk, iv in fed:
            if iv.kind == "R":
                raise ScheduleError(f"{what} of loop {node.var.name}: it feeds the reduce iterator "
                                    f"{iv.var.name} of block {blk.name}, so {race} (a data race on the "
                                    f"reduction); only loops over spatial iterators can be")
    fed_blocks = {id(blk) for blk, _ in fed}
    for inside in walk_stmts(node.body):
        if isinstance(inside, BlockRealize) and id(inside.block) not in fed_blocks:
            raise ScheduleError(f"{what} of loop {node.var.name}: no iterator of block {inside.block.name} "
                                f"depends on it, so {race}")


def _guard_blocks(body, cond) -> None:
    """Adds ``cond`` to the predicate of every block realized in ``body`` (in place)."""
    for node in walk_stmts(body):
        if isinstance(node, BlockRealize):
            node.predicate = logical_and(*(c for c in (node.predicate, cond) if c is not None))
