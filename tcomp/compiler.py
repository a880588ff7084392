"""``tcomp.compile``: ONNX model -> graph IR -> fused groups -> kernels -> executable module."""
from __future__ import annotations

import hashlib
import sys
import time
from dataclasses import dataclass, field

from .errors import TcompError
from .frontend.onnx_importer import import_onnx
from .graph.fusion import fuse
from .graph.ir import Graph
from .graph.passes import fuse_conv_maxpool, simplify_graph
from .runtime.device_executor import DeviceExecutor
from .runtime.executor import ARENA, CONST, INPUT, OUTPUT, Executor, Intermediate, Slot, Step, TensorSpec
from .runtime.memory_plan import MemoryPlan
from .schedule.layouts import relayout
from .schedule.lower import kernel_inputs, lower_group
from .targets import resolve_target
from .tir.stmt import PrimFunc


@dataclass
class Kernel:
    """One generated kernel and the fused groups that run it."""

    name: str
    func: PrimFunc
    groups: list = field(default_factory=list)


class CompiledModule:
    """A compiled model: ``run(feeds)`` like onnxruntime's ``InferenceSession.run(None, feeds)``."""

    def __init__(self, graph: Graph, groups: list, kernels: dict, executor: Executor, target,
                 compile_seconds: float):
        self.graph = graph
        self.groups = groups
        self.kernels = kernels
        self.executor = executor
        self.target = target
        self.compile_seconds = compile_seconds

    @property
    def memory_plan(self) -> MemoryPlan | None:
        """The arena layout of intermediates (for symbolic shapes: of the sizes last run, None before)."""
        return self.executor.memory_plan

    @property
    def input_names(self) -> list:
        return [spec.name for spec in self.executor.inputs]

    @property
    def output_names(self) -> list:
        return [spec.name for spec in self.executor.outputs]

    @property
    def inputs(self) -> list:
        """[TensorSpec(name, shape, dtype)] of the inputs."""
        return list(self.executor.inputs)

    @property
    def outputs(self) -> list:
        return list(self.executor.outputs)

    def run(self, feeds: dict, device_outputs: bool = False) -> list:
        """Outputs as numpy arrays. On a device target (cuda), inputs may also be device tensors
        (torch/cupy, read in place), and ``device_outputs=True`` leaves the outputs on the device
        (objects with ``__dlpack__`` and ``__cuda_array_interface__``: ``torch.from_dlpack(out)``)."""
        if not isinstance(feeds, dict):
            raise TcompError("run() takes a dict {input name: numpy array}; call the module itself with "
                             "positional arrays")
        if isinstance(self.executor, DeviceExecutor):
            return self.executor.run(feeds, device_outputs)
        if device_outputs:
            raise TcompError(f"device_outputs=True needs a device target (cuda); this module runs on {self.target.name}")
        return self.executor.run({name: host_array(value) for name, value in feeds.items()})

    def __call__(self, *arrays, **named):
        if arrays and len(arrays) != len(self.input_names):
            raise TcompError(f"expected {len(self.input_names)} inputs {self.input_names}, got {len(arrays)}")
        feeds = dict(zip(self.input_names, arrays))
        feeds.update(named)
        return self.run(feeds)

    def profile(self, feeds: dict, repeat: int = 10, back_to_back: bool = False) -> list:
        """[(kernel name, fused ops, median seconds)] per step, each timed ``repeat`` times: once per run
        of the model, or with ``back_to_back`` that many times in a row (``runtime.executor.profile_order``)."""
        times = self.executor.profile(feeds, repeat, back_to_back)
        return [(step.kernel, step.label, t) for step, t in zip(self.executor.steps, times)]

    def assembly(self) -> str:
        return self.executor.jit.assembly()

    def export_web(self, out_dir, input_shapes: dict | None = None, variants: int = 8):
        """Writes a browser bundle of a ``webgpu`` module to ``out_dir`` (``tcomp.js``, ``manifest.json``,
        WGSL kernels, ``weights.bin``; ``targets/webgpu/web_export.py``) and returns its path.
        ``input_shapes`` binds symbolic sizes; ``variants``: schedules per heavy kernel that the browser
        times on first load (1 to 32)."""
        from .targets.webgpu.web_export import export_web

        return export_web(self, out_dir, input_shapes, variants)


