"""compute_at, reverse_compute_at, compute_inline, reverse_compute_inline, sample_compute_location
and the region analysis behind them (against numpy, on the IR, errors, trace round trips)."""
from __future__ import annotations

import numpy as np
import pytest

import tcomp
from tcomp import tir
from tcomp.schedule import regions
from tcomp.tir.expr import FloatImm, IntImm, Select, logical_and, maximum, minimum
from te_kernels import matmul_func


def _rand(*shape):
    return np.random.default_rng().standard_normal(shape).astype(np.float32)


def _window(rows=8, cols=16):
    """B = A * 2; C[i, j] = B[i, j] + B[i, j + 1] (a window two wide along j)."""
    a = tir.placeholder((rows, cols), "float32", name="A")
    b = tir.compute((rows, cols), lambda i, j: a[i, j] * 2.0, name="B")
    c = tir.compute((rows, cols - 1), lambda i, j: b[i, j] + b[i, j + 1], name="C")
    return tir.create_func([a, c])


def _window_ref(x):
    return x[:, :-1] * 2 + x[:, 1:] * 2


def _matmul_relu(m=64, n=48, k=32):
    return matmul_func(m, n, k, b_name="W", relu=True)


def _elementwise_relu(rows=10, cols=12):
    """B = A * 2 - 1; D = relu(B) + E."""
    a = tir.placeholder((rows, cols), "float32", name="A")
    e = tir.placeholder((rows, cols), "float32", name="E")
    b = tir.compute((rows, cols), lambda i, j: a[i, j] * 2.0 - 1.0, name="B")
    d = tir.compute((rows, cols), lambda i, j: maximum(b[i, j], 0.0) + e[i, j], name="D")
    return tir.create_func([a, e, d])


def _conv(h=14, w=14):
    """P = A padded by one; O = 3x3 correlation of P with K."""
    a = tir.placeholder((h, w), "float32", name="A")
    k = tir.placeholder((3, 3), "float32", name="K")

    def pad(i, j):
        inside = logical_and(i >= 1, i <= h, j >= 1, j <= w)
        clamped = a[minimum(maximum(i - 1, 0), IntImm(h - 1)), minimum(maximum(j - 1, 0), IntImm(w - 1))]
        return Select(inside, clamped, FloatImm(0.0))

    p = tir.compute((h + 2, w + 2), pad, name="P")
    di, dj = tir.reduce_axis(3, name="di"), tir.reduce_axis(3, name="dj")
    o = tir.compute((h, w), lambda i, j: tir.sum(p[i + di, j + dj] * k[di, dj], axis=[di, dj]), name="O")
    return tir.create_func([a, k, o])


def _conv_ref(x, kern):
    h, w = x.shape
    padded = np.pad(x, 1)
    out = np.zeros_like(x)
    for di in range(3):
        for dj in range(3):
            out += padded[di:di + h, dj:dj + w] * kern[di, dj]
    return out


def _round_trip(sch, func):
    replayed = tcomp.Trace.from_json(sch.trace.to_json()).apply_to(func)
    assert str(replayed.func) == str(sch.func)


def _names(sch, block):
    return [sch.get(loop).var.name for loop in sch.get_loops(block)]


# ---------------------------------------------------------------- regions
def test_regions_of_a_window_per_block_and_per_tile():
    func = _window()
    sch = tcomp.Schedule(func)
    c = sch.get_block("C")
    _, j = sch.get_loops(c)
    j0, _ = sch.split(j, [None, 4])
    (read,) = regions.block_read_regions(sch.get(c))
    assert str(read) == "B[0 : 8, 0 : 16]" and read.approximate is None and not read.exact
    (write,) = regions.block_write_regions(sch.get(c))
    assert str(write) == "C[0 : 8, 0 : 15]" and write.exact
    b_buf = read.buffer
    tile = regions.loop_read_region(sch, sch.get(j0), b_buf)
    assert str(tile) == "B[i : 1, (j_0 * 4) : 5]"
    assert regions.loop_write_region(sch, sch.get(j0), b_buf) is None


