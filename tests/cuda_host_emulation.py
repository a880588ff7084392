"""The cuda target's generated CUDA C run on the host CPU, for machines without a GPU (like CI).

``EmulatedCuda(arch)`` is a cuda target (``tcomp.compile(model, target=EmulatedCuda("sm_90"))``)
that builds exactly as ``cuda`` does (lowering, rendering, NVRTC to PTX and cubin), then compiles
the same source with the host C++ compiler against a small shim and runs each launch on the CPU:
the blocks of the grid one after another, the threads of a block one after another, or, where
the kernel has barriers, as OS threads meeting at a ``std::barrier`` (``__shared__`` arrays are
static: one block runs at a time). What the shim replaces: the CUDA built-ins (``threadIdx``,
``__syncthreads``, ``__float_as_uint`` ...) and the preamble's helpers written in inline PTX (16-bit
float conversion, ``cp.async``); every other helper and every kernel is compiled as rendered.
Not emulated: tensor-core PTX, dynamic shared memory. Threads run in order, so this shows what a
kernel computes, not whether its threads race.
"""
from __future__ import annotations

import ctypes
import hashlib
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np

from tcomp.targets.cuda.target import CudaModule, CudaTarget

COMPILER = shutil.which("g++")

SHIM = r"""
#include <barrier>
#include <cmath>
#include <cstring>
#include <thread>
#include <vector>
#include <functional>
using std::isnan; using std::isinf;
struct tc_dim3 { unsigned int x = 0, y = 0, z = 0; };
static thread_local tc_dim3 threadIdx, blockIdx;
static std::barrier<>* tc_block_barrier = nullptr;
#define __global__
#define __device__
#define __forceinline__ inline
#define __launch_bounds__(n)
#define __align__(n) __attribute__((aligned(n)))
#define __shared__ static
struct alignas(8) uint2 { unsigned int x, y; };              // the vector copies' access types
struct alignas(16) uint4 { unsigned int x, y, z, w; };
inline uint2 make_uint2(unsigned int x, unsigned int y) { return {x, y}; }   // packed vector stores
inline uint4 make_uint4(unsigned int x, unsigned int y, unsigned int z, unsigned int w) { return {x, y, z, w}; }
#define __syncthreads() tc_block_barrier->arrive_and_wait()
inline float __uint_as_float(unsigned int u) { float f; std::memcpy(&f, &u, 4); return f; }
inline unsigned int __float_as_uint(float f) { unsigned int u; std::memcpy(&u, &f, 4); return u; }
inline float rsqrtf(float x) { return 1.0f / std::sqrt(x); }
inline double rsqrt(double x) { return 1.0 / std::sqrt(x); }
"""

HOST_HALF = {  # the preamble's inline-PTX helpers -> host code doing the same
    "tc_half_to_float": "inline float tc_half_to_float(unsigned short h) {\n"
                        "  _Float16 v; std::memcpy(&v, &h, 2); return (float)v;\n}",
    "tc_float_to_half": "inline unsigned short tc_float_to_half(float f) {\n"
                        "  _Float16 v = (_Float16)f; unsigned short h; std::memcpy(&h, &v, 2); return h;\n}",
    "tc_cp_async": "inline void tc_cp_async(void* dst, const void* src) { std::memcpy(dst, src, 16); }",
}

RUNNER = r"""
extern "C" void tc_run_{name}(void** args, long long* sizes, const int* grid, const int* block, int barrier) {{
  auto one = [&]() {{ {name}({arguments}); }};
  int threads = block[0] * block[1] * block[2];
  for (int b = 0; b < grid[0] * grid[1] * grid[2]; ++b) {{
    tc_dim3 where{{(unsigned)(b % grid[0]), (unsigned)(b / grid[0] % grid[1]), (unsigned)(b / grid[0] / grid[1])}};
    auto thread = [&](int t) {{
      blockIdx = where;
      threadIdx = tc_dim3{{(unsigned)(t % block[0]), (unsigned)(t / block[0] % block[1]),
                          (unsigned)(t / block[0] / block[1])}};
      one();
      if (barrier) tc_block_barrier->arrive_and_drop();
    }};
    if (!barrier) {{ for (int t = 0; t < threads; ++t) thread(t); continue; }}
    std::barrier<> sync(threads);
    tc_block_barrier = &sync;
    std::vector<std::thread> pool;
    for (int t = 0; t < threads; ++t) pool.emplace_back(thread, t);
    for (auto& t : pool) t.join();
  }}
}}
"""

_KERNEL = re.compile(r'extern "C" __global__ void (?:__launch_bounds__\(\d+\) )?(\w+)\(([^)]*)\) \{')


class EmulationError(Exception):
    """A kernel the host emulation cannot run."""


