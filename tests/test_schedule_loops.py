"""Loop primitives (fuse, reorder, parallel, vectorize, unroll, bind, annotate) and sampling
instructions of the Schedule API, checked against numpy, structurally, and by trace replay."""
from __future__ import annotations

import numpy as np
import pytest

import tcomp
from tcomp import tir
from tcomp.tir.stmt import Evaluate, For, SeqStmt
from te_kernels import chain_func, matmul_func


def _matmul(m=64, n=48, k=32):
    return matmul_func(m, n, k)


def _add(m=None, n=24):
    m = m if m is not None else tir.size_var("M")
    a = tir.placeholder((m, n), "float32", name="A")
    b = tir.compute((m, n), lambda i, j: a[i, j] * 2.0 + 1.0, name="B")
    return tir.create_func([a, b])


def _rand(*shape):
    return np.random.default_rng().standard_normal(shape).astype(np.float32)


def _check_matmul(func, m=64, n=48, k=32):
    a, b = _rand(m, k), _rand(k, n)
    np.testing.assert_allclose(tcomp.build(func)(a, b), a @ b, rtol=1e-4, atol=1e-4)


def _check_add(func, m=13, n=24):
    a = _rand(m, n)
    np.testing.assert_allclose(tcomp.build(func)(a), a * 2 + 1, rtol=1e-6)


def _round_trip(func, sch):
    replayed = tcomp.Trace.from_json(sch.trace.to_json()).apply_to(func)
    assert str(replayed.func) == str(sch.func)
    return replayed


def _loop_names(sch, block="C"):
    return [sch.get(loop).var.name for loop in sch.get_loops(sch.get_block(block))]


# ---------------------------------------------------------------- fuse
def test_fuse_spatial_loops():
    func = _matmul()
    _check_matmul(func)
    sch = tcomp.Schedule(func)
    i, j, k = sch.get_loops(sch.get_block("C"))
    fused = sch.fuse(i, j)
    assert _loop_names(sch) == ["i_j_fused", "k"]
    assert sch.get(fused).extent == tir.expr.IntImm(64 * 48)
    text = str(sch.func)
    assert "vi = S(64): (i_j_fused // 48)" in text and "vj = S(48): (i_j_fused % 48)" in text
    assert sch.get(k) is sch.get(sch.get_loops(sch.get_block("C"))[1])
    _check_matmul(sch.func)
    _round_trip(func, sch)


def test_fuse_three_loops_with_symbolic_extent():
    func = _add()
    sch = tcomp.Schedule(func)
    i, j = sch.get_loops(sch.get_block("B"))
    jo, ji = sch.split(j, [None, 4])
    fused = sch.fuse(i, jo, ji)
    assert "for i_j_0_j_1_fused in range((M * 24))" in str(sch.func)
    assert [sch.get(loop) for loop in sch.get_loops(sch.get_block("B"))] == [sch.get(fused)]
    for m in (1, 13):
        _check_add(sch.func, m=m)
    _round_trip(func, sch)


def test_fuse_divides_by_a_symbolic_inner_extent():
    func = _add()
    sch = tcomp.Schedule(func)
    i, j = sch.get_loops(sch.get_block("B"))
    sch.reorder(j, i)
    sch.fuse(j, i)
    assert "vi = S(M): (j_i_fused % M), vj = S(24): (j_i_fused // M)" in str(sch.func)
    for m in (1, 7):
        _check_add(sch.func, m=m)
    _round_trip(func, sch)


def test_fuse_errors():
    sch = tcomp.Schedule(_matmul())
    i, j, k = sch.get_loops(sch.get_block("C"))
    with pytest.raises(tcomp.ScheduleError, match="loop k cannot fuse with i: it is not directly inside it"):
        sch.fuse(i, k)
    with pytest.raises(tcomp.ScheduleError, match="give the loops outermost first"):
        sch.fuse(j, i)
    with pytest.raises(tcomp.ScheduleError, match="a loop appears twice"):
        sch.fuse(i, i)
    sch.parallel(i)
    with pytest.raises(tcomp.ScheduleError, match="fuse of loop i: it is parallel; fuse before changing its kind"):
        sch.fuse(i, j)
    assert [inst.kind for inst in sch.trace.instructions] == ["get_block", "get_loops", "parallel"]


