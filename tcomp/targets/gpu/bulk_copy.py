"""Bulk tile copies: a pipelined loop's shared tiles filled by the copy engine, not by the threads.

A loop annotated ``pipeline_bulk_copy`` (and ``pipeline_stages``) whose copies into shared memory
are all *box copies* (``S[i, j] = G[o0 + i, o1 + j]``: a whole swizzled shared tile from a
rectangle of a global buffer, with 128-byte lines) has them replaced by ``bulk_copy`` calls that
one elected thread issues (Hopper's TMA: ``cp.async.bulk.tensor``; each names a *tile map*, the
descriptor of the global buffer and the box the launch passes). Each stage has an *async barrier*
(an mbarrier) that the copies of its tiles complete: the elected thread announces the bytes
(``async_barrier_expect``), every thread waits for the stage's phase (``async_barrier_wait``)::

    for k_0 [pipeline_stages=S, bulk]:          if elected: async_barrier_init(ready[s], 1) for each stage s
      A_shared[..] = A[i0 + .., k_0*64 + ..] ->   if elected: for p < S - 2: copies(p)
      B_shared[..] = B[k_0*64 + .., j0 + ..]      barrier()
      C += A_shared x B_shared                    for k_0:
                                                    async_barrier_wait(ready[k_0 % S], (k_0 / S) % 2)
                                                    barrier()    # every thread done with stage k_0 - 2
                                                    if k_0 + S - 2 < K and elected: copies(k_0 + S - 2)
                                                    C += A_shared[k_0 % S] x B_shared[k_0 % S]
    copies(k) = async_barrier_expect(ready[k % S], bytes of the stage);
                bulk_copy(&A_shared[k % S, 0, 0], A[i0, k*64], ready[k % S], 256, 64); bulk_copy(.. B ..)

A swizzled tile whose rows span several 128-byte lines is stored in panels (``Buffer.panels``):
one box per panel (and per 256 rows, the largest box side). The copy engine's 128-byte swizzle
is the shared buffers' (``Buffer.swizzle``) on 1024-byte aligned boxes. Nothing here is specific
to a vendor; the dialect renders the calls and the launch encodes the tile maps.
"""
from __future__ import annotations

from dataclasses import dataclass
from itertools import product

from ...tir import arith
from ...tir.expr import Buffer, Call, Cmp, IntImm, Load, Var, dtype_bits, free_vars, logical_and, substitute
from ...tir.stmt import BlockRealize, BufferStore, Evaluate, For, SeqStmt, Stmt
from ...tir.transform import walk_stmts

BULK_COPY = "pipeline_bulk_copy"   # loop annotation: fill the stages with bulk copies where the copies allow
COPY, INIT, EXPECT, WAIT = "bulk_copy", "async_barrier_init", "async_barrier_expect", "async_barrier_wait"
CALLS = (COPY, INIT, EXPECT, WAIT)
LINE_BYTES = 128                   # the swizzle line the copy engine writes (and wgmma reads)
MAX_BOX = 256                      # the largest side of one box
STRIDE_ALIGN = 16                  # bytes: the source's rows (its descriptor's strides) are multiples of it


@dataclass(frozen=True)
class TileMap:
    """What a launch passes for the bulk copies from ``buffer``: its descriptor with boxes of
    ``box`` elements (outermost axis first), lines swizzled over 128 bytes."""

    buffer: Buffer
    box: tuple


@dataclass(frozen=True)
class BoxCopy:
    """A producer nest recognized as a box copy: ``shared[idx] = source[origin + idx]``."""

    shared: Buffer
    source: Buffer
    origin: tuple   # expressions of the loops outside the nest


def box_copy(nest: Stmt) -> BoxCopy | None:
    """``nest`` (loops around one block) as a box copy, or None where it is anything else: a guard,
    a predicate, a conversion, an index that is not the shared one shifted, or a shared tile that is
    not swizzled over whole 128-byte lines."""
    loops, node = [], nest
    while isinstance(node, For):
        extent = arith.simplify(node.extent)
        if not isinstance(extent, IntImm):
            return None
        loops.append((node.var, extent.value))
        node = node.body
    if not isinstance(node, BlockRealize) or node.predicate is not None:
        return None
    store = node.block.body
    if not isinstance(store, BufferStore) or store.predicate is not None or not isinstance(store.value, Load):
        return None
    load, shared = store.value, store.buffer
    source = load.buffer
    if load.predicate is not None or source.scope != "global" or source.explicit_strides is not None \
            or source.dtype != shared.dtype or len(load.indices) != len(store.indices) or not _lines(shared):
        return None
    row = arith.simplify(source.shape[-1])
    if not isinstance(row, IntImm) or row.value * dtype_bits(source.dtype) % (8 * STRIDE_ALIGN):
        return None
    count = 1
    for _, extent in loops:
        count *= extent
    if count != arith.simplify(shared.num_elements()).value:
        return None
    values = {iv.var: value for iv, value in zip(node.block.iter_vars, node.iter_values)}
    bounds = {var: (0, extent - 1) for var, extent in loops}
    inner = {var for var, _ in loops}
    origin = []
    for index, offset in zip(load.indices, store.indices):
        shift = arith.simplify(substitute(index, values) - offset, bounds)
        if free_vars(shift) & inner:
            return None
        origin.append(shift)
    return BoxCopy(shared, source, tuple(origin))


