"""Region analysis: which part of a buffer a block, or the blocks under a loop, access.

A region is one ``Range(min, extent)`` per buffer axis. For the blocks under a loop it is a
function of the variables of the loops *outside* that loop (the loop's own variable included):
each access index is rewritten in loop variables through the block's bindings, and its affine
form ``base + sum(c * v)`` over the inner loop variables ``v in [0, e)`` spans
``[base + sum(min(0, c*(e-1))), base + sum(max(0, c*(e-1)))]``. For ``C[i, j] = B[i, j] + B[i, j + 1]``
under ``for j_0: for j_1 in range(4)`` with ``j = j_0 * 4 + j_1``::

    loop_read_region(sch, j_0, B)  ->  B[i : 1, j_0 * 4 : 5]

Accesses are joined by their hull. What the analysis cannot express exactly it over-approximates
and says so in ``Region.approximate``: a non-affine index with known bounds contributes those
bounds, and an index with none (a gather, ``B[idx[i]]``) the whole axis. ``Region.exact`` is
True only where the region holds no element that the accesses skip (dense affine indices, one
access pattern): consumers that must not run twice on stale data need that.

A block whose body calls a tensor intrinsic (after ``tensorize``) accesses whole tiles: each
tile start ``&C[vi_o * 16, vj_o * 8]`` counts as ``C[vi_o * 16 + t0, vj_o * 8 + t1]`` with
``t0 < 16``, ``t1 < 8`` (``TileOffset``s, the description's extents); the description's
parameters it stores to are written, the ones it loads read.
"""
from __future__ import annotations

from dataclasses import dataclass

from ..tir import arith
from ..tir.expr import Buffer, Expr, IntImm, Load, Var, free_vars, substitute, walk
from ..tir.stmt import Block, BlockRealize, BufferStore, Evaluate, For, seq
from ..tir.transform import stmt_exprs, walk_stmts


@dataclass(frozen=True)
class Range:
    min: Expr
    extent: Expr

    def __str__(self):
        return f"{self.min} : {self.extent}"


@dataclass(frozen=True)
class Region:
    buffer: Buffer
    ranges: tuple                  # one Range per axis
    approximate: str | None = None  # why the region may hold elements no access touches beyond the hull
    exact: bool = False            # every element of the region is accessed

    def __str__(self):
        return f"{self.buffer.name}[{', '.join(str(r) for r in self.ranges)}]"


# ---------------------------------------------------------------- accesses
def read_indices(block: Block, buffer: Buffer) -> list:
    """The index tuples of ``block``'s loads of ``buffer`` (init and body, in order, with repeats)."""
    found = []
    for node in walk_stmts(_block_stmt(block)):
        if _is_tile_call(node):
            found.extend(_tiles(node, buffer, written=False))
            continue
        for expr in stmt_exprs(node):
            found.extend(e.indices for e in walk(expr) if isinstance(e, Load) and e.buffer is buffer)
    return found


def write_indices(block: Block, buffer: Buffer) -> list:
    """The index tuples of ``block``'s stores to ``buffer``."""
    found = []
    for node in walk_stmts(_block_stmt(block)):
        if isinstance(node, BufferStore) and node.buffer is buffer:
            found.append(node.indices)
        elif _is_tile_call(node):
            found.extend(_tiles(node, buffer, written=True))
    return found


class TileOffset(Var):
    """A position inside an intrinsic's tile along one axis: ``0 <= t < extent``."""

    __slots__ = ("extent",)

    def __init__(self, extent: Expr):
        super().__init__("tile")
        self.extent = extent


def _is_tile_call(node) -> bool:
    from .intrinsics import is_intrinsic_call

    return isinstance(node, Evaluate) and is_intrinsic_call(node.value)


