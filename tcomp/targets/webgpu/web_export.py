"""``mod.export_web(out_dir)``: a compiled webgpu module as a bundle that runs in a browser, with no
Python and no build step.

    out_dir/tcomp.js          the runtime (``web/tcomp.js``: one ES module, no dependencies)
    out_dir/manifest.json     the kernel graph (below)
    out_dir/kernels/*.wgsl    one compute shader per device kernel of every variant
    out_dir/weights.bin       the constants, each at a 256-byte aligned offset

    import * as tcomp from "./out_dir/tcomp.js";
    const model = await tcomp.load("./out_dir/");
    const outputs = await model.run({input: float32Array});    // {name: {data, shape, dtype}}

The manifest is the device executor's plan (``runtime/device_executor.py``) resolved for one
binding of the symbolic sizes (``input_shapes`` gives it where the model has symbolic sizes):
every buffer argument is a region (``weights``, ``arena``, ``inputs``, ``outputs``), a byte offset
(a multiple of 256) and a binding size; every dispatch has its workgroup counts; size variables
are the values of a uniform buffer; a shader with ``status`` (it checks its int64 arithmetic,
``overflow.py``) is bound a status word after them, which the runtime reads after each run. Per step, the kernel's variants (``variants.py``) each list
their own launches; their temporaries lie in the step's scratch region of the arena (sized for
the largest variant), so the variants share the buffer plan. A kernel's ``hash`` (of its
variants' WGSL) keys the browser's cached choice; its ``work`` (iterations of its blocks) orders
the browser's tuning, heaviest first.

    {"format": "tcomp-web/1", "sizes": {"batch": 1},
     "regions": {"weights": 45000192, "arena": 3211264, "inputs": 602112, "outputs": 4096},
     "inputs":  [{"name": "x", "shape": [1, 3, 224, 224], "dtype": "float32", "offset": 0, "bytes": 602112}],
     "outputs": [{"name": "y", ..., "offset": 0, "copy_from": null | {"region": "inputs", "offset": 0}}],
     "shaders": {"k0_conv_1a2b3c_v0_kernel": {"file": "kernels/k0_conv_1a2b3c_v0_kernel.wgsl",
                                               "workgroup": [16, 16, 1], "uniform": false, "status": false,
                                               "bytes": 6335}},
     "kernels": {"k0_conv_1a2b3c": {"ops": "Conv+Relu", "hash": "9f..", "work": 118013952,
                                    "variants": ["tiled (compiled); ..", "default, 64 threads per block; ..", ..]}},
     "steps": [{"kernel": "k0_conv_1a2b3c", "variants": [[{"shader": "k0_conv_1a2b3c_v0_kernel",
                "dispatch": [4, 4, 1], "buffers": [["weights", 0, 1728], ["arena", 0, 802816], ...],
                "sizes": []}, ...], ...]}],
     "int64": "..."}
"""
from __future__ import annotations

import hashlib
import json
import math
import shutil
from pathlib import Path

import numpy as np

from ...errors import TcompError
from ...graph.ir import numpy_dtype
from ...graph.symbolic import evaluate
from ...runtime.device_executor import PARAM, _int, _layout
from ...runtime.executor import ARENA, CONST, INPUT, OUTPUT, bind_inputs
from ...runtime.memory_plan import plan_memory
from ...tir.expr import IntImm
from ...tir.stmt import BlockRealize
from ...tir.transform import walk_stmts
from ..gpu.launches import kernel_launches
from .device import ALIGN, bytes_of, check_uploadable
from .variants import kernel_variants

FORMAT = "tcomp-web/1"
RUNTIME = Path(__file__).with_name("web") / "tcomp.js"
INT64 = ("int64/uint64 tensors keep their 8-byte host layout; kernels read the low 32-bit word and write both "
         "(sign-extended); inputs must fit 32 bits (the runtime checks them and names the input otherwise)")
