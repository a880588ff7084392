"""Tuning tasks of whole models (tcomp/tuning/tasks.py), compiling with tuned records, and the
task scheduler's allocation (tcomp/tuning/task_scheduler.py)."""
from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper
from onnx_helpers import mlp_model

import tcomp
from tcomp.schedule.layouts import relayout, source_shape
from tcomp.schedule.lower import lower_group
from tcomp.targets.cpu.jit import host_target
from tcomp.tuning.database import Database, TuningRecord
from tcomp.tuning.rules.blocks import loop_kinds
from tcomp.tuning.search import CONFIRM_ROUNDS
from tcomp.tuning.space import design_space
from tcomp.tuning.task_scheduler import TaskScheduler, report
from tcomp.tuning.tasks import extract_tasks, group_func, model_groups
from tcomp.tuning.workload import workload_key


def _rand(*shape):
    return np.random.default_rng().standard_normal(shape).astype(np.float32)


def _model(nodes, inputs, outputs, weights) -> onnx.ModelProto:
    graph = helper.make_graph(
        nodes, "g", [helper.make_tensor_value_info(n, TensorProto.FLOAT, s) for n, s in inputs],
        [helper.make_tensor_value_info(n, TensorProto.FLOAT, s) for n, s in outputs],
        [numpy_helper.from_array(w, name) for name, w in weights.items()])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)


def _shaped(nodes, x_shape, outputs, weights) -> onnx.ModelProto:
    """``_model`` with the outputs' shapes taken from onnx's shape inference."""
    inferred = onnx.shape_inference.infer_shapes(_model(nodes, [("x", x_shape)], [], weights), strict_mode=True)
    shapes = {v.name: [d.dim_value for d in v.type.tensor_type.shape.dim] for v in inferred.graph.value_info}
    return _model(nodes, [("x", x_shape)], [(name, shapes[name]) for name in outputs], weights)


def _matmul_add_relu():
    nodes = [helper.make_node("MatMul", ["x", "w"], ["h"]), helper.make_node("Add", ["h", "b"], ["a"]),
             helper.make_node("Relu", ["a"], ["y"])]
    return _model(nodes, [("x", [8, 32])], [("y", [8, 48])], {"w": _rand(32, 48), "b": _rand(48)})


def _mlp(width=64):
    return mlp_model(16, width)


def _attention(seq=8, heads=2, dim=16):
    """Q/K/V projections, heads split by Reshape+Transpose, softmax(Q K^T * s) V, heads merged."""
    hidden = heads * dim
    shape = np.array([1, seq, heads, dim], np.int64)
    merged = np.array([1, seq, hidden], np.int64)
    nodes = []
    for name in "qkv":
        nodes += [helper.make_node("MatMul", ["x", f"w{name}"], [f"{name}0"]),
                  helper.make_node("Reshape", [f"{name}0", "shape"], [f"{name}1"]),
                  helper.make_node("Transpose", [f"{name}1"], [f"{name}2"],
                                   perm=[0, 2, 3, 1] if name == "k" else [0, 2, 1, 3])]
    nodes += [helper.make_node("MatMul", ["q2", "k2"], ["s0"]), helper.make_node("Mul", ["s0", "scale"], ["s1"]),
              helper.make_node("Softmax", ["s1"], ["p"], axis=-1), helper.make_node("MatMul", ["p", "v2"], ["o0"]),
              helper.make_node("Transpose", ["o0"], ["o1"], perm=[0, 2, 1, 3]),
              helper.make_node("Reshape", ["o1", "merged"], ["o2"]),
              helper.make_node("MatMul", ["o2", "wo"], ["y"])]
    weights = {f"w{n}": _rand(hidden, hidden) for n in "qkvo"}
    weights.update(shape=shape, merged=merged, scale=np.array(dim ** -0.5, np.float32))
    return _model(nodes, [("x", [1, seq, hidden])], [("y", [1, seq, hidden])], weights)


