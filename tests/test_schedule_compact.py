"""Buffer compaction at build time: a cache used under one tile loop is allocated there, shrunk."""
from __future__ import annotations

import numpy as np

import tcomp
from tcomp import tir
from tcomp.build import lower
from te_kernels import matmul_func


def _matmul(m, n, k):
    return matmul_func(m, n, k)


def _tiled_with_local_cache(func, decompose: bool):
    sch = tcomp.Schedule(func)
    block = sch.get_block("C")
    i, j, k = sch.get_loops(block)
    io, ii = sch.split(i, [None, 8])
    jo, ji = sch.split(j, [None, 32])
    sch.reorder(io, jo, k, ii, ji)
    sch.parallel(io)
    write_back = sch.cache_write(block, 0, "local")
    sch.reverse_compute_at(write_back, jo)
    if decompose:
        sch.decompose_reduction(block, k)
    return sch


def test_cache_under_a_tile_is_allocated_per_tile():
    func = _matmul(64, 96, 40)
    rng = np.random.default_rng()
    a = rng.standard_normal((64, 40)).astype(np.float32)
    b = rng.standard_normal((40, 96)).astype(np.float32)
    for decompose in (False, True):
        sch = _tiled_with_local_cache(func, decompose)
        assert 'C_local = alloc(float32[64, 96], scope="local")' in str(sch.func)
        lowered = str(lower(sch.func))
        assert 'C_local = alloc(float32[8, 32], scope="local")' in lowered
        assert lowered.index("for j_0") < lowered.index("C_local = alloc")
        np.testing.assert_allclose(tcomp.build(sch.func)(a, b), a @ b, rtol=1e-4, atol=1e-4)


def test_buffers_read_across_iterations_are_not_compacted():
    """B is written by one nest and read by another: no loop holds both, B stays whole."""
    x = tir.placeholder((16, 24), "float32", name="X")
    y = tir.compute((16, 24), lambda i, j: x[i, j] * 2.0, name="Y")
    z = tir.compute((16, 24), lambda i, j: y[i, 23 - j] + 1.0, name="Z")
    func = tir.create_func([x, z])
    assert 'Y = alloc(float32[16, 24], scope="global")' in str(lower(func))
    data = np.random.default_rng().standard_normal((16, 24)).astype(np.float32)
    np.testing.assert_allclose(tcomp.build(func)(data), data[:, ::-1] * 2.0 + 1.0, rtol=1e-6)


def test_a_reduction_accumulating_across_iterations_keeps_its_buffer():
    """With the reduction loop k outside the tile loops, the cache carries partial sums from one
    iteration of the tile loop to the next: compacting it into that loop would lose them."""
    func = _matmul(32, 64, 24)
    sch = tcomp.Schedule(func)
    block = sch.get_block("C")
    i, j, k = sch.get_loops(block)
    jo, ji = sch.split(j, [None, 16])
    sch.reorder(k, i, jo, ji)
    write_back = sch.cache_write(block, 0, "local")
    sch.reverse_compute_at(write_back, jo)
    lowered = str(lower(sch.func))
    assert 'C_local = alloc(float32[32, 64], scope="local")' in lowered
    rng = np.random.default_rng()
    a = rng.standard_normal((32, 24)).astype(np.float32)
    b = rng.standard_normal((24, 64)).astype(np.float32)
    np.testing.assert_allclose(tcomp.build(sch.func)(a, b), a @ b, rtol=1e-4, atol=1e-4)
