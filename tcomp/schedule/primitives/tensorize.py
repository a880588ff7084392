"""``blockize`` and ``tensorize``: isolate a tile of a block, then replace it with a hardware instruction.

blockize(ji) after ``split(j, [None, 16])``, ``split(k, [None, 4])``, ``reorder(i, j_0, k_0, j_1, k_1)``::

    for j_0 in range(4):                         for j_0 in range(4):
      for k_0 in range(16):                        for k_0 in range(16):
        for j_1 in range(16):                        block C_o[vj_o = S(4): j_0, vk_o = R(16): k_0]:
          for k_1 in range(4):             ->          init:
            block C[vj = S(64): j_0 * 16 + j_1,          for j_1 in range(16):
                    vk = R(64): k_0 * 4 + k_1]:             C[vi, vj_o * 16 + j_1] = 0
              init: C[vj] = 0                           for j_1 in range(16):
              C[vj] = C[vj] + ...                         for k_1 in range(4):
                                                            block C[vj = S(64): vj_o * 16 + j_1,
                                                                    vk = R(64): vk_o * 4 + k_1]:
                                                              C[vj] = C[vj] + ...

The outer block's iterators are the outer projection of the inner ones (each inner iterator
is ``outer * tile + part under the loop``); the init moves to the outer block.

tensorize(j_1, "dot_16x4_vnni") blockizes (when given a loop) and matches the inner block
against the intrinsic's description (``schedule/intrinsics.py``): the same loop extents, the
same expression with the same dtypes, each buffer indexed like the description's (its
trailing dimensions by the loops in the same pattern, with the description's compact
strides, except the row stride for an intrinsic with ``strided_rows``; leading dimensions
fixed for the tile). On a match, the outer block's body becomes
one call with each buffer's tile start::

    block C_o[...]:
      init: ...
      dot_16x4_vnni(&A[vi_o, vk_o * 4], &B[vj_o, vk_o, 0, 0], &C[vi_o, vj_o * 16])

On a mismatch it raises ``ScheduleError`` saying exactly what differs.
"""
from __future__ import annotations

from dataclasses import dataclass

from ...targets.cpu import intrinsics as _cpu_intrinsics  # noqa: F401  (registers the x86 intrinsics)
from ...targets.cuda import intrinsics as _cuda_intrinsics  # noqa: F401  (registers the tensor-core intrinsics)
from ...tir import arith
from ...tir.expr import (
    BinOp,
    Call,
    Cast,
    Cmp,
    Expr,
    FloatImm,
    IntImm,
    Load,
    Select,
    Var,
    children,
    free_vars,
    substitute,
)
from ...tir.printer import expr_to_str
from ...tir.stmt import Block, BlockRealize, BufferStore, For, IterVar
from ...tir.transform import substitute_stmt
from ..intrinsics import IntrinsicError, description_nest, get_intrinsic, intrinsic_call
from ..schedule import BlockRV, ScheduleError, primitive


@dataclass
class _BlockizePlan:
    """What ``blockize`` will do, computed before anything changes."""

    loop: For
    inner_loops: list
    realize: BlockRealize
    outer_iters: tuple      # IterVars of the new block
    outer_values: tuple     # their bindings (expressions of the loops above)
    inner_values: tuple     # the inner block's new bindings (outer iterators and loops under ``loop``)
    init: object            # the outer block's init, or None
    bounds: dict            # Var -> (lo, hi) of the outer iterators and the loops under ``loop``


@primitive
def blockize(sch, loop):
    """Wraps the loops from ``loop`` down and the one block under them in a new block (returned)."""
    plan = _plan_blockize(sch, sch.get_loop(loop), "blockize")
    return sch.new_rv(_apply_blockize(sch, plan))


