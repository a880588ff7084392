"""Transposed stores: an unrolled loop around a vectorized one that writes across the lanes.

A conv's write-back computes vectors along the output channels (its accumulators' lanes) and
stores them into an NCHW output, where consecutive channels are a plane apart: each vector
would be a scatter. When the unrolled loop around the vectorized one walks the output
contiguously, the U vectors of L lanes are transposed in registers instead (log2 stages of
two-input shuffles) and stored as L contiguous vectors of U lanes; loads in the stored value
with the same shape (a residual read from NCHW) are loaded contiguously and transposed the other
way::

    for u in unrolled(8):                          8 values of 16 lanes (one per u, as usual)
      for l in vectorized(16):             ->      transposed: 16 vectors of 8 lanes
        out[k0 + l, oh, ow0 + u] = f(C[ow0 + u, k0 + l], res[k0 + l, oh, ow0 + u])
                                                   16 contiguous stores (res: 16 loads, transposed)

    if emit_transposed(codegen, loop, U, each): return    # CPUCodegen._for, unrolled loops

Applies where U and L are powers of two, the store (one, outside any lane mask) has stride 1 in
the unrolled variable and a constant stride other than 0 and 1 in the lane, and the value does
not read the buffer it stores to. A block predicate of the unrolled variable alone (a split's
tail) is checked once for the whole group: where some iteration fails it, the group runs as
usual (``each()``: one vector per iteration, under its condition)::

    if (w0*8 + 7 < 14):  transposed group     else:  per iteration
"""
from __future__ import annotations

import llvmlite.ir as ir

from ...tir import arith
from ...tir.expr import IntImm, Load, logical_and, substitute, walk
from ...tir.stmt import BlockRealize, BufferStore, For, IfThenElse
from ...tir.transform import block_as_stmt

I32 = ir.IntType(32)


def emit_transposed(cg, loop: For, count: int, each) -> bool:
    """Emits the unrolled ``loop`` (``count`` iterations) as a transposed group, or returns False
    (nothing emitted) where it does not have that form; ``each()`` emits it iteration by iteration
    (for a tail that fails the group's predicate)."""
    st = cg.st
    inner = loop.body
    if st.lane is not None or st.mask is not None or not isinstance(inner, For) or inner.kind != "vectorized":
        return False
    lanes = arith.simplify(inner.extent, st.bounds)
    if not isinstance(lanes, IntImm) or not isinstance(inner.body, BlockRealize):
        return False
    lanes = lanes.value
    store, condition = block_as_stmt(inner.body), None
    u, lane = loop.var, inner.var
    if isinstance(store, IfThenElse) and store.else_body is None and not _uses(store.cond, lane):
        store, condition = store.then_body, store.cond
    if not _power_of_two(count) or not _power_of_two(lanes) or not isinstance(store, BufferStore) \
            or store.predicate is not None:
        return False
    saved = {var: st.bounds.get(var) for var in (u, lane)}
    st.bounds[u], st.bounds[lane] = (0, count - 1), (0, lanes - 1)
    try:
        grouped = [e for e in walk(store.value) if isinstance(e, Load) and e.predicate is None
                   and _transposable(cg, e.buffer, e.indices, u, lane)]
        if not _transposable(cg, store.buffer, store.indices, u, lane) or \
                any(isinstance(e, Load) and e.buffer is store.buffer for e in walk(store.value)):
            return False
        if condition is None:
            _emit(cg, store, grouped, u, lane, count, lanes)
        else:
            whole = logical_and(*(substitute(condition, {u: IntImm(value)}) for value in range(count)))
            with cg.st.builder.if_else(cg._expr(arith.simplify(whole, cg.st.bounds))) as (group, tail):
                with group:
                    _emit(cg, store, grouped, u, lane, count, lanes)
                with tail:
                    each()
    finally:
        for var, bound in saved.items():
            if bound is None:
                st.bounds.pop(var, None)
            else:
                st.bounds[var] = bound
    return True


def _uses(expr, var) -> bool:
    return any(node is var for node in walk(expr))


def _transposable(cg, buffer, indices, u, lane) -> bool:
    flat = cg._flat_index(buffer, indices)
    lane_stride = arith.lane_stride(flat, lane, cg.st.bounds)
    return arith.lane_stride(flat, u, cg.st.bounds) == 1 and lane_stride is not None and lane_stride not in (0, 1)


