"""In-model verification of a model's tuned kernels (tcomp/tuning/in_model.py): verdicts recorded in
the database decide which records ``tcomp.compile(db=...)`` applies; the compiled models still
match onnxruntime. Timings are faked where a verdict must come out one way (no timing thresholds)."""
from __future__ import annotations

import json

import numpy as np
import onnxruntime as ort
import pytest
from onnx import helper
from onnx_helpers import make_model, rand

import tcomp
from tcomp.schedule.schedule import ScheduleError
from tcomp.tuning.database import Database, TuningRecord
from tcomp.tuning.in_model import (
    MARGIN,
    interleaved_step_times,
    random_feeds,
    tuned_steps,
    verify_in_model,
)
from tcomp.tuning.space import design_space
from tcomp.tuning.task_scheduler import report
from tcomp.tuning.tasks import extract_tasks


def _two_matmuls():
    """x[16, 64] @ w0 -> Relu -> @ w1[64, 32]: two workloads."""
    nodes = [helper.make_node("MatMul", ["x", "w0"], ["h"]), helper.make_node("Relu", ["h"], ["r"]),
             helper.make_node("MatMul", ["r", "w1"], ["y"])]
    return make_model(nodes, {"x": np.zeros((16, 64), np.float32)}, ["y"], opset=17,
                      inits={"w0": rand((64, 64)), "w1": rand((64, 32))})


def _trace(func, seed: int = 0) -> str:
    """A sampled candidate of the task's design space (the first seed from ``seed`` that applies)."""
    for s in range(seed, seed + 50):
        try:
            return design_space(func)[0].apply_to(func, resample=True, seed=s).trace.to_json()
        except ScheduleError:
            continue
    raise AssertionError("no candidate applies")


def _tuned_database(path, tasks) -> Database:
    """A sampled record per task, measured far faster than the task's template: the compile applies them."""
    db = Database(path)
    for task in tasks:
        db.commit(TuningRecord(task.workload, "cpu", _trace(task.func), 1e-6, "ok"))
        db.commit(TuningRecord(task.workload, "cpu", "[]", 1e-3, "template"))
    return db


def _matches_onnxruntime(module, model):
    x = np.random.default_rng().standard_normal((16, 64)).astype(np.float32)
    expected = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, {"x": x})
    np.testing.assert_allclose(module.run({"x": x})[0], expected[0], rtol=1e-4, atol=1e-4)


def _applied(module) -> set:
    return set(tuned_steps(module))


def test_a_record_that_loses_in_the_model_is_not_applied_and_one_that_wins_is(tmp_path):
    model = _two_matmuls()
    loser, winner = extract_tasks(model)
    db = _tuned_database(tmp_path / "t.db", [loser, winner])
    assert _applied(tcomp.compile(model, db=db)) == {loser.workload, winner.workload}
    calls = []

    def timer(modules, feeds, rounds):
        """The tuned module's steps of ``loser`` take twice the template's, ``winner``'s half."""
        tuned_module, template_module = modules
        assert [g.label for g in tuned_module.groups] == [g.label for g in template_module.groups]
        assert set(feeds) == {"x"} and feeds["x"].shape == (16, 64)
        steps = tuned_steps(tuned_module)
        calls.append(set(steps))
        factor = {i: {loser.workload: 2.0, winner.workload: 0.5}[w] for w, indices in steps.items() for i in indices}
        count = len(tuned_module.groups)
        return [[1e-3 * factor.get(i, 1.0) for i in range(count)], [1e-3] * count]

    verdicts = verify_in_model(model, [loser, winner], db, "cpu", timer=timer)
    # the first pass judges both; the second verifies the kept one without the rejected one
    assert calls == [{loser.workload, winner.workload}, {winner.workload}]
    assert verdicts[loser.workload].status == "rejected" and verdicts[winner.workload].status == "verified"
    assert verdicts[loser.workload].seconds == pytest.approx(2 * verdicts[loser.workload].baseline)

    reloaded = Database(tmp_path / "t.db")  # the verdicts are in the file
    for task in (loser, winner):
        best = reloaded.best(task.workload, "cpu")
        assert best.status == "ok" and reloaded.verdict(task.workload, "cpu", best.trace) == verdicts[task.workload]
        assert all(not r.is_verdict for r in reloaded.records(task.workload, "cpu"))
        assert reloaded.trials(task.workload, "cpu") == 2  # the record and the template's: verdicts are no trials
    module = tcomp.compile(model, db=tmp_path / "t.db")
    assert _applied(module) == {winner.workload}
    _matches_onnxruntime(module, model)
    assert verify_in_model(model, [loser, winner], reloaded, "cpu", timer=timer) == {}  # all judged: nothing timed
    assert len(calls) == 2

    # a record found later (another trace) is not covered by the earlier verdict: applied until judged
    reloaded.commit(TuningRecord(loser.workload, "cpu", _trace(loser.func, 100), 1e-7, "ok"))
    assert _applied(tcomp.compile(model, db=reloaded)) == {loser.workload, winner.workload}


