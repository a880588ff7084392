"""Host CPU target: target description, LLVM optimisation and MCJIT loading."""
from __future__ import annotations

import ctypes
import functools
import os
from dataclasses import dataclass

import llvmlite.binding as llvm
import llvmlite.ir as ir

from ...errors import TcompError
from . import threadpool
from .codegen import CPUCodegen


@dataclass(frozen=True)
class CPUTarget:
    """The host CPU as LLVM sees it."""

    triple: str
    cpu: str
    features: str
    vector_bits: int
    num_threads: int

    @property
    def name(self) -> str:
        return "cpu"

    def lanes(self, dtype_bits: int = 32) -> int:
        return max(1, self.vector_bits // dtype_bits)

    def build(self, funcs) -> "JITModule":
        """Compiles kernels (PrimFuncs) into callable native code."""
        return JITModule(funcs, self)

    def describe(self) -> str:
        isa = {512: "AVX-512", 256: "AVX2", 128: "SSE/NEON"}.get(self.vector_bits, f"{self.vector_bits}-bit")
        return f"cpu ({self.cpu}, {isa}, {self.num_threads} threads)"


@functools.cache
def _init_llvm() -> None:
    llvm.initialize_native_target()
    llvm.initialize_native_asmprinter()
    threadpool.install()


def host_target(num_threads: int | None = None) -> CPUTarget:
    if num_threads is not None and num_threads < 1:
        raise TcompError(f"num_threads must be at least 1, got {num_threads}")
    _init_llvm()
    features = llvm.get_host_cpu_features().flatten()
    enabled = {f[1:] for f in features.split(",") if f.startswith("+")}
    vector_bits = 512 if "avx512f" in enabled else 256 if "avx2" in enabled else 128
    threads = num_threads or len(os.sched_getaffinity(0))
    return CPUTarget(llvm.get_process_triple(), llvm.get_host_cpu_name(), features, vector_bits, threads)


class JITModule:
    """A set of kernels compiled into one MCJIT engine; look kernels up by name."""

    def __init__(self, funcs, target: CPUTarget):
        _init_llvm()
        self.target = target
        module = ir.Module(name="tcomp_kernels")
        module.triple = target.triple
        codegen = CPUCodegen(module, target.num_threads)
        self.names = [codegen.add_function(func) for func in funcs]
        self.llvm_ir = str(module)
        self._tm = llvm.Target.from_triple(target.triple).create_target_machine(
            cpu=target.cpu, features=target.features, opt=3, jit=True)
        try:
            parsed = llvm.parse_assembly(self.llvm_ir)
            parsed.verify()
        except RuntimeError as exc:  # a code generator bug: keep LLVM's words
            raise TcompError(f"LLVM rejected the generated module (kernels {', '.join(self.names)}): {exc}") from None
        _optimize(parsed, self._tm)
        self.optimized_ir = str(parsed)
        self._engine = llvm.create_mcjit_compiler(parsed, self._tm)
        self._engine.finalize_object()
        self._engine.run_static_constructors()
        self.addresses = {name: self._engine.get_function_address(name) for name in self.names}

    def function(self, name: str):
        return ctypes.CFUNCTYPE(None, ctypes.c_void_p)(self.addresses[name])

    def assembly(self) -> str:
        """Assembly of the optimized module (for inspection and instruction checks)."""
        return self._tm.emit_assembly(llvm.parse_assembly(self.optimized_ir))


def _optimize(module, tm) -> None:
    pto = llvm.create_pipeline_tuning_options(speed_level=3)
    pto.loop_vectorization = True
    pto.slp_vectorization = True
    pto.loop_unrolling = True
    pb = llvm.create_pass_builder(tm, pto)
    pm = pb.getModulePassManager()
    pm.run(module, pb)
