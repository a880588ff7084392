"""Vertical fusion: partition the graph into groups, one kernel each.

A value is *materialized* (written to memory) when it is a graph output, has
several consumers, or ends an anchor's epilogue. Everything else is inlined
into its single consumer:

* elementwise/injective producers become part of their consumer's expression
  (a chain of them is one kernel; in front of an anchor they are its prologue);
* an anchor (matmul, conv, pooling, softmax, layer norm, reduction) absorbs the
  elementwise consumers (and reshapes) that follow it, its epilogue: a chain
  (Conv -> Add(residual) -> Relu is one kernel) or a region whose values are
  read several times but only inside it (MatMul -> GELU). An epilogue that feeds
  another anchor ends before the widening casts at its end (``_epilogue_exit``).

A group holds at most one anchor. Before::

    %a = MatMul(%x, %w); %b = Add(%a, %bias); %c = Erf(%b) ... ; %y = Mul(...)
after: one group ``MatMul+Add+Div+Erf+Add+Mul+Mul`` that writes only ``%y``.

``max_buffers`` caps the buffers a group reads and writes (a WebGPU shader binds at most 8
storage buffers): a group over it is split where an inlined value is materialized, the value
that leaves the larger of the two parts smallest. BERT's embeddings, before (``max_buffers=6``)::

    Gather+Gather+Gather+Add+Add+LayerNormalization: 8 inputs, 1 output
after: ``Gather+Gather+Gather+Add+Add`` (6 inputs, 1 output) and ``LayerNormalization`` (3, 1).
"""
from __future__ import annotations

from dataclasses import dataclass, field

from ..ops.registry import ANCHOR, ELEMENTWISE, OPS
from .ir import Graph, Node, Value

# Elementwise ops too costly to recompute inside an anchor's operand packing (a prologue
# is evaluated once per output tile that reads it): transcendental functions and division.
COSTLY_ELEMENTWISE = {"Exp", "Log", "Tanh", "Erf", "Sigmoid", "Pow", "Sqrt", "Gelu", "Softplus", "Elu", "Selu",
                  "Sin", "Cos", "HardSwish", "HardSigmoid", "Reciprocal", "Div"}


@dataclass
class FusedGroup:
    nodes: list                 # in topological order
    output: Value               # the one value the group writes
    anchor: Node | None = None
    inputs: list = field(default_factory=list)   # values read from memory (materialized, inputs, constants)

    @property
    def label(self) -> str:
        ops = []
        for node in self.nodes:
            op = node.op
            if node.attrs.get("horizontal"):
                op += f"[horizontal x{node.attrs['horizontal']}]"
            ops.append(op)
        return "+".join(ops)


def fuse(graph: Graph, max_buffers: int | None = None) -> list:
    """The fused groups of ``graph``, each reading and writing at most ``max_buffers`` buffers where
    splitting allows (a single node over it stays whole)."""
    consumers = graph.consumers()
    outputs = {v.uid for v in graph.outputs}
    shared = set()   # values read several times inside one anchor's epilogue region
    for index, node in enumerate(graph.nodes):
        if OPS[node.op].kind == ANCHOR:
            shared |= _epilogue_region_values(graph, index, consumers, outputs)
    materialized: set = set()
    for node in graph.nodes:
        for out in node.outputs:
            if out.uid in outputs or not OPS[node.op].epilogue or (len(consumers.get(out.uid, [])) != 1
                                                                   and out.uid not in shared):
                materialized.add(out.uid)

    carried: dict = {}   # value uid -> anchor node whose epilogue the value belongs to
    for node in graph.nodes:
        kind = OPS[node.op].kind
        chosen = None
        for value in node.inputs:
            if value is None or value.uid in materialized or value.uid not in carried:
                continue
            anchor = carried[value.uid]
            if _extends_epilogue(node, value) and chosen in (None, anchor):
                chosen = anchor
            elif kind != ANCHOR:
                materialized.add(value.uid)
        if kind == ANCHOR:
            # an anchor's inputs may not carry another anchor, nor costly prologues: materialize them
            for value in node.inputs:
                if value is not None and value.uid in carried and value.uid not in materialized:
                    materialized.add(_epilogue_exit(value, carried, consumers).uid)
                elif value is not None and _costly_prologue(value, materialized):
                    materialized.add(_narrowest_cut(value, materialized).uid)
            chosen = node
        if chosen is not None:
            for out in node.outputs:
                carried[out.uid] = chosen
    if max_buffers is not None:
        _split_for_buffers(graph, materialized, max_buffers)
    return _build_groups(graph, materialized)


def _split_for_buffers(graph: Graph, materialized: set, max_buffers: int) -> None:
    """Materializes inlined values until every group reads and writes at most ``max_buffers`` buffers."""
    split = True
    while split:  # a split's first part ends earlier in the graph: check every group again
        split = False
        for node in graph.nodes:
            if not any(out.uid in materialized for out in node.outputs):
                continue
            inputs, inlined = _group_reads(node, materialized)
            if len(inputs) + 1 <= max_buffers or not inlined:
                continue

            def larger_part(value: Value) -> int:
                cut = materialized | {value.uid}
                return max(len(_group_reads(node, cut)[0]), len(_group_reads(value.producer, cut)[0])) + 1

            materialized.add(min(inlined, key=larger_part).uid)
            split = True