# ---------------------------------------------------------------- reorder
def test_reorder_keeps_handles_and_result():
    func = _matmul()
    sch = tcomp.Schedule(func)
    i, j, k = sch.get_loops(sch.get_block("C"))
    loop_i, loop_j, loop_k = sch.get(i), sch.get(j), sch.get(k)
    sch.reorder(k, i)
    assert _loop_names(sch) == ["k", "j", "i"]
    assert [sch.get(loop) for loop in (i, j, k)] == [loop_i, loop_j, loop_k]
    _check_matmul(sch.func)
    sch.reorder(j, i, k)  # loops listed in any current order
    assert _loop_names(sch) == ["j", "i", "k"]
    _check_matmul(sch.func)
    _round_trip(func, sch)


def test_reorder_after_split_tiles_the_nest():
    func = _matmul()
    sch = tcomp.Schedule(func)
    i, j, k = sch.get_loops(sch.get_block("C"))
    io, ii = sch.split(i, [None, 8])
    jo, ji = sch.split(j, [None, 16])
    sch.reorder(io, jo, k, ii, ji)
    assert _loop_names(sch) == ["i_0", "j_0", "k", "i_1", "j_1"]
    _check_matmul(sch.func)
    _round_trip(func, sch)


def test_reorder_errors():
    sch = tcomp.Schedule(chain_func(8, 6))
    bi, bj = sch.get_loops(sch.get_block("B"))
    ci, cj = sch.get_loops(sch.get_block("C"))
    with pytest.raises(tcomp.ScheduleError, match="not on one chain"):
        sch.reorder(bi, cj)
    with pytest.raises(tcomp.ScheduleError, match="a loop appears twice"):
        sch.reorder(bi, bj, bi)
    sch.vectorize(cj)
    with pytest.raises(tcomp.ScheduleError, match="j is vectorized and would enclose loop i"):
        sch.reorder(cj, ci)
    nest = tcomp.Schedule(_matmul())
    i, j, k = nest.get_loops(nest.get_block("C"))
    loop_j = nest.get(j)
    loop_j.body = SeqStmt((loop_j.body, Evaluate(tir.expr.IntImm(0))))  # j holds k and another statement
    with pytest.raises(tcomp.ScheduleError, match="between i and k is not perfect .the body of loop j"):
        nest.reorder(k, i)


# ---------------------------------------------------------------- parallel / vectorize / unroll
def test_parallel_vectorize_unroll_elementwise():
    func = _add()
    sch = tcomp.Schedule(func)
    i, j = sch.get_loops(sch.get_block("B"))
    jo, ji = sch.split(j, [None, 8])
    sch.parallel(i)
    sch.unroll(jo)
    sch.vectorize(ji)
    assert [sch.get(loop).kind for loop in (i, jo, ji)] == ["parallel", "unrolled", "vectorized"]
    text = str(sch.func)
    assert "for i in parallel(M)" in text and "for j_1 in vectorized(8)" in text and "unrolled(3)" in text
    for m in (1, 13, 40):
        _check_add(sch.func, m=m)
    _round_trip(func, sch)


def test_vectorize_with_tail_predicate():
    func = _add(m=5, n=30)
    sch = tcomp.Schedule(func)
    _, j = sch.get_loops(sch.get_block("B"))
    _, ji = sch.split(j, [None, 8])
    sch.vectorize(ji)
    assert "where" in str(sch.func)
    _check_add(sch.func, m=5, n=30)


def test_loop_kind_errors():
    sch = tcomp.Schedule(_matmul())
    i, j, k = sch.get_loops(sch.get_block("C"))
    with pytest.raises(tcomp.ScheduleError, match="parallel of loop k: it feeds the reduce iterator vk of block C"):
        sch.parallel(k)
    with pytest.raises(tcomp.ScheduleError, match="vectorize of loop j: it contains loop k"):
        sch.vectorize(j)
    with pytest.raises(tcomp.ScheduleError, match="vectorize of loop k: it feeds the reduce iterator"):
        sch.vectorize(k)
    sch.unroll(k)
    with pytest.raises(tcomp.ScheduleError, match="parallel of loop k: it is unrolled already"):
        sch.parallel(k)
    with pytest.raises(tcomp.ScheduleError, match="split of loop k: it is unrolled"):
        sch.split(k, [2, None])
    _check_matmul(sch.func)
    sym = tcomp.Schedule(_add())
    i, j = sym.get_loops(sym.get_block("B"))
    sym.reorder(j, i)
    with pytest.raises(tcomp.ScheduleError, match="vectorize of loop i: its extent M is not a constant"):
        sym.vectorize(i)


