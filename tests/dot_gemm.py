"""The GEMM that the x86 dot-product intrinsics compute (``dot_16x4_vnni``: u8 x s8 -> s32,
``dot_16x2_bf16``: bf16 x bf16 -> f32), with B packed in the layout they read; shared by
test_tensorize.py and benchmarks/tensorize_gemm.py::

    C[i, j] = sum_k acc(A[i, k]) * acc(B[j // 16, k // d, j % 16, k % d])     (B: [N/16, K/d, 16, d])

``tile`` splits it so that the tile under loop j_1 is one instruction; ``inputs`` draws A and B
with numpy's C.
"""
from __future__ import annotations

import ml_dtypes
import numpy as np

from tcomp import tir
from tcomp.tir.expr import cast


def packed_gemm(m, n, k, a_dtype: str, b_dtype: str, acc: str, depth: int):
    """The compute above: A [m, k], B packed [n/16, k/depth, 16, depth], C [m, n] in ``acc``."""
    a = tir.placeholder((m, k), a_dtype, name="A")
    b = tir.placeholder((n // 16, k // depth, 16, depth), b_dtype, name="B")
    r = tir.reduce_axis(k, name="k")
    c = tir.compute((m, n), lambda i, j: tir.sum(
        cast(acc, a[i, r]) * cast(acc, b[j // 16, r // depth, j % 16, r % depth]), axis=r), name="C")
    return tir.create_func([a, b, c])


def tile(sch, depth: int, parallel: bool = False):
    """Loops i, j_0, k_0 | j_1 (16), k_1 (depth) of block C (i parallel with ``parallel``): the tile
    under j_1 is one instruction. Returns j_1."""
    i, j, k = sch.get_loops(sch.get_block("C"))
    jo, ji = sch.split(j, [None, 16])
    ko, ki = sch.split(k, [None, depth])
    sch.reorder(jo, ko, ji, ki)
    if parallel:
        sch.parallel(i)
    return ji


def inputs(rng, m: int, n: int, k: int, a_dtype: str, depth: int) -> tuple:
    """(A, B packed, numpy's C) for A of ``a_dtype``: bfloat16 (B too) or uint8 (B int8)."""
    if a_dtype == "bfloat16":
        a = rng.standard_normal((m, k)).astype(ml_dtypes.bfloat16)
        b = rng.standard_normal((k, n)).astype(ml_dtypes.bfloat16)
        ref = a.astype(np.float32) @ b.astype(np.float32)
    else:
        a = rng.integers(0, 256, (m, k), dtype=np.uint8)
        b = rng.integers(-128, 128, (k, n), dtype=np.int8)
        ref = a.astype(np.int32) @ b.astype(np.int32)
    packed = np.ascontiguousarray(b.reshape(k // depth, depth, n // 16, 16).transpose(2, 0, 3, 1))
    return a, packed, ref
