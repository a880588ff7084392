"""Operator definitions: how each graph op infers its types and how it computes.

Ops come in three kinds, which drive fusion:

* ``elementwise``: out[i] = f(in0[bcast(i)], in1[bcast(i)], ...), numpy broadcasting;
* ``injective``: every output element is one input element, or a select of
  some (reshape, transpose, slice, gather, concat, pad ...);
* ``anchor``: needs a loop nest of its own (matmul, conv, pooling,
  reductions, softmax, normalisations); fused groups are built around them.

Elementwise and injective ops define ``view``: their output as a
``TensorView`` of their input views, which is how fusion inlines them.
Anchors define ``kernel``: a builder of the scheduled loop nest (see
``tcomp.lower``).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from ..graph.ir import Node

ELEMENTWISE, INJECTIVE, ANCHOR = "elementwise", "injective", "anchor"


@dataclass(frozen=True)
class OpDef:
    name: str
    kind: str
    infer: Callable          # (node) -> list[TensorType]
    view: Callable | None = None      # (node, input_views) -> list[TensorView]
    kernel: Callable | None = None    # anchors: (node, input_views, ctx) -> AnchorKernel
    epilogue: bool = True             # anchors that re-read their output (scatters) take no epilogue


OPS: dict = {}


def register(name: str, kind: str, infer, view=None, kernel=None, epilogue: bool = True) -> None:
    OPS[name] = OpDef(name, kind, infer, view, kernel, epilogue)


def infer_types(node: Node) -> list:
    return OPS[node.op].infer(node)


def broadcast_shapes(*shapes) -> tuple:
    """Numpy broadcasting of static shapes; raises ValueError when incompatible."""
    ndim = max(len(s) for s in shapes)
    result = []
    for axis in range(ndim):
        extent = 1
        for shape in shapes:
            offset = ndim - len(shape)
            if axis < offset:
                continue
            dim = shape[axis - offset]
            if dim == 1:
                continue
            if extent not in (1, dim):
                raise ValueError(f"shapes {' and '.join(str(list(s)) for s in shapes)} do not broadcast")
            extent = dim
        result.append(extent)
    return tuple(result)