def _conv_block(batch=1, channels=8, size=12):
    """A ResNet basic block with a strided shortcut: 3x3 conv+bias+relu, a strided 3x3 conv whose
    sum with the 1x1 strided shortcut conv goes through relu, then a dilated conv with uneven pads."""
    c2 = 2 * channels
    nodes = [helper.make_node("Conv", ["x", "w1", "b1"], ["h1"], pads=[1, 1, 1, 1]),
             helper.make_node("Relu", ["h1"], ["a1"]),
             helper.make_node("Conv", ["a1", "w2"], ["h2"], pads=[1, 1, 1, 1], strides=[2, 2]),
             helper.make_node("Conv", ["x", "ws", "bs"], ["s"], strides=[2, 2]),
             helper.make_node("Add", ["h2", "s"], ["r"]), helper.make_node("Relu", ["r"], ["a2"]),
             helper.make_node("Conv", ["a2", "w3"], ["y"], pads=[2, 1, 0, 2], dilations=[2, 1])]
    weights = {"w1": _rand(channels, channels, 3, 3), "b1": _rand(channels), "w2": _rand(c2, channels, 3, 3),
               "ws": _rand(c2, channels, 1, 1), "bs": _rand(c2), "w3": _rand(c2, c2, 3, 3)}
    half = size // 2
    return _model(nodes, [("x", [batch, channels, size, size])], [("y", [batch, c2, half - 2, half + 1])], weights)


def _pools(batch=2, channels=3, height=11, width=13):
    """Max and average pooling with padding, strides, dilation, ceil_mode and count_include_pad,
    a prologue (relu) and epilogues; the global pools (reductions over H, W)."""
    nodes = [helper.make_node("Relu", ["x"], ["r"]),
             helper.make_node("MaxPool", ["r"], ["y0"], kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1]),
             helper.make_node("AveragePool", ["x"], ["a1"], kernel_shape=[3, 3], strides=[2, 2], pads=[1, 0, 1, 2],
                              count_include_pad=1, ceil_mode=1),
             helper.make_node("Mul", ["a1", "two"], ["y1"]),
             helper.make_node("AveragePool", ["x"], ["y2"], kernel_shape=[2, 3], strides=[2, 2], ceil_mode=1),
             helper.make_node("MaxPool", ["x"], ["y3"], kernel_shape=[2, 2], dilations=[2, 1], pads=[0, 1, 1, 0],
                              ceil_mode=1, strides=[1, 2]),
             helper.make_node("AveragePool", ["x"], ["y4"], kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
             helper.make_node("GlobalAveragePool", ["x"], ["y5"]),
             helper.make_node("GlobalMaxPool", ["x"], ["g"]), helper.make_node("Sigmoid", ["g"], ["y6"])]
    return _shaped(nodes, [batch, channels, height, width], [f"y{i}" for i in range(7)],
                   {"two": np.array(2, np.float32)})


