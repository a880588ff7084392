"""Warp-level tensor-core intrinsics on register fragments: ``ldmatrix``, ``mma.sync``, fill and store.

A ``warp`` buffer is a matrix spread over the 32 lanes of a warp and held in registers (the
renderer declares ``elements / 32`` per lane; only these intrinsics touch it). Its layout
is the tensor cores' own, fixed here: the buffer is cut into fragment tiles (16x16 for an
``A`` operand, 16x8 for ``B`` and the accumulator), tiles are numbered row-major, and each
tile's registers lie together in the order ``mma.sync`` takes them. A GEMM then reads::

    C_warp = 0                                   mma_fill_16x8_f32 per 16x8 tile (registers)
    for k0:                                      per shared step
      A_shared, B_shared = A[..], B[..]          (cooperative vector copies)
      for k1:
        A_warp = A_shared[..]                    ldmatrix_a_16x16_f16 (ldmatrix.x4)
        B_warp = B_shared[..]                    ldmatrix_b_16x16_f16 (ldmatrix.x4.trans)
        C_warp += A_warp x B_warp                mma_16x8x16_f16f32 (mma.sync.m16n8k16)
    C[..] = C_warp                               mma_store_16x8_f32 (two float2 per lane)

The tile starts that ``tensorize`` passes are turned into register offsets at render time,
so every loop over fragment tiles must be unrolled (registers take constant indices only).
bf16 has the same layouts (``*_bf16f32``). Intrinsics are registry data (``register_intrinsic``).

TF32 (fp32 products under the target's ``-tf32``, ``tf32.py``) takes ``mma.sync.m16n8k8``: A
fragments of 16x8 fp32 values (``ldfrag_a_16x8_tf32``: ``ldmatrix.x4``, which moves 32-bit
elements unchanged when not transposed), B fragments of 8x8 (``ldfrag_b_8x8_tf32``: plain 32-bit
shared loads, ldmatrix cannot transpose 32-bit data), and ``mma_16x8x8_tf32f32``, whose
description multiplies the operands rounded to TF32::

    C[i, j] float32 += sum_{k<8} round_tf32(A[i, k]) * round_tf32(B[k, j])

so it matches only products that ``-tf32`` rewrote. It rounds with ``cvt.rna.tf32.f32`` (as
cuBLAS and cuDNN do); the conversions are plain (not volatile) asm, so a fragment used by
several ``mma.sync`` is converted once.
"""
from __future__ import annotations

from dataclasses import dataclass

from ...schedule.intrinsics import register_intrinsic, tile_starts
from ...tir import arith
from ...tir.expr import FloatImm, IntImm, dtype_bits
from ...tir import te
from ...tir.expr import cast
from ..csource import RenderError
from .tf32 import round_tf32

LANES = 32
A_TILE, B_TILE, C_TILE = (16, 16), (16, 8), (16, 8)
TF32_A_TILE, TF32_B_TILE = (16, 8), (8, 8)  # m16n8k8: A is 16 x 8 (4 registers), B 8 x 8 (2 registers)
_SHARED_ADDRESS = """
__device__ __forceinline__ unsigned int tc_shared_address(const void* pointer) {
  unsigned int address;
  asm("{ .reg .u64 a; cvta.to.shared.u64 a, %1; cvt.u32.u64 %0, a; }" : "=r"(address) : "l"(pointer));
  return address;
}
"""


def registers_per_tile(tile: tuple, dtype: str) -> int:
    """32-bit registers one lane holds of a ``tile`` of ``dtype`` (two 16-bit values share one)."""
    return tile[0] * tile[1] * dtype_bits(dtype) // 32 // LANES


