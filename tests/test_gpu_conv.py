"""Convolutions on GPU targets as implicit GEMMs (``tuning/conv_gemm_task.py``) and matmuls with staged
operands (``matmul_task.matmul_gpu``) under tiles chosen by shape (``targets/gpu/tiles.py``): the
generated CUDA run on the host (``cuda_host_emulation.py``) against onnxruntime, the tensor-core sketches
(mma.sync, wgmma) compiled for sm_80 / sm_90, and the tile choice."""
from __future__ import annotations

import numpy as np
import pytest
from onnx import TensorProto, helper, numpy_helper

pytest.importorskip("cuda.bindings.nvrtc", reason="cuda-python is not installed (pip install 'tcomp[cuda]')")

from cuda_host_emulation import COMPILER, EmulatedCuda
from onnx_helpers import IR_VERSION, reference

import tcomp
from tcomp.targets.gpu import tiles

needs_compiler = pytest.mark.skipif(COMPILER is None, reason="no host C++ compiler (g++) to run the CUDA source on")


def conv_model(n, c, k, size, kernel, stride, pad, dtype=np.float32, residual=False):
    """Conv (+ bias) [+ residual Add], Relu: NCHW ``n x c x size x size``, ``k`` output channels."""
    rng = np.random.default_rng()
    elem = TensorProto.FLOAT if dtype == np.float32 else TensorProto.FLOAT16
    out = (size + 2 * pad - kernel) // stride + 1
    inits = [numpy_helper.from_array((rng.standard_normal((k, c, kernel, kernel)) / np.sqrt(c * kernel * kernel))
                                     .astype(dtype), "w"),
             numpy_helper.from_array(rng.standard_normal(k).astype(dtype), "b")]
    nodes = [helper.make_node("Conv", ["x", "w", "b"], ["y"], pads=[pad] * 4, strides=[stride] * 2)]
    inputs = [helper.make_tensor_value_info("x", elem, [n, c, size, size])]
    if residual:
        inputs.append(helper.make_tensor_value_info("r", elem, [n, k, out, out]))
        nodes.append(helper.make_node("Add", ["y", "r"], ["s"]))
    nodes.append(helper.make_node("Relu", ["s" if residual else "y"], ["z"]))
    graph = helper.make_graph(nodes, "conv", inputs, [helper.make_tensor_value_info("z", elem, [n, k, out, out])],
                              inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=IR_VERSION)


CASES = {"3x3": (2, 8, 16, 9, 3, 1, 1), "1x1": (2, 16, 32, 8, 1, 1, 0), "stem 7x7/2": (1, 3, 16, 15, 7, 2, 3),
         "1x1/2": (2, 16, 24, 9, 1, 2, 0)}


@needs_compiler
@pytest.mark.parametrize("case", sorted(CASES))
@pytest.mark.parametrize("dtype,arch", [(np.float32, "sm_90"), (np.float16, "sm_75")])
def test_conv_runs_as_one_tiled_kernel(case, dtype, arch):
    """One kernel: the im2col tile gathered into shared memory, bias, residual and relu in its write-back
    (fp16 on sm_75: the SIMT tiles, padded columns and depth included)."""
    model = conv_model(*CASES[case], dtype=dtype, residual=case == "3x3")
    mod = tcomp.compile(model, target=EmulatedCuda(arch))
    rng = np.random.default_rng()
    feeds = {i.name: rng.standard_normal([d.dim_value for d in i.type.tensor_type.shape.dim]).astype(dtype)
             for i in model.graph.input}
    (kernel,) = mod.kernels.values()
    assert kernel.func.attrs["gpu_schedule"] == "tiled"
    launches = mod.executor.jit.launches[kernel.name]
    assert len(launches.launches) == 1 and launches.temporaries == ()  # im2col never stored
    expected = reference(model, feeds)[0]
    tolerance = 1e-5 if dtype == np.float32 else 5e-3
    np.testing.assert_allclose(mod.run(feeds)[0].astype(np.float32), expected.astype(np.float32),
                               rtol=tolerance, atol=tolerance * np.abs(expected).max())


