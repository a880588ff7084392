"""Schedule primitives for caches, layout and reductions: cache_read, cache_write, storage_align,
decompose_reduction, rfactor (against numpy, structurally, error cases, trace replay)."""
from __future__ import annotations

import numpy as np
import pytest

import tcomp
from tcomp import tir
from tcomp.tir.stmt import Allocate
from tcomp.tir.transform import walk_stmts
from te_kernels import chain_func, matmul_func, row_reduce_func


def _matmul(m=64, n=48, k=64):
    return matmul_func(m, n, k)


def _rand(*shape):
    return np.random.default_rng().standard_normal(shape).astype(np.float32)


def _check_matmul(sch, m=64, n=48, k=64):
    a, b = _rand(m, k), _rand(k, n)
    np.testing.assert_allclose(tcomp.build(sch.func)(a, b), a @ b, rtol=1e-4, atol=1e-4)


def _check_replay(func, sch):
    replayed = tcomp.Trace.from_json(sch.trace.to_json()).apply_to(func)
    assert str(replayed.func) == str(sch.func)


def _unchanged_on_error(sch, call, match):
    before, count = str(sch.func), len(sch.trace)
    with pytest.raises(tcomp.ScheduleError, match=match):
        call()
    assert str(sch.func) == before and len(sch.trace) == count


# ---------------------------------------------------------------- cache_read / cache_write
def test_cache_read_copies_the_buffer_before_the_reader():
    func = _matmul()
    sch = tcomp.Schedule(func)
    c = sch.get_block("C")
    assert [b.name for b in sch.get(c).reads] == ["C", "A", "B"]
    copy = sch.cache_read(c, 1, "shared")
    text = str(sch.func)
    assert sch.get(copy).name == "A_shared"
    assert 'A_shared = alloc(float32[64, 64], scope="shared")' in text
    assert "A_shared[v0, v1] = A[v0, v1]" in text
    assert text.index("block A_shared") < text.index("block C")
    assert "A_shared[vi, vk]" in text and "A[vi, vk]" not in text
    assert [b.name for b in sch.get(c).reads] == ["C", "A_shared", "B"]
    _check_matmul(sch)
    _check_replay(func, sch)


def test_cache_read_of_an_intermediate_follows_its_producer_and_names_are_unique():
    func = chain_func(13, 7)
    sch = tcomp.Schedule(func)
    c = sch.get_block("C")
    first = sch.cache_read(c, 0, "local")
    second = sch.cache_read(c, 0, "local")  # a cache of the cache
    names = [sch.get(first).name, sch.get(second).name]
    assert names == ["B_local", "B_local_local"]
    text = str(sch.func)
    assert text.index("block B[") < text.index("block B_local[") < text.index("block B_local_local[") \
        < text.index("block C[")
    x = _rand(13, 7)
    np.testing.assert_allclose(tcomp.build(sch.func)(x), x * 2 + 1, rtol=1e-6)
    _check_replay(func, sch)


def test_cache_write_accumulates_locally_and_copies_back():
    func = _matmul()
    sch = tcomp.Schedule(func)
    c = sch.get_block("C")
    copy = sch.cache_write(c, 0, "local")
    text = str(sch.func)
    assert sch.get(copy).name == "C_local"
    assert "C_local[vi, vj] = (C_local[vi, vj] + (A[vi, vk] * B[vk, vj]))" in text
    assert "C[v0, v1] = C_local[v0, v1]" in text and text.index("block C[") < text.index("block C_local[")
    assert [b.name for b in sch.get(c).writes] == ["C_local"]
    _check_matmul(sch)
    _check_replay(func, sch)


def test_cache_write_of_an_output_with_a_unit_axis_returns_a_live_copy_block():
    a = tir.placeholder((1, 6, 8), "float32", name="A")
    b = tir.compute((1, 6, 8), lambda x, i, j: a[x, i, j] * 3.0, name="B")
    func = tir.create_func([a, b])
    sch = tcomp.Schedule(func)
    copy = sch.cache_write(sch.get_block("B"), 0, "local")
    assert sch.get(copy).name == "B_local" and len(sch.get_loops(copy)) == 2  # no loop for the unit axis
    x = _rand(1, 6, 8)
    np.testing.assert_allclose(tcomp.build(sch)(x), x * 3.0, rtol=1e-6)


@pytest.mark.parametrize("reducer, reference", [(tir.max, np.max), (tir.min, np.min), (tir.sum, np.sum)])
def test_cache_write_then_read_on_row_reductions(reducer, reference):
    func = row_reduce_func(reducer, 24, 64)
    sch = tcomp.Schedule(func)
    c = sch.get_block("C")
    sch.cache_write(c, 0, "global")
    sch.cache_read(c, 1, "local")
    x = _rand(24, 64)
    np.testing.assert_allclose(tcomp.build(sch.func)(x), reference(x, axis=1), rtol=1e-5, atol=1e-5)
    _check_replay(func, sch)