def _tiles(node: Evaluate, buffer: Buffer, written: bool) -> list:
    """The tiles of ``buffer`` that an intrinsic call writes (reads), as indices with ``TileOffset``s."""
    from .intrinsics import description_nest, get_intrinsic, tile_starts

    intrinsic = get_intrinsic(node.value.name)
    update = description_nest(intrinsic).update
    loaded = {e.buffer for e in walk(update.value) if isinstance(e, Load)}
    found = []
    for param, start in zip(intrinsic.description.params, tile_starts(node.value)):
        if start.buffer is not buffer or (param is update.buffer) != written and not (not written and param in loaded):
            continue
        lead = len(start.indices) - len(param.shape)
        found.append(tuple(index if axis < lead else index + TileOffset(param.shape[axis - lead])
                           for axis, index in enumerate(start.indices)))
    return found


def _block_stmt(block: Block):
    return seq(block.init, block.body)


# ---------------------------------------------------------------- regions
def block_read_regions(block: Block) -> list:
    """The region of each buffer ``block`` reads, over its iterator domains."""
    return [_block_region(block, buf, read_indices(block, buf)) for buf in block.reads]


def block_write_regions(block: Block) -> list:
    """The region of each buffer ``block`` writes, over its iterator domains."""
    return [_block_region(block, buf, write_indices(block, buf)) for buf in block.writes]


def _block_region(block: Block, buffer: Buffer, accesses: list) -> Region:
    inner = {iv.var: iv.extent for iv in block.iter_vars}
    return hull(buffer, [(idx, {}) for idx in accesses], inner, _bounds(inner))


def loop_read_region(sch, loop: For, buffer: Buffer) -> Region | None:
    """The region of ``buffer`` that the blocks under ``loop`` read, per iteration of ``loop``
    (None if none reads it)."""
    return _loop_region(sch, loop, buffer, read_indices)


def loop_write_region(sch, loop: For, buffer: Buffer) -> Region | None:
    """The region of ``buffer`` that the blocks under ``loop`` write, per iteration of ``loop``."""
    return _loop_region(sch, loop, buffer, write_indices)


def _loop_region(sch, loop: For, buffer: Buffer, indices_of) -> Region | None:
    accesses, inner, bounds = [], {}, {}
    for realize in (n for n in walk_stmts(loop.body) if isinstance(n, BlockRealize)):
        found = indices_of(realize.block, buffer)
        if not found:
            continue
        loops = sch.loops_above(realize)
        below = loops[[id(x) for x in loops].index(id(loop)) + 1:]
        inner.update({x.var: x.extent for x in below})
        bounds.update(_bounds({x.var: x.extent for x in loops}))
        binding = dict(zip((iv.var for iv in realize.block.iter_vars), realize.iter_values))
        accesses.extend((idx, binding) for idx in found)
    if not accesses:
        return None
    return hull(buffer, accesses, inner, bounds)


def _bounds(extents: dict) -> dict:
    """{var: (0, extent - 1)}, the upper side None for a symbolic extent."""
    return {v: (0, e.value - 1 if isinstance(e, IntImm) else None) for v, e in extents.items()}


