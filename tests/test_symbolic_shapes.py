"""Symbolic dimensions: one compiled module runs every size, matching onnxruntime at each."""
import itertools

import numpy as np
import onnxruntime
import pytest

import tcomp
from model_zoo import export_model, random_inputs


def _relative_error(ours, ref):
    ref = ref.astype(np.float64)
    return np.linalg.norm(ours.astype(np.float64) - ref) / np.linalg.norm(ref)


@pytest.mark.parametrize("name", ["bert", "gpt2"])
def test_text_model_compiled_once_runs_every_batch_and_sequence(name, zoo_dir):
    path = export_model(name, zoo_dir, dynamic=True)
    mod = tcomp.compile(str(path))
    assert [[str(d) for d in spec.shape] for spec in mod.inputs] == [["batch", "sequence"]] * 2
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    rng = np.random.default_rng()
    for batch, sequence in itertools.product((1, 3), (1, 7, 128, 384)):
        feeds = random_inputs(path, rng, {"batch": batch, "sequence": sequence})
        (ours,), (ref,) = mod.run(feeds), session.run(None, feeds)
        assert ours.shape == ref.shape == (batch, sequence, ours.shape[-1])
        assert _relative_error(ours, ref) <= 1e-4, (batch, sequence)


def test_sequence_longer_than_the_position_table_is_refused(zoo_dir):
    path = export_model("bert", zoo_dir, small=True, dynamic=True)
    mod = tcomp.compile(str(path))
    feeds = random_inputs(path, np.random.default_rng(), {"batch": 1, "sequence": 200})
    with pytest.raises(tcomp.InputError, match="sequence=200 violate a constraint.*sequence <= 128"):
        mod.run(feeds)


def test_vision_model_with_symbolic_batch(zoo_dir):
    path = export_model("resnet18", zoo_dir, small=True, dynamic=True)
    mod = tcomp.compile(str(path))
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    for batch in (1, 3):
        feeds = random_inputs(path, np.random.default_rng(), {"batch": batch})
        (ours,), (ref,) = mod.run(feeds), session.run(None, feeds)
        assert ours.shape == ref.shape and ours.shape[0] == batch
        assert _relative_error(ours, ref) <= 1e-4