def test_region_of_a_gather_says_it_is_the_whole_axis():
    a = tir.placeholder((20,), "float32", name="A")
    idx = tir.placeholder((6,), "int64", name="I")
    b = tir.compute((20,), lambda i: a[i] + 1.0, name="B")
    c = tir.compute((6,), lambda i: b[idx[i]], name="C")
    sch = tcomp.Schedule(tir.create_func([a, idx, c]))
    (i,) = sch.get_loops(sch.get_block("C"))
    region = next(r for r in regions.block_read_regions(sch.get(sch.get_block("C"))) if r.buffer.name == "B")
    assert str(region) == "B[0 : 20]" and "I[vi] of B has no known bounds" in region.approximate
    assert str(regions.loop_read_region(sch, sch.get(i), region.buffer)) == "B[I[i] : 1]"  # one element per i


# ---------------------------------------------------------------- compute_at
def test_compute_at_computes_the_window_of_each_tile():
    func = _window()
    sch = tcomp.Schedule(func)
    c = sch.get_block("C")
    _, j = sch.get_loops(c)
    j0, _ = sch.split(j, [None, 4])
    b = sch.get_block("B")
    sch.compute_at(b, j0)
    text = str(sch.func)
    assert "for ax0 in range(5):" in text
    assert "vj = S(16): (ax0 + (j_0 * 4))] where ((ax0 + (j_0 * 4)) < 16)" in text
    assert text.index("block B") < text.index("block C")
    assert _names(sch, b) == ["i", "j_0", "ax0"]
    x = _rand(8, 16)
    np.testing.assert_allclose(tcomp.build(sch.func)(x), _window_ref(x), rtol=1e-6)
    _round_trip(sch, func)


def test_compute_at_innermost_keeps_unit_loops_only_when_asked():
    func = _window()
    for preserve, loops in ((False, ["i", "j", "ax0"]), (True, ["i", "j", "ax0", "ax1"])):
        sch = tcomp.Schedule(func)
        c = sch.get_block("C")
        _, j = sch.get_loops(c)
        b = sch.get_block("B")
        sch.compute_at(b, j, preserve_unit_loops=preserve)
        assert _names(sch, b) == loops
        assert "where" not in str(sch.func)  # j + 1 < 16 is provable for j < 15
        x = _rand(8, 16)
        np.testing.assert_allclose(tcomp.build(sch.func)(x), _window_ref(x), rtol=1e-6)
        _round_trip(sch, func)


def test_three_stage_pipeline_computed_at_nested_tiles():
    a = tir.placeholder((12, 20), "float32", name="A")
    b = tir.compute((12, 20), lambda i, j: a[i, j] + 1.0, name="B")
    c = tir.compute((12, 19), lambda i, j: b[i, j] * b[i, j + 1], name="C")
    d = tir.compute((11, 19), lambda i, j: c[i, j] - c[i + 1, j], name="D")
    func = tir.create_func([a, d])
    sch = tcomp.Schedule(func)
    blk_d = sch.get_block("D")
    i, j = sch.get_loops(blk_d)
    i0, _ = sch.split(i, [None, 4])
    sch.split(j, [None, 8])
    blk_c = sch.get_block("C")
    sch.compute_at(blk_c, i0)
    c_loops = sch.get_loops(blk_c)
    assert _names(sch, blk_c) == ["i_0", "ax0", "ax1"]
    assert "for ax0 in range(5):" in str(sch.func)  # rows i_0*4 .. i_0*4+4 of C
    sch.compute_at(sch.get_block("B"), c_loops[1])
    x = _rand(12, 20)
    bb = x + 1
    cc = bb[:, :-1] * bb[:, 1:]
    np.testing.assert_allclose(tcomp.build(sch.func)(x), cc[:-1] - cc[1:], rtol=1e-5, atol=1e-6)
    _round_trip(sch, func)