@primitive
def tensorize(sch, block_or_loop, intrinsic: str):
    """Replaces the computation under ``block_or_loop`` with the tensor intrinsic ``intrinsic``.

    A loop is blockized first; a block must be one made by ``blockize``: a perfect loop nest
    around one block.
    """
    try:
        intrin = get_intrinsic(intrinsic)
    except IntrinsicError as exc:
        raise ScheduleError(f"tensorize: {exc}") from None
    what = f"tensorize {intrin.name}"
    if isinstance(block_or_loop, BlockRV):
        outer = sch.get_block_obj(block_or_loop)
        inner_loops, realize = _perfect_nest(outer.body, f"{what}: block {outer.name}")
        bounds = {iv.var: _range(iv.extent) for iv in outer.iter_vars}
        bounds.update({node.var: _range(node.extent) for node in inner_loops})
        regions = _match(intrin, inner_loops, realize, realize.iter_values, bounds, what)
        outer.body = intrinsic_call(intrin, regions)
        return
    plan = _plan_blockize(sch, sch.get_loop(block_or_loop), what)
    regions = _match(intrin, plan.inner_loops, plan.realize, plan.inner_values, plan.bounds, what)
    outer = _apply_blockize(sch, plan)
    outer.body = intrinsic_call(intrin, regions)
    return


