"""The cuda target of ``tcomp.compile``: a model's kernel functions -> one CUDA module.

    tgt = cuda_target("cuda -arch=sm_90")      # the arch of device 0 when not given
    cuda_target("cuda -tf32").tf32             # True: fp32 products on TF32 (``tf32.py``)
    module = tgt.build(funcs)                 # lowered for the GPU, rendered, NVRTC once
    module.launches["k0_conv_1a2b3c"]         # KernelLaunches: the executor's plan data
    module.source, module.image.ptx, module.image.cubin
    module.backend()                          # CudaBackend: loads the cubin (needs a GPU)

Building needs no GPU; ``backend()`` does.
"""
from __future__ import annotations

from dataclasses import dataclass

from ..csource import CSourceRenderer
from ..gpu.launches import kernel_launches
from ..gpu.lower import lower_for_gpu
from . import intrinsics as _cuda_intrinsics  # noqa: F401  (registers the tensor-core intrinsics)
from .dialect import CUDA
from .kernel import parse_target
from .nvrtc import CudaImage, compile_cuda
from .tf32 import OPTION as TF32_OPTION
from .tf32 import allows_tf32


@dataclass(frozen=True)
class CudaTarget:
    arch: str
    num_threads: int = 1  # host threads: the CPU template lowering takes it; GPU kernels ignore it
    tf32: bool = False    # fp32 products multiply TF32-rounded operands (``-tf32``)

    @property
    def name(self) -> str:
        return "cuda"

    @property
    def target(self) -> str:
        return f"cuda -arch={self.arch}" + (f" {TF32_OPTION}" if self.tf32 else "")

    def lanes(self, dtype_bits: int = 32) -> int:
        return 1

    def describe(self) -> str:
        return f"cuda ({self.arch}{', tf32' if self.tf32 else ''})"

    def build(self, funcs) -> "CudaModule":
        programs = {func.name: lower_for_gpu(func, CUDA.name) for func in funcs}
        renderer = CSourceRenderer(CUDA)
        source = renderer.render([k for p in programs.values() for k in p.kernels])
        image = compile_cuda(source, "model", self.arch, renderer.dynamic_shared, renderer.required_arch)
        return CudaModule(programs, {name: kernel_launches(p) for name, p in programs.items()}, source, image)


@dataclass
class CudaModule:
    programs: dict      # kernel function name -> DeviceProgram
    launches: dict      # kernel function name -> KernelLaunches
    source: str
    image: CudaImage

    def backend(self):
        from .backend import CudaBackend

        return CudaBackend(self.image)

    def assembly(self) -> str:
        return self.image.ptx


def cuda_target(target: str) -> CudaTarget:
    from .driver import device_arch

    return CudaTarget(parse_target(target) or device_arch(), tf32=allows_tf32(target))
