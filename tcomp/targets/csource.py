"""C-style source from lowered device kernels, shared by C-like languages (CUDA, HIP, C).

What differs between them is data in a ``Dialect``: the kernel qualifier, the GPU axis
indices, the barrier, the shared-memory qualifier, scalar types (half precision is stored as
16 bits and computed in float) and math function names. A kernel (``gpu/lower.py``)::

    kernel f: launch {blockIdx.x: 4, threadIdx.x: 256}
    for blockIdx_x in blockIdx.x(4):
      for threadIdx_x in threadIdx.x(256):
        block B[vi = S(1024): blockIdx_x * 256 + threadIdx_x]:
          B[vi] = exp(A[vi])

renders (CUDA) as::

    extern "C" __global__ void __launch_bounds__(256) f(float* __restrict__ A, float* __restrict__ B) {
      const long long blockIdx_x = blockIdx.x;
      const long long threadIdx_x = threadIdx.x;
      B[blockIdx_x * 256 + threadIdx_x] = expf(A[blockIdx_x * 256 + threadIdx_x]);
    }

Loops bound to an axis become that axis's index (guarded by ``if`` where the loop has fewer
iterations than the launch), ``shared`` buffers arrays at the kernel's top, ``local`` ones
arrays in the thread's scope, a block's init runs on the first iteration of its reduction.
A statement's repeated subexpressions are bound once before it (``cse.py``): shared nodes of the
expression DAG would otherwise be printed once per path to them, exponentially many times.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass, field

from ..errors import TcompError
from ..tir import arith
from ..tir.expr import (BinOp, Buffer, Call, Cast, Cmp, Expr, FloatImm, IntImm, Load, Select, Var, dtype_bits,
                        free_vars, is_float, is_int, is_unsigned, substitute)
from ..tir.stmt import Allocate, BlockRealize, BufferStore, Evaluate, For, IfThenElse, SeqStmt, Stmt
from ..tir.transform import block_as_stmt, substitute_stmt
from .cse import Subexpressions, is_leaf
from .gpu.async_mma import ASYNC_MMA_WAIT
from .gpu.barriers import is_barrier
from .gpu.bulk_copy import CALLS as BULK_CALLS


class RenderError(TcompError):
    """The loop IR asks for something the C-style renderer cannot print."""


@dataclass(frozen=True)
class Dialect:
    """What one C-like language writes differently.

    ``name`` is the target kind whose tensor-intrinsic implementations the renderer asks for;
    ``half_types`` maps a 16-bit float dtype to (storage type, to-float function, from-float
    function): such values are stored as 16 bits and computed in float.
    """

    name: str
    kernel_qualifier: str
    axis_index: dict
    barrier: str
    shared_qualifier: str
    restrict: str
    scalar_types: dict
    half_types: dict
    preamble: str = ""
    launch_bounds: str = ""          # format string taking the threads per block, or ""
    float_math: dict = field(default_factory=dict)    # IR call name -> C function on float
    double_math: dict = field(default_factory=dict)   # IR call name -> C function on double
    vector_types: dict = field(default_factory=dict)  # bytes -> a type moving that many bytes at once
    shared_align: str = ""           # qualifier aligning a shared array for the widest vector type
    swizzle_align: str = ""          # the qualifier for a swizzled one (SWIZZLE_ALIGN bytes)
    async_copy: str = ""             # global -> shared copy of {bytes} bytes, {dst} and {src} pointers ("": none)
    async_copy_bytes: tuple = ()     # the widths it copies
    async_commit: str = ""           # ends a group of async copies
    async_wait: str = ""             # waits until at most {n} groups are in flight
    async_mma_wait: str = ""         # waits until at most {n} asynchronous matrix instructions run (gpu/async_mma.py)
    register_fence: dict = field(default_factory=dict)  # register C type -> a statement the compiler moves no
                                                         # access of register {reg} across
    dynamic_shared: str = ""         # declares the dynamic shared bytes {name} ("": static arrays only)
    static_shared_bytes: int = 0     # the most static shared memory a kernel may declare
    int_pow: str = ""                # function raising an integer to an integer power ("": none)
    bitcast: str = ""                # {type}-templated function reinterpreting a value's bits ("": none)
    binding: str = "const auto {name} = {value};"  # a statement's repeated subexpression, named (cse.py)
    vector_pack: dict = field(default_factory=dict)   # bytes -> format of a vector from its 32-bit words {0}, {1} ..
    fragment_element: object = None  # (renderer, load) -> C text of a warp(group) fragment's element, or None:
                                     # only tensor intrinsics touch fragments (cuda: cuda/fragments.py)
    bulk_copies: object = None       # renders the bulk copies and async barriers (gpu/bulk_copy.py), or None:
                                     # none in this dialect (cuda: cuda/bulk_copy.py)

    def storage_type(self, dtype: str) -> str:
        if dtype in self.half_types:
            return self.half_types[dtype][0]
        try:
            return self.scalar_types[dtype]
        except KeyError:
            raise RenderError(f"{self.name}: unsupported dtype {dtype}") from None

    def value_type(self, dtype: str) -> str:
        return self.scalar_types["float32"] if dtype in self.half_types else self.storage_type(dtype)

    def math_function(self, name: str, dtype: str) -> str:
        table = self.double_math if dtype == "float64" else self.float_math
        if name not in table:
            raise RenderError(f"{self.name}: unsupported math function {name} for {dtype}")
        return table[name]


_C_NAME = re.compile(r"[^A-Za-z0-9_]")


class CSourceRenderer:
    """Renders ``DeviceKernel``s (``gpu/lower.py``) in one dialect; ``render`` gives the module source."""

    def __init__(self, dialect: Dialect):
        self.dialect = dialect
        self.snippets: dict = {}      # helper code intrinsic implementations asked for, by key
        self._lines: list = []
        self._indent = 0
        self._names: dict = {}
        self._taken: set = set()
        self._bounds: dict = {}
        self._launch: dict = {}
        self._axes: dict = {}          # launch axis tag -> the kernel's variable of it
        self._index = "long long"
        self.dynamic_shared: dict = {}  # kernel name -> bytes of dynamic shared memory it is launched with
        self.required_arch: dict = {}   # intrinsic name -> the architecture its implementation needs
        self._cse: Subexpressions | None = None  # the statement being rendered (``_bound``)
        self._conditional = 0           # > 0: rendering an operand evaluated only under a condition

    # ------------------------------------------------------------------ module and kernels
    def render(self, kernels) -> str:
        bodies = [self._kernel(kernel) for kernel in kernels]
        parts = [self.dialect.preamble, *self.snippets.values(), *bodies]
        return "\n".join(part.strip("\n") + "\n" for part in parts if part)

    def _kernel(self, kernel) -> str:
        d = self.dialect
        self._lines, self._indent, self._names, self._taken = [], 0, {}, set()
        self._launch = kernel.launch
        self._axes = {}
        self._bounds = {v: (1, None) for v in kernel.size_vars}
        self._index = d.scalar_types["int32" if _fits_int32(kernel) else "int64"]
        params = [f"{d.storage_type(buf.dtype)}* {d.restrict} {self.name(buf)}".replace("  ", " ")
                  for buf in kernel.params]
        params += [f"{d.scalar_types['int64']} {self.name(v)}" for v in kernel.size_vars]
        self._tile_maps = {tile: self.name(Var(f"{tile.buffer.name}_tiles")) for tile in kernel.tile_maps}
        if self._tile_maps:
            if d.bulk_copies is None:
                raise RenderError(f"kernel {kernel.name}: {d.name} has no bulk tile copies")
            params += [d.bulk_copies.param(self, name) for name in self._tile_maps.values()]
        threads = 1
        for tag, extent in kernel.launch.items():
            if tag.startswith("threadIdx") and isinstance(extent, IntImm):
                threads *= extent.value
        bounds = d.launch_bounds.format(threads) + " " if d.launch_bounds else ""
        self._line(f"{d.kernel_qualifier} {bounds}{kernel.name}({', '.join(params)}) {{")
        self._indent += 1
        for tag, extent in kernel.launch.items():
            var = self._axes[tag] = self._axis_var(kernel.body, tag)
            hi = extent.value - 1 if isinstance(extent, IntImm) else None
            self._bounds[var] = (0, hi)
            self._line(f"const {self._index} {self.name(var)} = {d.axis_index[tag]};")
        self._shared(kernel)
        self._stmt(kernel.body)
        self._indent -= 1
        self._line("}")
        return "\n".join(self._lines)

    def _shared(self, kernel) -> None:
        """Declares ``kernel``'s shared buffers: static arrays, or, past ``static_shared_bytes``
        (CUDA: 48 KB), pointers into the dynamic shared memory (its size in ``dynamic_shared``)."""
        d = self.dialect
        offsets, total = shared_layout(kernel.shared)
        for buf in kernel.shared:
            try:
                swizzle = buf.swizzle()
            except ValueError as exc:
                raise RenderError(f"kernel {kernel.name}: {exc}") from None
            if swizzle is not None and not _swizzle_fits(buf, swizzle):
                raise RenderError(f"kernel {kernel.name}: shared buffer {buf.name} is swizzled, but its shape "
                                  f"{[str(x) for x in buf.shape]} and strides are not whole swizzle blocks of "
                                  f"{1 << (swizzle[0] + swizzle[1])} elements")
        dynamic = d.dynamic_shared and total > d.static_shared_bytes
        if dynamic:
            self.dynamic_shared[kernel.name] = total
            self._line(d.dynamic_shared.format(name=DYNAMIC_SHARED))
        for buf in kernel.shared:
            ctype = d.storage_type(buf.dtype)
            if dynamic:
                self._line(f"{ctype}* {self.name(buf)} = ({ctype}*)({DYNAMIC_SHARED} + {offsets[buf]});")
            else:
                size = arith.simplify(buf.storage_elements()).value
                align = d.swizzle_align if buf.swizzled and d.swizzle_align else d.shared_align
                qualifier = f"{d.shared_qualifier} {align}".rstrip()
                self._line(f"{qualifier} {ctype} {self.name(buf)}[{size}];")

    @staticmethod
    def _axis_var(body: Stmt, tag: str) -> Var:
        from ..tir.transform import stmt_exprs, walk_stmts

        name = tag.replace(".", "_")
        found = next((n.var for n in walk_stmts(body) if isinstance(n, For) and n.thread_tag == tag), None)
        if found is None:  # no loop of its own: the lanes of a warp-wide intrinsic, a condition electing a thread
            found = next((v for n in walk_stmts(body) for e in stmt_exprs(n) for v in free_vars(e) if v.name == name),
                         None)
        return found if found is not None else Var(name)

    def name(self, obj) -> str:
        """A C identifier for a variable or buffer, unique in the kernel."""
        if obj not in self._names:
            base = _C_NAME.sub("_", obj.name) or "v"
            if base[0].isdigit():
                base = "v" + base
            candidate, count = base, 0
            while candidate in self._taken:
                count += 1
                candidate = f"{base}_{count}"
            self._taken.add(candidate)
            self._names[obj] = candidate
        return self._names[obj]

    def line(self, text: str) -> None:
        """Adds a line at the current indentation (for intrinsic implementations)."""
        self._line(text)

    def _line(self, text: str) -> None:
        self._lines.append("  " * self._indent + text)

    def _scope(self, head: str, body: Stmt) -> None:
        self._line(head + " {")
        self._indent += 1
        self._stmt(body)
        self._indent -= 1
        self._line("}")

    def _bound(self, render, *roots: Expr):
        """``render()``, which returns texts of one statement's expressions (``roots``, through ``expr``),
        with the subexpressions they repeat bound once in lines emitted here, before the statement
        (``cse.py``). A dialect may check ``roots`` there too (WGSL: 64-bit overflow)."""
        if self._cse is not None:
            return render()
        cse = self._cse = Subexpressions()
        try:
            render()
            for number, node in cse.repeated():
                name = self.name(Var("tc_cse"))
                self._line(self.dialect.binding.format(name=name, value=self._render(node)))
                cse.bind(number, name)
            return render()
        finally:
            self._cse = None

    def _bound_expr(self, e: Expr) -> str:
        """The text of ``e``, a statement's one expression (``_bound``)."""
        return self._bound(lambda: self.expr(e), e)

    def _guarded(self, predicate: Expr | None, emit) -> None:
        """``emit()``'s lines, inside ``if (predicate) { ... }`` where there is a predicate (what they
        bind is evaluated only where it holds)."""
        if predicate is None:
            emit()
            return
        self._line(f"if ({self._bound_expr(predicate)}) {{")
        self._indent += 1
        emit()
        self._indent -= 1
        self._line("}")

    # ------------------------------------------------------------------ statements
    def _stmt(self, stmt: Stmt) -> None:
        if isinstance(stmt, SeqStmt):
            for sub in stmt.stmts:
                self._stmt(sub)
        elif isinstance(stmt, For):
            self._for(stmt)
        elif isinstance(stmt, BlockRealize):
            self._block(stmt)
        elif isinstance(stmt, BufferStore):
            self._store(stmt)
        elif isinstance(stmt, IfThenElse):
            self._scope(f"if ({self._bound_expr(stmt.cond)})", stmt.then_body)
            if stmt.else_body is not None:
                self._scope("else", stmt.else_body)
        elif isinstance(stmt, Allocate):
            self._allocate(stmt)
        elif isinstance(stmt, Evaluate):
            self._evaluate(stmt)
        else:
            raise RenderError(f"unsupported statement {type(stmt).__name__}")

    def _for(self, loop: For) -> None:
        extent = arith.simplify(loop.extent, self._bounds)
        if loop.kind == "thread_binding":
            launch = self._launch[loop.thread_tag]
            if str(extent) == str(launch):
                self._stmt(loop.body)
            else:
                self._scope(f"if ({self.name(loop.var)} < {self.expr(extent)})", loop.body)
            return
        hi = extent.value - 1 if isinstance(extent, IntImm) else None
        self._bounds[loop.var] = (0, hi)
        if loop.kind == "vectorized" and (self._vector_copy(loop, extent) or self._vector_store(loop, extent)):
            return
        if loop.kind in ("unrolled", "vectorized"):  # a vectorized loop of scalar accesses: unrolled
            self._line("#pragma unroll")
        var = self.name(loop.var)
        self._scope(f"for ({self._index} {var} = 0; {var} < {self.expr(extent)}; ++{var})", loop.body)

    def _vector_copy(self, loop: For, extent) -> bool:
        """A vectorized loop copying contiguous, aligned elements as one access of a vector type::

            for v in vectorized(4): B_shared[t * 4 + v] = B[k * 64 + t * 4 + v]
              ->  *(uint4*)(B_shared + t * 4) = *(const uint4*)(B + k * 64 + t * 4);

        False (the loop is rendered as a loop) where it is not such a copy: a value computed or
        converted, read from a warp fragment, an offset with a stride other than 1 or not a multiple of
        the lanes, a predicate that differs between the lanes, or no vector type of that width."""
        realize = loop.body
        if not isinstance(extent, IntImm) or not isinstance(realize, BlockRealize) or realize.block.init is not None:
            return False
        mapping = {iv.var: value for iv, value in zip(realize.block.iter_vars, realize.iter_values)}
        store = substitute_stmt(realize.block.body, mapping)
        if not isinstance(store, BufferStore) or store.predicate is not None or not isinstance(store.value, Load):
            return False
        load, lanes = store.value, extent.value
        if load.predicate is not None or load.buffer.dtype != store.buffer.dtype or load.buffer.scope in FRAGMENT_LANES:
            return False  # a fragment's elements are registers, read one by one (``_vector_store``)
        vector = self.dialect.vector_types.get(lanes * dtype_bits(store.buffer.dtype) // 8)
        offsets = [self._flat(store.buffer, store.indices), self._flat(load.buffer, load.indices)]
        if vector is None or not all(_lane_offset(o, loop.var, lanes) for o in offsets):
            return False
        first = {loop.var: IntImm(0, loop.var.dtype)}
        predicate = self._vector_predicate(realize, loop.var, lanes)
        if predicate is False:
            return False
        dst, src = (arith.simplify(substitute(o, first), self._bounds) for o in offsets)
        dst, src = self._storage_index(store.buffer, dst), self._storage_index(load.buffer, src)
        text = (f"*({vector}*)({self.name(store.buffer)} + {dst}) = "
                f"*(const {vector}*)({self.name(load.buffer)} + {src});")
        nbytes = lanes * dtype_bits(store.buffer.dtype) // 8
        if loop.annotations.get("async_copy") and nbytes in self.dialect.async_copy_bytes and \
                store.buffer.scope == "shared" and load.buffer.scope == "global":
            text = self.dialect.async_copy.format(dst=f"{self.name(store.buffer)} + {dst}",
                                                  src=f"{self.name(load.buffer)} + {src}", bytes=nbytes)
        self._line(f"if ({self.expr(predicate)}) {text}" if predicate is not None else text)
        return True

    def _vector_predicate(self, realize: BlockRealize, lane: Var, lanes: int):
        """A vectorized loop body's block predicate at lane 0 (None where it has none), or False where
        the lanes' values may differ (the loop is then no single vector access)."""
        predicate = realize.predicate
        if predicate is None:
            return None
        if not _uniform_over_lanes(predicate, lane, lanes):
            return False
        return arith.simplify(substitute(predicate, {lane: IntImm(0, lane.dtype)}), self._bounds)

    def _vector_store(self, loop: For, extent) -> bool:
        """A vectorized loop storing computed 16- or 32-bit values to contiguous, aligned elements: each
        lane's value computed as a scalar, the lanes packed into 32-bit words and stored as one vector::

            for v in vectorized(8): A_shared[t * 8 + v] = (ok(v) ? x[b + v - 1] : 0)     (float16)
              ->  *(uint4*)(A_shared + t * 8) = make_uint4(((unsigned int)(ok0 ? x[b - 1] : 0) |
                                                            ((unsigned int)(ok1 ? x[b] : 0) << 16)), ...);

        (16-bit values loaded or loaded under a predicate are moved as their bits, not through float.)
        False where it is no such store (``_vector_copy``'s conditions on the offset and predicate, a
        dialect without ``vector_pack`` for that width)."""
        d = self.dialect
        realize = loop.body
        if not isinstance(extent, IntImm) or not isinstance(realize, BlockRealize) or realize.block.init is not None:
            return False
        mapping = {iv.var: value for iv, value in zip(realize.block.iter_vars, realize.iter_values)}
        store = substitute_stmt(realize.block.body, mapping)
        if not isinstance(store, BufferStore) or store.predicate is not None:
            return False
        buf, lanes = store.buffer, extent.value
        bits = dtype_bits(buf.dtype)
        nbytes = lanes * bits // 8
        if nbytes not in d.vector_pack or (bits == 16) != (buf.dtype in d.half_types) or \
                (bits == 32 and not (buf.dtype == "float32" and d.bitcast)) or bits not in (16, 32):
            return False
        offset = self._flat(buf, store.indices)
        if not _lane_offset(offset, loop.var, lanes) or buf.scope in FRAGMENT_LANES:
            return False
        first = {loop.var: IntImm(0, loop.var.dtype)}
        predicate = self._vector_predicate(realize, loop.var, lanes)
        if predicate is False:
            return False
        values = [substitute(store.value, {loop.var: IntImm(v, loop.var.dtype)}) for v in range(lanes)]
        dst = arith.simplify(substitute(offset, first), self._bounds)

        def text() -> str:
            if bits == 16:
                halves = [self._half_bits(v, buf.dtype) for v in values]
                words = [f"((unsigned int)({lo}) | ((unsigned int)({hi}) << 16))"
                         for lo, hi in zip(halves[::2], halves[1::2])]
            else:
                words = [d.bitcast.format(type="unsigned int", value=f"((float)({self.expr(v)}))") for v in values]
            vector = d.vector_pack[nbytes].format(*words)
            return f"*({d.vector_types[nbytes]}*)({self.name(buf)} + {self._storage_index(buf, dst)}) = {vector};"

        self._guarded(predicate, lambda: self._line(self._bound(text, dst, *values)))
        return True

    def _half_bits(self, value: Expr, dtype: str) -> str:
        """The storage bits of ``value``, a ``dtype`` (16-bit float) value: a load of that type (under a
        predicate: 0 where it is false) as stored, anything else converted from float."""
        d = self.dialect
        if isinstance(value, Load) and value.buffer.dtype == dtype and value.buffer.scope not in FRAGMENT_LANES:
            self._conditional += value.predicate is not None  # (as ``_render``: nothing hoisted past the predicate)
            try:
                index = self._storage_index(value.buffer, self._flat(value.buffer, value.indices))
                text = f"{self.name(value.buffer)}[{index}]"
            finally:
                self._conditional -= value.predicate is not None
            if value.predicate is None:
                return text
            return f"({self.expr(value.predicate)} ? {text} : ({d.storage_type(dtype)})0)"
        bits = self._bitcast_bits(value)
        return bits if bits is not None else self._from_float(value, dtype)

    def _from_float(self, value: Expr, dtype: str) -> str:
        """``value`` converted to the storage of ``dtype`` (a 16-bit float): a cast to ``dtype`` is
        rounded once, by this conversion (not to 16 bits, back to float, and to 16 bits again)."""
        from_float = self.dialect.half_types[dtype][2]
        if isinstance(value, Cast) and value.dtype == dtype and value.value.dtype != dtype:
            return f"{from_float}((float)({self.expr(value.value)}))"
        return f"{from_float}({self.expr(value)})"

    def _block(self, realize: BlockRealize) -> None:
        self._stmt(block_as_stmt(realize))

    def _store(self, store: BufferStore) -> None:
        buf = store.buffer
        _no_fragment(buf)
        offset = self._flat(buf, store.indices)

        def text() -> str:
            value = self._bitcast_bits(store.value)
            if value is None:
                value = self._from_float(store.value, buf.dtype) if buf.dtype in self.dialect.half_types \
                    else self.expr(store.value)
            return f"{self.name(buf)}[{self._storage_index(buf, offset)}] = {value};"

        self._guarded(store.predicate, lambda: self._line(self._bound(text, offset, store.value)))

    def _allocate(self, stmt: Allocate) -> None:
        buf = stmt.buffer
        if buf.scope in FRAGMENT_LANES:
            self._fragment(stmt)
            return
        if buf.scope != "local":
            raise RenderError(f"{buf.scope} buffer {buf.name} is allocated inside the kernel body")
        size = arith.simplify(buf.storage_elements(), self._bounds)
        if not isinstance(size, IntImm):
            raise RenderError(f"local buffer {buf.name} has the symbolic size {size}; tile with constant factors")
        self._line("{")
        self._indent += 1
        self._line(self._local_declaration(buf, size.value))
        self._stmt(stmt.body)
        self._indent -= 1
        self._line("}")

    def _local_declaration(self, buf: Buffer, count: int) -> str:
        """The declaration of a per-thread array of ``count`` elements (a sibling language's own)."""
        return f"{self.dialect.storage_type(buf.dtype)} {self.name(buf)}[{count}];"

    def _fragment(self, stmt: Allocate) -> None:
        """A ``warp`` (``warpgroup``) buffer: each lane's share of the fragment as an array of 32-bit
        registers (over 32 lanes, or the 128 of a warpgroup)."""
        buf = stmt.buffer
        self._line("{")
        self._indent += 1
        self._line(f"{_register_type(buf)} {self.name(buf)}[{self._fragment_registers(buf)}];")
        self._stmt(stmt.body)
        self._indent -= 1
        self._line("}")

    def _fragment_registers(self, buf: Buffer) -> int:
        """32-bit registers per lane of a ``warp`` / ``warpgroup`` buffer."""
        lanes = FRAGMENT_LANES[buf.scope]
        size = arith.simplify(buf.storage_elements(), self._bounds)
        bits = dtype_bits(buf.dtype) * size.value if isinstance(size, IntImm) else 0
        if not bits or bits % (32 * lanes):
            raise RenderError(f"{buf.scope} buffer {buf.name} ({buf.dtype}, {size} elements) does not split into "
                              f"32-bit registers over {lanes} lanes")
        return bits // 32 // lanes

    def _evaluate(self, stmt: Evaluate) -> None:
        from ..schedule.intrinsics import get_intrinsic, is_intrinsic_call

        if is_barrier(stmt):
            self._line(self.dialect.barrier)
            return
        if isinstance(stmt.value, Call) and stmt.value.name in ("async_commit", "async_wait"):
            if stmt.value.name == "async_commit" and self.dialect.async_commit:
                self._line(self.dialect.async_commit)
            elif stmt.value.name == "async_wait" and self.dialect.async_wait:
                self._line(self.dialect.async_wait.format(n=stmt.value.args[0].value))
            return  # no async copies in this dialect: the copies were synchronous
        if isinstance(stmt.value, Call) and stmt.value.name == ASYNC_MMA_WAIT:
            self._async_mma_wait(stmt.value)
            return
        if isinstance(stmt.value, Call) and stmt.value.name in BULK_CALLS:
            if self.dialect.bulk_copies is None:
                raise RenderError(f"{self.dialect.name} has no bulk tile copies ({stmt.value.name})")
            self.dialect.bulk_copies.render(self, stmt.value)
            return
        if not is_intrinsic_call(stmt.value):
            self._line(f"{self._bound_expr(stmt.value)};")
            return
        intrinsic = get_intrinsic(stmt.value.name)
        try:
            implementation = intrinsic.implementation(self.dialect.name)
        except TcompError as exc:
            raise RenderError(str(exc)) from None
        if getattr(implementation, "arch", None):
            self.required_arch[intrinsic.name] = implementation.arch
        implementation.render(self, intrinsic, stmt.value)

    def _async_mma_wait(self, call: Call) -> None:
        """The wait, then (all calls done) a register fence on each accumulator, so the compiler reads
        none of them before the wait."""
        running = call.args[0].value
        if not self.dialect.async_mma_wait:
            raise RenderError(f"{self.dialect.name} has no asynchronous matrix instructions to wait for")
        self._line(self.dialect.async_mma_wait.format(n=running))
        if running:
            return
        for start in call.args[1:]:
            buf = start.args[0].buffer
            registers = self._fragment_registers(buf)
            fence = self.dialect.register_fence[_register_type(buf)].format(reg=f"{self.name(buf)}[tc_r]")
            self._line("#pragma unroll")
            self._line(f"for (int tc_r = 0; tc_r < {registers}; ++tc_r) {fence}")

    # ------------------------------------------------------------------ memory helpers
    def _flat(self, buf: Buffer, indices) -> Expr:
        return arith.simplify(buf.offset(indices), self._bounds)

    def _storage_index(self, buf: Buffer, offset: Expr, extra: str = "") -> str:
        """C text of the storage index of element ``offset`` (+ ``extra``, C text) of ``buf``: the
        offset itself, or its swizzled place (``Buffer.swizzle``)."""
        text = self.expr(offset) + (f" + {extra}" if extra else "")
        swizzle = buf.swizzle()
        if swizzle is None:
            return text
        panels = buf.panels()
        if panels is not None:  # rows longer than a 128-byte line: panels of lines (Buffer.panels)
            line, rows, row = panels
            q, c = f"(({text}) / {row})", f"(({text}) % {row})"
            text = (f"({q} / {rows} * {rows * row} + {c} / {line} * {rows * line} + {q} % {rows} * {line} "
                    f"+ {c} % {line})")
        bits, base, shift = swizzle
        return f"(({text}) ^ ((({text}) >> {base + shift}) & {(1 << bits) - 1}) << {base})"

    def address_of(self, load: Load, extra: str = "") -> str:
        """``(buffer + offset)``: the address of ``load``'s element, or of the element ``extra`` (C
        text, e.g. a lane's row) further on (a swizzled buffer permutes the sum)."""
        return f"({self.name(load.buffer)} + {self._storage_index(load.buffer, self._flat(load.buffer, load.indices), extra)})"

    def tile_map(self, tile) -> str:
        """The parameter name of a tile map (``bulk_copy.TileMap``) of the kernel being rendered."""
        return self._tile_maps[tile]

    def axis(self, tag: str) -> Var | None:
        """The variable of launch axis ``tag`` ("threadIdx.x") in the kernel being rendered (None: not launched)."""
        return self._axes.get(tag)

    def bounds(self) -> dict:
        """Ranges of the variables in scope (for simplifying index expressions)."""
        return self._bounds

    def row_stride(self, load: Load) -> str:
        """The distance between rows (the second-to-last axis) of ``load``'s buffer, in elements."""
        return self.expr(arith.simplify(load.buffer.strides()[-2], self._bounds))

    # ------------------------------------------------------------------ expressions
    def expr(self, e: Expr) -> str:
        """The text of ``e``; in a statement (``_bound``), a repeated subexpression's name. Renderers
        call it once per place the text goes (what the CSE pass counts)."""
        if self._cse is None or is_leaf(e):
            return self._render(e)
        return self._cse.text(e, self._render, self._conditional > 0)

    def _conditionally(self, e: Expr) -> str:
        """The text of ``e``, an operand the language evaluates only under a condition (``?:``)."""
        self._conditional += 1
        try:
            return self.expr(e)
        finally:
            self._conditional -= 1

    def _render(self, e: Expr) -> str:
        d = self.dialect
        if isinstance(e, Var):
            return self.name(e)
        if isinstance(e, IntImm):
            if e.dtype == "bool":
                return "true" if e.value else "false"
            if e.value == -2**63:  # 9223372036854775808LL is no long long: negated, it is unsigned (NVRTC)
                return "(-9223372036854775807LL - 1LL)"
            suffix = "u" if is_unsigned(e.dtype) else ""
            if e.dtype in ("int64", "uint64") and not -2**31 <= e.value < 2**31:
                suffix += "LL"
            return f"{e.value}{suffix}"
        if isinstance(e, FloatImm):
            return self._float_literal(e.value, e.dtype)
        if isinstance(e, Load):
            if e.buffer.scope in FRAGMENT_LANES and d.fragment_element is not None and e.predicate is None:
                return d.fragment_element(self, e)
            _no_fragment(e.buffer)
            offset = self._flat(e.buffer, e.indices)
            if e.predicate is not None:  # lanes where it is false read 0 and touch no memory
                self._conditional += 1
            try:
                text = f"{self.name(e.buffer)}[{self._storage_index(e.buffer, offset)}]"
            finally:
                self._conditional -= e.predicate is not None
            if e.buffer.dtype in d.half_types:
                text = f"{d.half_types[e.buffer.dtype][1]}({text})"
            if e.predicate is not None:
                zero = self._float_literal(0.0, e.dtype) if is_float(e.dtype) else "0"
                text = f"({self.expr(e.predicate)} ? {text} : {zero})"
            return text
        if isinstance(e, BinOp):
            return self._binop(e)
        if isinstance(e, Cmp):
            symbol = {"lt": "<", "le": "<=", "gt": ">", "ge": ">=", "eq": "==", "ne": "!="}[e.op]
            a, b = (arith.simplify(x, self._bounds) if is_int(x.dtype) else x for x in (e.a, e.b))
            return f"({self.expr(a)} {symbol} {self.expr(b)})"
        if isinstance(e, Select):
            return f"({self.expr(e.cond)} ? {self._conditionally(e.a)} : {self._conditionally(e.b)})"
        if isinstance(e, Cast):
            return self._cast(e)
        if isinstance(e, Call):
            return self._call(e)
        raise RenderError(f"unsupported expression {type(e).__name__}")

    def _float_literal(self, value: float, dtype: str) -> str:
        if math.isnan(value):
            return "(0.0f / 0.0f)" if dtype != "float64" else "(0.0 / 0.0)"
        if math.isinf(value):
            inf = "(1.0f / 0.0f)" if dtype != "float64" else "(1.0 / 0.0)"
            return inf if value > 0 else f"(-{inf})"
        text = repr(float(value))
        return text if dtype == "float64" else text + "f"

    def _binop(self, e: BinOp) -> str:
        infix = {"add": "+", "sub": "-", "mul": "*", "and": "&", "or": "|", "xor": "^", "shl": "<<", "shr": ">>"}
        form = None  # a format of the operands' texts {a} and {b}
        if e.op in infix:
            form = f"({{a}} {infix[e.op]} {{b}})"
        elif is_float(e.dtype):
            f = "f" if e.dtype != "float64" else ""
            form = {"div": "({a} / {b})", "min": f"fmin{f}({{a}}, {{b}})", "max": f"fmax{f}({{a}}, {{b}})",
                    "pow": f"pow{f}({{a}}, {{b}})", "floordiv": f"floor{f}({{a}} / {{b}})",
                    # fmod's remainder, moved to the divisor's sign (exact, inf and nan as numpy)
                    "floormod": "tc_floormod({a}, {b})"}.get(e.op)
        elif e.op == "div":
            form = "({a} / {b})"
        elif e.op in ("min", "max"):  # in the operands' common type (min(long long, int) is ambiguous)
            form = f"tc_{e.op}({{a}}, {{b}})"
        elif e.op in ("floordiv", "floormod"):
            lo, _ = arith.bound(e.a, self._bounds)
            if is_unsigned(e.dtype) or (isinstance(e.b, IntImm) and e.b.value > 0 and lo is not None and lo >= 0):
                form = f"({{a}} {'/' if e.op == 'floordiv' else '%'} {{b}})"
            else:
                return f"tc_{e.op}({self._typed(e.a, e.dtype)}, {self._typed(e.b, e.dtype)})"
        elif e.op == "pow" and self.dialect.int_pow:
            return f"{self.dialect.int_pow}({self._typed(e.a, e.dtype)}, {self._typed(e.b, e.dtype)})"
        if form is None:
            raise RenderError(f"unsupported {e.op} for {e.dtype}")
        return form.format(a=self.expr(e.a), b=self.expr(e.b))

    def _typed(self, e: Expr, dtype: str) -> str:
        """``e`` converted to ``dtype``'s value type: a helper templated on its operands' type gets
        one type (a 64-bit load and a 32-bit index or literal would be two)."""
        return self._cast(Cast(dtype, e))

    def _cast(self, e: Cast) -> str:
        d = self.dialect
        value = self.expr(e.value)
        if e.dtype == "bool":
            return f"({value} != 0)"
        if e.dtype in d.half_types:  # computed in float, rounded to the 16-bit type
            _, to_float, from_float = d.half_types[e.dtype]
            return f"{to_float}({from_float}((float)({value})))"
        return f"(({d.value_type(e.dtype)})({value}))"

    def _call(self, e: Call) -> str:
        if e.name == "bitcast":
            return self._bitcast(e.args[0], e.dtype)

        def x() -> str:  # the first operand, rendered per use (what the CSE pass counts)
            return self.expr(e.args[0])

        if not is_float(e.dtype):
            if e.name == "not":
                return f"(!{x()})" if e.dtype == "bool" else f"(~{x()})"
            if e.name == "abs":
                return f"({x()} < 0 ? -{x()} : {x()})"
            if e.name == "neg":
                return f"(-{x()})"
            if e.name == "sign":
                return f"(({self.dialect.value_type(e.dtype)})(({x()} > 0) - ({x()} < 0)))"
            if e.name in ("isnan", "isinf"):
                return f"{e.name}({x()})"
            raise RenderError(f"unsupported call {e.name} for {e.dtype}")
        one = self._float_literal(1.0, e.dtype)
        if e.name == "neg":
            return f"(-{x()})"
        if e.name == "reciprocal":
            return f"({one} / {x()})"
        if e.name == "sigmoid":
            return f"({one} / ({one} + {self.dialect.math_function('exp', e.dtype)}(-{x()})))"
        if e.name == "sign":
            value_type = self.dialect.value_type(e.dtype)
            return f"({x()} != {x()} ? {x()} : ({value_type})(({x()} > 0) - ({x()} < 0)))"  # NaN stays NaN
        function = self.dialect.math_function(e.name, e.dtype)
        return f"{function}({', '.join(self.expr(a) for a in e.args)})"

    def _bitcast_bits(self, value: Expr) -> str | None:
        """The storage bits of ``value`` where it is a 16-bit float bit cast from an integer (stored as
        they are: converted to float and back, a signalling NaN would come back quiet), else None::

            y[i] = bitcast<bfloat16>(x[i])  ->  y[i] = tc_bitcast<unsigned short>(((short)(x[i])));"""
        d = self.dialect
        if not (isinstance(value, Call) and value.name == "bitcast" and value.dtype in d.half_types and d.bitcast):
            return None
        source = value.args[0].dtype
        if source in d.half_types or source == "bool" or dtype_bits(source) != dtype_bits(value.dtype):
            return None
        return d.bitcast.format(type=d.storage_type(value.dtype),
                                value=f"(({d.value_type(source)})({self.expr(value.args[0])}))")

    def _bitcast(self, value: Expr, dtype: str) -> str:
        """``value``'s bits as ``dtype`` (of the same width; a bool is its byte). 16-bit floats are
        computed in float: their bits are the storage type's (``half_types``)."""
        d, source = self.dialect, value.dtype
        if dtype_bits(source) != dtype_bits(dtype) or not d.bitcast:
            raise RenderError(f"{d.name}: unsupported bitcast from {source} to {dtype}")
        x = self.expr(value)
        if source == dtype:
            return x
        if source == "bool":
            return f"(({d.value_type(dtype)})({x}))"
        if dtype == "bool":
            return f"({x} != 0)"
        if source in d.half_types:  # the float's 16 bits, then as the target type
            bits = f"{d.half_types[source][2]}({x})"
        else:
            bits = d.bitcast.format(type=d.storage_type(dtype) if dtype in d.half_types else d.value_type(dtype),
                                    value=f"(({d.value_type(source)})({x}))")
        if dtype in d.half_types:
            return f"{d.half_types[dtype][1]}({bits})"
        return bits if source not in d.half_types else f"(({d.value_type(dtype)})({bits}))"


INT32_LIMIT = 2**31
DYNAMIC_SHARED = "tc_dynamic_shared"
SHARED_ALIGN = 16  # bytes: every shared buffer starts 16-byte aligned (vector copies, ldmatrix rows)
SWIZZLE_ALIGN = 1024  # bytes: a swizzled one on a whole 8x128-byte swizzle atom (wgmma descriptors)


def shared_layout(buffers) -> tuple:
    """Byte offsets of shared ``buffers`` laid one after another (16-byte aligned), and the total."""
    offsets, total = {}, 0
    for buf in buffers:
        if buf.swizzled:  # the tensor cores' swizzle is a function of the address: 1024-byte atoms
            total = -(-total // SWIZZLE_ALIGN) * SWIZZLE_ALIGN
        offsets[buf] = total
        nbytes = arith.simplify(buf.storage_elements()).value * dtype_bits(buf.dtype) // 8
        total += -(-nbytes // SHARED_ALIGN) * SHARED_ALIGN
    return offsets, total


def _swizzle_fits(buf: Buffer, swizzle: tuple) -> bool:
    """Whether ``buf``'s storage is whole blocks of the swizzle (it permutes offsets inside a block)."""
    bits, base, _ = swizzle
    block = 1 << (bits + base)
    strides = [arith.simplify(s) for s in buf.strides()] + [arith.simplify(buf.storage_elements())]
    if not all(isinstance(s, IntImm) for s in strides):
        return False
    row = arith.simplify(buf.shape[-1]).value
    panels = buf.panels()
    if panels is not None:  # whole panels: leading strides span all rows of the last two axes
        block = panels[1] * panels[2]
    return (strides[-2].value == 1 and strides[-3].value == row
            and all(s.value % block == 0 for s in strides[:-3] + strides[-1:]))


def _register_type(fragment: Buffer) -> str:
    """The C type of a warp(group) fragment's 32-bit registers."""
    return "float" if fragment.dtype == "float32" else "unsigned int"


WARP_LANES = 32
FRAGMENT_LANES = {"warp": WARP_LANES, "warpgroup": 4 * WARP_LANES}  # scope -> the lanes holding a fragment


def _no_fragment(buf: Buffer) -> None:
    if buf.scope in FRAGMENT_LANES:
        raise RenderError(f"{buf.scope} buffer {buf.name} is read or written element by element; its elements are "
                          f"spread over the registers of {FRAGMENT_LANES[buf.scope]} lanes, so only warp-wide "
                          f"intrinsics (ldmatrix, mma, wgmma, fill, store: tensorize) may access it")


def _fits_int32(kernel) -> bool:
    """Whether every index of ``kernel`` fits 32 bits: constant sizes (no size variables), each
    buffer and each launch axis under 2**31 elements (32-bit index arithmetic is the GPU's fast path)."""
    if kernel.size_vars:
        return False
    sizes = [arith.simplify(buf.storage_elements()) for buf in kernel.params + tuple(kernel.shared)]
    sizes += list(kernel.launch.values())
    return all(isinstance(n, IntImm) and n.value < INT32_LIMIT for n in sizes)


def _lane_offset(offset: Expr, lane: Var, lanes: int) -> bool:
    """Whether ``offset`` is ``lane`` plus terms that are multiples of ``lanes`` (contiguous, aligned)."""
    lin = arith.linear_form(offset)
    if lin.terms.get(lane) != 1 or lin.const % lanes:
        return False
    return all(atom is lane or (lane not in free_vars(atom) and coeff % lanes == 0) for atom, coeff in lin.terms.items())


def _uniform_over_lanes(predicate: Expr, lane: Var, lanes: int) -> bool:
    """Whether ``predicate`` has one value for all lanes of an aligned vector: free of ``lane``, or
    ``x < n`` with ``x`` an aligned lane offset (``_lane_offset``) and ``n`` a multiple of ``lanes``."""
    if lane not in free_vars(predicate):
        return True
    return (isinstance(predicate, Cmp) and predicate.op == "lt" and isinstance(predicate.b, IntImm)
            and predicate.b.value % lanes == 0 and _lane_offset(predicate.a, lane, lanes))
