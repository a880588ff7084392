"""Tuning tasks of a whole model: the fused groups written as unscheduled PrimFuncs.

    tasks = extract_tasks("bert.onnx")            # [Task], heaviest first
    tasks[0].func        # block form, as tcomp.tir.create_func makes it (what the tuner schedules)
    tasks[0].workload    # workload_key(func): identical layers share one task (weight = how many)

A task's function takes its arguments exactly as the executor passes them to the group's
template kernel (``schedule/lower.py``): the buffers ``p0, p1, ...`` of ``kernel_inputs(group)``,
then ``out``. So ``tcomp.compile(model, db=...)`` can run a tuned task function in place of the
template (``tuned_group_func``), unless the database holds a faster measurement of the
template itself (a record of status ``"template"``, which ``task_scheduler.tune_model`` commits)
or the record lost to the template between its neighbours in the model (an in-model verdict
``"rejected"``, ``in_model.py``): tuning does not make a kernel slower than its template.

Groups that become tasks (each anchor kind written by its own module; ``ANCHOR_TASKS``):

* MatMul (MatMul, Gemm, batched MatMul with numpy broadcasting; ``matmul_task.py``): ``C`` over
  the output without unit axes, the epilogue as a second block::

      C[b.., i, j] = sum_k A_view[b.., i, k] * B_view[b.., k, j]
      out[b.., i, j] = epilogue(C[b.., i, j], (b.., i, j))

* Conv, group 1 (``conv_task.py``): pad stage, pixel-major conv with the output channels
  innermost, epilogue; constant weights read re-laid-out (``func.attrs["param_layouts"]``, which
  the compiler applies to the constant);
* MaxPool / AveragePool and grouped (depthwise) Conv (``window_task.py``): pad stage, window
  reduction ``P``, epilogue (an average divided by its count of taps, a conv's bias);
* ReduceSum / Mean / Max / Min / SumSquare / L1 / L2 / LogSum / LogSumExp over any axes
  (``reduce_task.py``; the global pools are ReduceMean / ReduceMax): ``R`` over the kept axes,
  ``out = epilogue(finish(R))``;
* Softmax / LogSoftmax (row max ``M``, exp-sum ``S``, normalize) and LayerNormalization (sum
  ``S1``, squared deviations ``S2``, normalize) over the trailing axes (``norm_task.py``);
* groups without an anchor (elementwise and movement ops): ``out[idx] = view(idx)``.

Every other group (ReduceProd, scans, top-k, scatters, ...) is not a task and keeps its template,
and so are groups with symbolic extents (the tuner measures static shapes), rank-0 outputs,
groups whose value type differs from the type stored (byte-coded types) and anchors over types
their task does not cover (integer pooling, a float16 layer norm or depthwise conv).
"""
from __future__ import annotations

import os
import statistics
import warnings
from dataclasses import dataclass, field

from ..build import lower
from ..errors import TcompError
from ..graph.fusion import FusedGroup
from ..graph.ir import Graph
from ..ops.quant import storage_dtype
from ..schedule.lower import group_views, lower_group
from ..schedule.trace import Trace
from ..targets import resolve_target
from ..targets.cpu.jit import host_target
from ..tir import te
from ..tir.expr import IntImm, substitute
from ..tir.stmt import PrimFunc
from ..tir.views import row_major_flatten, row_major_unflatten
from . import conv_gemm_task, conv_task, matmul_task, norm_task, reduce_task, window_task
from .workload import workload_key


@dataclass
class Task:
    """One kernel to tune; ``weight`` groups of the model run it."""

    name: str
    func: PrimFunc
    workload: str
    weight: int = 1
    group_labels: list = field(default_factory=list)
    template: PrimFunc | None = None   # the template kernel of the first group, the baseline to beat


def model_groups(model_or_graph, input_shapes: dict | None = None, target: str = "cpu") -> list:
    """The fused groups of an ONNX model (path or ModelProto) or a graph, as ``tcomp.compile`` makes
    them for ``target``."""
    from ..compiler import fuse_graph

    if isinstance(model_or_graph, Graph):
        graph = model_or_graph
    else:
        from ..frontend.onnx_importer import import_onnx

        graph = import_onnx(model_or_graph, input_shapes, None)
    return fuse_graph(graph, _fusion_target(target))


def _fusion_target(target: str):
    """The target object whose fusion ``compile`` applies; for cuda, any architecture (fusion does not
    depend on it, and no device is probed)."""
    if target.split()[0] == "cuda":
        from ..targets.cuda.target import CudaTarget

        return CudaTarget("sm_90")
    return resolve_target(target)


