"""Features of a scheduled kernel for the learned cost model: one fixed-length float32 vector.

    from tcomp.costmodel.features import extract, FEATURE_LENGTH, FEATURE_NAMES
    x = extract(sch.func)          # np.ndarray, shape (FEATURE_LENGTH,), float32

One walk over the loop IR collects every store (``BufferStore``) with the loops around it;
each store runs ``trip`` = product of those loops' extents times. Symbolic extents count as
``REPRESENTATIVE_EXTENT`` (128), as do loop extents that do not evaluate to a number. Counts
are scaled by log2(1 + x); ratios and one-hot flags are left as they are. The groups:

1. arithmetic (``arith.*``): float add/sub, mul, div, fused multiply-add shapes (an add of a
   product), min/max, comparisons and selects, math calls (exp, tanh, ...), integer value
   ops, index arithmetic (of indices and block bindings; how much of it is // and %, as
   fused loops need), casts, loads and stores, total flops; each weighted by the trip count
   of its store (of its block, for bindings).
2. loop structure (``loop.*``): loops, stores and blocks in the kernel; for the dominant store
   (the most work): its loop count, innermost extent, product of extents by kind (serial,
   parallel, vectorized, unrolled), vector lanes and bytes, the parallel extent, its load
   balance on 2/4/8/16 cores, how many parallel regions are launched (iterations of loops
   outside the outermost parallel loop); for the kernel: the share of flops under
   vectorized / parallel / unrolled loops and of stores under tail predicates.
3. per-buffer access (``buf<i>.*``) for the ``TOP_BUFFERS`` buffers touching the most bytes:
   bytes touched, unique bytes, reuse ratio, written or not, allocated or parameter; the
   stride of the innermost loop of its busiest access (broadcast / contiguous / strided
   one-hot, log stride in bytes), cache lines per innermost iteration, and the footprint
   (bytes) under the innermost 1, 2, 3 and 4 loops (the working set each cache level holds).
4. arithmetic intensity (``intensity.*``): flops per byte touched and per unique byte.
5. allocations (``alloc.*``): allocated buffers, bytes in local, shared and global scope.
6. tensor intrinsics (``intrin.*``): calls weighted by trip count, distinct intrinsics.
7. cache misses (``cache.*``): bytes an L1 and an L2 of one core (``CACHE_BYTES``) load, by a
   per-store LRU model: the data of a store's innermost d loops stays cached across
   iterations of the loop around them while one of their iterations fits, and every loop
   further out fetches it again (``_misses``); as bytes, flops per byte, and over the unique
   bytes (1 = each byte loaded once).
8. vector access (``vec.*``): shares of accesses (weighted by trip count) by their stride
   along the innermost vectorized loop: contiguous, broadcast, gather (any other stride), or
   under no vectorized loop.
9. register tile (``reg.*``) of the dominant store: its innermost unrolled / vectorized loops
   (the block the C compiler keeps in registers): the block's trip count, the vector
   registers (``VECTOR_BYTES``) its written buffer spans (accumulators) and its reads load,
   flops per vector load, accumulators over ``VECTOR_REGISTERS``, and how many iterations
   of the loops right outside the block leave the accumulators in place (a reduction split
   below the register tile's loops) with flops per accumulator load and store.

For example, a 1024x1024 column sum ``B[j] += A[r, j]`` with ``j`` vectorized innermost has
``vec.contiguous`` about 1 and loads each line of A into L1 once (``cache.l1_over_unique``
about log2(2)); with ``r`` innermost ``vec.scalar`` is 1 and every iteration misses a line (a
column of A, 64 KiB, does not stay in L1), so L1 loads 16 times the unique bytes.

GPU schedules (loops bound to ``blockIdx``/``threadIdx``) use the same vector, without new
slots: a bound loop counts as a parallel loop (``loop.parallel_extent`` = blocks x threads of
the dominant store, balance and ``share_parallel`` likewise), and their buffers are compacted
first as GPU lowering does (``targets/gpu/lower.py``), so ``alloc.local_bytes`` is per thread
(registers) and ``alloc.shared_bytes`` per thread block. CPU schedules are unchanged.

Strides come from evaluating each access's flat offset at loop variables 0 and 1, so an
access through floordiv/floormod gets the stride of its first step. Extraction is a few
milliseconds for a scheduled matmul.
"""
from __future__ import annotations

import math

import numpy as np

