"""ONNX -> graph IR.

Walks the ONNX graph in order. Nodes whose inputs are all constant are
evaluated at import time (constant folding, through ``onnx.reference``), and
so are shape queries of statically shaped tensors (``Shape``, ``Size``); every
other node goes through its converter (``converters/``), which emits
canonical graph-IR nodes with static attributes and inferred types.

Graph inputs named in ``constant_inputs`` are constants of the given values (a
model specialized on them). A converter that needs a compile-time operand
computed from graph inputs raises ``ShapeOperandError`` naming those inputs.
Sequences, optionals and string tensors are rejected with an
``UnsupportedOpError`` at the first node that reads them.
"""
from __future__ import annotations

import os

import numpy as np
import onnx
from onnx import numpy_helper

from ..errors import ModelError, ShapeOperandError, TcompError, UnsupportedOpError
from ..graph.ir import Graph, Node, TensorType, Value, dtype_of_numpy, symbolic_array
from ..graph.symbolic import SymbolicError, SymInt
from ..ops.quant import kept_unfolded
from ..ops.registry import OPS, infer_types
from . import shape_eval
from .converters import CONVERTERS, ConvertError, NotConstantError
from .converters.common import converter_key
from .fold_ops import FOLD_OPS

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
        # names visible to the node being converted, and the model: control-flow converters
        # (If, Loop, Scan) import their subgraphs' nodes into this scope
        self.scope: dict = {}
        self.model: onnx.ModelProto | None = None

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

    def require(self, lhs, op: str, rhs, reason: str) -> None:
        """Records a relation between symbolic sizes that every run must satisfy (checked at run time)."""
        where = f"node '{self.onnx_node.name or self.onnx_node.op_type}' ({self.onnx_node.op_type})"
        try:
            holds = shape_eval.decide(lhs, rhs, op)
        except SymbolicError:  # depends on the sizes: checked when a run binds them
            self.graph.constraints.append((lhs, op, rhs, f"{where} {reason}"))
            return
        if not holds:
            raise ConvertError(f"{reason}: {lhs} {op} {rhs} never holds")

    def emit1(self, op: str, inputs: list, attrs: dict | None = None) -> Value:
        return self.emit(op, inputs, attrs)[0]

    def const(self, data, hint: str = "const") -> Value:
        return Value.constant(self.fresh_name(hint), np.asarray(data))


class NonTensor:
    """What a graph input that is no tensor (a sequence, an optional, a map) holds; no node may read it."""

    def __init__(self, what: str):
        self.what = what


def import_onnx(model, input_shapes: dict | None = None, constant_inputs: dict | None = None) -> Graph:
    model = load_model(model)
    opset = next((imp.version for imp in model.opset_import if imp.domain in ("", "ai.onnx")), None)
    g = model.graph
    graph = Graph(g.name or "model")
    ctx = ImportContext(graph, opset)
    values: dict = {}
    ctx.scope, ctx.model = values, model
    for init in g.initializer:
        values[init.name] = Value.constant(init.name, numpy_helper.to_array(init))
    for init in g.sparse_initializer:
        values[init.values.name] = Value.constant(init.values.name, _sparse_to_dense(init))
    input_names = [inp.name for inp in g.input if inp.name not in values]
    for what, given in (("input_shapes", input_shapes), ("constant_inputs", constant_inputs)):
        unknown = sorted(set(given or {}) - set(input_names))
        if unknown:
            raise TcompError(f"{what} names {unknown}, which are not inputs of the model; its inputs are "
                             f"{input_names}")
    for inp in g.input:
        if inp.name in values:
            continue
        if inp.name in (constant_inputs or {}):
            values[inp.name] = _constant_input(inp, constant_inputs[inp.name])
            continue
        values[inp.name] = _graph_input(inp, (input_shapes or {}).get(inp.name))
        if isinstance(values[inp.name], Value):
            graph.inputs.append(values[inp.name])
    for onnx_node in g.node:
        _import_node(ctx, onnx_node, values, model)
    for out in g.output:
        if out.name not in values:
            raise ModelError(f"graph output {out.name} is produced by no node")
        value = values[out.name]
        if not isinstance(value, Value) or value.dtype == "object":
            raise TcompError(f"graph output {out.name} is {_describe(value)}; tcomp compiles numeric tensors only")
        graph.outputs.append(value)
    graph.output_names = [out.name for out in g.output]
    return graph


def _describe(value) -> str:
    return value.what if isinstance(value, NonTensor) else "a string tensor"


def _sparse_to_dense(sparse: onnx.SparseTensorProto) -> np.ndarray:
    values = numpy_helper.to_array(sparse.values)
    indices = numpy_helper.to_array(sparse.indices).astype(np.int64)
    dense = np.zeros(tuple(sparse.dims), dtype=values.dtype)
    if indices.ndim == 2:  # [nnz, rank] coordinates
        dense[tuple(indices.T)] = values
    else:  # linear indices
        dense.reshape(-1)[indices] = values
    return dense


