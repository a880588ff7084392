"""Graph IR: a dataflow graph of operator nodes over typed tensor values.

Ops keep ONNX names and semantics, with attributes normalised by the importer
(inputs that must be constant, such as Reshape's shape or Slice's starts,
become attributes). Every value has a static shape and a dtype; constant
values carry their numpy data.
"""
from __future__ import annotations

import itertools
from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True)
class TensorType:
    shape: tuple
    dtype: str

    def __str__(self):
        return f"{self.dtype}[{', '.join(str(s) for s in self.shape)}]"

    @property
    def size(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64))

    @property
    def nbytes(self) -> int:
        return self.size * np.dtype(numpy_dtype(self.dtype)).itemsize


def numpy_dtype(dtype: str):
    return np.bool_ if dtype == "bool" else np.dtype(dtype)


def dtype_of_numpy(dtype) -> str:
    dtype = np.dtype(dtype)
    return "bool" if dtype == np.bool_ else dtype.name


_ids = itertools.count()


class Value:
    """A tensor flowing between nodes; ``const`` holds data for constants."""

    def __init__(self, name: str, type: TensorType, const: np.ndarray | None = None):
        self.name = name
        self.type = type
        self.const = const
        self.producer: Node | None = None
        self.uid = next(_ids)

    @staticmethod
    def constant(name: str, data) -> "Value":
        data = np.asarray(data)
        return Value(name, TensorType(tuple(int(s) for s in data.shape), dtype_of_numpy(data.dtype)), data)

    @property
    def shape(self) -> tuple:
        return self.type.shape

    @property
    def dtype(self) -> str:
        return self.type.dtype

    @property
    def is_const(self) -> bool:
        return self.const is not None

    def __repr__(self):
        return f"%{self.name}: {self.type}"


@dataclass(eq=False)
class Node:
    op: str
    inputs: list
    outputs: list
    attrs: dict = field(default_factory=dict)
    name: str = ""

    def __repr__(self):
        ins = ", ".join(f"%{v.name}" if v is not None else "_" for v in self.inputs)
        outs = ", ".join(f"%{v.name}" for v in self.outputs)
        attrs = "".join(f", {k}={v}" for k, v in self.attrs.items())
        return f"{outs} = {self.op}({ins}{attrs})"


class Graph:
    """Nodes in topological order, graph inputs and outputs."""

    def __init__(self, name: str = "graph"):
        self.name = name
        self.inputs: list[Value] = []
        self.outputs: list[Value] = []
        self.nodes: list[Node] = []
        self.output_names: list[str] = []   # the model's names for ``outputs``

    def add_node(self, node: Node) -> Node:
        for out in node.outputs:
            out.producer = node
        self.nodes.append(node)
        return node

    def consumers(self) -> dict:
        """Value uid -> list of consuming nodes."""
        result: dict = {}
        for node in self.nodes:
            for value in node.inputs:
                if value is not None:
                    result.setdefault(value.uid, []).append(node)
        return result

    def __str__(self):
        lines = [f"graph {self.name}(" + ", ".join(repr(v) for v in self.inputs) + "):"]
        lines += [f"  {node!r}" for node in self.nodes]
        lines.append("  return " + ", ".join(f"%{v.name}" for v in self.outputs))
        return "\n".join(lines)
