"""The CUDA driver API (``cuda.bindings.driver``): the device, modules, launches, memory, timing.

Device 0's primary context is made current on first use. Every call's status is checked; a
failure raises ``CudaError`` naming the call and the driver's message.
"""
from __future__ import annotations

import ctypes
import functools

from ...errors import InputError, TcompError
from ...tir.expr import dtype_bits
from .nvrtc import bindings


class CudaError(TcompError):
    """A CUDA driver call failed (or there is no CUDA device)."""


def _call(name: str, *args):
    driver, _ = bindings()
    result = getattr(driver, name)(*args)
    err, values = result[0], result[1:]
    if err != driver.CUresult.CUDA_SUCCESS:
        _, message = driver.cuGetErrorString(err)
        raise CudaError(f"{name} failed: {message.decode() if message else err}")
    return values[0] if len(values) == 1 else values


def device_count() -> int:
    """CUDA devices visible (0 without a driver or a device)."""
    driver, _ = bindings()
    try:
        if driver.cuInit(0)[0] != driver.CUresult.CUDA_SUCCESS:
            return 0
    except Exception:  # no libcuda: cuda-python raises when it cannot load the driver library
        return 0
    err, count = driver.cuDeviceGetCount()
    return count if err == driver.CUresult.CUDA_SUCCESS else 0


@functools.cache
def device():
    """Device 0, its primary context current on this thread."""
    if device_count() == 0:
        raise CudaError("no CUDA device (or no NVIDIA driver) on this machine")
    dev = _call("cuDeviceGet", 0)
    context = _call("cuDevicePrimaryCtxRetain", dev)
    _call("cuCtxSetCurrent", context)
    return dev


def device_arch() -> str:
    """``sm_XY`` of device 0."""
    driver, _ = bindings()
    dev = device()
    attr = driver.CUdevice_attribute
    major = _call("cuDeviceGetAttribute", attr.CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR, dev)
    minor = _call("cuDeviceGetAttribute", attr.CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR, dev)
    return f"sm_{major}{minor}"


def device_name() -> str:
    return _call("cuDeviceGetName", 128, device()).split(b"\0")[0].decode()


class Function:
    """A kernel of a loaded module and the bytes of dynamic shared memory it is launched with."""

    def __init__(self, handle, shared_bytes: int):
        self.handle, self.shared_bytes = handle, shared_bytes


class Module:
    """A loaded cubin and its kernels by name; ``dynamic_shared`` (kernel name -> bytes) raises
    those kernels' dynamic shared-memory limit (past 48 KB a kernel must ask for it)."""

    def __init__(self, cubin: bytes, dynamic_shared: dict | None = None):
        device()
        self.handle = _call("cuModuleLoadData", cubin)
        self._dynamic_shared = dict(dynamic_shared or {})
        self._functions: dict = {}

    def function(self, name: str) -> Function:
        if name not in self._functions:
            handle = _call("cuModuleGetFunction", self.handle, name.encode())
            nbytes = self._dynamic_shared.get(name, 0)
            if nbytes:
                driver, _ = bindings()
                limit = _call("cuDeviceGetAttribute",
                              driver.CUdevice_attribute.CU_DEVICE_ATTRIBUTE_MAX_SHARED_MEMORY_PER_BLOCK_OPTIN,
                              device())
                if nbytes > limit:
                    raise CudaError(f"kernel {name} needs {nbytes} bytes of shared memory; a block of this device "
                                    f"can have {limit}")
                _call("cuFuncSetAttribute", handle,
                      driver.CUfunction_attribute.CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES, nbytes)
            self._functions[name] = Function(handle, nbytes)
        return self._functions[name]


def launch(function: Function, grid: tuple, block: tuple, args: list) -> None:
    """Launches ``function`` on the default stream; ``args`` are (value, ctypes type) pairs, or
    (tensor map, None) for a ``tile_map``."""
    values = tuple(value for value, _ in args)
    types = tuple(kind for _, kind in args)
    _call("cuLaunchKernel", function.handle, *grid, *block, function.shared_bytes, 0, (values, types), 0)


TILE_MAP_TYPES = {"float16": "FLOAT16", "bfloat16": "BFLOAT16", "float32": "FLOAT32", "float64": "FLOAT64",
                  "int32": "INT32", "uint32": "UINT32", "int64": "INT64", "uint64": "UINT64", "uint8": "UINT8",
                  "int8": "UINT8", "uint16": "UINT16", "int16": "UINT16"}
