"""Graph simplifications run after import, before fusion.

* ``fold_pad_into_conv``:   Conv(Pad(x, zeros around H, W))       -> Conv(x, pads += ...)
* ``fold_affine_into_conv``: Add(Mul(Conv(x, W, b), s), t)          -> Conv(x, W*s, b*s + t)
  (s, t constant per output channel: this is how BatchNormalization folds away)
* ``fuse_sibling_matmuls``: MatMul(x, W1) [+ b1], MatMul(x, W2) [+ b2] ...
                            -> Slice(MatMul(x, concat(W1, W2)) [+ concat(b1, b2)])  (horizontal fusion)
* ``eliminate_dead_code``:  drops nodes whose outputs nobody reads.

On the CPU target, after these, ``fuse_conv_maxpool``: MaxPool(Relu(Conv(x, W, b)))  -> ConvMaxPool(x, W, b)
(one kernel, ``schedule/conv_pool.py``, where its plan applies; the Relu is optional).

First, ``quantized.lower_quantized_products`` computes quantized MatMul/Conv in integers.
"""
from __future__ import annotations

import numpy as np

from .ir import Graph, Node, TensorType, Value
from .quantized import lower_quantized_products


def simplify_graph(graph: Graph) -> Graph:
    lower_quantized_products(graph)
    fold_pad_into_conv(graph)
    fold_affine_into_conv(graph)
    fuse_sibling_matmuls(graph)
    eliminate_dead_code(graph)
    return graph


def eliminate_dead_code(graph: Graph) -> None:
    live = {v.uid for v in graph.outputs}
    kept = []
    for node in reversed(graph.nodes):
        if any(out.uid in live for out in node.outputs):
            kept.append(node)
            live.update(v.uid for v in node.inputs if v is not None)
    graph.nodes = list(reversed(kept))


def _single_consumer(graph: Graph, value: Value, consumers: dict):
    users = consumers.get(value.uid, [])
    if len(users) != 1 or value in graph.outputs:
        return None
    return users[0]


def fold_pad_into_conv(graph: Graph) -> None:
    consumers = graph.consumers()
    for node in list(graph.nodes):
        if node.op != "Pad" or node.attrs["mode"] != "constant" or node.attrs["value"] != 0:
            continue
        pads, rank = node.attrs["pads"], len(node.inputs[0].shape)
        if rank != 4 or any(pads[a] or pads[a + rank] for a in (0, 1)):
            continue
        conv = _single_consumer(graph, node.outputs[0], consumers)
        if conv is None or conv.op != "Conv" or conv.inputs[0] is not node.outputs[0]:
            continue
        old = conv.attrs["pads"]
        conv.attrs = {**conv.attrs, "pads": [old[0] + pads[2], old[1] + pads[3], old[2] + pads[6], old[3] + pads[7]]}
        conv.inputs[0] = node.inputs[0]
        graph.nodes.remove(node)


def _channel_vector(value: Value, channels: int, rank: int):
    """The per-channel vector of a constant broadcastable as [C, 1, 1] (or a scalar), else None."""
    if value is None or not value.is_const:
        return None
    data = value.const
    if data.ndim > rank:
        return None
    shape = (1,) * (rank - data.ndim) + data.shape
    if any(s != 1 for i, s in enumerate(shape) if i != 1):
        return None
    if shape[1] not in (1, channels):
        return None
    return np.broadcast_to(data.reshape(-1), (channels,)).astype(np.float64)


def fold_affine_into_conv(graph: Graph) -> None:
    consumers = graph.consumers()  # keyed by value: stays valid as folds move values between nodes
    for conv in list(graph.nodes):
        if conv.op != "Conv" or not all(v.is_const for v in conv.inputs[1:]):
            continue
        while (found := _foldable_affine_user(graph, conv, consumers)) is not None:
            _fold_affine(graph, conv, *found)


def _foldable_affine_user(graph: Graph, conv: Node, consumers: dict):
    """(consumer, per-channel vector) if the single consumer of ``conv`` multiplies, divides, adds or
    subtracts a per-channel constant, else None."""
    user = _single_consumer(graph, conv.outputs[0], consumers)
    if user is None or user.op not in ("Mul", "Add", "Sub", "Div"):
        return None
    if user.op in ("Sub", "Div") and user.inputs[0] is not conv.outputs[0]:
        return None
    other = user.inputs[1] if user.inputs[0] is conv.outputs[0] else user.inputs[0]
    vec = _channel_vector(other, conv.inputs[1].shape[0], len(conv.outputs[0].shape))
    if vec is None or user.outputs[0].shape != conv.outputs[0].shape:
        return None
    return user, vec


def _fold_affine(graph: Graph, conv: Node, user: Node, vec: np.ndarray) -> None:
    channels = conv.inputs[1].shape[0]
    weight = conv.inputs[1].const.astype(np.float64)
    bias = conv.inputs[2].const.astype(np.float64) if len(conv.inputs) > 2 else np.zeros(channels)
    if user.op in ("Mul", "Div"):
        scale = vec if user.op == "Mul" else 1.0 / vec
        weight = weight * scale.reshape(-1, 1, 1, 1)
        bias = bias * scale
    else:
        bias = bias + (vec if user.op == "Add" else -vec)
    dtype = conv.inputs[1].dtype
    new_w = Value.constant(conv.inputs[1].name + "_folded", weight.astype(dtype))
    new_b = Value.constant(conv.name + "_bias_folded", bias.astype(dtype))
    conv.inputs = [conv.inputs[0], new_w, new_b]
    out = user.outputs[0]
    conv.outputs = [out]
    out.producer = conv
    graph.nodes.remove(user)


