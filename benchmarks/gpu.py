"""GEMM 4096^3 and whole models on the GPU: tcomp.tune'd kernels for "cuda" side by side with
torch.matmul (cuBLAS), and ``tcomp.compile(model, target="cuda")`` side by side with torch eager.

    python benchmarks/gpu.py [--n 4096] [--trials 96] [--minutes 7] [--db gpu_tuning.db] [--cases fp32,fp16,tf32]
    python benchmarks/gpu.py --cases fp32,tf32 --gemm-untuned
    python benchmarks/gpu.py --cases "" --models bert,resnet50 --dtypes fp32,tf32,fp16 [--model-dir /tmp/zoo]
                             [--torch-compile] [--model-db tuned.db]

Cases: ``fp32`` (C = A @ B in float32; torch with ``allow_tf32 = False``), ``tf32`` (the same product with A
and B rounded to TF32, what ``"cuda -tf32"`` compiles, ``targets/cuda/tf32.py``; tuned and built for
``cuda -tf32``; torch.matmul with ``torch.backends.cuda.matmul.allow_tf32 = True``) and ``fp16`` (A, B float16, C
accumulated and written in float32; torch.matmul of the float16 tensors, which accumulates in float32 and
writes float16). With ``--gemm-untuned`` a case is not tuned: tcomp runs the untuned GPU schedule that
``tcomp.compile`` gives a matmul (``groups.tiled_func``). Each case is tuned with ``tcomp.tune`` up to
``--trials`` measured candidates (in rounds of ``--batch-size``, stopping early when the case's share of
``--minutes`` is spent; resumable through ``--db``), its best candidates confirmed, then the best record is
built (``tcomp.build(func, target="cuda", db=...)``) and timed against torch.matmul, interleaved: ``--rounds``
rounds of (tcomp, torch), each a median of ``--inner`` device-timed runs (CUDA events) after warm-up; the
result is the median over rounds. The tuned kernel's output is checked against torch's (relative error of the
fp64 difference norm). Prints the device, driver, TFLOP/s and the ratio tcomp / cuBLAS.

Models (untuned: the default GPU schedules of ``targets/gpu/groups.py``; with ``--model-db``, also compiled
with that tuning database, ``tcomp.compile(..., db=)``, and timed as "tcomp tuned" in the same rounds), in
``--dtypes`` fp32 and fp16 (weights and float inputs half, as ``module.half()``): ``bert``, BERT-base
(tests/model_zoo.py, seeded random weights) at batch 8, sequence 128; ``resnet50``, timm's resnet50 at batch
32, 224 x 224; ``tf32``: the fp32 model compiled for ``cuda -tf32``; each exported to ONNX with torch.onnx and
compiled for the device's architecture, every case in its own process at once (the timing process loads the
pickled modules; with ``--torch-compile`` the workers also run torch.compile once, filling inductor's caches).
Latency is the wall time of one inference with inputs and outputs on the device (torch CUDA tensors in,
``device_outputs=True``), synchronized; torch eager (and with ``--torch-compile``, torch.compile) runs the
same module on the same tensors, for ``fp32`` with TF32 off (``torch.backends.cudnn.allow_tf32 =
torch.backends.cuda.matmul.allow_tf32 = False``: exact fp32 as tcomp's), for ``tf32`` with both on (cuDNN's
default is on, cuBLAS's off); each row says which. Interleaved rounds of (tcomp, torch...), each a median of
``--inner`` runs after warm-up; the result is the median over ``--rounds``. The largest difference of the
outputs against torch eager's is printed with each row, and the slowest kernels of ``mod.profile``.
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def gemm_func(n: int, dtype: str):
    from tcomp import tir
    from tcomp.tir.expr import cast

    a = tir.placeholder((n, n), dtype, name="A")
    b = tir.placeholder((n, n), dtype, name="B")
    k = tir.reduce_axis(n, name="k")
    if dtype == "float32":
        c = tir.compute((n, n), lambda i, j: tir.sum(a[i, k] * b[k, j], axis=k), name="C")
    else:
        c = tir.compute((n, n), lambda i, j: tir.sum(cast("float32", a[i, k]) * cast("float32", b[k, j]), axis=k),
                        name="C")
    return tir.create_func([a, b, c], name=f"gemm_{dtype}")


def case_func(n: int, case: str):
    """The GEMM of a case: ``gemm_func`` in the case's operand type, for tf32 with rounded operands."""
    from tcomp.targets.cuda.tf32 import tf32_products

    func = gemm_func(n, {"fp32": "float32", "tf32": "float32", "fp16": "float16"}[case])
    return tf32_products(func) if case == "tf32" else func


