"""Graph IR: a dataflow graph of operator nodes over typed tensor values.

Ops keep ONNX names and semantics, with attributes normalised by the importer
(inputs that must be constant, such as Reshape's shape or Slice's starts,
become attributes). Every value has a shape and a dtype; a dimension is an
``int`` or a ``SymInt`` (``symbolic.py``: a size known at run time, such as
``batch`` or ``sequence``). Constant values carry their numpy data; a shape
computation over symbolic dimensions (``Shape`` -> ``Gather`` -> ``Concat``)
is a constant too, an object array holding ints and SymInts.
"""
from __future__ import annotations

import itertools
from dataclasses import dataclass, field

import numpy as np

from .symbolic import SymInt, product


@dataclass(frozen=True)
class TensorType:
    shape: tuple
    dtype: str

    def __str__(self):
        return f"{self.dtype}[{', '.join(str(s) for s in self.shape)}]"

    @property
    def size(self):
        """Number of elements: an int, or a SymInt for a symbolic shape."""
        return product(self.shape)

    @property
    def nbytes(self):
        return self.size * np.dtype(numpy_dtype(self.dtype)).itemsize


def numpy_dtype(dtype: str):
    return np.bool_ if dtype == "bool" else np.dtype(dtype)


def dtype_of_numpy(dtype) -> str:
    dtype = np.dtype(dtype)
    return "bool" if dtype == np.bool_ else dtype.name


def symbolic_array(data) -> np.ndarray:
    """``data`` as an array: int64 where every element is an int, else an object array of ints/SymInts."""
    data = np.asarray(data)
    if data.dtype != object:
        return data
    if any(isinstance(x, SymInt) for x in data.flat):
        return data
    if data.size and all(isinstance(x, (bool, np.bool_)) for x in data.flat):
        return data.astype(np.bool_)
    return data.astype(np.int64)


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
    def constant(name: str, data) -> Value:
        data = symbolic_array(data)
        dtype = "int64" if data.dtype == object else dtype_of_numpy(data.dtype)
        return Value(name, TensorType(tuple(int(s) for s in data.shape), dtype), data)

    @property
    def is_symbolic_const(self) -> bool:
        """A constant whose elements involve symbolic dimensions (a shape computation)."""
        return self.const is not None and self.const.dtype == object

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
        # size relations the model needs of its symbolic dimensions, checked when a run binds them:
        # (lhs, op, rhs, reason) with lhs/rhs ints or SymInts and op one of "==", "<=", ">="
        self.constraints: list = []

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
