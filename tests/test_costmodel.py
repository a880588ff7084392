"""The learned cost model: loop-IR features, the CostModel interface, XGBModel, the shipped model."""
from __future__ import annotations

import itertools
import json
import subprocess
import sys

import numpy as np
import pytest

import tcomp
from tcomp import tir
from tcomp.costmodel.features import FEATURE_LENGTH, FEATURE_NAMES, extract
from tcomp.costmodel.model import CostModel, RandomModel
from tcomp.costmodel.xgb import XGBModel, load_pretrained
from te_kernels import matmul_func


def _matmul(m=128, n=96, k=64):
    return matmul_func(m, n, k)


def _sampled(func, seed: int):
    """A random tiling / order / annotation of the matmul's C block."""
    rng = np.random.default_rng(seed)
    sch = tcomp.Schedule(func, seed=seed)
    block = sch.get_block("C")
    parts = [sch.split(loop, sch.sample_perfect_tile(loop, n=2, max_innermost_factor=16))
             for loop in sch.get_loops(block)]
    loops = [p for pair in parts for p in pair]
    order = [loops[i] for i in rng.permutation(len(loops))]
    sch.reorder(*order)
    for action, loop in ((sch.parallel, order[0]), (sch.vectorize, order[-1]), (sch.unroll, order[-2])):
        if rng.random() < 0.5:
            try:
                action(loop)
            except tcomp.ScheduleError:
                pass
    return sch.func


def _pairwise_accuracy(scores, target) -> float:
    pairs = [(i, j) for i, j in itertools.combinations(range(len(target)), 2) if target[i] != target[j]]
    return np.mean([(scores[i] > scores[j]) == (target[i] > target[j]) for i, j in pairs])


def test_features_are_fixed_length_finite_and_deterministic():
    funcs = [_matmul(), _sampled(_matmul(), 3), _matmul(k=tir.size_var("K"))]
    for func in funcs:
        x = extract(func)
        assert x.dtype == np.float32 and x.shape == (FEATURE_LENGTH,) == (len(FEATURE_NAMES),)
        assert np.all(np.isfinite(x))
        np.testing.assert_array_equal(x, extract(func))


def test_features_see_annotations_and_sizes():
    names = list(FEATURE_NAMES)
    sch = tcomp.Schedule(_matmul())
    i, j, k = sch.get_loops(sch.get_block("C"))
    sch.reorder(i, k, j)
    plain = extract(sch.func)
    sch.vectorize(j)
    vectorized = extract(sch.func)
    assert vectorized[names.index("loop.share_vectorized")] == 1.0 > plain[names.index("loop.share_vectorized")]
    sch.parallel(i)
    assert extract(sch.func)[names.index("loop.parallel_extent")] > vectorized[names.index("loop.parallel_extent")]
    small, big = extract(_matmul(64, 64, 64)), extract(_matmul(128, 128, 128))
    for name in ("arith.flops", "arith.loads", "buf0.bytes", "loop.max_trip"):
        assert big[names.index(name)] > small[names.index(name)]


def _column_sum(vector_inner: bool):
    """B[j] = sum_r A[r, j] over a 1024x1024 A: j vectorized innermost, or r innermost."""
    a = tir.placeholder((1024, 1024), "float32", name="A")
    r = tir.reduce_axis(1024, name="r")
    b = tir.compute((1024,), lambda j: tir.sum(a[r, j], axis=r), name="B")
    sch = tcomp.Schedule(tir.create_func([a, b]))
    block = sch.get_block("B")
    j, k = sch.get_loops(block)
    if vector_inner:
        jo, ji = sch.split(j, [None, 16])
        sch.reorder(jo, k, ji)
        sch.vectorize(ji)
    return sch.func


