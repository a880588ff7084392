"""Measurement in worker processes (ok, build error, wrong output, crash, timeout) and the
tuning database (commit, reload, best, truncated last line, resume).

Wrong outputs and crashes need programs that a schedule can break, and the primitives keep
honest programs correct. So the tests hand-write blocks that *lie*: they declare an iterator
spatial (iterations independent) while each iteration reads what the previous one wrote. The
unscheduled program runs the iterations in order and is right; a split + reorder (legal for a
spatial iterator) runs them out of order, which is exactly the kind of program the measurer's
check against the reference must catch. The crash variant turns the stale value into a store
address far out of bounds.
"""
from __future__ import annotations

import json

import numpy as np
import pytest

import tcomp
from tcomp import tir
from tcomp.tir.expr import Buffer, Var
from tcomp.tir.stmt import BufferStore, PrimFunc, block, loop
from tcomp.tuning.database import Database, TuningRecord
from tcomp.tuning.measure import Measurer, MeasureResult
from tcomp.tuning.worker import mismatch
from te_kernels import matmul_func


def _matmul(k=48):
    return matmul_func(64, 40, k)


def _elementwise():
    a = tir.placeholder((96, 130), "float32", name="A")
    b = tir.compute((96, 130), lambda i, j: a[i, j] * 2.0 + 1.0, name="B")
    return tir.create_func([a, b])


def _lying_chain(store_value, store_index, dtype="float32", n=64):
    """for j: block S[vj = S(n): j]: X[store_index(X, vj)] = store_value(X, vj)  (X has n + 1 elements)."""
    x = Buffer("X", (n + 1,), dtype)
    j = Var("j")
    body = block("S", [("S", n, j)], lambda vj: BufferStore(x, store_value(x, vj), (store_index(x, vj),)))
    return PrimFunc("chain", (x,), loop(j, n, body))


def _split_reorder(func, reorder: bool):
    sch = tcomp.Schedule(func)
    (j,) = sch.get_loops(sch.get_block("S"))
    jo, ji = sch.split(j, [8, 8])
    if reorder:
        sch.reorder(ji, jo)
    return sch.trace


def test_measures_matmul_and_elementwise_candidates():
    func = _matmul()
    sch = tcomp.Schedule(func)
    i, j, k = sch.get_loops(sch.get_block("C"))
    io, ii = sch.split(i, [None, 16])
    sch.reorder(io, j, ii, k)
    sch.parallel(io)
    with Measurer(func, repeat=3) as measurer:
        results = measurer.measure([tcomp.Schedule(func).trace, sch.trace, sch.trace.to_json()])
    assert [r.status for r in results] == ["ok"] * 3, results
    assert all(r.seconds > 0 for r in results)

    func = _elementwise()
    sch = tcomp.Schedule(func)
    i, j = sch.get_loops(sch.get_block("B"))
    fused = sch.fuse(i, j)
    outer, inner = sch.split(fused, [None, 8])
    sch.parallel(outer)
    sch.vectorize(inner)
    with Measurer(func, repeat=2, num_threads=2) as measurer:
        (result,) = measurer.measure([sch.trace])
    assert result.status == "ok" and result.seconds > 0, result


def test_trace_that_does_not_apply_is_a_build_error():
    matmul_sch = tcomp.Schedule(_matmul())
    matmul_sch.split(matmul_sch.get_loops(matmul_sch.get_block("C"))[0], [None, 16])
    with Measurer(_elementwise()) as measurer:
        bad, garbage, good = measurer.measure([matmul_sch.trace, "not json", tcomp.Schedule(_elementwise()).trace])
    assert bad.status == "build_error" and "ScheduleError" in bad.detail and bad.seconds is None
    assert garbage.status == "build_error"
    assert good.status == "ok"


def test_out_of_order_program_is_wrong():
    # X[vj + 1] = X[vj] + 1.5: a prefix chain declared spatial
    func = _lying_chain(lambda x, vj: x[vj] + 1.5, lambda x, vj: vj + 1)
    with Measurer(func) as measurer:
        in_order, reordered = measurer.measure([_split_reorder(func, False), _split_reorder(func, True)])
    assert in_order.status == "ok", in_order
    assert reordered.status == "wrong" and "max abs error" in reordered.detail, reordered


