"""LLVM IR generation for the host CPU from the loop IR.

Every ``PrimFunc`` becomes ``void name(ptr args)``, where ``args`` is an array
of buffer pointers in parameter order (the runtime's kernel ABI; a C export
declares it as ``void name(void **args)``).

Loop kinds map to code as follows:

* ``serial``: an ordinary counted loop;
* ``unrolled``: the body is emitted once per iteration with the variable constant; around a
  vectorized loop whose store walks the unrolled variable contiguously and the lanes with a
  stride, as a transpose in registers and contiguous stores (``transposed.py``);
* ``vectorized``: the body is emitted once with the loop variable as the lane
  vector ``<0, 1, ..., V-1>``; loads and stores whose index is affine in it with
  stride 1 become vector loads/stores, others gathers/scatters, and lanes
  outside a block predicate are masked;
* ``parallel``: the body is outlined into ``name_par<k>(ptr ctx, i64 chunk)``, a
  contiguous range of iterations per chunk, and run by ``tcomp_parallel_for``
  (tcomp's thread pool, threadpool.ll): each thread runs its share of the chunks
  and then takes those of threads that have not got to theirs.
"""
from __future__ import annotations

import llvmlite.ir as ir
import ml_dtypes
import numpy as np

from ...errors import TcompError
from ...tir import arith
from ...tir.expr import (BinOp, Buffer, Call, Cast, Cmp, Expr, FloatImm, IntImm, Load, Select, Var, dtype_bits,
                         free_vars, is_float, is_unsigned, substitute)
from ...tir.stmt import (Allocate, BlockRealize, BufferStore, Evaluate, For, IfThenElse, PrimFunc, SeqStmt, Stmt)
from ...tir.transform import block_as_stmt, stmt_exprs, substitute_stmt, walk_stmts
from .llvm_math import FAST, INLINE_F32, intrinsic, splat, type_suffix
from .transposed import cached_load, emit_transposed

I1 = ir.IntType(1)
I8 = ir.IntType(8)
I32 = ir.IntType(32)
I64 = ir.IntType(64)
PTR = ir.PointerType()
STACK_BUFFER_BYTES = 64 * 1024  # larger global-scope allocations go to the heap (thread stacks are small)
CHUNKS_PER_THREAD = 4  # a parallel loop's chunks: a few per thread, so threads that start late take fewer

class BFloatType(ir.types._BaseFloatType):
    """LLVM's ``bfloat`` (llvmlite has no class for it); LLVM computes with it in float32."""

    null = "0.0"
    intrinsic_name = "bf16"

    def __str__(self):
        return "bfloat"

    def format_constant(self, value):
        return ir.types._format_double(float(np.float32(value).astype(ml_dtypes.bfloat16)))


BFloatType._create_instance()

_LLVM_TYPES = {"float32": ir.FloatType(), "float64": ir.DoubleType(), "float16": ir.HalfType(),
               "bfloat16": BFloatType(),
               "int8": I8, "uint8": I8, "int16": ir.IntType(16), "uint16": ir.IntType(16),
               "int32": I32, "uint32": I32, "int64": I64, "uint64": I64, "bool": I1}


def llvm_type(dtype: str, memory: bool = False) -> ir.Type:
    """Register type of a dtype; booleans are i1 in registers and i8 in memory."""
    if dtype == "bool" and memory:
        return I8
    try:
        return _LLVM_TYPES[dtype]
    except KeyError:
        raise TypeError(f"cpu codegen: unsupported dtype {dtype}") from None


class CodegenError(TcompError):
    """The loop IR asks for something the CPU code generator cannot emit."""


class _FunctionState:
    """What codegen knows inside one LLVM function."""

    def __init__(self, func: ir.Function):
        self.func = func
        entry = func.append_basic_block("entry")
        self.alloca_builder = ir.IRBuilder(entry)
        body = func.append_basic_block("body")
        self.alloca_builder.branch(body)
        self.alloca_builder.position_at_start(entry)
        self.builder = ir.IRBuilder(body)
        self.vars: dict = {}          # Var -> llvm value (scalar)
        self.buffers: dict = {}       # Buffer -> llvm ptr
        self.bounds: dict = {}        # Var -> (lo, hi) for the simplifier
        self.lane: tuple | None = None  # (Var, lanes) inside a vectorized loop
        self.mask = None              # lane mask inside a predicated block, or None
        self.in_parallel = False
        self.size_vars: tuple = ()     # the kernel's symbolic sizes
        self.loops = 0                # counted loops emitted so far
        self.transposed_loads: dict = {}  # inside a transposed group's value: its transposed loads