def _depthwise(batch=1, channels=4, size=9):
    """MobileNetV2's depthwise conv (bias, Clip to [0, 6]), strided; a channel multiplier of 2 with
    uneven pads; a grouped conv (2 groups of 4 channels) with dilation."""
    c2 = 2 * channels
    nodes = [helper.make_node("Conv", ["x", "w1", "b1"], ["h1"], group=channels, pads=[1, 1, 1, 1], strides=[2, 2]),
             helper.make_node("Clip", ["h1", "zero", "six"], ["y1"]),
             helper.make_node("Conv", ["x", "w2"], ["y2"], group=channels, pads=[0, 1, 2, 1]),
             helper.make_node("Conv", ["x", "w3", "b3"], ["h3"], group=2, dilations=[2, 2], pads=[2, 2, 2, 2]),
             helper.make_node("Relu", ["h3"], ["y3"])]
    weights = {"w1": _rand(channels, 1, 3, 3), "b1": _rand(channels), "w2": _rand(c2, 1, 3, 3),
               "w3": _rand(c2, channels // 2, 3, 3), "b3": _rand(c2),
               "zero": np.array(0, np.float32), "six": np.array(6, np.float32)}
    return _shaped(nodes, [batch, channels, size, size], [f"y{i}" for i in (1, 2, 3)], weights)


def _reductions(shape=(2, 5, 6, 7)):
    """Each reduction kind over leading, middle, trailing and all axes, keepdims or not, with epilogues."""
    nodes = [helper.make_node("ReduceMean", ["x"], ["y0"], axes=[1], keepdims=1),
             helper.make_node("ReduceSum", ["x", "axes02"], ["y1"], keepdims=0),
             helper.make_node("ReduceMax", ["x"], ["m"], axes=[3], keepdims=0), helper.make_node("Relu", ["m"], ["y2"]),
             helper.make_node("ReduceL2", ["x"], ["y3"], axes=[1, 2, 3], keepdims=1),
             helper.make_node("ReduceLogSumExp", ["x"], ["y4"], axes=[2], keepdims=0),
             helper.make_node("ReduceSumSquare", ["x"], ["y5"], axes=[0, 3], keepdims=1),
             helper.make_node("ReduceL1", ["x"], ["y6"], axes=[2, 3], keepdims=0),
             helper.make_node("ReduceMin", ["x"], ["y7"], axes=[0, 1, 2, 3], keepdims=1),
             helper.make_node("Exp", ["x"], ["e"]), helper.make_node("ReduceLogSum", ["e"], ["y8"], axes=[1], keepdims=1),
             helper.make_node("ReduceProd", ["x"], ["y9"], axes=[3], keepdims=1)]
    return _shaped(nodes, list(shape), [f"y{i}" for i in range(10)], {"axes02": np.array([0, 2], np.int64)})


def _norms(batch=2, rows=6, width=20):
    """Softmax (with BERT's IsNaN/Where epilogue), LogSoftmax, LayerNormalization over the last
    axis and over the last two axes (scale and bias broadcast), InstanceNormalization."""
    nodes = [helper.make_node("Softmax", ["x"], ["s"], axis=-1), helper.make_node("IsNaN", ["s"], ["nan"]),
             helper.make_node("Where", ["nan", "zero", "s"], ["y0"]),
             helper.make_node("Mul", ["x", "two"], ["x2"]), helper.make_node("LogSoftmax", ["x2"], ["y1"], axis=2),
             helper.make_node("LayerNormalization", ["x", "g", "b"], ["y2"], axis=-1, epsilon=1e-5),
             helper.make_node("LayerNormalization", ["x", "g2", "b2"], ["n"], axis=1, epsilon=1e-3),
             helper.make_node("Relu", ["n"], ["y3"]),
             helper.make_node("InstanceNormalization", ["x", "gi", "bi"], ["y4"], epsilon=1e-5),
             helper.make_node("Softmax", ["x"], ["y5"], axis=1)]
    weights = {"g": _rand(width), "b": _rand(width), "g2": _rand(1, width), "b2": _rand(rows, width),
               "gi": _rand(rows), "bi": _rand(rows), "zero": np.array(0, np.float32), "two": np.array(2, np.float32)}
    return _shaped(nodes, [batch, rows, width], [f"y{i}" for i in range(6)], weights)


MODELS = {"matmul_add_relu": _matmul_add_relu, "mlp": _mlp, "attention": _attention, "conv_block": _conv_block,
          "conv_block_batch2": lambda: _conv_block(batch=2, channels=4, size=10), "pools": _pools,
          "pools_batch1": lambda: _pools(batch=1, channels=2, height=8, width=7), "depthwise": _depthwise,
          "depthwise_batch2": lambda: _depthwise(batch=2, channels=2, size=6), "reductions": _reductions,
          "reductions_unit": lambda: _reductions((1, 3, 1, 5)), "norms": _norms,
          "norms_unit": lambda: _norms(batch=1, rows=1, width=33)}


def _onnxruntime(model, feeds):
    return ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, feeds)