REGION = {CONST: "weights", ARENA: "arena", INPUT: "inputs", OUTPUT: "outputs"}


def export_web(module, out_dir, input_shapes: dict | None = None, variants: int = 8) -> Path:
    """Writes the bundle of ``module`` (compiled for ``webgpu``) to ``out_dir``; returns its path.
    ``input_shapes`` ({input name: shape}) binds symbolic sizes; ``variants``: at most this many
    schedules per heavy kernel (1 to 32), timed by the browser on first load."""
    if module.target.name != "webgpu":
        raise TcompError(f"export_web: the module was compiled for {module.target.name}; compile it with "
                         f"target='webgpu'")
    executor = module.executor
    binding = _binding(executor, input_shapes or {})
    out = Path(out_dir)
    (out / "kernels").mkdir(parents=True, exist_ok=True)

    kernels, shaders, steps = {}, {}, []
    scratch = {}  # kernel -> bytes of the largest variant's temporaries
    layouts = {}  # kernel -> [(variant, KernelLaunches, temporary offsets)]
    for name in dict.fromkeys(step.kernel for step in executor.steps):
        kernel = module.kernels[name]
        found = kernel_variants(kernel, module.groups[kernel.groups[0]], variants)
        layouts[name] = []
        for variant in found:
            launches = kernel_launches(variant.program)
            offsets, total = _layout([_int(n, binding, name) for n in launches.temporaries], ALIGN)
            scratch[name] = max(scratch.get(name, 0), total if launches.temporaries else 0)
            layouts[name].append((variant, launches, offsets))
            for shader in variant.shaders.values():
                (out / "kernels" / f"{shader.name}.wgsl").write_text(shader.source)
                shaders[shader.name] = {"file": f"kernels/{shader.name}.wgsl", "workgroup": list(shader.workgroup),
                                        "uniform": bool(shader.size_vars), "status": shader.status,
                                        "bytes": len(shader.source)}
        sources = "".join(s.source for variant in found for s in variant.shaders.values())
        kernels[name] = {"ops": kernel.func.attrs.get("ops", ""), "variants": [v.label for v in found],
                         "hash": hashlib.sha256(sources.encode()).hexdigest()[:16],
                         "work": _work(kernel.func, binding)}

    constants = [np.ascontiguousarray(c) for c in executor._host_constants]
    for index, array in enumerate(constants):
        check_uploadable(array, f"constant {index} of shape {list(array.shape)}")
    const_offsets, const_total = _layout([c.nbytes for c in constants], ALIGN)
    plan = _arena(executor, binding, scratch)
    inputs, input_total = _tensors(executor.inputs, binding)
    outputs, output_total = _tensors(executor.outputs, binding)
    where = {CONST: const_offsets, ARENA: plan.offsets, INPUT: [t["offset"] for t in inputs],
             OUTPUT: [t["offset"] for t in outputs]}

    for number, step in enumerate(executor.steps):
        args = [(REGION[slot.kind], where[slot.kind][slot.index]) for slot in step.args]
        base = plan.offsets[("scratch", number)] if ("scratch", number) in plan.offsets else None
        steps.append({"kernel": step.kernel, "variants": [
            _launches(variant, launches, offsets, args, base, binding)
            for variant, launches, offsets in layouts[step.kernel]]})
    for spec, source, tensor in zip(executor.outputs, executor.output_sources, outputs):
        tensor["copy_from"] = None if source is None else \
            {"region": REGION[source.kind], "offset": where[source.kind][source.index]}

    with open(out / "weights.bin", "wb") as weights:
        for array, offset in zip(constants, const_offsets):
            weights.seek(offset)
            weights.write(array.tobytes())
        weights.truncate(const_total)
    manifest = {"format": FORMAT, "sizes": binding, "int64": INT64,
                "regions": {"weights": const_total, "arena": plan.arena_bytes, "inputs": input_total,
                            "outputs": output_total},
                "weights": "weights.bin", "inputs": inputs, "outputs": outputs,
                "shaders": shaders, "kernels": kernels, "steps": steps}
    (out / "manifest.json").write_text(json.dumps(manifest, indent=1))
    shutil.copyfile(RUNTIME, out / "tcomp.js")
    return out


