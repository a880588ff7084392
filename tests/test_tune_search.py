"""Evolutionary search and tcomp.tune: records, build from the database, resuming, failures, seeds."""
from __future__ import annotations

import zlib

import numpy as np

import tcomp
from tcomp.tuning.database import Database, TuningRecord
from tcomp.tuning.measure import MeasureResult
from tcomp.tuning.search import EvolutionarySearch, confirm_best
from tcomp.tuning.tasks import template_seconds
from tcomp.tuning.workload import workload_key
from te_kernels import matmul_func


def _matmul(m=64, n=48, k=32):
    return matmul_func(m, n, k)


def _tiling_sketch(func):
    """A small design space: i and j tiled by sampled factors, an unroll choice."""
    sch = tcomp.Schedule(func)
    block = sch.get_block("C")
    i, j, k = sch.get_loops(block)
    i0, i1 = sch.split(i, sch.sample_perfect_tile(i, n=2, max_innermost_factor=16))
    j0, j1 = sch.split(j, sch.sample_perfect_tile(j, n=2, max_innermost_factor=16))
    sch.reorder(i0, j0, k, i1, j1)
    sch.annotate(block, "unroll", sch.sample_categorical([0, 16, 64], [1, 1, 1]))
    return sch.trace


def _inputs(m=64, n=48, k=32):
    rng = np.random.default_rng()
    return rng.standard_normal((m, k)).astype(np.float32), rng.standard_normal((k, n)).astype(np.float32)


class _HashModel:
    """Deterministic scores from the program text; records what it was trained on."""

    def __init__(self):
        self.trained = 0

    def predict(self, funcs):
        return np.array([zlib.crc32(str(f).encode()) % 1000 for f in funcs], dtype=float)

    def update(self, funcs, seconds):
        self.trained += len(funcs)


class _FakeMeasurer:
    """Deterministic times from the trace; every third candidate 'wrong' (and reported fastest)."""

    def __init__(self):
        self.count = 0

    def measure(self, traces):
        results = []
        for trace in traces:
            self.count += 1
            text = trace if isinstance(trace, str) else trace.to_json()
            seconds = 1e-3 * (1 + zlib.crc32(text.encode()) % 97)
            if self.count % 3 == 0:
                results.append(MeasureResult("wrong", 1e-9, "output differs"))
            elif self.count % 7 == 0:
                results.append(MeasureResult("crash", None, "signal 11"))
            else:
                results.append(MeasureResult("ok", seconds, ""))
        return results


def _search(func, db, seed):
    return EvolutionarySearch(func, [_tiling_sketch(func)], _HashModel(), _FakeMeasurer(), db, seed=seed,
                              population=16, generations=2)


def test_tune_then_build_applies_the_best_record(tmp_path):
    func = _matmul()
    path = tmp_path / "tuning.db"
    best = tcomp.tune(func, trials=8, batch_size=4, db=str(path), seed=0, progress=False, confirm_top=3,
                      confirm_rounds=2)
    key = workload_key(func)
    record = best[key]
    assert record is not None and record.status == "ok" and record.seconds > 0
    db = Database(str(path))
    searched = [r for r in db.records(key, "cpu") if not r.confirmed]
    assert len(searched) == db.trials(key, "cpu") == 8
    assert len({r.trace for r in searched}) == 8  # no candidate measured twice by the search
    ok = [r for r in searched if r.status == "ok"]
    confirmed = [r for r in db.records(key, "cpu") if r.confirmed]  # the 3 fastest, measured again
    assert {r.trace for r in confirmed} == {r.trace for r in sorted(ok, key=lambda r: r.seconds)[:3]}
    assert record.confirmed and record in confirmed
    kernel = tcomp.build(func, db=str(path))
    tuned = tcomp.Trace.from_json(record.trace).apply_to(func).func
    assert str(kernel.func) == str(tcomp.build(tuned).func) != str(tcomp.build(func).func)
    a, b = _inputs()
    np.testing.assert_allclose(kernel(a, b), a @ b, rtol=1e-4, atol=1e-4)

    again = tcomp.tune(func, trials=8, batch_size=4, db=str(path), seed=0, progress=False, confirm_top=3,
                       confirm_rounds=2)  # resumed: done
    assert Database(str(path)).records(key, "cpu") == db.records(key, "cpu") and again[key] == record
    tcomp.tune(func, trials=10, batch_size=4, db=str(path), seed=0, progress=False, confirm_top=3,
               confirm_rounds=2)
    traces = [r.trace for r in Database(str(path)).records(key, "cpu") if not r.confirmed]
    assert len(traces) == 10 and len(set(traces)) == 10


