"""The five real architectures, exported from transformers with random weights, against onnxruntime."""
import numpy as np
import onnxruntime
import pytest

import tcomp
from model_zoo import MODEL_NAMES, export_model, random_inputs


def _relative_error(ours, ref):
    ref = ref.astype(np.float64)
    return np.linalg.norm(ours.astype(np.float64) - ref) / np.linalg.norm(ref)


def _no_gpu() -> str:
    """Why the cuda target cannot run here ("" where it can)."""
    try:
        from tcomp.targets.cuda.driver import device_count
    except ImportError:
        return "cuda-python is not installed"
    return "" if device_count() else "no CUDA device on this machine (CI has none)"


CUDA = pytest.param("cuda", marks=pytest.mark.skipif(bool(_no_gpu()), reason=_no_gpu() or "-"))


@pytest.mark.parametrize("target", ["cpu", CUDA])
@pytest.mark.parametrize("small", [True, False], ids=["small", "full"])
@pytest.mark.parametrize("name", MODEL_NAMES)
def test_model_matches_onnxruntime(name, small, target, zoo_dir):
    path = export_model(name, zoo_dir, small=small)
    mod = tcomp.compile(str(path), target=target)
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    for _ in range(2):  # two fresh random inputs through the same compiled module
        feeds = random_inputs(path, np.random.default_rng())
        ours = mod.run(feeds)
        ref = session.run(None, feeds)
        assert [o.shape for o in ours] == [r.shape for r in ref]
        for o, r in zip(ours, ref):
            assert np.isfinite(r).all()
            assert _relative_error(o, r) <= 1e-4


def test_text_model_by_keyword_and_positional(zoo_dir):
    path = export_model("bert", zoo_dir, small=True)
    mod = tcomp.compile(path)
    feeds = random_inputs(path, np.random.default_rng())
    by_name = mod.run(feeds)
    positional = mod(*[feeds[name] for name in mod.input_names])
    keyword = mod(**feeds)
    np.testing.assert_array_equal(by_name[0], positional[0])
    np.testing.assert_array_equal(by_name[0], keyword[0])
    assert mod.input_names == ["input_ids", "attention_mask"]
    assert [(s.shape, s.dtype) for s in mod.inputs] == [((1, 32), "int64"), ((1, 32), "int64")]
