"""Lowering of a fused group to a scheduled loop-nest kernel.

Each value the group reads becomes a buffer parameter (``p0, p1, ...``; the
output is last). Views are built in topological order: elementwise and
injective nodes compose their inputs' views; the anchor (if any) is replaced
by a placeholder ``acc`` so that the group output's expression, evaluated at an
index of the anchor's output, *is* the epilogue::

    group  Conv -> Add(%res) -> Relu
    view   out[n, c, h, w] = max(acc + p3[n, c, h, w], 0.0)
    kernel conv template with epilogue(acc, idx) = max(acc + p3[idx], 0.0)
"""
from __future__ import annotations

from ..graph.fusion import FusedGroup
from ..ops.nn import AnchorContext
from ..ops.quant import storage_dtype
from ..ops.registry import OPS
from ..tir.views import TensorView, row_major_flatten, row_major_unflatten
from ..tir.expr import Buffer, Cmp, IntImm, Select, Var, as_expr, cast, const, substitute
from ..tir.stmt import PrimFunc
from ..tir.transform import simplify_stmt, used_size_vars
from .elementwise import injective_kernel


def kernel_inputs(group: FusedGroup) -> list:
    """The group inputs passed as buffers (scalar constants and symbolic shape values are
    folded into the code)."""
    return [v for v in group.inputs if not (v.is_const and (v.const.size == 1 or v.is_symbolic_const))]


def _immediate_view(value) -> TensorView:
    """A constant folded into the code: a scalar, or a (small) vector of symbolic sizes."""
    elements = [as_expr(x) if hasattr(x, "to_expr") else const(x, value.dtype) for x in value.const.reshape(-1)]
    elements = [cast(value.dtype, e) for e in elements]
    shape = value.shape

    def fn(*idx):
        flat = row_major_flatten(idx, shape)
        result = elements[-1]
        for position in reversed(range(len(elements) - 1)):
            result = Select(Cmp("eq", flat, IntImm(position)), elements[position], result)
        return result

    return TensorView(shape, value.dtype, fn)


def group_views(group: FusedGroup) -> tuple:
    """``(params, views, acc)``: the buffer parameters ``p0, p1, ...`` (without the output), the
    view of every value of the group by uid, and the anchor's placeholder ``acc`` (None without
    an anchor): ``views[group.output.uid]`` at an anchor output index is the epilogue of ``acc``."""
    buffered = kernel_inputs(group)
    scalars = [v for v in group.inputs if all(v is not b for b in buffered)]
    params = [Buffer(f"p{i}", v.shape, storage_dtype(v.dtype)) for i, v in enumerate(buffered)]
    views = {v.uid: TensorView.of_buffer(buf) for v, buf in zip(buffered, params)}
    for v in scalars:  # scalar constants become immediates in the expressions
        views[v.uid] = _immediate_view(v)
    anchor = group.anchor
    acc = Var("acc", anchor.outputs[0].dtype) if anchor is not None else None
    for node in group.nodes:
        if node is anchor:
            views[node.outputs[0].uid] = TensorView(node.outputs[0].shape, node.outputs[0].dtype, lambda *idx: acc)
            continue
        in_views = [views[v.uid] if v is not None else None for v in node.inputs]
        for value, view in zip(node.outputs, OPS[node.op].view(node, in_views)):
            views[value.uid] = view
    return params, views, acc


def lower_group(group: FusedGroup, name: str, lanes: int, num_threads: int) -> PrimFunc:
    params, views, acc = group_views(group)
    attrs = {"ops": group.label}
    anchor = group.anchor
    root = views[group.output.uid]
    if anchor is None:
        out = Buffer("out", group.output.shape, storage_dtype(group.output.dtype))
        func = injective_kernel(name, out, root.fn, tuple(params) + (out,), lanes, attrs)
        func.body = simplify_stmt(func.body)
        func.size_vars = used_size_vars(func)
        return func

    anchor_shape = anchor.outputs[0].shape
    exit_shape = group.output.shape

    def epilogue(value, idx):
        if exit_shape != anchor_shape:  # reshapes in the epilogue: same row-major position
            idx = row_major_unflatten(row_major_flatten(idx, anchor_shape), exit_shape)
        return substitute(root.fn(*idx), {acc: value})

    # the anchor writes in its own index space; the bytes are those of the group's output
    out = Buffer("out", anchor_shape, storage_dtype(group.output.dtype))
    ctx = AnchorContext(name, out, epilogue, tuple(params) + (out,), lanes, num_threads)
    anchor_views = [views[v.uid] if v is not None else None for v in anchor.inputs]
    func = OPS[anchor.op].kernel(anchor, anchor_views, ctx)
    func.attrs.update(attrs)
    func.body = simplify_stmt(func.body)
    func.size_vars = used_size_vars(func)
    return func
