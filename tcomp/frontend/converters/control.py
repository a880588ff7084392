"""Converters of the control-flow ops If, Loop and Scan: their subgraphs are inlined.

* If with a constant condition imports the taken branch. With a run-time condition both
  branches are imported and each output is ``Where(cond, then, else)`` (branches have no
  side effects), which needs outputs of equal shapes; otherwise the condition is a
  compile-time operand (``NotConstantError``: the backend specializes on it).
* Loop is unrolled: the trip count and the condition must be known at compile time, and
  the body's condition output must fold to a constant at every iteration.
* Scan (opset 9 and later) is unrolled over the static extent of its scan axes.

Subgraph nodes go through the importer like the main graph's, with the enclosing names
visible (``ctx.scope``) and the subgraph's inputs bound to the values of the iteration.
"""
from __future__ import annotations

from collections import ChainMap

import numpy as np
from onnx import numpy_helper

from ...graph.ir import Value
from .common import ConvertError, NotConstantError, const_input, converter, normalize_axis, reshape_to

MAX_UNROLLED_ITERATIONS = 4096


def import_subgraph(ctx, graph, bindings: dict) -> list:
    """Imports ``graph``'s nodes into ``ctx.graph`` with its inputs bound to ``bindings`` (in order);
    returns the values of its outputs."""
    from ..onnx_importer import _import_node  # the importer imports this package: no cycle at run time

    if len(bindings) != len(graph.input):
        raise ConvertError(f"subgraph '{graph.name}' takes {len(graph.input)} inputs, {len(bindings)} given")
    local = {inp.name: value for inp, value in zip(graph.input, bindings)}
    for init in graph.initializer:
        local[init.name] = Value.constant(init.name, numpy_helper.to_array(init))
    scope = ChainMap(local, ctx.scope)
    outer_scope, outer_node = ctx.scope, ctx.onnx_node
    ctx.scope = scope
    try:
        for node in graph.node:
            _import_node(ctx, node, scope, ctx.model)
    finally:
        ctx.scope, ctx.onnx_node = outer_scope, outer_node
    missing = [out.name for out in graph.output if out.name not in scope]
    if missing:
        raise ConvertError(f"subgraph '{graph.name}' output {missing[0]} is produced by no node")
    return [scope[out.name] for out in graph.output]


def _scalar(value, dtype) -> Value:
    return Value.constant("iteration", np.array(value, dtype=dtype))


def _truth(value, what: str) -> bool:
    data = const_input(value, what)
    if data.size != 1:
        raise ConvertError(f"{what} has {data.size} elements (1 expected)")
    return bool(data.reshape(()))


@converter("If")
def _if(ctx, inputs, attrs):
    cond = inputs[0]
    if cond.is_const:
        return import_subgraph(ctx, attrs["then_branch"] if _truth(cond, "If condition") else attrs["else_branch"],
                               [])
    try:
        taken = import_subgraph(ctx, attrs["then_branch"], [])
        other = import_subgraph(ctx, attrs["else_branch"], [])
    except Exception:  # noqa: BLE001 - a branch that does not compile for these shapes
        raise NotConstantError(cond, "If condition (a branch does not compile on its own)") from None
    if any(a.shape != b.shape or a.dtype != b.dtype for a, b in zip(taken, other)):
        raise NotConstantError(cond, "If condition (the branches' outputs differ in shape or type)")
    flag = reshape_to(ctx, cond, ())
    return [ctx.emit1("Where", [flag, a, b]) for a, b in zip(taken, other)]


