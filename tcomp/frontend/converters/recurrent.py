"""Converters of the recurrent ops RNN, GRU and LSTM, unrolled over the (static) sequence.

Per direction, the input projection of every time step is one MatMul
(``[S*B, I] @ W^T + biases``); each step then adds ``H @ R^T`` (one MatMul whose
epilogue is the gate arithmetic where fusion allows) and applies the gate equations with
elementwise ops. ``sequence_lens`` masks the steps past each batch entry's length: the
state is carried over unchanged and Y is 0 there, which also makes a reverse direction
start at each entry's last valid step. Outputs (Y, Y_h, Y_c) are concatenations of the
per-step states; outputs nobody reads are removed as dead code.
"""
from __future__ import annotations

import numpy as np

from .common import ConvertError, converter, reshape_to

GATES = {"RNN": 1, "GRU": 3, "LSTM": 4}
DEFAULT_ACTIVATIONS = {"RNN": ["Tanh"], "GRU": ["Sigmoid", "Tanh"], "LSTM": ["Sigmoid", "Tanh", "Tanh"]}
# activation -> (takes alpha, takes beta, default alpha, default beta)
ACTIVATIONS = {"Relu": (False, False, None, None), "Tanh": (False, False, None, None),
               "Sigmoid": (False, False, None, None), "Softsign": (False, False, None, None),
               "Softplus": (False, False, None, None), "Affine": (True, True, 1.0, 0.0),
               "LeakyRelu": (True, False, 0.01, None), "ThresholdedRelu": (True, False, 1.0, None),
               "ScaledTanh": (True, True, 1.0, 1.0), "HardSigmoid": (True, True, 0.2, 0.5),
               "Elu": (True, False, 1.0, None)}


class _Emitter:
    """Small helpers over ``ctx`` that compute on constants at compile time."""

    def __init__(self, ctx, dtype: str):
        self.ctx, self.dtype = ctx, dtype

    def scalar(self, value: float):
        return self.ctx.const(np.array(value, dtype=self.dtype))

    def op(self, op: str, *inputs, **attrs):
        return self.ctx.emit1(op, list(inputs), attrs)

    def slice(self, value, axis: int, start: int, stop: int):
        if value.is_const:
            return self.ctx.const(np.take(value.const, np.arange(start, stop), axis=axis))
        starts, steps = [0] * len(value.shape), [1] * len(value.shape)
        starts[axis] = start
        shape = list(value.shape)
        shape[axis] = stop - start
        return self.op("Slice", value, starts=starts, steps=steps, out_shape=shape)

    def row(self, value, index: int):
        """value[index] (the leading axis dropped)."""
        return self.reshape(self.slice(value, 0, index, index + 1), value.shape[1:])

    def reshape(self, value, shape):
        if value.is_const:
            return self.ctx.const(value.const.reshape(shape))
        return reshape_to(self.ctx, value, shape)

    def transpose(self, value, perm):
        if value.is_const:
            return self.ctx.const(np.transpose(value.const, perm))
        return self.op("Transpose", value, perm=list(perm))

    def add(self, a, b):
        if a is None:
            return b
        if a.is_const and b.is_const:
            return self.ctx.const((a.const + b.const).astype(self.dtype))
        return self.op("Add", a, b)

    def activation(self, spec, x):
        name, alpha, beta = spec
        if name in ("Relu", "Tanh", "Sigmoid", "Softplus"):
            return self.op(name, x)
        if name == "Softsign":
            return self.op("Div", x, self.op("Add", self.op("Abs", x), self.scalar(1.0)))
        if name == "Affine":
            return self.op("Add", self.op("Mul", x, self.scalar(alpha)), self.scalar(beta))
        if name == "LeakyRelu":
            return self.op("LeakyRelu", x, alpha=alpha)
        if name == "ThresholdedRelu":
            return self.op("Where", self.op("Greater", x, self.scalar(alpha)), x, self.scalar(0.0))
        if name == "ScaledTanh":
            return self.op("Mul", self.op("Tanh", self.op("Mul", x, self.scalar(beta))), self.scalar(alpha))
        if name == "HardSigmoid":
            return self.op("HardSigmoid", x, alpha=alpha, beta=beta)
        return self.op("Elu", x, alpha=alpha)


