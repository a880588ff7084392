"""A lowered PrimFunc's launches as the device executor's plan data (``runtime/device_executor.py``).

    program = lower_for_gpu(func, "cuda")        # DeviceProgram: kernels, temporaries
    kernel_launches(program)  ->  KernelLaunches(
        launches=(Launch("k0_matmul_kernel0", grid=(4, 1, 1), block=(256, 1, 1),
                         buffers=(("param", 0), ("temp", 0)), sizes=("batch",),
                         tile_maps=(TileMapArg(buffer=0, shape=(4096, 4096), box=(256, 64), dtype="float16"),)),
                  ...),
        temporaries=(4096,))                     # bytes, or an expression of the sizes

Buffer arguments name the function's parameters by position (the step's argument slots) and
its root temporaries by position (placed in the arena); extents stay expressions of the size
variables, evaluated per binding. A tile map (``gpu/bulk_copy.py``) names its buffer by position
in ``buffers``, with the buffer's shape, the box and the element type: what a backend needs to
encode the descriptor once it knows the buffer's address.
"""
from __future__ import annotations

import numpy as np

from ...runtime.device_executor import PARAM, TEMP, KernelLaunches, Launch, TileMapArg
from ...tir import arith
from ...tir.expr import IntImm
from .lower import DeviceProgram

AXES = ("x", "y", "z")


def kernel_launches(program: DeviceProgram) -> KernelLaunches:
    params = list(program.func.params)
    temporaries = list(program.temporaries)
    launches = []
    for kernel in program.kernels:
        buffers = tuple((PARAM, params.index(buf)) if buf in params else (TEMP, temporaries.index(buf))
                        for buf in kernel.params)
        maps = tuple(TileMapArg(kernel.params.index(tile.buffer), tuple(_plain(e) for e in tile.buffer.shape),
                                tile.box, tile.buffer.dtype) for tile in kernel.tile_maps)
        launches.append(Launch(kernel.name, _extents(kernel.launch, "blockIdx"), _extents(kernel.launch, "threadIdx"),
                               buffers, tuple(v.name for v in kernel.size_vars), maps))
    return KernelLaunches(tuple(launches), tuple(_nbytes(buf) for buf in temporaries))


def _extents(launch: dict, prefix: str) -> tuple:
    return tuple(_plain(launch.get(f"{prefix}.{axis}", IntImm(1))) for axis in AXES)


def _nbytes(buf):
    from ...build import _numpy_dtype

    return _plain(arith.simplify(buf.storage_elements() * IntImm(np.dtype(_numpy_dtype(buf.dtype)).itemsize)))


def _plain(expr):
    """An int where the expression is constant (most are), else the expression."""
    expr = arith.simplify(expr)
    return expr.value if isinstance(expr, IntImm) else expr