def test_cache_and_vector_features_follow_the_loop_order():
    """A column sum reading rows of A (j innermost, vectorized) loads each line of A into L1
    once; reading columns (r innermost: a column's 1024 lines do not fit in 32 KiB) misses a
    line per element, 16x the 4 MiB of A (64-byte lines of 4-byte floats)."""
    names = list(FEATURE_NAMES)
    rows, columns = extract(_column_sum(True)), extract(_column_sum(False))
    unique = 2 ** 22 + 2 ** 12                                  # A and B
    assert rows[names.index("vec.contiguous")] > 0.99 and columns[names.index("vec.scalar")] == 1.0
    l1 = names.index("cache.l1_bytes")
    assert 2 ** rows[l1] - 1 == pytest.approx(unique, rel=0.01)
    assert 2 ** columns[l1] - 1 == pytest.approx(16 * 2 ** 22, rel=0.01)


def _synthetic(funcs):
    """Measured-like seconds from a fixed formula over features (the model must recover the order)."""
    x = np.asarray([extract(f) for f in funcs])
    names = list(FEATURE_NAMES)
    speed = (1.0 + 3.0 * x[:, names.index("loop.share_vectorized")]) * (1.0 + x[:, names.index("loop.balance_2")])
    return np.exp(0.3 * x[:, names.index("buf1.footprint_2")]) / speed


def test_xgb_model_learns_a_ranking_and_round_trips(tmp_path):
    func = _matmul()
    seeds = np.random.default_rng().integers(0, 10**6, size=120)
    funcs = [_sampled(func, int(s)) for s in seeds]
    seconds = _synthetic(funcs)
    model = XGBModel(num_rounds=60)
    assert isinstance(model, CostModel)
    model.update(funcs[:80], list(seconds[:80]))
    held_out = funcs[80:]
    scores = model.predict(held_out)
    learned = _pairwise_accuracy(scores, -seconds[80:])
    chance = np.mean([_pairwise_accuracy(RandomModel().predict(held_out), -seconds[80:]) for _ in range(10)])
    assert learned > 0.75 and learned > chance + 0.15, (learned, chance)

    path = str(tmp_path / "model.json")
    model.save(path)
    loaded = XGBModel.load(path)
    np.testing.assert_array_equal(loaded.predict(held_out), scores)
    loaded.update(funcs[80:100], list(seconds[80:100]))  # online training goes on from the loaded trees
    assert np.all(np.isfinite(loaded.predict(held_out)))


def test_xgb_regression_rows_pull_toward_the_weighted_mean():
    """With a regression objective, rows of identical features (no split separates them)
    converge to their weighted mean label, log(best / seconds), each row weighted
    0.2 + best / seconds."""
    seconds = np.random.default_rng().uniform(1.0, 4.0, size=6)
    x = np.zeros((6, FEATURE_LENGTH), dtype=np.float32)
    relative = seconds.min() / seconds
    model = XGBModel({"objective": "reg:squarederror", "subsample": 1.0, "colsample_bytree": 1.0,
                      "min_child_weight": 0}, num_rounds=300)
    model.fit_arrays(x, seconds, ["g"] * 6)
    w = 0.2 + relative
    np.testing.assert_allclose(model.predict_arrays(x[:1]), [np.sum(w * np.log(relative)) / np.sum(w)], atol=2e-3)


def test_xgb_ranks_within_workloads_of_any_size():
    """The ranking objective learns the order within each workload from interleaved rows of two
    workloads 1000x apart in time (one feature decides speed in both), and its scaled scores
    differ by about the log-throughput ratio."""
    rng = np.random.default_rng()
    x = rng.uniform(0, 1, size=(80, FEATURE_LENGTH)).astype(np.float32)
    groups = ["small" if i % 2 else "big" for i in range(80)]
    seconds = np.exp(-2.0 * x[:, 0]) * np.where(np.asarray(groups) == "big", 1000.0, 1.0)
    model = XGBModel(num_rounds=60)
    model.fit_arrays(x[:60], seconds[:60], groups[:60])
    scores = model.predict_arrays(x[60:])
    for group in ("small", "big"):
        rows = [i for i in range(20) if groups[60 + i] == group]
        assert _pairwise_accuracy(scores[rows], -seconds[60:][rows]) > 0.8
        # scaled scores: differences estimate log-throughput ratios (here 2 * x0 differences)
        ds, dy = np.diff(scores[rows]), np.diff(-np.log(seconds[60:][rows]))
        assert 0.6 < np.sum(ds * dy) / np.sum(ds * ds) < 1.8