def _activation_specs(op: str, attrs: dict, directions: int) -> list:
    """Per direction, the list of (name, alpha, beta) of its activations."""
    names = attrs.get("activations") or DEFAULT_ACTIVATIONS[op] * directions
    per_dir = len(DEFAULT_ACTIVATIONS[op])
    if len(names) != per_dir * directions:
        raise ConvertError(f"{len(names)} activations given, {op} with {directions} direction(s) takes "
                           f"{per_dir * directions}")
    alphas, betas = list(attrs.get("activation_alpha", [])), list(attrs.get("activation_beta", []))
    specs = []
    for name in names:
        canonical = next((known for known in ACTIVATIONS if known.lower() == name.lower()), None)
        if canonical is None:
            raise ConvertError(f"activation {name} is not supported")
        takes_alpha, takes_beta, alpha, beta = ACTIVATIONS[canonical]
        if takes_alpha and alphas:
            alpha = alphas.pop(0)
        if takes_beta and betas:
            beta = betas.pop(0)
        specs.append((canonical, alpha, beta))
    return [specs[d * per_dir:(d + 1) * per_dir] for d in range(directions)]


def _optional(inputs, i):
    return inputs[i] if len(inputs) > i else None


@converter("RNN", "GRU", "LSTM")
def _recurrent(ctx, inputs, attrs):
    op = ctx.onnx_node.op_type
    x, w, r = inputs[0], inputs[1], inputs[2]
    bias, lens, h0 = _optional(inputs, 3), _optional(inputs, 4), _optional(inputs, 5)
    c0, peep = (_optional(inputs, 6), _optional(inputs, 7)) if op == "LSTM" else (None, None)
    if x.dtype not in ("float32", "float64"):
        raise ConvertError(f"{op} on {x.dtype} is not supported")
    direction = attrs.get("direction", "forward")
    if direction not in ("forward", "reverse", "bidirectional"):
        raise ConvertError(f"direction {direction!r} (forward, reverse or bidirectional expected)")
    directions = 2 if direction == "bidirectional" else 1
    layout = attrs.get("layout", 0)
    hidden = attrs["hidden_size"]
    em = _Emitter(ctx, x.dtype)
    if layout:  # [B, S, ...] -> [S, B, ...]; states [B, D, H] -> [D, B, H]
        x = em.transpose(x, (1, 0, 2))
        h0 = em.transpose(h0, (1, 0, 2)) if h0 is not None else None
        c0 = em.transpose(c0, (1, 0, 2)) if c0 is not None else None
    steps, batch, _ = x.shape
    gates = GATES[op]
    if w.shape[:2] != (directions, gates * hidden) or r.shape != (directions, gates * hidden, hidden):
        raise ConvertError(f"W {list(w.shape)} and R {list(r.shape)} do not match {directions} direction(s) of "
                           f"{gates} gate(s) of hidden size {hidden}")
    masks = _step_masks(em, lens, steps, batch)
    specs = _activation_specs(op, attrs, directions)
    clip = attrs.get("clip")
    cell = {"RNN": _rnn_step, "GRU": _gru_step, "LSTM": _lstm_step}[op]
    ys, hs, cs = [], [], []
    for d in range(directions):
        reverse = direction == "reverse" or d == 1
        wb, rb = (em.slice(em.row(bias, d), 0, 0, gates * hidden), em.slice(em.row(bias, d), 0, gates * hidden,
                  2 * gates * hidden)) if bias is not None else (None, None)
        rt = em.transpose(em.row(r, d), (1, 0))  # [H, G*H]
        # biases that add to the input projection (GRU keeps R's h-gate bias apart: reset scales it)
        early = em.add(wb, rb) if op != "GRU" or rb is None else em.add(wb, _gru_early_rbias(em, rb, hidden))
        projected = em.op("MatMul", em.reshape(x, (steps * batch, x.shape[2])), em.transpose(em.row(w, d), (1, 0)))
        if early is not None:
            projected = em.op("Add", projected, early)
        projected = em.reshape(projected, (steps, batch, gates * hidden))
        state = {"h": em.row(h0, d) if h0 is not None else em.ctx.const(np.zeros((batch, hidden), x.dtype)),
                 "c": em.row(c0, d) if c0 is not None else em.ctx.const(np.zeros((batch, hidden), x.dtype))}
        params = {"rt": rt, "rb": rb, "hidden": hidden, "act": specs[d], "clip": clip,
                  "peep": em.row(peep, d) if peep is not None else None, "attrs": attrs}
        outputs = [None] * steps
        for t in (reversed(range(steps)) if reverse else range(steps)):
            xt = em.row(projected, t)
            new = cell(em, xt, state, params)
            if masks[t] is not None:
                new = {k: em.op("Where", masks[t], v, state[k]) for k, v in new.items()}
                outputs[t] = em.op("Where", masks[t], new["h"], em.scalar(0.0))
            else:
                outputs[t] = new["h"]
            state = {**state, **new}
        ys.append(outputs)
        hs.append(state["h"])
        cs.append(state["c"])
    y = em.op("Concat", *[em.reshape(ys[d][t], (1, 1, batch, hidden)) for t in range(steps)
                          for d in range(directions)], axis=0) if steps * directions > 1 else \
        em.reshape(ys[0][0], (1, 1, batch, hidden))
    y = em.reshape(y, (steps, directions, batch, hidden))
    y_h, y_c = (_stack(em, states, batch, hidden) for states in (hs, cs))
    if layout:
        y = em.transpose(y, (2, 0, 1, 3))
        y_h, y_c = em.transpose(y_h, (1, 0, 2)), em.transpose(y_c, (1, 0, 2))
    return [y, y_h, y_c] if op == "LSTM" else [y, y_h]