def test_cache_errors():
    sch = tcomp.Schedule(_matmul())
    c = sch.get_block("C")
    _unchanged_on_error(sch, lambda: sch.cache_read(c, 3, "shared"), r"block C reads 3 buffers \(C, A, B\)")
    _unchanged_on_error(sch, lambda: sch.cache_read(c, 1, "texture"), "unknown scope 'texture'")
    _unchanged_on_error(sch, lambda: sch.cache_read(c, 0, "local"), "block C writes C as well")
    _unchanged_on_error(sch, lambda: sch.cache_write(c, 1, "local"), "block C writes 1 buffers")
    _i, _j, k = sch.get_loops(c)
    sch.decompose_reduction(c, k)
    _unchanged_on_error(sch, lambda: sch.cache_write(c, 0, "local"), "block C_init writes C too")


# ---------------------------------------------------------------- storage_align
def test_storage_align_pads_the_stride_of_a_cache():
    func = _matmul()
    sch = tcomp.Schedule(func)
    c = sch.get_block("C")
    b_shared = sch.cache_read(c, 2, "shared")
    sch.storage_align(b_shared, 0, 0, 32, 8)
    assert 'B_shared = alloc(float32[64, 48], strides=[72, 1], scope="shared")' in str(sch.func)
    _check_matmul(sch)
    _check_replay(func, sch)


def test_storage_align_inner_then_outer_axis_of_a_3d_intermediate():
    a = tir.placeholder((3, 5, 6), "float32", name="A")
    b = tir.compute((3, 5, 6), lambda x, y, z: a[x, y, z] + 1.0, name="B")
    c = tir.compute((3, 5, 6), lambda x, y, z: b[x, y, z] * 3.0, name="C")
    func = tir.create_func([a, c])
    sch = tcomp.Schedule(func)
    blk = sch.get_block("B")
    sch.storage_align(blk, 0, 1, 4, 1)       # stride 6 -> 9
    sch.storage_align(blk, 0, -3, 16, 0)     # stride 5 * 9 = 45 -> 48
    alloc = next(n.buffer for n in walk_stmts(sch.func.body) if isinstance(n, Allocate))
    assert [s.value for s in alloc.strides()] == [48, 9, 1]
    assert "strides=[48, 9, 1]" in str(sch.func)
    x = _rand(3, 5, 6)
    np.testing.assert_allclose(tcomp.build(sch.func)(x), (x + 1) * 3, rtol=1e-6)
    _check_replay(func, sch)


def test_storage_align_errors():
    sch = tcomp.Schedule(chain_func(4, 8))
    bb, cb = sch.get_block("B"), sch.get_block("C")
    _unchanged_on_error(sch, lambda: sch.storage_align(cb, 0, 0, 8, 1), "C: it is a parameter of main")
    _unchanged_on_error(sch, lambda: sch.storage_align(bb, 0, 1, 8, 1), "axis 1 is the innermost")
    _unchanged_on_error(sch, lambda: sch.storage_align(bb, 0, 2, 8, 1), "axis 2 is out of range")
    _unchanged_on_error(sch, lambda: sch.storage_align(bb, 0, 0, 8, 8), "0 <= offset < factor")
    _unchanged_on_error(sch, lambda: sch.storage_align(bb, 1, 0, 8, 1), "index 1 is out of range")


# ---------------------------------------------------------------- decompose_reduction
def test_decompose_reduction_at_the_spatial_loop():
    func = _matmul()
    sch = tcomp.Schedule(func)
    c = sch.get_block("C")
    _i, j, _k = sch.get_loops(c)
    init = sch.decompose_reduction(c, j)
    text = str(sch.func)
    assert sch.get(init).name == "C_init"
    assert "for j_init in range(48):\n      block C_init[vi = S(64): i, vj = S(48): j_init]:" in text
    assert "init:" not in text and sch.get(c).init is None
    assert [sch.get(loop).var.name for loop in sch.get_loops(init)] == ["i", "j_init"]
    _check_matmul(sch)
    _check_replay(func, sch)


