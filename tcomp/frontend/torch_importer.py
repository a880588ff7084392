"""PyTorch -> graph IR through ``torch.export`` (the ATen graph), without ONNX.

``torch.export.export`` (non-strict) captures the module as an FX graph of ATen
ops; ``run_decompositions`` lowers it to the core ATen opset, except for the
ops tcomp decomposes itself (``KEPT``). Parameters, buffers and lifted
constants become graph constants (the compiled module holds a copy of the
weights); user inputs become graph inputs named like the forward arguments.

Each FX node is then, in order:

* folded, when every tensor it reads is a constant: torch evaluates it at
  import time (``arange``, ``full``, a transposed weight, a constant mask);
* or converted by its ATen converter (``aten/``), which emits graph-IR ops.

An ATen op without a converter raises ``UnsupportedOpError`` naming the FX
node, its target and the reason. Every converted node's result is checked
against the shape and dtype torch recorded for it.

Sizes: ``graph_dim`` is the one place where a torch size (an int, or a
``SymInt`` of an export with ``dynamic_shapes``) becomes a graph-IR dimension
(an int or a graph ``SymInt`` over the same symbols); the ranges the export
allows its symbols become run-time constraints of the graph.
"""
from __future__ import annotations

import operator

import numpy as np
import torch
from torch.export import ExportedProgram
from torch.export.graph_signature import InputKind, OutputKind
from torch.utils._sympy.functions import FloorDiv
from torch.utils._sympy.numbers import int_oo

from ..errors import TcompError, UnsupportedOpError
from ..graph.ir import Graph, TensorType, Value
from ..graph.symbolic import SymInt, product
from .aten import ATEN, dtype_name
from .converters.common import ConvertError
from .onnx_importer import ImportContext

# Ops kept out of the core-ATen decomposition: tcomp decomposes them into fewer, fusable graph ops.
KEPT = (torch.ops.aten.scaled_dot_product_attention.default,)
# Python arithmetic on sizes in graphs of symbolic shapes.
SIZE_ARITHMETIC = {operator.add, operator.sub, operator.mul, operator.floordiv, operator.neg}
# Nodes that check metadata at trace time and compute nothing.
CHECKS = {"aten._assert_tensor_metadata.default", "aten._assert_scalar.default", "aten._assert_async.msg",
          "aten.sym_constrain_range_for_size.default", "aten.sym_constrain_range.default"}


def graph_dim(size):
    """A torch size as a graph-IR dimension: an int, or a ``SymInt`` over the export's size symbols."""
    if isinstance(size, torch.SymInt):
        return _symbolic(size.node.expr)
    return int(size)


def _symbolic(expr):
    """A sympy size expression of torch.export (sums, products, exact floor divisions) as a SymInt."""
    if expr.is_Integer:
        return int(expr)
    if expr.is_Symbol:
        return SymInt.symbol(expr.name)
    if expr.is_Add:
        return sum((_symbolic(term) for term in expr.args), 0)
    if expr.is_Mul:
        return product(_symbolic(factor) for factor in expr.args)
    if isinstance(expr, FloorDiv):
        return _symbolic(expr.args[0]) // _symbolic(expr.args[1])
    raise ConvertError(f"the symbolic size {expr} is not a polynomial of the input sizes")


def import_torch(model, example_inputs=None) -> Graph:
    """A ``torch.nn.Module`` (with ``example_inputs``) or a ``torch.export.ExportedProgram`` as a graph."""
    if isinstance(model, ExportedProgram):
        return import_exported(model)
    if example_inputs is None:
        raise TcompError("compiling a torch module needs example_inputs=(tensor, ...) to trace it with")
    return import_exported(export(model, example_inputs))


def export(module, example_inputs) -> ExportedProgram:
    """``torch.export.export`` (non-strict) of ``module`` called with ``example_inputs``."""
    args = tuple(example_inputs) if isinstance(example_inputs, (tuple, list)) else (example_inputs,)
    try:
        return torch.export.export(module, args, strict=False)
    except Exception as exc:  # torch raises many types; the reason is in the message
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise TcompError(f"torch.export could not capture {type(module).__name__}: {reason}") from exc


