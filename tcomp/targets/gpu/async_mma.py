"""Waits for asynchronous matrix instructions: implementations with ``in_flight`` (Hopper's wgmma).

Such an instruction returns before its result is in the accumulator registers, and it reads its
shared operands while the threads go on; ``async_mma_wait(n, C..)`` waits until at most ``n`` of
the thread's calls are still running (then, for ``n = 0``, the accumulators ``C..`` may be read).
In a loop that ``pipeline.py`` staged for it (annotated ``async_mma_in_flight``: the copies go to
the stage read two iterations back) an iteration's calls keep running while the next iteration's
copies and barrier go on: the iteration ends waiting for the calls before its own (``n``: the calls
it makes, TM below). A call anywhere else is waited for at once; after such a loop every call is::

    for k_0 [async_mma_in_flight]:            for k_0:
      ..copies into stage (k_0 + S - 2) % S..   ..copies into stage (k_0 + S - 2) % S..
      for i_2 in unrolled(TM):                  for i_2 in unrolled(TM):
        wgmma(A_s[k_0 % S, i_2], .., C_wg[i_2])   wgmma(A_s[k_0 % S, i_2], .., C_wg[i_2])
                                       ->       async_mma_wait(TM)
    C[..] = C_wg[..]                          async_mma_wait(0, C_wg)
                                              C[..] = C_wg[..]
"""
from __future__ import annotations

from ...tir import arith
from ...tir.expr import Call, IntImm, Load
from ...tir.stmt import Allocate, BlockRealize, Evaluate, For, IfThenElse, SeqStmt, Stmt
from ...tir.transform import walk_stmts

ASYNC_MMA_WAIT = "async_mma_wait"
IN_FLIGHT = "async_mma_in_flight"  # loop annotation: iterations whose calls may still be running


def in_flight(stmt: Stmt, target_kind: str) -> int:
    """The most calls that an asynchronous matrix instruction in ``stmt`` may leave running on
    ``target_kind`` (0: no call in ``stmt`` is asynchronous)."""
    return max((_async_calls_left(node.block, target_kind) for node in walk_stmts(stmt)
                if isinstance(node, BlockRealize)), default=0)


def wait_for_async_mma(body: Stmt, target_kind: str) -> Stmt:
    """``body`` with the waits for its asynchronous matrix instructions (in place where possible)."""
    return _visit(body, target_kind, False)


def _visit(stmt: Stmt, target_kind: str, running: bool) -> Stmt:
    """``running``: inside a staged loop, whose iterations end with the wait."""
    if isinstance(stmt, BlockRealize):
        if _async_calls_left(stmt.block, target_kind):
            return stmt if running else SeqStmt((stmt, _wait(0, stmt.block.writes)))
        stmt.block.body = _visit(stmt.block.body, target_kind, running)
        return stmt
    if isinstance(stmt, For):
        iterations = stmt.annotations.get(IN_FLIGHT, 0)
        stmt.body = _visit(stmt.body, target_kind, running or bool(iterations))
        if iterations and not running:
            calls = _calls(stmt.body, target_kind)
            stmt.body = SeqStmt((stmt.body, _wait(iterations * calls, ())))
            accumulators = {buf for node in walk_stmts(stmt.body) if isinstance(node, BlockRealize)
                            and _async_calls_left(node.block, target_kind) for buf in node.block.writes}
            return SeqStmt((stmt, _wait(0, sorted(accumulators, key=lambda b: b.name))))
        return stmt
    if isinstance(stmt, SeqStmt):
        return SeqStmt(tuple(_visit(s, target_kind, running) for s in stmt.stmts))
    if isinstance(stmt, Allocate):
        return Allocate(stmt.buffer, _visit(stmt.body, target_kind, running))
    if isinstance(stmt, IfThenElse):
        return IfThenElse(stmt.cond, _visit(stmt.then_body, target_kind, running),
                          None if stmt.else_body is None else _visit(stmt.else_body, target_kind, running))
    return stmt


def _calls(stmt: Stmt, target_kind: str) -> int:
    """How many asynchronous calls one run of ``stmt`` surely makes (a branch counts its fewer, a loop
    of unknown extent none: fewer counted is a stricter wait)."""
    if isinstance(stmt, BlockRealize):
        return 1 if _async_calls_left(stmt.block, target_kind) else _calls(stmt.block.body, target_kind)
    if isinstance(stmt, For):
        if stmt.kind == "thread_binding":  # a thread runs one iteration
            return _calls(stmt.body, target_kind)
        extent = arith.simplify(stmt.extent)
        return extent.value * _calls(stmt.body, target_kind) if isinstance(extent, IntImm) else 0
    if isinstance(stmt, SeqStmt):
        return sum(_calls(s, target_kind) for s in stmt.stmts)
    if isinstance(stmt, Allocate):
        return _calls(stmt.body, target_kind)
    if isinstance(stmt, IfThenElse):
        return min(_calls(stmt.then_body, target_kind),
                   0 if stmt.else_body is None else _calls(stmt.else_body, target_kind))
    return 0


def _async_calls_left(block, target_kind: str) -> int:
    from ...schedule.intrinsics import get_intrinsic, is_intrinsic_call

    body = block.body
    if not (isinstance(body, Evaluate) and is_intrinsic_call(body.value)):
        return 0
    return getattr(get_intrinsic(body.value.name).implementations.get(target_kind), "in_flight", 0)


def _wait(running: int, accumulators) -> Evaluate:
    starts = tuple(Call("address_of", (Load(buf, tuple(IntImm(0) for _ in buf.shape)),), "int64")
                   for buf in accumulators)
    return Evaluate(Call(ASYNC_MMA_WAIT, (IntImm(running),) + starts, "void"))
