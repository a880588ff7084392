"""design_space: sketches for matmul (static, symbolic M, with a relu epilogue), batch matmul,
row reductions, an elementwise chain, a conv2d and an int8 VNNI GEMM; every sketch sampled with
several seeds builds and matches numpy; the structure is what the rules say."""
from __future__ import annotations

import numpy as np
import pytest

import tcomp
from tcomp import tir
from tcomp.schedule.intrinsics import list_intrinsics
from tcomp.schedule.window import guarded_load
from tcomp.tir.expr import Cmp, FloatImm, IntImm, Select, call, cast, logical_and, maximum, minimum
from tcomp.tuning.space import design_space
from te_kernels import matmul_func, row_reduce_func

SEEDS = range(4)


def _rand(*shape):
    return np.random.default_rng().standard_normal(shape).astype(np.float32)


def _matmul(m=64, n=48, k=32, relu=False):
    return matmul_func(m, n, k, b_name="W", relu=relu)


def _batch_matmul(b=3, m=32, n=32, k=16):
    a = tir.placeholder((b, m, k), "float32", name="A")
    w = tir.placeholder((b, k, n), "float32", name="W")
    r = tir.reduce_axis(k, name="k")
    c = tir.compute((b, m, n), lambda x, i, j: tir.sum(a[x, i, r] * w[x, r, j], axis=r), name="C")
    return tir.create_func([a, w, c])


def _elementwise(rows=20, cols=36):
    a = tir.placeholder((rows, cols), "float32", name="A")
    e = tir.placeholder((cols,), "float32", name="E")
    b = tir.compute((rows, cols), lambda i, j: a[i, j] * 2.0 - 1.0, name="B")
    c = tir.compute((rows, cols), lambda i, j: maximum(b[i, j], 0.0) + e[j], name="C")
    d = tir.compute((rows, cols), lambda i, j: c[i, j] * c[i, j], name="D")
    return tir.create_func([a, e, d])


def _conv2d(n=1, ci=4, co=8, h=10, w=12):
    """NCHW, 3x3, stride 1; the input placeholder is padded already (h + 2, w + 2)."""
    x = tir.placeholder((n, ci, h + 2, w + 2), "float32", name="X")
    wt = tir.placeholder((co, ci, 3, 3), "float32", name="Wt")
    rc, ry, rx = tir.reduce_axis(ci, "rc"), tir.reduce_axis(3, "ry"), tir.reduce_axis(3, "rx")
    o = tir.compute((n, co, h, w), lambda b, f, i, j: tir.sum(
        x[b, rc, i + ry, j + rx] * wt[f, rc, ry, rx], axis=[rc, ry, rx]), name="O")
    return tir.create_func([x, wt, o])


def _conv_ref(x, wt):
    n, _, hp, wp = x.shape
    out = np.zeros((n, wt.shape[0], hp - 2, wp - 2), np.float32)
    for ry in range(3):
        for rx in range(3):
            out += np.einsum("bchw,fc->bfhw", x[:, :, ry:ry + hp - 2, rx:rx + wp - 2], wt[:, :, ry, rx])
    return out