def import_exported(program: ExportedProgram, frozen: dict | None = None) -> Graph:
    """The graph of an exported program; ``frozen`` ({user input position: tensor}) makes user inputs
    constants (``torch.compile`` passes a module's weights as inputs)."""
    table = torch.export.default_decompositions()
    for op in KEPT:
        table.pop(op, None)
    try:
        program = program.run_decompositions(table)
    except Exception as exc:  # torch raises many types; the reason is in the message
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise TcompError(f"torch could not decompose the program to core ATen: {reason}") from exc
    signature = program.graph_signature
    mutated = list(signature.buffers_to_mutate.values()) + list(signature.user_inputs_to_mutate.values())
    if mutated:
        raise TcompError(f"the module writes to {mutated} in forward (a BatchNorm in training mode?); "
                         "tcomp compiles inference: call module.eval() first")
    graph = Graph(type(program.graph_module).__name__)
    ctx = AtenContext(graph)
    env: dict = {}
    placeholders = [node for node in program.graph.nodes if node.op == "placeholder"]
    user_position = 0
    for node, spec in zip(placeholders, signature.input_specs):
        if spec.kind == InputKind.USER_INPUT:
            tensor = (frozen or {}).get(user_position)
            user_position += 1
            env[node] = _weight(node.name, tensor) if tensor is not None else _graph_input(graph, node)
        elif spec.kind in (InputKind.PARAMETER, InputKind.BUFFER, InputKind.CONSTANT_TENSOR):
            source = program.state_dict if spec.target in program.state_dict else program.constants
            env[node] = _weight(node.name, source[spec.target])
        else:
            raise TcompError(f"input '{node.name}' of kind {spec.kind.name} is not supported")
    graph.constraints += _size_ranges(program, graph)
    for node in program.graph.nodes:
        if node.op == "call_function":
            env[node] = _import_node(ctx, node, env)
        elif node.op == "output":
            results = node.args[0]
            for value, spec in zip(results, signature.output_specs):
                if spec.kind != OutputKind.USER_OUTPUT:
                    continue
                value = env[value] if isinstance(value, torch.fx.Node) else value
                if not isinstance(value, Value):
                    raise TcompError(f"output '{spec.arg.name}' is not a tensor ({type(value).__name__})")
                graph.outputs.append(value)
                graph.output_names.append(spec.arg.name)
        elif node.op != "placeholder":
            raise UnsupportedOpError(str(node.target), node.name, None,
                                     f"FX node kind '{node.op}' (control flow or submodules) is not supported")
    return graph


def _size_ranges(program: ExportedProgram, graph: Graph) -> list:
    """The ranges torch.export allows the inputs' size symbols (a Dim's min and max), checked by every run."""
    used = {name for value in graph.inputs for dim in value.shape if isinstance(dim, SymInt) for name in dim.symbols}
    constraints = []
    for symbol, allowed in program.range_constraints.items():
        if not symbol.is_Symbol or symbol.name not in used:
            continue
        size = SymInt.symbol(symbol.name)
        if allowed.lower not in (-int_oo, int_oo) and int(allowed.lower) > 1:  # sizes are at least 1 anyway
            constraints.append((size, ">=", int(allowed.lower), f"the range torch.export gives {symbol}"))
        if allowed.upper not in (-int_oo, int_oo):
            constraints.append((size, "<=", int(allowed.upper), f"the range torch.export gives {symbol}"))
    return constraints


def _graph_input(graph: Graph, node) -> Value:
    example = node.meta.get("val")
    if not isinstance(example, torch.Tensor):
        raise TcompError(f"input '{node.name}' is a {type(example).__name__}; tcomp compiles tensor inputs")
    try:
        value = Value(node.name, TensorType(tuple(graph_dim(s) for s in example.shape), dtype_name(example.dtype)))
    except ConvertError as exc:
        raise TcompError(f"input '{node.name}': {exc}") from None
    graph.inputs.append(value)
    return value


def _weight(name: str, tensor) -> Value:
    """A parameter, buffer or constant as a graph constant (a copy: later changes to the module do not leak in)."""
    try:
        dtype_name(tensor.dtype)
    except ConvertError as exc:
        raise TcompError(f"weight '{name}': {exc}") from None
    return Value.constant(name, np.array(tensor.detach().cpu().numpy()))


