"""The CPU runtime's thread pool: ``threadpool.ll`` compiled once per process.

Kernels run their parallel loops through one C-ABI function (the ``.ll`` file explains the
design: each thread claims the chunks of its static share, then those left in others' shares;
the caller runs what nobody claimed and waits only for chunks that others run)::

    void tcomp_parallel_for(void (*body)(void *closure, int64_t chunk), void *closure,
                            int64_t num_chunks, int32_t num_threads);

``install()`` assembles the pool with llvmlite for the host, adds ``tcomp_parallel_for`` to the
symbols that MCJIT resolves kernels' calls against, keeps the pool's code for the life of
the process (its workers run in it) and resets the pool in the child of an ``os.fork``. An ahead-of-time export links the same ``.ll``, compiled
for its target, next to the kernels. The pool needs no C compiler and no OpenMP runtime.
"""
from __future__ import annotations

import ctypes
import functools
import os
from importlib import resources

import llvmlite.binding as llvm

# Appended to threadpool.ll: the spin-wait hint of the host's architecture.
_PAUSE = {
    "x86": "declare void @llvm.x86.sse2.pause()\n"
           "define internal void @tcomp_pause() {\n  call void @llvm.x86.sse2.pause()\n  ret void\n}\n",
    "aarch64": "declare void @llvm.aarch64.hint(i32)\n"
               "define internal void @tcomp_pause() {\n  call void @llvm.aarch64.hint(i32 1)\n  ret void\n}\n",
    "other": "define internal void @tcomp_pause() {\n  ret void\n}\n",
}

BODY = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_int64)
PARALLEL_FOR = ctypes.CFUNCTYPE(None, BODY, ctypes.c_void_p, ctypes.c_int64, ctypes.c_int32)


def _architecture(triple: str) -> str:
    arch = triple.split("-")[0]
    if arch in ("x86_64", "i386", "i686"):
        return "x86"
    if arch in ("aarch64", "arm64"):
        return "aarch64"
    return "other"


def source(triple: str) -> str:
    """The pool's LLVM IR for ``triple``."""
    text = resources.files(__package__).joinpath("threadpool.ll").read_text()
    return text + "\n" + _PAUSE[_architecture(triple)]


@functools.cache
def install() -> int:
    """Compiles the pool for the host (once) and exports ``tcomp_parallel_for`` to kernels;
    returns its address."""
    llvm.initialize_native_target()
    llvm.initialize_native_asmprinter()
    triple = llvm.get_process_triple()
    module = llvm.parse_assembly(source(triple))
    module.triple = triple
    module.verify()
    tm = llvm.Target.from_triple(triple).create_target_machine(
        cpu=llvm.get_host_cpu_name(), features=llvm.get_host_cpu_features().flatten(), opt=3, jit=True)
    engine = llvm.create_mcjit_compiler(module, tm)
    engine.finalize_object()
    address = engine.get_function_address("tcomp_parallel_for")
    ctypes.CFUNCTYPE(None)(engine.get_function_address("tcomp_pool_init"))()
    os.register_at_fork(after_in_child=ctypes.CFUNCTYPE(None)(engine.get_function_address("tcomp_pool_after_fork")))
    engine.detach()  # never freed: sleeping or spinning workers run in this code until the process ends
    llvm.add_symbol("tcomp_parallel_for", address)
    return address


def parallel_for() -> PARALLEL_FOR:
    """``tcomp_parallel_for`` as a ctypes function (for tests and tools)."""
    return PARALLEL_FOR(install())
