"""Delta debugging of a failing case: smaller graphs that still fail the same way.

Steps, repeated until none applies: keep a single output; cut a node out (its outputs
become graph inputs drawn from their specs, so the rest of the graph keeps valid
operands); drop an output; turn a weight into a graph input. Each step is kept
when ``still_fails`` holds for the smaller case.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

from .case import Case, Spec


def _exact(spec: Spec) -> Spec:
    return replace(spec, err=0.0)


def cut_node(case: Case, index: int) -> Case | None:
    """The case with node ``index`` removed and its outputs fed as graph inputs."""
    node = case.nodes[index]
    outputs = [o for o in case.outputs if o not in node.outputs]
    if not outputs:
        return None
    specs = {k: (_exact(v) if k in node.outputs else v) for k, v in case.specs.items()}
    inputs = case.inputs + [o for o in node.outputs if o]
    nodes = case.nodes[:index] + case.nodes[index + 1:]
    return Case(case.opset, nodes, specs, inputs, list(case.weights), dict(case.consts), outputs).pruned()


def _candidates(case: Case):
    if len(case.outputs) > 1:
        for out in case.outputs:
            yield Case(case.opset, case.nodes, case.specs, case.inputs, case.weights, case.consts, [out]).pruned()
    for index in reversed(range(len(case.nodes))):
        cut = cut_node(case, index)
        if cut is not None:
            yield cut
    for out in case.outputs if len(case.outputs) > 1 else []:
        yield Case(case.opset, case.nodes, case.specs, case.inputs, case.weights, case.consts,
                   [o for o in case.outputs if o != out]).pruned()
    for weight in case.weights:
        yield Case(case.opset, case.nodes, case.specs, case.inputs + [weight],
                   [w for w in case.weights if w != weight], case.consts, case.outputs)


def minimize(case: Case, still_fails: Callable[[Case], bool], max_steps: int = 400) -> Case:
    steps = 0
    progress = True
    while progress and steps < max_steps:
        progress = False
        for smaller in _candidates(case):
            steps += 1
            if still_fails(smaller):
                case, progress = smaller, True
                break
            if steps >= max_steps:
                break
    return case
