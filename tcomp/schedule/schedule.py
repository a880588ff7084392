"""The schedule: a PrimFunc being transformed, handles to its blocks and loops, and the trace.

    sch = tcomp.Schedule(func)
    c = sch.get_block("C")
    i, j, k = sch.get_loops(c)
    io, ii = sch.split(i, [None, 16])
    print(sch.func)            # the transformed program
    print(sch.trace)           # b0 = sch.get_block('C') ...

Blocks and loops are named by *random variables* (``BlockRV``, ``LoopRV``): handles that the
trace records by number, so that replaying the trace on a fresh copy of the function finds
the same blocks and loops. Sampling instructions return ``IntRV``s: ints that remember which
instruction produced them, so a trace records ``split(l1, [v4, v5])`` rather than literals
and a tuner can change the sampled decision and replay.

Primitives live in one module each under ``schedule/primitives/`` and join the class with
``@primitive``; the decorator records the call in the trace when it succeeds. A primitive
checks its preconditions before it changes anything and raises ``ScheduleError`` saying
which block or loop and why.
"""
from __future__ import annotations

import copy
import functools
import random
from dataclasses import dataclass

from ..errors import TcompError
from ..tir import expr as texpr
from ..tir.stmt import Allocate, Block, BlockRealize, For, IfThenElse, PrimFunc, SeqStmt, Stmt
from ..tir.transform import stmt_children, walk_stmts
from .trace import Instruction, Trace


class ScheduleError(TcompError):
    """A primitive that cannot apply here; the message names the block or loop and the reason."""


@dataclass(frozen=True)
class BlockRV:
    id: int

    def __repr__(self):
        return f"b{self.id}"


@dataclass(frozen=True)
class LoopRV:
    id: int

    def __repr__(self):
        return f"l{self.id}"


class RootLocation:
    """Where a block already is: the location ``sample_compute_location`` may choose; ``compute_at``
    and ``reverse_compute_at`` to it leave the block in place."""

    def __repr__(self):
        return "root"


ROOT = RootLocation()


class IntRV(int):
    """A sampled integer: usable as an int, recorded in traces as the sample that made it."""

    id: int

    def __new__(cls, value: int, rv_id: int):
        obj = super().__new__(cls, value)
        obj.id = rv_id
        return obj


def primitive(fn=None, *, sampling: bool = False):
    """Makes ``fn(sch, ...)`` the method ``Schedule.<name>`` whose successful calls are traced.

    A sampling primitive takes ``decision`` (None: sample one) and returns ``(result, decision)``;
    the method returns the result and records the decision.
    """
    def register(fn):
        name = fn.__name__

        @functools.wraps(fn)
        def method(self, *args, **kwargs):
            outermost = self._depth == 0
            self._depth += 1
            try:
                decision = None
                if sampling:
                    forced = self._forced_decision if outermost else None
                    self._forced_decision = None
                    result, decision = fn(self, *args, decision=forced, **kwargs)
                else:
                    result = fn(self, *args, **kwargs)
            finally:
                self._depth -= 1
            if outermost:
                self.trace.instructions.append(Instruction(
                    name, tuple(_encode(a) for a in args), {k: _encode(v) for k, v in kwargs.items()},
                    tuple(_encode_outputs(result)), _plain(decision)))
            return result

        setattr(Schedule, name, method)
        return fn

    return register(fn) if fn is not None else register