def test_parallel_refuses_loop_no_block_depends_on():
    a = tir.placeholder((8,), "float32", name="A")
    b = tir.compute((8,), lambda i: a[i] + 1.0, name="B")
    sch = tcomp.Schedule(tir.create_func([a, b]))
    (i,) = sch.get_loops(sch.get_block("B"))
    loop = sch.get(i)
    loop.body = For(tir.expr.Var("t"), 4, loop.body)  # a loop that feeds no iterator
    t = sch.get_loops(sch.get_block("B"))[-1]
    for primitive in (sch.parallel, sch.vectorize):
        with pytest.raises(tcomp.ScheduleError, match="no iterator of block B depends on it"):
            primitive(t)


# ---------------------------------------------------------------- bind
def test_bind_sets_thread_tags_and_checks():
    func = _matmul()
    sch = tcomp.Schedule(func)
    i, j, k = sch.get_loops(sch.get_block("C"))
    sch.bind(i, "blockIdx.x")
    sch.bind(j, "threadIdx.x")
    assert (sch.get(i).kind, sch.get(i).thread_tag) == ("thread_binding", "blockIdx.x")
    assert 'for j in thread_binding(48, "threadIdx.x")' in str(sch.func)
    with pytest.raises(tcomp.ScheduleError, match="unknown thread axis 'warp.x'"):
        sch.bind(k, "warp.x")
    with pytest.raises(tcomp.ScheduleError, match="bind to blockIdx.y of loop k: it feeds the reduce iterator"):
        sch.bind(k, "blockIdx.y")
    with pytest.raises(tcomp.ScheduleError, match="loop j nested with it is bound to threadIdx.x already"):
        sch.bind(k, "threadIdx.x")
    with pytest.raises(tcomp.ScheduleError, match="bind of loop i: it is bound to blockIdx.x already"):
        sch.bind(i, "blockIdx.y")
    with pytest.raises(tcomp.TcompError, match="bound to blockIdx.x, which the cpu target has not"):
        tcomp.build(sch.func)
    _round_trip(func, sch)


# ---------------------------------------------------------------- annotate
def test_annotate_and_unannotate_blocks_and_loops():
    func = _matmul()
    sch = tcomp.Schedule(func)
    block = sch.get_block("C")
    i, j, _ = sch.get_loops(block)
    sch.annotate(block, "meta_schedule.tiling", "SSRSRS")
    sch.annotate(i, "pragma_auto_unroll_max_step", 64)
    assert sch.get(block).annotations == {"meta_schedule.tiling": "SSRSRS"}
    assert sch.get(i).annotations == {"pragma_auto_unroll_max_step": 64}
    replayed = _round_trip(func, sch)
    assert replayed.get(tcomp.schedule.BlockRV(0)).annotations == {"meta_schedule.tiling": "SSRSRS"}
    sch.unannotate(i, "pragma_auto_unroll_max_step")
    assert sch.get(i).annotations == {}
    with pytest.raises(tcomp.ScheduleError, match="unannotate of block C: it has no annotation 'x'"):
        sch.unannotate(block, "x")
    with pytest.raises(tcomp.ScheduleError, match="the key must be a non-empty string"):
        sch.annotate(j, "", 1)
    _check_matmul(sch.func)
    _round_trip(func, sch)


# ---------------------------------------------------------------- sampling
def test_sample_perfect_tile_products_over_seeds():
    func = _matmul(m=96)
    seen = set()
    for seed in range(60):
        sch = tcomp.Schedule(func, seed=seed)
        i, _, _ = sch.get_loops(sch.get_block("C"))
        factors = sch.sample_perfect_tile(i, 3, max_innermost_factor=8)
        assert len(factors) == 3 and int(np.prod(factors)) == 96 and factors[-1] <= 8
        assert all(isinstance(f, tcomp.schedule.IntRV) for f in factors)
        seen.add(tuple(factors))
    assert len(seen) > 5
    first = tcomp.Schedule(func, seed=3)
    second = tcomp.Schedule(func, seed=3)
    for sch in (first, second):
        sch.sample_perfect_tile(sch.get_loops(sch.get_block("C"))[0], 4)
    assert first.trace.to_json() == second.trace.to_json()


