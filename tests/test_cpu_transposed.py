"""Transposed stores (targets/cpu/transposed.py): an unrolled loop around a vectorized one whose store
walks the unrolled loop contiguously becomes a transpose in registers and contiguous stores (and a
load of the same shape a contiguous load and a transpose); the results match numpy."""
from __future__ import annotations

import numpy as np
import pytest

import tcomp
from tcomp import tir
from tcomp.tir.expr import maximum


def _rand(*shape):
    return np.random.default_rng().standard_normal(shape).astype(np.float32)


def _transposing(rows: int, cols: int, unroll: int, lanes: int, residual: bool):
    """out[j, i] = relu(a[i, j] + bias[j] (+ res[j, i])), scheduled i: [.., unroll] unrolled around
    j: [.., lanes] vectorized."""
    a = tir.placeholder((rows, cols), name="A")
    bias = tir.placeholder((cols,), name="B")
    res = tir.placeholder((cols, rows), name="R")
    out = tir.compute((cols, rows), lambda j, i: maximum(a[i, j] + bias[j] + (res[j, i] if residual else 0.0), 0.0),
                      name="out")
    func = tir.create_func([a, bias, res, out])
    sch = tcomp.Schedule(func)
    j, i = sch.get_loops(sch.get_block("out"))
    io, ii = sch.split(i, [None, unroll])
    jo, ji = sch.split(j, [None, lanes])
    sch.reorder(io, jo, ii, ji)
    sch.unroll(ii)
    sch.vectorize(ji)
    return tcomp.build(sch)


@pytest.mark.parametrize("rows,cols,unroll,lanes", [(56, 32, 8, 16), (32, 64, 16, 16), (28, 16, 4, 16),
                                                    (16, 64, 16, 8), (24, 48, 8, 16), (12, 32, 3, 16),
                                                    (14, 32, 8, 16), (7, 16, 8, 16)], ids=str)
@pytest.mark.parametrize("residual", [False, True])
def test_transposed_group_matches_numpy(rows, cols, unroll, lanes, residual):
    """Powers of two transpose (a tail group of a split that leaves one, 14 = 8 + 6, runs per
    iteration: the group checks its predicate once; 7 rows are all tail); 3 iterations scatter and
    gather."""
    kernel = _transposing(rows, cols, unroll, lanes, residual)
    a, bias, res = _rand(rows, cols), _rand(cols), _rand(cols, rows)
    want = np.maximum(a.T + bias[:, None] + (res if residual else 0), 0)
    np.testing.assert_allclose(kernel(a, bias, res), want, rtol=1e-6, atol=1e-6)
    if "avx512f" in kernel.module.target.features:
        asm = kernel.assembly()
        transposed = unroll & (unroll - 1) == 0 and rows >= unroll
        assert ("vshufps" in asm or "vperm" in asm or "vunpck" in asm) == transposed
        if rows % unroll == 0:  # no tail: nothing scattered or gathered
            assert ("vscatter" not in asm and "vgather" not in asm) == transposed
