"""Helpers for the operator tests: build one small ONNX model, run it with tcomp and
with onnxruntime (the reference), compare.

    check([node("Relu", ["x"], ["y"])], {"x": rand((7, 13))}, ["y"])

Inputs are graph inputs (fed at run time, never folded); ``inits`` become initializers.
Output types are taken from onnx shape inference, then completed from onnxruntime's
results, so tests never spell output shapes.
"""
from __future__ import annotations

import atexit
import os
import pickle
import select
import signal
import struct
import subprocess
import sys
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
    x = np.asarray(g.uniform(lo, hi, size=shape)).astype(dtype)
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


def mlp_model(rows: int, width: int, layers: int = 2) -> onnx.ModelProto:
    """``layers`` identical MatMul+Add+Relu layers (one tuning workload) over an input ``x`` of
    [rows, width], with random weights; the output is ``y{layers - 1}``."""
    nodes, weights, x = [], {}, "x"
    for layer in range(layers):
        nodes += [helper.make_node("MatMul", [x, f"w{layer}"], [f"h{layer}"]),
                  helper.make_node("Add", [f"h{layer}", f"b{layer}"], [f"a{layer}"]),
                  helper.make_node("Relu", [f"a{layer}"], [f"y{layer}"])]
        weights.update({f"w{layer}": rand((width, width)), f"b{layer}": rand((width,))})
        x = f"y{layer}"
    return make_model(nodes, {"x": np.zeros((rows, width), np.float32)}, [x], opset=17, inits=weights)


def reference(model: onnx.ModelProto, feeds: dict) -> list:
    opts = ort.SessionOptions()
    # no onnxruntime worker threads: the parent process forks tcomp children (see in_child)
    opts.intra_op_num_threads = 1
    opts.inter_op_num_threads = 1
    sess = ort.InferenceSession(model.SerializeToString(), opts, providers=["CPUExecutionProvider"])
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


def _compile_and_run_many(model_bytes: bytes, feeds_list: list) -> list:
    """Compiles once, runs on each feed dict; returns one output list per feed dict."""
    model = onnx.ModelProto()
    model.ParseFromString(model_bytes)
    mod = tcomp.compile(model, target="cpu")
    results = []
    for feeds in feeds_list:
        # copies: tcomp must not depend on (or modify) the caller's arrays
        outs = mod.run({k: np.array(v, copy=True) for k, v in feeds.items()})
        results.append([np.array(o, copy=True) for o in outs])
    return results


WORKER_FUNCS = {"compile_and_run_many": _compile_and_run_many}


class Worker:
    """A long-lived child process that compiles and runs models with tcomp.

    A crash in generated code (SIGFPE, SIGSEGV, ...) or a hang then fails one test instead of
    killing the whole pytest run; the worker is restarted for the next test.  Exceptions raised
    in the worker are re-raised here with the same class and message.  ``script`` is the module
    the child runs (``script --worker`` calls ``worker_main`` with that module's functions).
    """

    def __init__(self, script: str = __file__):
        self.script = os.path.abspath(script)
        self.proc = None

    def _start(self):
        here = os.path.dirname(os.path.abspath(__file__))
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join([os.path.dirname(here), here, env.get("PYTHONPATH", "")])
        self.proc = subprocess.Popen([sys.executable, self.script, "--worker"], env=env,
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, bufsize=0)

    def stop(self):
        if self.proc is not None:
            try:
                self.proc.kill()
                self.proc.wait()
            except Exception:  # noqa: BLE001
                pass
            self.proc = None

    def call(self, name: str, *args, timeout: float = CHILD_TIMEOUT_S):
        if self.proc is None or self.proc.poll() is not None:
            self._start()
        data = pickle.dumps((name, args), protocol=pickle.HIGHEST_PROTOCOL)
        try:
            self.proc.stdin.write(struct.pack("<Q", len(data)) + data)
            self.proc.stdin.flush()
            header = self._read(8, timeout)
            payload = pickle.loads(self._read(struct.unpack("<Q", header)[0], timeout))
        except _WorkerDied as died:
            code = self.proc.wait()
            self.proc = None
            if died.hung:
                raise AssertionError(f"tcomp hung: no result after {timeout:.0f} s (worker killed)") from None
            if code < 0:
                raise AssertionError(f"tcomp crashed the process: killed by signal "
                                     f"{signal.Signals(-code).name}") from None
            raise AssertionError(f"tcomp worker exited with status {code}") from None
        if payload[0] == "ok":
            return payload[1]
        _, cls, message, tb = payload
        try:
            exc = cls.__new__(cls)
            if not issubclass(cls, tcomp.TcompError):  # an internal error: say where
                message = f"{message}\n--- traceback in the tcomp worker process ---\n{tb}"
            Exception.__init__(exc, message)
        except Exception:  # noqa: BLE001
            exc = RuntimeError(f"{cls.__name__}: {message}\n{tb}")
        raise exc

    def _read(self, n: int, timeout: float) -> bytes:
        fd = self.proc.stdout.fileno()
        chunks, got, deadline = [], 0, time.monotonic() + timeout
        while got < n:
            remaining = deadline - time.monotonic()
            ready, _, _ = select.select([fd], [], [], max(remaining, 0))
            if not ready:
                self.proc.kill()
                raise _WorkerDied(hung=True)
            chunk = os.read(fd, min(n - got, 1 << 22))
            if not chunk:
                raise _WorkerDied(hung=False)
            chunks.append(chunk)
            got += len(chunk)
        return b"".join(chunks)