# ---------------------------------------------------------------- extraction
@pytest.mark.parametrize("name", list(MODELS))
def test_task_funcs_compute_what_the_group_templates_compute(name):
    target = host_target()
    checked = 0
    for group in model_groups(MODELS[name]()):
        func = group_func(group)
        if func is None:
            assert group.anchor is not None and group.anchor.op == "ReduceProd", group.label
            continue
        template = lower_group(group, "template", target.lanes(32), target.num_threads)
        args = [_rand(*shape) for shape in _graph_shapes(template)]
        template_args, task_args = _laid_out(template, args), _laid_out(func, args)
        assert [a.shape for a in task_args] == [tuple(int(s.value) for s in p.shape) for p in func.params[:-1]]
        expected = tcomp.build(template)(*template_args)
        np.testing.assert_allclose(tcomp.build(func)(*task_args), expected, rtol=1e-4, atol=1e-4)
        checked += 1
    assert checked >= 1


def _graph_shapes(kernel) -> list:
    """The shapes of ``kernel``'s inputs as the graph holds them (before ``param_layouts``)."""
    layouts = kernel.attrs.get("param_layouts", {})
    shapes = [tuple(int(s.value) for s in param.shape) for param in kernel.params[:-1]]
    return [source_shape(shape, layouts[i]) if i in layouts else shape for i, shape in enumerate(shapes)]


def _laid_out(kernel, args) -> list:
    """``args`` (graph layouts) as ``kernel`` reads them: constants re-laid-out by its ``param_layouts``."""
    layouts = kernel.attrs.get("param_layouts", {})
    return [relayout(a, layouts[i]) if i in layouts else a for i, a in enumerate(args)]


@pytest.mark.parametrize("name", ["pools", "depthwise", "reductions_unit", "norms"])
def test_every_sketch_of_the_window_reduction_and_norm_tasks_is_correct(name):
    """Each sketch of the design space, sampled with two seeds, computes what the unscheduled task does."""
    for task in extract_tasks(MODELS[name]()):
        func = task.func
        args = [np.abs(_rand(*[int(s.value) for s in p.shape])) + 0.5 for p in func.params[:-1]]  # logs defined
        expected = tcomp.build(func)(*args)
        for trace in design_space(func):
            for seed in range(2):
                sch = trace.apply_to(func, resample=True, seed=seed)
                np.testing.assert_allclose(tcomp.build(sch)(*args), expected, rtol=1e-4, atol=1e-4,
                                           err_msg=f"{task.group_labels}\n{trace}")


@pytest.mark.parametrize("name", ["pools", "depthwise", "reductions", "norms"])
def test_task_funcs_compile_for_cuda(name):
    """The block forms the CPU tuner schedules also build unscheduled for a GPU (default binding;
    compile-only, no device needed), except a full reduction: no spatial loop to bind."""
    pytest.importorskip("cuda.bindings.nvrtc", reason="cuda-python is not installed (pip install 'tcomp[cuda]')")
    from tcomp.targets.gpu.binding import GPULoweringError

    for task in extract_tasks(MODELS[name]()):
        if all(int(s.value) == 1 for s in task.func.params[-1].shape):
            with pytest.raises(GPULoweringError, match="no spatial loop"):
                tcomp.build(task.func, target="cuda -arch=sm_90")
            continue
        assert tcomp.build(task.func, target="cuda -arch=sm_90").ptx()


def test_task_contents_and_weights():
    (task,) = extract_tasks(_matmul_add_relu())
    assert task.weight == 1 and task.group_labels == ["MatMul+Add+Relu"]
    assert task.workload == workload_key(task.func)
    text = str(task.func)
    assert "block C[" in text and "block out[" in text and "parallel" not in text  # unscheduled

    (shared,) = extract_tasks(_mlp())  # two identical layers: one workload
    assert shared.weight == 2 and shared.group_labels == ["MatMul+Add+Relu"] * 2

    model = _attention()
    tasks = extract_tasks(model)
    labels = sorted(label for task in tasks for label in task.group_labels)
    # every group is a task: the (horizontally fused) projections, both batched matmuls with
    # their head-split prologues, the softmax, the output projection
    assert labels == sorted(g.label for g in model_groups(model))
    assert sum("MatMul" in label for label in labels) == 4 and labels.count("Softmax") == 1
    assert len({t.workload for t in tasks}) == len(tasks)