TILE_MAP_ALIGN = 16  # bytes: the alignment the copy engine needs of a tensor's address


@functools.lru_cache(maxsize=1024)
def tile_map(pointer: int, shape: tuple, box: tuple, dtype: str):
    """The tensor map (TMA descriptor) of the row-major tensor of ``shape`` and ``dtype`` at
    ``pointer``, copied in boxes of ``box`` elements with the 128-byte swizzle (both outermost axis
    first; ``gpu/bulk_copy.py``): what a kernel parameter ``tc_tile_map`` holds."""
    if pointer % TILE_MAP_ALIGN:
        raise InputError(f"a tensor of shape {list(shape)} at address {pointer:#x} is not {TILE_MAP_ALIGN}-byte "
                         f"aligned, which the bulk copies of its kernel need; pass a tensor that starts aligned")
    driver, _ = bindings()
    device()
    itemsize = dtype_bits(dtype) // 8
    dims = [driver.cuuint64_t(extent) for extent in reversed(shape)]
    strides, step = [], itemsize
    for extent in reversed(shape[1:]):
        step *= extent
        strides.append(driver.cuuint64_t(step))
    return _call("cuTensorMapEncodeTiled", getattr(driver.CUtensorMapDataType, f"CU_TENSOR_MAP_DATA_TYPE_{TILE_MAP_TYPES[dtype]}"),
                 len(shape), pointer, dims, strides, [driver.cuuint32_t(b) for b in reversed(box)],
                 [driver.cuuint32_t(1)] * len(shape), driver.CUtensorMapInterleave.CU_TENSOR_MAP_INTERLEAVE_NONE,
                 driver.CUtensorMapSwizzle.CU_TENSOR_MAP_SWIZZLE_128B,
                 driver.CUtensorMapL2promotion.CU_TENSOR_MAP_L2_PROMOTION_L2_256B,
                 driver.CUtensorMapFloatOOBfill.CU_TENSOR_MAP_FLOAT_OOB_FILL_NONE)


class DeviceMemory:
    """``nbytes`` of device memory, freed with the object."""

    def __init__(self, nbytes: int):
        device()
        self.nbytes = max(1, nbytes)
        self.pointer = int(_call("cuMemAlloc", self.nbytes))

    def upload(self, array) -> None:
        _call("cuMemcpyHtoD", self.pointer, array.ctypes.data, array.nbytes)

    def download(self, array) -> None:
        _call("cuMemcpyDtoH", array.ctypes.data, self.pointer, array.nbytes)

    def __del__(self):
        pointer = getattr(self, "pointer", None)
        if pointer is not None:
            try:
                bindings()[0].cuMemFree(pointer)
            except Exception:  # interpreter shutdown: the context may be gone already
                pass


def copy_to_device(pointer: int, array) -> None:
    _call("cuMemcpyHtoD", pointer, array.ctypes.data, array.nbytes)


def copy_to_host(array, pointer: int) -> None:
    _call("cuMemcpyDtoH", array.ctypes.data, pointer, array.nbytes)


def copy_on_device(dst: int, src: int, nbytes: int) -> None:
    _call("cuMemcpyDtoD", dst, src, nbytes)


def device_ordinal() -> int:
    """The ordinal of the device the modules run on."""
    return int(device())


def pointer_device(pointer: int) -> int:
    """The ordinal of the device that holds ``pointer`` (memory allocated by anyone in this process)."""
    driver, _ = bindings()
    device()
    return int(_call("cuPointerGetAttribute", driver.CUpointer_attribute.CU_POINTER_ATTRIBUTE_DEVICE_ORDINAL,
                     pointer))


def synchronize() -> None:
    _call("cuCtxSynchronize")


def elapsed_seconds(run) -> float:
    """Seconds the device spends on what ``run()`` launches (CUDA events around it)."""
    start, end = _call("cuEventCreate", 0), _call("cuEventCreate", 0)
    try:
        _call("cuEventRecord", start, 0)
        run()
        _call("cuEventRecord", end, 0)
        _call("cuEventSynchronize", end)
        return _call("cuEventElapsedTime", start, end) / 1000.0
    finally:
        _call("cuEventDestroy", start)
        _call("cuEventDestroy", end)


POINTER = ctypes.c_void_p
INT64 = ctypes.c_longlong