def hull(buffer: Buffer, accesses: list, inner: dict, bounds: dict) -> Region:
    """The hull of ``accesses`` = [(indices, binding), ...] as ``inner`` = {var: extent} range.

    ``binding`` maps block iterators to expressions of loop variables; ``bounds`` holds the
    known ranges of all variables (for simplification and non-affine indices).
    """
    notes, ranges = [], []
    tiles = {v: v.extent for idx, _ in accesses for i in idx for v in free_vars(i) if isinstance(v, TileOffset)}
    if tiles:
        inner, bounds = {**inner, **tiles}, {**bounds, **_bounds(tiles)}
    accesses = [tuple(arith.simplify(substitute(i, binding), bounds) for i in idx) for idx, binding in accesses]
    exact = len({tuple(str(i) for i in idx) for idx in accesses}) == 1
    if exact and any(_non_affine(i, inner) for i in accesses[0]):
        box = _enumerated(accesses[0], inner)
        if box is not None:
            return Region(buffer, tuple(Range(lo, arith.simplify(hi - lo + 1, bounds)) for lo, hi in box), None, True)
    seen_inner: set = set()
    for axis, shape in enumerate(buffer.shape):
        spans, axis_inner = [], set()
        for indices in accesses:
            index = indices[axis]
            span, note, dense, used = _span(index, inner, bounds)
            if span is None:
                notes.append(f"index {index} of {buffer.name} has no known bounds (whole axis {axis} used)")
                spans = None
                break
            if note:
                notes.append(note)
            exact = exact and dense
            axis_inner |= used
            spans.append(span)
        exact = exact and not (axis_inner & seen_inner)
        seen_inner |= axis_inner
        if spans is None:
            ranges.append(Range(IntImm(0), shape))
            exact = False
            continue
        joined = _join(spans, bounds)
        if joined is None:
            notes.append(f"the accesses to axis {axis} of {buffer.name} are not comparable (whole axis used)")
            ranges.append(Range(IntImm(0), shape))
            exact = False
            continue
        lo, hi = joined
        ranges.append(Range(lo, arith.simplify(hi - lo + 1, bounds)))
    return Region(buffer, tuple(ranges), "; ".join(notes) or None, exact and not notes)


def _span(index: Expr, inner: dict, bounds: dict):
    """(lo, hi) of ``index`` over the inner variables, a note if approximated, whether every
    value in between is taken, and the inner variables used; (None, ...) if unbounded."""
    lin = arith.linear_form(index)
    lo = hi = arith.Linear({}, lin.const, lin.dtype)
    steps = []   # (|c|, extent) of the inner variables
    used: set = set()
    approx_lo, approx_hi = 0, 0
    note = None
    for atom, coeff in lin.terms.items():
        if atom in inner:
            used.add(atom)
            last = arith.simplify(inner[atom] - 1)
            term = arith.linear_form(arith.simplify(last * coeff))
            lo, hi = (lo, hi.add(term)) if coeff > 0 else (lo.add(term), hi)
            steps.append((abs(coeff), last))
        elif free_vars(atom) & inner.keys():
            alo, ahi = arith.bound(atom, bounds)
            if alo is None or ahi is None:
                return None, None, False, used
            approx_lo += coeff * (alo if coeff > 0 else ahi)
            approx_hi += coeff * (ahi if coeff > 0 else alo)
            used |= free_vars(atom) & inner.keys()
            note = f"index {index} is not affine in the inner loops (its bounds are used)"
        else:
            lo = lo.add(arith.Linear({atom: coeff}, 0, lin.dtype))
            hi = hi.add(arith.Linear({atom: coeff}, 0, lin.dtype))
    lo = lo.add(arith.Linear({}, approx_lo, lin.dtype))
    hi = hi.add(arith.Linear({}, approx_hi, lin.dtype))
    return (arith.to_expr(lo), arith.to_expr(hi)), note, note is None and _dense(steps), used


ENUMERATION_LIMIT = 1 << 16