def _tiled(func, seed):
    sch = tcomp.Schedule(func, seed=seed)
    i, _, k = sch.get_loops(sch.get_block("C"))
    i_tiles = sch.sample_perfect_tile(i, 2, max_innermost_factor=16)
    io, ii = sch.split(i, i_tiles)
    unroll = sch.sample_categorical([1, 2, 4], [0.2, 0.3, 0.5])
    ko, ki = sch.split(k, [None, unroll])
    sch.reorder(io, ko, ii, ki)
    return sch


def test_sampled_trace_replays_and_decisions_can_be_changed():
    func = _matmul()
    sch = _tiled(func, seed=7)
    _check_matmul(sch.func)
    trace = tcomp.Trace.from_json(sch.trace.to_json())
    assert sorted(trace.decisions) == [2, 4]
    assert str(trace.apply_to(func).func) == str(sch.func)
    changed = trace.apply_to(func, decisions={2: [4, 16], 4: 0})
    assert changed.trace.decisions == {2: [4, 16], 4: 0}
    loops = changed.loops_above(changed.blocks()[0])
    assert [(loop.var.name, loop.extent.value) for loop in loops] == [
        ("i_0", 4), ("k_0", 32), ("j", 48), ("i_1", 16), ("k_1", 1)]
    _check_matmul(changed.func)


def test_sampling_errors():
    func = _matmul()
    sch = tcomp.Schedule(func)
    i, _, _ = sch.get_loops(sch.get_block("C"))
    sch.sample_perfect_tile(i, 2)
    trace = sch.trace
    with pytest.raises(tcomp.ScheduleError, match=r"decision \[3, 5\] multiplies to 15, not the extent 64"):
        trace.apply_to(func, decisions={2: [3, 5]})
    with pytest.raises(tcomp.ScheduleError, match="innermost factor 32 above max_innermost_factor=16"):
        trace.apply_to(func, decisions={2: [2, 32]})
    with pytest.raises(tcomp.ScheduleError, match="is not a list of 2 positive ints"):
        trace.apply_to(func, decisions={2: [64]})
    sym = tcomp.Schedule(_add())
    mi, _ = sym.get_loops(sym.get_block("B"))
    with pytest.raises(tcomp.ScheduleError, match="its extent M is not a constant"):
        sym.sample_perfect_tile(mi, 2)
    with pytest.raises(tcomp.ScheduleError, match="as many probabilities as candidates"):
        sch.sample_categorical([1, 2], [1.0])
    with pytest.raises(tcomp.ScheduleError, match="non-negative numbers with a positive sum"):
        sch.sample_categorical([1, 2], [0.0, 0.0])
    sch.sample_categorical([1, 2, 3], [0.0, 1.0, 0.0])
    assert sch.trace.instructions[-1].decision == 1
    with pytest.raises(tcomp.ScheduleError, match="decision 3 is not an index"):
        sch.trace.apply_to(func, decisions={3: 3})


# ---------------------------------------------------------------- a realistic schedule
def test_matmul_128_tiled_parallel_vectorized():
    func = _matmul(128, 128, 128)
    sch = tcomp.Schedule(func)
    i, j, k = sch.get_loops(sch.get_block("C"))
    io, ii = sch.split(i, [None, 8])
    jo, ji = sch.split(j, [None, 16])
    ko, ki = sch.split(k, [None, 4])
    sch.reorder(io, jo, ko, ki, ii, ji)
    ij = sch.fuse(io, jo)
    sch.parallel(ij)
    sch.unroll(ki)
    sch.vectorize(ji)
    text = str(sch.func)
    assert "for i_0_j_0_fused in parallel(128)" in text and "for j_1 in vectorized(16)" in text
    a, b = _rand(128, 128), _rand(128, 128)
    kernel = tcomp.build(sch.func)
    c = kernel(a, b)
    np.testing.assert_allclose(c, a @ b, rtol=1e-4, atol=1e-4)
    assert kernel.time(a, b, c, repeat=3, warmup=1) > 0
    _round_trip(func, sch)