def test_decompose_reduction_drops_reduce_loops_and_keeps_spatial_tails():
    m, n = 100, tir.size_var("n")
    a = tir.placeholder((m, n), "float32", name="A")
    r = tir.reduce_axis(n, name="k")
    func = tir.create_func([a, tir.compute((m,), lambda i: tir.max(a[i, r], axis=r), name="C")])
    sch = tcomp.Schedule(func)
    c = sch.get_block("C")
    i, _k = sch.get_loops(c)
    _io, _ii = sch.split(i, [None, 16])
    sch.decompose_reduction(c, sch.get_loops(c)[0])
    text = str(sch.func)
    assert "block C_init[vi = S(100): ((i_0_init * 16) + i_1_init)] where (((i_0_init * 16) + i_1_init) < 100)" \
        in text
    kernel = tcomp.build(sch.func)
    for width in (1, 33):
        x = _rand(100, width)
        np.testing.assert_allclose(kernel(x), x.max(axis=1), rtol=1e-6)
    _check_replay(func, sch)


def test_decompose_reduction_errors():
    sch = tcomp.Schedule(_matmul())
    c = sch.get_block("C")
    _i, _j, k = sch.get_loops(c)
    _ko, ki = sch.split(k, [4, 16])
    _unchanged_on_error(sch, lambda: sch.decompose_reduction(c, ki), "loop k_0 above it feeds a reduce iterator")
    chain = tcomp.Schedule(chain_func(13, 7))
    b = chain.get_block("B")
    b_outer, _b_inner = chain.get_loops(b)
    _unchanged_on_error(chain, lambda: chain.decompose_reduction(b, b_outer), "has no init")
    sch2 = tcomp.Schedule(_matmul())
    c2 = sch2.get_block("C")
    outside = sch2.get_loops(sch2.cache_read(c2, 1, "local"))[0]
    _unchanged_on_error(sch2, lambda: sch2.decompose_reduction(c2, outside),
                        "block C at loop ax0: the loop is not above the block")


# ---------------------------------------------------------------- rfactor
@pytest.mark.parametrize("loop_index, factor_axis, rf_shape", [(1, 0, "[16, 64, 48]"), (0, 2, "[64, 48, 4]"),
                                                                (1, -1, "[64, 48, 16]")])
def test_rfactor_matmul(loop_index, factor_axis, rf_shape):
    func = _matmul()
    sch = tcomp.Schedule(func)
    c = sch.get_block("C")
    _i, _j, k = sch.get_loops(c)
    loops = sch.split(k, [4, 16])
    rf = sch.rfactor(loops[loop_index], factor_axis)
    text = str(sch.func)
    assert sch.get(rf).name == "C_rf"
    assert f"C_rf = alloc(float32{rf_shape}" in text
    assert [iv.kind for iv in sch.get(rf).iter_vars] == ["S", "S"] + (["R", "S"] if loop_index else ["S", "R"])
    assert text.index("block C_rf[") < text.index("block C[")
    assert [b.name for b in sch.get(c).reads] == ["C", "C_rf"]
    _check_matmul(sch)
    _check_replay(func, sch)


@pytest.mark.parametrize("reducer, reference", [(tir.max, np.max), (tir.min, np.min), (tir.sum, np.sum)])
def test_rfactor_row_reductions_then_decompose(reducer, reference):
    func = row_reduce_func(reducer, 24, 64)
    sch = tcomp.Schedule(func)
    c = sch.get_block("C")
    _i, k = sch.get_loops(c)
    _ko, ki = sch.split(k, [None, 8])
    rf = sch.rfactor(ki, 1)
    sch.decompose_reduction(rf, sch.get_loops(rf)[1])
    sch.decompose_reduction(c, sch.get_loops(c)[1])
    x = _rand(24, 64)
    np.testing.assert_allclose(tcomp.build(sch.func)(x), reference(x, axis=1), rtol=1e-5, atol=1e-5)
    _check_replay(func, sch)


def test_rfactor_errors():
    sch = tcomp.Schedule(_matmul(k=37))
    c = sch.get_block("C")
    i, j, k = sch.get_loops(c)
    _unchanged_on_error(sch, lambda: sch.rfactor(j, 0), "loop j of block C: the loop does not feed a reduce")
    _unchanged_on_error(sch, lambda: sch.rfactor(k, 3), "factor_axis 3 is out of range")
    _ko, ki = sch.split(k, [None, 16])
    _unchanged_on_error(sch, lambda: sch.rfactor(ki, 0), "predicate .* limits the reduction loops")
    chain = tcomp.Schedule(chain_func(13, 7))
    b_inner = chain.get_loops(chain.get_block("B"))[1]
    _unchanged_on_error(chain, lambda: chain.rfactor(b_inner, 0), "not a reduction")
    mm = tcomp.Schedule(_matmul())
    c = mm.get_block("C")
    i, j, k = mm.get_loops(c)
    mm.decompose_reduction(c, j)
    _unchanged_on_error(mm, lambda: mm.rfactor(k, 0), "not a reduction")
    _unchanged_on_error(mm, lambda: mm.rfactor(i, 0), "loop i: it must hold exactly one block, it holds 2")
