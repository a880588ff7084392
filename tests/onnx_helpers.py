"""Helpers for the operator tests: build one small ONNX model, run it with tcomp and
with onnxruntime (the reference), compare.

    check([node("Relu", ["x"], ["y"])], {"x": rand((7, 13))}, ["y"])

Inputs are graph inputs (fed at run time, never folded); ``inits`` become initializers.
Output types are taken from onnx shape inference, then completed from onnxruntime's
results, so tests never spell output shapes.
"""
from __future__ import annotations

import os
import pickle
import select
import signal
import time
import traceback

import numpy as np
import onnx
import onnxruntime as ort
from onnx import helper, numpy_helper

import tcomp

IR_VERSION = 10  # onnxruntime 1.31 rejects onnx 1.23's default IR version
DEFAULT_OPSET = 17

node = helper.make_node


def rng() -> np.random.Generator:
    """A fresh, unseeded generator: every run draws new inputs."""
    return np.random.default_rng()


def rand(shape, lo=-1.0, hi=1.0, dtype=np.float32, avoid=None, margin=1e-3):
    """Uniform floats in [lo, hi) of ``shape``, never all zeros.

    ``avoid(x) -> distance to the nearest discontinuity``; values closer than ``margin``
    are redrawn (e.g. ``avoid=dist_to_int`` for Floor/Ceil).
    """
    g = rng()
    x = g.uniform(lo, hi, size=shape).astype(dtype)
    for _ in range(100):
        if avoid is None:
            break
        bad = np.asarray(avoid(x.astype(np.float64))) < margin
        if not np.any(bad):
            break
        x[bad] = g.uniform(lo, hi, size=int(np.count_nonzero(bad))).astype(dtype)
    else:  # pragma: no cover
        raise RuntimeError("could not draw values away from the discontinuities")
    if x.size and not np.any(x):
        x.flat[0] = hi if hi != 0 else lo
    return x


def rand_nonzero(shape, lo=0.5, hi=2.0, dtype=np.float32):
    """Magnitudes in [lo, hi) with random signs (safe denominators)."""
    g = rng()
    mag = g.uniform(lo, hi, size=shape)
    sign = np.where(g.random(size=shape) < 0.5, -1.0, 1.0)
    return (mag * sign).astype(dtype)


def randint(shape, lo, hi, dtype=np.int64, nonzero=False):
    """Integers in [lo, hi], never all zeros (no zeros at all with ``nonzero``)."""
    g = rng()
    x = g.integers(lo, hi + 1, size=shape).astype(dtype)
    if nonzero:
        while np.any(x == 0):
            x[x == 0] = g.integers(lo, hi + 1, size=int(np.count_nonzero(x == 0)))
    if x.size and not np.any(x):
        x.flat[0] = hi if hi != 0 else lo
    return x


def randbool(shape):
    g = rng()
    x = g.random(size=shape) < 0.5
    if x.size:
        x.flat[0] = True
        x.flat[-1] = False if x.size > 1 else True
    return x


def dist_to_int(x):
    return np.abs(x - np.round(x))


def dist_to_half(x):
    return np.abs(x - np.floor(x) - 0.5)


def make_model(nodes, inputs: dict, outputs: list, opset: int = DEFAULT_OPSET, inits: dict | None = None,
               extra_opsets: dict | None = None) -> onnx.ModelProto:
    graph_inputs = [helper.make_tensor_value_info(name, helper.np_dtype_to_tensor_dtype(np.asarray(a).dtype),
                                                  list(np.shape(a)))
                    for name, a in inputs.items()]
    initializers = [numpy_helper.from_array(np.asarray(a), name) for name, a in (inits or {}).items()]
    graph = helper.make_graph(list(nodes), "test", graph_inputs,
                              [helper.make_empty_tensor_value_info(name) for name in outputs],
                              initializer=initializers)
    opsets = [helper.make_opsetid("", opset)] + [helper.make_opsetid(d, v) for d, v in (extra_opsets or {}).items()]
    model = helper.make_model(graph, opset_imports=opsets, ir_version=IR_VERSION, producer_name="tcomp-tests")
    inferred = onnx.shape_inference.infer_shapes(model, strict_mode=True)
    del model.graph.output[:]
    model.graph.output.extend(inferred.graph.output)
    return model


def reference(model: onnx.ModelProto, feeds: dict) -> list:
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return sess.run(None, feeds)


def with_static_outputs(model: onnx.ModelProto, refs: list) -> onnx.ModelProto:
    """The same model with every graph output typed exactly like onnxruntime's result."""
    fixed = onnx.ModelProto()
    fixed.CopyFrom(model)
    outs = [helper.make_tensor_value_info(o.name, helper.np_dtype_to_tensor_dtype(r.dtype), list(r.shape))
            for o, r in zip(model.graph.output, refs)]
    del fixed.graph.output[:]
    fixed.graph.output.extend(outs)
    return fixed


CHILD_TIMEOUT_S = 120.0


