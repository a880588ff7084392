"""DLPack export of device memory: ``__dlpack__`` capsules for ``torch.from_dlpack`` and friends.

    capsule = to_capsule(owner, pointer, (KDL_CUDA, 0), shape=(2, 3), dtype=np.dtype("float32"))

The capsule holds a ``DLManagedTensor`` (dlpack.h, v0.8 ABI) whose deleter drops the reference
to ``owner`` (the device buffer), so the memory lives as long as the consumer's tensor.
"""
from __future__ import annotations

import ctypes

import numpy as np

KDL_CPU, KDL_CUDA = 1, 2
_CODES = {"i": 0, "u": 1, "f": 2, "b": 6}  # numpy kind -> DLDataTypeCode (bool: kDLBool)


class _Device(ctypes.Structure):
    _fields_ = [("device_type", ctypes.c_int32), ("device_id", ctypes.c_int32)]


class _DataType(ctypes.Structure):
    _fields_ = [("code", ctypes.c_uint8), ("bits", ctypes.c_uint8), ("lanes", ctypes.c_uint16)]


class _Tensor(ctypes.Structure):
    _fields_ = [("data", ctypes.c_void_p), ("device", _Device), ("ndim", ctypes.c_int32), ("dtype", _DataType),
                ("shape", ctypes.POINTER(ctypes.c_int64)), ("strides", ctypes.POINTER(ctypes.c_int64)),
                ("byte_offset", ctypes.c_uint64)]


class _Managed(ctypes.Structure):
    pass


_DELETER = ctypes.CFUNCTYPE(None, ctypes.POINTER(_Managed))
_Managed._fields_ = [("dl_tensor", _Tensor), ("manager_ctx", ctypes.c_void_p), ("deleter", _DELETER)]

_alive: dict = {}  # address of a DLManagedTensor -> (struct, shape array, owner): released by the deleter


@_DELETER
def _delete(managed) -> None:
    _alive.pop(ctypes.addressof(managed.contents), None)


# The destructor gets the capsule while it is being freed (reference count 0): as a plain address,
# never a py_object, whose reference counting would free it a second time.
_CAPSULE_DESTRUCTOR = ctypes.CFUNCTYPE(None, ctypes.c_void_p)
_pythonapi = ctypes.pythonapi
_pythonapi.PyCapsule_New.restype = ctypes.py_object
_pythonapi.PyCapsule_New.argtypes = [ctypes.c_void_p, ctypes.c_char_p, _CAPSULE_DESTRUCTOR]
_capsule_is_valid = ctypes.PYFUNCTYPE(ctypes.c_int, ctypes.c_void_p, ctypes.c_char_p)(
    ("PyCapsule_IsValid", _pythonapi))
_capsule_pointer = ctypes.PYFUNCTYPE(ctypes.c_void_p, ctypes.c_void_p, ctypes.c_char_p)(
    ("PyCapsule_GetPointer", _pythonapi))


@_CAPSULE_DESTRUCTOR
def _capsule_destructor(capsule) -> None:
    """A capsule nobody consumed (still named "dltensor") frees its tensor itself."""
    if _capsule_is_valid(capsule, b"dltensor"):
        _alive.pop(_capsule_pointer(capsule, b"dltensor"), None)


def dtype_code(dtype: np.dtype) -> tuple:
    """(DLDataTypeCode, bits) of a numpy dtype (bfloat16 from ml_dtypes included)."""
    dtype = np.dtype(dtype)
    if dtype.name == "bfloat16":
        return 4, 16
    if dtype.kind not in _CODES:
        raise TypeError(f"DLPack cannot describe dtype {dtype}")
    return _CODES[dtype.kind], dtype.itemsize * 8


def to_capsule(owner, pointer: int, device: tuple, shape: tuple, dtype: np.dtype):
    """A "dltensor" capsule for the C-contiguous tensor at ``pointer`` that keeps ``owner`` alive."""
    code, bits = dtype_code(dtype)
    dims = (ctypes.c_int64 * max(1, len(shape)))(*shape)
    managed = _Managed()
    managed.dl_tensor = _Tensor(pointer, _Device(*device), len(shape), _DataType(code, bits, 1),
                                ctypes.cast(dims, ctypes.POINTER(ctypes.c_int64)), None, 0)
    managed.deleter = _delete
    address = ctypes.addressof(managed)
    _alive[address] = (managed, dims, owner)
    return _pythonapi.PyCapsule_New(address, b"dltensor", _capsule_destructor)
