"""The webgpu target of ``tcomp.compile``: a model's kernel functions -> WGSL shaders run by the
device executor (``runtime/device_executor.py``) through wgpu.

    tgt = webgpu_target("webgpu")
    module = tgt.build(funcs)                 # lowered for the GPU, one WGSL shader per device kernel
    module.launches["k0_conv_1a2b3c"]         # KernelLaunches: the executor's plan data
    module.shaders["k0_conv_1a2b3c_kernel"].source
    module.backend()                          # WebGPUBackend: the shaders compiled on the device

Building needs no device; ``backend()`` does (a WGSL error names the kernel, with the log).
"""
from __future__ import annotations

from dataclasses import dataclass

from ...errors import TcompError
from ..gpu.launches import kernel_launches
from ..gpu.lower import lower_for_gpu
from .device import ALIGN, webgpu_device
from .wgsl import render_kernel


# Buffers a fused group may read and write: WebGPU guarantees 8 storage buffers per shader (Chromium
# on SwiftShader gives 10), and a reduction's kernels bind up to 2 temporaries besides.
MAX_FUSED_BUFFERS = 6


@dataclass(frozen=True)
class WebGPUTarget:
    num_threads: int = 1  # host threads: the CPU template lowering takes it; GPU kernels ignore it
    max_fused_buffers: int = MAX_FUSED_BUFFERS  # fusion splits groups over it (graph/fusion.py)

    @property
    def name(self) -> str:
        return "webgpu"

    @property
    def target(self) -> str:
        return "webgpu"

    def lanes(self, dtype_bits: int = 32) -> int:
        return 1

    def describe(self) -> str:
        return "webgpu (wgpu)"

    def build(self, funcs) -> "WebGPUModule":
        programs = {func.name: lower_for_gpu(func, self.name) for func in funcs}
        shaders = {k.name: render_kernel(k) for p in programs.values() for k in p.kernels}
        return WebGPUModule(programs, {name: kernel_launches(p) for name, p in programs.items()}, shaders)


@dataclass
class WebGPUModule:
    programs: dict      # kernel function name -> DeviceProgram
    launches: dict      # kernel function name -> KernelLaunches
    shaders: dict       # device kernel name -> WGSLKernel

    def backend(self) -> "WebGPUBackend":
        device = webgpu_device()
        return WebGPUBackend(device, {name: device.compile(shader) for name, shader in self.shaders.items()})

    def assembly(self) -> str:
        return "\n".join(f"// kernel {name}\n{shader.source}" for name, shader in self.shaders.items())


class WebGPUBackend:
    """The device executor's backend for one module: the process's ``WebGPUDevice`` (memory,
    launches, synchronization) and the module's compiled shaders, by kernel name."""

    align = ALIGN

    def __init__(self, device, compiled: dict):
        self.device = device
        self.compiled = compiled

    def function(self, name: str):
        return self.compiled[name]

    def __getattr__(self, name: str):
        return getattr(self.device, name)  # allocate, upload, download, copy, launch, synchronize, ...


def webgpu_target(target: str) -> WebGPUTarget:
    if target.split() != ["webgpu"]:
        raise TcompError(f"target {target!r}: the webgpu target takes no options")
    return WebGPUTarget()
