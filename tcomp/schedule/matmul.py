"""Default CPU schedule for batched matrix multiplication with fused prologue and epilogue.

Computes ``C[b, m, n] = sum_k A(b, m, k) * B(b, k, n)`` and hands each element
to ``store``, which applies the fused epilogue (bias, activation, residual add)
and writes it. ``A`` and ``B`` are arbitrary element functions (transposes,
im2col of a convolution, broadcasts are folded into them).

The schedule follows the BLIS/GotoBLAS structure, expressed in the loop IR::

    for tile in parallel(batch * M_tiles * N_tiles):       # one MB x NB output tile per task
      Ct = alloc(MB * NB, local)
      for kt in range(ceil(K / KC)):
        pack  Ap[MB, KC]            <- A(b, m, k)           (rows past M clamped)
        pack  Bp[KC, NB]            <- B(b, k, n)           (by output-pixel rows for convolutions)
        for nr in range(NB / NR):
          for mr in range(MB / MR):
            acc = alloc(MR * NR, local)                     # lives in vector registers
            for kk in range(min(KC, K - kt*KC)):
              for r in unrolled(MR): for v in unrolled(NR / L): for l in vectorized(L):
                acc[r, v*L + l] += Ap[mr*MR + r, kk] * Bp[kk, nr*NR + v*L + l]
            Ct[...] <- acc
      for mm, nn:  store(Ct[mm, nn], b, m, n)   where m < M and n < N

Packing makes the inner loop read two contiguous streams whatever the
layout of the operands, and gives every tail a single place to be handled:
rows of A past M are clamped (their results are never stored), columns of
B past N are left unwritten (likewise), K tails shorten the k loop. An
operand that already is a plain row-major array (A with unit stride in k; B
with unit stride in n and only full tiles) is read in place instead.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from ..costmodel.analytic import matmul_cost
from ..tir.arith import linear_form, simplify
from ..tir.expr import Buffer, Cmp, IntImm, Load, Select, Var, as_expr, const, logical_and, minimum
from ..tir.stmt import Allocate, BufferStore, PrimFunc, block, loop, seq
from .extents import ceil_div, divisible, extent_of, hint


# Symbolic extents get the tiles of this size.
SIZE_HINT = 128

# Budget of the per-thread output tile Ct (stack memory), and the widest N tile.
LOCAL_TILE_BYTES = 128 * 1024
MAX_NB = 256


@dataclass(frozen=True)
class MatmulTiles:
    """Tile sizes; ``nr`` is a multiple of the vector width."""

    mr: int
    nr: int
    mb: int
    nb: int
    kc: int


def default_tiles(M: int, N: int, K: int, lanes: int, num_threads: int, batch: int = 1,
                  b_grid: tuple | None = None) -> MatmulTiles:
    """The candidate tiling with the lowest analytic cost (``costmodel/analytic.py``).

    Register tiles: 6 rows x 4 vectors or 12 rows x 2 vectors (24 accumulators of the
    32 vector registers). Cache tiles: equal splits of M and N, the output tile within
    the local budget, K in blocks of 256.
    """
    candidates = []
    for nr_vectors, mr_max in ((4, 6), (2, 12)):
        nr = nr_vectors * lanes
        mr = min(mr_max, M)
        for nb in _equal_splits(N, nr, MAX_NB):
            for mb in _equal_splits(M, mr, max(mr, LOCAL_TILE_BYTES // (4 * nb))):
                cost = matmul_cost(batch, M, N, K, mr, nr_vectors, mb, nb, lanes, num_threads, b_grid)
                candidates.append((cost, mr, nr, mb, nb))
    _, mr, nr, mb, nb = min(candidates)
    return MatmulTiles(mr, nr, mb, nb, min(K, 256))


def _pack_b(spec, t, Bp, b_idx, n0, k0, kc_len, lanes):
    kk, vo, vi = Var("kk"), Var("vo"), Var("vi")
    tail = None if divisible(spec.N, t.nb) else Cmp("lt", n0 + vo * lanes + vi, as_expr(spec.N))
    return loop(kk, kc_len, loop(vo, t.nb // lanes, loop(vi, lanes, block(
        "pack_B", [("S", t.kc, kk), ("S", t.nb, vo * lanes + vi)],
        lambda vk, vj: BufferStore(Bp, spec.b(b_idx, k0 + vk, n0 + vj), (vk, vj)), predicate=tail),
        "vectorized")))


def _pack_b_grid(spec, t, Bp, b_idx, n0, k0, kc_len, lanes):
    """B over an (OH, OW) grid (a convolution's output pixels): packed row by row, so that
    consecutive lanes read consecutive input pixels instead of gathering."""
    OH, OW = spec.b_grid
    kk, rr, wo, wi = Var("kk"), Var("rr"), Var("wo"), Var("wi")
    oh_first = n0 // OW
    rows = minimum(IntImm(OH - 1), (n0 + (t.nb - 1)) // OW) - oh_first + 1
    oh = oh_first + rr
    ow = wo * lanes + wi
    n = oh * OW + ow
    inside = logical_and(Cmp("lt", ow, IntImm(OW)) if OW % lanes else None,
                         Cmp("ge", n, n0), Cmp("lt", n, n0 + t.nb))
    return loop(kk, kc_len, loop(rr, rows, loop(wo, _ceil(OW, lanes), loop(wi, lanes, block(
        "pack_B", [("S", t.kc, kk), ("S", t.nb, n - n0)],
        lambda vk, vj: BufferStore(Bp, spec.b(b_idx, k0 + vk, oh, ow), (vk, vj)), predicate=inside),
        "vectorized"))))


def _is_plain(operand_fn) -> bool:
    """Whether operand(b, i, j) is a load whose address is affine in b, i, j with unit stride
    in j (the vectorized axis): such an operand is read in place, unpacked."""
    args = (Var("b"), Var("i"), Var("j"))
    value = operand_fn(*args)
    if not isinstance(value, Load) or value.predicate is not None:
        return False
    terms = linear_form(simplify(value.buffer.offset(value.indices))).terms
    return terms.get(args[2]) == 1 and all(any(atom is a for a in args) for atom in terms)


def _equal_splits(extent: int, unit: int, limit: int) -> set:
    """Tile sizes (multiples of ``unit``, at most ``limit`` unless one unit is more) that
    split ``extent`` into equal tiles: round_up(ceil(extent / t), unit) for t tiles."""
    sizes, tiles = set(), _ceil(extent, max(limit, unit))
    while True:
        size = _round_up(_ceil(extent, tiles), unit)
        if size <= max(limit, unit):
            sizes.add(size)
        if size == unit:
            return sizes
        tiles = max(tiles + 1, _ceil(extent, size - unit))  # the next tile count with a smaller size


def _ceil(a: int, b: int) -> int:
    return -(-a // b)


def _round_up(a: int, b: int) -> int:
    return _ceil(a, b) * b


@dataclass
class MatmulSpec:
    """What a matmul kernel computes (see module docstring)."""

    name: str
    batch: int
    M: int
    N: int
    K: int
    a: Callable          # (b, m, k) -> Expr
    b: Callable          # (b, k, n) -> Expr
    store: Callable      # (value, b, m, n) -> BufferStore, applying the fused epilogue
    params: tuple        # kernel parameters (buffers), outputs included
    acc_dtype: str = "float32"
    b_grid: tuple | None = None  # (OH, OW): N is a grid and ``b`` is (b, k, oh, ow) -> Expr


def matmul_kernel(spec: MatmulSpec, lanes: int, num_threads: int, tiles: MatmulTiles | None = None) -> PrimFunc:
    """Extents may be symbolic: tiles are then chosen for a representative size and every
    tail is handled at run time."""
    M, N, K = extent_of(spec.M), extent_of(spec.N), extent_of(spec.K)
    t = tiles or default_tiles(hint(M, SIZE_HINT), hint(N, SIZE_HINT), hint(K, SIZE_HINT), lanes, num_threads,
                               hint(spec.batch, 1), spec.b_grid)
    mt_count, nt_count, kt_count = ceil_div(M, t.mb), ceil_div(N, t.nb), ceil_div(K, t.kc)
    dt = spec.acc_dtype
    zero = const(0, dt)

    Ct = Buffer("Ct", (t.mb, t.nb), dt, "local")
    Ap = Buffer("Ap", (t.mb, t.kc), dt, "local")
    Bp = Buffer("Bp", (t.kc, t.nb), dt, "local")
    acc = Buffer("acc", (t.mr, t.nr), dt, "local")

    tile = Var("tile")
    b_idx = tile // (mt_count * nt_count)
    m0 = (tile // nt_count) % mt_count * t.mb
    n0 = tile % nt_count * t.nb
    kt, kk, mm = Var("kt"), Var("kk"), Var("mm")
    k0 = kt * t.kc
    kc_len = IntImm(t.kc) if divisible(K, t.kc) else minimum(IntImm(t.kc), K - k0)
    # rows of this tile that exist: register tiles past them are skipped
    m_rows = IntImm(t.mb) if divisible(M, t.mb) else minimum(IntImm(t.mb), M - m0)

    # pack A: Ap[mm, kk] = A(b, min(m0 + mm, M - 1), k0 + kk); vectorized along k.
    # A plain row-major operand is read in place instead.
    ko, ki = Var("ko"), Var("ki")
    direct_a = _is_plain(spec.a)
    pack_a = None if direct_a else loop(mm, m_rows, loop(ko, _ceil(t.kc, lanes), loop(ki, lanes, block(
        "pack_A", [("S", t.mb, mm), ("S", t.kc, ko * lanes + ki)],
        lambda vm, vk: BufferStore(Ap, spec.a(b_idx, minimum(m0 + vm, M - 1), k0 + vk), (vm, vk)),
        predicate=Cmp("lt", ko * lanes + ki, kc_len) if t.kc % lanes or not divisible(K, t.kc) else None),
        "vectorized")))

    # pack B: Bp[kk, j] = B(b, k0 + kk, n0 + j) for n0 + j < N; vectorized along n.
    # A plain row-major operand whose tiles are all full is read in place.
    direct_b = spec.b_grid is None and divisible(N, t.nb) and _is_plain(spec.b)
    if direct_b:
        pack_b = None
    elif spec.b_grid:
        pack_b = _pack_b_grid(spec, t, Bp, b_idx, n0, k0, kc_len, lanes)
    else:
        pack_b = _pack_b(spec, t, Bp, b_idx, n0, k0, kc_len, lanes)

    # micro-kernel over the packed panels
    p, mr_, r, v, lane = Var("p"), Var("mr"), Var("r"), Var("v"), Var("l")

    def reg_loops(body_fn):
        return loop(r, t.mr, loop(v, t.nr // lanes, loop(lane, lanes, body_fn(r, v * lanes + lane),
                                                          "vectorized"), "unrolled"), "unrolled")

    def a_elem(vr, vk):
        if direct_a:
            return spec.a(b_idx, minimum(m0 + mr_ * t.mr + vr, M - 1), k0 + vk)
        return Ap[mr_ * t.mr + vr, vk]

    def b_elem(vk, vj):
        if direct_b:
            return spec.b(b_idx, k0 + vk, n0 + p * t.nr + vj)
        return Bp[vk, p * t.nr + vj]

    first_k = Cmp("eq", kt, IntImm(0))
    load_acc = reg_loops(lambda ri, ji: block(
        "acc_load", [("S", t.mr, ri), ("S", t.nr, ji)],
        lambda vr, vj: BufferStore(acc, Select(first_k, zero, Ct[mr_ * t.mr + vr, p * t.nr + vj]), (vr, vj))))
    update = loop(kk, kc_len, reg_loops(lambda ri, ji: block(
        "update", [("S", t.mr, ri), ("S", t.nr, ji), ("R", t.kc, kk)],
        lambda vr, vj, vk: BufferStore(acc, acc[vr, vj] + a_elem(vr, vk) * b_elem(vk, vj), (vr, vj)))))
    save_acc = reg_loops(lambda ri, ji: block(
        "acc_save", [("S", t.mr, ri), ("S", t.nr, ji)],
        lambda vr, vj: BufferStore(Ct, acc[vr, vj], (mr_ * t.mr + vr, p * t.nr + vj))))
    reg_tiles = IntImm(t.mb // t.mr) if divisible(M, t.mb) else (m_rows + (t.mr - 1)) // t.mr
    micro = loop(p, t.nb // t.nr, loop(mr_, reg_tiles, Allocate(acc, seq(load_acc, update, save_acc))))

    k_loop = loop(kt, kt_count, seq(pack_a, pack_b, micro))

    # epilogue: out = epilogue(Ct) for the valid part of the tile
    eo, ei = Var("eo"), Var("ei")

    def epi_body(vm, vn):
        m, n = m0 + vm, n0 + vn
        return spec.store(Ct[vm, vn], b_idx, m, n)

    valid = None if divisible(N, t.nb) else Cmp("lt", n0 + eo * lanes + ei, as_expr(N))
    epilogue = loop(mm, m_rows, loop(eo, t.nb // lanes, loop(ei, lanes, block(
        "epilogue", [("S", t.mb, mm), ("S", t.nb, eo * lanes + ei)], epi_body, predicate=valid), "vectorized")))

    tile_body = seq(k_loop, epilogue)
    if not direct_b:
        tile_body = Allocate(Bp, tile_body)
    if not direct_a:
        tile_body = Allocate(Ap, tile_body)
    body = loop(tile, spec.batch * mt_count * nt_count, Allocate(Ct, tile_body), "parallel")
    attrs = {"kind": "matmul", "shape": f"batch={spec.batch} M={M} N={N} K={K}",
             "tiles": f"mr={t.mr} nr={t.nr} mb={t.mb} nb={t.nb} kc={t.kc}"}
    return PrimFunc(spec.name, spec.params, body, attrs)