def _vnni_gemm(n=64):
    """u8 x s8 -> s32 with B packed [N/16, K/4, 16, 4] (benchmarks/tensorize_gemm.py)."""
    a = tir.placeholder((n, n), "uint8", name="A")
    b = tir.placeholder((n // 16, n // 4, 16, 4), "int8", name="B")
    k = tir.reduce_axis(n, name="k")
    c = tir.compute((n, n), lambda i, j: tir.sum(
        cast("int32", a[i, k]) * cast("int32", b[j // 16, k // 4, j % 16, k % 4]), axis=k), name="C")
    return tir.create_func([a, b, c])


def _check(func, inputs, expected, seeds=SEEDS, rtol=1e-4, atol=1e-4) -> list:
    """Every sketch, sampled with each seed, builds and matches ``expected``; returns the
    programs (one per sketch, the last seed's) as text."""
    sketches = design_space(func)
    assert sketches
    texts = []
    for trace in sketches:
        for seed in seeds:
            sch = trace.apply_to(func, resample=True, seed=seed)
            out = tcomp.build(sch)(*inputs)
            np.testing.assert_allclose(out, expected, rtol=rtol, atol=atol, err_msg=f"{trace}\n{sch.func}")
        texts.append(str(sch.func))
    return texts


# ---------------------------------------------------------------- matmul family
def test_matmul_sketches_tile_cache_parallel_vectorize():
    func = _matmul()
    a, w = _rand(64, 32), _rand(32, 48)
    texts = _check(func, [a, w], a @ w)
    assert len(texts) >= 3  # no cache, cache-write at S0, cache-write at S1
    assert all("parallel(" in t and "vectorized(" in t and "unrolled(" in t for t in texts)
    assert sum("C_local" in t for t in texts) >= 2
    assert all("C_init" in t for t in texts)  # the init decomposed out of the reduction
    packed = [t for t in texts if "W_local" in t]  # W (B of the matmul) copied into a panel per k0 step
    assert packed and all(t.index("for k_0") < t.index("block W_local") for t in packed)


def test_matmul_with_symbolic_rows():
    m = tir.size_var("M")
    a = tir.placeholder((m, 32), "float32", name="A")
    w = tir.placeholder((32, 48), "float32", name="W")
    r = tir.reduce_axis(32, name="k")
    c = tir.compute((m, 48), lambda i, j: tir.sum(a[i, r] * w[r, j], axis=r), name="C")
    func = tir.create_func([a, w, c])
    for rows in (37, 5):
        av, wv = _rand(rows, 32), _rand(32, 48)
        texts = _check(func, [av, wv], av @ wv, seeds=range(2))
        assert all("parallel(" in t and "vectorized(" in t for t in texts)


def test_matmul_relu_epilogue_is_fused_under_the_tile():
    func = _matmul(relu=True)
    a, w = _rand(64, 32), _rand(32, 48)
    texts = _check(func, [a, w], np.maximum(a @ w, 0))
    folded = [t for t in texts if "C_local" in t]
    assert folded and all("D[v0, v1] = max(C_local[v0, v1], 0.0)" in t for t in folded)  # relu in the write-back
    plain = [t for t in texts if "C_local" not in t]
    assert plain and all("block D[" in t and "for i_0_j_0_fused in parallel" in t for t in plain)
    for text in texts:  # one root nest: the epilogue runs inside the parallel tile loop
        assert text.count("parallel(") == 1


def test_batch_matmul():
    func = _batch_matmul()
    a, w = _rand(3, 32, 16), _rand(3, 16, 32)
    texts = _check(func, [a, w], a @ w)
    assert all("parallel(" in t and "vectorized(" in t for t in texts)


def test_conv2d_nchw_3x3():
    func = _conv2d()
    x, wt = _rand(1, 4, 12, 14), _rand(8, 4, 3, 3)
    texts = _check(func, [x, wt], _conv_ref(x, wt), rtol=1e-4, atol=1e-4)
    assert len(texts) >= 3 and all("parallel(" in t and "vectorized(" in t for t in texts)


def test_padding_stays_materialized_before_a_conv_but_inlines_elsewhere():
    """A padding select inlined into a conv would cost a compare per multiply-add: the pad stage
    keeps its own nest there; the same select before an elementwise op is inlined."""
    x = tir.placeholder((1, 4, 10, 12), "float32", name="X")
    wt = tir.placeholder((8, 4, 3, 3), "float32", name="Wt")
    pad = tir.compute((1, 4, 12, 14), lambda b, c, i, j: Select(
        logical_and(Cmp("ge", i, IntImm(1)), Cmp("lt", i, IntImm(11)), Cmp("ge", j, IntImm(1)), Cmp("lt", j, IntImm(13))),
        x[b, c, minimum(maximum(i - 1, 0), 9), minimum(maximum(j - 1, 0), 11)], FloatImm(0.0, "float32")), name="P")
    rc, ry, rx = tir.reduce_axis(4, "rc"), tir.reduce_axis(3, "ry"), tir.reduce_axis(3, "rx")
    o = tir.compute((1, 8, 10, 12), lambda b, f, i, j: tir.sum(
        pad[b, rc, i + ry, j + rx] * wt[f, rc, ry, rx], axis=[rc, ry, rx]), name="O")
    func = tir.create_func([x, wt, o])
    xv, wv = _rand(1, 4, 10, 12), _rand(8, 4, 3, 3)
    texts = _check(func, [xv, wv], _conv_ref(np.pad(xv, ((0, 0), (0, 0), (1, 1), (1, 1))), wv), rtol=1e-4, atol=1e-4)
    assert all("block P[" in t for t in texts)

    relu = tir.compute((1, 4, 12, 14), lambda b, c, i, j: maximum(pad[b, c, i, j], 0.0), name="R")
    func = tir.create_func([x, relu])
    texts = _check(func, [xv], np.maximum(np.pad(xv, ((0, 0), (0, 0), (1, 1), (1, 1))), 0))
    assert not any("block P[" in t for t in texts)


@pytest.mark.skipif("dot_16x4_vnni" not in list_intrinsics("cpu"), reason="no VNNI intrinsic registered")
def test_int8_gemm_gets_a_tensorized_sketch():
    func = _vnni_gemm()
    rng = np.random.default_rng()
    a = rng.integers(0, 256, (64, 64), dtype=np.uint8)
    b = rng.integers(-128, 128, (64, 64), dtype=np.int8)
    packed = np.ascontiguousarray(b.reshape(16, 4, 4, 16).transpose(2, 0, 3, 1))
    texts = _check(func, [a, packed], a.astype(np.int32) @ b.astype(np.int32), rtol=0, atol=0)
    tensorized = [t for t in texts if "dot_16x4_vnni(" in t]
    assert len(tensorized) == 1 and "parallel(" in tensorized[0]
    assert len(texts) > 1  # the multi-level tiling sketches too


def test_float_matmul_gets_no_tensorized_sketch():
    traces = design_space(_matmul())
    assert not any(inst.kind == "tensorize" for trace in traces for inst in trace.instructions)


# ---------------------------------------------------------------- reductions, elementwise
@pytest.mark.parametrize("combiner,ref", [(tir.max, np.max), (tir.sum, np.sum)])
def test_row_reduction_plain_and_rfactor(combiner, ref):
    func = row_reduce_func(combiner, 24, 80, out="B")
    a = _rand(24, 80)
    texts = _check(func, [a], ref(a, axis=1), rtol=1e-5, atol=1e-4)
    assert len(texts) == 2
    plain, rf = texts
    assert "parallel(" in plain and "_rf" not in plain
    assert "B_rf" in rf and "vectorized(" in rf and "parallel(" in rf


def test_pooling_windows_vectorize_along_the_output_row():
    """A 3x3 stride-2 max pool over a padded input, then an epilogue: besides plain and rfactor,
    a sketch whose reduce loops run outside a vectorized part of the output row, the epilogue
    right after them in the same parallel loop."""
    x = tir.placeholder((2, 3, 13, 17), "float32", name="X")
    r, s = tir.reduce_axis(3, "r"), tir.reduce_axis(3, "s")
    p = tir.compute((2, 3, 6, 8), lambda n, c, i, j: tir.max(x[n, c, i * 2 + r, j * 2 + s], axis=[r, s]), name="P")
    out = tir.compute((2, 3, 6, 8), lambda n, c, i, j: p[n, c, i, j] * 0.5, name="out")
    xv = _rand(2, 3, 13, 17)
    windows = np.stack([xv[:, :, a:a + 11:2, b:b + 15:2] for a in range(3) for b in range(3)])
    texts = _check(tir.create_func([x, out]), [xv], windows.max(axis=0) * 0.5)
    assert len(texts) == 3
    vector = texts[2]
    assert vector.index("for r in") < vector.index("for s in") < vector.index("block out") and "P_init" in vector
    assert vector.count("parallel(") == 1 and vector.count("vectorized(") == 3  # init, window, epilogue


def _softmax(rows=6, heads=3, cols=40):
    x = tir.placeholder((rows, heads, cols), "float32", name="X")
    k, j = tir.reduce_axis(cols, "k"), tir.reduce_axis(cols, "j")
    m = tir.compute((rows, heads), lambda r, h: tir.max(x[r, h, k], axis=k), name="M")
    s = tir.compute((rows, heads), lambda r, h: tir.sum(call("exp", x[r, h, j] - m[r, h]), axis=j), name="S")
    out = tir.compute((rows, heads, cols), lambda r, h, c: call("exp", x[r, h, c] - m[r, h]) / s[r, h], name="out")
    return tir.create_func([x, out])


def test_softmax_row_statistics_are_computed_under_the_row_loop():
    func = _softmax()
    x = _rand(6, 3, 40)
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    texts = _check(func, [x], e / e.sum(axis=-1, keepdims=True))
    fused = [t for t in texts if t.count("parallel(") == 1]  # one parallel row loop holding M, S and out
    assert len(fused) == 2 and len(texts) == 6  # + plain/rfactor M x plain/rfactor S, out on its own
    for text in fused:
        assert text.index("parallel(") < text.index("block M") < text.index("block S") < text.index("block out")
    assert any("M_rf" in t and "S_rf" in t for t in fused)


def test_elementwise_chain_inlined_fused_vectorized():
    func = _elementwise()
    a, e = _rand(20, 36), _rand(36)
    c = np.maximum(a * 2 - 1, 0) + e
    (text,) = _check(func, [a, e], c * c)
    assert "block B" not in text and "block C" not in text  # producers inlined
    # E[j] is not contiguous over the fused (i, j): the rows are vectorized, the row loop parallel
    assert "for i in parallel(20):" in text and "j_1 in vectorized(" in text
    x = tir.placeholder((20, 36), "float32", name="X")
    xv = _rand(20, 36)
    (text,) = _check(tir.create_func([x, tir.compute((20, 36), lambda i, j: x[i, j] * 2.0, name="Y")]), [xv], xv * 2)
    assert "_fused_0 in parallel(" in text and "_fused_1 in vectorized(" in text  # contiguous: one fused loop


def test_padding_stage_vectorizes_rows_and_fuses_short_ones():
    """pad[c, h, w] = x[c, h - 1, w - 1] (rows of another length than x's, as conv_task's pad
    stage): vectorized along w, never across rows, unless the rows are shorter than MIN_LANES."""
    for h, w in ((10, 30), (3, 4)):
        x = tir.placeholder((4, h, w), "float32", name="X")
        out = tir.compute((4, h + 2, w + 2), lambda c, i, j: guarded_load(
            lambda *idx: x[idx], (c,), i - 1, j - 1, h, w, FloatImm(0.0, "float32")), name="P")
        xv = _rand(4, h, w)
        (text,) = _check(tir.create_func([x, out]), [xv], np.pad(xv, ((0, 0), (1, 1), (1, 1))))
        if w >= 8:
            assert "c_i_fused in parallel(" in text and "j_1 in vectorized(" in text
        else:  # 6-element rows fuse on (i, j), the planes (another length than x's) stay apart
            assert "for c in parallel(4):" in text and "i_j_fused_1 in vectorized(" in text


def test_design_space_is_never_empty_and_traces_round_trip():
    x = tir.placeholder((5,), "float32", name="X")
    func = tir.create_func([x, tir.compute((), lambda: x[2] * 3.0, name="Y")])
    sketches = design_space(func)
    assert sketches
    for trace in design_space(_matmul(relu=True)):
        again = tcomp.Trace.from_json(trace.to_json())
        assert str(again.apply_to(_matmul(relu=True)).func) == str(trace.apply_to(_matmul(relu=True)).func)