def _lines(shared: Buffer) -> bool:
    """Whether ``shared`` is swizzled in whole 128-byte lines and whole 8-line (1024-byte) swizzle
    atoms, so that every box starts on an atom (the copy engine's 128-byte swizzle is the buffer's)."""
    if shared.scope != "shared" or not shared.swizzled or shared.explicit_strides is not None:
        return False
    shape = [arith.simplify(extent) for extent in shared.shape]
    if not all(isinstance(extent, IntImm) for extent in shape):
        return False
    rows = shape[-2].value if len(shape) > 1 else 1
    return shape[-1].value * dtype_bits(shared.dtype) % (8 * LINE_BYTES) == 0 and rows % 8 == 0


def boxes(copy: BoxCopy) -> list:
    """``(shared indices, source indices, box)`` of each bulk copy that fills ``copy.shared`` (one
    stage): one per leading index, panel of 128-byte lines and run of up to 256 rows; the box in
    elements, outermost axis first."""
    shape = [arith.simplify(extent).value for extent in copy.shared.shape]
    line = LINE_BYTES * 8 // dtype_bits(copy.shared.dtype)
    rows = shape[-2] if len(shape) > 1 else 1
    found = []
    for lead in product(*(range(extent) for extent in shape[:-2])):
        for first in range(0, rows, MAX_BOX):
            for column in range(0, shape[-1], line):
                at = (*lead, first, column)[-len(shape):]
                box = (1,) * len(lead) + ((min(MAX_BOX, rows - first),) if len(shape) > 1 else ()) + (line,)
                source = tuple(arith.simplify(o + i) for o, i in zip(copy.origin, at))
                found.append((at, source, box))
    return found


def tile_maps(body: Stmt) -> tuple:
    """The tile maps that the bulk copies in ``body`` read through, in order of first use."""
    found = []
    for node in walk_stmts(body):
        if isinstance(node, Evaluate) and isinstance(node.value, Call) and node.value.name == COPY:
            tile = tile_map_of(node.value)
            if tile not in found:
                found.append(tile)
    return tuple(found)


def tile_map_of(call: Call) -> TileMap:
    """The tile map a ``bulk_copy(dst, src, barrier, *box)`` call reads through."""
    return TileMap(call.args[1].buffer, tuple(a.value for a in call.args[3:]))


def elected(threads: list):
    """The condition that holds on one thread of the block: each thread index 0."""
    return logical_and(*(Cmp("eq", var, IntImm(0)) for var in threads))


def staged_copies(copies: list, staged: dict, ready: Buffer, stage, shift: dict) -> Stmt:
    """The calls filling stage ``stage`` for the iteration ``shift`` names: the bytes announced on
    its barrier, then a bulk copy per box (``staged``: shared buffer -> its staged buffer)."""
    barrier = Load(ready, (stage,))
    nbytes = sum(arith.simplify(c.shared.num_elements()).value * dtype_bits(c.shared.dtype) // 8 for c in copies)
    calls = [Evaluate(Call(EXPECT, (barrier, IntImm(nbytes)), "void"))]
    for copy in copies:
        for at, source, box in boxes(copy):
            src = Load(copy.source, tuple(arith.simplify(substitute(i, shift)) for i in source))
            dst = Load(staged[copy.shared], (stage,) + tuple(IntImm(i) for i in at))
            calls.append(Evaluate(Call(COPY, (dst, src, barrier) + tuple(IntImm(b) for b in box), "void")))
    return SeqStmt(tuple(calls))


def init_barriers(ready: Buffer, stages: int) -> Stmt:
    return SeqStmt(tuple(Evaluate(Call(INIT, (Load(ready, (IntImm(s),)), IntImm(1)), "void")) for s in range(stages)))


def wait_stage(ready: Buffer, k: Var, stages: int) -> Stmt:
    """Every thread waits for the phase of stage ``k % stages`` that iteration ``k`` fills."""
    return Evaluate(Call(WAIT, (Load(ready, (k % stages,)), (k // stages) % 2), "void"))


def ready_buffer(k: Var, stages: int) -> Buffer:
    """The stages' async barriers (64-bit each, in shared memory)."""
    return Buffer(f"{k.name}_ready", (stages,), "uint64", "shared")
