"""Generic traversals of statements: substitution, buffer access collection."""
from __future__ import annotations

from .arith import simplify
from .expr import BinOp, Cmp, IntImm, Load, children, free_vars, is_size_var, substitute
from .stmt import (Allocate, Block, BlockRealize, BufferStore, Evaluate, For, IfThenElse, SeqStmt, Stmt)


def substitute_stmt(stmt: Stmt, mapping: dict) -> Stmt:
    """Replaces variables in every expression of ``stmt``."""
    return map_exprs(stmt, lambda expr: substitute(expr, mapping))


def substitute_in_place(stmt: Stmt, mapping: dict) -> None:
    """Replaces variables in every expression of ``stmt`` without rebuilding it: loops and blocks
    stay the same objects (schedule handles keep naming them)."""
    update_exprs_in_place(stmt, lambda expr: substitute(expr, mapping))


def update_exprs_in_place(stmt: Stmt, fn) -> None:
    """Applies ``fn`` to each expression held by ``stmt`` and its descendants, in place."""
    def sub(expr):
        return None if expr is None else fn(expr)

    for node in walk_stmts(stmt):
        if isinstance(node, For):
            node.extent = sub(node.extent)
        elif isinstance(node, BlockRealize):
            node.iter_values = tuple(sub(v) for v in node.iter_values)
            node.predicate = sub(node.predicate)
        elif isinstance(node, BufferStore):
            node.value, node.predicate = sub(node.value), sub(node.predicate)
            node.indices = tuple(sub(i) for i in node.indices)
        elif isinstance(node, IfThenElse):
            node.cond = sub(node.cond)
        elif isinstance(node, Evaluate):
            node.value = sub(node.value)


def simplify_stmt(stmt: Stmt) -> Stmt:
    """Simplifies every expression of ``stmt`` (see ``tir.arith``), e.g. ``(0 * 16 + l) * 1 -> l``."""
    return map_exprs(stmt, simplify)


def map_exprs(stmt: Stmt, fn) -> Stmt:
    """A copy of ``stmt`` with ``fn`` applied to each expression it holds."""

    def sub(expr):
        return None if expr is None else fn(expr)

    def visit(node):
        if node is None:
            return None
        if isinstance(node, For):
            return For(node.var, sub(node.extent), visit(node.body), node.kind, node.thread_tag,
                       dict(node.annotations))
        if isinstance(node, BlockRealize):
            blk = node.block
            new_block = Block(blk.name, blk.iter_vars, visit(blk.body), visit(blk.init), blk.reads, blk.writes,
                              dict(blk.annotations))
            return BlockRealize(tuple(sub(v) for v in node.iter_values), new_block, sub(node.predicate))
        if isinstance(node, BufferStore):
            return BufferStore(node.buffer, sub(node.value), tuple(sub(i) for i in node.indices),
                               sub(node.predicate))
        if isinstance(node, SeqStmt):
            return SeqStmt(tuple(visit(s) for s in node.stmts))
        if isinstance(node, IfThenElse):
            return IfThenElse(sub(node.cond), visit(node.then_body), visit(node.else_body))
        if isinstance(node, Allocate):
            return Allocate(node.buffer, visit(node.body))
        if isinstance(node, Evaluate):
            return Evaluate(sub(node.value))
        raise TypeError(f"unknown statement {type(node).__name__}")

    return visit(stmt)


def stmt_children(stmt: Stmt) -> list:
    if isinstance(stmt, For):
        return [stmt.body]
    if isinstance(stmt, BlockRealize):
        return [s for s in (stmt.block.init, stmt.block.body) if s is not None]
    if isinstance(stmt, SeqStmt):
        return list(stmt.stmts)
    if isinstance(stmt, IfThenElse):
        return [s for s in (stmt.then_body, stmt.else_body) if s is not None]
    if isinstance(stmt, Allocate):
        return [stmt.body]
    return []


def walk_stmts(stmt: Stmt):
    """Yields every statement, parents first."""
    stack = [stmt]
    while stack:
        node = stack.pop()
        yield node
        stack.extend(reversed(stmt_children(node)))


def stmt_exprs(stmt: Stmt) -> list:
    """The expressions held directly by one statement."""
    if isinstance(stmt, For):
        return [stmt.extent]
    if isinstance(stmt, BlockRealize):
        return list(stmt.iter_values) + ([stmt.predicate] if stmt.predicate is not None else [])
    if isinstance(stmt, BufferStore):
        return [stmt.value, *stmt.indices] + ([stmt.predicate] if stmt.predicate is not None else [])
    if isinstance(stmt, IfThenElse):
        return [stmt.cond]
    if isinstance(stmt, Evaluate):
        return [stmt.value]
    return []


def buffer_accesses(stmt: Stmt) -> tuple[list, list]:
    """Buffers read and written by ``stmt``, in first-use order (left to right in the source:
    ``C[i] = C[i] + A[i] * B[i]`` reads C, A, B)."""
    reads, writes, seen = [], [], set()  # seen: ids of visited nodes (a shared node once, not per path)
    for node in walk_stmts(stmt):
        if isinstance(node, BufferStore) and node.buffer not in writes:
            writes.append(node.buffer)
        pending = list(reversed(stmt_exprs(node)))
        while pending:
            sub = pending.pop()
            if id(sub) in seen:
                continue
            seen.add(id(sub))
            if isinstance(sub, Load) and sub.buffer not in reads:
                reads.append(sub.buffer)
            pending.extend(reversed(children(sub)))
    return reads, writes


def used_size_vars(func) -> tuple:
    """The symbolic sizes (``size_var``) that a kernel's buffers and body use, by name."""
    found = set()
    for buf in func.params:
        for extent in buf.shape:
            found |= free_vars(extent)
    for node in walk_stmts(func.body):
        for expr in stmt_exprs(node):
            found |= free_vars(expr)
        if isinstance(node, Allocate):
            for extent in node.buffer.shape:
                found |= free_vars(extent)
    return tuple(sorted((v for v in found if is_size_var(v)), key=lambda v: v.name))


def block_as_stmt(realize: BlockRealize) -> Stmt:
    """A block instance as the plain statements a code generator emits: its iterators replaced by
    their bound values, the init run on the first iteration of every reduce iterator, the
    predicate as a condition::

        block C[vi = S(8): i, vk = R(4): k] where (k < 3):     if k < 3:
          init: C[vi] = 0.0                          ->          if k == 0: C[i] = 0.0
          C[vi] = C[vi] + A[vi, vk]                              C[i] = C[i] + A[i, k]
    """
    blk = realize.block
    mapping = {iv.var: value for iv, value in zip(blk.iter_vars, realize.iter_values)}
    body = substitute_stmt(blk.body, mapping)
    if blk.init is not None:
        init = substitute_stmt(blk.init, mapping)
        first = None
        for iv, value in zip(blk.iter_vars, realize.iter_values):
            if iv.kind == "R":
                cond = Cmp("eq", value, IntImm(0, value.dtype))
                first = cond if first is None else BinOp("and", first, cond)
        body = SeqStmt((IfThenElse(first, init), body)) if first is not None else SeqStmt((init, body))
    return body if realize.predicate is None else IfThenElse(realize.predicate, body)
