"""Variants of a model's kernels for the browser's JIT: other schedules of the same kernel function,
among which the web runtime (``web/tcomp.js``) keeps the fastest on the client's own GPU.

    variants = kernel_variants(kernel, group, count=8)   # [Variant(label, program, shaders)], compile's first

Which kernels get variants, from the GPU design space (``tuning/space.py``, ``design_space(func, "webgpu")``):

- ``tiled`` groups (matmul, conv: the heavy ones): first the untiled default binding (one output
  per thread, 64 threads per block, no workgroup memory, no barriers: what a software adapter
  such as SwiftShader runs fastest, often by 10-100x), then the shared-memory tiling sketch with
  other ``sample_categorical`` decisions (threads per axis, register tile, k-tile depth, copy
  width), drawn with a seed fixed by the kernel's name;
- ``default`` groups (reductions, softmax, layer norm, elementwise): the default binding with
  128 and 64 threads per block besides 256;
- other groups keep their one schedule.

Every variant is a schedule of the same function (same parameters, same constant layouts), so all
compute the same result and share the bundle's buffer plan; each has its own temporaries (placed
in its step's scratch region) and launches. A variant is kept where it lowers, fits WebGPU's
default limits (256 threads and 16 KiB of workgroup memory: any browser runs it) and its WGSL
differs from the variants kept so far. No GPU cost model ships, so the candidates are not ranked
in Python: the browser measures them.
"""
from __future__ import annotations

import hashlib
import itertools
import random
from dataclasses import dataclass

from ...errors import TcompError
from ...tir import arith
from ..gpu.lower import DeviceProgram, lower_for_gpu
from .wgsl import render_kernel

MAX_VARIANTS = 32
THREADS = (128, 64)              # the default binding's alternatives to 256 threads per block
UNTILED_THREADS = (64,)          # a tiled kernel's untiled variant: one output per thread, no workgroup memory
DEFAULT_LIMITS = {"threads": 256, "workgroup_bytes": 16384, "storage_buffers": 8}   # WebGPU's defaults
ATTEMPTS_PER_VARIANT = 4         # design-space draws tried per variant wanted


@dataclass(frozen=True)
class Variant:
    """One schedule of a kernel function: a label ("threads 16x16, decisions [..]"), its lowering and
    its WGSL shaders (by device kernel name)."""

    label: str
    program: DeviceProgram
    shaders: dict


def kernel_variants(kernel, group, count: int = 8) -> list:
    """Up to ``count`` variants of ``kernel`` (a compiled model's ``Kernel``, whose function ran
    ``group``); the first is the function the module compiled."""
    if not 1 <= count <= MAX_VARIANTS:
        raise TcompError(f"export_web: variants={count}: between 1 and {MAX_VARIANTS} per kernel")
    schedule = kernel.func.attrs.get("gpu_schedule")
    variants, seen = [], set()
    _keep(variants, seen, kernel.func, kernel.name, f"{schedule} (compiled)", required=True)
    if count == 1 or schedule not in ("tiled", "default"):
        return variants
    from ...tuning.tasks import group_func

    task = group_func(group, "webgpu")
    if task is None:
        return variants
    candidates = _bindings(task, UNTILED_THREADS) if schedule == "tiled" else _bindings(task, THREADS)
    if schedule == "tiled":
        candidates = itertools.chain(candidates, _tilings(task, kernel.name, count))
    for func, label in candidates:
        if len(variants) >= count:
            break
        func.attrs.update({key: kernel.func.attrs[key] for key in ("param_layouts", "ops") if key in kernel.func.attrs})
        _keep(variants, seen, func, kernel.name, label)
    return variants


def _keep(variants: list, seen: set, func, name: str, label: str, required: bool = False) -> None:
    """Appends ``func``'s variant unless it does not lower, exceeds WebGPU's default limits or
    repeats a kept one's WGSL (``required``: the compiled function, kept whatever its limits)."""
    from ...schedule.schedule import Schedule

    func = Schedule(func).func  # a private copy: renamed per variant
    func.name = f"{name}_v{len(variants)}"
    try:
        program = lower_for_gpu(func, "webgpu")
        shaders = {k.name: render_kernel(k) for k in program.kernels}
    except TcompError:
        if required:
            raise
        return
    text = "".join(s.source.replace(func.name, "") for s in shaders.values())
    if text in seen or (not required and not _fits_defaults(program)):
        return
    seen.add(text)
    workgroups = ", ".join("x".join(str(n) for n in s.workgroup) for s in shaders.values())
    variants.append(Variant(f"{label}; workgroups {workgroups}", program, shaders))


def _fits_defaults(program: DeviceProgram) -> bool:
    for kernel in program.kernels:
        threads = 1
        for axis in ("x", "y", "z"):
            extent = kernel.launch.get(f"threadIdx.{axis}")
            threads *= extent.value if extent is not None else 1
        shared = sum(arith.simplify(buf.storage_elements()).value * 4 for buf in kernel.shared)
        if threads > DEFAULT_LIMITS["threads"] or shared > DEFAULT_LIMITS["workgroup_bytes"] \
                or len(kernel.params) > DEFAULT_LIMITS["storage_buffers"]:
            return False
    return True


def _tilings(task, name: str, count: int):
    """(function, label) of the tiling sketches under decisions drawn with a seed fixed by ``name``."""
    from ...build import lower
    from ...tuning.space import design_space
    from ..gpu.groups import _bound

    sketches = [t for t in design_space(task, "webgpu") if any(i.kind == "cache_read" for i in t.instructions)
                and not any(i.kind == "tensorize" for i in t.instructions)]
    rng = random.Random(hashlib.sha1(name.encode()).hexdigest())
    for _ in range(count * ATTEMPTS_PER_VARIANT):
        for trace in sketches:
            choices = {index: rng.randrange(len(inst.inputs[0])) for index, inst in enumerate(trace.instructions)
                       if inst.kind == "sample_categorical"}
            values = [trace.instructions[i].inputs[0][c] for i, c in sorted(choices.items())]
            try:
                yield _bound(lower(trace.apply_to(task, decisions=choices).func)), f"tiled, decisions {values}"
            except TcompError:
                continue


def _bindings(task, threads_per_block: tuple):
    """(function, label) of the default binding with ``threads_per_block``."""
    from ..gpu.groups import _bound

    for threads in threads_per_block:
        try:
            yield _bound(task, threads=threads), f"default, {threads} threads per block"
        except TcompError:
            continue