def test_gpu_tasks_take_the_untuned_gpu_kernels_as_templates():
    """On a GPU target the same groups are tasks (matmuls and convs in their GPU forms); each template
    is the kernel that ``tcomp.compile(model, target="cuda")`` builds untuned, bound (compile-only)."""
    pytest.importorskip("cuda.bindings.nvrtc", reason="cuda-python is not installed (pip install 'tcomp[cuda]')")
    model = _attention()
    cpu, gpu = extract_tasks(model), extract_tasks(model, target="cuda -arch=sm_90")
    assert sorted(label for t in gpu for label in t.group_labels) == \
        sorted(label for t in cpu for label in t.group_labels)
    for task in gpu:
        assert task.template.attrs["gpu_schedule"] in ("tiled", "reduction", "default")
        assert tcomp.build(task.template, target="cuda -arch=sm_90").ptx()


def test_extract_tasks_rejects_unknown_target():
    with pytest.raises(tcomp.TcompError, match="unknown target"):
        extract_tasks(_mlp(), target="gpu")


# ---------------------------------------------------------------- compile with records
def _hand_trace(func) -> str:
    """A valid schedule made by hand: each block's outer loop parallel where it is spatial, the
    output's inner loop vectorized."""
    sch = tcomp.Schedule(func)
    for name in [b.name for b in sch.blocks()]:
        rv = sch.get_block(name)
        loops = sch.get_loops(rv)
        if not loops:
            continue
        if loop_kinds(sch, sch.get_block_obj(rv))[0] == "S":
            sch.parallel(loops[0])
        if name == "out":
            extent = int(sch.get(loops[-1]).extent.value)
            if extent % 4 == 0:
                _, inner = sch.split(loops[-1], [None, 4])
                sch.vectorize(inner)
    return sch.trace.to_json()


def _database(path, tasks, target="cpu") -> Database:
    """A database holding one hand-made record per task."""
    db = Database(path)
    for task in tasks:
        db.commit(TuningRecord(task.workload, target, _hand_trace(task.func), 1e-6, "ok"))
    return db


@pytest.mark.parametrize("name", list(MODELS))
def test_compile_with_records_matches_onnxruntime_and_uses_them(name, tmp_path):
    model = MODELS[name]()
    tasks = extract_tasks(model)
    _database(tmp_path / "tuning.db", tasks)
    module = tcomp.compile(model, db=str(tmp_path / "tuning.db"))
    tuned = [k for k in module.kernels.values() if k.func.attrs.get("tuned")]
    assert {k.func.attrs["tuned"] for k in tuned} == {t.workload for t in tasks}
    parallel = {t.workload: "parallel" in _hand_trace(t.func) for t in tasks}  # not a full reduction
    for kernel in tuned:  # the hand-made schedule, not a template (whose blocks are named after the kernel)
        text = str(kernel.func)
        assert ("parallel" in text) == parallel[kernel.func.attrs["tuned"]] and "block out[" in text
    assert sum(len(k.groups) for k in tuned) == sum(t.weight for t in tasks)
    x = _rand(*[int(s) for s in module.inputs[0].shape])
    expected = _onnxruntime(model, {"x": x})
    for got, want in zip(module.run({"x": x}), expected):
        scale = max(1.0, float(np.abs(want).max()))  # chained convs reach hundreds: float32 sums cancel
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5 * scale)
    untuned = tcomp.compile(model)
    assert not any(k.func.attrs.get("tuned") for k in untuned.kernels.values())


