"""Untuned compiles with the cost model's predicted schedules (tcomp/tuning/predicted.py)."""
from __future__ import annotations

import numpy as np
import onnxruntime as ort
import pytest
from onnx_helpers import mlp_model
from te_kernels import matmul_func

import tcomp
from tcomp.costmodel import xgb
from tcomp.costmodel.model import CostModel
from tcomp.tuning import predicted
from tcomp.tuning.database import Database, TuningRecord
from tcomp.tuning.tasks import extract_tasks


def _rand(*shape):
    return np.random.default_rng().standard_normal(shape).astype(np.float32)


def _mlp(rows=128, width=256):
    """Two layers of the same shape (one workload), above the work threshold by default."""
    return mlp_model(rows, width)


def _check_against_onnxruntime(module, model):
    x = _rand(*[int(s) for s in module.inputs[0].shape])
    want = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, {"x": x})
    np.testing.assert_allclose(module.run({"x": x})[0], want[0], rtol=1e-4, atol=1e-4)


class _PreferScheduled(CostModel):
    """Scores template kernels (named "template" by the lowering) ``gap`` below every design-space
    candidate (in log throughput)."""

    def __init__(self, gap: float = 1.0):
        self.gap = gap

    def update(self, funcs, seconds, groups=None):
        pass

    def predict(self, funcs):
        return np.asarray([-self.gap if getattr(f, "func", f).name == "template" else 0.0 for f in funcs])

    def save(self, path):
        raise NotImplementedError

    @classmethod
    def load(cls, path):
        raise NotImplementedError


def test_predicted_compile_matches_onnxruntime():
    model = _mlp()
    _check_against_onnxruntime(tcomp.compile(model, schedule="predicted"), model)


def test_predicted_candidates_are_lowered_and_run_correctly(monkeypatch):
    monkeypatch.setattr(xgb, "load_pretrained", lambda target="cpu": _PreferScheduled())
    model = _mlp()
    module = tcomp.compile(model, schedule="predicted")
    (task,) = extract_tasks(model)
    chosen = [k for k in module.kernels.values() if k.func.attrs.get("predicted")]
    assert [k.func.attrs["predicted"] for k in chosen] == [task.workload] and len(chosen[0].groups) == 2
    _check_against_onnxruntime(module, model)


def test_a_candidate_predicted_less_than_the_margin_faster_keeps_the_template(monkeypatch):
    model = _mlp()
    for gap, chosen in ((0.9 * predicted.MARGIN, False), (1.1 * predicted.MARGIN, True)):
        monkeypatch.setattr(xgb, "load_pretrained", lambda target="cpu", gap=gap: _PreferScheduled(gap))
        module = tcomp.compile(model, schedule="predicted")
        assert any("predicted" in k.func.attrs for k in module.kernels.values()) == chosen
    _check_against_onnxruntime(module, model)


def test_predicted_choice_is_deterministic():
    model = _mlp()
    first, second = (tcomp.compile(model, schedule="predicted") for _ in range(2))
    assert [str(k.func) for k in first.kernels.values()] == [str(k.func) for k in second.kernels.values()]


def test_template_schedule_keeps_every_template():
    module = tcomp.compile(_mlp(), schedule="template")
    assert not any("predicted" in k.func.attrs or "tuned" in k.func.attrs for k in module.kernels.values())


def test_small_kernels_keep_the_template_without_loading_the_model(monkeypatch):
    def refuse(target="cpu"):
        raise AssertionError("the cost model was loaded for kernels below the work threshold")

    monkeypatch.setattr(xgb, "load_pretrained", refuse)
    model = _mlp(rows=8, width=32)
    module = tcomp.compile(model, schedule="predicted")
    assert not any("predicted" in k.func.attrs for k in module.kernels.values())
    _check_against_onnxruntime(module, model)


def test_database_records_win_over_prediction(monkeypatch, tmp_path):
    monkeypatch.setattr(xgb, "load_pretrained", lambda target="cpu": _PreferScheduled())
    model = _mlp()
    (task,) = extract_tasks(model)
    sch = tcomp.Schedule(task.func)
    sch.parallel(sch.get_loops(sch.get_block("C"))[0])
    db = Database(tmp_path / "tuning.db")
    db.commit(TuningRecord(task.workload, "cpu", sch.trace.to_json(), 1e-6, "ok"))
    module = tcomp.compile(model, db=db, schedule="predicted")
    kinds = [(k.func.attrs.get("tuned"), k.func.attrs.get("predicted")) for k in module.kernels.values()]
    assert (task.workload, None) in kinds and not any(p for _, p in kinds)
    _check_against_onnxruntime(module, model)

    only_template = Database(tmp_path / "template.db")  # a measured template beats any prediction
    only_template.commit(TuningRecord(task.workload, "cpu", "[]", 1e-3, "template"))
    module = tcomp.compile(model, db=only_template, schedule="predicted")
    assert not any("predicted" in k.func.attrs or "tuned" in k.func.attrs for k in module.kernels.values())


def test_unknown_schedule_is_refused():
    with pytest.raises(tcomp.TcompError, match="unknown schedule 'fast'"):
        tcomp.compile(_mlp(8, 32), schedule="fast")


@pytest.mark.parametrize("m,n,k", [(64, 48, 32), (7, 5, 3)])
def test_iterations_count_multiply_adds_and_epilogue_stores(m, n, k):
    assert predicted.iterations(matmul_func(m, n, k)) == m * n * k
    assert predicted.iterations(matmul_func(m, n, k, relu=True)) == m * n * k + m * n