def test_compute_at_a_padded_stencil_tile():
    func = _conv()
    sch = tcomp.Schedule(func)
    o = sch.get_block("O")
    i, _, _, _ = sch.get_loops(o)
    i0, _ = sch.split(i, [None, 4])
    sch.compute_at(sch.get_block("P"), i0)
    text = str(sch.func)
    assert "for ax0 in range(6):" in text and "for ax1 in range(16):" in text
    assert "((ax0 + (i_0 * 4)) < 16)" in text  # the last tile is clamped to P's 16 rows
    x, kern = _rand(14, 14), _rand(3, 3)
    np.testing.assert_allclose(tcomp.build(sch.func)(x, kern), _conv_ref(x, kern), rtol=1e-5, atol=1e-5)
    _round_trip(sch, func)


def test_compute_at_a_reduction_producer_keeps_its_reduce_loop():
    func = _row_normalize()
    sch = tcomp.Schedule(func)
    i, _ = sch.get_loops(sch.get_block("O"))
    sch.compute_at(sch.get_block("S"), i)
    text = str(sch.func)
    assert "for ax0 in range(24):" in text and "vi = S(16): i, vr = R(24): ax0" in text
    x = _rand(16, 24)
    np.testing.assert_allclose(tcomp.build(sch.func)(x), x / x.sum(axis=1, keepdims=True), rtol=1e-4)
    _round_trip(sch, func)


def test_compute_at_with_symbolic_extent():
    n = tir.size_var("n")
    a = tir.placeholder((6, n), "float32", name="A")
    b = tir.compute((6, n), lambda i, j: a[i, j] * 2.0, name="B")
    c = tir.compute((6, n - 1), lambda i, j: b[i, j] + b[i, j + 1], name="C")
    func = tir.create_func([a, b, c])  # B is an output too: a symbolic intermediate has no constant size
    sch = tcomp.Schedule(func)
    _, j = sch.get_loops(sch.get_block("C"))
    j0, _ = sch.split(j, [None, 4])
    sch.compute_at(sch.get_block("B"), j0)
    assert "for ax0 in range(5):" in str(sch.func) and "((ax0 + (j_0 * 4)) < n)" in str(sch.func)
    kernel = tcomp.build(sch.func)
    for cols in (2, 13, 16):
        x = _rand(6, cols)
        doubled, window = kernel(x)
        np.testing.assert_allclose(window, _window_ref(x), rtol=1e-6)
        np.testing.assert_allclose(doubled, x * 2)
    _round_trip(sch, func)


def test_compute_at_errors_name_the_blocks_and_leave_the_program_alone():
    a = tir.placeholder((8, 16), "float32", name="A")
    b = tir.compute((8, 16), lambda i, j: a[i, j] * 2.0, name="B")
    c = tir.compute((8, 16), lambda i, j: b[i, j] + 1.0, name="C")
    d = tir.compute((8, 16), lambda i, j: b[i, j] - c[i, j], name="D")
    func = tir.create_func([a, c, d])
    sch = tcomp.Schedule(func)
    blk_b, blk_c = sch.get_block("B"), sch.get_block("C")
    ci, _ = sch.get_loops(blk_c)
    bi, bj = sch.get_loops(blk_b)
    before, steps = str(sch.func), len(sch.trace)
    with pytest.raises(tcomp.ScheduleError, match="block B's output is also read by block D outside loop i"):
        sch.compute_at(blk_b, ci)
    with pytest.raises(tcomp.ScheduleError, match="the loop is inside the block's own loop nest"):
        sch.compute_at(blk_b, bj)
    with pytest.raises(tcomp.ScheduleError, match="no block under loop i reads C"):
        sch.compute_at(blk_c, bi)
    assert str(sch.func) == before and len(sch.trace) == steps


def test_compute_at_into_the_producers_own_loops_is_refused():
    func = _window()
    sch = tcomp.Schedule(func)
    b = sch.get_block("B")
    i, _ = sch.get_loops(sch.get_block("C"))
    sch.compute_at(b, i)
    with pytest.raises(tcomp.ScheduleError, match="cannot compute_at block C under loop ax0: no block under loop "
                                                  "ax0 reads C"):
        sch.compute_at(sch.get_block("C"), sch.get_loops(b)[1])