# ---------------------------------------------------------------------------- blockize
def _plan_blockize(sch, node: For, what: str) -> _BlockizePlan:
    inner_loops, realize = _perfect_nest(node, f"{what} of loop {node.var.name}")
    blk = realize.block
    if realize.predicate is not None:
        raise ScheduleError(f"{what} of loop {node.var.name}: block {blk.name} has the predicate "
                            f"{expr_to_str(realize.predicate)} (a split that does not divide); tiles must be whole")
    bounds = {}
    for inner in inner_loops:
        if not isinstance(arith.simplify(inner.extent), IntImm):
            raise ScheduleError(f"{what} of loop {node.var.name}: loop {inner.var.name} under it has the "
                                f"non-constant extent {expr_to_str(inner.extent)}")
        bounds[inner.var] = _range(arith.simplify(inner.extent))
    inner_vars = set(bounds)
    outer_iters, outer_values, inner_values, feeds = [], [], [], {}
    for iv, value in zip(blk.iter_vars, realize.iter_values):
        outer_value, tile, part = _divide(arith.simplify(value), inner_vars, bounds, iv, what, node)
        extent = arith.simplify(iv.extent // tile) if tile > 1 else iv.extent
        if tile > 1 and arith.simplify(iv.extent % tile) != IntImm(0):
            raise ScheduleError(f"{what} of loop {node.var.name}: iterator {iv.var.name} has extent "
                                f"{expr_to_str(iv.extent)}, which tiles of {tile} do not divide")
        outer_var = Var(f"{iv.var.name}_o")
        outer_iters.append(IterVar(outer_var, extent, iv.kind))
        outer_values.append(outer_value)
        inner_values.append(arith.simplify(outer_var * tile + part) if tile > 1 else outer_var)
        bounds[outer_var] = _range(extent)
        for var in free_vars(part):
            if feeds.setdefault(var, iv.kind) != iv.kind:
                raise ScheduleError(f"{what} of loop {node.var.name}: loop {var.name} feeds both spatial and "
                                    f"reduce iterators of block {blk.name}")
    init = None
    if blk.init is not None:
        init = _outer_init(blk, inner_loops, inner_values, feeds, what, node)
    return _BlockizePlan(node, inner_loops, realize, tuple(outer_iters), tuple(outer_values), tuple(inner_values),
                         init, bounds)


def _apply_blockize(sch, plan: _BlockizePlan) -> Block:
    blk = plan.realize.block
    plan.realize.iter_values = plan.inner_values
    blk.init = None
    outer = Block(f"{blk.name}_o", plan.outer_iters, plan.loop, plan.init, blk.reads, blk.writes)
    sch.replace(plan.loop, BlockRealize(plan.outer_values, outer))
    return outer


def _perfect_nest(stmt, where: str) -> tuple:
    """The loops from ``stmt`` down (if it is a loop) and the one block they hold."""
    loops = []
    while isinstance(stmt, For):
        loops.append(stmt)
        stmt = stmt.body
    if not isinstance(stmt, BlockRealize):
        raise ScheduleError(f"{where}: the loops must nest perfectly around one block, found "
                            f"{type(stmt).__name__}")
    return loops, stmt


def _range(extent: Expr) -> tuple:
    return (0, extent.value - 1) if isinstance(extent, IntImm) else (0, None)


def _divide(value: Expr, inner_vars: set, bounds: dict, iv, what: str, node: For) -> tuple:
    """``value = outer * tile + part`` with ``part`` (over the inner loops) dense in [0, tile)."""
    lin = arith.linear_form(value)
    part_terms, rest = {}, {}
    for atom, coeff in lin.terms.items():
        if not free_vars(atom) & inner_vars:
            rest[atom] = coeff
        elif isinstance(atom, Var):
            part_terms[atom] = coeff
        else:
            raise ScheduleError(f"{what} of loop {node.var.name}: iterator {iv.var.name} is bound to "
                                f"{expr_to_str(value)}, not affine in the loops under it")
    tile = 1
    for var, coeff in sorted(part_terms.items(), key=lambda item: item[1]):
        if coeff != tile:
            raise ScheduleError(f"{what} of loop {node.var.name}: iterator {iv.var.name} is bound to "
                                f"{expr_to_str(value)}, whose part under the loop is not one dense range")
        tile *= bounds[var][1] + 1
    part = arith.to_expr(arith.Linear(part_terms, 0, lin.dtype))
    if any(coeff % tile for coeff in rest.values()) or lin.const % tile:
        raise ScheduleError(f"{what} of loop {node.var.name}: iterator {iv.var.name} is bound to "
                            f"{expr_to_str(value)}, which does not start tiles at multiples of {tile}")
    outer = arith.Linear({atom: coeff // tile for atom, coeff in rest.items()}, lin.const // tile, lin.dtype)
    return arith.to_expr(outer), tile, part


def _outer_init(blk: Block, inner_loops: list, inner_values: tuple, feeds: dict, what: str, node: For):
    """The inner block's init over the tile: loops (fresh variables) for the loops that feed spatial iterators."""
    reduce_vars = {iv.var for iv in blk.iter_vars if iv.kind == "R"}
    for store_expr in _init_exprs(blk.init):
        if free_vars(store_expr) & reduce_vars:
            raise ScheduleError(f"{what} of loop {node.var.name}: the init of block {blk.name} uses a reduce iterator")
    spatial = [loop for loop in inner_loops if feeds.get(loop.var) == "S"]
    fresh = {loop.var: Var(loop.var.name) for loop in spatial}
    mapping = {iv.var: substitute(value, fresh) for iv, value in zip(blk.iter_vars, inner_values)}
    init = substitute_stmt(blk.init, mapping)
    for loop in reversed(spatial):
        init = For(fresh[loop.var], loop.extent, init)
    return init


def _init_exprs(stmt) -> list:
    from ...tir.transform import stmt_exprs, walk_stmts

    return [expr for node in walk_stmts(stmt) for expr in stmt_exprs(node)]


# ---------------------------------------------------------------------------- matching
def _match(intrin, inner_loops: list, realize: BlockRealize, inner_values: tuple, bounds: dict, what: str) -> list:
    """Checks the tile against the description; returns each description parameter's tile start (a Load)."""
    try:
        desc = description_nest(intrin)
    except IntrinsicError as exc:
        raise ScheduleError(f"{what}: {exc}") from None
    blk = realize.block
    if len(inner_loops) != len(desc.loops):
        raise ScheduleError(f"{what}: {len(inner_loops)} loops ({_names(inner_loops)}) form the tile of block "
                            f"{blk.name}, the description has {len(desc.loops)} ({_names(desc.loops)})")
    for mine, theirs in zip(inner_loops, desc.loops):
        extent = arith.simplify(mine.extent)
        if extent != theirs.extent:
            raise ScheduleError(f"{what}: loop {mine.var.name} has extent {expr_to_str(extent)}, the description's "
                                f"{theirs.var.name} has {theirs.extent.value}")
    if not isinstance(blk.body, BufferStore):
        raise ScheduleError(f"{what}: block {blk.name} must hold one store, like the description")
    matcher = _Matcher(what, {mine.var: theirs.var for mine, theirs in zip(inner_loops, desc.loops)}, bounds,
                       intrin.strided_rows)
    mine = substitute_stmt(blk.body, {iv.var: v for iv, v in zip(blk.iter_vars, inner_values)})
    theirs = substitute_stmt(desc.update, {iv.var: v for iv, v in
                                           zip(desc.realize.block.iter_vars, desc.realize.iter_values)})
    matcher.access(mine.buffer, mine.indices, theirs.buffer, theirs.indices)
    if mine.predicate is not None:
        raise ScheduleError(f"{what}: the store of block {blk.name} is predicated")
    my_loads, their_loads = _loads(mine.value), _loads(theirs.value)
    if len(my_loads) == len(their_loads):  # name a wrong dtype before any other difference
        for load, their in zip(my_loads, their_loads):
            if load.dtype != their.dtype:
                matcher.fail(f"{load.buffer.name} is {load.dtype}, the description wants {their.dtype} "
                             f"(its {their.buffer.name})")
    matcher.expr(mine.value, theirs.value, mine, theirs)
    regions = []
    for param in intrin.description.params:
        if param not in matcher.starts:
            raise ScheduleError(f"{what}: the description's {param.name} has no counterpart in block {blk.name}")
        buf, start = matcher.starts[param]
        regions.append(Load(buf, tuple(start)))
    return regions


def _loads(expr: Expr) -> list:
    """The loads of ``expr``, left to right."""
    if isinstance(expr, Load):
        return [expr]
    return [load for child in children(expr) for load in _loads(child)]


def _names(loops) -> str:
    return ", ".join(loop.var.name for loop in loops) or "none"


class _Matcher:
    """Compares a block's expression with the description's, node by node."""

    def __init__(self, what: str, loop_map: dict, bounds: dict, strided_rows: bool = False):
        self.what, self.loop_map, self.bounds = what, loop_map, bounds
        self.strided_rows = strided_rows  # the intrinsic's rows may lie any distance apart
        self.starts: dict = {}  # description buffer -> (buffer, tile start indices)

    def fail(self, message: str):
        raise ScheduleError(f"{self.what}: {message}")

    def expr(self, mine: Expr, theirs: Expr, my_store, their_store) -> None:
        def differ():
            self.fail(f"the block computes {self._tidy(my_store.value)} where the description computes "
                      f"{expr_to_str(their_store.value)} ({self._tidy(mine)} against {expr_to_str(theirs)})")

        if type(mine) is not type(theirs):
            differ()
        if isinstance(mine, Load):
            self.access(mine.buffer, mine.indices, theirs.buffer, theirs.indices)
        elif isinstance(mine, (BinOp, Cmp)):
            if mine.op != theirs.op:
                differ()
            self.expr(mine.a, theirs.a, my_store, their_store)
            self.expr(mine.b, theirs.b, my_store, their_store)
        elif isinstance(mine, Cast):
            if mine.dtype != theirs.dtype:
                self.fail(f"the block casts {expr_to_str(mine.value)} to {mine.dtype}, the description to "
                          f"{theirs.dtype}")
            self.expr(mine.value, theirs.value, my_store, their_store)
        elif isinstance(mine, Select):
            for a, b in ((mine.cond, theirs.cond), (mine.a, theirs.a), (mine.b, theirs.b)):
                self.expr(a, b, my_store, their_store)
        elif isinstance(mine, Call):
            if mine.name != theirs.name or len(mine.args) != len(theirs.args):
                differ()
            for a, b in zip(mine.args, theirs.args):
                self.expr(a, b, my_store, their_store)
        elif isinstance(mine, (IntImm, FloatImm)):
            if mine != theirs:
                differ()
        else:
            differ()

    def access(self, buf, indices, dbuf, dindices) -> None:
        """Checks one access of ``buf`` against the description's access of ``dbuf``; records the tile start."""
        if buf.dtype != dbuf.dtype:
            self.fail(f"{buf.name} is {buf.dtype}, the description wants {dbuf.dtype} (its {dbuf.name})")
        if dbuf.scope != "global" and buf.scope != dbuf.scope:  # "global": any memory
            self.fail(f"{buf.name} is in {buf.scope} memory, the description wants {dbuf.scope} (its {dbuf.name})")
        rank, drank = len(buf.shape), len(dbuf.shape)
        if rank < drank:
            self.fail(f"{buf.name} has rank {rank}, the description's {dbuf.name} has rank {drank}")
        lead = rank - drank
        start, pattern = [], []
        for dim, index in enumerate(indices):
            base, terms = self._split(buf, dim, arith.simplify(index, self.bounds))
            if dim < lead and terms:
                self.fail(f"{buf.name}[{self._show(indices)}]: dimension {dim} varies inside the tile, but only "
                          f"the last {drank} may (the description's {dbuf.name} has rank {drank})")
            start.append(base)
            pattern.append(terms)
        wanted = [self._pattern(arith.simplify(index)) for index in dindices]
        if pattern[lead:] != wanted:
            mine = ", ".join(_show_terms(t) for t in pattern[lead:])
            theirs = ", ".join(_show_terms(t) for t in wanted)
            self.fail(f"{buf.name} is indexed [{mine}] in the description's loop names, the description wants "
                      f"{dbuf.name}[{theirs}] (a different layout: pack {buf.name} as the description lays it out)")
        strides = [arith.simplify(s) for s in buf.strides()[lead:]]
        dstrides = [arith.simplify(s) for s in dbuf.strides()]
        if self.strided_rows and drank >= 2:  # the instruction takes the row stride: rows may lie apart
            strides[-2] = dstrides[-2]
        if strides != dstrides:
            self.fail(f"{buf.name}'s last {drank} dimensions have strides [{', '.join(expr_to_str(s) for s in strides)}]"
                      f", the description's {dbuf.name} is a compact {[s.value for s in dbuf.shape]} array (strides "
                      f"[{', '.join(expr_to_str(s) for s in dstrides)}]): pack {buf.name} as the description lays it out")
        if dbuf in self.starts:
            known_buf, known_start = self.starts[dbuf]
            if known_buf is not buf or [expr_to_str(s) for s in known_start] != [expr_to_str(s) for s in start]:
                self.fail(f"the description's {dbuf.name} is one tile, the block reads {known_buf.name}"
                          f"[{self._show(known_start)}] and {buf.name}[{self._show(start)}] for it")
        elif any(known_buf is buf for known_buf, _ in self.starts.values()):
            self.fail(f"{buf.name} plays two roles of the description")
        self.starts[dbuf] = (buf, start)

    def _split(self, buf, dim: int, index: Expr) -> tuple:
        """``index = base + sum(coeff * loop)`` over the tile's loops: (base, {description loop: coeff})."""
        lin = arith.linear_form(index)
        terms, rest = {}, {}
        for atom, coeff in lin.terms.items():
            if atom in self.loop_map:
                terms[self.loop_map[atom]] = coeff
            elif free_vars(atom) & set(self.loop_map):
                self.fail(f"{buf.name}'s index {expr_to_str(index)} (dimension {dim}) is not affine in the tile's loops")
            else:
                rest[atom] = coeff
        return arith.to_expr(arith.Linear(rest, lin.const, lin.dtype)), terms

    def _pattern(self, index: Expr) -> dict:
        lin = arith.linear_form(index)
        return dict(lin.terms)

    def _tidy(self, expr: Expr) -> str:
        """``expr`` as text, its loads' indices simplified (``B[vj_o, vk_o, j_1, k_1]``)."""
        tidy = {load: Load(load.buffer, tuple(arith.simplify(i, self.bounds) for i in load.indices))
                for load in _loads(expr)}
        text = expr_to_str(expr)
        for load, simple in tidy.items():
            text = text.replace(expr_to_str(load), expr_to_str(simple))
        return text

    @staticmethod
    def _show(indices) -> str:
        return ", ".join(expr_to_str(i) for i in indices)


def _show_terms(terms: dict) -> str:
    if not terms:
        return "0"
    return " + ".join(var.name if coeff == 1 else f"{var.name} * {coeff}" for var, coeff in terms.items())