def test_build_without_a_record_builds_the_function_as_given(tmp_path):
    func = _matmul(16, 16, 16)
    kernel = tcomp.build(func, db=str(tmp_path / "empty.db"))
    assert str(kernel.func) == str(func)
    a, b = _inputs(16, 16, 16)
    np.testing.assert_allclose(kernel(a, b), a @ b, rtol=1e-4, atol=1e-4)


def test_failed_candidates_are_recorded_and_never_best(tmp_path):
    func = _matmul()
    db = Database(str(tmp_path / "t.db"))
    search = _search(func, db, seed=3)
    assert search.run(trials=12, batch_size=4) == 12
    records = db.records(search.workload, "cpu")
    failed = {r.trace for r in records if r.status != "ok"}
    assert {r.status for r in records} == {"ok", "wrong", "crash"}
    best = db.best(search.workload, "cpu")
    assert best.status == "ok" and best.trace not in failed
    assert best.seconds == min(r.seconds for r in records if r.status == "ok")
    assert search.model.trained == sum(r.status == "ok" for r in records)


def test_search_is_deterministic_given_a_seed_and_resumes_without_repeats(tmp_path):
    func = _matmul()
    runs = []
    for name in ("a", "b"):
        db = Database(str(tmp_path / f"{name}.db"))
        _search(func, db, seed=7).run(trials=8, batch_size=4)
        runs.append([r.trace for r in db.records(workload_key(func), "cpu")])
    assert runs[0] == runs[1]
    db = Database(str(tmp_path / "a.db"))
    resumed = _search(func, db, seed=7)  # the same seed again: the measured candidates are skipped
    assert resumed.model.trained == sum(r.status == "ok" for r in db.records(resumed.workload, "cpu"))
    resumed.run(trials=8, batch_size=4)
    traces = [r.trace for r in db.records(workload_key(func), "cpu")]
    assert len(traces) == 16 and len(set(traces)) == 16


def test_the_search_stops_when_the_space_runs_out(tmp_path):
    func = _matmul(4, 4, 4)
    sch = tcomp.Schedule(func)
    i = sch.get_loops(sch.get_block("C"))[0]
    sch.split(i, sch.sample_perfect_tile(i, n=2, max_innermost_factor=4))  # 3 factorizations of 4
    db = Database(str(tmp_path / "t.db"))
    search = EvolutionarySearch(func, [sch.trace], _HashModel(), _FakeMeasurer(), db, seed=0, population=8)
    assert search.run(trials=10, batch_size=4) == 3


class _ScriptedMeasurer:
    """Results per trace JSON, one per call in turn (then the last again); logs the traces measured."""

    def __init__(self, script):
        self.script, self.log = script, []

    def measure(self, traces):
        results = []
        for trace in traces:
            text = trace if isinstance(trace, str) else trace.to_json()
            outcomes = self.script[text]
            seen = sum(t == text for t in self.log)
            results.append(outcomes[min(seen, len(outcomes) - 1)])
            self.log.append(text)
        return results


def _ok(seconds):
    return MeasureResult("ok", seconds, "")