class Schedule:
    """A copy of ``func`` under transformation (``sch.func``), with its trace (``sch.trace``)."""

    def __init__(self, func: PrimFunc, seed: int | None = None):
        if not isinstance(func, PrimFunc):
            raise ScheduleError(f"Schedule takes a PrimFunc (tcomp.tir.create_func), got {type(func).__name__}")
        keep = {id(v): v for v in texpr._size_vars.values()}  # symbolic sizes are shared by name
        self.func = copy.deepcopy(func, keep)
        self.trace = Trace()
        self._rng = random.Random(seed)
        self._objects: dict = {}   # rv id -> Block / For
        self._next_id = 0
        self._depth = 0
        self._forced_decision = None

    def __str__(self):
        return str(self.func)

    # ---------------------------------------------------------------- handles
    def new_rv(self, obj) -> BlockRV | LoopRV:
        """A fresh handle to ``obj`` (a Block, a For, or ``ROOT``: a loop handle naming no loop)."""
        rv = BlockRV(self._next_id) if isinstance(obj, Block) else LoopRV(self._next_id)
        self._objects[rv.id] = obj
        self._next_id += 1
        return rv

    def new_int(self, value: int) -> IntRV:
        rv = IntRV(int(value), self._next_id)
        self._next_id += 1
        return rv

    def get(self, rv) -> Block | For:
        """The block or loop ``rv`` names now; an error if a primitive removed it."""
        if not isinstance(rv, (BlockRV, LoopRV)):
            raise ScheduleError(f"expected a block or loop handle (BlockRV/LoopRV), got {rv!r}")
        obj = self._objects.get(rv.id)
        if obj is None or not self._alive(obj):
            what = "block" if isinstance(rv, BlockRV) else "loop"
            raise ScheduleError(f"{what} {rv} no longer exists (an earlier primitive replaced it)")
        return obj

    def is_root(self, rv) -> bool:
        """Whether ``rv`` is the root location (see ``sample_compute_location``)."""
        return isinstance(rv, LoopRV) and self._objects.get(rv.id) is ROOT

    def get_loop(self, rv) -> For:
        obj = self.get(rv)
        if obj is ROOT:
            raise ScheduleError(f"{rv} is the root location, not a loop")
        if not isinstance(obj, For):
            raise ScheduleError(f"{rv} is a block, a loop is expected")
        return obj

    def get_block_obj(self, rv) -> Block:
        obj = self.get(rv)
        if not isinstance(obj, Block):
            raise ScheduleError(f"{rv} is a loop, a block is expected")
        return obj

    def _alive(self, obj) -> bool:
        return obj is ROOT or id(obj) in self.parents() or any(
            isinstance(n, BlockRealize) and n.block is obj for n in walk_stmts(self.func.body))

    # ---------------------------------------------------------------- tree queries
    def parents(self) -> dict:
        """{id(node): parent} over the function body (the root's parent is None); Blocks map to
        their BlockRealize's parent."""
        result = {id(self.func.body): None}
        for node in walk_stmts(self.func.body):
            for child in stmt_children(node):
                result[id(child)] = node
            if isinstance(node, BlockRealize):
                result[id(node.block)] = node
        return result

    def blocks(self) -> list:
        return [n.block for n in walk_stmts(self.func.body) if isinstance(n, BlockRealize)]

    def realize_of(self, block: Block) -> BlockRealize:
        for node in walk_stmts(self.func.body):
            if isinstance(node, BlockRealize) and node.block is block:
                return node
        raise ScheduleError(f"block {block.name} is not in the function")

    def ancestors(self, node) -> list:
        """The statements enclosing ``node`` (a statement or a Block), outermost first."""
        parents = self.parents()
        chain = []
        current = parents.get(id(node))
        while current is not None:
            chain.append(current)
            current = parents.get(id(current))
        return list(reversed(chain))

    def loops_above(self, node) -> list:
        """The For loops enclosing ``node``, outermost first (loops inside other blocks' bodies excluded)."""
        return [n for n in self.ancestors(node) if isinstance(n, For)]

    def replace(self, old: Stmt, new: Stmt) -> None:
        """Puts ``new`` where ``old`` is in the tree."""
        parent = self.parents().get(id(old), "missing")
        if parent == "missing":
            raise ScheduleError("internal: the statement to replace is not in the function")
        if parent is None:
            self.func.body = new
        elif isinstance(parent, (For, Allocate)):
            parent.body = new
        elif isinstance(parent, SeqStmt):
            parent.stmts = tuple(new if s is old else s for s in parent.stmts)
        elif isinstance(parent, IfThenElse):
            if parent.then_body is old:
                parent.then_body = new
            else:
                parent.else_body = new
        elif isinstance(parent, BlockRealize):
            blk = parent.block
            if blk.body is old:
                blk.body = new
            else:
                blk.init = new
        else:
            raise ScheduleError(f"internal: cannot replace a child of {type(parent).__name__}")

    # ---------------------------------------------------------------- sampling
    @property
    def rng(self) -> random.Random:
        return self._rng

    # ---------------------------------------------------------------- replay
    def replay(self, trace: Trace, decisions: dict) -> None:
        """Applies ``trace``'s instructions in order, each sampling instruction taking the decision
        ``decisions`` gives for its position (none: it samples) (``Trace.apply_to``)."""
        names: dict = {}
        for index, inst in enumerate(trace.instructions):
            method = getattr(self, inst.kind, None)
            if method is None or not hasattr(method, "__wrapped__"):
                raise ScheduleError(f"trace instruction {index} names no primitive: {inst.kind!r}")
            args = [_decode(a, names) for a in inst.inputs]
            kwargs = {k: _decode(v, names) for k, v in inst.kwargs.items()}
            self._forced_decision = decisions.get(index)
            result = method(*args, **kwargs)
            _bind_outputs(inst.outputs, result, names)


def _plain(value):
    """A decision as JSON data (tuples become lists, IntRVs ints)."""
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, int) and not isinstance(value, bool):
        return int(value)
    return value


def _encode(value):
    if isinstance(value, BlockRV):
        return {"block": value.id}
    if isinstance(value, LoopRV):
        return {"loop": value.id}
    if isinstance(value, IntRV):
        return {"int": value.id}
    if isinstance(value, (list, tuple)):
        return [_encode(v) for v in value]
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    raise ScheduleError(f"a primitive argument must be a handle, a number, a string or a list, not {value!r}")


def _encode_outputs(result) -> list:
    if result is None:
        return []
    if isinstance(result, (list, tuple)):
        return [_encode(r) for r in result]
    return [_encode(result)]


def _decode(value, names: dict):
    if isinstance(value, dict):
        (kind, number), = value.items()
        if number not in names:
            raise ScheduleError(f"trace refers to {kind} {number} before any instruction made it")
        return names[number]
    if isinstance(value, list):
        return [_decode(v, names) for v in value]
    return value


def _bind_outputs(encoded, result, names: dict) -> None:
    results = [] if result is None else list(result) if isinstance(result, (list, tuple)) else [result]
    if len(results) != len(encoded):
        raise ScheduleError(f"replay produced {len(results)} results where the trace has {len(encoded)}")
    for enc, value in zip(encoded, results):
        if isinstance(enc, dict):
            names[next(iter(enc.values()))] = value
        elif isinstance(enc, list):
            _bind_outputs(enc, value, names)