def _constant_input(inp: onnx.ValueInfoProto, data) -> Value:
    """A graph input frozen to ``data`` (``constant_inputs``)."""
    if not inp.type.HasField("tensor_type"):
        raise TcompError(f"constant_inputs gives {inp.name}, which is not a tensor input")
    data = np.asarray(data)
    want = onnx.helper.tensor_dtype_to_np_dtype(inp.type.tensor_type.elem_type)
    if data.dtype != want:
        raise TcompError(f"constant_inputs['{inp.name}'] has dtype {data.dtype}, the model declares {np.dtype(want)}")
    dims = inp.type.tensor_type.shape.dim
    if inp.type.tensor_type.HasField("shape") and (
            len(dims) != data.ndim or any(d.HasField("dim_value") and d.dim_value != s for d, s in zip(dims, data.shape))):
        declared = [d.dim_value if d.HasField("dim_value") else (d.dim_param or "?") for d in dims]
        raise TcompError(f"constant_inputs['{inp.name}'] has shape {list(data.shape)}, the model declares {declared}")
    return Value.constant(inp.name, data)


def _graph_input(inp: onnx.ValueInfoProto, override):
    """The Value of a tensor input, or a ``NonTensor`` for sequences, optionals and maps."""
    kind = inp.type.WhichOneof("value")
    if kind != "tensor_type":
        kinds = {"sequence_type": "a sequence", "optional_type": "an optional", "map_type": "a map",
                 "sparse_tensor_type": "a sparse tensor"}
        return NonTensor(kinds.get(kind, f"of type {kind or 'unknown'}"))
    tensor_type = inp.type.tensor_type
    dtype = onnx_dtype(tensor_type.elem_type)
    if override is not None:
        return Value(inp.name, TensorType(tuple(int(s) for s in override), dtype))
    if not tensor_type.HasField("shape"):
        raise TcompError(f"graph input {inp.name} has no declared shape; pass it with "
                         f"tcomp.compile(..., input_shapes={{'{inp.name}': (...)}})")
    shape = []
    for axis, dim in enumerate(tensor_type.shape.dim):
        if dim.HasField("dim_value") and dim.dim_value > 0:
            shape.append(dim.dim_value)
        else:  # a symbolic dimension: its name, or one made up for an unnamed dimension
            shape.append(SymInt.symbol(_symbol_name(dim.dim_param or f"{inp.name}_dim{axis}")))
    return Value(inp.name, TensorType(tuple(shape), dtype))


def _symbol_name(text: str) -> str:
    """A dimension name usable as an identifier in the loop IR ("batch size" -> "batch_size")."""
    name = "".join(ch if ch.isalnum() or ch == "_" else "_" for ch in text)
    return name if name and not name[0].isdigit() else f"d_{name}"


def _import_node(ctx: ImportContext, onnx_node, values: dict, model) -> None:
    ctx.onnx_node = onnx_node
    op = onnx_node.op_type
    name = onnx_node.name or f"{op}_{len(ctx.graph.nodes)}"
    key = converter_key(onnx_node.domain, op)
    if onnx_node.domain not in ("", "ai.onnx") and key not in CONVERTERS:
        version = next((imp.version for imp in model.opset_import if imp.domain == onnx_node.domain), 0)
        raise UnsupportedOpError(op, name, version, f"operator domain '{onnx_node.domain}' is not supported")
    inputs = []
    for input_name in onnx_node.input:
        if not input_name:
            inputs.append(None)
        elif input_name not in values:
            raise ModelError(f"node '{name}' ({op}) reads '{input_name}', which no earlier node produces")
        elif not isinstance(values[input_name], Value) or values[input_name].dtype == "object":
            raise UnsupportedOpError(op, name, ctx.opset, f"input '{input_name}' is {_describe(values[input_name])}; "
                                     f"tcomp compiles numeric tensors only")
        else:
            inputs.append(values[input_name])
    attrs = {a.name: _attribute(a) for a in onnx_node.attribute}
    try:
        outputs = _constant_outputs(ctx, onnx_node, inputs, attrs, model)
        if outputs is None:
            converter = CONVERTERS.get(key)
            if converter is None:
                raise UnsupportedOpError(op, name, ctx.opset, "no converter for this operator")
            outputs = converter(ctx, inputs, attrs)
    except NotConstantError as exc:
        sources = _graph_inputs_of(exc.value, ctx.graph)
        if sources:
            raise ShapeOperandError(op, name, ctx.opset, str(exc), sources) from None
        raise UnsupportedOpError(op, name, ctx.opset, str(exc)) from None
    except (ConvertError, SymbolicError) as exc:
        raise UnsupportedOpError(op, name, ctx.opset, str(exc)) from None
    if len(outputs) < len([o for o in onnx_node.output if o]):
        raise UnsupportedOpError(op, name, ctx.opset, f"only the first {len(outputs)} output(s) are supported")
    if any(v.dtype == "object" for v in outputs):
        raise UnsupportedOpError(op, name, ctx.opset, "produces a string tensor; tcomp compiles numeric tensors only")
    for out_name, value in zip(onnx_node.output, outputs):
        if out_name:
            values[out_name] = value