class CPUCodegen:
    """Adds kernels to one LLVM module."""

    def __init__(self, module: ir.Module, num_threads: int):
        self.module = module
        self.num_threads = num_threads
        self._outlined = 0
        self._unroll_disable = None
        self._loops = 0
        self.st: _FunctionState | None = None

    # ------------------------------------------------------------------ kernels
    def add_function(self, func: PrimFunc) -> str:
        try:
            return self._add_function(func)
        except CodegenError as exc:
            raise CodegenError(f"kernel {func.name}: {exc}") from None

    def _add_function(self, func: PrimFunc) -> str:
        fn = ir.Function(self.module, ir.FunctionType(ir.VoidType(), [PTR]), func.name)
        fn.args[0].name = "args"
        st = _FunctionState(fn)
        self.st = st
        for index, buf in enumerate(func.params):
            slot = st.builder.gep(fn.args[0], [ir.Constant(I64, index)], source_etype=PTR)
            st.buffers[buf] = st.builder.load(slot, typ=PTR, name=buf.name)
        for index, var in enumerate(func.size_vars, start=len(func.params)):  # sizes travel as pointer-sized ints
            slot = st.builder.gep(fn.args[0], [ir.Constant(I64, index)], source_etype=PTR)
            st.vars[var] = st.builder.ptrtoint(st.builder.load(slot, typ=PTR), I64, name=var.name)
            st.bounds[var] = (1, None)
        st.size_vars = func.size_vars
        self._stmt(func.body)
        st.builder.ret_void()
        self.st = None
        return func.name

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
            self._if(stmt)
        elif isinstance(stmt, Allocate):
            self._allocate(stmt)
        elif isinstance(stmt, Evaluate):
            self._evaluate(stmt)
        else:
            raise CodegenError(f"cpu codegen: unsupported statement {type(stmt).__name__}")

    def _for(self, loop: For) -> None:
        st = self.st
        kind = loop.kind
        extent = arith.simplify(loop.extent, st.bounds)
        if kind == "thread_binding":
            raise CodegenError(f"loop {loop.var.name} is bound to {loop.thread_tag}, which the cpu target has not")
        if kind == "vectorized":
            if not isinstance(extent, IntImm):
                raise CodegenError(f"vectorized loop {loop.var.name} needs a constant extent")
            if st.lane is not None:
                raise CodegenError(f"vectorized loop {loop.var.name} is nested in another vectorized loop")
            for node in walk_stmts(loop.body):
                if isinstance(node, For):
                    raise CodegenError(f"vectorized loop {loop.var.name} contains loop {node.var.name}")
            st.lane = (loop.var, extent.value)
            st.bounds[loop.var] = (0, extent.value - 1)
            try:
                self._stmt(loop.body)
            finally:
                st.lane = None
            return
        if kind == "unrolled" and isinstance(extent, IntImm) and extent.value <= 64:
            def each():
                for value in range(extent.value):
                    self._stmt(substitute_stmt(loop.body, {loop.var: IntImm(value)}))

            if not emit_transposed(self, loop, extent.value, each):
                each()
            return
        if kind == "parallel" and not st.in_parallel and st.lane is None:
            self._parallel(loop, extent)
            return
        self._serial(loop.var, self._expr(extent), loop.body, extent)

    def _serial(self, var: Var, extent_value, body: Stmt, extent_expr: Expr, start_value=None) -> None:
        st = self.st
        b = st.builder
        start = start_value if start_value is not None else ir.Constant(I64, 0)
        pre = b.block
        header = st.func.append_basic_block(f"{var.name}.head")
        body_bb = st.func.append_basic_block(f"{var.name}.body")
        exit_bb = st.func.append_basic_block(f"{var.name}.exit")
        b.branch(header)
        b.position_at_end(header)
        phi = b.phi(I64, name=var.name)
        phi.add_incoming(start, pre)
        b.cbranch(b.icmp_signed("<", phi, extent_value), body_bb, exit_bb)
        b.position_at_end(body_bb)
        st.vars[var] = phi
        hi = extent_expr.value - 1 if isinstance(extent_expr, IntImm) else None
        st.bounds[var] = (0, hi)
        inner = st.loops
        self._stmt(body)
        nxt = b.add(phi, ir.Constant(I64, 1))
        phi.add_incoming(nxt, b.block)
        back = b.branch(header)
        if st.loops > inner:  # a loop around loops: the schedule unrolled what it wanted
            back.set_metadata("llvm.loop", self._no_unroll())
        st.loops += 1
        b.position_at_end(exit_bb)

    def _no_unroll(self):
        """Loop metadata (a new loop id) that keeps LLVM from unrolling a loop around counted loops.
        LLVM fully unrolls short ones (a conv's 3-tap loops around its channel loop), and the copies
        of the inner loop then keep their accumulators in other registers: moves and spills at every
        iteration. Innermost loops stay LLVM's to unroll (its unrolling of them pays on models)."""
        if self._unroll_disable is None:
            self._unroll_disable = self.module.add_metadata(
                [ir.MetaDataString(self.module, "llvm.loop.unroll.disable")])
        loop_id = self.module.add_metadata([ir.MetaDataString(self.module, f"tcomp.loop.{self._loops}"),
                                            self._unroll_disable])
        loop_id.operands = (loop_id, self._unroll_disable)  # a loop id names itself
        self._loops += 1
        return loop_id

    def _parallel(self, loop: For, extent: Expr) -> None:
        """Outlines the loop body into ``body(ctx, chunk)`` and runs its chunks on the thread pool
        (``tcomp_parallel_for``, threadpool.ll). Chunk ``c`` of ``n`` runs iterations
        ``[c * extent / n, (c + 1) * extent / n)``; ``n`` is ``min(extent, CHUNKS_PER_THREAD * threads)``
        (one chunk with one thread), decided at run time for a symbolic extent."""
        st = self.st
        used = _stmt_free_vars(loop.body) | set(st.size_vars)  # buffer shapes may use sizes the body does not name
        captured_vars = sorted((v for v in used if v is not loop.var and v in st.vars), key=lambda v: v.uid)
        captured_bufs = list(st.buffers)
        self._outlined += 1
        name = f"{st.func.name}_par{self._outlined}"
        body_fn = ir.Function(self.module, ir.FunctionType(ir.VoidType(), [PTR, I64]), name)
        # ctx layout: [extent, chunks, captured vars..., buffer pointers...] as i64
        slots = 2 + len(captured_vars) + len(captured_bufs)
        b = st.builder
        ctx = _alloca(st.alloca_builder, ir.ArrayType(I64, slots), "ctx")
        most = 1 if self.num_threads == 1 else CHUNKS_PER_THREAD * self.num_threads
        if isinstance(extent, IntImm):
            total = ir.Constant(I64, extent.value)
            chunks = ir.Constant(I64, max(1, min(most, extent.value)))
        else:
            total = self._expr(extent)
            chunks = b.select(b.icmp_signed("<", total, ir.Constant(I64, most)), total, ir.Constant(I64, most))
            chunks = b.select(b.icmp_signed("<", chunks, ir.Constant(I64, 1)), ir.Constant(I64, 1), chunks)
        values = [total, chunks]
        values += [st.vars[v] for v in captured_vars]
        values += [b.ptrtoint(st.buffers[buf], I64) for buf in captured_bufs]
        for index, value in enumerate(values):
            b.store(value, b.gep(ctx, [ir.Constant(I32, 0), ir.Constant(I32, index)],
                                 source_etype=ir.ArrayType(I64, slots)))
        pool = self._declare("tcomp_parallel_for", ir.VoidType(), [PTR, PTR, I64, I32])
        b.call(pool, [body_fn, ctx, chunks, ir.Constant(I32, self.num_threads)])

        outer = st
        inner = _FunctionState(body_fn)
        self.st = inner
        ib = inner.builder
        ctx_arg, chunk = body_fn.args

        def slot(index):
            return ib.load(ib.gep(ctx_arg, [ir.Constant(I64, index)], source_etype=I64), typ=I64)

        if isinstance(extent, IntImm):  # constants let LLVM fold the chunk's bounds
            total, chunks = values[0], values[1]
        else:
            total, chunks = slot(0), slot(1)
        for index, var in enumerate(captured_vars):
            inner.vars[var] = slot(2 + index)
            inner.bounds[var] = outer.bounds.get(var, (None, None))
        for index, buf in enumerate(captured_bufs):
            inner.buffers[buf] = ib.inttoptr(slot(2 + len(captured_vars) + index), PTR)
        inner.in_parallel = True
        inner.size_vars = outer.size_vars
        begin = ib.sdiv(ib.mul(chunk, total), chunks)
        end = ib.sdiv(ib.mul(ib.add(chunk, ir.Constant(I64, 1)), total), chunks)
        self._serial(loop.var, end, loop.body, extent, start_value=begin)
        ib.ret_void()
        self.st = outer

    def _evaluate(self, stmt: Evaluate) -> None:
        """An expression for its effect; a tensor-intrinsic call is emitted by the intrinsic's cpu implementation."""
        from ...schedule.intrinsics import get_intrinsic, is_intrinsic_call  # lazy: the schedule imports targets

        if isinstance(stmt.value, Call) and stmt.value.name == "prefetch":  # tir.stmt.prefetch
            if self.st.lane is not None:
                raise CodegenError("a prefetch inside a vectorized loop")
            fn = self._declare("llvm.prefetch.p0", ir.VoidType(), [PTR, I32, I32, I32])
            self.st.builder.call(fn, [self.address_of(stmt.value.args[0]), ir.Constant(I32, 0), ir.Constant(I32, 2),
                                      ir.Constant(I32, 1)])
            return
        if not is_intrinsic_call(stmt.value):
            self._expr(stmt.value)
            return
        intrinsic = get_intrinsic(stmt.value.name)
        try:
            implementation = intrinsic.implementation("cpu")
        except TcompError as exc:
            raise CodegenError(str(exc)) from None
        implementation.emit(self, intrinsic, stmt.value)

    def address_of(self, load: Load):
        """The address of ``load``'s element (scalar code only)."""
        mem_ty = llvm_type(load.buffer.dtype, memory=True)
        flat = self._expr(self._flat_index(load.buffer, load.indices))
        return self.st.builder.gep(self._buffer_ptr(load.buffer), [flat], source_etype=mem_ty)

    def _declare(self, name: str, ret: ir.Type, args: list) -> ir.Function:
        fn = self.module.globals.get(name)
        if fn is None:
            fn = ir.Function(self.module, ir.FunctionType(ret, args), name)
        return fn

    def _allocate(self, stmt: Allocate) -> None:
        """A constant-size local/shared buffer (and a small global one) lives on the stack; a
        symbolic or large global one is malloc'ed for the body and freed after it."""
        st = self.st
        buf = stmt.buffer
        size = arith.simplify(buf.storage_elements(), st.bounds)
        item_bytes = max(1, dtype_bits(buf.dtype) // 8)
        if isinstance(size, IntImm) and (buf.scope != "global" or size.value * item_bytes <= STACK_BUFFER_BYTES):
            arr = ir.ArrayType(llvm_type(buf.dtype, memory=True), size.value)
            st.buffers[buf] = _alloca(st.alloca_builder, arr, buf.name)
            self._stmt(stmt.body)
            return
        b = st.builder
        nbytes = b.mul(self._expr(size), ir.Constant(I64, item_bytes))
        ptr = b.call(self._declare("malloc", PTR, [I64]), [nbytes], name=buf.name)
        st.buffers[buf] = ptr
        self._stmt(stmt.body)
        st.builder.call(self._declare("free", ir.VoidType(), [PTR]), [ptr])

    def _block(self, realize: BlockRealize) -> None:
        self._stmt(block_as_stmt(realize))

    def _if(self, stmt: IfThenElse) -> None:
        st = self.st
        cond = self._expr(arith.simplify(stmt.cond, st.bounds))
        if isinstance(cond, ir.Constant) and not isinstance(cond.type, ir.VectorType):
            branch = stmt.then_body if cond.constant else stmt.else_body
            if branch is not None:
                self._stmt(branch)
            return
        if isinstance(cond.type, ir.VectorType):
            saved = st.mask
            st.mask = self._and_mask(saved, cond)
            self._stmt(stmt.then_body)
            if stmt.else_body is not None:
                st.mask = self._and_mask(saved, st.builder.not_(cond))
                self._stmt(stmt.else_body)
            st.mask = saved
            return
        if st.mask is not None:  # scalar condition inside a vector lane group: fold into the mask
            saved = st.mask
            st.mask = self._and_mask(saved, splat(st.builder, ir.VectorType(I1, st.lane[1]), cond))
            self._stmt(stmt.then_body)
            if stmt.else_body is not None:
                st.mask = self._and_mask(saved, splat(st.builder, ir.VectorType(I1, st.lane[1]),
                                                      st.builder.not_(cond)))
                self._stmt(stmt.else_body)
            st.mask = saved
            return
        b = st.builder
        with b.if_else(cond) as (then, otherwise):
            with then:
                self._stmt(stmt.then_body)
            with otherwise:
                if stmt.else_body is not None:
                    self._stmt(stmt.else_body)

    def _and_mask(self, mask, cond):
        if mask is None:
            return cond
        return self.st.builder.and_(mask, cond)

    def _store(self, store: BufferStore) -> None:
        st = self.st
        b = st.builder
        buf = store.buffer
        value = self._expr(store.value)
        mem_ty = llvm_type(buf.dtype, memory=True)
        value = self._to_memory(value, buf.dtype)
        pred = self._expr(store.predicate) if store.predicate is not None else None
        flat = self._flat_index(buf, store.indices)
        base = self._buffer_ptr(buf)
        if st.lane is None:
            ptr = b.gep(base, [self._expr(flat)], source_etype=mem_ty)
            if pred is not None:
                with b.if_then(pred):
                    b.store(value, ptr)
            else:
                b.store(value, ptr)
            return
        lane_var, lanes = st.lane
        mask = self._and_mask(st.mask, self._as_vector(pred, lanes)) if pred is not None else st.mask
        stride = arith.lane_stride(flat, lane_var, st.bounds)
        if stride == 0 and mask is None and not isinstance(value.type, ir.VectorType):
            index = self._expr(arith.simplify(substitute(flat, {lane_var: IntImm(0)})))  # lane 0's, as every lane's
            b.store(value, b.gep(base, [index], source_etype=mem_ty))
            return
        value = self._as_vector(value, lanes)
        if stride == 1:
            ptr = self._lane0_ptr(base, flat, lane_var, mem_ty)
            if mask is None:
                b.store(value, ptr).align = _element_bytes(mem_ty)
            else:
                self._call_external(f"llvm.masked.store.v{lanes}{type_suffix(mem_ty)}.p0", ir.VoidType(),
                           [value, ptr, ir.Constant(I32, 1), mask])
            return
        ptrs = self._vector_gep(base, self._as_vector(self._expr(flat), lanes), mem_ty, lanes)
        if mask is None:
            mask = ir.Constant(ir.VectorType(I1, lanes), [1] * lanes)
        self._call_external(f"llvm.masked.scatter.v{lanes}{type_suffix(mem_ty)}.v{lanes}p0", ir.VoidType(),
                   [value, ptrs, ir.Constant(I32, 1), mask])

    # ------------------------------------------------------------------ memory helpers
    def _buffer_ptr(self, buf: Buffer):
        try:
            return self.st.buffers[buf]
        except KeyError:
            raise CodegenError(f"buffer {buf.name} is used but neither a parameter nor allocated") from None

    def _flat_index(self, buf: Buffer, indices) -> Expr:
        return arith.simplify(buf.offset(indices), self.st.bounds)

    def _lane0_ptr(self, base, flat: Expr, lane_var: Var, mem_ty):
        """Address of lane 0's element (the start of a contiguous or strided vector access)."""
        return self.st.builder.gep(base, [self._expr(substitute(flat, {lane_var: IntImm(0)}))], source_etype=mem_ty)

    def _call_external(self, name: str, ret: ir.Type, args: list):
        """Calls an external function or intrinsic, declaring it from the argument types."""
        return self.st.builder.call(self._declare(name, ret, [a.type for a in args]), args)

    def _vector_gep(self, base, index_vec, elem_ty, lanes):
        gep = self.st.builder.gep(base, [index_vec], source_etype=elem_ty)
        gep.type = ir.VectorType(PTR, lanes)
        return gep

    def _to_memory(self, value, dtype):
        if dtype == "bool":
            ty = I8 if not isinstance(value.type, ir.VectorType) else ir.VectorType(I8, value.type.count)
            return self.st.builder.zext(value, ty)
        return value

    def _from_memory(self, value, dtype):
        if dtype == "bool":
            zero = ir.Constant(value.type, 0) if not isinstance(value.type, ir.VectorType) else \
                ir.Constant(value.type, [0] * value.type.count)
            return self.st.builder.icmp_unsigned("!=", value, zero)
        return value

    def _load(self, load: Load):
        st = self.st
        b = st.builder
        buf = load.buffer
        mem_ty = llvm_type(buf.dtype, memory=True)
        base = self._buffer_ptr(buf)
        flat = self._flat_index(buf, load.indices)
        pred = self._expr(load.predicate) if load.predicate is not None else None
        if st.lane is None:
            if pred is None:
                value = b.load(b.gep(base, [self._expr(flat)], source_etype=mem_ty), typ=mem_ty)
                return self._from_memory(value, buf.dtype)
            safe_index = b.select(pred, self._expr(flat), ir.Constant(I64, 0))
            value = b.load(b.gep(base, [safe_index], source_etype=mem_ty), typ=mem_ty)
            value = b.select(pred, value, ir.Constant(mem_ty, 0))
            return self._from_memory(value, buf.dtype)
        cached = cached_load(self, load)
        if cached is not None:
            return cached
        lane_var, lanes = st.lane
        stride = arith.lane_stride(flat, lane_var, st.bounds)
        vec_ty = ir.VectorType(mem_ty, lanes)
        zero_vec = ir.Constant(vec_ty, [0] * lanes)
        scalar_pred = pred is not None and not isinstance(pred.type, ir.VectorType)
        if stride == 0 and (pred is None or scalar_pred):
            # one address for every lane: a scalar load, guarded by "any lane active"
            guard = pred
            if st.mask is not None:
                any_lane = intrinsic(b, "vector.reduce.or", [st.mask], ret_type=I1)
                guard = any_lane if guard is None else b.and_(guard, any_lane)
            index = self._expr(arith.simplify(substitute(flat, {lane_var: IntImm(0)})))  # lane 0's, as every lane's
            if guard is not None:
                index = b.select(guard, index, ir.Constant(I64, 0))
            value = b.load(b.gep(base, [index], source_etype=mem_ty), typ=mem_ty)
            if pred is not None:
                value = b.select(pred, value, ir.Constant(mem_ty, 0))
            return self._from_memory(value, buf.dtype)
        mask = st.mask
        if pred is not None:
            mask = self._and_mask(mask, self._as_vector(pred, lanes))
        if stride == 1:
            ptr = self._lane0_ptr(base, flat, lane_var, mem_ty)
            if mask is None:
                value = b.load(ptr, typ=vec_ty)
                value.align = _element_bytes(mem_ty)
            else:
                value = self._call_external(f"llvm.masked.load.v{lanes}{type_suffix(mem_ty)}.p0", vec_ty,
                                   [ptr, ir.Constant(I32, 1), mask, zero_vec])
            return self._from_memory(value, buf.dtype)
        if stride in (2, 3, 4):
            # strided: one contiguous load covering every lane, then pick every stride-th element.
            # The load is `stride` whole vectors (an odd length such as 31 lanes became partial
            # loads and element inserts): the elements past the last lane's are masked off, and
            # under a mask only the picked positions of active lanes are loaded
            span, wide_lanes = (lanes - 1) * stride + 1, lanes * stride
            wide_ty = ir.VectorType(mem_ty, wide_lanes)
            ptr = self._lane0_ptr(base, flat, lane_var, mem_ty)
            if mask is None:
                wide_mask = ir.Constant(ir.VectorType(I1, wide_lanes), [int(j < span) for j in range(wide_lanes)])
            else:
                spread = [j // stride if j % stride == 0 and j < span else lanes for j in range(wide_lanes)]
                wide_mask = b.shuffle_vector(mask, ir.Constant(mask.type, [0] * lanes),
                                             ir.Constant(ir.VectorType(I32, wide_lanes), spread))
            wide = self._call_external(f"llvm.masked.load.v{wide_lanes}{type_suffix(mem_ty)}.p0", wide_ty,
                                       [ptr, ir.Constant(I32, 1), wide_mask, ir.Constant(wide_ty, [0] * wide_lanes)])
            picks = ir.Constant(ir.VectorType(I32, lanes), [i * stride for i in range(lanes)])
            return self._from_memory(b.shuffle_vector(wide, ir.Constant(wide_ty, ir.Undefined), picks), buf.dtype)
        index_vec = self._as_vector(self._expr(flat), lanes)
        if mask is None:
            mask = ir.Constant(ir.VectorType(I1, lanes), [1] * lanes)
        ptrs = self._vector_gep(base, index_vec, mem_ty, lanes)
        value = self._call_external(f"llvm.masked.gather.v{lanes}{type_suffix(mem_ty)}.v{lanes}p0", vec_ty,
                           [ptrs, ir.Constant(I32, 1), mask, zero_vec])
        return self._from_memory(value, buf.dtype)

    # ------------------------------------------------------------------ expressions
    def _as_vector(self, value, lanes):
        if isinstance(value.type, ir.VectorType):
            return value
        return splat(self.st.builder, ir.VectorType(value.type, lanes), value)

    def _unify(self, a, b):
        """Broadcasts a scalar operand when the other is a vector."""
        av, bv = isinstance(a.type, ir.VectorType), isinstance(b.type, ir.VectorType)
        if av and not bv:
            return a, self._as_vector(b, a.type.count)
        if bv and not av:
            return self._as_vector(a, b.type.count), b
        return a, b

    def _expr(self, expr: Expr):
        st = self.st
        if isinstance(expr, Var):
            if st.lane is not None and expr is st.lane[0]:
                lanes = st.lane[1]
                return ir.Constant(ir.VectorType(I64, lanes), list(range(lanes)))
            try:
                return st.vars[expr]
            except KeyError:
                raise CodegenError(f"variable {expr.name} is used outside the loop or block that defines it") from None
        if isinstance(expr, IntImm):
            return ir.Constant(llvm_type(expr.dtype), expr.value)
        if isinstance(expr, FloatImm):
            return ir.Constant(llvm_type(expr.dtype), expr.value)
        if isinstance(expr, Load):
            return self._load(expr)
        if isinstance(expr, BinOp):
            return self._binop(expr)
        if isinstance(expr, Cmp):
            return self._cmp(expr)
        if isinstance(expr, Select):
            cond = self._expr(expr.cond)
            a, b = self._unify(self._expr(expr.a), self._expr(expr.b))
            if isinstance(cond.type, ir.VectorType) and not isinstance(a.type, ir.VectorType):
                a, b = self._as_vector(a, cond.type.count), self._as_vector(b, cond.type.count)
            return st.builder.select(cond, a, b)
        if isinstance(expr, Cast):
            return self._cast(expr)
        if isinstance(expr, Call):
            return self._call(expr)
        raise CodegenError(f"cpu codegen: unsupported expression {type(expr).__name__}")

    def _binop(self, expr: BinOp):
        b = self.st.builder
        op = expr.op
        x, y = self._unify(self._expr(expr.a), self._expr(expr.b))
        dtype = expr.dtype
        if is_float(dtype):
            if op == "add":
                return b.fadd(x, y, flags=FAST)
            if op == "sub":
                return b.fsub(x, y, flags=FAST)
            if op == "mul":
                return b.fmul(x, y, flags=FAST)
            if op == "div":
                return b.fdiv(x, y)
            if op in ("min", "max"):
                # NaN-propagating like numpy/onnxruntime; the sign of a zero result is either
                # operand's, as in numpy (nsz: without it x86 orders -0 < +0 in 4 more instructions)
                return intrinsic(b, "minimum" if op == "min" else "maximum", [x, y], fastmath=("nsz",))
            if op == "pow":
                return intrinsic(b, "pow", [x, y])
            if op == "floormod":
                r = b.frem(x, y)
                zero = splat(b, x.type, 0.0)
                fix = b.and_(b.fcmp_ordered("!=", r, zero),
                             b.xor(b.fcmp_ordered("<", r, zero), b.fcmp_ordered("<", y, zero)))
                return b.select(fix, b.fadd(r, y), r)
            if op == "floordiv":
                return intrinsic(b, "floor", [b.fdiv(x, y)])
            raise CodegenError(f"float {op} is not supported")
        unsigned = is_unsigned(dtype) or dtype == "bool"
        if op in ("div", "floordiv", "floormod") and not (isinstance(expr.b, IntImm) and expr.b.value != 0):
            # integer division by zero is undefined in ONNX; it must not trap (masked lanes read 0)
            zero = splat(b, y.type, 0)
            y = b.select(b.icmp_signed("==", y, zero), splat(b, y.type, 1), y)
        if op == "add":
            return b.add(x, y)
        if op == "sub":
            return b.sub(x, y)
        if op == "mul":
            return b.mul(x, y)
        if op == "div":
            return b.udiv(x, y) if unsigned else b.sdiv(x, y)
        if op in ("floordiv", "floormod"):
            return self._int_floor_divmod(op, expr, x, y, unsigned)
        if op in ("min", "max"):
            cmp = (b.icmp_unsigned if unsigned else b.icmp_signed)("<" if op == "min" else ">", x, y)
            return b.select(cmp, x, y)
        if op == "and":
            return b.and_(x, y)
        if op == "or":
            return b.or_(x, y)
        if op == "xor":
            return b.xor(x, y)
        if op == "shl":
            return b.shl(x, y)
        if op == "shr":  # logical for unsigned, arithmetic for signed
            return b.lshr(x, y) if unsigned else b.ashr(x, y)
        if op == "pow":
            return self._int_pow(x, y)
        raise CodegenError(f"integer {op} is not supported")

    def _int_floor_divmod(self, op, expr, x, y, unsigned):
        b = self.st.builder
        if unsigned:
            return b.udiv(x, y) if op == "floordiv" else b.urem(x, y)
        lo, _ = arith.bound(expr.a, self.st.bounds)
        if isinstance(expr.b, IntImm) and expr.b.value > 0 and lo is not None and lo >= 0:
            return b.sdiv(x, y) if op == "floordiv" else b.srem(x, y)
        zero = splat(b, x.type, 0)
        q = b.sdiv(x, y)
        r = b.srem(x, y)
        adjust = b.and_(b.icmp_signed("!=", r, zero),
                        b.xor(b.icmp_signed("<", r, zero), b.icmp_signed("<", y, zero)))
        if op == "floordiv":
            return b.sub(q, b.zext(adjust, x.type))
        return b.select(adjust, b.add(r, y), r)

    def _int_pow(self, x, y):
        """x ** y for integers by square-and-multiply (y < 0 gives 0 unless |x| == 1, like numpy)."""
        b = self.st.builder
        xf = b.sitofp(x, ir.DoubleType() if not isinstance(x.type, ir.VectorType)
                      else ir.VectorType(ir.DoubleType(), x.type.count))
        yf = b.sitofp(y, xf.type)
        return b.fptosi(intrinsic(b, "pow", [xf, yf]), x.type)

    def _cmp(self, expr: Cmp):
        b = self.st.builder
        x, y = self._unify(self._expr(expr.a), self._expr(expr.b))
        symbol = {"lt": "<", "le": "<=", "gt": ">", "ge": ">=", "eq": "==", "ne": "!="}[expr.op]
        dtype = expr.a.dtype
        if is_float(dtype):
            if expr.op == "ne":
                return b.fcmp_unordered("!=", x, y)
            return b.fcmp_ordered(symbol, x, y)
        if is_unsigned(dtype) or dtype == "bool":
            return b.icmp_unsigned(symbol, x, y)
        return b.icmp_signed(symbol, x, y)

    def _cast(self, expr: Cast):
        b = self.st.builder
        value = self._expr(expr.value)
        src, dst = expr.value.dtype, expr.dtype
        lanes = value.type.count if isinstance(value.type, ir.VectorType) else None

        def ty(dtype):
            t = llvm_type(dtype)
            return ir.VectorType(t, lanes) if lanes else t

        if dst == "bool":
            zero = splat(b, value.type, 0.0 if is_float(src) else 0)
            if is_float(src):
                return b.fcmp_unordered("!=", value, zero)
            return b.icmp_unsigned("!=", value, zero)
        if src == "bool":
            return b.uitofp(value, ty(dst)) if is_float(dst) else b.zext(value, ty(dst))
        if is_float(src) and is_float(dst):
            sw, dw = dtype_bits(src), dtype_bits(dst)
            if dw == sw and src != dst:  # float16 <-> bfloat16: through float32
                value, sw = b.fpext(value, ir.VectorType(ir.FloatType(), lanes) if lanes else ir.FloatType()), 32
            return b.fpext(value, ty(dst)) if dw > sw else b.fptrunc(value, ty(dst)) if dw < sw else value
        if is_float(src):
            return b.fptoui(value, ty(dst)) if is_unsigned(dst) else b.fptosi(value, ty(dst))
        if is_float(dst):
            return b.uitofp(value, ty(dst)) if is_unsigned(src) else b.sitofp(value, ty(dst))
        sw, dw = llvm_type(src).width, llvm_type(dst).width
        if dw > sw:
            return b.zext(value, ty(dst)) if is_unsigned(src) else b.sext(value, ty(dst))
        if dw < sw:
            return b.trunc(value, ty(dst))
        return value

    def _call(self, expr: Call):
        b = self.st.builder
        args = [self._expr(a) for a in expr.args]
        if len(args) == 2:
            args = list(self._unify(*args))
        x = args[0]
        name = expr.name
        dtype = expr.dtype
        if name == "bitcast":  # the same bits as another type of the same width (bool: its byte)
            mem = llvm_type(dtype, memory=True)
            ty = ir.VectorType(mem, x.type.count) if isinstance(x.type, ir.VectorType) else mem
            return self._from_memory(b.bitcast(self._to_memory(x, expr.args[0].dtype), ty), dtype)
        if is_float(dtype):
            if dtype == "float32" and name in INLINE_F32:
                return INLINE_F32[name](b, x)
            if name in ("exp", "log", "sqrt", "sin", "cos", "floor", "ceil", "roundeven", "fabs", "tan", "asin",
                        "acos", "atan", "sinh", "cosh"):
                return intrinsic(b, name, [x])
            if name == "round":
                return intrinsic(b, "roundeven", [x])
            if name == "abs":
                return intrinsic(b, "fabs", [x])
            if name == "neg":
                return b.fneg(x)
            if name == "reciprocal":
                return b.fdiv(splat(b, x.type, 1.0), x)
            if name == "rsqrt":
                return b.fdiv(splat(b, x.type, 1.0), intrinsic(b, "sqrt", [x]))
            if name == "tanh":
                e = intrinsic(b, "exp", [b.fmul(x, splat(b, x.type, -2.0))])
                one = splat(b, x.type, 1.0)
                return b.fdiv(b.fsub(one, e), b.fadd(one, e))
            if name == "sigmoid":
                one = splat(b, x.type, 1.0)
                return b.fdiv(one, b.fadd(one, intrinsic(b, "exp", [b.fneg(x)])))
            if name == "erf":
                raise CodegenError(f"erf is only supported for float32, not {dtype}")
            if name == "sign":
                zero = splat(b, x.type, 0.0)
                pos = b.uitofp(b.fcmp_ordered(">", x, zero), x.type)
                neg = b.uitofp(b.fcmp_ordered("<", x, zero), x.type)
                return b.select(b.fcmp_unordered("uno", x, x), x, b.fsub(pos, neg))  # NaN stays NaN
        if name in ("isnan", "isinf"):
            if name == "isnan":
                return b.fcmp_unordered("uno", x, x)
            return b.fcmp_ordered("==", intrinsic(b, "fabs", [x]), splat(b, x.type, float("inf")))
        if name == "not":
            return b.not_(x)
        if name == "abs":
            return intrinsic(b, "abs", [x, ir.Constant(I1, 0)])
        if name == "neg":
            return b.neg(x)
        if name == "sign":
            zero = splat(b, x.type, 0)
            return b.sub(b.zext(b.icmp_signed(">", x, zero), x.type), b.zext(b.icmp_signed("<", x, zero), x.type))
        raise CodegenError(f"cpu codegen: unsupported call {name} for {dtype}")


def _alloca(builder: ir.IRBuilder, ty: ir.Type, name: str):
    """A 64-byte aligned stack slot typed as an opaque pointer."""
    ptr = builder.alloca(ty, name=name)
    ptr.align = 64
    ptr.type = PTR
    return ptr


def _element_bytes(ty: ir.Type) -> int:
    """Natural alignment of one element in memory."""
    if isinstance(ty, ir.IntType):
        return max(1, ty.width // 8)
    return {ir.FloatType: 4, ir.DoubleType: 8, ir.HalfType: 2, BFloatType: 2}[type(ty)]


def _stmt_free_vars(stmt: Stmt) -> set:
    result = set()
    for node in walk_stmts(stmt):
        for expr in stmt_exprs(node):
            result |= free_vars(expr)
    return result
