"""Command line: ``tcomp run MODEL.onnx``, ``tcomp inspect MODEL.onnx`` and
``tcomp tune MODEL.onnx --target cpu --trials N --db tuning.db``."""
from __future__ import annotations

import argparse
import sys
import time

import numpy as np

from .compiler import compile
from .errors import TcompError
from .graph.ir import numpy_dtype
from .graph.symbolic import SymInt
from .runtime.executor import TensorSpec


def random_feeds(module, rng: np.random.Generator, shapes: dict | None = None) -> dict:
    """Random inputs: normal floats, small non-negative ints, all-ones masks. ``shapes`` gives the
    sizes of inputs with symbolic dimensions."""
    feeds = {}
    for spec in module.inputs:
        shape = (shapes or {}).get(spec.name, spec.shape)
        symbolic = [str(s) for s in shape if isinstance(s, SymInt)]
        if symbolic:
            raise TcompError(f"input {spec.name} has symbolic dimension(s) {', '.join(repr(s) for s in symbolic)}; "
                             f"give its size with --input-shape {spec.name}=D0,D1,...")
        spec = TensorSpec(spec.name, tuple(shape), spec.dtype)
        dtype = np.dtype(numpy_dtype(spec.dtype))
        if dtype.kind == "f":
            feeds[spec.name] = rng.standard_normal(spec.shape).astype(dtype)
        elif dtype.kind == "b":
            feeds[spec.name] = rng.random(spec.shape) < 0.5
        elif "mask" in spec.name.lower():
            feeds[spec.name] = np.ones(spec.shape, dtype=dtype)
        else:
            feeds[spec.name] = rng.integers(0, 100, spec.shape).astype(dtype)
    return feeds


def _input_shapes(items) -> dict | None:
    """``["x=1,3,224,224", ...]`` -> {"x": (1, 3, 224, 224)}."""
    if not items:
        return None
    shapes = {}
    for item in items:
        name, _, dims = item.partition("=")
        try:
            shapes[name] = tuple(int(d) for d in dims.split(","))
        except ValueError:
            raise TcompError(f"--input-shape expects NAME=D0,D1,...; got '{item}'") from None
    return shapes


def _cmd_run(args) -> int:
    mod = compile(args.model, target=args.target, db=args.db)
    print(f"compiled {args.model} for {mod.target.describe()} in {mod.compile_seconds:.2f} s: "
          f"{len(mod.groups)} fused groups, {len(mod.kernels)} distinct kernels")
    feeds = random_feeds(mod, np.random.default_rng(), _input_shapes(args.input_shape))
    outputs = mod.run(feeds)
    times = []
    for _ in range(args.repeat):
        start = time.perf_counter()
        mod.run(feeds)
        times.append(time.perf_counter() - start)
    print(f"latency: median {np.median(times) * 1e3:.3f} ms over {args.repeat} runs "
          f"(min {min(times) * 1e3:.3f} ms)")
    plan = mod.memory_plan
    print(f"peak intermediate memory: {plan.arena_bytes / 2**20:.2f} MiB "
          f"(without reuse {plan.unplanned_bytes / 2**20:.2f} MiB)")
    for spec, out in zip(mod.outputs, outputs):
        print(f"output {spec.name}: {out.dtype}{list(out.shape)}")
    try:
        import onnxruntime
    except ImportError:
        print("onnxruntime is not installed: no reference comparison")
        return 0
    session = onnxruntime.InferenceSession(str(args.model), providers=["CPUExecutionProvider"])
    reference = session.run(None, feeds)
    for spec, out, ref in zip(mod.outputs, outputs, reference):
        diff = np.abs(out.astype(np.float64) - ref.astype(np.float64))
        rel = np.linalg.norm(diff) / max(np.linalg.norm(ref.astype(np.float64)), 1e-30)
        print(f"vs onnxruntime {spec.name}: max |diff| {diff.max():.3e}, relative {rel:.3e}")
    return 0


