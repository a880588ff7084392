"""``tcomp.compile(model, target="webgpu")``: ONNX models through the device executor on wgpu
(lavapipe in CI), against onnxruntime on fresh random inputs; int64 inputs narrowed to 32 bits
where they fit and refused where they do not."""
from __future__ import annotations

import numpy as np
import pytest
from onnx import helper

pytest.importorskip("wgpu", reason="wgpu is not installed (pip install 'tcomp[webgpu]')")

from onnx_helpers import make_model, rand, reference  # noqa: E402

from webgpu_helpers import requires_webgpu  # noqa: E402

import tcomp  # noqa: E402
from tcomp.errors import InputError  # noqa: E402


pytestmark = requires_webgpu


def _embedding_model():
    """Gather (int64 ids, negatives wrap) -> Add -> Softmax -> Erf -> ReduceMean, and a bool and an
    int64 output (Greater, Cast)."""
    nodes = [helper.make_node("Gather", ["table", "ids"], ["emb"], axis=0),
             helper.make_node("Add", ["emb", "x"], ["s"]),
             helper.make_node("Softmax", ["s"], ["p"], axis=-1),
             helper.make_node("Erf", ["p"], ["e"]),
             helper.make_node("ReduceMean", ["e"], ["m"], keepdims=1, axes=[1]),
             helper.make_node("Greater", ["s", "m"], ["g"]),
             helper.make_node("Cast", ["g"], ["gi"], to=7)]
    inputs = {"x": rand((6, 50)), "ids": np.zeros((6,), np.int64)}
    return make_model(nodes, inputs, ["p", "m", "gi", "g"], opset=13, inits={"table": rand((10, 50))})


def test_model_matches_onnxruntime():
    model = _embedding_model()
    mod = tcomp.compile(model, target="webgpu")
    rng = np.random.default_rng()
    for _ in range(2):  # two fresh inputs through one compiled module
        feeds = {"x": rng.standard_normal((6, 50)).astype(np.float32), "ids": rng.integers(-10, 10, 6)}
        ours, want = mod.run(feeds), reference(model, feeds)
        for got, expected in zip(ours, want):
            assert got.dtype == expected.dtype and got.shape == expected.shape
            np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)


def test_int64_input_beyond_32_bits_is_refused():
    mod = tcomp.compile(_embedding_model(), target="webgpu")
    feeds = {"x": rand((6, 50)), "ids": np.array([0, 1, 2, 3, 4, 2**33], np.int64)}
    with pytest.raises(InputError, match=r"a tensor of shape \[6\]: int64 values in \[0, 8589934592\] do not fit int32"):
        mod.run(feeds)


def _relative_error(ours, ref):
    ref = ref.astype(np.float64)
    return np.linalg.norm(ours.astype(np.float64) - ref) / np.linalg.norm(ref)


@pytest.mark.parametrize("name", ["resnet18", "mobilenetv2", "bert"])
def test_model_zoo_matches_onnxruntime(name, zoo_dir):
    """ResNet-18, MobileNetV2 and a 2-layer BERT (the zoo's small configurations: the full ones take
    minutes on lavapipe) against onnxruntime; every shader binds at most the 8 storage buffers
    that WebGPU guarantees (fusion splits larger groups)."""
    import onnxruntime

    from model_zoo import export_model, random_inputs

    path = export_model(name, zoo_dir, small=True)
    mod = tcomp.compile(str(path), target="webgpu")
    assert max(len(shader.params) for shader in mod.executor.jit.shaders.values()) <= 8
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    for _ in range(2):  # two fresh random inputs through one compiled module
        feeds = random_inputs(path, np.random.default_rng())
        ours, want = mod.run(feeds), session.run(None, feeds)
        assert [o.shape for o in ours] == [r.shape for r in want]
        for got, expected in zip(ours, want):
            assert np.isfinite(expected).all()
            assert _relative_error(got, expected) <= 1e-4