def test_compile_keeps_templates_without_a_record_or_when_faster(tmp_path):
    model = _matmul_add_relu()
    _database(tmp_path / "other.db", extract_tasks(_mlp()))  # records of other workloads only
    module = tcomp.compile(model, db=Database(tmp_path / "other.db"))
    assert not any(k.func.attrs.get("tuned") for k in module.kernels.values())

    (task,) = extract_tasks(model)
    db = _database(tmp_path / "t.db", [task])  # the tuned record takes 1e-6 s
    db.commit(TuningRecord(task.workload, "cpu", "[]", 1e-3, "template"))
    assert any(k.func.attrs.get("tuned") for k in tcomp.compile(model, db=db).kernels.values())
    for _ in range(2):  # the template's median measurement now beats the tuned record
        db.commit(TuningRecord(task.workload, "cpu", "[]", 1e-7, "template"))
    assert not any(k.func.attrs.get("tuned") for k in tcomp.compile(model, db=db).kernels.values())


def test_tune_a_model_then_compile_with_its_database(tmp_path):
    model = _matmul_add_relu()
    path = tmp_path / "tuning.db"
    results = tcomp.tune(model, trials=4, db=path, progress=False)
    (result,) = results
    assert result.trials == 4 and result.tuned is not None and result.template is not None
    assert Database(path).best(result.task.workload, "cpu").seconds == result.tuned
    assert result.best == (result.tuned if result.applied else result.template)
    assert "MatMul+Add+Relu" in report(results)
    module = tcomp.compile(model, db=path)
    used = any(k.func.attrs.get("tuned") == result.task.workload for k in module.kernels.values())
    # the faster of the tuned schedule and the template, unless the tuned one lost in the model
    assert used == result.applied == (result.tuned < result.template and result.verdict.status == "verified")
    x = _rand(8, 32)
    np.testing.assert_allclose(module.run({"x": x})[0], _onnxruntime(model, {"x": x})[0], rtol=1e-4, atol=1e-4)


# ---------------------------------------------------------------- task scheduler
def test_scheduler_gives_every_task_a_round_first():
    scheduler = TaskScheduler([1, 5, 2], round_trials=8)
    order = []
    for _ in range(3):
        index = scheduler.next_task()
        order.append(index)
        scheduler.update(index, 8, 1e-3)
    assert order == [0, 1, 2]


def test_scheduler_prefers_weight_times_latency_then_recent_gain():
    scheduler = TaskScheduler([1, 4], round_trials=8)
    scheduler.update(0, 8, 2e-3)   # 2 ms once
    scheduler.update(1, 8, 1e-3)   # 1 ms four times: 4 ms of the model
    assert scheduler.next_task() == 1
    # the same best time and rounds: the task that is still improving goes first
    scheduler = TaskScheduler([1, 1])
    for best0, best1 in [(4e-3, 2e-3), (3e-3, 2e-3), (2e-3, 2e-3)]:
        scheduler.update(0, 8, best0)
        scheduler.update(1, 8, best1)
    assert scheduler.expected_gain(0) > scheduler.expected_gain(1) and scheduler.next_task() == 0
    # a stalled task still gets rounds once its latency share is large enough
    scheduler.update(0, 8, 2e-3)
    heavy = TaskScheduler([1, 10])
    for best in (4e-3, 3e-3, 2e-3):
        heavy.update(0, 8, best)
        heavy.update(1, 8, 2e-3)
    assert heavy.next_task() == 1


def test_scheduler_drops_exhausted_and_failing_tasks():
    scheduler = TaskScheduler([1, 1, 1], retries=2)
    scheduler.update(0, 0, None)          # nothing to measure: finished
    scheduler.update(1, 8, None)          # no correct candidate yet: one retry
    scheduler.update(2, 8, 1e-3)
    assert scheduler.tasks[0].finished and not scheduler.tasks[1].finished
    scheduler.update(1, 8, None)
    assert scheduler.tasks[1].finished and scheduler.next_task() == 2
    scheduler.update(2, 0, 1e-3)
    assert scheduler.next_task() is None


