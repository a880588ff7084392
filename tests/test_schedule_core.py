"""The Schedule API's core: compute definitions, handles, traces, build (against numpy)."""
from __future__ import annotations

import numpy as np
import pytest

import tcomp
from tcomp import tir
from te_kernels import matmul_func


def _matmul(m=100, n=96, k=None):
    return matmul_func(m, n, k if k is not None else tir.size_var("K"))


def _inputs(m=100, n=96, k=37):
    rng = np.random.default_rng()
    return rng.standard_normal((m, k)).astype(np.float32), rng.standard_normal((k, n)).astype(np.float32)


def test_unscheduled_func_runs_with_symbolic_extent():
    kernel = tcomp.build(_matmul())
    for k in (1, 37):
        a, b = _inputs(k=k)
        np.testing.assert_allclose(kernel(a, b), a @ b, rtol=1e-5, atol=1e-5)


def test_compute_chain_allocates_intermediates_and_orders_stages():
    a = tir.placeholder((13, 7), "float32", name="A")
    b = tir.compute((13, 7), lambda i, j: a[i, j] * 2.0, name="B")
    r = tir.reduce_axis(7, name="r")
    c = tir.compute((13,), lambda i: tir.max(b[i, r], axis=r), name="C")
    func = tir.create_func([a, c])
    text = str(func)
    assert 'B = alloc(float32[13, 7], scope="global")' in text and text.index("block B") < text.index("block C")
    x = np.random.default_rng().standard_normal((13, 7)).astype(np.float32)
    np.testing.assert_allclose(tcomp.build(func)(x), (x * 2).max(axis=1), rtol=1e-6)


def test_split_keeps_handles_and_guards_tails():
    sch = tcomp.Schedule(_matmul())
    block = sch.get_block("C")
    i, j, k = sch.get_loops(block)
    io, ii = sch.split(i, [None, 16])
    assert [sch.get(loop).var.name for loop in sch.get_loops(block)] == ["i_0", "i_1", "j", "k"]
    assert sch.get(j) is sch.get(sch.get_loops(block)[2])  # untouched loops keep their handles
    assert "where (((i_0 * 16) + i_1) < 100)" in str(sch.func)
    with pytest.raises(tcomp.ScheduleError, match="no longer exists"):
        sch.split(i, [2, None])
    a, b = _inputs()
    np.testing.assert_allclose(tcomp.build(sch.func)(a, b), a @ b, rtol=1e-5, atol=1e-5)


def test_trace_round_trips_through_json_and_replays_identically():
    func = _matmul()
    sch = tcomp.Schedule(func)
    i, j, k = sch.get_loops(sch.get_block("C"))
    sch.split(j, [4, None, 8])
    text = sch.trace.to_json()
    replayed = tcomp.Trace.from_json(text).apply_to(func)
    assert str(replayed.func) == str(sch.func)
    assert replayed.trace.to_json() == text


def test_errors_name_the_block_or_loop():
    sch = tcomp.Schedule(_matmul())
    with pytest.raises(tcomp.ScheduleError, match="no block named 'D'"):
        sch.get_block("D")
    i, _, _ = sch.get_loops(sch.get_block("C"))
    with pytest.raises(tcomp.ScheduleError, match="loop i: the factors cover 12 of its 100"):
        sch.split(i, [3, 4])
    assert len(sch.trace) == 2  # failed calls are not recorded


def test_build_checks_arrays():
    kernel = tcomp.build(_matmul())
    a, b = _inputs()
    with pytest.raises(tcomp.InputError, match="B axis 0 must be 37"):
        kernel(a, b[:5])
    with pytest.raises(tcomp.InputError, match="A must be float32"):
        kernel(a.astype(np.float64), b)


def test_symbolic_and_large_intermediates_are_heap_allocated():
    n = tir.size_var("n")
    for rows in (n, 700):  # a symbolic intermediate, and one of 700 x 64 floats (175 KiB)
        a = tir.placeholder((rows, 64), "float32", name="A")
        b = tir.compute((rows, 64), lambda i, j: a[i, j] * 3.0, name="B")
        c = tir.compute((rows, 64), lambda i, j: b[i, j] + a[i, j], name="C")
        kernel = tcomp.build(tir.create_func([a, c]))
        x = np.random.default_rng().standard_normal((700, 64)).astype(np.float32)
        np.testing.assert_allclose(kernel(x), x * 4.0, rtol=1e-6)


def test_a_trace_with_sampling_instructions_is_a_design_space():
    func = _matmul(m=128, n=96, k=64)
    sch = tcomp.Schedule(func, seed=1)
    i, j, _ = sch.get_loops(sch.get_block("C"))
    sch.split(i, sch.sample_perfect_tile(i, n=3, max_innermost_factor=8))
    sch.split(j, sch.sample_perfect_tile(j, n=2, max_innermost_factor=16))
    programs = {str(sch.trace.apply_to(func, resample=True, seed=seed).func) for seed in range(20)}
    assert len(programs) > 1
    assert str(sch.trace.apply_to(func).func) == str(sch.func)  # without resample: the recorded decisions
    a, b = _inputs(128, 96, 64)
    for seed in range(3):
        sampled = sch.trace.apply_to(func, resample=True, seed=seed)
        np.testing.assert_allclose(tcomp.build(sampled.func)(a, b), a @ b, rtol=1e-5, atol=1e-5)