def _cmd_inspect(args) -> int:
    mod = compile(args.model, target=args.target, input_shapes=_input_shapes(args.input_shape))
    graph = mod.graph
    print(f"model {args.model}: {len(graph.nodes)} graph nodes after simplification, "
          f"{len(mod.groups)} fused groups, {len(mod.kernels)} distinct kernels")
    plan = mod.memory_plan
    if plan is not None:  # symbolic shapes are planned per run
        print(f"peak intermediate memory: {plan.arena_bytes / 2**20:.2f} MiB "
              f"(without reuse {plan.unplanned_bytes / 2**20:.2f} MiB)")
    print("inputs:  " + ", ".join(f"{s.name}: {s.dtype}{list(s.shape)}" for s in mod.inputs))
    print("outputs: " + ", ".join(f"{s.name}: {s.dtype}{list(s.shape)}" for s in mod.outputs))
    print("\nfused groups (in execution order):")
    for index, (group, step) in enumerate(zip(mod.groups, mod.executor.steps)):
        out = group.output
        print(f"  [{index:3d}] {step.kernel:30s} {group.label}  -> {out.dtype}{list(out.shape)}")
    print("\nkernels:")
    for index, (name, kernel) in enumerate(mod.kernels.items()):
        attrs = kernel.func.attrs
        detail = " ".join(str(attrs[k]) for k in ("shape", "tiles", "window") if k in attrs)
        print(f"  ({index}) {name:30s} {attrs.get('kind', ''):10s} x{len(kernel.groups)}  {detail}")
    if args.kernel is not None:
        names = list(mod.kernels)
        key = names[int(args.kernel)] if args.kernel.isdigit() and int(args.kernel) < len(names) else args.kernel
        if key not in mod.kernels:
            raise TcompError(f"no kernel '{args.kernel}'; give an index 0..{len(names) - 1} or a name")
        print(f"\nloop IR of {key}:")
        print(mod.kernels[key].func)
    else:
        print("\n(show a kernel's loop IR with --kernel INDEX_OR_NAME)")
    return 0


def _cmd_tune(args) -> int:
    from .tuning.task_scheduler import report, tune_model

    results = tune_model(args.model, target=args.target, trials=args.trials, db=args.db,
                         input_shapes=_input_shapes(args.input_shape), seed=args.seed,
                         max_seconds=args.minutes * 60 if args.minutes is not None else None,
                         verify=not args.no_verify)
    print(report(results))
    print(f"records in {args.db}; compile with them: tcomp run {args.model} --db {args.db}")
    return 0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="tcomp", description="tcomp tensor compiler")
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="compile a model and run it on random inputs")
    run.add_argument("model")
    run.add_argument("--target", default="cpu")
    run.add_argument("--repeat", type=int, default=20)
    run.add_argument("--input-shape", action="append", metavar="NAME=D0,D1,...",
                     help="run-time size of an input with symbolic dimensions (repeatable)")
    run.add_argument("--db", help="tuning database whose best records replace the templates (tcomp tune)")
    run.set_defaults(func=_cmd_run)
    inspect = sub.add_parser("inspect", help="show fused groups, kernels and loop IR")
    inspect.add_argument("model")
    inspect.add_argument("--target", default="cpu")
    inspect.add_argument("--kernel", help="index or name of the kernel whose loop IR to print")
    inspect.add_argument("--input-shape", action="append", metavar="NAME=D0,D1,...",
                         help="compile for this static size of an input with symbolic dimensions (repeatable)")
    inspect.set_defaults(func=_cmd_inspect)
    tune = sub.add_parser("tune", help="tune a model's kernels into a database (a progress bar, then a table)")
    tune.add_argument("model")
    tune.add_argument("--target", default="cpu")
    tune.add_argument("--trials", type=int, default=512, help="measurements in all, shared by the kernels")
    tune.add_argument("--db", default="tuning.db", help="tuning database (JSON lines; resumed when it exists)")
    tune.add_argument("--minutes", type=float, help="wall-time budget (rounds stop in time to confirm the best)")
    tune.add_argument("--seed", type=int)
    tune.add_argument("--no-verify", action="store_true",
                      help="apply the tuned kernels without timing them in the model against the templates")
    tune.add_argument("--input-shape", action="append", metavar="NAME=D0,D1,...",
                      help="static size of an input with symbolic dimensions (repeatable)")
    tune.set_defaults(func=_cmd_tune)
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except TcompError as exc:
        print(f"tcomp: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
