"""ONNX -> graph IR.

Walks the ONNX graph in order. Nodes whose inputs are all constant are
evaluated at import time (constant folding, through ``onnx.reference``), and
so are shape queries of statically shaped tensors (``Shape``, ``Size``); every
other node goes through its converter (``converters/``), which emits
canonical graph-IR nodes with static attributes and inferred types.
"""
from __future__ import annotations

import os

import numpy as np
import onnx
from onnx import numpy_helper

from ..errors import ModelError, TcompError, UnsupportedOpError
from ..graph.ir import Graph, Node, TensorType, Value, dtype_of_numpy
from ..ops.registry import OPS, infer_types
from .converters import CONVERTERS, ConvertError

# Ops that must never be folded (their result is not a function of their inputs).
NONDETERMINISTIC = {"RandomNormal", "RandomUniform", "RandomNormalLike", "RandomUniformLike", "Multinomial",
                    "Bernoulli"}


def onnx_dtype(elem_type: int) -> str:
    np_dtype = onnx.helper.tensor_dtype_to_np_dtype(elem_type)
    return dtype_of_numpy(np_dtype)


def load_model(model) -> onnx.ModelProto:
    """Accepts a ModelProto or a path; checks the model and says why it is malformed."""
    if isinstance(model, (str, os.PathLike)):
        if not os.path.exists(model):
            raise ModelError(f"model file not found: {model}")
        try:
            model = onnx.load(os.fspath(model))
        except Exception as exc:  # protobuf parse errors have many types
            raise ModelError(f"cannot read ONNX model {model}: {exc}") from None
    if not isinstance(model, onnx.ModelProto):
        raise TcompError(f"expected an onnx.ModelProto or a path to a .onnx file, got {type(model).__name__}")
    try:
        onnx.checker.check_model(model)
    except onnx.checker.ValidationError as exc:
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else "invalid model"
        raise ModelError(f"the model fails onnx.checker: {first_line}") from None
    return model


class ImportContext:
    """State shared by converters: the graph being built and the model's opset."""

    def __init__(self, graph: Graph, opset: int):
        self.graph = graph
        self.opset = opset
        self.onnx_node: onnx.NodeProto | None = None
        self._count = 0

    def fresh_name(self, hint: str) -> str:
        self._count += 1
        return f"{hint}_{self._count}"

    def emit(self, op: str, inputs: list, attrs: dict | None = None) -> list:
        """Adds a canonical node; returns its output values with inferred types."""
        if op not in OPS:
            raise ConvertError(f"internal op {op} has no definition")
        base = (self.onnx_node.name or self.onnx_node.op_type) if self.onnx_node is not None else op
        node = Node(op, list(inputs), [], dict(attrs or {}), name=base)
        try:
            types = infer_types(node)
        except (ValueError, IndexError, KeyError, TypeError) as exc:
            raise ConvertError(f"shape inference failed for {op}: {exc}") from None
        node.outputs = [Value(self.fresh_name(base), t) for t in types]
        self.graph.add_node(node)
        return node.outputs

    def emit1(self, op: str, inputs: list, attrs: dict | None = None) -> Value:
        return self.emit(op, inputs, attrs)[0]

    def const(self, data, hint: str = "const") -> Value:
        return Value.constant(self.fresh_name(hint), np.asarray(data))


def import_onnx(model, input_shapes: dict | None = None) -> Graph:
    model = load_model(model)
    opset = next((imp.version for imp in model.opset_import if imp.domain in ("", "ai.onnx")), None)
    if opset is None:
        raise ModelError("the model imports no version of the default ONNX opset")
    g = model.graph
    graph = Graph(g.name or "model")
    ctx = ImportContext(graph, opset)
    values: dict = {}
    for init in g.initializer:
        values[init.name] = Value.constant(init.name, numpy_helper.to_array(init))
    for inp in g.input:
        if inp.name in values:
            continue
        values[inp.name] = _graph_input(inp, (input_shapes or {}).get(inp.name))
        graph.inputs.append(values[inp.name])
    if g.sparse_initializer:
        raise ModelError(f"sparse initializer {g.sparse_initializer[0].values.name} is not supported")
    unknown = sorted(set(input_shapes or {}) - {v.name for v in graph.inputs})
    if unknown:
        raise TcompError(f"input_shapes names {unknown}, which are not inputs of the model; its inputs are "
                         f"{[v.name for v in graph.inputs]}")
    for onnx_node in g.node:
        _import_node(ctx, onnx_node, values, model)
    for out in g.output:
        if out.name not in values:
            raise ModelError(f"graph output {out.name} is produced by no node")
        value = values[out.name]
        graph.outputs.append(value)
    graph.output_names = [out.name for out in g.output]
    return graph