# ---------------------------------------------------------------- reverse_compute_at
def test_reverse_compute_at_puts_relu_under_the_matmul_tile():
    func = _matmul_relu()
    sch = tcomp.Schedule(func)
    i, j, _ = sch.get_loops(sch.get_block("C"))
    i0, _ = sch.split(i, [None, 16])
    j0, _ = sch.split(j, [None, 16])
    d = sch.get_block("D")
    sch.reverse_compute_at(d, j0)
    assert _names(sch, d) == ["i_0", "i_1", "j_0", "ax0"]
    assert "vj = S(48): (ax0 + (j_0 * 16))" in str(sch.func)
    text = str(sch.func)
    assert text.index("block C") < text.index("block D")
    x, w = _rand(64, 32), _rand(32, 48)
    np.testing.assert_allclose(tcomp.build(sch.func)(x, w), np.maximum(x @ w, 0), rtol=1e-4, atol=1e-4)
    _round_trip(sch, func)
    assert i0 is not None


def test_reverse_compute_at_a_row_tile():
    func = _matmul_relu()
    sch = tcomp.Schedule(func)
    i, _, _ = sch.get_loops(sch.get_block("C"))
    i0, _ = sch.split(i, [None, 16])
    d = sch.get_block("D")
    sch.reverse_compute_at(d, i0)
    assert "for ax0 in range(16):" in str(sch.func) and "for ax1 in range(48):" in str(sch.func)
    x, w = _rand(64, 32), _rand(32, 48)
    np.testing.assert_allclose(tcomp.build(sch.func)(x, w), np.maximum(x @ w, 0), rtol=1e-4, atol=1e-4)
    _round_trip(sch, func)


def test_reverse_compute_at_errors():
    sch = tcomp.Schedule(_window())
    b, c = sch.get_block("B"), sch.get_block("C")
    bi, _ = sch.get_loops(b)
    with pytest.raises(tcomp.ScheduleError, match="must read B at one element"):
        sch.reverse_compute_at(c, bi)
    ci, _ = sch.get_loops(c)
    with pytest.raises(tcomp.ScheduleError, match="loop is inside the block's own loop nest"):
        sch.reverse_compute_at(c, ci)


def test_reverse_compute_at_refuses_a_strided_region():
    func = _matmul_relu()
    sch = tcomp.Schedule(func)
    i, _, _ = sch.get_loops(sch.get_block("C"))
    i0, i1 = sch.split(i, [4, 16])
    sch.reorder(i1, i0)  # under i_1, C writes rows i_1, i_1 + 16, ...: not a dense tile
    with pytest.raises(tcomp.ScheduleError, match=r"the region of C written under the loop \(C\[i_1 : 49"):
        sch.reverse_compute_at(sch.get_block("D"), i1)


# ---------------------------------------------------------------- compute_inline
def test_compute_inline_substitutes_the_window():
    func = _window()
    sch = tcomp.Schedule(func)
    sch.compute_inline(sch.get_block("B"))
    text = str(sch.func)
    assert "C[vi, vj] = ((A[vi, vj] * 2.0) + (A[vi, (vj + 1)] * 2.0))" in text
    assert "alloc" not in text and "block B" not in text
    x = _rand(8, 16)
    np.testing.assert_allclose(tcomp.build(sch.func)(x), _window_ref(x), rtol=1e-6)
    _round_trip(sch, func)


def test_compute_inline_the_padding_of_a_stencil():
    func = _conv()
    sch = tcomp.Schedule(func)
    sch.compute_inline(sch.get_block("P"))
    assert "block P" not in str(sch.func)
    x, kern = _rand(14, 14), _rand(3, 3)
    np.testing.assert_allclose(tcomp.build(sch.func)(x, kern), _conv_ref(x, kern), rtol=1e-5, atol=1e-5)
    _round_trip(sch, func)


def test_compute_inline_errors():
    sch = tcomp.Schedule(_matmul_relu())
    with pytest.raises(tcomp.ScheduleError, match="cannot compute_inline block C: it is a reduction"):
        sch.compute_inline(sch.get_block("C"))
    with pytest.raises(tcomp.ScheduleError, match="block D: its output D is a function parameter"):
        sch.compute_inline(sch.get_block("D"))
    a = tir.placeholder((8,), "float32", name="A")
    b = tir.compute((8,), lambda i: a[i] + 1.0, name="B")
    c = tir.compute((8,), lambda i: b[i] * 2.0, name="C")
    sch = tcomp.Schedule(tir.create_func([a, b, c]))
    with pytest.raises(tcomp.ScheduleError, match="its output B is a function parameter"):
        sch.compute_inline(sch.get_block("B"))
    assert len(sch.trace) == 1


