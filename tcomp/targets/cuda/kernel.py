"""``tcomp.build(func, target="cuda")``: a PrimFunc -> CUDA source (NVRTC) -> a kernel that runs
with numpy arrays.

    kernel = tcomp.build(sch.func, target="cuda -arch=sm_90")   # the arch is detected when not given
    c = kernel(a, b)            # arrays copied to the device, the kernels launched, outputs copied back
    kernel.time(a, b)           # median device seconds of the launches (arrays already on the device)
    kernel.source(), kernel.ptx()

Building needs no GPU (NVRTC compiles for the given arch); running does.
"""
from __future__ import annotations

import statistics

import numpy as np

from ...build import Kernel, _numpy_dtype
from ...errors import TcompError
from ...tir import arith
from ...tir.expr import IntImm, substitute
from ..csource import CSourceRenderer
from ..gpu.lower import DeviceProgram, lower_for_gpu
from . import intrinsics as _cuda_intrinsics  # noqa: F401  (registers the tensor-core intrinsics)
from .dialect import CUDA
from .nvrtc import check_arch, compile_cuda
from .tf32 import OPTION as TF32_OPTION

AXES = ("x", "y", "z")


def parse_target(target: str) -> str | None:
    """``"cuda"`` -> None (detect), ``"cuda -arch=sm_90"`` -> ``"sm_90"``; ``-tf32`` (TF32 products,
    ``tf32.py``) is the other option."""
    words = target.split()
    arch = None
    for word in words[1:]:
        if word == TF32_OPTION:
            continue
        if not word.startswith("-arch="):
            raise TcompError(f"target {target!r}: unknown option {word!r} (the cuda target takes -arch=sm_XY "
                             f"and {TF32_OPTION})")
        arch = check_arch(word[len("-arch="):])
    return arch


def build_cuda(func, target: str) -> "CudaKernel":
    from .driver import device_arch

    arch = parse_target(target) or device_arch()
    program = lower_for_gpu(func, CUDA.name)
    renderer = CSourceRenderer(CUDA)
    source = renderer.render(program.kernels)
    image = compile_cuda(source, func.name, arch, renderer.dynamic_shared, renderer.required_arch)
    return CudaKernel(program, source, image)


class CudaKernel(Kernel):
    """A compiled PrimFunc for CUDA: called like ``tcomp.build``'s CPU kernels."""

    def __init__(self, program: DeviceProgram, source: str, image):
        self.func = program.func
        self.program = program
        self._source = source
        self.image = image
        self._module = None

    def source(self) -> str:
        return self._source

    def ptx(self) -> str:
        return self.image.ptx

    def assembly(self) -> str:
        return self.image.ptx

    def time(self, *arrays, repeat: int = 10, warmup: int = 2) -> float:
        """Median device seconds of one run's launches (copies excluded), after ``warmup`` runs."""
        from .driver import elapsed_seconds

        arrays, _ = self._arguments(arrays)
        launches, memory = self._prepare(arrays)  # ``memory`` stays alive while the launches run
        for _ in range(warmup):
            self._launch(launches)
        seconds = statistics.median(elapsed_seconds(lambda: self._launch(launches)) for _ in range(repeat))
        del memory
        return seconds

    def _run(self, arrays) -> None:
        from .driver import synchronize

        launches, memory = self._prepare(arrays)
        self._launch(launches)
        synchronize()
        for buf in self.program.written:
            memory[buf].download(arrays[self.func.params.index(buf)])

    def _launch(self, launches) -> None:
        from .driver import launch

        for function, grid, block, args in launches:
            launch(function, grid, block, args)

    def _prepare(self, arrays) -> tuple:
        """Device copies of the arrays, temporaries, and each kernel's (function, grid, block, args)."""
        from .driver import INT64, POINTER, DeviceMemory, Module, tile_map

        if self._module is None:
            self._module = Module(self.image.cubin, self.image.dynamic_shared)
        sizes = self._sizes(arrays)
        values = {v: IntImm(n) for v, n in sizes.items()}
        memory = {}
        for buf, array in zip(self.func.params, arrays):
            memory[buf] = DeviceMemory(array.nbytes)
            memory[buf].upload(array)
        for buf in self.program.temporaries:
            count = _evaluate(buf.storage_elements(), values, buf.name)
            memory[buf] = DeviceMemory(count * np.dtype(_numpy_dtype(buf.dtype)).itemsize)
        launches = []
        for kernel in self.program.kernels:
            grid = tuple(_evaluate(kernel.launch.get(f"blockIdx.{a}", IntImm(1)), values, kernel.name) for a in AXES)
            block = tuple(_evaluate(kernel.launch.get(f"threadIdx.{a}", IntImm(1)), values, kernel.name)
                          for a in AXES)
            args = [(memory[buf].pointer, POINTER) for buf in kernel.params]
            args += [(sizes[v], INT64) for v in kernel.size_vars]
            args += [(tile_map(memory[tile.buffer].pointer, tuple(_evaluate(e, values, tile.buffer.name)
                                                                  for e in tile.buffer.shape),
                               tile.box, tile.buffer.dtype), None) for tile in kernel.tile_maps]
            launches.append((self._module.function(kernel.name), grid, block, args))
        return launches, memory  # the caller keeps ``memory`` alive while the launches run


def _evaluate(expr, values: dict, what: str) -> int:
    value = arith.simplify(substitute(expr, values))
    if not isinstance(value, IntImm):
        raise TcompError(f"{what}: cannot evaluate {expr} from the arrays' shapes")
    return max(0, value.value)