def compile(model, target: str = "cpu", input_shapes: dict | None = None,
            num_threads: int | None = None, constant_inputs: dict | None = None,
            example_inputs=None, db=None, schedule: str = "predicted") -> CompiledModule:
    """Compiles an ONNX model (``onnx.ModelProto`` or path) for ``target``.

    A ``torch.nn.Module`` is traced with ``example_inputs`` (a tuple of tensors) by
    ``torch.export`` and imported from its ATen graph (``frontend/torch_importer.py``);
    a ``torch.export.ExportedProgram`` is imported as is; a graph-IR ``Graph`` is compiled as is.

    ``input_shapes`` ({input name: shape}) sizes symbolic dimensions. ``constant_inputs``
    ({input name: array}) freezes graph inputs to the given values: the module is
    specialized on them and no longer takes them as inputs. Models that compute a
    shape, axes, pads ... from a graph input need it (``tcomp.ShapeOperandError``
    names those inputs); ``tcomp.backend`` recompiles on new values automatically.

    ``schedule`` chooses the kernels of fused groups that are tuning tasks
    (``tcomp/tuning/tasks.py``): ``"predicted"`` (default) runs the schedule the shipped cost model
    predicts fastest among the group's template and its design space's best predicted candidates
    (``tcomp/tuning/predicted.py``; small kernels keep the template); ``"template"`` runs the
    template kernels. ``db`` (a tuning database path or ``tcomp.tuning.database.Database``):
    with either choice, a task with records for ``target`` runs the best record's schedule (or
    its template, where the template measured faster).
    """
    start = time.perf_counter()
    tgt = resolve_target(target, num_threads)
    graph = _import_model(model, input_shapes, constant_inputs, example_inputs)
    groups = fuse_graph(graph, tgt)
    if tgt.name != "cpu":  # a device target
        kernels, group_kernel = _lower_unique(groups, tgt, _gpu_schedules(schedule, db, tgt))
    else:
        kernels, group_kernel = _lower_unique(groups, tgt, _task_schedules(schedule, db, target, tgt))
    jit = tgt.build([k.func for k in kernels.values()])
    executor = _build_executor(graph, groups, group_kernel, kernels, jit, device=tgt.name != "cpu")
    return CompiledModule(graph, groups, kernels, executor, tgt, time.perf_counter() - start)


def fuse_graph(graph: Graph, tgt) -> list:
    """The fused groups that ``compile`` lowers on ``tgt`` (a target object): ``graph`` simplified and
    rewritten for the target in place (on the CPU, Conv+Relu+MaxPool as one kernel), then fused.
    The tuner takes its tasks from the same groups (``tuning/tasks.py``)."""
    simplify_graph(graph)
    if tgt.name == "cpu":
        fuse_conv_maxpool(graph, tgt.lanes(32), tgt.num_threads)
    return fuse(graph, getattr(tgt, "max_fused_buffers", None))


def _import_model(model, input_shapes, constant_inputs, example_inputs) -> Graph:
    """The graph of ``model``; torch is imported only for a torch model (it is an optional dependency)."""
    if isinstance(model, Graph):
        return model
    torch = sys.modules.get("torch")
    if torch is not None and isinstance(model, (torch.nn.Module, torch.export.ExportedProgram)):
        if input_shapes or constant_inputs:
            raise TcompError("input_shapes and constant_inputs apply to ONNX models; a torch module is "
                             "specialized on the shapes of its example_inputs")
        from .frontend.torch_importer import import_torch  # needs torch: loaded only for torch models

        return import_torch(model, example_inputs)
    if example_inputs is not None:
        raise TcompError(f"example_inputs apply to torch modules, not to {type(model).__name__}")
    return import_onnx(model, input_shapes, constant_inputs)


def host_array(value):
    """A numpy array of ``value``; torch tensors (recognized without importing torch) convert without a copy
    where their layout allows."""
    if type(value).__module__.startswith("torch") and hasattr(value, "numpy"):
        return value.detach().cpu().numpy()
    return value


SCHEDULES = ("predicted", "template")


def _task_schedules(schedule: str, db, target: str, tgt):
    """``group -> scheduled PrimFunc or None`` (None: the group's template), or None where every
    group runs its template."""
    if schedule not in SCHEDULES:
        raise TcompError(f"compile: unknown schedule {schedule!r} (known: {', '.join(SCHEDULES)})")
    if schedule == "template" and db is None:
        return None
    from .tuning.tasks import open_database, tuned_group_func  # the tuner loads only when used

    database = open_database(db) if db is not None else None
    if schedule == "template":
        return lambda group: tuned_group_func(group, database, target)
    from .tuning.predicted import PredictedSchedules

    return PredictedSchedules(tgt, database, target)