def _work(func, binding: dict) -> int:
    """Iterations of ``func``'s blocks (the product of each block's iterator extents, summed): a
    conv's multiply-adds and its copies. The runtime tunes the heaviest kernels first."""
    total = 0
    for node in walk_stmts(func.body):
        if isinstance(node, BlockRealize):
            total += math.prod(_int(iv.extent, binding, func.name) for iv in node.block.iter_vars)
    return total


def _binding(executor, input_shapes: dict) -> dict:
    """{symbol: size}: from ``input_shapes`` where the model has symbolic sizes."""
    if not executor.symbols:
        if input_shapes:
            raise TcompError("export_web: input_shapes applies to models with symbolic sizes; this one has none")
        return {}
    missing = [spec.name for spec in executor.inputs if spec.name not in input_shapes
               and any(not isinstance(d, int) for d in spec.shape)]
    if missing:
        raise TcompError(f"export_web: the model has symbolic sizes {executor.symbols}; give input_shapes for "
                         f"{missing} (a bundle runs at one size)")
    described = {spec.name: (tuple(input_shapes.get(spec.name, spec.shape)), np.dtype(numpy_dtype(spec.dtype)))
                 for spec in executor.inputs}
    return bind_inputs(executor.inputs, executor.constraints, described)


def _arena(executor, binding: dict, scratch: dict):
    """The arena: intermediates by lifetime, plus one scratch region per step whose kernel has temporaries."""
    lifetimes = {i: (m.first, m.last) for i, m in enumerate(executor.intermediates)}
    sizes = {i: evaluate(m.nbytes, binding) for i, m in enumerate(executor.intermediates)}
    for number, step in enumerate(executor.steps):
        if scratch.get(step.kernel):
            lifetimes[("scratch", number)] = (number, number)
            sizes[("scratch", number)] = scratch[step.kernel]
    return plan_memory(lifetimes, sizes, ALIGN)


def _tensors(specs: list, binding: dict) -> tuple:
    """Manifest entries of inputs or outputs (one region, 256-byte aligned offsets) and the region's size."""
    shapes = [[evaluate(d, binding) for d in spec.shape] for spec in specs]
    nbytes = [int(np.prod(shape, dtype=np.int64)) * np.dtype(numpy_dtype(spec.dtype)).itemsize
              for spec, shape in zip(specs, shapes)]
    offsets, total = _layout(nbytes, ALIGN)
    return [{"name": spec.name, "shape": shape, "dtype": spec.dtype, "offset": offset, "bytes": n}
            for spec, shape, offset, n in zip(specs, shapes, offsets, nbytes)], total


def _launches(variant, launches, temp_offsets: list, args: list, scratch, binding: dict) -> list:
    """One variant's dispatches for one step: shader, workgroup counts, bound buffers, size values."""
    result = []
    for launch in launches.launches:
        shader = variant.shaders[launch.kernel]
        grid = tuple(_int(e, binding, launch.kernel) for e in launch.grid)
        if 0 in grid:
            continue  # a zero-sized tensor: nothing to compute
        values = {v: IntImm(binding[v.name]) for v in shader.size_vars}
        buffers = []
        for param, (kind, index) in zip(shader.params, launch.buffers):
            region, offset = args[index] if kind == PARAM else ("arena", scratch + temp_offsets[index])
            buffers.append([region, offset, max(4, -(-bytes_of(param, values, shader.name) // 4) * 4)])
        result.append({"shader": shader.name, "dispatch": list(shader.dispatch(grid)), "buffers": buffers,
                       "sizes": [binding[name] for name in launch.sizes]})
    return result