def extract_tasks(model_or_graph, target: str = "cpu", input_shapes: dict | None = None) -> list:
    """The tasks of a model, one per distinct workload, heaviest (most groups, most work) first.
    ``target``: "cpu", or a GPU target ("cuda", "cuda -arch=sm_90", "webgpu"), whose templates
    are the kernels ``tcomp.compile`` builds there untuned (``targets/gpu/groups.py``)."""
    make_template = _template_maker(target)
    kind = database_target(target)
    tasks: dict = {}
    for group in model_groups(model_or_graph, input_shapes, target):
        func = group_func(group, kind)
        if func is None:
            continue
        key = workload_key(func)
        if key not in tasks:
            base = group.label.split("+")[0].split("[")[0].lower()
            tasks[key] = Task(f"t{len(tasks)}_{base}_{key[:6]}", func, key, 0, template=make_template(group))
        tasks[key].weight += 1
        tasks[key].group_labels.append(group.label)
    return sorted(tasks.values(), key=lambda t: -t.weight * _work(t.func))


GPU_TARGETS = ("cuda", "webgpu")


def database_target(target: str) -> str:
    """The target name that records are stored under and read by: a GPU target's kind ("cuda" for
    "cuda -arch=sm_90", as ``tcomp.compile`` reads them) and ``-tf32`` where given ("cuda -tf32":
    its products round their operands, ``targets/cuda/tf32.py``), the CPU target as given."""
    from ..targets.cuda.tf32 import OPTION, allows_tf32

    kind = target.split()[0].lower() if target.split() else target
    if kind not in GPU_TARGETS:
        return target
    return f"{kind} {OPTION}" if allows_tf32(target) else kind


def _template_maker(target: str):
    """``group -> template kernel`` of ``target``: the CPU template, or the GPU kernel untuned."""
    gpu = database_target(target)  # "cuda", "cuda -tf32", "webgpu"
    if gpu.split()[0] in GPU_TARGETS:
        from ..targets.gpu.groups import gpu_group_func

        return lambda group: gpu_group_func(group, gpu, name="template")
    if target != "cpu":
        raise TcompError(f"extract_tasks: unknown target {target!r} (known: cpu, {', '.join(GPU_TARGETS)})")
    host = host_target()
    return lambda group: lower_group(group, "template", host.lanes(32), host.num_threads)


def group_func(group: FusedGroup, target: str = "cpu") -> PrimFunc | None:
    """The unscheduled PrimFunc of ``group`` (params ``p0.., out`` as the template's, up to the
    layouts in ``func.attrs["param_layouts"]``), or None when the group is not a task (see the
    module docstring). On a GPU target (``target``: its kind, "cuda" or "webgpu", with options) a
    convolution is an implicit GEMM (``conv_gemm_task.py``) and a matmul takes its GPU form
    (``matmul_gpu``); with ``-tf32`` its fp32 products round their operands to TF32."""
    from ..targets.cuda.tf32 import allows_tf32, tf32_products

    func = _group_func(group, target.split()[0] if target.split() else target)
    return tf32_products(func) if func is not None and allows_tf32(target) else func


def _group_func(group: FusedGroup, target: str) -> PrimFunc | None:
    if group.anchor is not None and _anchor_task(group.anchor) is None:
        return None
    if target in GPU_TARGETS and group.anchor is not None and group.anchor.op in GPU_ANCHOR_TASKS:
        func = _task_func(group, GPU_ANCHOR_TASKS[group.anchor.op])
        if func is not None:
            return func
    return _task_func(group, _anchor_task(group.anchor) if group.anchor is not None else None)


def _task_func(group: FusedGroup, task) -> PrimFunc | None:
    """``group`` as the PrimFunc that ``task`` (an anchor's task function; None without an anchor)
    writes, or None."""
    params, views, acc = group_views(group)
    anchor_shape = group.anchor.outputs[0].shape if group.anchor is not None else group.output.shape
    shapes = [p.shape for p in params] + [anchor_shape]
    if not anchor_shape or not all(isinstance(s, IntImm) or type(s) is int for shape in shapes for s in shape):
        return None
    out_dtype = storage_dtype(group.output.dtype)
    root = views[group.output.uid]
    layouts = {}
    if group.anchor is None:
        if root.dtype != out_dtype:
            return None
        out = te.compute(anchor_shape, lambda *idx: root.fn(*idx), name="out")  # a view takes its index in any signature
    else:
        out = task(group, params, views, layouts, lambda value_at: _epilogue(
            group, root, acc, anchor_shape, out_dtype, value_at))
    if out is None:
        return None
    placeholders = [te.Tensor(p, None) for p in params]
    func = te.create_func(placeholders + [out], name="task")
    if layouts:
        func.attrs["param_layouts"] = layouts
    return func