@pytest.mark.parametrize("workers", [1, 2])
def test_crashing_candidate_is_reported_and_the_next_one_runs(workers):
    """With several workers (a GPU target's default) the results still come in the traces' order."""
    # X[vj + 1 + (X[vj] - X[0] - vj) * 10**9] = X[vj] + 1: in order the offset is 0; out of order
    # X[vj] is a stale input value and the store lands gigabytes away
    func = _lying_chain(lambda x, vj: x[vj] + 1,
                        lambda x, vj: vj + 1 + (x[vj] - x[0] - vj) * 10**9, dtype="int64")
    good, bad = _split_reorder(func, False), _split_reorder(func, True)
    with Measurer(func, workers=workers) as measurer:
        results = measurer.measure([good, bad, good, bad, good])
    assert [r.status for r in results] == ["ok", "crash", "ok", "crash", "ok"], results
    assert "SIGSEGV" in results[1].detail or "SIGBUS" in results[1].detail


@pytest.mark.parametrize("workers", [1, 2])
def test_crashing_reference_fails_every_candidate_cleanly(workers):
    x = Buffer("X", (64,), "float32")
    i = Var("i")
    body = block("S", [("S", 64, i)], lambda vi: BufferStore(x, tir.expr.FloatImm(1.0), (vi * 10**10,)))
    func = PrimFunc("wild_store", (x,), loop(i, 64, body))
    with Measurer(func, workers=workers) as measurer:
        results = measurer.measure([tcomp.Schedule(func).trace] * 3)
    assert [r.status for r in results] == ["crash"] * 3, results
    assert "reference" in results[0].detail


def test_hanging_reference_times_out():
    x = Buffer("X", (2,), "float32")
    i, j = Var("i"), Var("j")
    body = block("S", [("S", 10**9, i), ("S", 10**9, j)],
                 lambda vi, vj: BufferStore(x, x[0] * x[1] + x[0], (0,)))
    func = PrimFunc("forever", (x,), loop(i, 10**9, loop(j, 10**9, body)))
    with Measurer(func, timeout_s=2.0) as measurer:
        results = measurer.measure([tcomp.Schedule(func).trace])
    assert results == [MeasureResult("timeout", None, results[0].detail)]
    assert "reference" in results[0].detail and "2 s" in results[0].detail


def test_symbolic_sizes_work_in_the_worker():
    func = _matmul(k=tir.size_var("K"))
    sch = tcomp.Schedule(func)
    sch.parallel(sch.get_loops(sch.get_block("C"))[0])
    with Measurer(func, sizes={"K": 33}) as measurer:
        (result,) = measurer.measure([sch.trace])
    assert result.status == "ok", result


def test_mismatch_tolerates_reordered_sums_only():
    rng = np.random.default_rng()
    a = rng.standard_normal((32, 512)).astype(np.float32)
    b = rng.standard_normal((512, 16)).astype(np.float32)
    ref = a @ b
    reordered = (a.astype(np.float64) @ b.astype(np.float64)).astype(np.float32)
    assert mismatch(reordered, ref) == ""
    off = ref.copy()
    off[3, 4] += 1.0
    assert "max abs error" in mismatch(off, ref)
    ints = rng.integers(0, 9, size=10)
    assert mismatch(ints, ints) == "" and "differ" in mismatch(ints + (np.arange(10) == 3), ints)


def _record(workload="w1", seconds=1.0, status="ok", target="cpu", trace="[]"):
    return TuningRecord(workload, target, trace, seconds if status == "ok" else None, status)


def test_database_commit_reload_best(tmp_path):
    path = tmp_path / "tuning.db"
    db = Database(path)
    assert db.best("w1", "cpu") is None and db.workloads() == []
    db.commit(_record(seconds=3.0))
    db.commit(_record(seconds=1.5, trace='[{"kind": "x"}]'))
    db.commit(_record(status="crash"))
    db.commit(_record(seconds=0.5, target="gpu"))
    db.commit(TuningRecord("w2", "cpu", "[]", 2.0, "ok", features=np.arange(3, dtype=np.float32)))
    assert db.best("w1", "cpu").seconds == 1.5 and db.best("w1", "cpu").trace == '[{"kind": "x"}]'
    assert db.best("w1", "gpu").seconds == 0.5
    assert db.workloads() == [("w1", "cpu"), ("w1", "gpu"), ("w2", "cpu")]

    again = Database(path)
    assert len(again) == 5
    assert again.records("w1", "cpu") == db.records("w1", "cpu")
    assert again.best("w1", "cpu") == db.best("w1", "cpu")
    assert again.records("w2", "cpu")[0].features == [0.0, 1.0, 2.0]
    lines = path.read_text().splitlines()
    assert len(lines) == 5 and all(json.loads(line)["workload"] for line in lines)