def in_child(fn, *args, timeout: float = CHILD_TIMEOUT_S):
    """``fn(*args)`` in a forked child process.

    A crash in generated code (SIGFPE, SIGSEGV, ...) or a hang then fails one test instead of
    killing the whole pytest run.  Exceptions raised in the child are re-raised here with the
    same class and message.  The parent never runs tcomp kernels itself, so the OpenMP pool is
    only ever started in (single-use) children.
    """
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:  # child
        os.close(read_fd)
        try:
            try:
                payload = ("ok", fn(*args))
            except BaseException as exc:  # noqa: BLE001 - everything goes back to the parent
                payload = ("err", type(exc), str(exc), traceback.format_exc())
            try:
                data = pickle.dumps(payload)
            except Exception as exc:  # noqa: BLE001
                data = pickle.dumps(("err", RuntimeError, f"unpicklable result: {exc}", ""))
            with os.fdopen(write_fd, "wb") as f:
                f.write(data)
        finally:
            os._exit(0)
    os.close(write_fd)
    chunks, deadline = [], time.monotonic() + timeout
    with os.fdopen(read_fd, "rb") as f:
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
                raise AssertionError(f"tcomp hung: no result after {timeout:.0f} s (child killed)")
            ready, _, _ = select.select([f], [], [], remaining)
            if ready:
                chunk = os.read(f.fileno(), 1 << 20)
                if not chunk:
                    break
                chunks.append(chunk)
    _, status = os.waitpid(pid, 0)
    if os.WIFSIGNALED(status):
        sig = os.WTERMSIG(status)
        raise AssertionError(f"tcomp crashed the process: killed by signal {signal.Signals(sig).name}")
    if not chunks:
        raise AssertionError(f"tcomp child exited without a result (status {status})")
    payload = pickle.loads(b"".join(chunks))
    if payload[0] == "ok":
        return payload[1]
    _, cls, message, tb = payload
    try:
        exc = cls.__new__(cls)
        if not issubclass(cls, tcomp.TcompError):  # an internal error: say where
            message = f"{message}\n--- traceback in the tcomp child process ---\n{tb}"
        Exception.__init__(exc, message)
    except Exception:  # noqa: BLE001
        exc = RuntimeError(f"{cls.__name__}: {message}")
    exc.child_traceback = tb
    raise exc


def _compile_and_run(model_bytes: bytes, feeds: dict) -> list:
    model = onnx.ModelProto()
    model.ParseFromString(model_bytes)
    mod = tcomp.compile(model, target="cpu")
    # copies: tcomp must not depend on (or modify) the caller's arrays
    outs = mod.run({k: np.array(v, copy=True) for k, v in feeds.items()})
    return [np.asarray(o) for o in outs]


def run_tcomp(model: onnx.ModelProto, feeds: dict) -> list:
    """Compiles ``model`` with tcomp and runs it on ``feeds`` (in a child process)."""
    return in_child(_compile_and_run, model.SerializeToString(), feeds)


def assert_matches(ours, ref, rtol=1e-4, atol=1e-5, relnorm=None, name="output"):
    ours = np.asarray(ours)
    assert ours.shape == ref.shape, f"{name}: shape {ours.shape} != reference {ref.shape}"
    assert ours.dtype == ref.dtype, f"{name}: dtype {ours.dtype} != reference {ref.dtype}"
    if ref.dtype.kind in "biu":
        mismatch = np.argwhere(ours != ref)
        assert mismatch.size == 0, (f"{name}: {len(mismatch)} of {ref.size} elements differ, first at "
                                    f"{tuple(mismatch[0])}: ours {ours[tuple(mismatch[0])]} vs "
                                    f"ref {ref[tuple(mismatch[0])]}")
        return
    if relnorm is not None:
        assert np.array_equal(np.isnan(ours), np.isnan(ref)), f"{name}: NaN positions differ"
        diff = np.linalg.norm((ours.astype(np.float64) - ref.astype(np.float64)).ravel())
        scale = np.linalg.norm(ref.astype(np.float64).ravel())
        assert diff <= relnorm * max(scale, 1e-30), f"{name}: relative norm error {diff / scale:.3e} > {relnorm}"
        # and no single element far off (a few wrong elements in a big tensor)
        worst = np.max(np.abs(ours.astype(np.float64) - ref)) if ref.size else 0.0
        assert worst <= 1e-3 * max(np.max(np.abs(ref)), 1e-30), (
            f"{name}: max abs error {worst:.3e} vs max |ref| {np.max(np.abs(ref)):.3e}")
        return
    np.testing.assert_allclose(ours, ref, rtol=rtol, atol=atol, err_msg=name)


def check(nodes, inputs: dict, outputs: list, opset: int = DEFAULT_OPSET, inits: dict | None = None,
          rtol=1e-4, atol=1e-5, relnorm=None):
    """Builds the model, runs onnxruntime and tcomp on ``inputs``, compares every output."""
    model = make_model(nodes, inputs, outputs, opset, inits)
    refs = reference(model, inputs)
    model = with_static_outputs(model, refs)
    ours = run_tcomp(model, inputs)
    assert len(ours) == len(refs), f"{len(ours)} outputs, reference has {len(refs)}"
    for name, o, r in zip(outputs, ours, refs):
        assert_matches(o, r, rtol=rtol, atol=atol, relnorm=relnorm, name=name)
    return ours, refs


def check_op(op: str, inputs: dict, opset: int = DEFAULT_OPSET, inits: dict | None = None, n_outputs: int = 1,
             rtol=1e-4, atol=1e-5, relnorm=None, input_names=None, **attrs):
    """One-node model: ``op`` over ``input_names`` (default: inputs then inits, in order)."""
    names = list(input_names) if input_names is not None else list(inputs) + list(inits or {})
    outs = [f"y{i}" for i in range(n_outputs)]
    return check([node(op, names, outs, **attrs)], inputs, outs, opset, inits, rtol=rtol, atol=atol,
                 relnorm=relnorm)
