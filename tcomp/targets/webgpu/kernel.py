"""``tcomp.build(func, target="webgpu")``: a PrimFunc -> WGSL compute shaders -> a kernel that runs
with numpy arrays through wgpu.

    kernel = tcomp.build(sch.func, target="webgpu")
    c = kernel(a, b)            # arrays uploaded, the shaders dispatched in order, outputs downloaded
    kernel.time(a, b)           # median seconds of one run's dispatches (arrays already on the device)
    kernel.source()             # the WGSL of every kernel
    kernel.adapter              # {"device": "llvmpipe (LLVM 15.0.6, 256 bits)", "adapter_type": "CPU", ...}

Building compiles the shaders on the device (a WGSL error names the kernel, with the log).
"""
from __future__ import annotations

import statistics

from ...build import Kernel
from ...errors import TcompError
from ...tir import arith
from ...tir.expr import IntImm, substitute
from ..gpu.lower import DeviceProgram, lower_for_gpu
from .device import bytes_of, webgpu_device
from .wgsl import AXES, render_kernel


def build_webgpu(func, target: str = "webgpu") -> "WebGPUKernel":
    if target.split() != ["webgpu"]:
        raise TcompError(f"target {target!r}: the webgpu target takes no options")
    program = lower_for_gpu(func, "webgpu")
    return WebGPUKernel(program, [render_kernel(kernel) for kernel in program.kernels])


class WebGPUKernel(Kernel):
    """A compiled PrimFunc for WebGPU: called like ``tcomp.build``'s CPU kernels."""

    def __init__(self, program: DeviceProgram, shaders: list):
        self.func = program.func
        self.program = program
        self.shaders = shaders
        self.device = webgpu_device()
        self.compiled = [self.device.compile(shader) for shader in shaders]

    @property
    def adapter(self) -> dict:
        return dict(self.device.info)

    def source(self) -> str:
        return "\n".join(f"// kernel {s.name}\n{s.source}" for s in self.shaders)

    def assembly(self) -> str:
        return self.source()

    def time(self, *arrays, repeat: int = 10, warmup: int = 2) -> float:
        """Median seconds of one run's dispatches (uploads and downloads excluded), after ``warmup`` runs."""
        arrays, _ = self._arguments(arrays)
        launches, memory = self._prepare(arrays)  # ``memory`` stays alive while the launches run
        for _ in range(warmup):
            self.device.timed(lambda: self._launch(launches))
        seconds = statistics.median(self.device.timed(lambda: self._launch(launches)) for _ in range(repeat))
        del memory
        return seconds

    def _run(self, arrays) -> None:
        launches, memory = self._prepare(arrays)
        self._launch(launches)
        for buf in self.program.written:
            self.device.download(memory[buf], 0, arrays[self.func.params.index(buf)])

    def _launch(self, launches) -> None:
        for launch in launches:
            self.device.launch(*launch)
        self.device.synchronize()

    def _prepare(self, arrays) -> tuple:
        """Device copies of the arrays, temporaries, and each kernel's launch arguments."""
        sizes = self._sizes(arrays)
        values = {v: IntImm(n) for v, n in sizes.items()}
        memory = {}
        for buf, array in zip(self.func.params, arrays):
            memory[buf] = self.device.allocate(array.nbytes)
            self.device.upload(memory[buf], 0, array, name=f"kernel {self.func.name}: {buf.name}")
        for buf in self.program.temporaries:
            memory[buf] = self.device.allocate(bytes_of(buf, values, self.func.name))
        launches = []
        for compiled, kernel in zip(self.compiled, self.program.kernels):
            grid = tuple(_evaluate(kernel.launch.get(f"blockIdx.{a}", IntImm(1)), values, kernel.name) for a in AXES)
            args = [(memory[buf], 0) for buf in kernel.params]
            launches.append((compiled, grid, compiled.shader.workgroup, args, [sizes[v] for v in kernel.size_vars]))
        return launches, memory


def _evaluate(expr, values: dict, what: str) -> int:
    value = arith.simplify(substitute(expr, values))
    if not isinstance(value, IntImm):
        raise TcompError(f"{what}: cannot evaluate {expr} from the arrays' shapes")
    return max(0, value.value)
