"""Tensor-core intrinsics for the cuda target, registered at import (no CUDA library needed).

``wmma_16x16x16_f16f32``: one warp multiplies 16x16 fp16 tiles and accumulates in fp32::

    C[i, j] float32 += sum_{k<16} float32(A[i, k] float16) * float32(B[k, j] float16)   i, j < 16

Rows of each tile may lie apart (``strided_rows``): A, B and C are read in place, the row
stride passed as WMMA's leading dimension. The implementation is data rendered as one call of
a helper written in inline PTX (``wmma.load`` / ``wmma.mma`` / ``wmma.store``), so NVRTC needs
no ``mma.h``; a whole warp runs it (``warp_wide``: GPU lowering gives such a block's kernel
32 threads in ``threadIdx.x``). Tiles start on 32-byte boundaries and row strides are
multiples of 8 elements (16 for the accumulator), as WMMA requires.
"""
from __future__ import annotations

from dataclasses import dataclass

from ...schedule.intrinsics import register_intrinsic, tile_starts
from ...tir import te
from ...tir.expr import cast


def _operands(prefix: str, count: int, constraint: str) -> str:
    return ", ".join(f'"{constraint}"({prefix}[{i}])' for i in range(count))


def _placeholders(first: int, count: int) -> str:
    return "{" + ", ".join(f"%{first + i}" for i in range(count)) + "}"


def _wmma_helper(name: str, shape: str) -> str:
    """A device function ``name(a, lda, b, ldb, c, ldc)``: ``C += A x B`` (row-major tiles) for one warp."""
    return f"""
__device__ __forceinline__ void {name}(const unsigned short* a, long long lda, const unsigned short* b,
                                       long long ldb, float* c, long long ldc) {{
  unsigned int fa[8], fb[8];
  float fc[8], fd[8];
  __syncwarp();
  asm volatile("wmma.load.a.sync.aligned.row.{shape}.f16 {_placeholders(0, 8)}, [%8], %9;"
               : {_operands("fa", 8, "=r")} : "l"(a), "r"((int)lda) : "memory");
  asm volatile("wmma.load.b.sync.aligned.row.{shape}.f16 {_placeholders(0, 8)}, [%8], %9;"
               : {_operands("fb", 8, "=r")} : "l"(b), "r"((int)ldb) : "memory");
  asm volatile("wmma.load.c.sync.aligned.row.{shape}.f32 {_placeholders(0, 8)}, [%8], %9;"
               : {_operands("fc", 8, "=f")} : "l"(c), "r"((int)ldc) : "memory");
  asm volatile("wmma.mma.sync.aligned.row.row.{shape}.f32.f32 {_placeholders(0, 8)}, {_placeholders(8, 8)}, "
               "{_placeholders(16, 8)}, {_placeholders(24, 8)};"
               : {_operands("fd", 8, "=f")}
               : {_operands("fa", 8, "r")}, {_operands("fb", 8, "r")}, {_operands("fc", 8, "f")});
  asm volatile("wmma.store.d.sync.aligned.row.{shape}.f32 [%0], {_placeholders(1, 8)}, %9;"
               :: "l"(c), {_operands("fd", 8, "f")}, "r"((int)ldc) : "memory");
  __syncwarp();
}}
"""


@dataclass(frozen=True)
class WarpMatrixIntrinsic:
    """``C += A x B`` on row-major tiles by one warp: the helper ``function`` (inline PTX) and its shape."""

    function: str
    shape: str
    warp_wide = True

    def render(self, renderer, intrinsic, call) -> None:
        """Writes ``call`` (of ``intrinsic``) as a call of the helper, which joins the module once."""
        renderer.snippets[self.function] = _wmma_helper(self.function, self.shape)
        a, b, c = tile_starts(call)
        operands = ", ".join(f"{renderer.address_of(t)}, {renderer.row_stride(t)}" for t in (a, b, c))
        renderer.line(f"{self.function}({operands});")


def matmul_description(name: str, m: int, n: int, k: int, in_dtype: str, acc_dtype: str):
    """``C[i, j] acc += sum_{r<k} acc(A[i, r]) * acc(B[r, j])`` over an ``m x n`` tile."""
    a = te.placeholder((m, k), in_dtype, name="A")
    b = te.placeholder((k, n), in_dtype, name="B")
    r = te.reduce_axis(k, name="k")
    c = te.compute((m, n), lambda i, j: te.sum(cast(acc_dtype, a[i, r]) * cast(acc_dtype, b[r, j]), axis=r),
                   name="C")
    return te.create_func([a, b, c], name=name)


register_intrinsic("wmma_16x16x16_f16f32", matmul_description("wmma_16x16x16_f16f32", 16, 16, 16, "float16", "float32"),
                   {"cuda": WarpMatrixIntrinsic("tc_wmma_m16n16k16_f16_f32", "m16n16k16")}, strided_rows=True)

from . import mma as _mma  # noqa: E402,F401  (registers the mma.sync family)
from . import wgmma as _wgmma  # noqa: E402,F401  (registers the Hopper wgmma family)
