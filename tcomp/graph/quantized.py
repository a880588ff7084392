"""Integer arithmetic for quantized products (the QDQ pattern), run before the other passes.

A MatMul or Conv whose operands are ``DequantizeLinear`` values computes in int32 when
the scales factor out of the sum over K::

    MatMul(DQ(qa, sa, za), DQ(qb, sb, zb))
        -> float(MatMul(int32(qa) - int32(za), int32(qb) - int32(zb))) * (sa * sb)
           (sa constant along a's last axis, sb along b's second-to-last: per tensor,
           per row of a, per column of b)
    Conv(DQ(qx, sx, zx), DQ(qw, sw, zw), bias)
        -> float(Conv(int32(qx) - int32(zx), int32(qw) - int32(zw))) * (sx * sw) + bias
           (sx per tensor, sw per tensor or per output channel)

The int32 sum is exact where ``K * max|q - z| * max|q - z|`` stays below 2**31, which
is checked; otherwise the product stays in float. A Transpose between a DequantizeLinear
and a MatMul (Gemm's transB) is moved in front of the DequantizeLinear. The operand
subtraction fuses into the kernel's operand packing, the rescaling into its epilogue.

Afterwards, DequantizeLinear nodes over constants (weights that no integer product took)
are folded into float constants, and so are Reshapes and Transposes of those.
"""
from __future__ import annotations

import numpy as np

from ..ops.quant import INTEGER_TYPES, dequantize_numpy
from ..ops.registry import infer_types
from .ir import Graph, Node, Value

INT32_LIMIT = 2 ** 31 - 1
QUANT_SPANS = {t: (int(np.iinfo(t).min), int(np.iinfo(t).max)) for t in INTEGER_TYPES}


def lower_quantized_products(graph: Graph) -> None:
    for node in list(graph.nodes):
        if node.op == "MatMul":
            _integer_matmul(graph, node)
        elif node.op == "Conv":
            _integer_conv(graph, node)
    fold_constant_dequantize(graph)


class _Builder:
    """Adds nodes to ``graph`` where ``replaced`` stands (keeps the node list topological)."""

    def __init__(self, graph: Graph, replaced: Node):
        self.graph, self.replaced, self.count = graph, replaced, 0
        self.position = graph.nodes.index(replaced)

    def emit(self, op: str, inputs: list, attrs: dict | None = None, output: Value | None = None) -> Value:
        node = Node(op, list(inputs), [], dict(attrs or {}), name=f"{self.replaced.name}_int")
        if output is None:
            self.count += 1
            output = Value(f"{self.replaced.outputs[0].name}_int{self.count}", infer_types(node)[0])
        node.outputs = [output]
        output.producer = node
        self.graph.nodes.insert(self.position, node)
        self.position += 1
        return output

    def cast(self, value: Value, dtype: str) -> Value:
        if value.dtype == dtype:
            return value
        if value.is_const:
            return Value.constant(f"{value.name}_{dtype}", value.const.astype(dtype))
        return self.emit("Cast", [value], {"to": dtype})

    def transpose(self, value: Value, perm) -> Value:
        if len(value.shape) == 0:
            return value
        if value.is_const:
            return Value.constant(f"{value.name}_t", np.transpose(value.const, perm))
        return self.emit("Transpose", [value], {"perm": list(perm)})


def _dequantized(value: Value, builder: _Builder):
    """(q, scale, zero_point) if ``value`` is DequantizeLinear(q, ...) of an 8- or 16-bit integer,
    possibly transposed (the Transpose then moves onto q and the parameters); else None."""
    producer = value.producer
    perm = None
    if producer is not None and producer.op == "Transpose":
        perm, producer = producer.attrs["perm"], producer.inputs[0].producer
    if producer is None or producer.op != "DequantizeLinear" or producer.inputs[0].dtype not in QUANT_SPANS:
        return None
    if not all(isinstance(s, int) for s in producer.outputs[0].shape):
        return None
    q, scale, zero_point = producer.inputs
    if perm is not None:
        rank = len(q.shape)
        if any(len(p.shape) not in (0, rank) for p in (scale, zero_point)):
            return None
        q, scale, zero_point = (builder.transpose(v, perm) for v in (q, scale, zero_point))
    return q, scale, zero_point