def _graph_input(inp: onnx.ValueInfoProto, override) -> Value:
    tensor_type = inp.type.tensor_type
    if not inp.type.HasField("tensor_type"):
        raise ModelError(f"graph input {inp.name} is not a tensor")
    dtype = onnx_dtype(tensor_type.elem_type)
    if override is not None:
        return Value(inp.name, TensorType(tuple(int(s) for s in override), dtype))
    shape = []
    for dim in tensor_type.shape.dim:
        if dim.HasField("dim_value") and dim.dim_value > 0:
            shape.append(dim.dim_value)
        else:
            symbol = dim.dim_param or "?"
            raise TcompError(f"graph input {inp.name} has a symbolic dimension '{symbol}'; pass its size with "
                             f"tcomp.compile(..., input_shapes={{'{inp.name}': (...)}})")
    return Value(inp.name, TensorType(tuple(shape), dtype))


def _import_node(ctx: ImportContext, onnx_node, values: dict, model) -> None:
    ctx.onnx_node = onnx_node
    op = onnx_node.op_type
    name = onnx_node.name or f"{op}_{len(ctx.graph.nodes)}"
    if onnx_node.domain not in ("", "ai.onnx"):
        raise UnsupportedOpError(op, name, ctx.opset, f"operator domain '{onnx_node.domain}' is not supported")
    inputs = []
    for input_name in onnx_node.input:
        if not input_name:
            inputs.append(None)
        elif input_name not in values:
            raise ModelError(f"node '{name}' ({op}) reads '{input_name}', which no earlier node produces")
        else:
            inputs.append(values[input_name])
    attrs = {a.name: _attribute(a) for a in onnx_node.attribute}
    try:
        outputs = _constant_outputs(ctx, onnx_node, inputs, attrs, model)
        if outputs is None:
            converter = CONVERTERS.get(op)
            if converter is None:
                raise UnsupportedOpError(op, name, ctx.opset, "no converter for this operator")
            outputs = converter(ctx, inputs, attrs)
    except ConvertError as exc:
        raise UnsupportedOpError(op, name, ctx.opset, str(exc)) from None
    if len(outputs) < len([o for o in onnx_node.output if o]):
        raise UnsupportedOpError(op, name, ctx.opset, f"only the first {len(outputs)} output(s) are supported")
    for out_name, value in zip(onnx_node.output, outputs):
        if out_name:
            values[out_name] = value


def _attribute(attr: onnx.AttributeProto):
    """An attribute's value; strings as ``str``."""
    value = onnx.helper.get_attribute_value(attr)
    if isinstance(value, bytes):
        return value.decode()
    if isinstance(value, list) and value and isinstance(value[0], bytes):
        return [v.decode() for v in value]
    return value


def _constant_outputs(ctx, onnx_node, inputs, attrs, model):
    """Outputs known at compile time (folded constants and static shape queries), else None."""
    op = onnx_node.op_type
    if op == "Constant":
        key, value = next(iter(attrs.items()))
        if key == "value":
            data = numpy_helper.to_array(onnx_node.attribute[0].t)
        elif key in ("value_float", "value_int"):
            data = np.array(value, dtype=np.float32 if key == "value_float" else np.int64)
        elif key in ("value_floats", "value_ints"):
            data = np.array(value, dtype=np.float32 if key == "value_floats" else np.int64)
        else:
            raise ConvertError(f"Constant with attribute {key} is not supported")
        return [ctx.const(data, "constant")]
    if op == "Shape" and inputs[0] is not None:
        shape = np.array(inputs[0].shape, dtype=np.int64)
        start, end = attrs.get("start", 0), attrs.get("end", len(shape))
        return [ctx.const(shape[start:end], "shape")]
    if op == "Size" and inputs[0] is not None:
        return [ctx.const(np.array(inputs[0].type.size, dtype=np.int64), "size")]
    present = [v for v in inputs if v is not None]
    if op in NONDETERMINISTIC or not present or not all(v.is_const for v in present):
        return None
    try:
        results = _evaluate_node(onnx_node, inputs, model)
    except Exception:  # the reference evaluator lacks or fails this case: compile the node instead
        return None
    return [ctx.const(data, "folded") for data in results]


def _evaluate_node(onnx_node, inputs, model) -> list:
    from onnx.reference import ReferenceEvaluator

    names = [f"in{i}" if v is not None else "" for i, v in enumerate(inputs)]
    node = onnx.helper.make_node(onnx_node.op_type, names, [f"out{i}" for i in range(len(onnx_node.output))],
                                 domain=onnx_node.domain)
    node.attribute.extend(onnx_node.attribute)
    evaluator = ReferenceEvaluator(node, opsets={imp.domain: imp.version for imp in model.opset_import})
    feeds = {name: v.const for name, v in zip(names, inputs) if name}
    return [np.asarray(out) for out in evaluator.run(None, feeds)]
