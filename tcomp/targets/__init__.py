"""Code generation targets: the host CPU (LLVM), CUDA (NVRTC; ``"cuda -arch=sm_90"``, the arch of
device 0 when not given) and WebGPU (WGSL through wgpu)."""
from __future__ import annotations

from ..errors import TcompError

KNOWN_TARGETS = ("cpu", "cuda", "webgpu")


def resolve_target(target, num_threads: int | None = None):
    if not isinstance(target, str):
        return target
    kind = target.split()[0].lower()
    if kind in ("cpu", "llvm"):
        from .cpu.jit import host_target

        return host_target(num_threads)
    if kind == "cuda":
        from .cuda.target import cuda_target

        return cuda_target(target)
    if kind == "webgpu":
        from .webgpu.target import webgpu_target

        return webgpu_target(target)
    raise TcompError(f"unknown or unavailable target '{target}'; available targets: {', '.join(KNOWN_TARGETS)}")