def torch_tf32(enabled: bool) -> str:
    """Sets torch's TF32 switches for cuDNN and cuBLAS alike; what they are, as text."""
    import torch

    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = enabled
    return f"torch allow_tf32 cudnn={enabled} matmul={enabled}"


def device_info() -> dict:
    from tcomp.targets.cuda.driver import _call, device_arch, device_name

    version = _call("cuDriverGetVersion")
    info = {"device": device_name(), "arch": device_arch(),
            "cuda_driver_api": f"{version // 1000}.{version % 1000 // 10}"}
    try:
        import subprocess

        info["driver"] = subprocess.run(["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
                                        capture_output=True, text=True, timeout=30).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        info["driver"] = "unknown (no nvidia-smi)"
    return info


def tune(func, trials: int, batch: int, db: str, seconds: float, target: str = "cuda") -> dict:
    """Tunes in rounds of ``batch`` trials until ``trials`` or ``seconds`` run out, then confirms."""
    import tcomp
    from tcomp.tuning.database import Database
    from tcomp.tuning.tasks import database_target
    from tcomp.tuning.workload import workload_key

    start, done = time.monotonic(), 0
    while done < trials and time.monotonic() - start < seconds:
        done = min(trials, done + batch)
        tcomp.tune(func, target=target, trials=done, db=db, batch_size=batch, seed=0, progress=False,
                   confirm_top=0)
        record = Database(db).best(workload_key(func), database_target(target))
        print(f"  {func.name}: {done} trials, best {record.seconds * 1e3:.3f} ms" if record else
              f"  {func.name}: {done} trials, none correct yet", flush=True)
    tcomp.tune(func, target=target, trials=done, db=db, progress=False, confirm_top=3, confirm_rounds=3)
    return {"trials": done, "tuning_s": time.monotonic() - start}


def compare(func, n: int, dtype: str, db: str | None, rounds: int, inner: int, target: str = "cuda") -> dict:
    """The case's kernel (tuned: ``db``'s best record; ``db`` None: ``tiled_func``'s untuned schedule)
    against torch.matmul, TF32 on for torch where ``target`` has ``-tf32``."""
    import torch

    import tcomp
    from tcomp.targets.cuda.driver import device_arch, elapsed_seconds, synchronize
    from tcomp.targets.cuda.tf32 import allows_tf32
    from tcomp.targets.gpu.groups import tiled_func

    if db is None:
        func = tiled_func(func, f"cuda -arch={device_arch()}")
    kernel = tcomp.build(func, target=target, db=db)
    rng = np.random.default_rng(0)
    a = rng.standard_normal((n, n)).astype(dtype)
    b = rng.standard_normal((n, n)).astype(dtype)
    c = np.empty((n, n), dtype=np.float32)
    kernel(a, b, c)
    ta, tb = torch.from_numpy(a).cuda(), torch.from_numpy(b).cuda()
    torch_tf32(allows_tf32(target))
    reference = (ta.double() @ tb.double()).cpu().numpy()
    error = float(np.linalg.norm(c - reference) / np.linalg.norm(reference))
    torch_error = float(np.linalg.norm(torch.matmul(ta, tb).double().cpu().numpy() - reference)
                        / np.linalg.norm(reference))
    launches, memory = kernel._prepare([a, b, c])  # device copies stay alive while timing

    def ours():
        synchronize()
        return statistics.median(elapsed_seconds(lambda: kernel._launch(launches)) for _ in range(inner))

    def theirs():
        torch.cuda.synchronize()
        times = []
        for _ in range(inner):
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            torch.matmul(ta, tb)
            end.record()
            end.synchronize()
            times.append(start.elapsed_time(end) / 1e3)
        return statistics.median(times)

    for _ in range(3):
        ours(), theirs()
    samples = {"tcomp": [], "torch": []}
    for _ in range(rounds):
        samples["tcomp"].append(ours())
        samples["torch"].append(theirs())
    del memory
    flops = 2.0 * n ** 3
    result = {name: statistics.median(s) for name, s in samples.items()}
    return {"seconds": result, "tflops": {k: flops / v / 1e12 for k, v in result.items()},
            "ratio": result["torch"] / result["tcomp"], "rel_error": error, "torch_rel_error": torch_error}


PICKLE_RECURSION = 50000  # a compiled module's loop IR nests deeply


def model_case(name: str, dtype: str, model_dir: Path):
    """(torch module, ONNX path, input tensors) of a benchmark model on the CPU: seeded weights, in
    ``dtype`` ("fp32", "fp16": weights and float inputs half); the ONNX export (fp32, batch and
    sequence symbolic; fp16: that graph converted, ``half_model``) is cached in ``model_dir``."""
    import torch

    model_dir.mkdir(parents=True, exist_ok=True)
    dtype = "fp32" if dtype == "tf32" else dtype  # the fp32 model; its compile allows TF32 products
    torch.manual_seed(0)
    if name == "bert":
        sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
        from model_zoo import build_torch_model

        module = build_torch_model("bert")
        ids = torch.randint(0, 30522, (8, 128), generator=torch.Generator().manual_seed(1))
        inputs = {"input_ids": ids, "attention_mask": torch.ones(8, 128, dtype=torch.int64)}
        axes = {"input_ids": {0: "batch", 1: "sequence"}, "attention_mask": {0: "batch", 1: "sequence"}}
    elif name == "resnet50":
        import timm

        module = timm.create_model("resnet50", pretrained=False).eval()
        inputs = {"pixel_values": torch.randn(32, 3, 224, 224, generator=torch.Generator().manual_seed(1))}
        axes = {"pixel_values": {0: "batch"}}
    else:
        raise SystemExit(f"unknown model {name!r} (bert, resnet50)")
    path = model_dir / f"{name}_fp32.onnx"
    if not path.exists():
        example = {k: v[:1] for k, v in inputs.items()}  # one sample traced, the batch symbolic
        scratch = path.with_suffix(f".{os.getpid()}.tmp")  # workers of two cases may export at once
        with torch.no_grad():
            torch.onnx.export(module, tuple(example.values()), str(scratch), input_names=list(inputs),
                              output_names=["output"], dynamic_axes={**axes, "output": {0: "batch"}},
                              opset_version=17, dynamo=False)
        os.replace(scratch, path)
    if dtype == "fp16":
        module = module.half()
        inputs = {k: v.half() if v.is_floating_point() else v for k, v in inputs.items()}
        half = model_dir / f"{name}_fp16.onnx"
        if not half.exists():
            import onnx

            scratch = half.with_suffix(f".{os.getpid()}.tmp")
            onnx.save(half_model(onnx.load(str(path))), str(scratch))
            os.replace(scratch, half)
        path = half
    return module, path, inputs


def half_model(model):
    """An fp32 ONNX model in fp16: float initializers, Constant / ConstantOfShape values (clipped to
    fp16's range: a mask's float32 minimum stays finite), Cast targets, inputs and outputs. (Exporting
    ``module.half()`` on the CPU gives a mixed graph: BERT's attention is traced in fp32 and the
    exporter folds every later weight to fp32.)"""
    import onnx
    from onnx import numpy_helper

    float32, float16 = onnx.TensorProto.FLOAT, onnx.TensorProto.FLOAT16
    limit = float(np.finfo(np.float16).max)

    def half(tensor):
        data = np.clip(numpy_helper.to_array(tensor), -limit, limit).astype(np.float16)
        return numpy_helper.from_array(data, tensor.name)

    graph = model.graph
    for init in graph.initializer:
        if init.data_type == float32:
            init.CopyFrom(half(init))
    for node in graph.node:
        for attr in node.attribute:
            if attr.name == "to" and attr.i == float32:
                attr.i = float16
            if attr.type == onnx.AttributeProto.TENSOR and attr.t.data_type == float32:
                attr.t.CopyFrom(half(attr.t))
    for value in list(graph.input) + list(graph.output) + list(graph.value_info):
        if value.type.tensor_type.elem_type == float32:
            value.type.tensor_type.elem_type = float16
    return model


def compile_case(name: str, dtype: str, variant: str, model_dir: str, target: str, out: str, torch_compile: bool,
                 db: str | None) -> None:
    """Worker process: exports and compiles a model case for ``target`` (``variant`` "tuned": with the
    tuning database ``db``) and pickles the module (with its compile time) to ``out``; with
    ``torch_compile``, also runs torch.compile once on the device (what it compiles lands in inductor's
    caches, so that the timing process compiles quickly)."""
    import pickle

    import torch

    import tcomp

    module, path, inputs = model_case(name, dtype, Path(model_dir))
    target = f"{target} -tf32" if dtype == "tf32" else target
    start = time.perf_counter()
    mod = tcomp.compile(str(path), target=target, input_shapes={k: tuple(v.shape) for k, v in inputs.items()},
                        db=db if variant == "tuned" else None)
    compile_s = time.perf_counter() - start
    sys.setrecursionlimit(PICKLE_RECURSION)
    with open(out, "wb") as f:
        pickle.dump((mod, compile_s), f, protocol=pickle.HIGHEST_PROTOCOL)
    if torch_compile and variant == "untuned":
        with torch.no_grad():
            torch.compile(module.cuda())(*(v.cuda() for v in inputs.values()))


def compile_cases(cases: list, model_dir: Path, target: str, torch_compile: bool, db: str | None) -> dict:
    """Each (model, dtype, variant) compiled in its own process, all at once; (module, compile seconds) by
    case."""
    import pickle
    import tempfile
    from concurrent.futures import ProcessPoolExecutor
    from multiprocessing import get_context

    results = {}
    sys.setrecursionlimit(PICKLE_RECURSION)
    with tempfile.TemporaryDirectory() as scratch, \
            ProcessPoolExecutor(len(cases), mp_context=get_context("spawn")) as pool:
        jobs = {case: pool.submit(compile_case, *case, str(model_dir), target, f"{scratch}/{'_'.join(case)}.pkl",
                                  torch_compile, db) for case in cases}
        for case, job in jobs.items():
            try:
                job.result()
                with open(f"{scratch}/{'_'.join(case)}.pkl", "rb") as f:
                    results[case] = pickle.load(f)
            except Exception as exc:  # one case failing leaves the others' figures
                print(f"{' '.join(case)}: compile failed: {type(exc).__name__}: {exc}", flush=True)
    return results


def compare_model(name: str, dtype: str, compiled: dict, model_dir: Path, rounds: int, inner: int,
                  with_compile: bool, top: int) -> dict:
    """tcomp (``compiled``: (module, compile seconds) by variant, "untuned" and "tuned"; inputs and outputs
    on the device) against torch eager (and torch.compile), interleaved; each variant's largest
    difference from torch eager's output, and the ``top`` slowest kernels of each."""
    import torch

    module, _, inputs = model_case(name, dtype, model_dir)
    tf32 = torch_tf32(dtype == "tf32") if dtype in ("fp32", "tf32") else "torch's TF32 defaults"
    module = module.cuda()
    inputs = {k: v.cuda() for k, v in inputs.items()}
    mods = {("tcomp" if variant == "untuned" else f"tcomp {variant}"): mod for variant, (mod, _) in compiled.items()}
    feeds = {k: inputs[k] for k in next(iter(mods.values())).input_names}

    def run_torch(fn):
        with torch.no_grad():
            return fn(*inputs.values())

    runners = {key: (lambda mod=mod: mod.run(feeds, device_outputs=True)) for key, mod in mods.items()}
    runners["torch eager"] = lambda: run_torch(module)
    if with_compile:
        compiled_module = torch.compile(module)
        runners["torch.compile"] = lambda: run_torch(compiled_module)
    reference = run_torch(module)
    reference = (reference[0] if isinstance(reference, (tuple, list)) else reference).float()
    differences = {key: float((torch.from_dlpack(runners[key]()[0]).float() - reference).abs().max())
                   for key in mods}

    def timed(fn):
        times = []
        for _ in range(inner):
            torch.cuda.synchronize()
            begin = time.perf_counter()
            fn()
            torch.cuda.synchronize()
            times.append(time.perf_counter() - begin)
        return statistics.median(times)

    for fn in runners.values():  # warm-up (torch.compile compiles here)
        for _ in range(3):
            fn()
    samples = {key: [] for key in runners}
    for _ in range(rounds):
        for key, fn in runners.items():
            samples[key].append(timed(fn))
    seconds = {key: statistics.median(s) for key, s in samples.items()}
    variants = {}
    for (variant, (_, compile_s)), (key, mod) in zip(compiled.items(), mods.items()):
        schedules = {}
        for kernel in mod.kernels.values():
            how = kernel.func.attrs.get("gpu_schedule", "?")
            schedules[how] = schedules.get(how, 0) + 1
        profile = sorted(mod.profile(feeds, repeat=5), key=lambda p: -p[2])
        variants[key] = {"compile_s": compile_s, "max_abs_diff": differences[key], "schedules": schedules,
                         "profile": profile[:top], "profile_total": sum(p[2] for p in profile)}
    return {"seconds": seconds, "variants": variants, "reference_max": float(reference.abs().max()),
            "shapes": {k: list(v.shape) for k, v in inputs.items()}, "torch_tf32": tf32}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=4096)
    parser.add_argument("--trials", type=int, default=96)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--minutes", type=float, default=7.0, help="tuning wall time for all cases together")
    parser.add_argument("--db", default="gpu_tuning.db")
    parser.add_argument("--cases", default="fp32,fp16", help="GEMM cases: fp32, tf32, fp16")
    parser.add_argument("--gemm-untuned", action="store_true", help="time the GEMMs' untuned schedules, no tuning")
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--inner", type=int, default=10)
    parser.add_argument("--models", default="", help="comma-separated: bert, resnet50")
    parser.add_argument("--dtypes", default="fp32", help="the models' precisions: fp32, tf32, fp16")
    parser.add_argument("--model-dir", default="benchmark_models", help="where the ONNX exports are cached")
    parser.add_argument("--torch-compile", action="store_true", help="also time torch.compile (compiles first)")
    parser.add_argument("--profile-top", type=int, default=8, help="slowest kernels listed per model")
    parser.add_argument("--model-db", help="a tuning database: the models are also compiled with it and timed")
    args = parser.parse_args()

    info = device_info()
    try:
        import torch

        info["torch"] = f"{torch.__version__} (cuda {torch.version.cuda})"
    except ImportError:
        torch = None
        info["torch"] = "not installed: no cuBLAS comparison"
    print(" ".join(f"{k}={v}" for k, v in info.items()), flush=True)
    cases = [c for c in args.cases.split(",") if c]
    dtypes = {"fp32": "float32", "tf32": "float32", "fp16": "float16"}
    rows = []
    for index, case in enumerate(cases):
        func = case_func(args.n, case)
        target = "cuda -tf32" if case == "tf32" else "cuda"
        if args.gemm_untuned:
            tuned = {"trials": 0, "tuning_s": 0.0}
        else:
            share = args.minutes * 60 / len(cases)
            print(f"tuning {case} ({args.trials} trials at most, {share:.0f} s)", flush=True)
            tuned = tune(func, args.trials, args.batch_size, args.db, share, target)
        if torch is None:
            continue
        result = compare(func, args.n, dtypes[case], None if args.gemm_untuned else args.db, args.rounds, args.inner,
                         target)
        rows.append((case, tuned, result))
    variants = ("untuned", "tuned") if args.model_db else ("untuned",)
    model_cases = [(name, dtype) for name in args.models.split(",") if name for dtype in args.dtypes.split(",")]
    compiled = compile_cases([case + (variant,) for case in model_cases for variant in variants],
                             Path(args.model_dir), f"cuda -arch={info['arch']}", args.torch_compile,
                             args.model_db) if model_cases else {}
    for name, dtype in model_cases:
        ready = {variant: compiled[(name, dtype, variant)] for variant in variants
                 if (name, dtype, variant) in compiled}
        if not ready:
            continue
        try:
            r = compare_model(name, dtype, ready, Path(args.model_dir), args.rounds, args.inner,
                              args.torch_compile, args.profile_top)
        except Exception as exc:  # one case failing leaves the others' figures
            print(f"{name} {dtype}: failed: {type(exc).__name__}: {exc}", flush=True)
            continue
        base = r["seconds"]["torch eager"]
        print(f"\n{name} {dtype} {r['shapes']} on {info['device']} (driver {info['driver']}), {r['torch_tf32']}, "
              f"max |torch| {r['reference_max']:.2e}; median of {args.rounds} interleaved rounds x {args.inner} runs",
              flush=True)
        for key, seconds in r["seconds"].items():
            print(f"  {key:14} {seconds * 1e3:9.2f} ms   {seconds / base:6.2f}x torch eager", flush=True)
        for key, v in r["variants"].items():
            print(f"  {key}: compile {v['compile_s']:.0f} s, kernels by schedule {v['schedules']}, max |tcomp - "
                  f"torch| {v['max_abs_diff']:.2e}; slowest kernels (profile: each step synchronized, "
                  f"{v['profile_total'] * 1e3:.2f} ms in all):")
            for kernel, label, seconds in v["profile"]:
                print(f"    {seconds * 1e3:8.3f} ms  {kernel:32} {label[:60]}", flush=True)
    if not rows:
        return
    print(f"\nGEMM {args.n}^3 on {info['device']} (driver {info['driver']}), median of {args.rounds} interleaved "
          f"rounds x {args.inner} runs; torch.matmul with allow_tf32 = False for fp32, True for tf32"
          + ("; tcomp untuned" if args.gemm_untuned else ""))
    print(f"{'case':6} {'trials':>6} {'tune s':>7} {'tcomp TFLOP/s':>14} {'cuBLAS TFLOP/s':>15} {'ratio':>6} "
          f"{'rel err':>9} {'torch err':>9}")
    for case, tuned, r in rows:
        print(f"{case:6} {tuned['trials']:6d} {tuned['tuning_s']:7.0f} {r['tflops']['tcomp']:14.1f} "
              f"{r['tflops']['torch']:15.1f} {r['ratio']:6.2f} {r['rel_error']:9.2e} {r['torch_rel_error']:9.2e}")


if __name__ == "__main__":
    main()