def _emit(cg, store: BufferStore, grouped: list, u, lane, count: int, lanes: int) -> None:
    st = cg.st
    b = st.builder
    # the grouped loads: per lane one contiguous vector along u, transposed into one vector per u
    cache = {}
    for load in grouped:
        flat = cg._flat_index(load.buffer, load.indices)
        rows = [_contiguous(cg, load.buffer, flat, u, lane, value, count, load=True) for value in range(lanes)]
        for value, vector in enumerate(transpose(b, rows)):
            at = [substitute(index, {u: IntImm(value)}) for index in load.indices]
            cache[_key(load.buffer, cg._flat_index(load.buffer, at))] = cg._from_memory(vector, load.buffer.dtype)
    st.transposed_loads = cache
    st.lane = (lane, lanes)
    try:
        values = [cg._to_memory(cg._as_vector(cg._expr(substitute(store.value, {u: IntImm(value)})), lanes),
                                store.buffer.dtype) for value in range(count)]
    finally:
        st.lane = None
        st.transposed_loads = {}
    flat = cg._flat_index(store.buffer, store.indices)
    for value, vector in enumerate(transpose(b, values)):
        ptr = _contiguous(cg, store.buffer, flat, u, lane, value, count, load=False)
        b.store(vector, ptr).align = _element_bytes(store.buffer)


def cached_load(cg, load: Load):
    """The transposed vector of ``load`` inside a transposed group's value, or None."""
    cache = cg.st.transposed_loads
    return cache.get(_key(load.buffer, cg._flat_index(load.buffer, load.indices))) if cache else None


def _key(buffer, flat) -> tuple:
    return id(buffer), str(flat)


def _contiguous(cg, buffer, flat, u, lane, lane_value: int, count: int, load: bool):
    """The address of element (u = 0, lane = ``lane_value``) of ``buffer``, or with ``load`` the
    vector of ``count`` elements from there."""
    from .codegen import llvm_type

    b = cg.st.builder
    mem_ty = llvm_type(buffer.dtype, memory=True)
    start = arith.simplify(substitute(flat, {u: IntImm(0), lane: IntImm(lane_value)}), cg.st.bounds)
    ptr = b.gep(cg._buffer_ptr(buffer), [cg._expr(start)], source_etype=mem_ty)
    if not load:
        return ptr
    vector = b.load(ptr, typ=ir.VectorType(mem_ty, count))
    vector.align = _element_bytes(buffer)
    return vector


def transpose(b: ir.IRBuilder, vectors: list) -> list:
    """``n`` vectors of ``m`` lanes (n, m powers of two) -> ``m`` vectors of ``n`` lanes:
    out[j][i] = vectors[i][j]. Each n x n block of lanes is transposed in log2(n) stages that swap
    the off-diagonal sub-blocks (one two-input shuffle per vector and stage); narrow rows are
    concatenated into wide ones first, wide results split."""
    n, m = len(vectors), vectors[0].type.count
    if m >= n:
        rows = _stages(b, list(vectors), n)
        return [_slice(b, rows[j % n], (j // n) * n, n) for j in range(m)]
    chunks = n // m
    wide = [_concat(b, [vectors[c * m + i] for c in range(chunks)]) for i in range(m)]
    return _stages(b, wide, m)


def _stages(b, rows: list, n: int) -> list:
    lanes = rows[0].type.count
    block = n // 2
    while block >= 1:
        low, high = [], []
        for p in range(lanes):
            if (p % n // block) % 2 == 0:
                low.append(p)
                high.append(p + block)
            else:
                low.append(lanes + p - block)
                high.append(lanes + p)
        for i in range(n):
            if (i // block) % 2 == 0:
                a, c = rows[i], rows[i + block]
                rows[i] = b.shuffle_vector(a, c, ir.Constant(ir.VectorType(I32, lanes), low))
                rows[i + block] = b.shuffle_vector(a, c, ir.Constant(ir.VectorType(I32, lanes), high))
        block //= 2
    return rows


def _slice(b, vector, start: int, count: int):
    if start == 0 and count == vector.type.count:
        return vector
    undef = ir.Constant(vector.type, ir.Undefined)
    return b.shuffle_vector(vector, undef, ir.Constant(ir.VectorType(I32, count), list(range(start, start + count))))


def _concat(b, vectors: list):
    while len(vectors) > 1:
        n = vectors[0].type.count
        mask = ir.Constant(ir.VectorType(I32, 2 * n), list(range(2 * n)))
        vectors = [b.shuffle_vector(vectors[i], vectors[i + 1], mask) for i in range(0, len(vectors), 2)]
    return vectors[0]


def _element_bytes(buffer) -> int:
    from ...tir.expr import dtype_bits

    return max(1, dtype_bits(buffer.dtype) // 8)


def _power_of_two(n: int) -> bool:
    return n >= 2 and n & (n - 1) == 0