from ..tir.expr import (
    BinOp,
    Call,
    Cast,
    Cmp,
    FloatImm,
    IntImm,
    Load,
    Select,
    Var,
    dtype_bits,
    free_vars,
    is_float,
)
from ..tir.stmt import (
    Allocate,
    BlockRealize,
    BufferStore,
    Evaluate,
    For,
    IfThenElse,
    SeqStmt,
)

REPRESENTATIVE_EXTENT = 128      # the value of a symbolic extent
TOP_BUFFERS = 5
CORE_COUNTS = (2, 4, 8, 16)
CACHE_LINE = 64

_ARITH = ("float_addsub", "float_mul", "float_div", "float_fma", "float_minmax", "cmp_select", "math_calls",
          "int_ops", "index_ops", "index_divmod", "casts", "loads", "stores", "flops")
_LOOP = ("loops_total", "stores", "blocks", "loops", "innermost_extent", "serial_extent", "parallel_extent",
         "vectorized_extent", "unrolled_extent", "vector_bytes", "vector_aligned_32", "vector_aligned_64",
         *(f"balance_{c}" for c in CORE_COUNTS), "parallel_launches", "share_vectorized", "share_parallel",
         "share_unrolled", "share_predicated", "max_trip")
_BUF = ("bytes", "unique_bytes", "reuse", "is_write", "allocated", "local", "broadcast", "contiguous", "strided",
        "stride_bytes", "lines_per_iter", "footprint_1", "footprint_2", "footprint_3", "footprint_4")
_CACHE = ("l1_bytes", "l2_bytes", "l1_intensity", "l2_intensity", "l1_over_unique", "l2_over_unique")
_VEC = ("contiguous", "broadcast", "gather", "scalar")
_REG = ("block_trip", "accumulators", "loads", "flops_per_load", "acc_over_limit", "acc_reuse",
        "flops_per_acc_move")
CACHE_BYTES = (32 * 1024, 1024 * 1024)    # an L1 and an L2 of one core
VECTOR_BYTES = 64                         # a vector register (AVX-512)
VECTOR_REGISTERS = 32
_TAIL = ("intensity.touched", "intensity.unique", "alloc.count", "alloc.local_bytes", "alloc.shared_bytes",
         "alloc.global_bytes", "intrin.calls", "intrin.distinct")

FEATURE_NAMES = tuple([f"arith.{n}" for n in _ARITH] + [f"loop.{n}" for n in _LOOP]
                      + [f"buf{i}.{n}" for i in range(TOP_BUFFERS) for n in _BUF] + list(_TAIL)
                      + [f"cache.{n}" for n in _CACHE] + [f"vec.{n}" for n in _VEC] + [f"reg.{n}" for n in _REG])
FEATURE_LENGTH = len(FEATURE_NAMES)

_MATH_OPS = {"pow"}
_FLOAT_OP = {"add": "float_addsub", "sub": "float_addsub", "mul": "float_mul", "div": "float_div",
             "min": "float_minmax", "max": "float_minmax"}


def extract(func) -> np.ndarray:
    """The feature vector of ``func`` (a PrimFunc or a Schedule); see the module docstring."""
    func = getattr(func, "func", func)
    if _binds_threads(func):
        func = _compacted_for_gpu(func)
    walker = _Walker()
    walker.visit(func.body, ())
    return _assemble(walker)


def _binds_threads(func) -> bool:
    from ..tir.transform import walk_stmts

    return any(isinstance(n, For) and n.kind == "thread_binding" for n in walk_stmts(func.body))


def _compacted_for_gpu(func):
    """``func`` with its buffers compacted per thread / per thread block, as GPU lowering does."""
    from ..schedule.compact import compact_buffers
    from ..schedule.schedule import Schedule
    from ..targets.gpu.lower import _share_axis_variables

    sch = Schedule(func)
    _share_axis_variables(sch.func.body)
    compact_buffers(sch)
    return sch.func


def _log(x: float) -> float:
    return math.log2(1.0 + max(0.0, x))


class _Store:
    __slots__ = ("accesses", "loops", "ops", "predicated", "trip")

    def __init__(self, loops, trip, ops, accesses, predicated):
        self.loops, self.trip, self.ops, self.accesses, self.predicated = loops, trip, ops, accesses, predicated


