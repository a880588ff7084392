"""The tuning task of a convolution group: 2-D Conv (group 1) over float operands, as three blocks.

    pad[n, c, h, w] = x[n, c, h - PT, w - PL] inside the image, else 0       (padded input)
    C[n, oh, ow, k] = sum_{c, r, s} pad[n, c, oh*SH + r*DH, ow*SW + s*DW] * w_t[c, r, s, k]
    out[n, k, oh, ow] = epilogue(C[n, oh, ow, k] + bias[k], (n, k, oh, ow))

The compute definition is the CPU template's (``schedule/conv.py``, which schedules it directly):
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
from ..schedule.conv import conv_tensor
from ..schedule.lower import kernel_inputs


def conv(group: FusedGroup, params: list, views: dict, layouts: dict, epilogue):
    """The ``out`` tensor of the convolution task (``params[i]`` is replaced by the re-laid-out
    weights, recorded in ``layouts``), or None where the convolution is not a task."""
    node = group.anchor
    x, w = views[node.inputs[0].uid], views[node.inputs[1].uid]
    bias = views[node.inputs[2].uid] if len(node.inputs) > 2 and node.inputs[2] is not None else None
    value = node.inputs[1]
    # the weights' parameter only where they are one: a constant read as it is, not a folded view
    constant = value.is_const and any(v is value for v in kernel_inputs(group))
    return conv_tensor(node, x, w, bias, params, constant, layouts, epilogue)