def fuse_sibling_matmuls(graph: Graph) -> None:
    """Horizontal fusion of MatMuls that share their left operand and have constant 2-D weights."""
    consumers = graph.consumers()
    groups: dict = {}
    for node in graph.nodes:
        if node.op == "MatMul" and node.inputs[1].is_const and len(node.inputs[1].shape) == 2:
            groups.setdefault(node.inputs[0].uid, []).append(node)
    for siblings in groups.values():
        if len(siblings) < 2:
            continue
        x = siblings[0].inputs[0]
        biases = []
        for mm in siblings:
            user = _single_consumer(graph, mm.outputs[0], consumers)
            bias = None
            if user is not None and user.op == "Add":
                bias = user.inputs[1] if user.inputs[0] is mm.outputs[0] else user.inputs[0]
            bias_ok = bias is not None and bias.is_const and bias.shape == (mm.inputs[1].shape[1],)
            biases.append((user, bias) if bias_ok else None)
        with_bias = all(b is not None for b in biases)
        weights = np.concatenate([mm.inputs[1].const for mm in siblings], axis=1)
        fused_w = Value.constant(siblings[0].name + "_horizontal_weight", weights)
        out_shape = x.shape[:-1] + (weights.shape[1],)
        fused_out = Value(siblings[0].outputs[0].name + "_fused", TensorType(out_shape, x.dtype))
        fused = Node("MatMul", [x, fused_w], [fused_out], {"horizontal": len(siblings)},
                     name=f"{siblings[0].name}+{len(siblings) - 1}")
        new_nodes = [fused]
        result = fused_out
        if with_bias:
            bias = np.concatenate([b[1].const for b in biases])
            biased = Value(fused_out.name + "_bias", TensorType(out_shape, x.dtype))
            new_nodes.append(Node("Add", [fused_out, Value.constant(fused_w.name + "_bias", bias)], [biased],
                                  name=fused.name + "_bias"))
            result = biased
        start = 0
        rank = len(out_shape)
        for mm, bias_node in zip(siblings, biases):
            width = mm.inputs[1].shape[1]
            target = bias_node[0].outputs[0] if with_bias else mm.outputs[0]
            starts = [0] * rank
            starts[-1] = start
            new_nodes.append(Node("Slice", [result], [target],
                                  {"starts": starts, "steps": [1] * rank, "out_shape": list(target.shape)},
                                  name=f"{mm.name}_slice"))
            start += width
        first = min(graph.nodes.index(mm) for mm in siblings)
        removed = set(map(id, siblings)) | ({id(b[0]) for b in biases} if with_bias else set())
        remaining = [n for n in graph.nodes if id(n) not in removed]
        position = sum(1 for n in graph.nodes[:first] if id(n) not in removed)
        graph.nodes = remaining[:position] + new_nodes + remaining[position:]
        for node in new_nodes:
            for out in node.outputs:
                out.producer = node


def fuse_conv_maxpool(graph: Graph, lanes: int, num_threads: int) -> None:
    """MaxPool(Relu(Conv(x, W, b))) and MaxPool(Conv(x, W, b)) -> ConvMaxPool(x, W, b), attrs
    ``conv``, ``pool`` (the two nodes' attributes) and ``relu``, where the conv's weights are
    constant, the conv's (and Relu's) output is read by the next node only and
    ``schedule.conv_pool.conv_pool_plan`` applies::

        %c = Conv(%x, %w, %b); %r = Relu(%c); %p = MaxPool(%r)   ->   %p = ConvMaxPool(%x, %w, %b)
    """
    from ..schedule.conv_pool import conv_pool_plan

    consumers = graph.consumers()
    for conv in list(graph.nodes):
        if conv.op != "Conv" or not all(v is None or v.is_const for v in conv.inputs[1:]) \
                or conv.inputs[0].dtype != "float32":
            continue
        user = _single_consumer(graph, conv.outputs[0], consumers)
        relu = user if user is not None and user.op == "Relu" else None
        pool = _single_consumer(graph, relu.outputs[0], consumers) if relu is not None else user
        if pool is None or pool.op != "MaxPool" or len(pool.outputs) != 1 \
                or conv_pool_plan(conv.attrs, pool.attrs, conv.inputs[0].shape, conv.inputs[1].shape,
                                  lanes, num_threads) is None:
            continue
        fused = Node("ConvMaxPool", [v for v in conv.inputs if v is not None], pool.outputs,
                     {"conv": conv.attrs, "pool": pool.attrs, "relu": relu is not None}, conv.name)
        pool.outputs[0].producer = fused
        index = graph.nodes.index(pool)
        graph.nodes[index] = fused
        for node in (conv, relu):
            if node is not None:
                graph.nodes.remove(node)