# ---------------------------------------------------------------- reverse_compute_inline
def test_reverse_compute_inline_folds_relu_into_the_producer():
    func = _elementwise_relu()
    sch = tcomp.Schedule(func)
    b = sch.get_block("B")
    sch.reverse_compute_inline(sch.get_block("D"))
    text = str(sch.func)
    assert "block D" not in text and "alloc" not in text
    assert "D[vi, vj] = (max(((A[vi, vj] * 2.0) - 1.0), 0.0) + E[vi, vj])" in text
    assert sch.get(b).writes == tuple(p for p in sch.func.params if p.name == "D")
    x, e = _rand(10, 12), _rand(10, 12)
    np.testing.assert_allclose(tcomp.build(sch.func)(x, e), np.maximum(x * 2 - 1, 0) + e, rtol=1e-6)
    _round_trip(sch, func)


def test_reverse_compute_inline_through_a_transpose_with_a_unit_axis():
    """out[0, j, i] = max(C[i, j], 0): the consumer's unit batch iterator indexes nothing of C."""
    a = tir.placeholder((6, 10), "float32", name="A")
    c = tir.compute((6, 10), lambda i, j: a[i, j] * 2.0, name="C")
    out = tir.compute((1, 10, 6), lambda n, j, i: maximum(c[i, j], 0.0), name="out")
    func = tir.create_func([a, out])
    sch = tcomp.Schedule(func)
    sch.reverse_compute_inline(sch.get_block("out"))
    text = str(sch.func)
    assert "block out" not in text and "alloc" not in text
    x = _rand(6, 10)
    np.testing.assert_allclose(tcomp.build(sch.func)(x), np.maximum(x * 2, 0).T[None], rtol=1e-6)
    _round_trip(sch, func)

    two = tir.compute((2, 10, 6), lambda n, j, i: maximum(c[i, j], 0.0), name="out")  # extent 2: refused
    sch = tcomp.Schedule(tir.create_func([a, two]))
    with pytest.raises(tcomp.ScheduleError, match="every iterator of out must index C"):
        sch.reverse_compute_inline(sch.get_block("out"))


def test_reverse_compute_inline_errors():
    sch = tcomp.Schedule(_matmul_relu())
    with pytest.raises(tcomp.ScheduleError, match="its producer C is a reduction"):
        sch.reverse_compute_inline(sch.get_block("D"))
    sch = tcomp.Schedule(_window())
    with pytest.raises(tcomp.ScheduleError, match="block C must read B at one element"):
        sch.reverse_compute_inline(sch.get_block("C"))
    with pytest.raises(tcomp.ScheduleError, match="block B: it must read the output of exactly one producer"):
        sch.reverse_compute_inline(sch.get_block("B"))


# ---------------------------------------------------------------- sample_compute_location
def test_sample_compute_location_picks_legal_loops_and_replays():
    func = _window()
    seen = set()
    for seed in range(12):
        sch = tcomp.Schedule(func, seed=seed)
        c = sch.get_block("C")
        _, j = sch.get_loops(c)
        sch.split(j, [None, 4])
        b = sch.get_block("B")
        where = sch.sample_compute_location(b)
        sch.compute_at(b, where)  # at root: B stays where it is
        seen.add(sch.trace.instructions[-2].decision)
        x = _rand(8, 16)
        np.testing.assert_allclose(tcomp.build(sch.func)(x), _window_ref(x), rtol=1e-6)
        _round_trip(sch, func)
    assert seen == {0, 1, 2, 3}  # root, i, j_0, j_1


