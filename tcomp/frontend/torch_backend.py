"""``torch.compile(model, backend="tcomp")``: a TorchDynamo backend that runs graphs with tcomp.

Dynamo hands the backend one FX graph per captured region (a graph break
makes several, each compiled on its own) with example inputs. The backend
exports the graph to ATen (``torch_importer``), compiles it for the target,
and returns a callable that passes torch tensors to the compiled module as
numpy arrays and wraps its numpy outputs with ``torch.from_numpy`` (no copies
on either side for contiguous CPU tensors).

Weights: Dynamo passes a module's parameters and buffers as graph inputs;
tcomp freezes them into the compiled module (like inductor's freezing), so a
module whose weights change must be compiled again. tcomp compiles inference
graphs: graphs that need autograd (grad mode on and inputs that require grad),
tensors off the CPU, dynamic shapes and ops without a converter are refused,
and a refused graph runs in eager mode with a ``TcompFallbackWarning`` that
says why.

torch finds the backend through the ``torch_dynamo_backends`` entry point of
the installed package; ``register()`` registers it directly (``import tcomp``
calls it when ``torch._dynamo`` is already loaded). Options:
``torch.compile(model, backend="tcomp", options={"target": "cpu", "num_threads": 4})``.
"""
from __future__ import annotations

import warnings

import torch
from torch._dynamo.source import is_from_unspecialized_param_buffer_source

from ..compiler import compile as compile_graph
from ..errors import TcompError
from .torch_importer import export, import_exported

BACKEND_NAME = "tcomp"


class TcompFallbackWarning(UserWarning):
    """A graph that tcomp refused runs in eager mode; the message says why."""


def tcomp_backend(gm: torch.fx.GraphModule, example_inputs: list, target: str = "cpu",
                  num_threads: int | None = None):
    """Compiles ``gm`` with tcomp, or returns its eager ``forward`` with a warning when tcomp refuses it."""
    try:
        return _compile(gm, example_inputs, target, num_threads)
    except TcompError as exc:
        warnings.warn(f"tcomp runs a graph of {len(gm.graph.nodes)} nodes in eager mode: {exc}",
                      TcompFallbackWarning, stacklevel=2)
        return gm.forward


def register() -> None:
    """Registers ``tcomp_backend`` as ``backend="tcomp"`` unless torch knows it already (from the entry point)."""
    if BACKEND_NAME not in torch._dynamo.list_backends(exclude_tags=()):
        torch._dynamo.register_backend(tcomp_backend, name=BACKEND_NAME)


def _compile(gm, example_inputs, target, num_threads):
    _check_inputs(example_inputs)
    placeholders = [node for node in gm.graph.nodes if node.op == "placeholder"]
    weights = {i: tensor for i, (node, tensor) in enumerate(zip(placeholders, example_inputs))
               if _is_weight(node, tensor)}
    program = export(gm, example_inputs)
    module = compile_graph(import_exported(program, frozen=weights), target=target, num_threads=num_threads)
    user = [i for i in range(len(example_inputs)) if i not in weights]
    out_spec = program.call_spec.out_spec

    def run(*args):
        outputs = module(*[args[i] for i in user])
        return torch.utils._pytree.tree_unflatten([torch.from_numpy(o) for o in outputs], out_spec)

    run.tcomp_module = module  # for inspection: kernels, profile()
    return run


def _check_inputs(example_inputs) -> None:
    for position, value in enumerate(example_inputs):
        if not isinstance(value, torch.Tensor):
            raise TcompError(f"graph input {position} is a {type(value).__name__} (dynamic shapes are not "
                             "supported yet: torch.compile(..., dynamic=False))")
        if value.device.type != "cpu":
            raise TcompError(f"graph input {position} is on {value.device}; tcomp runs on the host CPU")
    if torch.is_grad_enabled() and any(value.requires_grad for value in example_inputs):
        raise TcompError("the graph needs autograd (inputs require grad); tcomp compiles inference: "
                         "run it under torch.no_grad() or torch.inference_mode()")


def _is_weight(node, tensor) -> bool:
    """A parameter or buffer of a module, which Dynamo passes as a graph input."""
    if isinstance(tensor, torch.nn.Parameter):
        return True
    source = getattr(node.meta.get("grapharg"), "source", None)
    return source is not None and is_from_unspecialized_param_buffer_source(source)