@converter("Loop")
def _loop(ctx, inputs, attrs):
    body = attrs["body"]
    trip = inputs[0] if inputs and inputs[0] is not None else None
    cond = inputs[1] if len(inputs) > 1 and inputs[1] is not None else None
    states = list(inputs[2:])
    trips = int(const_input(trip, "Loop trip count").reshape(())) if trip is not None else None
    running = _truth(cond, "Loop condition") if cond is not None else True
    if trips is None and cond is None:
        raise ConvertError("a Loop with neither trip count nor condition never ends")
    scans: list = []
    i = 0
    while running and (trips is None or i < trips):
        if i >= MAX_UNROLLED_ITERATIONS:
            raise ConvertError(f"more than {MAX_UNROLLED_ITERATIONS} iterations: too many to unroll")
        outs = import_subgraph(ctx, body, [_scalar(i, np.int64), _scalar(running, np.bool_)] + states)
        if len(outs) < 1 + len(states):
            raise ConvertError(f"the body has {len(outs)} outputs, {1 + len(states)} or more expected")
        running = _truth(outs[0], "the Loop body's condition output")
        states = outs[1:1 + len(states)]
        scans.append(outs[1 + len(states):])
        i += 1
    count = len(ctx.onnx_node.output) - len(states)
    if count and not scans:
        raise ConvertError("the Loop runs no iteration: the shapes of its scan outputs are unknown")
    stacked = [_stack(ctx, [step[k] for step in scans], 0) for k in range(count)]
    return states + stacked


def _stack(ctx, values: list, axis: int) -> Value:
    """``values`` (equal shapes) stacked along a new ``axis``."""
    shape = values[0].shape
    if any(v.shape != shape for v in values):
        raise ConvertError(f"scan outputs change shape between iterations ({[list(v.shape) for v in values]})")
    expanded = [reshape_to(ctx, v, shape[:axis] + (1,) + shape[axis:]) for v in values]
    return expanded[0] if len(expanded) == 1 else ctx.emit1("Concat", expanded, {"axis": axis})


def _take(ctx, value, axis: int, index: int) -> Value:
    """value[..., index, ...] along ``axis``, the axis dropped."""
    rank = len(value.shape)
    starts, steps = [0] * rank, [1] * rank
    starts[axis] = index
    shape = list(value.shape)
    shape[axis] = 1
    part = value if value.shape[axis] == 1 else ctx.emit1("Slice", [value], {"starts": starts, "steps": steps,
                                                                            "out_shape": shape})
    return reshape_to(ctx, part, value.shape[:axis] + value.shape[axis + 1:])


@converter("Scan")
def _scan(ctx, inputs, attrs):
    if ctx.opset < 9:
        raise ConvertError("Scan before opset 9 (batched, with sequence_lens) is not supported")
    body = attrs["body"]
    n_scan = attrs["num_scan_inputs"]
    states, scanned = list(inputs[:len(inputs) - n_scan]), list(inputs[len(inputs) - n_scan:])
    in_axes = [normalize_axis(a, len(v.shape)) for a, v in zip(attrs.get("scan_input_axes", [0] * n_scan), scanned)]
    in_dirs = attrs.get("scan_input_directions", [0] * n_scan)
    lengths = {v.shape[a] for v, a in zip(scanned, in_axes)}
    if len(lengths) != 1:
        raise ConvertError(f"scan inputs of different lengths {sorted(lengths)}")
    steps = lengths.pop()
    if not isinstance(steps, int):
        raise ConvertError("a scan axis of symbolic extent cannot be unrolled")
    if steps > MAX_UNROLLED_ITERATIONS:
        raise ConvertError(f"{steps} iterations: too many to unroll")
    n_out = len(body.output) - len(states)
    per_step: list = []
    for t in range(steps):
        elems = [_take(ctx, v, a, steps - 1 - t if d else t) for v, a, d in zip(scanned, in_axes, in_dirs)]
        outs = import_subgraph(ctx, body, states + elems)
        states = outs[:len(states)]
        per_step.append(outs[len(states):])
    if n_out and not per_step:
        raise ConvertError("the Scan has no iteration: the shapes of its scan outputs are unknown")
    out_axes = attrs.get("scan_output_axes", [0] * n_out)
    out_dirs = attrs.get("scan_output_directions", [0] * n_out)
    stacked = []
    for k in range(n_out):
        values = [step[k] for step in per_step]
        if out_dirs[k]:
            values.reverse()
        axis = normalize_axis(out_axes[k], len(values[0].shape) + 1)
        stacked.append(_stack(ctx, values, axis))
    return states + stacked
