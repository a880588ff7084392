"""x86 tensor intrinsics: AVX-512 VNNI and AVX-512 BF16 dot products, registered at import.

``dot_16x4_vnni`` (``vpdpbusd``): 16 int32 lanes, each adding four u8 x s8 products::

    C[i] int32 += sum_{k<4} int32(A[k] uint8) * int32(B[i, k] int8)     i < 16

``dot_16x2_bf16`` (``vdpbf16ps``): 16 float32 lanes, each adding two bf16 x bf16 products::

    C[i] float32 += sum_{k<2} float32(A[k] bfloat16) * float32(B[i, k] bfloat16)

A CPU implementation is data: the LLVM intrinsic, the CPU feature it needs, and how each
operand is loaded from its tile (``Operand``). ``A`` is broadcast (its 4 bytes repeated in
every 32-bit lane), ``B`` is loaded whole, ``C`` is the accumulator the result is stored to.
So B must be packed [N/16, K/4, 16, 4] (VNNI) or [N/16, K/2, 16, 2] (BF16) for a GEMM.
"""
from __future__ import annotations

from dataclasses import dataclass

from llvmlite import ir

from ...schedule.intrinsics import IntrinsicError, register_intrinsic, tile_starts
from ...tir import te
from ...tir.expr import cast, dtype_bits
from .codegen import CodegenError, llvm_type

_ELEMENTS = {"i8": ir.IntType(8), "i32": ir.IntType(32), "float": ir.FloatType(), "bfloat": llvm_type("bfloat16")}
_BITS = {"i8": 8, "i32": 32, "float": 32, "bfloat": 16}


@dataclass(frozen=True)
class Operand:
    """One operand of an LLVM vector intrinsic: the description parameter it comes from, its LLVM
    vector type (``lanes`` x ``element``), and whether the tile is broadcast to every 32-bit lane."""

    param: str
    lanes: int
    element: str
    broadcast: bool = False

    @property
    def type(self) -> ir.VectorType:
        return ir.VectorType(_ELEMENTS[self.element], self.lanes)


@dataclass(frozen=True)
class LLVMVectorIntrinsic:
    """``result_param = llvm_name(operands...)``: a CPU implementation as data, emitted by ``emit``."""

    llvm_name: str
    feature: str           # the LLVM CPU feature the instruction needs
    result_param: str      # the description parameter the result is stored to (read as an operand too)
    operands: tuple
    vector_bits: int = 512

    def emit(self, codegen, intrinsic, call) -> None:
        """Emits ``call`` (an intrinsic call of ``intrinsic``) into ``codegen``'s current function."""
        from .jit import host_target

        if f"+{self.feature}" not in host_target().features.split(","):
            raise CodegenError(f"{intrinsic.name} needs the CPU feature {self.feature}, which this CPU lacks")
        st = codegen.st
        if st.lane is not None:
            raise CodegenError(f"{intrinsic.name} is called inside vectorized loop {st.lane[0].name}")
        b = st.builder
        pointers = {param.name: codegen.address_of(start)
                    for param, start in zip(intrinsic.description.params, tile_starts(call))}
        values = [self._load(b, operand, pointers[operand.param]) for operand in self.operands]
        result_type = next(op.type for op in self.operands if op.param == self.result_param)
        fn = codegen._declare(self.llvm_name, result_type, [v.type for v in values])
        store = b.store(b.call(fn, values), pointers[self.result_param])
        store.align = 1

    def _load(self, b, operand: Operand, pointer):
        if not operand.broadcast:
            value = b.load(pointer, typ=operand.type)
            value.align = 1
            return value
        word = ir.IntType(32)
        lanes = self.vector_bits // 32
        scalar = b.load(pointer, typ=word)
        scalar.align = 1
        vec = b.insert_element(ir.Constant(ir.VectorType(word, lanes), ir.Undefined), scalar, ir.Constant(word, 0))
        splat = b.shuffle_vector(vec, ir.Constant(vec.type, ir.Undefined),
                                 ir.Constant(ir.VectorType(word, lanes), [0] * lanes))
        return b.bitcast(splat, operand.type)


def check_layout(intrinsic, implementation: LLVMVectorIntrinsic) -> None:
    """Each operand's vector holds exactly its tile (or, broadcast, one 32-bit word of it)."""
    params = {p.name: p for p in intrinsic.description.params}
    for operand in implementation.operands:
        buf = params[operand.param]
        tile_bits = dtype_bits(buf.dtype) * _count(buf)
        vector_bits = operand.lanes * _BITS[operand.element]
        wanted = 32 if operand.broadcast else vector_bits
        if tile_bits != wanted or (operand.broadcast and vector_bits != implementation.vector_bits):
            raise IntrinsicError(f"{intrinsic.name}: operand {operand.param} is a {tile_bits}-bit tile, "
                                 f"its LLVM operand {operand.type} does not fit it")


def _count(buf) -> int:
    total = 1
    for extent in buf.shape:
        total *= extent.value
    return total


def dot_description(name: str, lanes: int, depth: int, a_dtype: str, b_dtype: str, acc_dtype: str):
    """``C[i] acc += sum_{k<depth} acc(A[k]) * acc(B[i, k])`` for ``i < lanes``."""
    a = te.placeholder((depth,), a_dtype, name="A")
    b = te.placeholder((lanes, depth), b_dtype, name="B")
    k = te.reduce_axis(depth, name="k")
    c = te.compute((lanes,), lambda i: te.sum(cast(acc_dtype, a[k]) * cast(acc_dtype, b[i, k]), axis=k), name="C")
    return te.create_func([a, b, c], name=name)


def _register(name: str, description, implementation: LLVMVectorIntrinsic) -> None:
    intrinsic = register_intrinsic(name, description, {"cpu": implementation})
    check_layout(intrinsic, implementation)


_register("dot_16x4_vnni", dot_description("dot_16x4_vnni", 16, 4, "uint8", "int8", "int32"),
          LLVMVectorIntrinsic("llvm.x86.avx512.vpdpbusd.512", "avx512vnni", "C",
                              (Operand("C", 16, "i32"), Operand("A", 64, "i8", broadcast=True), Operand("B", 64, "i8"))))
_register("dot_16x2_bf16", dot_description("dot_16x2_bf16", 16, 2, "bfloat16", "bfloat16", "float32"),
          LLVMVectorIntrinsic("llvm.x86.avx512bf16.dpbf16ps.512", "avx512bf16", "C",
                              (Operand("C", 16, "float"), Operand("A", 32, "bfloat", broadcast=True),
                               Operand("B", 32, "bfloat"))))