def _stack(em, states, batch, hidden):
    parts = [em.reshape(s, (1, batch, hidden)) for s in states]
    return parts[0] if len(parts) == 1 else em.op("Concat", *parts, axis=0)


def _step_masks(em, lens, steps, batch) -> list:
    """Per step, a [B, 1] bool of the batch entries still inside their sequence (None: all)."""
    if lens is None:
        return [None] * steps
    if lens.is_const:
        lengths = lens.const.astype(np.int64).reshape(batch)
        if np.all(lengths >= steps):
            return [None] * steps
        return [None if np.all(lengths > t) else em.ctx.const((lengths > t).reshape(batch, 1)) for t in range(steps)]
    lengths = em.reshape(lens, (batch, 1))
    return [em.op("Less", em.ctx.const(np.array(t, dtype=lens.dtype)), lengths) for t in range(steps)]


def _gates(em, gates, count, hidden):
    return [em.slice(gates, 1, k * hidden, (k + 1) * hidden) for k in range(count)]


def _clipped(em, x, clip):
    return x if clip is None else em.op("Clip", x, min=-float(clip), max=float(clip))


def _act(em, params, k, x):
    return em.activation(params["act"][k], _clipped(em, x, params["clip"]))


def _rnn_step(em, xt, state, params):
    gates = em.op("Add", xt, em.op("MatMul", state["h"], params["rt"]))
    return {"h": _act(em, params, 0, gates)}


def _gru_early_rbias(em, rb, hidden):
    """R's biases of the z and r gates (they add like W's); the h gate's is zero here."""
    zr = em.slice(rb, 0, 0, 2 * hidden)
    return em.ctx.const(np.concatenate([zr.const, np.zeros(hidden, zr.dtype)])) if zr.is_const else \
        em.op("Concat", zr, em.ctx.const(np.zeros(hidden, rb.dtype)), axis=0)


def _gru_step(em, xt, state, params):
    hidden, h = params["hidden"], state["h"]
    rt, rb = params["rt"], params["rb"]
    xz, xr, xh = _gates(em, xt, 3, hidden)
    rzr = em.slice(rt, 1, 0, 2 * hidden)
    hz, hr = _gates(em, em.op("MatMul", h, rzr), 2, hidden)
    z = _act(em, params, 0, em.op("Add", xz, hz))
    reset = _act(em, params, 0, em.op("Add", xr, hr))
    rh = em.slice(rt, 1, 2 * hidden, 3 * hidden)
    rbh = em.slice(rb, 0, 2 * hidden, 3 * hidden) if rb is not None else None
    if params["attrs"].get("linear_before_reset", 0):
        recurrent = em.add(rbh, em.op("MatMul", h, rh)) if rbh is not None else em.op("MatMul", h, rh)
        candidate = em.op("Add", xh, em.op("Mul", reset, recurrent))
    else:
        recurrent = em.op("MatMul", em.op("Mul", reset, h), rh)
        candidate = em.op("Add", xh, em.add(rbh, recurrent) if rbh is not None else recurrent)
    candidate = _act(em, params, 1, candidate)
    # H = (1 - z) * candidate + z * H = candidate + z * (H - candidate)
    return {"h": em.op("Add", candidate, em.op("Mul", z, em.op("Sub", h, candidate)))}


def _lstm_step(em, xt, state, params):
    hidden, h, c = params["hidden"], state["h"], state["c"]
    gates = em.op("Add", xt, em.op("MatMul", h, params["rt"]))
    gi, go, gf, gc = _gates(em, gates, 4, hidden)
    peep = params["peep"]
    pi, po, pf = _gates(em, em.reshape(peep, (1, 3 * hidden)), 3, hidden) if peep is not None else (None,) * 3
    if pi is not None:
        gi, gf = em.op("Add", gi, em.op("Mul", pi, c)), em.op("Add", gf, em.op("Mul", pf, c))
    i = _act(em, params, 0, gi)
    if params["attrs"].get("input_forget", 0):
        f = em.op("Sub", em.scalar(1.0), i)
    else:
        f = _act(em, params, 0, gf)
    c_new = em.op("Add", em.op("Mul", f, c), em.op("Mul", i, _act(em, params, 1, gc)))
    if po is not None:
        go = em.op("Add", go, em.op("Mul", po, c_new))
    o = _act(em, params, 0, go)
    return {"h": em.op("Mul", o, _act(em, params, 2, c_new)), "c": c_new}