def _max_offset(q: Value, zero_point: Value) -> int:
    """A bound on |q - zero_point|."""
    if q.is_const and zero_point.is_const:
        diff = q.const.astype(np.int64) - zero_point.const.astype(np.int64)
        return int(np.max(np.abs(diff))) if diff.size else 0
    low, high = QUANT_SPANS[q.dtype]
    if zero_point.is_const:
        z = zero_point.const.astype(np.int64)
        return int(max(np.max(np.abs(high - z)), np.max(np.abs(z - low))))
    return high - low


def _integer_operand(builder: _Builder, q: Value, zero_point: Value) -> Value:
    value = builder.cast(q, "int32")
    if zero_point.is_const and not np.any(zero_point.const):
        return value
    return builder.emit("Sub", [value, builder.cast(zero_point, "int32")])


def _exact(k: int, a, b) -> bool:
    return k * _max_offset(*a) * _max_offset(*b) <= INT32_LIMIT


def _integer_matmul(graph: Graph, mm: Node) -> None:
    builder = _Builder(graph, mm)
    a, b = (_dequantized(v, builder) for v in mm.inputs)
    out = mm.outputs[0]
    if a is None or b is None or out.dtype != "float32":
        return
    (qa, sa, za), (qb, sb, zb) = a, b
    k = qa.shape[-1]
    if (sa.shape and sa.shape[-1] != 1) or (len(sb.shape) >= 2 and sb.shape[-2] != 1) or len(sb.shape) == 1:
        return
    if not _exact(k, (qa, za), (qb, zb)):
        return
    acc = builder.emit("MatMul", [_integer_operand(builder, qa, za), _integer_operand(builder, qb, zb)])
    scale = _scale_product(builder, sa, sb)
    graph.nodes.remove(mm)
    builder.emit("Mul", [builder.cast(acc, "float32"), scale], output=out)


def _integer_conv(graph: Graph, conv: Node) -> None:
    builder = _Builder(graph, conv)
    x, w = _dequantized(conv.inputs[0], builder), _dequantized(conv.inputs[1], builder)
    out = conv.outputs[0]
    if x is None or w is None or out.dtype != "float32":
        return
    (qx, sx, zx), (qw, sw, zw) = x, w
    channels = qw.shape[0]
    if sx.type.size != 1 or not (sw.type.size == 1 or sw.shape == (channels, 1, 1, 1)):
        return
    if not _exact(int(np.prod(qw.shape[1:])), (qx, zx), (qw, zw)):
        return
    acc = builder.emit("Conv", [_integer_operand(builder, qx, zx), _integer_operand(builder, qw, zw)],
                       conv.attrs)
    if sw.type.size != 1:
        sw = _reshaped(builder, sw, (channels, 1, 1))
    scale = _scale_product(builder, sx, sw)
    bias = conv.inputs[2] if len(conv.inputs) > 2 else None
    graph.nodes.remove(conv)
    scaled = builder.cast(acc, "float32")
    if bias is None:
        builder.emit("Mul", [scaled, scale], output=out)
        return
    scaled = builder.emit("Mul", [scaled, scale])
    builder.emit("Add", [scaled, _reshaped(builder, bias, (channels, 1, 1))], output=out)


def _reshaped(builder: _Builder, value: Value, shape) -> Value:
    if value.is_const:
        return Value.constant(f"{value.name}_r", value.const.reshape(shape))
    return builder.emit("Reshape", [value], {"shape": tuple(shape)})


def _scale_product(builder: _Builder, a: Value, b: Value) -> Value:
    a, b = builder.cast(a, "float32"), builder.cast(b, "float32")
    if a.is_const and b.is_const:
        return Value.constant(f"{a.name}_x_{b.name}", a.const * b.const)
    return builder.emit("Mul", [a, b])


def fold_constant_dequantize(graph: Graph) -> None:
    """DequantizeLinear over constants, and Reshape/Transpose of those, become constants."""
    folded = set()
    for node in list(graph.nodes):
        if not all(v.is_const for v in node.inputs):
            continue
        data = [v.const for v in node.inputs]
        if node.op == "DequantizeLinear":
            result = dequantize_numpy(*data, node.attrs["to"], node.attrs["work"])
        elif node.op == "Reshape" and node.inputs[0].uid in folded:
            result = data[0].reshape(node.attrs["shape"])
        elif node.op == "Transpose" and node.inputs[0].uid in folded:
            result = np.transpose(data[0], node.attrs["perm"])
        else:
            continue
        out = node.outputs[0]
        out.const, out.producer = result, None
        folded.add(out.uid)
        graph.nodes.remove(node)