def test_confirm_best_remeasures_the_top_interleaved_and_resumes(tmp_path):
    func = _matmul()
    key = workload_key(func)
    db = Database(str(tmp_path / "t.db"))
    for trace, seconds in [("t1", 1.0), ("t2", 2.0), ("t3", 3.0), ("t4", 4.0)]:
        db.commit(TuningRecord(key, "cpu", trace, seconds, "ok"))
    db.commit(TuningRecord(key, "cpu", "bad", None, "wrong"))
    db.commit(TuningRecord(key, "cpu", "t2", 2.5, "ok"))  # measured twice: one candidate
    assert db.best(key, "cpu").trace == "t1"
    measurer = _ScriptedMeasurer({"t1": [_ok(5.0), _ok(9.0), _ok(6.0)],               # lucky: really ~6
                                  "t2": [_ok(2.2), _ok(2.0), _ok(2.4)],
                                  "t3": [_ok(2.1), MeasureResult("timeout", None, "20 s"), _ok(2.1)],
                                  "t4": [_ok(1.0)]})
    assert confirm_best(func, measurer, db, top=3, rounds=3) == 3
    assert measurer.log == ["t1", "t2", "t3"] * 3  # interleaved rounds over the top 3
    confirmed = {r.trace: r for r in db.records(key, "cpu") if r.confirmed}
    assert confirmed["t1"].seconds == 6.0 and confirmed["t2"].seconds == 2.2
    assert confirmed["t3"].status == "timeout" and confirmed["t3"].seconds is None
    best = Database(str(tmp_path / "t.db")).best(key, "cpu")
    assert best.trace == "t2" and best.seconds == 2.2 and best.confirmed

    assert confirm_best(func, measurer, db, top=3, rounds=3) == 0  # done: nothing measured again
    assert len(measurer.log) == 9
    db.commit(TuningRecord(key, "cpu", "t0", 0.5, "ok"))  # a later search found a newcomer to the top
    assert confirm_best(func, _ScriptedMeasurer({"t0": [_ok(0.7)]}), db, top=3, rounds=2) == 1
    assert db.best(key, "cpu").trace == "t0" and db.best(key, "cpu").seconds == 0.7


def test_confirm_best_measures_the_template_in_each_round(tmp_path):
    """The template is measured once per round after the candidates (c1 c2 T, c1 c2 T, ...); its
    median over those side-by-side measurements replaces the few taken when its search began (here
    lucky: 0.5 s, against 1.5 s beside the candidates), so a candidate at 1.2 s is not judged slower."""
    func = _matmul()
    key = workload_key(func)
    db = Database(str(tmp_path / "t.db"))
    for trace, seconds in [("t1", 1.0), ("t2", 2.0)]:
        db.commit(TuningRecord(key, "cpu", trace, seconds, "ok"))
    for seconds in (0.5, 0.6, 0.7):
        db.commit(TuningRecord(key, "cpu", "[]", seconds, "template"))
    assert template_seconds(db, key, "cpu") == 0.6
    measurer = _ScriptedMeasurer({"t1": [_ok(1.2)], "t2": [_ok(2.1)],
                                  "[]": [_ok(1.5), MeasureResult("crash", None, "worker died"), _ok(1.4), _ok(1.6)]})
    assert confirm_best(func, measurer, db, top=2, rounds=4, template_measurer=measurer) == 2
    assert measurer.log == ["t1", "t2", "[]"] * 4
    assert template_seconds(db, key, "cpu") == 1.5  # the three that succeeded, side by side
    assert db.best(key, "cpu").seconds == 1.2 < template_seconds(Database(str(tmp_path / "t.db")), key, "cpu")


def test_tune_confirms_at_the_end_and_not_again(tmp_path, monkeypatch):
    func = _matmul()
    measurers = []

    class Counting(_FakeMeasurer):
        def __init__(self, *args, **kwargs):
            super().__init__()
            self.traces = []
            measurers.append(self)

        def measure(self, traces):
            self.traces += [t if isinstance(t, str) else t.to_json() for t in traces]
            return super().measure(traces)

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            pass

    monkeypatch.setattr("tcomp.tuning.measure.Measurer", Counting)
    path = str(tmp_path / "t.db")
    key = workload_key(func)
    tcomp.tune(func, trials=8, batch_size=4, db=path, seed=0, progress=False, model=_HashModel(),
               confirm_top=2, confirm_rounds=2)
    db = Database(path)
    confirmed = [r for r in db.records(key, "cpu") if r.confirmed]
    assert len(measurers[0].traces) == 8 + 2 * 2 and len(confirmed) == 2
    assert measurers[0].traces[8:] == [r.trace for r in confirmed] * 2
    tcomp.tune(func, trials=8, batch_size=4, db=path, seed=0, progress=False, model=_HashModel(),
               confirm_top=2, confirm_rounds=2)
    assert measurers[1].traces == [] and len(Database(path)) == len(db)