def _enumerated(index_tuple, inner: dict):
    """The exact region of one access whose inner loops enter through ``//`` and ``%`` (a split of
    a fused loop: ``fuse`` then ``split``), by evaluating it at every inner iteration::

        A_shared[(f3 + t * 2) // 8 + f0 * 64, (f3 + t * 2) % 8 + k0 * 8]     f0 < 2, t < 32, f3 < 2
          -> rows f0 * 64 .. + 127 (of k0's 8 columns), each element once: a box

    [(lo, hi)] per axis when the accessed elements fill their box, else None. Only for constant
    inner extents (at most ``ENUMERATION_LIMIT`` iterations) and atoms over inner variables alone."""
    import numpy as np

    names = [v for v in inner if any(v in free_vars(i) for i in index_tuple)]
    extents = [arith.simplify(inner[v]) for v in names]
    if not names or not all(isinstance(e, IntImm) and e.value > 0 for e in extents):
        return None
    if int(np.prod([e.value for e in extents])) > ENUMERATION_LIMIT:
        return None
    grids = np.meshgrid(*[np.arange(e.value, dtype=np.int64) for e in extents], indexing="ij")
    env = {v: g.ravel() for v, g in zip(names, grids)}
    outer_parts, values = [], []
    for index in index_tuple:
        lin = arith.linear_form(index)
        outer = {a: c for a, c in lin.terms.items() if not (free_vars(a) & inner.keys())}
        mine = {a: c for a, c in lin.terms.items() if a not in outer}
        if any(free_vars(a) - inner.keys() for a in mine):
            return None
        value = np.zeros(len(env[names[0]]), dtype=np.int64)
        for atom, coeff in mine.items():
            evaluated = _evaluate(atom, env)
            if evaluated is None:
                return None
            value += coeff * evaluated
        values.append(value)
        outer_parts.append(arith.Linear(outer, lin.const, lin.dtype))
    spans = [(int(v.min()), int(v.max())) for v in values]
    volume = int(np.prod([hi - lo + 1 for lo, hi in spans]))
    distinct = len(set(zip(*[v.tolist() for v in values])))
    if distinct != volume:
        return None
    return [(arith.simplify(arith.to_expr(part.add(arith.Linear({}, lo, part.dtype)))),
             arith.simplify(arith.to_expr(part.add(arith.Linear({}, hi, part.dtype)))))
            for part, (lo, hi) in zip(outer_parts, spans)]


def _evaluate(expr: Expr, env: dict):
    """``expr`` (integer +, -, *, //, % of variables in ``env`` and constants) on numpy arrays."""
    from ..tir.expr import BinOp, Var

    if isinstance(expr, IntImm):
        return expr.value
    if isinstance(expr, Var):
        return env.get(expr)
    if isinstance(expr, BinOp) and expr.op in ("add", "sub", "mul", "floordiv", "floormod"):
        a, b = _evaluate(expr.a, env), _evaluate(expr.b, env)
        if a is None or b is None:
            return None
        if expr.op in ("floordiv", "floormod") and not (isinstance(expr.b, IntImm) and expr.b.value > 0):
            return None
        return {"add": lambda: a + b, "sub": lambda: a - b, "mul": lambda: a * b,
                "floordiv": lambda: a // b, "floormod": lambda: a % b}[expr.op]()
    return None


def _non_affine(index: Expr, inner: dict) -> bool:
    """Whether an inner variable enters ``index`` through a non-affine atom (``//``, ``%``)."""
    return any(free_vars(atom) & inner.keys() and atom not in inner for atom in arith.linear_form(index).terms)


def _dense(steps) -> bool:
    """Whether sum(c * v), v in [0, last], takes every value of its hull (constant extents)."""
    reach = 0
    for coeff, last in sorted(steps, key=lambda s: s[0]):
        if not isinstance(last, IntImm):
            if coeff != 1 or reach != 0:
                return False
            reach = None
            continue
        if reach is None or coeff > reach + 1:
            return False
        reach += coeff * last.value
    return True


def _join(spans, bounds):
    """The hull of several (lo, hi) spans, or None where two sides cannot be ordered."""
    lo, hi = spans[0]
    for other_lo, other_hi in spans[1:]:
        lo = _pick(lo, other_lo, bounds, min)
        hi = _pick(hi, other_hi, bounds, max) if lo is not None else None
        if lo is None or hi is None:
            return None
    return lo, hi


def _pick(a: Expr, b: Expr, bounds: dict, choose):
    dlo, dhi = arith.bound(arith.simplify(a - b, bounds), bounds)
    if dlo is not None and dlo >= 0:
        return b if choose is min else a
    if dhi is not None and dhi <= 0:
        return a if choose is min else b
    return None