def fragment_register(renderer, load, tile: tuple) -> str:
    """The first register (index into the lane's array) of the fragment tile of shape ``tile``
    starting at ``load`` (a ``warp`` buffer access), as C text."""
    buf = load.buffer
    if buf.scope != "warp":
        raise RenderError(f"{buf.name} is a {buf.scope} buffer; this operand must be a warp fragment (scope 'warp')")
    shape = [arith.simplify(s) for s in buf.shape]
    if not all(isinstance(s, IntImm) for s in shape) or shape[-2].value % tile[0] or shape[-1].value % tile[1]:
        raise RenderError(f"warp buffer {buf.name} has shape {[str(s) for s in shape]}, not whole {tile[0]}x{tile[1]} "
                          f"fragment tiles")
    counts = [s.value for s in shape[:-2]] + [shape[-2].value // tile[0], shape[-1].value // tile[1]]
    index = list(load.indices[:-2]) + [load.indices[-2] // tile[0], load.indices[-1] // tile[1]]
    linear = IntImm(0)
    for i, count in zip(index, counts):
        linear = linear * count + i
    regs = registers_per_tile(tile, buf.dtype)
    return renderer.expr(arith.simplify(linear * regs, renderer.bounds()))


def _regs(name: str, first: str, count: int, constraint: str) -> list:
    return [f'"{constraint}"({name}[{first} + {i}])' for i in range(count)]


def _placeholders(first: int, count: int) -> str:
    return "{" + ", ".join(f"%{first + i}" for i in range(count)) + "}"


def _ldmatrix_operands(renderer, call) -> tuple:
    """(shared source tile start, fragment tile start, the source's row stride) of an ``ldmatrix``
    load; the module gets ``tc_shared_address``."""
    src, dst = tile_starts(call)
    if src.buffer.scope != "shared":
        raise RenderError(f"ldmatrix reads shared memory, {src.buffer.name} is {src.buffer.scope}")
    renderer.snippets["tc_shared_address"] = _SHARED_ADDRESS
    return src, dst, renderer.row_stride(src)


@dataclass(frozen=True)
class LdMatrix:
    """A 16x16 16-bit tile from shared memory into a warp fragment with ``ldmatrix.x4``: lane
    ``l`` points at row ``l % 16``, column ``(l / 16) * 8``. ``trans`` transposes each 8x8 part
    (a B operand stored k-major becomes two 16x8 column fragments)."""

    trans: bool
    warp_wide = True

    def render(self, renderer, intrinsic, call) -> None:
        src, dst, stride = _ldmatrix_operands(renderer, call)
        first = fragment_register(renderer, dst, B_TILE if self.trans else A_TILE)
        name = renderer.name(dst.buffer)
        address = f"tc_shared_address({renderer.address_of(src, f'(threadIdx.x % 16) * {stride} + (threadIdx.x / 16) * 8')})"
        trans = ".trans" if self.trans else ""
        outputs = ", ".join(_regs(name, first, 4, "=r"))
        renderer.line(f'asm volatile("ldmatrix.sync.aligned.m8n8.x4{trans}.shared.b16 {_placeholders(0, 4)}, [%4];" '
                      f': {outputs} : "r"({address}));')


@dataclass(frozen=True)
class MmaSync:
    """``C += A x B`` on fragments with one ``mma.sync`` (``shape`` e.g. ``m16n8k16``, ``kind`` the
    operand type ``f16``/``bf16``/``tf32``, ``a_tile``/``b_tile`` the operands' fragment tiles);
    ``convert`` (a device function, e.g. ``tc_tf32_bits``, the dialect's preamble) turns each
    operand register into the bits the instruction takes (tf32: rounded by ``cvt.rna``)."""

    shape: str
    kind: str
    a_tile: tuple = A_TILE
    b_tile: tuple = B_TILE
    convert: str = ""
    warp_wide = True

    def render(self, renderer, intrinsic, call) -> None:
        a, b, c = tile_starts(call)
        fa, fb, fc = (fragment_register(renderer, x, t) for x, t in ((a, self.a_tile), (b, self.b_tile), (c, C_TILE)))
        na, nb, nc = (renderer.name(x.buffer) for x in (a, b, c))
        outputs = ", ".join(_regs(nc, fc, 4, "+f"))
        inputs = ", ".join([f'"r"({self.convert}({na}[{fa} + {i}]))' for i in range(4)]
                           + [f'"r"({self.convert}({nb}[{fb} + {i}]))' for i in range(2)])
        renderer.line(f'asm volatile("mma.sync.aligned.{self.shape}.row.col.f32.{self.kind}.{self.kind}.f32 '
                      f'{_placeholders(0, 4)}, {_placeholders(4, 4)}, {_placeholders(8, 2)}, {_placeholders(0, 4)};" '
                      f': {outputs} : {inputs});')


@dataclass(frozen=True)
class FillAccumulator:
    """Zeroes a 16x8 fp32 accumulator fragment (4 registers per lane)."""

    warp_wide = True

    def render(self, renderer, intrinsic, call) -> None:
        (c,) = tile_starts(call)
        first, name = fragment_register(renderer, c, C_TILE), renderer.name(c.buffer)
        renderer.line(" ".join(f"{name}[{first} + {i}] = 0.0f;" for i in range(4)))


@dataclass(frozen=True)
class StoreAccumulator:
    """A 16x8 fp32 accumulator fragment to memory: lane ``l`` holds row ``l / 4`` (and ``+ 8``),
    columns ``(l % 4) * 2`` and ``+ 1``, written as one ``float2`` each."""

    warp_wide = True

    def render(self, renderer, intrinsic, call) -> None:
        c, dst = tile_starts(call)
        first, name = fragment_register(renderer, c, C_TILE), renderer.name(c.buffer)
        stride = renderer.row_stride(dst)
        base = f"{renderer.address_of(dst)} + (threadIdx.x / 4) * {stride} + (threadIdx.x % 4) * 2"
        for half in range(2):
            row = f" + {8 * half} * {stride}" if half else ""
            renderer.line(f"*(float2*)({base}{row}) = make_float2({name}[{first} + {2 * half}], "
                          f"{name}[{first} + {2 * half + 1}]);")


@dataclass(frozen=True)
class LoadTf32A:
    """A 16x8 fp32 tile from shared memory into an m16n8k8 A fragment with ``ldmatrix.x4`` (its four
    8x4 matrices: rows 0-7 / 8-15 of columns 0-3, then of columns 4-7): lane ``l`` points at row
    ``l % 16``, column ``(l / 16) * 4``; lane ``l`` receives rows ``l / 4`` (and ``+ 8``), columns
    ``l % 4`` (and ``+ 4``), the layout ``mma.sync .tf32`` takes."""

    warp_wide = True

    def render(self, renderer, intrinsic, call) -> None:
        src, dst, stride = _ldmatrix_operands(renderer, call)
        first, name = fragment_register(renderer, dst, TF32_A_TILE), renderer.name(dst.buffer)
        lane = f"(threadIdx.x % 16) * {stride} + (threadIdx.x / 16) * 4"
        address = f"tc_shared_address({renderer.address_of(src, lane)})"
        renderer.line(f'{{ unsigned int r[4]; asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 '
                      f'{_placeholders(0, 4)}, [%4];" : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3]) : '
                      f'"r"({address})); ' + " ".join(f"{name}[{first} + {i}] = __uint_as_float(r[{i}]);"
                                                       for i in range(4)) + " }")


@dataclass(frozen=True)
class LoadTf32B:
    """An 8x8 fp32 tile (rows along k) from shared memory into an m16n8k8 B fragment: lane ``l``
    loads rows ``l % 4`` and ``l % 4 + 4`` of column ``l / 4`` (two 32-bit loads)."""

    warp_wide = True

    def render(self, renderer, intrinsic, call) -> None:
        src, dst = tile_starts(call)
        first, name = fragment_register(renderer, dst, TF32_B_TILE), renderer.name(dst.buffer)
        stride = renderer.row_stride(src)
        for half in range(2):
            row = f"(threadIdx.x % 4 + {4 * half}) * {stride} + threadIdx.x / 4"
            renderer.line(f"{name}[{first} + {half}] = *{renderer.address_of(src, row)};")


def _scoped(func, scopes: dict):
    """``func`` with its parameters' memory scopes set (``tensorize`` matches them)."""
    for param in func.params:
        param.scope = scopes.get(param.name, param.scope)
    return func


def _copy(name: str, shape: tuple, dtype: str, src_scope: str, dst_scope: str):
    src = te.placeholder(shape, dtype, name="S")
    dst = te.compute(shape, lambda i, j: src[i, j], name="D")
    return _scoped(te.create_func([src, dst], name=name), {"S": src_scope, "D": dst_scope})


def _mma(name: str, in_dtype: str):
    a = te.placeholder((16, 16), in_dtype, name="A")
    b = te.placeholder((16, 8), in_dtype, name="B")
    r = te.reduce_axis(16, name="k")
    c = te.compute((16, 8), lambda i, j: te.sum(cast("float32", a[i, r]) * cast("float32", b[r, j]), axis=r),
                   name="C")
    return _scoped(te.create_func([a, b, c], name=name), {"A": "warp", "B": "warp", "C": "warp"})


def _mma_tf32(name: str):
    a = te.placeholder(TF32_A_TILE, "float32", name="A")
    b = te.placeholder(TF32_B_TILE, "float32", name="B")
    r = te.reduce_axis(8, name="k")
    c = te.compute(C_TILE, lambda i, j: te.sum(round_tf32(a[i, r]) * round_tf32(b[r, j]), axis=r), name="C")
    return _scoped(te.create_func([a, b, c], name=name), {"A": "warp", "B": "warp", "C": "warp"})


def _fill(name: str):
    c = te.compute((16, 8), lambda i, j: FloatImm(0.0, "float32"), name="C")
    return _scoped(te.create_func([c], name=name), {"C": "warp"})


for _dtype, _kind, _suffix in (("float16", "f16", "f16"), ("bfloat16", "bf16", "bf16")):
    register_intrinsic(f"ldmatrix_a_16x16_{_suffix}", _copy(f"ldmatrix_a_16x16_{_suffix}", (16, 16), _dtype, "shared", "warp"),
                       {"cuda": LdMatrix(trans=False)}, strided_rows=True)
    register_intrinsic(f"ldmatrix_b_16x16_{_suffix}", _copy(f"ldmatrix_b_16x16_{_suffix}", (16, 16), _dtype, "shared", "warp"),
                       {"cuda": LdMatrix(trans=True)}, strided_rows=True)
    register_intrinsic(f"mma_16x8x16_{_suffix}f32", _mma(f"mma_16x8x16_{_suffix}f32", _dtype),
                       {"cuda": MmaSync("m16n8k16", _kind)}, strided_rows=True)
register_intrinsic("mma_fill_16x8_f32", _fill("mma_fill_16x8_f32"), {"cuda": FillAccumulator()}, strided_rows=True)
register_intrinsic("mma_store_16x8_f32", _copy("mma_store_16x8_f32", (16, 8), "float32", "warp", "global"),
                   {"cuda": StoreAccumulator()}, strided_rows=True)
register_intrinsic("ldfrag_a_16x8_tf32", _copy("ldfrag_a_16x8_tf32", TF32_A_TILE, "float32", "shared", "warp"),
                   {"cuda": LoadTf32A()}, strided_rows=True)
register_intrinsic("ldfrag_b_8x8_tf32", _copy("ldfrag_b_8x8_tf32", TF32_B_TILE, "float32", "shared", "warp"),
                   {"cuda": LoadTf32B()}, strided_rows=True)
register_intrinsic("mma_16x8x8_tf32f32", _mma_tf32("mma_16x8x8_tf32f32"),
                   {"cuda": MmaSync("m16n8k8", "tf32", TF32_A_TILE, TF32_B_TILE, "tc_tf32_bits")}, strided_rows=True)