def _gpu_schedules(schedule: str, db, tgt):
    """``group -> GPU kernel function`` (``targets/gpu/groups.py``); a ``db`` record for ``cuda`` wins.
    Both schedules take the GPU default schedule (no GPU cost model ships yet)."""
    from .targets.gpu.groups import gpu_group_func

    if schedule not in SCHEDULES:
        raise TcompError(f"compile: unknown schedule {schedule!r} (known: {', '.join(SCHEDULES)})")
    database = None
    if db is not None:
        from .tuning.tasks import open_database

        database = open_database(db)
    made: dict = {}  # workload -> kernel function: identical layers are scheduled once
    return lambda group: gpu_group_func(group, getattr(tgt, "target", tgt.name), database, cache=made)


def _lower_unique(groups: list, target, tuned=None) -> tuple:
    """Lowers every group (``tuned(group)`` first where given); identical kernels (same IR up to
    the name) are generated once."""
    kernels: dict = {}
    by_text: dict = {}
    group_kernel = []
    for index, group in enumerate(groups):
        try:
            func = tuned(group) if tuned is not None else None
            if func is None:
                func = lower_group(group, "kernel", target.lanes(32), target.num_threads)
        except TcompError:
            raise
        except Exception as exc:  # a bug in tcomp: say where it happened
            nodes = ", ".join(f"'{n.name}' ({n.op})" for n in group.nodes)
            raise TcompError(f"internal error while lowering the fused group {group.label} "
                             f"(nodes {nodes}): {type(exc).__name__}: {exc}") from exc
        text = str(func)
        key = hashlib.sha1(text.encode()).hexdigest()[:10]
        if key not in by_text:
            base = group.label.split("+")[0].split("[")[0].lower()
            func.name = f"k{len(kernels)}_{base}_{key[:6]}"
            by_text[key] = Kernel(func.name, func)
            kernels[func.name] = by_text[key]
        kernel = by_text[key]
        kernel.groups.append(index)
        group_kernel.append(kernel.name)
    return kernels, group_kernel


def _build_executor(graph: Graph, groups: list, group_kernel: list, kernels: dict, jit,
                    device: bool = False) -> Executor | DeviceExecutor:
    input_index = {v.uid: i for i, v in enumerate(graph.inputs)}
    output_index = {}
    for i, v in enumerate(graph.outputs):
        output_index.setdefault(v.uid, i)
    constants, const_index = [], {}
    produced_at = {g.output.uid: step for step, g in enumerate(groups)}
    last_use: dict = {}
    for step, group in enumerate(groups):
        for value in group.inputs:
            last_use[value.uid] = step
    intermediates, arena_index = [], {}
    for step, group in enumerate(groups):
        uid = group.output.uid
        if uid not in output_index:
            arena_index[uid] = len(intermediates)
            intermediates.append(Intermediate(step, last_use.get(uid, step), group.output.type.nbytes))

    def slot_of(value, layout=None) -> Slot:
        if value.uid in input_index:
            return Slot(INPUT, input_index[value.uid])
        if value.is_const:
            key = (value.uid, layout)
            if key not in const_index:
                const_index[key] = len(constants)
                constants.append(value.const if layout is None else relayout(value.const, layout))
            return Slot(CONST, const_index[key])
        if value.uid in output_index:
            return Slot(OUTPUT, output_index[value.uid])
        return Slot(ARENA, arena_index[value.uid])

    steps = []
    for i, g in enumerate(groups):
        func = kernels[group_kernel[i]].func
        layouts = func.attrs.get("param_layouts", {})  # constants the kernel reads re-laid-out
        args = [slot_of(v, layouts.get(i)) for i, v in enumerate(kernel_inputs(g))] + [slot_of(g.output)]
        steps.append(Step(group_kernel[i], args, g.label, tuple(v.name for v in func.size_vars)))
    output_sources = []  # None where a kernel writes the output, else where to copy it from
    for index, v in enumerate(graph.outputs):
        if v.uid in produced_at and output_index[v.uid] == index:
            output_sources.append(None)
        elif v.uid in produced_at:
            output_sources.append(Slot(OUTPUT, output_index[v.uid]))
        else:
            output_sources.append(slot_of(v))
    inputs = [TensorSpec(v.name, v.shape, v.dtype) for v in graph.inputs]
    names = graph.output_names or [v.name for v in graph.outputs]
    outputs = [TensorSpec(name, v.shape, v.dtype) for name, v in zip(names, graph.outputs)]
    if device:
        return DeviceExecutor(jit, steps, inputs, outputs, output_sources, constants, intermediates,
                              graph.constraints)
    return Executor(jit, steps, inputs, outputs, output_sources, constants, intermediates, graph.constraints)


__all__ = ["compile", "CompiledModule"]