def test_scheduler_run_spends_the_budget_where_latency_is():
    """Synthetic tasks whose best time falls like base / trials**0.3: the heavy one gets most rounds."""
    rng = np.random.default_rng()
    bases = [1e-3, 1e-3, 1e-3]
    weights = [12, 1, 1]
    spent = [0, 0, 0]

    def step(index, count):
        spent[index] += count
        noise = 1 + 0.05 * rng.random()
        return count, bases[index] * noise / spent[index] ** 0.3

    rounds = []
    scheduler = TaskScheduler(weights, round_trials=8)
    scheduler.run(step, trials=200, on_round=lambda index, measured: rounds.append(index))
    assert sum(spent) == 200 and rounds[:3] == [0, 1, 2]
    assert spent[0] > spent[1] + spent[2]
    assert all(s >= 8 for s in spent)
    assert scheduler.estimated_latency() == pytest.approx(
        sum(w * t.best for w, t in zip(weights, scheduler.tasks)))


def test_scheduler_stops_starting_rounds_when_the_budget_says_so():
    asked = []

    def may_start(count):
        asked.append(count)
        return len(asked) <= 3

    scheduler = TaskScheduler([1, 1], round_trials=8)
    scheduler.run(lambda index, count: (count, 1e-3), trials=100, may_start=may_start)
    assert sum(t.trials for t in scheduler.tasks) == 24 and asked == [8, 8, 8, 8]


def test_tune_model_within_a_time_budget(tmp_path):
    """A budget too small for more than the first round (rounds must leave time to confirm)."""
    model = _mlp()
    results = tcomp.tune(model, trials=64, db=tmp_path / "t.db", progress=False, max_seconds=1e-3)
    assert 0 < sum(r.trials for r in results) <= 16
    x = _rand(16, 64)
    module = tcomp.compile(model, db=tmp_path / "t.db")
    np.testing.assert_allclose(module.run({"x": x})[0], _onnxruntime(model, {"x": x})[0], rtol=1e-4, atol=1e-4)


def test_tune_model_resumed_on_its_database_starts_with_the_tasks_no_run_reached(tmp_path):
    nodes = [helper.make_node("MatMul", ["x", "w0"], ["h"]), helper.make_node("Relu", ["h"], ["r"]),
             helper.make_node("MatMul", ["r", "w1"], ["y"])]  # two workloads
    model = _model(nodes, [("x", [16, 64])], [("y", [16, 32])], {"w0": _rand(64, 64), "w1": _rand(64, 32)})
    first = tcomp.tune(model, trials=4, db=tmp_path / "t.db", progress=False, confirm_top=0)
    assert len(first) == 2 and sorted(r.trials for r in first) == [0, 4]
    second = tcomp.tune(model, trials=4, db=tmp_path / "t.db", progress=False, confirm_top=0)
    assert [r.trials for r in second] == [4, 4]  # the task searched first kept its 4, the other got its round
    assert all(r.tuned is not None for r in second)


def test_cli_tune_prints_the_kernel_table(tmp_path, capsys):
    from tcomp.cli import main

    onnx.save(_mlp(), tmp_path / "mlp.onnx")
    assert main(["tune", str(tmp_path / "mlp.onnx"), "--trials", "4", "--db", str(tmp_path / "t.db")]) == 0
    out = capsys.readouterr().out
    assert "share" in out and "tuned ms" in out and "template" in out and "MatMul+Add+Relu" in out
    assert "model tuned" in out and "model tmpl" in out
    (task,) = extract_tasks(_mlp())
    records = Database(tmp_path / "t.db").records(task.workload, "cpu")
    statuses = [r.status for r in records if not r.confirmed]  # less the re-measured top candidates
    assert statuses.count("template") == 3 and len(statuses) == 7
    # each ok one of the 4 re-measured, with the template beside them in each round
    assert sum(r.confirmed and r.status == "ok" for r in records) == statuses.count("ok")
    assert sum(r.confirmed and r.status == "template" for r in records) == CONFIRM_ROUNDS