def _group_reads(root: Node, materialized: set) -> tuple:
    """(values the group ending at ``root`` reads from memory, the values it inlines). Scalar
    constants and symbolic shape values are not read: the kernel has them in its code."""
    inputs, inlined, seen, stack = [], [], set(), [root]
    while stack:
        current = stack.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        for value in current.inputs:
            if value is None:
                continue
            if value.producer is not None and not value.is_const and value.uid not in materialized:
                if all(value is not v for v in inlined):
                    inlined.append(value)
                stack.append(value.producer)
            elif all(value is not v for v in inputs) and not (
                    value.is_const and (value.const.size == 1 or value.is_symbolic_const)):
                inputs.append(value)
    return inputs, inlined


def _extends_epilogue(node: Node, value: Value) -> bool:
    """Whether ``node`` may consume ``value`` (a value of an anchor's epilogue) inside the epilogue.

    Elementwise ops that do not broadcast ``value`` to a larger shape qualify, and
    reshapes (the epilogue is evaluated per element in row-major order, which a
    reshape keeps).
    """
    if node.op == "Reshape":
        return True
    return OPS[node.op].kind == ELEMENTWISE and node.outputs[0].shape == value.shape


# How many nodes after an anchor are scanned for its epilogue region.
EPILOGUE_SCAN = 24


def _epilogue_region_values(graph: Graph, anchor_index: int, consumers: dict, outputs: set) -> set:
    """Values inside the largest elementwise region after an anchor with a single exit.

    E.g. GELU after a MatMul reads the MatMul's output twice: x * 0.5 * (1 + erf(x / sqrt 2)).
    The region grows in topological order over nodes that read a region value and may
    extend the epilogue (``_extends_epilogue``); it is valid up to a node when every
    region value before it is read only inside the region. Returns the values that may stay in
    registers although they have several consumers.
    """
    anchor = graph.nodes[anchor_index]
    inside = {anchor.outputs[0].uid}
    region: list = []
    best: set = set()
    for node in graph.nodes[anchor_index + 1:anchor_index + 1 + EPILOGUE_SCAN]:
        if not any(v is not None and v.uid in inside for v in node.inputs):
            continue
        if not all(_extends_epilogue(node, v) for v in node.inputs if v is not None and v.uid in inside):
            break
        region.append(node)
        inside.add(node.outputs[0].uid)
        members = {id(n) for n in region}
        interior = inside - {node.outputs[0].uid}
        closed = all(uid not in outputs and all(id(c) in members for c in consumers.get(uid, []))
                     for uid in interior)
        if closed:
            best = set(interior)
    return best


def _narrowest_cut(value: Value, materialized: set) -> Value:
    """Where to materialize a costly prologue of an anchor input: walking back from ``value``
    along single-operand elementwise ops, the value of fewest bytes (the latest of equals),
    e.g. the uint8 of a QuantizeLinear before the int32 widening that the packing then does."""
    best = current = value
    while True:
        producer = current.producer
        if (producer is None or current.uid in materialized or producer.op in COSTLY_ELEMENTWISE
                or OPS[producer.op].kind != ELEMENTWISE):
            return best
        operands = [v for v in producer.inputs if v is not None and not v.is_const]
        if len(operands) != 1 or not isinstance(operands[0].type.nbytes, int):
            return best
        current = operands[0]
        if current.type.nbytes < best.type.nbytes:
            best = current


def _epilogue_exit(value: Value, carried: dict, consumers: dict) -> Value:
    """Where an epilogue that feeds another anchor ends: before the widening casts at its end, so that
    the narrower value is written and the casts become the next anchor's prologue. A float16 model
    (imported as casts to float32 around each conv and matmul)::

        Conv+Cast(f16)+Relu+Cast(f32) | Conv ...    ->    Conv+Cast(f16)+Relu | Cast(f32)+Conv ...
    """
    exit = value
    while exit.producer is not None and exit.producer.op == "Cast":
        (operand,) = [v for v in exit.producer.inputs if v is not None]
        if (carried.get(operand.uid) is not carried[value.uid] or len(consumers.get(operand.uid, [])) != 1
                or not isinstance(operand.type.nbytes, int) or not isinstance(exit.type.nbytes, int)
                or operand.type.nbytes >= exit.type.nbytes):
            break
        exit = operand
    return exit


def _costly_prologue(value: Value, materialized: set) -> bool:
    """Whether the inlined producers of ``value`` include a costly elementwise op."""
    stack = [value]
    while stack:
        current = stack.pop()
        producer = current.producer
        if producer is None or current.is_const or current.uid in materialized:
            continue
        if producer.op in COSTLY_ELEMENTWISE:
            return True
        stack.extend(v for v in producer.inputs if v is not None)
    return False


def _build_groups(graph: Graph, materialized: set) -> list:
    order = {id(node): index for index, node in enumerate(graph.nodes)}
    groups = []
    for node in graph.nodes:
        for out in node.outputs:
            if out.uid not in materialized:
                continue
            members, inputs, seen = [], [], set()
            stack = [node]
            while stack:
                current = stack.pop()
                if id(current) in seen:
                    continue
                seen.add(id(current))
                members.append(current)
                for value in current.inputs:
                    if value is None:
                        continue
                    producer = value.producer
                    inlined = producer is not None and not value.is_const and value.uid not in materialized
                    if inlined:
                        stack.append(producer)
                    elif all(value is not v for v in inputs):
                        inputs.append(value)
            members.sort(key=lambda n: order[id(n)])
            anchors = [n for n in members if OPS[n.op].kind == ANCHOR]
            assert len(anchors) <= 1, f"fusion put {len(anchors)} anchors in one group"
            groups.append(FusedGroup(members, out, anchors[0] if anchors else None, inputs))
    return groups