class _WorkerDied(Exception):
    def __init__(self, hung: bool):
        super().__init__()
        self.hung = hung


_WORKER = Worker()
atexit.register(_WORKER.stop)


def worker_main(funcs: dict = WORKER_FUNCS):
    proto_in = os.fdopen(os.dup(0), "rb", buffering=0)
    proto_out = os.fdopen(os.dup(1), "wb", buffering=0)
    os.dup2(2, 1)  # anything tcomp prints goes to stderr, not into the protocol
    while True:
        header = proto_in.read(8)
        if len(header) < 8:
            return
        size = struct.unpack("<Q", header)[0]
        data = b""
        while len(data) < size:
            chunk = proto_in.read(size - len(data))
            if not chunk:
                return
            data += chunk
        name, args = pickle.loads(data)
        try:
            payload = ("ok", funcs[name](*args))
        except BaseException as exc:  # noqa: BLE001 - everything goes back to the parent
            payload = ("err", type(exc), str(exc), traceback.format_exc())
        try:
            out = pickle.dumps(payload, protocol=pickle.HIGHEST_PROTOCOL)
        except Exception as exc:  # noqa: BLE001
            out = pickle.dumps(("err", RuntimeError, f"unpicklable result: {exc}", traceback.format_exc()))
        proto_out.write(struct.pack("<Q", len(out)) + out)


def run_tcomp_many(model: onnx.ModelProto, feeds_list: list) -> list:
    """Compiles ``model`` once with tcomp (in the worker process), runs it on each feed dict."""
    return _WORKER.call("compile_and_run_many", model.SerializeToString(), feeds_list)


def run_tcomp(model: onnx.ModelProto, feeds: dict) -> list:
    """Compiles ``model`` with tcomp and runs it on ``feeds`` (in the worker process)."""
    return run_tcomp_many(model, [feeds])[0]


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


def compile_and_check_fresh_feeds(model: onnx.ModelProto, make_feeds, relnorm=None, runs: int = 2, **compile_args):
    """``tcomp.compile``s ``model`` (output shapes fixed from a reference run) in this process and checks
    ``runs`` runs, each on fresh feeds from ``make_feeds()`` (nothing of a run reused by the next),
    against the reference's first output; returns the module."""
    import tcomp

    feeds = make_feeds()
    refs = reference(model, feeds)
    mod = tcomp.compile(with_static_outputs(model, refs), **compile_args)
    for _ in range(runs):
        assert_matches(mod.run(feeds)[0], refs[0], relnorm=relnorm)
        feeds = make_feeds()
        refs = reference(model, feeds)
    return mod


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


if __name__ == "__main__" and sys.argv[1:] == ["--worker"]:
    worker_main()
