"""The tuning task of a convolution group: 2-D Conv (group 1) over float operands, as three blocks.

    pad[n, c, h, w] = x[n, c, h - PT, w - PL] inside the image, else 0       (padded input)
    C[n, oh, ow, k] = sum_{c, r, s} pad[n, c, oh*SH + r*DH, ow*SW + s*DW] * w_t[c, r, s, k]
    out[n, k, oh, ow] = epilogue(C[n, oh, ow, k] + bias[k], (n, k, oh, ow))

C is laid out pixel-major with the output channels innermost, so the tiling rules vectorize over
output channels (a broadcast input pixel times a vector of weights) and the write-back to NCHW
goes through the output's own loop order. A unit batch is left out of ``pad`` and ``C`` (plain
loop nests for the tuner), and so is a pad stage when the convolution has no padding.

Constant weights are read in the layout ``w_t[c, r, s, k]`` (``func.attrs["param_layouts"]``
maps the parameter to the permutation of the model's ``[k, c, r, s]`` array that the compiler
applies once, at compile time); weights computed at run time are read as they are.
"""
from __future__ import annotations

from ..graph.fusion import FusedGroup
from ..schedule.lower import kernel_inputs
from ..schedule.window import guarded_load
from ..tir import te
from ..tir.expr import Buffer, IntImm, Load, Var, const, is_float

WEIGHT_LAYOUT = (1, 2, 3, 0)  # [k, c, r, s] -> [c, r, s, k]


def conv(group: FusedGroup, params: list, views: dict, layouts: dict, epilogue):
    """The ``out`` tensor of the convolution task (``params[i]`` is replaced by the re-laid-out
    weights, recorded in ``layouts``), or None where the convolution is not a task."""
    node = group.anchor
    x, w = views[node.inputs[0].uid], views[node.inputs[1].uid]
    bias = views[node.inputs[2].uid] if len(node.inputs) > 2 and node.inputs[2] is not None else None
    attrs = node.attrs
    if attrs["group"] != 1 or len(x.shape) != 4 or not is_float(x.dtype) or x.dtype != w.dtype:
        return None
    N, C, H, W = (int(d) for d in x.shape)
    K, _, R, S = (int(d) for d in w.shape)
    _, _, OH, OW = (int(d) for d in node.outputs[0].shape)
    SH, SW = attrs["strides"]
    DH, DW = attrs["dilations"]
    PT, PL = attrs["pads"][0], attrs["pads"][1]
    batch = (N,) if N > 1 else ()

    def batched(idx):  # the index of a tensor without a unit batch axis
        return idx if N > 1 else idx[1:]

    padded_h, padded_w = (OH - 1) * SH + (R - 1) * DH + 1, (OW - 1) * SW + (S - 1) * DW + 1
    if PT or PL or padded_h > H or padded_w > W:
        def pad_fn(*idx):
            n, c, h, w_ = (idx if N > 1 else (IntImm(0),) + idx)
            return guarded_load(x.fn, (n, c), h - PT, w_ - PL, H, W, const(0, x.dtype))

        pad = te.compute(batch + (C, padded_h, padded_w), pad_fn, name="pad")
        image = lambda n, c, h, w_: pad[batched((n, c, h, w_))]
    else:
        image = x.fn

    weight = _weight_reader(group, params, w, layouts)
    c_red, r_red, s_red = te.reduce_axis(C, "rc"), te.reduce_axis(R, "rr"), te.reduce_axis(S, "rs")

    def c_fn(*idx):
        n, oh, ow, k = (idx if N > 1 else (IntImm(0),) + idx)
        pixel = image(n, c_red, oh * SH + r_red * DH, ow * SW + s_red * DW)
        return te.sum(pixel * weight(k, c_red, r_red, s_red), axis=[c_red, r_red, s_red])

    acc = te.compute(batch + (OH, OW, K), c_fn, name="C")

    def value_at(n, k, oh, ow):
        value = acc[batched((n, oh, ow, k))]
        return value + bias.fn(k) if bias is not None else value

    return epilogue(value_at)


def _weight_reader(group: FusedGroup, params: list, w, layouts: dict):
    """``weight(k, c, r, s)``: from the re-laid-out parameter where the weights are a constant
    read as they are, else through the weights' view."""
    value = group.anchor.inputs[1]
    index = next((i for i, v in enumerate(kernel_inputs(group)) if v is value), None)
    probe_vars = [Var(name) for name in "kcrs"]
    probe = w.fn(*probe_vars)
    direct = isinstance(probe, Load) and probe.predicate is None and len(probe.indices) == 4 and all(
        index is var for index, var in zip(probe.indices, probe_vars))
    if index is None or not value.is_const or not direct or probe.buffer is not params[index]:
        return w.fn
    original = params[index]
    laid_out = Buffer(original.name, tuple(original.shape[axis] for axis in WEIGHT_LAYOUT), original.dtype)
    params[index] = laid_out
    layouts[index] = WEIGHT_LAYOUT
    return lambda k, c, r, s: laid_out[c, r, s, k]