def test_database_only_failures_has_no_best(tmp_path):
    db = Database(tmp_path / "db.jsonl")
    db.commit(_record(status="wrong"))
    db.commit(_record(status="timeout"))
    assert db.best("w1", "cpu") is None and len(db.records("w1", "cpu")) == 2


def test_database_skips_truncated_line_and_resumes(tmp_path):
    path = tmp_path / "tuning.db"
    db = Database(path)
    db.commit(_record(seconds=2.0))
    db.commit(_record(seconds=1.0))
    text = path.read_text()
    path.write_text(text[:-10])  # a crash in the middle of writing the second record
    resumed = Database(path)
    assert [r.seconds for r in resumed.records("w1", "cpu")] == [2.0]
    resumed.commit(_record(seconds=0.75))  # starts a fresh line after the cut one
    final = Database(path)
    assert [r.seconds for r in final.records("w1", "cpu")] == [2.0, 0.75]
    assert final.best("w1", "cpu").seconds == 0.75


def test_measured_results_round_trip_through_the_database(tmp_path):
    func = _elementwise()
    sch = tcomp.Schedule(func)
    sch.parallel(sch.get_loops(sch.get_block("B"))[0])
    traces = [tcomp.Schedule(func).trace, sch.trace]
    with Measurer(func, repeat=2) as measurer:
        results = measurer.measure(traces)
    db = Database(tmp_path / "tuning.db")
    for trace, result in zip(traces, results):
        db.commit(TuningRecord("elementwise", "cpu", trace.to_json(), result.seconds, result.status))
    best = Database(tmp_path / "tuning.db").best("elementwise", "cpu")
    assert best is not None and best.seconds == min(r.seconds for r in results)
    replayed = tcomp.build(tcomp.Trace.from_json(best.trace).apply_to(func).func)
    x = np.random.default_rng().standard_normal((96, 130)).astype(np.float32)
    np.testing.assert_allclose(replayed(x), x * 2 + 1, rtol=1e-6)


@pytest.mark.parametrize("status", ["ok", "build_error", "crash", "timeout", "wrong"])
def test_records_of_every_status_load(tmp_path, status):
    db = Database(tmp_path / "db")
    db.commit(_record(status=status))
    assert Database(tmp_path / "db").records("w1", "cpu")[0].status == status


def test_best_prefers_confirmed_records_and_skips_failed_confirmations(tmp_path):
    path = tmp_path / "tuning.db"
    db = Database(path)
    db.commit(_record(seconds=1.0, trace="lucky"))
    db.commit(_record(seconds=2.0, trace="steady"))
    db.commit(_record(seconds=3.0, trace="slow"))
    assert db.best("w1", "cpu").trace == "lucky" and db.trials("w1", "cpu") == 3
    db.commit(TuningRecord("w1", "cpu", "lucky", None, "wrong", confirmed=True))  # flaky: never best
    assert db.best("w1", "cpu").trace == "steady" and not db.best("w1", "cpu").confirmed
    db.commit(TuningRecord("w1", "cpu", "slow", 2.9, "ok", confirmed=True))
    db.commit(TuningRecord("w1", "cpu", "steady", 3.5, "ok", confirmed=True))  # re-measured slower
    best = db.best("w1", "cpu")
    assert best.trace == "slow" and best.seconds == 2.9 and best.confirmed
    again = Database(path)
    assert again.best("w1", "cpu") == best and again.trials("w1", "cpu") == 3 and len(again) == 6
    assert [json.loads(line)["confirmed"] for line in path.read_text().splitlines()] == [False] * 3 + [True] * 3


def test_records_without_the_confirmed_field_load(tmp_path):
    path = tmp_path / "old.db"
    line = {"workload": "w1", "target": "cpu", "trace": "[]", "seconds": 1.5, "status": "ok", "features": None}
    path.write_text(json.dumps(line) + "\n")
    record = Database(path).best("w1", "cpu")
    assert record.seconds == 1.5 and not record.confirmed
