"""Statements of the loop-nest IR: loops, blocks, stores, allocations.

A kernel is a ``PrimFunc`` whose body nests ``For`` loops around ``BlockRealize``
statements. A block names its iterators, each *spatial* (``S``: every value
writes a distinct output element) or *reduce* (``R``: values accumulate into
the same element); the realize binds them to expressions of the enclosing loop
variables and may carry a predicate (for tails of split loops)::

    for i in parallel(64):
      for j in vectorized(16):
        block C[vi = S(64): i, vj = S(16): j]:
          C[vi, vj] = A[vi, vj] + 1.0

Loop kinds say how a loop runs: ``serial``, ``parallel`` (over the runtime's
thread pool), ``vectorized`` (one SIMD instruction per lane group),
``unrolled`` and ``thread_binding`` (GPU grid axes named by ``thread_tag``,
e.g. ``blockIdx.x``/``threadIdx.x``). ``Allocate`` opens a buffer of a memory
scope (``global``, ``shared``, ``local``) for its body.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from .expr import Buffer, Call, Expr, IntImm, Load, Var, as_expr

LOOP_KINDS = ("serial", "parallel", "vectorized", "unrolled", "thread_binding")


class Stmt:
    def __str__(self):
        from .printer import stmt_to_str

        return stmt_to_str(self)


@dataclass(eq=False, repr=False)
class For(Stmt):
    var: Var
    extent: Expr
    body: Stmt
    kind: str = "serial"
    thread_tag: str | None = None
    annotations: dict = field(default_factory=dict)

    def __post_init__(self):
        self.extent = as_expr(self.extent)
        if self.kind not in LOOP_KINDS:
            raise ValueError(f"unknown loop kind {self.kind}")
        if (self.kind == "thread_binding") != (self.thread_tag is not None):
            raise ValueError("thread_binding loops (and only they) carry a thread_tag")


@dataclass(frozen=True)
class IterVar:
    """A block iterator with domain [0, extent); kind "S" (spatial) or "R" (reduce)."""

    var: Var
    extent: Expr
    kind: str = "S"


@dataclass(eq=False, repr=False)
class Block(Stmt):
    name: str
    iter_vars: tuple
    body: Stmt
    init: Stmt | None = None
    reads: tuple = ()
    writes: tuple = ()
    annotations: dict = field(default_factory=dict)


@dataclass(eq=False, repr=False)
class BlockRealize(Stmt):
    iter_values: tuple
    block: Block
    predicate: Expr | None = None

    def __post_init__(self):
        self.iter_values = tuple(as_expr(v) for v in self.iter_values)
        if len(self.iter_values) != len(self.block.iter_vars):
            raise ValueError(f"block {self.block.name}: {len(self.iter_values)} values for "
                             f"{len(self.block.iter_vars)} iterators")


@dataclass(eq=False, repr=False)
class BufferStore(Stmt):
    """``buffer[indices] = value``; with a predicate, lanes where it is false store nothing."""

    buffer: Buffer
    value: Expr
    indices: tuple
    predicate: Expr | None = None

    def __post_init__(self):
        self.indices = tuple(as_expr(i) for i in self.indices)
        if self.value.dtype != self.buffer.dtype:
            raise TypeError(f"store to {self.buffer.name}: value is {self.value.dtype}, "
                            f"buffer is {self.buffer.dtype}")


@dataclass(eq=False, repr=False)
class SeqStmt(Stmt):
    stmts: tuple


@dataclass(eq=False, repr=False)
class IfThenElse(Stmt):
    cond: Expr
    then_body: Stmt
    else_body: Stmt | None = None


@dataclass(eq=False, repr=False)
class Allocate(Stmt):
    buffer: Buffer
    body: Stmt


@dataclass(eq=False, repr=False)
class Evaluate(Stmt):
    """Evaluates an expression for its effect (e.g. a tensor-intrinsic call)."""

    value: Expr


@dataclass(eq=False, repr=False)
class PrimFunc:
    """A kernel: buffer parameters and a body. ``attrs`` carries e.g. the kernel kind.

    ``size_vars`` are the symbolic sizes (``size_var``) that the buffer shapes and
    the body use; the kernel takes their values as arguments after the buffers.
    """

    name: str
    params: tuple
    body: Stmt
    attrs: dict = field(default_factory=dict)
    size_vars: tuple = ()

    def __str__(self):
        from .printer import func_to_str

        return func_to_str(self)


def seq(*stmts) -> Stmt:
    """A sequence, with nested sequences flattened and ``None`` dropped; one statement stays itself."""
    flat = []
    for stmt in stmts:
        if isinstance(stmt, SeqStmt):
            flat.extend(stmt.stmts)
        elif stmt is not None:
            flat.append(stmt)
    return flat[0] if len(flat) == 1 else SeqStmt(tuple(flat))


def prefetch(load: Load) -> Evaluate:
    """A hint to bring the cache line of ``load``'s element into the caches ahead of its use; it reads
    nothing and never faults (an address past the buffer is fine). The CPU target emits
    ``llvm.prefetch`` (read, L2 locality), outside vectorized loops only."""
    return Evaluate(Call("prefetch", (load,), "int32"))


def loop(var: Var, extent, body: Stmt, kind: str = "serial", thread_tag: str | None = None) -> Stmt:
    """A loop, or its body alone when the extent is 1 (the variable then becomes 0)."""
    extent = as_expr(extent)
    if isinstance(extent, IntImm) and extent.value == 1 and kind != "thread_binding":
        from .transform import substitute_stmt

        return substitute_stmt(body, {var: IntImm(0)})
    return For(var, extent, body, kind, thread_tag)


def block(name: str, iters, body_fn, predicate: Expr | None = None, init_fn=None) -> BlockRealize:
    """Builds a block and its realize from ``iters`` = [(kind, extent, value), ...].

    ``body_fn(*block_vars)`` returns the body statement; ``init_fn`` the init.
    """
    iter_vars = []
    values = []
    for index, (kind, extent, value) in enumerate(iters):
        iter_vars.append(IterVar(Var(f"v{name}_{index}"), as_expr(extent), kind))
        values.append(value)
    block_vars = [iv.var for iv in iter_vars]
    body = body_fn(*block_vars)
    init = init_fn(*block_vars) if init_fn is not None else None
    from .transform import buffer_accesses

    reads, writes = buffer_accesses(seq(init, body))
    blk = Block(name, tuple(iter_vars), body, init, tuple(reads), tuple(writes))
    return BlockRealize(tuple(values), blk, predicate)
