"""Compute definitions for custom operators, in the habits of TVM's tensor expressions.

    M, N, K = 128, 96, tir.size_var("K")                 # extents may be symbolic
    A = tir.placeholder((M, K), "float32", name="A")
    B = tir.placeholder((K, N), "float32", name="B")
    k = tir.reduce_axis(K, name="k")
    C = tir.compute((M, N), lambda i, j: tir.sum(A[i, k] * B[k, j], axis=k), name="C")
    func = tir.create_func([A, B, C])

``create_func`` turns the definitions into an unscheduled ``PrimFunc``: one loop nest and
one block per ``compute``, in dependency order; computes that are not parameters become
buffers allocated for the whole function::

    def main(A: float32[128, K], B: float32[K, 96], C: float32[128, 96], K: int64):
      for i in range(128):
        for j in range(96):
          for k in range(K):
            block C[vi = S(128): i, vj = S(96): j, vk = R(K): k]:
              init:
                C[vi, vj] = 0.0
              C[vi, vj] = (C[vi, vj] + (A[vi, vk] * B[vk, vj]))
"""
from __future__ import annotations

import inspect
import weakref
from dataclasses import dataclass, field

from ..errors import TcompError
from .expr import (
    INDEX_DTYPE,
    Buffer,
    Expr,
    FloatImm,
    IntImm,
    Load,
    Var,
    as_expr,
    const,
    is_float,
    walk,
)
from .expr import size_var as _size_var
from .stmt import Allocate, BufferStore, PrimFunc, block, loop, seq
from .transform import substitute_stmt, used_size_vars

REDUCERS = ("sum", "max", "min")


class ComputeError(TcompError):
    """A compute definition that cannot become a loop nest (it says which tensor and why)."""


def size_var(name: str) -> Var:
    """A symbolic extent, e.g. ``M = size_var("M")``; the built kernel takes it from the arrays' shapes."""
    return _size_var(name)


class ReduceAxis(Var):
    """A reduction iterator over ``[0, extent)`` (``reduce_axis``); used in indices like any variable."""

    __slots__ = ("extent",)

    def __init__(self, extent, name: str):
        super().__init__(name)
        self.extent = as_expr(extent)


def reduce_axis(extent, name: str = "k") -> ReduceAxis:
    return ReduceAxis(extent, name)


class Reduce(Expr):
    """``combiner`` of ``source`` over ``axes``; only as the whole body of a ``compute``."""

    __slots__ = ("axes", "combiner", "dtype", "source")

    def __init__(self, combiner: str, source: Expr, axes: tuple):
        self.combiner, self.source, self.axes, self.dtype = combiner, source, axes, source.dtype


def _reducer(combiner: str):
    def reduce(expr, axis) -> Reduce:
        axes = tuple(axis) if isinstance(axis, (list, tuple)) else (axis,)
        if not axes or not all(isinstance(a, ReduceAxis) for a in axes):
            raise ComputeError(f"{combiner}: axis must be one reduce_axis or a list of them")
        return Reduce(combiner, as_expr(expr), axes)

    reduce.__name__ = combiner
    reduce.__doc__ = f"The {combiner} of ``expr`` over the reduce axes ``axis`` (one or a list)."
    return reduce


sum = _reducer("sum")  # the tensor-expression names shadow the builtins here
max = _reducer("max")
min = _reducer("min")


@dataclass(eq=False)
class ComputeOp:
    axes: tuple          # spatial Vars, one per output dimension
    body: Expr           # the element expression, or a Reduce
    annotations: dict = field(default_factory=dict)  # given to the block (hints for schedule rules)
    store: tuple | None = None   # where element ``axes`` is stored (index expressions), else at ``axes``
    where: Expr | None = None    # elements where it is false are not stored


