"""Code generation targets. Only the host CPU (LLVM) exists so far."""
from __future__ import annotations

from ..errors import TcompError

KNOWN_TARGETS = ("cpu",)


def resolve_target(target, num_threads: int | None = None):
    if not isinstance(target, str):
        return target
    kind = target.split()[0].lower()
    if kind in ("cpu", "llvm"):
        from .cpu.jit import host_target

        return host_target(num_threads)
    raise TcompError(f"unknown or unavailable target '{target}'; available targets: {', '.join(KNOWN_TARGETS)}")