class EmulatedCuda(CudaTarget):
    """The cuda target for ``arch``, its kernels run on the host (``module.backend()``)."""

    def build(self, funcs) -> "EmulatedModule":
        module = super().build(funcs)
        return EmulatedModule(module.programs, module.launches, module.source, module.image)


class EmulatedModule(CudaModule):
    def backend(self):
        return HostBackend(host_library(self.source), self.source)


def host_source(source: str) -> str:
    """``source`` (the cuda target's) as host C++: the shim, the PTX helpers replaced, a runner per kernel."""
    if "extern __shared__" in source or "wmma" in source or "mma.sync" in source:
        raise EmulationError("dynamic shared memory and tensor-core instructions are not emulated")
    for name, replacement in HOST_HALF.items():
        source, count = re.subn(rf"__device__ __forceinline__ [\w ]+? {name}\(.*?\n\}}\n", replacement + "\n", source,
                                count=1, flags=re.S)
        assert count == 1, f"the preamble no longer defines {name} as expected"
    # the copies ran synchronously (tc_cp_async is a memcpy here): their groups' commits and waits are no-ops
    source = re.sub(r'asm volatile\("cp\.async\.(?:commit|wait)_group[^"]*" ::: "memory"\);', ";", source)
    runners = []
    for name, params in _KERNEL.findall(source):
        arguments = []
        for index, param in enumerate(p.strip() for p in params.split(",") if p.strip()):
            if "*" in param:
                arguments.append(f"({param.split('*')[0].strip()}*)args[{len(arguments)}]")
            else:
                arguments.append(f"sizes[{index - len(arguments)}]")
        runners.append(RUNNER.format(name=name, arguments=", ".join(arguments)))
    return SHIM + source + "".join(runners)


_LIBRARIES: dict = {}


def host_library(source: str) -> ctypes.CDLL:
    """``source`` compiled for the host (cached by its text)."""
    if COMPILER is None:
        raise EmulationError("no host C++ compiler (g++)")
    text = host_source(source)
    key = hashlib.sha1(text.encode()).hexdigest()
    if key not in _LIBRARIES:
        folder = Path(tempfile.mkdtemp(prefix="tc_cuda_host_"))
        (folder / "model.cpp").write_text(text)
        result = subprocess.run([COMPILER, "-std=c++20", "-O1", "-shared", "-fPIC", "-w", "-pthread", "-o",
                                 str(folder / "model.so"), str(folder / "model.cpp")], capture_output=True, text=True)
        if result.returncode:
            raise EmulationError(f"the host compiler refused the emulated source ({folder}):\n{result.stderr[:3000]}")
        _LIBRARIES[key] = ctypes.CDLL(str(folder / "model.so"))
    return _LIBRARIES[key]


class HostBackend:
    """The device executor's backend protocol (``tcomp/targets/cuda/backend.py``) over host memory."""

    align = 256

    def __init__(self, library, source: str):
        self.library = library
        self.barriers = {name for name, body in _kernel_bodies(source).items() if "__syncthreads" in body}

    def allocate(self, nbytes: int):
        return np.zeros(nbytes + 16, np.uint8)  # 16 spare bytes: a vector copy's tail

    def upload(self, buffer, offset: int, array: np.ndarray) -> None:
        buffer[offset:offset + array.nbytes] = np.ascontiguousarray(array).reshape(-1).view(np.uint8)

    def download(self, buffer, offset: int, array: np.ndarray) -> None:
        array.reshape(-1).view(np.uint8)[:] = buffer[offset:offset + array.nbytes]

    def copy(self, src, src_offset: int, dst, dst_offset: int, nbytes: int) -> None:
        dst[dst_offset:dst_offset + nbytes] = src[src_offset:src_offset + nbytes]

    def function(self, name: str):
        return name

    def launch(self, function, grid: tuple, block: tuple, buffers: list, sizes: list, tile_maps: list = ()) -> None:
        assert not tile_maps, "the host emulation has no copy engine (bulk copies are sm_90 code)"
        args = (ctypes.c_void_p * max(len(buffers), 1))(*[b.ctypes.data + offset for b, offset in buffers])
        values = (ctypes.c_longlong * max(len(sizes), 1))(*[int(s) for s in sizes])
        getattr(self.library, f"tc_run_{function}")(args, values, (ctypes.c_int * 3)(*grid),
                                                    (ctypes.c_int * 3)(*block), int(function in self.barriers))

    def synchronize(self) -> None:
        pass

    def external(self, value):
        return None

    def export(self, buffer, offset, shape, dtype, owner):
        raise EmulationError("device outputs are not emulated")


def _kernel_bodies(source: str) -> dict:
    """Kernel name -> its text (up to the next kernel)."""
    found = list(_KERNEL.finditer(source))
    return {m.group(1): source[m.start():found[i + 1].start() if i + 1 < len(found) else len(source)]
            for i, m in enumerate(found)}