class Tensor:
    """A placeholder (``op`` None) or the result of ``compute``; indexing it loads an element."""

    def __init__(self, buffer: Buffer, op: ComputeOp | None):
        self.buffer, self.op = buffer, op
        self.domain = buffer.shape  # the iteration space of a compute (its shape, unless stored elsewhere)

    name = property(lambda self: self.buffer.name)
    shape = property(lambda self: self.buffer.shape)
    dtype = property(lambda self: self.buffer.dtype)

    def __getitem__(self, indices) -> Load:
        indices = indices if isinstance(indices, tuple) else (indices,)
        if len(indices) != len(self.shape):
            raise ComputeError(f"{self.name} has rank {len(self.shape)}, indexed with {len(indices)} indices")
        return self.buffer[indices]

    def __repr__(self):
        return f"Tensor({self.name}, {self.dtype}{[str(s) for s in self.shape]})"


def placeholder(shape, dtype: str = "float32", name: str = "placeholder") -> Tensor:
    return Tensor(Buffer(name, _shape(shape), dtype), None)


def compute(shape, fcompute, name: str = "compute", dtype: str | None = None,
            annotations: dict | None = None, store=None, where=None) -> Tensor:
    """The tensor whose element ``idx`` is ``fcompute(*idx)``; the lambda's parameter names name the
    axes (``i0, i1, ...`` for a function of ``*idx``). ``annotations`` go to its block.

    ``store=(buffer_shape, index_fn)`` iterates over ``shape`` but stores the value of ``idx`` at
    ``index_fn(*idx)`` of a buffer of ``buffer_shape`` (a layout change fused into the compute:
    ``store=((N, K, P), lambda k, m: (m // P, k, m % P))`` writes a [K, N*P] product as NKP);
    ``where(*idx)`` false: that element is not stored. Such a tensor is an output, not read by
    other computes."""
    shape = _shape(shape)
    parameters = list(inspect.signature(fcompute).parameters.values())
    if len(parameters) == 1 and parameters[0].kind is inspect.Parameter.VAR_POSITIONAL:
        names = [f"i{axis}" for axis in range(len(shape))]
    else:
        names = [parameter.name for parameter in parameters]
    if len(names) != len(shape):
        raise ComputeError(f"compute {name}: the function takes {len(names)} indices for a shape of rank {len(shape)}")
    axes = tuple(Var(axis_name) for axis_name in names)
    body = as_expr(fcompute(*axes))
    if isinstance(body, Reduce):
        if any(isinstance(e, Reduce) for e in walk(body.source)):
            raise ComputeError(f"compute {name}: a reduction inside a reduction (split it into two computes)")
    elif any(isinstance(e, ReduceAxis) for e in walk(body)):
        raise ComputeError(f"compute {name}: a reduce_axis is used outside sum/max/min")
    dtype = dtype or body.dtype
    if dtype != body.dtype:
        raise ComputeError(f"compute {name}: the body is {body.dtype}, dtype says {dtype} (cast the body)")
    if (store is not None or where is not None) and isinstance(body, Reduce):
        raise ComputeError(f"compute {name}: a reduction is stored at its own indices (store / where)")
    buffer_shape, indices, condition = shape, None, None
    if store is not None:
        buffer_shape, index_fn = _shape(store[0]), store[1]
        indices = tuple(as_expr(i) for i in index_fn(*axes))
        if len(indices) != len(buffer_shape):
            raise ComputeError(f"compute {name}: store gives {len(indices)} indices for a buffer of rank "
                               f"{len(buffer_shape)}")
    if where is not None:
        condition = as_expr(where(*axes))
    tensor = Tensor(Buffer(name, buffer_shape, dtype),
                    ComputeOp(axes, body, dict(annotations or {}), indices, condition))
    tensor.domain = shape
    _producers[tensor.buffer] = tensor
    return tensor


def create_func(tensors, name: str = "main") -> PrimFunc:
    """The unscheduled PrimFunc computing ``tensors`` (placeholders and computes, in parameter order)."""
    params = [t.buffer for t in tensors]
    stages = _stages(tensors)
    intermediates = [t.buffer for t in stages if t.buffer not in params]
    body = seq(*(_nest(t) for t in stages))
    for buf in reversed(intermediates):
        body = Allocate(buf, body)
    func = PrimFunc(name, tuple(params), body)
    func.size_vars = used_size_vars(func)
    return func


