"""Barriers between the thread nests of a GPU kernel that share a ``shared`` buffer.

A nest's threads write a shared tile that another nest's threads read: all writes must be done
first. Between two statements outside every ``threadIdx`` loop (all threads run them) a barrier
goes where the second touches a shared buffer that the statements since the last barrier wrote
(or writes one they read); a serial loop whose body reads what an earlier part of the body wrote
also ends its body with one (the next iteration's writes must wait for this one's reads)::

    for k_0 in range(64):                          for k_0 in range(64):
      for t in threadIdx.x(256): A_shared[..] = ..   for t in threadIdx.x(256): A_shared[..] = ..
      for t in threadIdx.x(256): .. A_shared[..]  ->  barrier()
                                                     for t in threadIdx.x(256): .. A_shared[..]
                                                     barrier()
"""
from __future__ import annotations

from ...tir.expr import Call, Load, walk
from ...tir.stmt import Allocate, BlockRealize, BufferStore, Evaluate, For, SeqStmt, Stmt
from ...tir.transform import stmt_exprs, walk_stmts

BARRIER = "thread_barrier"


def barrier() -> Evaluate:
    return Evaluate(Call(BARRIER, (), "void"))


def is_barrier(stmt) -> bool:
    return isinstance(stmt, Evaluate) and isinstance(stmt.value, Call) and stmt.value.name == BARRIER


def insert_barriers(stmt: Stmt) -> Stmt:
    """``stmt`` (a kernel body) with barriers where threads exchange data through shared buffers."""
    if isinstance(stmt, For):
        if (stmt.thread_tag or "").startswith("threadIdx"):
            return stmt  # inside: one thread's program, no barrier may depend on the thread
        if stmt.annotations.get("pipeline_barriers"):  # pipeline.py placed them: only nests inside get more
            return For(stmt.var, stmt.extent, _inside(stmt.body), stmt.kind, stmt.thread_tag, stmt.annotations)
        body = insert_barriers(stmt.body)
        if stmt.kind != "thread_binding" and _carries_dependence(body):
            body = SeqStmt(tuple(_stmts(body)) + (barrier(),))
        return For(stmt.var, stmt.extent, body, stmt.kind, stmt.thread_tag, stmt.annotations)
    if isinstance(stmt, Allocate):
        return Allocate(stmt.buffer, insert_barriers(stmt.body))
    if isinstance(stmt, SeqStmt):
        out, written, read = [], set(), set()
        for sub in stmt.stmts:
            sub = insert_barriers(sub)
            sub_reads, sub_writes = _shared_accesses(sub)
            if (written & (sub_reads | sub_writes)) or (read & sub_writes):
                out.append(barrier())
                written, read = set(), set()
            out.append(sub)
            written |= sub_writes
            read |= sub_reads
        return SeqStmt(tuple(out))
    return stmt


def _inside(body: Stmt) -> Stmt:
    """``body``'s statements each given their own barriers, none added between them."""
    if isinstance(body, Allocate):
        return Allocate(body.buffer, _inside(body.body))
    if isinstance(body, SeqStmt):
        return SeqStmt(tuple(insert_barriers(s) for s in body.stmts))
    return insert_barriers(body)


def _carries_dependence(body: Stmt) -> bool:
    """Whether one iteration of a loop with this body touches, after a barrier, a shared buffer it
    wrote before it (so the next iteration's writes must wait)."""
    stmts = _stmts(body)
    for index, sub in enumerate(stmts):
        _, writes = _shared_accesses(sub)
        later = set()
        for after in stmts[index + 1:]:
            reads, more = _shared_accesses(after)
            later |= reads | more
        if writes & later:
            return not is_barrier(stmts[-1])
    return False


def _stmts(body: Stmt) -> list:
    return list(body.stmts) if isinstance(body, SeqStmt) else [body]


def _shared_accesses(stmt: Stmt) -> tuple:
    reads, writes = set(), set()
    for node in walk_stmts(stmt):
        if isinstance(node, BufferStore) and node.buffer.scope == "shared":
            writes.add(node.buffer)
        if isinstance(node, BlockRealize):
            writes |= {b for b in node.block.writes if b.scope == "shared"}
            reads |= {b for b in node.block.reads if b.scope == "shared"}
        for expr in stmt_exprs(node):
            reads |= {e.buffer for e in walk(expr) if isinstance(e, Load) and e.buffer.scope == "shared"}
    return reads, writes