def _anchor_task(anchor):
    """The task function of an anchor op: ``task(group, params, views, layouts, epilogue)`` returns
    the ``out`` tensor (or None), where ``epilogue(value_at)`` makes ``out`` from the anchor's value."""
    if anchor.op == "Conv":
        return conv_task.conv if anchor.attrs["group"] == 1 else window_task.grouped_conv
    return ANCHOR_TASKS.get(anchor.op)


ANCHOR_TASKS = {"MatMul": matmul_task.matmul, "MaxPool": window_task.pool, "AveragePool": window_task.pool,
                "Softmax": norm_task.softmax, "LogSoftmax": norm_task.softmax,
                "LayerNormalization": norm_task.layer_norm,
                **{op: reduce_task.reduce for op in ("ReduceSum", "ReduceMean", "ReduceMax", "ReduceMin",
                                                      "ReduceSumSquare", "ReduceL1", "ReduceL2", "ReduceLogSum",
                                                      "ReduceLogSumExp")}}
# on GPU targets (where one returns None, as a grouped conv, ANCHOR_TASKS' applies)
GPU_ANCHOR_TASKS = {"MatMul": matmul_task.matmul_gpu, "Conv": conv_gemm_task.conv}


def _epilogue(group, root, acc, anchor_shape, out_dtype, value_at):
    """``out[idx] = epilogue(value_at(*idx), idx)`` over the anchor's output shape (the group's
    ops after the anchor, ``acc`` standing for the anchor's value), or None if its type is not
    the stored one."""
    exit_shape = group.output.shape

    def epilogue(*idx):
        value = value_at(*idx)
        if exit_shape != anchor_shape:  # reshapes in the epilogue: the same row-major position
            idx = row_major_unflatten(row_major_flatten(idx, anchor_shape), exit_shape)
        return substitute(root.fn(*idx), {acc: value})

    probe = epilogue(*(IntImm(0) for _ in anchor_shape))
    if probe.dtype != out_dtype:
        return None
    return te.compute(anchor_shape, epilogue, name="out")


def _work(func: PrimFunc) -> int:
    """Elements written: a rough size to order tasks by."""
    total = 1
    for buf in func.params[-1:]:
        for s in buf.shape:
            total *= int(s.value if isinstance(s, IntImm) else s)
    return total


def open_database(db):
    """``db`` itself, or the ``Database`` at the path ``db``."""
    if not isinstance(db, (str, os.PathLike)):
        return db
    from .database import Database

    return Database(db)


def template_seconds(db, workload: str, target: str) -> float | None:
    """The median measurement of the workload's template kernel in ``db`` (status ``"template"``),
    comparable with the tuned records' re-measured medians: of the measurements taken beside the
    candidates' re-measurements (confirmed) where there are any, else of all."""
    records = [r for r in db.records(workload, target) if r.status == "template" and r.seconds is not None]
    confirmed = [r.seconds for r in records if r.confirmed]
    times = confirmed or [r.seconds for r in records]
    return statistics.median(times) if times else None


def tuned_group_func(group: FusedGroup, db, target: str = "cpu", func: PrimFunc | None = None) -> PrimFunc | None:
    """The group's task function (``func``, or ``group_func(group)``) with the best record of ``db``
    applied, or None (no task, no record, a template measured faster, a record that lost to the
    template in the model: an in-model verdict "rejected", ``in_model.py``, or a record whose trace
    no longer applies: warned)."""
    func = func if func is not None else group_func(group)
    if func is None:
        return None
    workload = workload_key(func)
    record = db.best(workload, target)
    template = template_seconds(db, workload, target)
    if record is None or (template is not None and template <= record.seconds):
        return None
    verdict = db.verdict(workload, target, record.trace)
    if verdict is not None and verdict.status == "rejected":
        return None
    return scheduled_task(group, func, record.trace, {"tuned": record.workload})


def scheduled_task(group: FusedGroup, func: PrimFunc, trace: str, attrs: dict) -> PrimFunc | None:
    """The group's task function ``func`` scheduled by ``trace`` (JSON) and lowered as
    ``tcomp.build`` (and so measurement) lowers it, with ``attrs`` and ``func``'s parameter
    layouts; None (warned) where the trace does not apply."""
    try:
        scheduled = lower(Trace.from_json(trace).apply_to(func).func)
    except TcompError as exc:
        warnings.warn(f"the schedule recorded for {group.label} ({attrs}) does not apply: {exc}")
        return None
    scheduled.attrs.update({"ops": group.label, **attrs})
    if "param_layouts" in func.attrs:
        scheduled.attrs["param_layouts"] = func.attrs["param_layouts"]
    return scheduled
