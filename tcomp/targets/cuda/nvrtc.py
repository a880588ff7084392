"""CUDA C++ -> PTX and cubin with NVRTC (``cuda.bindings.nvrtc``); no GPU needed.

    image = compile_cuda(source, "matmul", "sm_90")
    image.ptx    # text, for reading (``Kernel.ptx()``)
    image.cubin  # machine code the driver loads
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field

from ...errors import TcompError

ARCH = re.compile(r"^sm_(\d+)a?$")


class CudaCompileError(TcompError):
    """NVRTC rejected the generated source; the message names the kernel and carries NVRTC's log."""


@dataclass(frozen=True)
class CudaImage:
    arch: str
    ptx: str
    cubin: bytes
    log: str
    dynamic_shared: dict = field(default_factory=dict)  # kernel name -> bytes of dynamic shared memory


def bindings():
    """``cuda.bindings`` (cuda-python); a clear error when it is not installed."""
    try:
        from cuda.bindings import driver, nvrtc
    except ImportError as exc:
        raise TcompError(f"the cuda target needs cuda-python and NVRTC: pip install 'tcomp[cuda]' ({exc})") from None
    return driver, nvrtc


def check_arch(arch: str) -> str:
    if not ARCH.match(arch):
        raise TcompError(f"cuda target: unknown architecture {arch!r} (expected e.g. sm_80, sm_90)")
    return arch


def resolve_arch(arch: str, required: dict, name: str) -> str:
    """``arch``, or its architecture-specific variant where an intrinsic needs one (``required``:
    intrinsic name -> e.g. ``sm_90a``, for wgmma): ``sm_90`` -> ``sm_90a``. An error naming the
    intrinsic where ``arch`` is another chip."""
    for intrinsic, needed in sorted(required.items(), key=lambda item: (not item[1].endswith("a"), item[0])):
        if arch.rstrip("a") != needed.rstrip("a"):
            raise TcompError(f"kernel {name}: intrinsic {intrinsic} needs {needed}, but the target is {arch}; "
                             f"schedule it for that architecture or build with -arch={needed}")
        if needed.endswith("a"):
            arch = needed
    return arch


def compile_cuda(source: str, name: str, arch: str, dynamic_shared: dict | None = None,
                 required_arch: dict | None = None) -> CudaImage:
    """Compiles ``source`` (kernels of ``name``) for ``arch`` (``sm_90``; ``sm_90a`` where
    ``required_arch``, the renderer's, holds an intrinsic that needs it): PTX and cubin;
    ``dynamic_shared`` (the renderer's) goes with the image to the launches."""
    _, nvrtc = bindings()
    arch = resolve_arch(check_arch(arch), dict(required_arch or {}), name)
    err, program = nvrtc.nvrtcCreateProgram(source.encode(), f"{name}.cu".encode(), 0, [], [])
    _check(nvrtc, err, name, "nvrtcCreateProgram")
    try:
        options = [f"-arch={arch}".encode(), b"-std=c++17"]
        (err,) = nvrtc.nvrtcCompileProgram(program, len(options), options)
        log = _log(nvrtc, program)
        if err != nvrtc.nvrtcResult.NVRTC_SUCCESS:
            raise CudaCompileError(f"kernel {name}: NVRTC could not compile the generated CUDA source for {arch}:\n"
                                   f"{log.strip()}")
        err, size = nvrtc.nvrtcGetPTXSize(program)
        _check(nvrtc, err, name, "nvrtcGetPTXSize")
        ptx = bytearray(size)
        _check(nvrtc, nvrtc.nvrtcGetPTX(program, ptx)[0], name, "nvrtcGetPTX")
        err, size = nvrtc.nvrtcGetCUBINSize(program)
        _check(nvrtc, err, name, "nvrtcGetCUBINSize")
        cubin = bytearray(size)
        _check(nvrtc, nvrtc.nvrtcGetCUBIN(program, cubin)[0], name, "nvrtcGetCUBIN")
    finally:
        nvrtc.nvrtcDestroyProgram(program)
    return CudaImage(arch, bytes(ptx).rstrip(b"\0").decode(), bytes(cubin), log, dict(dynamic_shared or {}))


def _log(nvrtc, program) -> str:
    err, size = nvrtc.nvrtcGetProgramLogSize(program)
    if err != nvrtc.nvrtcResult.NVRTC_SUCCESS or size <= 1:
        return ""
    text = bytearray(size)
    nvrtc.nvrtcGetProgramLog(program, text)
    return bytes(text).rstrip(b"\0").decode(errors="replace")


def _check(nvrtc, err, name: str, call: str) -> None:
    if err != nvrtc.nvrtcResult.NVRTC_SUCCESS:
        raise CudaCompileError(f"kernel {name}: {call} failed: {nvrtc.nvrtcGetErrorString(err)[1].decode()}")