def test_xgb_model_uses_the_features_it_was_trained_on(tmp_path):
    """A model file names its features: one trained on fewer (an older feature set) loads and
    predicts from those columns; one naming a feature that is no longer extracted is refused."""
    rng = np.random.default_rng()
    x = rng.uniform(0, 1, size=(40, FEATURE_LENGTH)).astype(np.float32)
    seconds = np.exp(-x[:, 3])
    older = list(FEATURE_NAMES[:20])
    model = XGBModel(num_rounds=20, feature_names=older)
    model.fit_arrays(x, seconds, ["g"] * 40)
    path = tmp_path / "old.json"
    model.save(str(path))
    loaded = XGBModel.load(str(path))
    assert loaded.feature_names == older
    changed = x.copy()
    changed[:, 20:] = rng.uniform(0, 1, size=(40, FEATURE_LENGTH - 20))   # columns it does not use
    np.testing.assert_array_equal(loaded.predict_arrays(changed), model.predict_arrays(x))
    meta = json.loads((tmp_path / "old.json.meta.json").read_text())
    meta["feature_names"][0] = "loop.retired_feature"
    (tmp_path / "old.json.meta.json").write_text(json.dumps(meta))
    with pytest.raises(ValueError, match="loop.retired_feature.*retrain"):
        XGBModel.load(str(path))


def test_xgb_update_on_a_loaded_model_learns_where_it_is_wrong_and_keeps_it_where_it_is_right(tmp_path):
    """A loaded model trained on 30 workloads whose speed follows feature 0 (of 4 random ones)
    ranks a new workload whose speed follows feature 1 at chance; updated with 40 of its
    measurements (what ``update`` trains on) it ranks the other 40 better. On a new workload that
    follows feature 0 too, the update does not make it rank worse than noise (its new trees are
    chosen by cross-validation on the 40 measurements). The truth: the synthetic times."""
    rng = np.random.default_rng()

    def workload(column, n):
        x = np.zeros((n, FEATURE_LENGTH), dtype=np.float32)
        x[:, :4] = rng.uniform(0, 1, size=(n, 4))
        return x, np.exp(-2.0 * x[:, column]) * rng.uniform(0.98, 1.02, size=n)

    x, seconds = workload(0, 300)
    trained = XGBModel()
    trained.fit_arrays(x, seconds, [f"pretraining {i % 30}" for i in range(300)])
    trained.save(str(tmp_path / "base.json"))
    for column, name in ((1, "wrong"), (0, "right")):
        x, seconds = workload(column, 80)
        model = XGBModel.load(str(tmp_path / "base.json"))
        before = _pairwise_accuracy(model.predict_arrays(x[40:]), -seconds[40:])
        model.fit_arrays(x[:40], seconds[:40], [name] * 40)
        after = _pairwise_accuracy(model.predict_arrays(x[40:]), -seconds[40:])
        if name == "wrong":
            assert before < 0.7 and after > before + 0.1, (before, after)
        else:
            assert before > 0.85 and after > before - 0.05, (before, after)


def test_random_model_interface(tmp_path):
    model = RandomModel(seed=5)
    funcs = [_matmul(), _sampled(_matmul(), 1)]
    model.update(funcs, [1.0, 2.0])
    scores = model.predict(funcs)
    assert scores.shape == (2,) and np.all((scores >= 0) & (scores < 1))
    model.save(str(tmp_path / "r.json"))
    assert RandomModel.load(str(tmp_path / "r.json")).seed == 5


def test_pretrained_model_loads_and_scores():
    funcs = [_sampled(_matmul(), s) for s in range(4)]
    for target in ("cpu", "cuda"):
        scores = load_pretrained(target).predict(funcs)
        assert scores.shape == (4,) and np.all(np.isfinite(scores))
    with pytest.raises(FileNotFoundError, match="no pretrained cost model"):
        load_pretrained("gpu")


def test_import_tcomp_does_not_import_xgboost():
    code = "import sys, tcomp, tcomp.costmodel.xgb; assert 'xgboost' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)