def _shape(shape) -> tuple:
    shape = tuple(shape) if isinstance(shape, (list, tuple)) else (shape,)
    return tuple(as_expr(s) for s in shape)


def _stages(tensors) -> list:
    """The compute tensors that ``tensors`` need, producers first."""
    by_buffer: dict = {}
    order: list = []

    def visit(tensor: Tensor, path: tuple):
        if tensor.op is None or tensor.buffer in by_buffer:
            return
        if tensor.buffer in path:
            raise ComputeError(f"compute {tensor.name} depends on itself")
        by_buffer[tensor.buffer] = tensor
        for load in (e for e in walk(_source(tensor.op.body)) if isinstance(e, Load)):
            producer = _producers.get(load.buffer)
            if producer is not None:
                visit(producer, path + (tensor.buffer,))
        order.append(tensor)

    for t in tensors:
        visit(t, ())
    return order


_producers: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # buffer -> the compute Tensor writing it


def _source(body: Expr) -> Expr:
    return body.source if isinstance(body, Reduce) else body


def _identity(combiner: str, dtype: str) -> Expr:
    if combiner == "sum":
        return const(0, dtype)
    if is_float(dtype):
        return FloatImm(float("-inf") if combiner == "max" else float("inf"), dtype)
    import numpy as np

    info = np.iinfo(dtype)
    return IntImm(int(info.min if combiner == "max" else info.max), dtype)


def _nest(tensor: Tensor):
    """One loop per axis (spatial, then reduce) around the tensor's block."""
    op, out = tensor.op, tensor.buffer
    reduce = op.body if isinstance(op.body, Reduce) else None
    element = op.body
    if reduce is not None and any(_empty(r.extent) for r in reduce.axes):
        # over an empty axis the result is the identity (an init run on the first iteration never runs)
        reduce, element = None, _identity(reduce.combiner, out.dtype)
    raxes = reduce.axes if reduce is not None else ()
    loop_vars = [Var(a.name, INDEX_DTYPE) for a in op.axes] + [Var(r.name, INDEX_DTYPE) for r in raxes]
    iters = [("S", extent, v) for extent, v in zip(tensor.domain, loop_vars)]
    iters += [("R", r.extent, v) for r, v in zip(raxes, loop_vars[len(op.axes):])]
    originals = list(op.axes) + list(raxes)

    def body(*block_vars):
        mapping = dict(zip(originals, block_vars))
        spatial = block_vars[:len(op.axes)]
        if reduce is None:
            return substitute_stmt(BufferStore(out, element, op.store or tuple(op.axes), op.where), mapping)
        current = out[tuple(spatial)]
        source = _combine(reduce.combiner, current, reduce.source)
        return substitute_stmt(BufferStore(out, source, tuple(op.axes)), mapping)

    def init(*block_vars):
        if reduce is None:
            return None
        return BufferStore(out, _identity(reduce.combiner, out.dtype), tuple(block_vars[:len(op.axes)]))

    realize = block(out.name, iters, body, init_fn=init if reduce is not None else None)
    realize.block.annotations.update(op.annotations)
    for index, iv in enumerate(realize.block.iter_vars):  # block iterators read as vi, vj, vk
        iv.var.name = f"v{originals[index].name}"
    stmt = realize
    for v, (_, extent, _) in reversed(list(zip(loop_vars, iters))):
        stmt = loop(v, extent, stmt)
    return stmt


def _empty(extent: Expr) -> bool:
    from .arith import simplify

    extent = simplify(extent)
    return isinstance(extent, IntImm) and extent.value == 0


def _combine(combiner: str, current: Expr, value: Expr) -> Expr:
    from .expr import maximum, minimum

    if combiner == "sum":
        return current + value
    return maximum(current, value) if combiner == "max" else minimum(current, value)