def test_changed_compute_location_decisions_replay_between_root_and_loops():
    func = _window()
    sch = tcomp.Schedule(func, seed=0)
    b = sch.get_block("B")
    sch.compute_at(b, sch.sample_compute_location(b))
    position = next(n for n, inst in enumerate(sch.trace.instructions) if inst.kind == "sample_compute_location")
    programs = set()
    for decision in range(3):  # root, i, j
        replayed = sch.trace.apply_to(func, decisions={position: decision})
        x = _rand(8, 16)
        np.testing.assert_allclose(tcomp.build(replayed.func)(x), _window_ref(x), rtol=1e-6)
        programs.add(str(replayed.func))
    assert len(programs) == 3


def test_sample_compute_location_rejects_a_decision_out_of_range():
    func = _window()
    sch = tcomp.Schedule(func)
    sch.sample_compute_location(sch.get_block("B"))
    with pytest.raises(tcomp.ScheduleError, match="decision 7 is not one of the 3 candidates"):
        sch.trace.apply_to(func, decisions={1: 7})


def _row_normalize():
    a = tir.placeholder((16, 24), "float32", name="A")
    r = tir.reduce_axis(24, name="r")
    s = tir.compute((16,), lambda i: tir.sum(a[i, r], axis=r), name="S")
    o = tir.compute((16, 24), lambda i, j: a[i, j] / s[i], name="O")
    return tir.create_func([a, o])


def test_compute_at_under_parallel_loops_only_where_iterations_do_not_share_a_reduction():
    func = _row_normalize()
    sch = tcomp.Schedule(func)
    i, j = sch.get_loops(sch.get_block("O"))
    sch.parallel(i)
    s = sch.get_block("S")
    with pytest.raises(tcomp.ScheduleError, match="vectorized"):
        sch.vectorize(j) or sch.compute_at(s, j)
    sch = tcomp.Schedule(func)
    i, j = sch.get_loops(sch.get_block("O"))
    sch.parallel(j)
    with pytest.raises(tcomp.ScheduleError, match="iterations of the parallel loop j would accumulate into the same "
                                                  "elements of S"):
        sch.compute_at(sch.get_block("S"), j)
    sch = tcomp.Schedule(func)
    i, _ = sch.get_loops(sch.get_block("O"))
    sch.parallel(i)
    sch.compute_at(sch.get_block("S"), i)  # row i's sum belongs to iteration i alone
    x = _rand(16, 24)
    np.testing.assert_allclose(tcomp.build(sch.func)(x), x / x.sum(axis=1, keepdims=True), rtol=1e-4)
    _round_trip(sch, func)


def test_compute_at_again_moves_the_nest_deeper():
    func = _window()
    sch = tcomp.Schedule(func)
    c, b = sch.get_block("C"), sch.get_block("B")
    i, j = sch.get_loops(c)
    j0, _ = sch.split(j, [None, 4])
    sch.compute_at(b, i)
    assert "for ax0 in range(16):" in str(sch.func)
    sch.compute_at(b, j0)
    assert _names(sch, b) == ["i", "j_0", "ax0"] and "range(16)" not in str(sch.func)
    x = _rand(8, 16)
    np.testing.assert_allclose(tcomp.build(sch.func)(x), _window_ref(x), rtol=1e-6)
    _round_trip(sch, func)


def test_a_store_at_shifted_indices_is_refused():
    from tcomp.tir.expr import Buffer, Var
    from tcomp.tir.stmt import Allocate, BufferStore, For, PrimFunc, block, seq

    a, b, c = Buffer("A", (8,), "float32"), Buffer("B", (9,), "float32"), Buffer("C", (8,), "float32")
    i, j = Var("i"), Var("j")
    produce = For(i, 8, block("B", [("S", 8, i)], lambda v: BufferStore(b, a[v] * 2.0, (v + 1,))))
    consume = For(j, 8, block("C", [("S", 8, j)], lambda v: BufferStore(c, b[v + 1], (v,))))
    sch = tcomp.Schedule(PrimFunc("main", (a, c), Allocate(b, seq(produce, consume))))
    with pytest.raises(tcomp.ScheduleError, match="block B: it must store B at its iterators"):
        sch.compute_inline(sch.get_block("B"))
    (loop,) = sch.get_loops(sch.get_block("C"))
    with pytest.raises(tcomp.ScheduleError, match="it must store B at its spatial iterators, one per axis"):
        sch.compute_at(sch.get_block("B"), loop)