class AtenContext(ImportContext):
    """Converter state: the graph being built, the FX node being converted, and a table of emitted
    nodes, so that identical ops on the same values (three views of one tensor) are emitted once."""

    def __init__(self, graph: Graph):
        super().__init__(graph, opset=None)
        self.fx_node = None
        self._emitted: dict = {}

    def emit(self, op: str, inputs: list, attrs: dict | None = None) -> list:
        attrs = dict(attrs or {})
        key = None
        if not any(isinstance(a, np.ndarray) for a in attrs.values()):
            key = (op, tuple(v.uid if v is not None else None for v in inputs), repr(sorted(attrs.items())))
            if key in self._emitted:
                return self._emitted[key]
        outputs = super().emit(op, inputs, attrs)
        label = self.fx_node.name
        outputs[0].producer.name = label
        for value in outputs:
            value.name = self.fresh_name(label)
        if key is not None:
            self._emitted[key] = outputs
        return outputs

    def out_shape(self, index: int | None = None) -> tuple:
        """The shape torch recorded for the node's result (output ``index`` of a multi-output node)."""
        return tuple(graph_dim(s) for s in self._example(index).shape)

    def out_dtype(self, index: int | None = None) -> str:
        return dtype_name(self._example(index).dtype)

    def _example(self, index):
        example = self.fx_node.meta["val"]
        return example if index is None else example[index]


def _import_node(ctx: AtenContext, node, env: dict):
    target = str(node.target)
    if node.target is operator.getitem:
        outputs, index = env[node.args[0]], node.args[1]
        if outputs[index] is None:
            source = node.args[0]
            raise UnsupportedOpError(str(source.target), source.name, None,
                                     f"output {index} is not supported (node '{node.name}' reads it)")
        return outputs[index]
    if target in CHECKS:
        return None
    if node.target in SIZE_ARITHMETIC:  # arithmetic on sizes: SymInts compute it
        args = torch.fx.node.map_arg(node.args, lambda n: env[n])
        return node.target(*args)
    args, kwargs = torch.fx.node.map_arg((node.args, node.kwargs), lambda n: env[n])
    ctx.fx_node = node
    try:
        if _foldable(node, args, kwargs):
            return _fold(ctx, node, args, kwargs)
        converter = ATEN.get(target)
        if converter is None:
            raise ConvertError("no converter for this ATen op")
        result = converter(ctx, *args, **kwargs)
    except ConvertError as exc:
        raise UnsupportedOpError(target, node.name, None, str(exc)) from None
    _check_result(ctx, node, result)
    return result


def _foldable(node, args, kwargs) -> bool:
    if torch.Tag.nondeterministic_seeded in getattr(node.target, "tags", ()):
        return False
    leaves = torch.utils._pytree.tree_leaves((args, kwargs))
    return not any(isinstance(leaf, SymInt) or (isinstance(leaf, Value) and not leaf.is_const) for leaf in leaves)


def _fold(ctx: AtenContext, node, args, kwargs):
    """Evaluates a node over constants with torch; its tensors become graph constants."""
    def to_torch(x):  # shares the constant's memory: the ops are functional, they do not write to it
        return torch.from_numpy(x.const) if isinstance(x, Value) else x

    def to_value(x):
        if isinstance(x, torch.Tensor):
            dtype_name(x.dtype)
            return ctx.const(x.contiguous().numpy(), node.name)  # a view of a constant is copied out here
        return x

    args, kwargs = torch.utils._pytree.tree_map(to_torch, (args, kwargs))
    result = node.target(*args, **kwargs)
    return torch.utils._pytree.tree_map(to_value, result)


def _check_result(ctx: AtenContext, node, result) -> None:
    """Every converted value has the shape and dtype torch recorded (a converter bug fails here, loudly)."""
    results = result if isinstance(result, (list, tuple)) else [result]
    examples = node.meta["val"] if isinstance(result, (list, tuple)) else [node.meta["val"]]
    for value, example in zip(results, examples):
        if not isinstance(value, Value) or example is None:  # sizes, outputs not computed
            continue
        expected = TensorType(tuple(graph_dim(s) for s in example.shape), dtype_name(example.dtype))
        if value.type != expected:
            raise TcompError(f"internal error: the converter of {node.target} made {value.type} at node "
                             f"'{node.name}', torch computes {expected}")
