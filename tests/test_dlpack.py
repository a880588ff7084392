"""DLPack capsules of ``tcomp.runtime.dlpack`` (what CUDA outputs export), checked on host memory:
consumers (torch, numpy) read them in place, and a consumed or dropped capsule frees its record
once (a destructor that took the dying capsule as a Python object crashed the process)."""
from __future__ import annotations

import gc

import numpy as np
import pytest

from tcomp.runtime import dlpack


class _Host:
    """A host array exported through ``dlpack.to_capsule`` (CPU device)."""

    def __init__(self, array):
        self.array = array

    def __dlpack__(self, stream=None, **kwargs):
        return dlpack.to_capsule(self, self.array.ctypes.data, (dlpack.KDL_CPU, 0), self.array.shape, self.array.dtype)

    def __dlpack_device__(self):
        return dlpack.KDL_CPU, 0


def test_capsules_consumed_or_dropped_are_released():
    array = np.random.default_rng().standard_normal((3, 5)).astype(np.float32)
    for _ in range(100):
        view = np.from_dlpack(_Host(array))
        np.testing.assert_array_equal(view, array)
        del view
        _Host(array).__dlpack__()  # dropped unconsumed
    gc.collect()
    assert not dlpack._alive


def test_torch_reads_a_capsule_in_place():
    torch = pytest.importorskip("torch")
    array = np.random.default_rng().standard_normal((4, 2)).astype(np.float32)
    for _ in range(20):
        tensor = torch.from_dlpack(_Host(array))
        assert tensor.data_ptr() == array.ctypes.data
        np.testing.assert_array_equal(tensor.numpy(), array)
        del tensor
    gc.collect()
    assert not dlpack._alive
