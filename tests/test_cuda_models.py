"""``tcomp.compile(model, target="cuda")``: whole models on the device executor.

Compile-only (everywhere, CI included): a small ONNX model and a ResNet-style block compile for
sm_80 and sm_90 into one PTX/cubin, every kernel bound, matmul/conv groups tiled, the plan's
arena offsets aligned to 256 bytes. On a GPU (skipped without one): the models against
onnxruntime, torch CUDA tensors in and DLPack tensors out without copies, clear input errors.
"""
from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("cuda.bindings.nvrtc", reason="cuda-python is not installed (pip install 'tcomp[cuda]')")

import onnx  # noqa: E402
from onnx import TensorProto, helper  # noqa: E402
from onnx_helpers import IR_VERSION, mlp_model, reference  # noqa: E402

import tcomp  # noqa: E402
from tcomp.runtime.device_executor import DEVICE_ALIGN  # noqa: E402
from tcomp.targets.cuda.driver import device_count  # noqa: E402

ARCHS = ("sm_80", "sm_90")
needs_gpu = pytest.mark.skipif(device_count() == 0, reason="no CUDA device on this machine (CI has none); the "
                                                           "compile-only tests check the generated code there")


def resnet_block(channels: int = 16, size: int = 14) -> onnx.ModelProto:
    """conv3x3 + relu, conv3x3, + skip, relu, global average pool, flatten, gemm."""
    rng = np.random.default_rng(0)

    def weight(name, *shape):
        return helper.make_tensor(name, TensorProto.FLOAT, shape, (rng.standard_normal(shape) * 0.1).astype(np.float32).ravel())

    nodes = [helper.make_node("Conv", ["x", "w1", "b1"], ["c1"], pads=[1, 1, 1, 1]),
             helper.make_node("Relu", ["c1"], ["r1"]),
             helper.make_node("Conv", ["r1", "w2", "b2"], ["c2"], pads=[1, 1, 1, 1]),
             helper.make_node("Add", ["c2", "x"], ["s"]),
             helper.make_node("Relu", ["s"], ["r2"]),
             helper.make_node("GlobalAveragePool", ["r2"], ["p"]),
             helper.make_node("Flatten", ["p"], ["f"]),
             helper.make_node("Gemm", ["f", "wf", "bf"], ["y"], transB=1)]
    inits = [weight("w1", channels, channels, 3, 3), weight("b1", channels), weight("w2", channels, channels, 3, 3),
             weight("b2", channels), weight("wf", 10, channels), weight("bf", 10)]
    graph = helper.make_graph(nodes, "resnet_block",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, channels, size, size])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 10])], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=IR_VERSION)


MODELS = {"mlp": lambda: mlp_model(33, 48, 2), "resnet_block": resnet_block}


@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize("model", sorted(MODELS))
def test_model_compiles_to_ptx_and_cubin(model, arch):
    mod = tcomp.compile(MODELS[model](), target=f"cuda -arch={arch}")
    module = mod.executor.jit
    assert f".target {arch}" in module.image.ptx and module.image.cubin[:4] == b"\x7fELF"
    launches = [launch for step in mod.executor.steps for launch in module.launches[step.kernel].launches]
    assert launches and all(f".entry {launch.kernel}" in module.image.ptx for launch in launches)
    for launch in launches:  # bound: GPU lowering refuses unbound blocks, so every kernel has threads
        assert any(extent != 1 for extent in launch.block) or launch.grid == (1, 1, 1)
    schedules = {kernel.func.attrs["ops"]: kernel.func.attrs["gpu_schedule"] for kernel in mod.kernels.values()}
    tiled = [ops for ops in schedules if ops.startswith(("MatMul", "Conv", "Gemm"))]
    assert tiled and all(schedules[ops] == "tiled" for ops in tiled), schedules
    assert any("__shared__" in line for line in module.source.splitlines())


def test_cuda_target_needs_an_arch_or_a_device():
    if device_count() == 0:
        with pytest.raises(tcomp.TcompError, match="no CUDA device"):
            tcomp.compile(mlp_model(4, 8, 1), target="cuda")
    with pytest.raises(tcomp.TcompError, match="unknown architecture"):
        tcomp.compile(mlp_model(4, 8, 1), target="cuda -arch=volta")


def test_device_arena_offsets_are_aligned():
    from tcomp.runtime.memory_plan import plan_memory

    plan = plan_memory({0: (0, 1), 1: (1, 2), 2: (0, 2)}, {0: 100, 1: 300, 2: 7}, DEVICE_ALIGN)
    assert all(offset % DEVICE_ALIGN == 0 for offset in plan.offsets.values())


# ---------------------------------------------------------------------------------------- on a GPU
@needs_gpu
@pytest.mark.parametrize("model", sorted(MODELS))
def test_model_matches_reference(model):
    proto = MODELS[model]()
    mod = tcomp.compile(proto, target="cuda")
    rng = np.random.default_rng()
    for _ in range(2):
        feeds = {spec.name: rng.standard_normal(spec.shape).astype(np.float32) for spec in mod.inputs}
        for ours, ref in zip(mod.run(feeds), reference(proto, feeds)):
            np.testing.assert_allclose(ours, ref, rtol=1e-4, atol=1e-4)


@needs_gpu
def test_torch_tensors_in_place_and_dlpack_outputs():
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("torch has no CUDA")
    proto = MODELS["mlp"]()
    mod = tcomp.compile(proto, target="cuda")
    x = torch.randn(*mod.inputs[0].shape, device="cuda")
    (out,) = mod.run({mod.input_names[0]: x}, device_outputs=True)
    y = torch.from_dlpack(out)
    assert y.is_cuda and y.data_ptr() == out.__cuda_array_interface__["data"][0]  # no copy
    (ref,) = reference(proto, {mod.input_names[0]: x.cpu().numpy()})
    np.testing.assert_allclose(y.cpu().numpy(), ref, rtol=1e-4, atol=1e-4)
    (host,) = mod.run({mod.input_names[0]: x})
    np.testing.assert_allclose(host, ref, rtol=1e-4, atol=1e-4)
    del out
    torch.cuda.synchronize()
    assert torch.isfinite(y).all()  # the consumer's reference keeps the memory alive


@needs_gpu
def test_bad_device_inputs_are_refused_clearly():
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("torch has no CUDA")
    mod = tcomp.compile(MODELS["mlp"](), target="cuda")
    name, shape = mod.input_names[0], mod.inputs[0].shape
    with pytest.raises(tcomp.InputError, match="dtype float64"):
        mod.run({name: torch.zeros(*shape, dtype=torch.float64, device="cuda")})
    with pytest.raises(tcomp.InputError, match="shape"):
        mod.run({name: torch.zeros(shape[0] + 1, shape[1], device="cuda")})
    with pytest.raises(tcomp.InputError, match="C-contiguous"):
        mod.run({name: torch.zeros(shape[1], shape[0], device="cuda").t()})