class _Walker:
    """Collects stores (with loops, op counts, access strides), allocations and intrinsic calls."""

    def __init__(self):
        self.stores: list = []
        self.bind: dict = {}          # block iterator -> its bound expression
        self.blocks = 0
        self.loops_total = 0
        self.allocs: list = []        # (scope, bytes)
        self.allocated: set = set()
        self.intrinsics: dict = {}
        self.predicate_depth = 0
        self.binding_ops = 0          # index ops of block bindings, weighted by trip count
        self.divmod_ops = 0           # of them floordiv / floormod

    def visit(self, stmt, loops: tuple) -> None:
        if isinstance(stmt, For):
            self.loops_total += 1
            extent = max(1, _eval(stmt.extent, {}, self.bind))
            kind = "parallel" if stmt.kind == "thread_binding" else stmt.kind  # GPU blocks and threads
            self.visit(stmt.body, loops + ((stmt.var, extent, kind),))
        elif isinstance(stmt, SeqStmt):
            for sub in stmt.stmts:
                self.visit(sub, loops)
        elif isinstance(stmt, BlockRealize):
            self.blocks += 1
            for iv, value in zip(stmt.block.iter_vars, stmt.iter_values):
                self.bind[iv.var] = value
            self._binding_ops(stmt.iter_values, loops)
            guarded = stmt.predicate is not None
            self.predicate_depth += guarded
            if stmt.block.init is not None:  # the init runs once per spatial point
                reduce_vars = set()
                for iv, value in zip(stmt.block.iter_vars, stmt.iter_values):
                    if iv.kind == "R":
                        reduce_vars |= free_vars(value)
                self.visit(stmt.block.init, tuple(lp for lp in loops if lp[0] not in reduce_vars))
            self.visit(stmt.block.body, loops)
            self.predicate_depth -= guarded
        elif isinstance(stmt, IfThenElse):
            self.predicate_depth += 1
            self.visit(stmt.then_body, loops)
            if stmt.else_body is not None:
                self.visit(stmt.else_body, loops)
            self.predicate_depth -= 1
        elif isinstance(stmt, Allocate):
            buf = stmt.buffer
            self.allocated.add(buf)
            self.allocs.append((buf.scope, _eval(buf.storage_elements(), {}, {}) * dtype_bits(buf.dtype) // 8))
            self.visit(stmt.body, loops)
        elif isinstance(stmt, BufferStore):
            self._store(stmt, loops)
        elif isinstance(stmt, Evaluate) and isinstance(stmt.value, Call):
            trip = math.prod(e for _, e, _ in loops)
            self.intrinsics[stmt.value.name] = self.intrinsics.get(stmt.value.name, 0) + trip

    def _binding_ops(self, values, loops: tuple) -> None:
        """Index arithmetic of a block's bindings (fused loops: // and %), once per iteration."""
        ops = dict.fromkeys(_ARITH, 0)
        for value in values:
            _count(value, ops, [], index=True)
        trip = math.prod(e for _, e, _ in loops)
        self.binding_ops += ops["index_ops"] * trip
        self.divmod_ops += ops["index_divmod"] * trip

    def _store(self, stmt: BufferStore, loops: tuple) -> None:
        ops = dict.fromkeys(_ARITH, 0)
        loads: list = []
        _count(stmt.value, ops, loads, index=False)
        for idx in stmt.indices:
            _count(idx, ops, loads, index=True)
        ops["stores"] = 1
        ops["loads"] = len(loads)
        ops["flops"] = (ops["float_addsub"] + ops["float_mul"] + ops["float_div"] + ops["float_minmax"]
                        + ops["math_calls"])
        accesses = [(stmt.buffer, self._strides(stmt.buffer, stmt.indices, loops), True)]
        accesses += [(ld.buffer, self._strides(ld.buffer, ld.indices, loops), False) for ld in loads]
        predicated = self.predicate_depth > 0 or stmt.predicate is not None
        self.stores.append(_Store(loops, math.prod(e for _, e, _ in loops), ops, accesses, predicated))

    def _strides(self, buf, indices, loops) -> list:
        """Element stride of the flat offset per enclosing loop (0 where the loop does not move it)."""
        strides = [_eval(s, {}, {}) for s in buf.strides()]
        env = {var: 0 for var, _, _ in loops}

        def offset():
            return sum(_eval(i, env, self.bind) * s for i, s in zip(indices, strides))

        base = offset()
        result = []
        for var, extent, _ in loops:
            if extent <= 1:
                result.append(0)
                continue
            env[var] = 1
            result.append(offset() - base)
            env[var] = 0
        return result


def _count(expr, ops: dict, loads: list, index: bool) -> None:
    """Adds the operations of ``expr`` to ``ops`` and its loads (outermost first) to ``loads``."""
    stack = [expr]
    while stack:
        node = stack.pop()
        if isinstance(node, BinOp):
            if index:
                ops["index_ops"] += 1
                ops["index_divmod"] += node.op in ("floordiv", "floormod")
            elif is_float(node.dtype):
                if node.op in _MATH_OPS:
                    ops["math_calls"] += 1
                else:
                    key = _FLOAT_OP.get(node.op)
                    if key is not None:
                        ops[key] += 1
                    if node.op in ("add", "sub") and any(isinstance(o, BinOp) and o.op == "mul"
                                                         for o in (node.a, node.b)):
                        ops["float_fma"] += 1
            else:
                ops["int_ops"] += 1
            stack += (node.a, node.b)
        elif isinstance(node, Load):
            loads.append(node)
            for idx in node.indices:
                _count(idx, ops, loads, index=True)
        elif isinstance(node, (Cmp, Select)):
            ops["index_ops" if index else "cmp_select"] += 1
            stack += (node.a, node.b) if isinstance(node, Cmp) else (node.cond, node.a, node.b)
        elif isinstance(node, Cast):
            ops["casts"] += 1
            stack.append(node.value)
        elif isinstance(node, Call):
            ops["math_calls"] += 1
            stack.extend(node.args)


def _eval(expr, env: dict, bind: dict) -> int:
    """Integer value of an index expression; unknown variables count as REPRESENTATIVE_EXTENT."""
    if isinstance(expr, IntImm):
        return expr.value
    if isinstance(expr, Var):
        if expr in env:
            return env[expr]
        bound = bind.get(expr)
        return REPRESENTATIVE_EXTENT if bound is None else _eval(bound, env, bind)
    if isinstance(expr, BinOp):
        a, b = _eval(expr.a, env, bind), _eval(expr.b, env, bind)
        op = expr.op
        if op == "add":
            return a + b
        if op == "sub":
            return a - b
        if op == "mul":
            return a * b
        if op in ("floordiv", "div"):
            return a // b if b else 0
        if op == "floormod":
            return a % b if b else 0
        if op == "min":
            return min(a, b)
        if op == "max":
            return max(a, b)
        return a
    if isinstance(expr, Cast):
        return _eval(expr.value, env, bind)
    if isinstance(expr, Select):
        return _eval(expr.a, env, bind)
    if isinstance(expr, FloatImm):
        return int(expr.value)
    return REPRESENTATIVE_EXTENT


def _footprint(strides, extents, elem_bytes: int) -> tuple:
    """(elements, cache lines) touched by loops with ``strides``/``extents`` (innermost last)."""
    moving = [(abs(s), e) for s, e in zip(strides, extents) if s != 0 and e > 1]
    if not moving:
        return 1, 1
    span = sum(s * (e - 1) for s, e in moving) + 1
    elements = min(math.prod(e for _, e in moving), span)
    moving.sort()
    smallest, first_extent = moving[0]
    if smallest * elem_bytes < CACHE_LINE:
        lines = math.ceil(((first_extent - 1) * smallest + 1) * elem_bytes / CACHE_LINE)
    else:
        lines = first_extent
    for s, e in moving[1:]:
        lines *= e if s * elem_bytes >= CACHE_LINE else max(1, math.ceil(e * s * elem_bytes / CACHE_LINE))
    lines = min(lines, math.ceil(span * elem_bytes / CACHE_LINE) + 1)
    return elements, lines


def _assemble(w: _Walker) -> np.ndarray:
    out: list = []
    totals = dict.fromkeys(_ARITH, 0)
    flops_vec = flops_par = flops_unroll = trip_pred = trip_all = 0
    for st in w.stores:
        for key, value in st.ops.items():
            totals[key] += value * st.trip
        kinds = {k for _, _, k in st.loops}
        flops = st.ops["flops"] * st.trip
        flops_vec += flops if "vectorized" in kinds else 0
        flops_par += flops if "parallel" in kinds else 0
        flops_unroll += flops if "unrolled" in kinds else 0
        trip_pred += st.trip if st.predicated else 0
        trip_all += st.trip
    totals["index_ops"] += w.binding_ops
    totals["index_divmod"] += w.divmod_ops
    out += [_log(totals[k]) for k in _ARITH]

    dominant = max(w.stores, key=lambda s: s.trip * (1 + s.ops["flops"]), default=None)
    loops = dominant.loops if dominant is not None else ()
    by_kind = {k: math.prod(e for _, e, kind in loops if kind == k) for k in ("serial", "parallel", "vectorized",
                                                                                "unrolled")}
    elem_bytes = dtype_bits(dominant.accesses[0][0].dtype) // 8 if dominant is not None else 4
    vector_bytes = by_kind["vectorized"] * elem_bytes if any(k == "vectorized" for _, _, k in loops) else 0
    par = by_kind["parallel"]
    first_par = next((i for i, (_, _, k) in enumerate(loops) if k == "parallel"), None)
    launches = math.prod(e for _, e, _ in loops[:first_par]) if first_par is not None else 0
    total_flops = max(totals["flops"], 1)
    out += [_log(w.loops_total), _log(len(w.stores)), _log(w.blocks), _log(len(loops)),
            _log(loops[-1][1] if loops else 1),
            _log(by_kind["serial"]), _log(par), _log(by_kind["vectorized"]), _log(by_kind["unrolled"]),
            _log(vector_bytes), float(vector_bytes > 0 and vector_bytes % 32 == 0),
            float(vector_bytes > 0 and vector_bytes % 64 == 0)]
    out += [par / (math.ceil(par / c) * c) if first_par is not None else 0.0 for c in CORE_COUNTS]
    out += [_log(launches), flops_vec / total_flops, flops_par / total_flops, flops_unroll / total_flops,
            trip_pred / max(trip_all, 1), _log(max((s.trip for s in w.stores), default=0))]

    stats = _buffer_stats(w)
    out += _buffer_features(w, stats)
    bytes_touched = sum(b["bytes"] for b in stats.values())
    unique = sum(b["unique"] for b in stats.values())
    out += [_log(totals["flops"] / max(bytes_touched, 1)), _log(totals["flops"] / max(unique, 1))]
    scope_bytes = {s: sum(b for sc, b in w.allocs if sc == s) for s in ("local", "shared", "global")}
    out += [_log(len(w.allocs)), _log(scope_bytes["local"]), _log(scope_bytes["shared"]),
            _log(scope_bytes["global"])]
    out += [_log(sum(w.intrinsics.values())), float(len(w.intrinsics))]
    out += _cache_features(w, totals["flops"], unique)
    out += _vector_features(w)
    out += _register_features(dominant)
    return np.asarray(out, dtype=np.float32)


def _distinct(accesses) -> list:
    """A store's accesses with those of the same buffer and strides once (``C[i, j] += ...``)."""
    seen, out = set(), []
    for buf, strides, is_write in accesses:
        if (buf, tuple(strides)) not in seen:
            seen.add((buf, tuple(strides)))
            out.append((buf, strides, is_write))
    return out


def _misses(st: _Store, capacity: int) -> int:
    """Cache lines a cache of ``capacity`` bytes loads for store ``st``: the innermost d loops'
    data is reused across iterations of the loop around them while one iteration's data fits,
    and each loop further out repeats it (LRU; the working set of d loops from ``_footprint``)::

        for i, j, k: C[i, j] += A[i, k] * B[k, j]      (64x64x64 float32, 32 KiB)
        d=2 (j, k): A row 4 + B 256 + C row 4 lines (16.5 KiB) fit, the whole 48 KiB does not:
        misses = 264 lines x 64 (i) -- B is fetched again for every row of C
    """
    extents = [e for _, e, _ in st.loops]
    accesses = _distinct(st.accesses)
    n = len(extents)

    def lines(d):
        return sum(_footprint(strides[n - d:], extents[n - d:], max(1, dtype_bits(buf.dtype) // 8))[1]
                   for buf, strides, _ in accesses)

    depth = 0
    while depth < n and lines(depth) * CACHE_LINE <= capacity:
        depth += 1
    return lines(depth) * math.prod(extents[:n - depth])


def _cache_features(w: _Walker, flops: float, unique: float) -> list:
    traffic = [sum(_misses(st, c) for st in w.stores) * CACHE_LINE for c in CACHE_BYTES]
    return ([_log(t) for t in traffic] + [_log(flops / max(t, 1)) for t in traffic]
            + [_log(t / max(unique, 1)) for t in traffic])


def _vector_features(w: _Walker) -> list:
    counts = dict.fromkeys(_VEC, 0)
    for st in w.stores:
        vec = next((i for i in range(len(st.loops) - 1, -1, -1) if st.loops[i][2] == "vectorized"), None)
        for _, strides, _ in st.accesses:
            if vec is None:
                counts["scalar"] += st.trip
            else:
                stride = abs(strides[vec])
                counts["contiguous" if stride == 1 else "broadcast" if stride == 0 else "gather"] += st.trip
    total = max(sum(counts.values()), 1)
    return [counts[k] / total for k in _VEC]


def _register_features(st: _Store | None) -> list:
    """The register tile of store ``st``; a block of ``C[i, j] += A[i, k] * B[k, j]`` under
    ``for k1 in range(4): for i3 in unrolled(4): for j3 in vectorized(16)``: block trip 64, 4
    accumulators, 4 + 1 vector loads (A broadcast per row, one vector of B), acc_reuse 4."""
    if st is None:
        return [0.0] * len(_REG)
    start = len(st.loops)
    while start > 0 and st.loops[start - 1][2] in ("unrolled", "vectorized"):
        start -= 1
    extents = [e for _, e, _ in st.loops[start:]]
    trip = math.prod(extents)
    acc = loads = 0
    for buf, strides, is_write in _distinct(st.accesses):
        elem_bytes = max(1, dtype_bits(buf.dtype) // 8)
        elements, lines = _footprint(strides[start:], extents, elem_bytes)
        vectors = lines * CACHE_LINE // VECTOR_BYTES if elements * elem_bytes >= VECTOR_BYTES else elements
        vectors = max(1, min(vectors, elements))
        if is_write:
            acc += vectors
        else:
            loads += vectors
    reuse = 1
    written = st.accesses[0][1]
    while start > 0 and written[start - 1] == 0:
        start -= 1
        reuse *= st.loops[start][1]
    flops = st.ops["flops"]
    moves = 2 * acc * st.trip / max(trip * reuse, 1)
    return [_log(trip), _log(acc), _log(loads), _log(flops * trip / max(loads, 1)), acc / VECTOR_REGISTERS,
            _log(reuse), _log(flops * st.trip / max(moves, 1))]


def _buffer_stats(w: _Walker) -> dict:
    """Per buffer: bytes touched, unique bytes, written, and its busiest access (strides, loops)."""
    stats: dict = {}
    for st in w.stores:
        extents = [e for _, e, _ in st.loops]
        for buf, strides, is_write in st.accesses:
            elem_bytes = max(1, dtype_bits(buf.dtype) // 8)
            entry = stats.setdefault(buf, {"bytes": 0, "unique": 0, "write": False, "busiest": None, "trip": -1})
            entry["bytes"] += st.trip * elem_bytes
            elements, _ = _footprint(strides, extents, elem_bytes)
            size = _eval(buf.storage_elements(), {}, {})
            entry["unique"] = max(entry["unique"], min(elements, size) * elem_bytes)
            entry["write"] |= is_write
            if st.trip > entry["trip"]:
                entry["trip"], entry["busiest"] = st.trip, (strides, extents, elem_bytes)
    return stats


def _buffer_features(w: _Walker, stats: dict) -> list:
    ranked = sorted(stats.items(), key=lambda item: (-item[1]["bytes"], item[0].name))[:TOP_BUFFERS]
    out: list = []
    for buf, entry in ranked:
        strides, extents, elem_bytes = entry["busiest"]
        inner = next((i for i in range(len(extents) - 1, -1, -1) if extents[i] > 1), None)
        stride = strides[inner] if inner is not None else 0
        _, lines = _footprint([stride], [extents[inner]], elem_bytes) if inner is not None else (1, 1)
        feats = [_log(entry["bytes"]), _log(entry["unique"]), _log(entry["bytes"] / max(entry["unique"], 1)),
                 float(entry["write"]), float(buf in w.allocated), float(buf.scope == "local"),
                 float(stride == 0), float(abs(stride) == 1), float(abs(stride) > 1),
                 _log(abs(stride) * elem_bytes), lines / (extents[inner] if inner is not None else 1)]
        for depth in (1, 2, 3, 4):
            elements, _ = _footprint(strides[-depth:], extents[-depth:], elem_bytes) if extents else (1, 1)
            feats.append(_log(elements * elem_bytes))
        out += feats
    out += [0.0] * (len(_BUF) * (TOP_BUFFERS - len(ranked)))
    return out

