"""The tuning tasks of sliding-window groups: MaxPool / AveragePool (2-D, NCHW) and grouped
(depthwise included) 2-D Conv over float32, as a pad stage, the window reduction and the epilogue::

    pad[n, c, h, w] = x[n, c, h - PT, w - PL] inside the image, else -inf (max) or 0  (padded input)
    P[n, c, oh, ow] = max_{r, s} pad[n, c, oh*SH + r*DH, ow*SW + s*DW]                (MaxPool)
                    = sum_{r, s} pad[...]                                             (AveragePool)
                    = sum_{c', r, s} pad[n, g(c)*CI_G + c', ...] * w[c, c', r, s]     (Conv, group > 1)
    out[n, c, oh, ow] = epilogue(finish(P[n, c, oh, ow]), (n, c, oh, ow))

``finish`` divides an average by its count of taps (inside the image, or inside image and pads
with ``count_include_pad``: per output position, as the template counts them) and adds a conv's
bias. The pad stage covers exactly the rows and columns the windows read (ceil_mode windows may
reach past the pads) and is left out where no window leaves the image; a unit batch is left out of
``pad`` and ``P``. A depthwise conv (one input channel per group) has no c' axis.
"""
from __future__ import annotations

from ..graph.fusion import FusedGroup
from ..schedule.rows import init_value
from ..schedule.window import guarded_load
from ..tir import te
from ..tir.expr import Cmp, IntImm, Select, cast, const, is_float, logical_and


def pool(group: FusedGroup, params: list, views: dict, layouts: dict, epilogue):
    """The ``out`` tensor of a MaxPool / AveragePool task, or None where the pooling is not a task."""
    node = group.anchor
    x = views[node.inputs[0].uid]
    if x.ndim != 4 or not is_float(x.dtype):
        return None
    is_max = node.op == "MaxPool"
    win = _Window(node, x, const(0, x.dtype) if not is_max else init_value("max", x.dtype))
    r, s = te.reduce_axis(win.KH, "rr"), te.reduce_axis(win.KW, "rs")
    reducer = te.max if is_max else te.sum
    p = te.compute(win.batch + (win.C, win.OH, win.OW), lambda *idx: reducer(
        win.tap(*win.full(idx), r, s), axis=[r, s]), name="P")
    include_pad = bool(node.attrs.get("count_include_pad", 0))

    def value_at(n, c, oh, ow):
        value = p[win.batched((n, c, oh, ow))]
        return value if is_max else value / win.count(oh, ow, include_pad)

    return epilogue(value_at)


def grouped_conv(group: FusedGroup, params: list, views: dict, layouts: dict, epilogue):
    """The ``out`` tensor of a grouped (group > 1) float32 Conv task, or None."""
    node = group.anchor
    x, w = views[node.inputs[0].uid], views[node.inputs[1].uid]
    bias = views[node.inputs[2].uid] if len(node.inputs) > 2 and node.inputs[2] is not None else None
    if x.ndim != 4 or x.dtype != "float32" or w.dtype != "float32" or node.attrs["group"] == 1:
        return None
    win = _Window(node, x, const(0, x.dtype))
    K, CI_G = int(w.shape[0]), int(w.shape[1])
    CO_G = K // node.attrs["group"]
    r, s = te.reduce_axis(win.KH, "rr"), te.reduce_axis(win.KW, "rs")
    channel = [te.reduce_axis(CI_G, "rc")] if CI_G > 1 else []

    def p_fn(*idx):
        n, k, oh, ow = win.full(idx)
        c = channel[0] if channel else IntImm(0)
        return te.sum(win.tap(n, (k // CO_G) * CI_G + c, oh, ow, r, s) * w.fn(k, c, r, s), axis=channel + [r, s])

    p = te.compute(win.batch + (K, win.OH, win.OW), p_fn, name="P")

    def value_at(n, k, oh, ow):
        value = p[win.batched((n, k, oh, ow))]
        return value + bias.fn(k) if bias is not None else value

    return epilogue(value_at)


class _Window:
    """The window geometry of a pooling or conv node and its (maybe padded) input."""

    def __init__(self, node, x, pad_value):
        attrs = node.attrs
        self.N, self.C, self.H, self.W = (int(d) for d in x.shape)
        _, _, self.OH, self.OW = (int(d) for d in node.outputs[0].shape)
        kernel = attrs.get("kernel_shape") or node.inputs[1].shape[2:]
        self.KH, self.KW = (int(k) for k in kernel)
        self.SH, self.SW = attrs["strides"]
        self.DH, self.DW = attrs["dilations"]
        self.pads = tuple(attrs["pads"])
        self.batch = (self.N,) if self.N > 1 else ()
        PT, PL = self.pads[:2]
        padded_h = (self.OH - 1) * self.SH + (self.KH - 1) * self.DH + 1
        padded_w = (self.OW - 1) * self.SW + (self.KW - 1) * self.DW + 1
        if PT or PL or padded_h > self.H or padded_w > self.W:
            def pad_fn(*idx):
                n, c, h, w_ = self.full(idx)
                return guarded_load(x.fn, (n, c), h - PT, w_ - PL, self.H, self.W, pad_value)

            pad = te.compute(self.batch + (self.C, padded_h, padded_w), pad_fn, name="pad")
            self.image = lambda n, c, h, w_: pad[self.batched((n, c, h, w_))]
        else:
            self.image = x.fn

    def full(self, idx):
        """The NCHW index of an index without the unit batch axis."""
        return tuple(idx) if self.N > 1 else (IntImm(0),) + tuple(idx)

    def batched(self, idx):
        """The index without the unit batch axis of an NCHW index."""
        return tuple(idx) if self.N > 1 else tuple(idx[1:])

    def tap(self, n, c, oh, ow, r, s):
        return self.image(n, c, oh * self.SH + r * self.DH, ow * self.SW + s * self.DW)

    def count(self, oh, ow, include_pad: bool):
        """Taps of output (oh, ow) inside the image (or inside image and pads), as float32."""
        PT, PL, PB, PR = self.pads
        lo_h, lo_w = (-PT, -PL) if include_pad else (0, 0)
        hi_h, hi_w = (self.H + PB, self.W + PR) if include_pad else (self.H, self.W)
        rows = _inside(oh * self.SH - PT, self.KH, self.DH, lo_h, hi_h)
        cols = _inside(ow * self.SW - PL, self.KW, self.DW, lo_w, hi_w)
        return cast("float32", rows * cols)


def _inside(start, taps: int, dilation: int, lo: int, hi: int):
    """How many of ``start + i * dilation`` (i < taps) lie in [lo, hi)."""
    count = IntImm(0)
    for i in range(taps):
        pos = start + i * dilation
        count = count + Select(logical_and(Cmp("ge", pos, IntImm(lo)), Cmp("lt", pos, IntImm(hi))), IntImm(1), IntImm(0))
    return count