@needs_compiler
@pytest.mark.parametrize("dtype,arch", [(np.float32, "sm_90"), (np.float16, "sm_75")])
def test_conv_on_few_pixels_splits_its_reduction(dtype, arch):
    """A 7x7 map with 1152-deep taps fills too few blocks: the product runs in 2 parts of the reduction
    (their partial sums a temporary), the epilogue adds them (bias, residual, relu) in a second kernel."""
    model = conv_model(1, 128, 32, 7, 3, 1, 1, dtype=dtype, residual=True)
    mod = tcomp.compile(model, target=EmulatedCuda(arch))
    (kernel,) = mod.kernels.values()
    launches = mod.executor.jit.launches[kernel.name]
    assert kernel.func.attrs["gpu_schedule"] == "tiled" and len(launches.launches) == 2
    assert launches.temporaries == (2 * 32 * 128 * 4,)  # fp32 partial sums of 2 parts x 32 channels x 128 columns
    rng = np.random.default_rng()
    feeds = {i.name: rng.standard_normal([d.dim_value for d in i.type.tensor_type.shape.dim]).astype(dtype)
             for i in model.graph.input}
    expected = reference(model, feeds)[0].astype(np.float32)
    tolerance = 1e-5 if dtype == np.float32 else 5e-3
    np.testing.assert_allclose(mod.run(feeds)[0].astype(np.float32), expected, rtol=tolerance,
                               atol=tolerance * np.abs(expected).max())


def attention_scores_model(dtype=np.float32):
    """Q @ K^T * scale over heads: the B operand read through a Transpose and a Mul (a prologue)."""
    elem = TensorProto.FLOAT if dtype == np.float32 else TensorProto.FLOAT16
    scale = numpy_helper.from_array(np.array(0.125, dtype), "scale")
    nodes = [helper.make_node("Transpose", ["k"], ["kt"], perm=[0, 1, 3, 2]),
             helper.make_node("Mul", ["kt", "scale"], ["ks"]),
             helper.make_node("MatMul", ["q", "ks"], ["s"])]
    graph = helper.make_graph(nodes, "scores", [helper.make_tensor_value_info("q", elem, [2, 3, 40, 16]),
                                                helper.make_tensor_value_info("k", elem, [2, 3, 24, 16])],
                              [helper.make_tensor_value_info("s", elem, [2, 3, 40, 24])], [scale])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=IR_VERSION)


@needs_compiler
@pytest.mark.parametrize("dtype,arch", [(np.float32, "sm_90"), (np.float16, "sm_75")])
def test_matmul_prologue_is_staged_in_the_shared_copy(dtype, arch):
    """The transposed, scaled operand is an operand stage computed in the shared copy: one tiled kernel."""
    model = attention_scores_model(dtype)
    mod = tcomp.compile(model, target=EmulatedCuda(arch))
    (kernel,) = mod.kernels.values()
    assert kernel.func.attrs["gpu_schedule"] == "tiled" and len(mod.executor.jit.launches[kernel.name].launches) == 1
    assert mod.executor.jit.launches[kernel.name].temporaries == ()  # computed where it is copied, never stored
    rng = np.random.default_rng()
    feeds = {"q": rng.standard_normal((2, 3, 40, 16)).astype(dtype), "k": rng.standard_normal((2, 3, 24, 16)).astype(dtype)}
    expected = reference(model, feeds)[0].astype(np.float32)
    tolerance = 1e-5 if dtype == np.float32 else 5e-3
    np.testing.assert_allclose(mod.run(feeds)[0].astype(np.float32), expected, rtol=tolerance,
                               atol=tolerance * np.abs(expected).max())


@pytest.mark.parametrize("arch,instruction", [("sm_80", "mma.sync.aligned.m16n8k16"), ("sm_90", "wgmma.mma_async")])
def test_half_conv_takes_tensor_cores(arch, instruction):
    mod = tcomp.compile(conv_model(2, 64, 128, 9, 3, 1, 1, np.float16), target=f"cuda -arch={arch}")
    assert instruction in mod.executor.jit.image.ptx


def test_tiles_fill_the_device_and_divide_tensor_core_products():
    sms = tiles.multiprocessors("sm_90")
    (_, big), *_ = tiles.simt(4096, 4096, 4096, 1, sms)
    assert big[0] * big[1] * big[2] == 128 and big[3] * big[4] * big[5] == 128
    (_, small), *_ = tiles.simt(1024, 768, 768, 1, sms)
    assert (1024 // (small[0] * small[1] * small[2])) * (768 // (small[3] * small[4] * small[5])) >= sms
    for _, (wm, wn, tm, tn, k1, _) in tiles.mma(64, 1664, 576, 1, sms):
        assert 64 % (16 * wm * tm) == 0 and 1664 % (8 * wn * tn) == 0 and 576 % (16 * k1) == 0
    for _, (wg, tm, _) in tiles.wgmma(128, 192, 1664, 576, 1, sms):
        assert 192 % (64 * wg * tm) == 0
    assert tiles.wgmma(256, 128, 1664, 576, 1, sms) == [] and tiles.mma(24, 8, 16, 1, sms) == []
    assert tiles.reduction_splits(512, 1664, 4608) == 4 and tiles.reduction_splits(64, 401408, 147) == 1
    assert tiles.reduction_splits(128, 256, 576) == 1  # 288-deep parts would not be 64-step multiples
