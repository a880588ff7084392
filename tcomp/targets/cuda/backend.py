"""The CUDA side of the device executor's backend protocol (``runtime/device_executor.py``).

Buffers are ``DeviceMemory`` allocations (or ``External`` wrappers of a device tensor given as
input); a buffer argument (buffer, offset) is passed to the kernel as the pointer
``buffer.pointer + offset``, a tile map as the tensor map of that pointer (``driver.tile_map``). Launches go to the default stream, so they are ordered with
PyTorch's and CuPy's default-stream work on the same device.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ...errors import InputError
from ...runtime.device_executor import DEVICE_ALIGN, DeviceTensor
from ...runtime.dlpack import KDL_CUDA, to_capsule
from . import driver
from .nvrtc import CudaImage


@dataclass(frozen=True)
class External:
    """Device memory owned by someone else (a torch/cupy tensor), kept alive while used."""

    pointer: int
    owner: object


class CudaBackend:
    align = DEVICE_ALIGN

    def __init__(self, image: CudaImage):
        self.module = driver.Module(image.cubin, image.dynamic_shared)

    def allocate(self, nbytes: int):
        return driver.DeviceMemory(nbytes)

    def upload(self, buffer, offset: int, array: np.ndarray) -> None:
        driver.copy_to_device(buffer.pointer + offset, array)

    def download(self, buffer, offset: int, array: np.ndarray) -> None:
        driver.copy_to_host(array, buffer.pointer + offset)

    def copy(self, src, src_offset: int, dst, dst_offset: int, nbytes: int) -> None:
        driver.copy_on_device(dst.pointer + dst_offset, src.pointer + src_offset, nbytes)

    def function(self, name: str):
        return self.module.function(name)

    def launch(self, function, grid: tuple, block: tuple, buffers: list, sizes: list, tile_maps: list = ()) -> None:
        pointers = [buffer.pointer + offset for buffer, offset in buffers]
        args = [(pointer, driver.POINTER) for pointer in pointers] + [(size, driver.INT64) for size in sizes]
        args += [(driver.tile_map(pointers[m.buffer], m.shape, m.box, m.dtype), None) for m in tile_maps]
        driver.launch(function, grid, block, args)

    def synchronize(self) -> None:
        driver.synchronize()

    def external(self, value):
        """A tensor with ``__cuda_array_interface__`` (torch, cupy) on this device, used in place."""
        interface = _interface(value)
        if interface is None:
            return None
        dtype = np.dtype(interface["typestr"])
        shape = tuple(interface["shape"])
        strides = interface.get("strides")
        if strides is not None and tuple(strides) != _contiguous_strides(shape, dtype.itemsize):
            raise InputError(f"a device tensor of shape {list(shape)} with strides {list(strides)} is not "
                             f"C-contiguous; pass .contiguous() (tcomp reads device tensors in place)")
        pointer = int(interface["data"][0])
        if pointer and driver.pointer_device(pointer) != driver.device_ordinal():
            raise InputError(f"a device tensor lives on CUDA device {driver.pointer_device(pointer)}, but the "
                             f"module runs on device {driver.device_ordinal()}")
        return DeviceTensor(External(pointer, value), 0, shape, dtype)

    def export(self, buffer, offset: int, shape: tuple, dtype: np.dtype, owner):
        return CudaArray(buffer.pointer + offset, shape, dtype, owner)


class CudaArray:
    """An output left on the device: ``torch.from_dlpack(a)``, ``cupy.asarray(a)``, ``a.numpy()``."""

    def __init__(self, pointer: int, shape: tuple, dtype: np.dtype, owner):
        self.pointer, self.shape, self.dtype, self._owner = pointer, tuple(shape), np.dtype(dtype), owner

    @property
    def __cuda_array_interface__(self) -> dict:
        return {"shape": self.shape, "typestr": self.dtype.str, "data": (self.pointer, False), "version": 3,
                "strides": None, "stream": None}

    def __dlpack__(self, stream=None, **kwargs):
        return to_capsule(self._owner, self.pointer, self.__dlpack_device__(), self.shape, self.dtype)

    def __dlpack_device__(self) -> tuple:
        return KDL_CUDA, driver.device_ordinal()

    def numpy(self) -> np.ndarray:
        array = np.empty(self.shape, self.dtype)
        if array.nbytes:
            driver.copy_to_host(array, self.pointer)
        return array

    def __repr__(self) -> str:
        return f"CudaArray({self.dtype}{list(self.shape)})"


def _interface(value):
    if not hasattr(type(value), "__cuda_array_interface__"):
        return None
    if type(value).__module__.startswith("torch") and getattr(value, "requires_grad", False):
        value = value.detach()
    try:
        return value.__cuda_array_interface__
    except (AttributeError, TypeError, RuntimeError):  # torch CPU tensors have the attribute but refuse
        return None


def _contiguous_strides(shape: tuple, itemsize: int) -> tuple:
    strides, step = [], itemsize
    for extent in reversed(shape):
        strides.append(step)
        step *= max(extent, 1)
    return tuple(reversed(strides))
