"""Cross-thread reductions on the GPU targets (``targets/gpu/cross_thread.py``, ``rules/gpu_reduction.py``).

Compile-only (everywhere): softmax, layer norm and Reduce* groups compiled for cuda sm_90 bind
each row to a thread block and its elements to more than one thread, with barriers between the
steps of the shared-memory tree; a hand-scheduled row max compiles too, and a reduction bound to
threads that is not one combiner block is refused by name. Run (fresh random inputs, against
numpy / onnxruntime): on webgpu (lavapipe without a GPU) and on cuda (skipped without a GPU).
"""
from __future__ import annotations

import numpy as np
import pytest
from onnx_helpers import make_model, node, reference
from webgpu_helpers import requires_webgpu

import tcomp
from tcomp.schedule.schedule import Schedule
from tcomp.tir import te


def _no_cuda() -> str:
    try:
        from tcomp.targets.cuda.driver import device_count
    except ImportError:
        return "cuda-python is not installed"
    return "" if device_count() else "no CUDA device on this machine (CI has none)"


def _no_nvrtc() -> str:
    try:
        import cuda.bindings.nvrtc  # noqa: F401
    except ImportError:
        return "cuda-python is not installed (pip install 'tcomp[cuda]')"
    return ""


requires_cuda = pytest.mark.skipif(bool(_no_cuda()), reason=_no_cuda() or "-")
requires_nvrtc = pytest.mark.skipif(bool(_no_nvrtc()), reason=_no_nvrtc() or "-")
TARGETS = [pytest.param("webgpu", marks=requires_webgpu), pytest.param("cuda", marks=requires_cuda)]


def _model(kind: str, shape):
    """(model, feeds) of one reduction group over random float32 input ``x``."""
    rng = np.random.default_rng()
    x = rng.standard_normal(shape).astype(np.float32) * 3
    inits = {}
    if kind == "softmax":
        nodes = [node("Softmax", ["x"], ["y"], axis=-1)]
    elif kind == "layer_norm":
        inits = {"g": rng.standard_normal(shape[-1:]).astype(np.float32),
                 "b": rng.standard_normal(shape[-1:]).astype(np.float32)}
        nodes = [node("LayerNormalization", ["x", "g", "b"], ["y"], axis=-1, epsilon=1e-5)]
    elif kind == "reduce_mean_hw":  # a global average pool's shape: rows (N, C), columns (H, W)
        nodes = [node("ReduceMean", ["x"], ["y"], axes=[2, 3], keepdims=1)]
    elif kind == "reduce_max_middle":
        nodes = [node("ReduceMax", ["x"], ["y"], axes=[1], keepdims=0)]
    elif kind == "reduce_sum_all":
        nodes = [node("ReduceSum", ["x"], ["y"], keepdims=1)]  # rank 0 (keepdims=0) is no task yet
    else:
        raise ValueError(kind)
    return make_model(nodes, {"x": x}, ["y"], opset=17, inits=inits), {"x": x}


CASES = [("softmax", (8, 128)), ("softmax", (3, 5, 300)), ("layer_norm", (16, 768)), ("layer_norm", (4, 49)),
         ("reduce_mean_hw", (2, 16, 7, 7)), ("reduce_max_middle", (4, 100, 3)), ("reduce_sum_all", (37, 1001))]


@requires_nvrtc
@pytest.mark.parametrize("kind,shape", CASES)
def test_reductions_are_bound_across_threads(kind, shape):
    model, _ = _model(kind, shape)
    mod = tcomp.compile(model, target="cuda -arch=sm_90")
    module = mod.executor.jit
    reductions = [k for k in mod.kernels.values() if k.func.attrs["gpu_schedule"] == "reduction"]
    assert reductions, {k.func.attrs["ops"]: k.func.attrs["gpu_schedule"] for k in mod.kernels.values()}
    for kernel in reductions:
        program = module.programs[kernel.func.name]
        tree = [k for k in program.kernels if k.shared]
        assert tree, f"{kernel.func.name}: no kernel combines across threads"
        for device_kernel in tree:
            threads = device_kernel.launch["threadIdx.x"].value
            assert threads > 1 and threads % 32 == 0
            source = module.source.split(f"void __launch_bounds__({threads}) {device_kernel.name}(")[1]
            source = source.split("\n}\n")[0]
            assert source.count("__syncthreads();") >= threads.bit_length() - 1, source


def test_hand_scheduled_row_max_with_48_threads_compiles():
    """A user schedule binding a reduce loop to threadIdx.x (48 threads: the tree's short upper half)."""
    from tcomp.targets.csource import CSourceRenderer
    from tcomp.targets.cuda.dialect import CUDA
    from tcomp.targets.gpu.lower import lower_for_gpu

    program = lower_for_gpu(_row_max(48), "cuda")
    (kernel,) = program.kernels
    assert kernel.launch["threadIdx.x"].value == 48 and [b.name for b in kernel.shared] == ["M_red"]
    source = CSourceRenderer(CUDA).render(program.kernels)
    assert "if (((threadIdx_x + 32) < 48))" in source and source.count("__syncthreads();") == 7


def test_reduction_bound_to_threads_with_its_output_under_them_is_refused():
    from tcomp.targets.gpu.binding import GPULoweringError
    from tcomp.targets.gpu.lower import lower_for_gpu

    x = te.placeholder((64, 64), "float32", "x")
    k = te.reduce_axis(64, "k")
    m = te.compute((64,), lambda i: te.sum(x[i, k], axis=k), name="S")
    sch = Schedule(te.create_func([x, m], "rowsum"))
    i, kk = sch.get_loops(sch.get_block("S"))
    fused = sch.fuse(i, kk)
    sch.bind(sch.split(fused, [None, 256])[1], "threadIdx.x")
    with pytest.raises(GPULoweringError, match="block S .*output element also depends"):
        lower_for_gpu(sch.func, "cuda")


def _row_max(threads: int, rows: int = 100, length: int = 300):
    x = te.placeholder((rows, length), "float32", "x")
    k = te.reduce_axis(length, "k")
    m = te.compute((rows,), lambda i: te.max(x[i, k], axis=k), name="M")
    sch = Schedule(te.create_func([x, m], "rowmax"))
    i, kk = sch.get_loops(sch.get_block("M"))
    per_thread, thread = sch.split(kk, [None, threads])
    sch.reorder(thread, per_thread)
    sch.bind(i, "blockIdx.x")
    sch.bind(thread, "threadIdx.x")
    return sch.func


# ---------------------------------------------------------------------------------------- running
@pytest.mark.parametrize("target", TARGETS)
@pytest.mark.parametrize("threads", [48, 64])
def test_hand_scheduled_row_max_runs(target, threads):
    x = np.random.default_rng().standard_normal((100, 300)).astype(np.float32)
    kernel = tcomp.build(_row_max(threads), target=target)
    np.testing.assert_array_equal(kernel(x), x.max(axis=1))


@pytest.mark.parametrize("target", TARGETS)
@pytest.mark.parametrize("kind,shape", CASES)
def test_reductions_match_reference(target, kind, shape):
    model, feeds = _model(kind, shape)
    mod = tcomp.compile(model, target=target)
    assert any(k.func.attrs["gpu_schedule"] == "reduction" for k in mod.kernels.values())
    (ours,), (ref,) = mod.run(feeds), reference(model, feeds)
    np.testing.assert_allclose(ours, ref, rtol=1e-4, atol=1e-4 * max(1.0, float(np.abs(ref).max())))