def _graph_inputs_of(value: Value, graph: Graph) -> list:
    """Names of the graph inputs that ``value`` is computed from, in graph-input order."""
    found, stack, seen = set(), [value], set()
    while stack:
        v = stack.pop()
        if v is None or v.uid in seen or v.is_const:
            continue
        seen.add(v.uid)
        if v.producer is None:
            found.add(v.uid)
        else:
            stack.extend(v.producer.inputs)
    return [v.name for v in graph.inputs if v.uid in found]


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
        return [ctx.const(_constant_data(onnx_node.attribute[0]), "constant")]
    if op == "Shape" and inputs[0] is not None:
        shape = symbolic_array(np.array(inputs[0].shape, dtype=object))
        start, end = attrs.get("start", 0), attrs.get("end", len(shape))
        return [ctx.const(shape[start:end], "shape")]
    if op == "Size" and inputs[0] is not None:
        return [ctx.const(symbolic_array(np.array(inputs[0].type.size, dtype=object)), "size")]
    present = [v for v in inputs if v is not None]
    if op in NONDETERMINISTIC or kept_unfolded(op, inputs) or not present or not all(v.is_const for v in present):
        return None
    if any(v.is_symbolic_const for v in present):  # a shape computation over symbolic dimensions
        consts = [v.const if v is not None else None for v in inputs]
        results = shape_eval.evaluate(op, consts, attrs, ctx.opset)
        return None if results is None else [ctx.const(data, "shape") for data in results]
    try:
        results = _evaluate_node(onnx_node, inputs, model)
    except Exception:  # the reference evaluator lacks or fails this case: compile the node instead
        return None
    return [ctx.const(data, "folded") for data in results]


def _constant_data(attr: onnx.AttributeProto) -> np.ndarray:
    """The tensor of a Constant node, from whichever attribute holds it."""
    if attr.name == "value":
        data = numpy_helper.to_array(attr.t)
    elif attr.name == "sparse_value":
        data = _sparse_to_dense(attr.sparse_tensor)
    elif attr.name in ("value_float", "value_floats"):
        data = np.array(onnx.helper.get_attribute_value(attr), dtype=np.float32)
    elif attr.name in ("value_int", "value_ints"):
        data = np.array(onnx.helper.get_attribute_value(attr), dtype=np.int64)
    elif attr.name in ("value_string", "value_strings"):
        raise ConvertError("string constants are not supported (tcomp compiles numeric tensors only)")
    else:
        raise ConvertError(f"Constant with attribute {attr.name} is not supported")
    if data.dtype == object:
        raise ConvertError("string constants are not supported (tcomp compiles numeric tensors only)")
    return data


def _evaluate_node(onnx_node, inputs, model) -> list:
    from onnx.reference import ReferenceEvaluator

    names = [f"in{i}" if v is not None else "" for i, v in enumerate(inputs)]
    node = onnx.helper.make_node(onnx_node.op_type, names, [f"out{i}" for i in range(len(onnx_node.output))],
                                 domain=onnx_node.domain)
    node.attribute.extend(onnx_node.attribute)
    evaluator = ReferenceEvaluator(node, opsets={imp.domain: imp.version for imp in model.opset_import},
                                   new_ops=FOLD_OPS)
    feeds = {name: v.const for name, v in zip(names, inputs) if name}
    results = evaluator.run(None, feeds)
    if any(out is None or isinstance(out, (list, tuple, dict)) for out in results):
        raise ValueError(f"{node.op_type} gives a sequence, an optional or a map: not a tensor constant")
    results = [np.asarray(out) for out in results]
    _check_folded_shapes(node, feeds, results, model)
    return results


def _check_folded_shapes(node, feeds: dict, results: list, model) -> None:
    """Raises when onnx's shape inference gives a folded output another shape.

    ``onnx.reference`` has wrong cases that shape inference gets right (Slice with a negative
    step and a start before the beginning follows numpy, GlobalMaxPool over one spatial axis
    reduces the channels); the node is then compiled instead of folded.
    """
    inits = [numpy_helper.from_array(np.asarray(data), name) for name, data in feeds.items()]
    graph = onnx.helper.make_graph([node], "fold", [], [onnx.helper.make_empty_tensor_value_info(o)
                                                         for o in node.output], initializer=inits)
    probe = onnx.helper.make_model(graph, opset_imports=list(model.opset_import), ir_version=model.ir_version)
    inferred = onnx.shape_inference.infer_shapes(probe).graph.output
    for out, data in zip(inferred, results):
        dims = out.type.tensor_type.shape.dim if out.type.tensor_type.HasField("shape") else None
        if dims is not None and all(d.HasField("dim_value") for d in dims) and \
                tuple(d.dim_value for d in dims) != data.shape:
            raise ValueError(f"folded {node.op_type} gives {data.shape}, shape inference {[d.dim_value for d in dims]}")
