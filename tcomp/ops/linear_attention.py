"""LinearAttentionScan: the recurrence of ONNX LinearAttention, as one anchor.

Per (batch, key/value head) the state S (dk x dv, float32) walks the sequence::

    S = S * exp(decay_t)                        (gated rules; decay per head or per key feature)
    v_t = beta_t * (v_t - S^T k_t)              (delta rules)
    S = S + k_t v_t^T
    o_t,g = scale * S^T q_t,g                   (each query head g of the group)

Inputs (converter-prepared float32 views): q (B, Hkv, G, T, dk), k (B, Hkv, T, dk),
v (B, Hkv, T, dv), then as flagged by the attributes ``gated`` / ``delta`` / ``past``:
the decay factor exp(decay) (B, Hkv, T, 1 or dk), beta (B, 1 or Hkv, T, 1) and the
initial state (B, Hkv, dk, dv). A fused group has one output, so the kernel writes
both results into one row per (batch, head): the outputs (T, G, dv) then the final
state (dk, dv); the converter slices them apart.
"""
from __future__ import annotations

from ..graph.ir import TensorType
from ..tir.views import broadcast_index
from ..tir.expr import Buffer, IntImm, Var, const
from ..tir.stmt import Allocate, BufferStore, PrimFunc, block, loop, seq
from .nn import AnchorContext
from .registry import ANCHOR, register


def packed_length(attrs) -> int:
    return attrs["length"] * attrs["group"] * attrs["dv"] + attrs["dk"] * attrs["dv"]


def _infer(node):
    q = node.inputs[0]
    return [TensorType((q.shape[0], q.shape[1], packed_length(node.attrs)), "float32")]


def _kernel(node, views, ctx: AnchorContext):
    a = node.attrs
    q, k, v = views[:3]
    rest = list(views[3:])
    decay = rest.pop(0) if a["gated"] else None
    beta = rest.pop(0) if a["delta"] else None
    past = rest.pop(0) if a["past"] else None
    batch, heads = q.shape[0], q.shape[1]
    T, G, dk, dv = a["length"], a["group"], a["dk"], a["dv"]
    f32 = "float32"
    state = Buffer("state", (dk, dv), f32, "local")
    tmp = Buffer("tmp", (dv,), f32, "local")
    bh, t, g = Var("bh"), Var("t"), Var("g")
    b, h = bh // heads, bh % heads

    def at(view, *idx):  # broadcasting read (decay and beta may have extent-1 axes)
        full = (batch, heads) + tuple(view.shape[2:])
        return view.fn(*broadcast_index((b, h) + idx, view.shape, full))

    def each_ij(name, fn, reduce_i=False):
        i, j = Var("i"), Var("j")
        return loop(i, dk, loop(j, dv, block(name, [("R" if reduce_i else "S", dk, i), ("S", dv, j)], fn)))

    def each_j(name, fn):
        j = Var("j")
        return loop(j, dv, block(name, [("S", dv, j)], fn))

    init = each_ij("init", lambda vi, vj: BufferStore(
        state, at(past, vi, vj) if past is not None else const(0.0, f32), (vi, vj)))
    step = []
    if decay is not None:
        step.append(each_ij("decay", lambda vi, vj: BufferStore(
            state, state[vi, vj] * at(decay, t, vi if decay.shape[3] > 1 else IntImm(0)), (vi, vj))))
    if beta is not None:  # tmp = beta * (v - S^T k)
        step.append(each_j("retrieve_init", lambda vj: BufferStore(tmp, const(0.0, f32), (vj,))))
        step.append(each_ij("retrieve", lambda vi, vj: BufferStore(tmp, tmp[vj] + state[vi, vj] * at(k, t, vi),
                                                                   (vj,)), reduce_i=True))
        step.append(each_j("correct", lambda vj: BufferStore(
            tmp, at(beta, t, IntImm(0)) * (at(v, t, vj) - tmp[vj]), (vj,))))
        update = lambda vi, vj: state[vi, vj] + at(k, t, vi) * tmp[vj]
    else:
        update = lambda vi, vj: state[vi, vj] + at(k, t, vi) * at(v, t, vj)
    step.append(each_ij("update", lambda vi, vj: BufferStore(state, update(vi, vj), (vi, vj))))
    read = seq(
        each_j("read_init", lambda vj: BufferStore(tmp, const(0.0, f32), (vj,))),
        each_ij("read", lambda vi, vj: BufferStore(tmp, tmp[vj] + at(q, g, t, vi) * state[vi, vj], (vj,)),
                reduce_i=True),
        each_j("out", lambda vj: ctx.store(tmp[vj] * const(a["scale"], f32), (b, h, (t * G + g) * dv + vj))))
    step.append(loop(g, G, read))
    final = each_ij("state_out", lambda vi, vj: ctx.store(state[vi, vj], (b, h, T * G * dv + vi * dv + vj)))
    body = Allocate(state, Allocate(tmp, seq(init, loop(t, T, seq(*step)), final)))
    rows = batch * heads
    nest = loop(bh, rows, body, "parallel" if rows > 1 else "serial")
    return PrimFunc(ctx.name, tuple(ctx.params), nest, {"kind": "scan", "rows": rows, "length": T})


register("LinearAttentionScan", ANCHOR, _infer, kernel=_kernel)