def test_verification_that_cannot_run_warns_and_leaves_the_records_applied(tmp_path):
    model = _two_matmuls()
    tasks = extract_tasks(model)
    db = _tuned_database(tmp_path / "t.db", tasks)

    def timer(modules, feeds, rounds):
        raise RuntimeError("no device")

    with pytest.warns(UserWarning, match="in-model verification .* skipped on cpu: RuntimeError: no device"):
        assert verify_in_model(model, tasks, db, "cpu", timer=timer) == {}
    assert len(Database(tmp_path / "t.db")) == 4 and len(_applied(tcomp.compile(model, db=db))) == 2


def test_tune_a_model_verifies_its_tuned_kernels_in_the_model(tmp_path):
    """Real timings: every record the compile would apply gets a verdict, the compile follows it,
    the table shows it, and a resumed run with nothing left to tune measures nothing."""
    model = _two_matmuls()
    path = tmp_path / "t.db"
    results = tcomp.tune(model, trials=16, db=path, progress=False, seed=0)
    module = tcomp.compile(model, db=path)
    for r in results:
        beat_template = r.tuned is not None and r.tuned < r.template
        assert (r.verdict is not None) == beat_template
        if r.verdict is not None:
            assert r.verdict.seconds > 0 and r.verdict.baseline > 0
            assert (r.verdict.status == "verified") == (r.verdict.seconds <= (1 - MARGIN) * r.verdict.baseline)
        assert (r.task.workload in _applied(module)) == r.applied == (beat_template and r.verdict.status == "verified")
    assert "in model" in report(results)
    _matches_onnxruntime(module, model)
    lines = len(path.read_text().splitlines())
    again = tcomp.tune(model, trials=0, db=path, progress=False)
    assert len(path.read_text().splitlines()) == lines and [r.verdict for r in again] == [r.verdict for r in results]


def test_verdict_lines_round_trip_and_older_lines_load(tmp_path):
    path = tmp_path / "t.db"
    old = {"workload": "w", "target": "cpu", "trace": "[]", "seconds": 1.0, "status": "ok", "features": None,
           "confirmed": False}
    path.write_text(json.dumps(old) + "\n")
    db = Database(path)
    db.commit(TuningRecord("w", "cpu", "[]", 2.0, "rejected", baseline=1.5))
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    assert "baseline" not in lines[0] and lines[1]["baseline"] == 1.5 and lines[1]["status"] == "rejected"
    again = Database(path)
    assert again.best("w", "cpu").seconds == 1.0 and again.trials("w", "cpu") == 1 and len(again) == 2
    assert again.verdict("w", "cpu", "[]").baseline == 1.5 and again.verdict("w", "cpu", "other") is None


def test_interleaved_step_times_and_random_feeds():
    model = _two_matmuls()
    module = tcomp.compile(model, schedule="template")
    feeds = random_feeds(module)
    assert feeds["x"].dtype == np.float32 and feeds["x"].shape == (16, 64)
    times = interleaved_step_times([module, module], feeds, rounds=3)
    assert len(times) == 2 and all(len(t) == len(module.groups) and min(t) > 0 for t in times)


def test_on_a_gpu_target_without_a_device_the_verification_is_skipped_with_the_reason(tmp_path):
    pytest.importorskip("cuda.bindings.driver", reason="cuda-python is not installed")
    from tcomp.targets.cuda.driver import device_count

    if device_count() > 0:
        pytest.skip("a CUDA device is here: the verification runs (test_cuda_tune.py tunes a model on it)")
    model = _two_matmuls()
    tasks = extract_tasks(model, "cuda")
    db = Database(tmp_path / "t.db")
    for task in tasks:
        db.commit(TuningRecord(task.workload, "cuda", "[]", 1e-6, "ok"))
    with pytest.warns(UserWarning, match="skipped on cuda: .*no CUDA device"):
        assert verify_in_model(model, tasks, db, "cuda") == {}
