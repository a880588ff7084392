"""The webgpu target on a real GPU (wgpu-native on Vulkan) next to the cuda target and torch, in one run:
GEMM n^3 fp32 and BERT-base latency.

    python benchmarks/webgpu_gpu.py [--n 2048] [--batch 8] [--seq 128] [--rounds 5] [--inner 5] [--json out.json]
    python benchmarks/webgpu_gpu.py --n 256 --small --software   # no CUDA, lavapipe: a dry run of the script

The WebGPU adapter must be a GPU: the script stops where wgpu picked a software one (lavapipe's
"llvmpipe", adapter type CPU) unless ``--software``; the adapter's vendor, device, driver
description and backend are printed (and NVIDIA's driver version from nvidia-smi).

- GEMM: C = A @ B, one ONNX MatMul of two n x n float32 inputs compiled by ``tcomp.compile`` for
  each target (default GPU schedules, no tuning: the matmul group's shared-memory tiling sketch
  with its default decisions, ``targets/gpu/groups.py``); its kernel built alone with
  ``tcomp.build`` and timed with the operands on the device: ``--launches`` launches recorded back
  to back, then one synchronization, wall time divided by the launches (WebGPU submits them in one
  compute pass: the time of a submission and a map is spread over them). torch.matmul (cuBLAS,
  ``allow_tf32 = False``) is timed the same way. Errors are relative to a float64 product. The
  kernel's variants of the web bundle (``--variants``: other tilings, the untiled binding) are
  timed on webgpu too (the median of ``--inner`` timings each), as the browser's JIT would.
- BERT-base (tests/model_zoo.py, random weights) at ``--batch`` x ``--seq``: ``mod.run`` with numpy
  inputs and outputs on both tcomp targets, and torch eager with the same host tensors moved to the
  GPU and the output back, so all three pay the same transfers; each a wall time, synchronized.
  The largest difference of each output from torch's is printed.

Timing: ``--rounds`` interleaved rounds (one median of ``--inner`` runs per system per round) after
warm-up; the result is the median over rounds. ``mod.profile`` then lists the slowest kernels of each
tcomp target (per-kernel wall times, synchronized after each).
"""
from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))


def webgpu_adapter(software: bool) -> dict:
    """The adapter wgpu picked; exits where it is a software one (unless ``software``)."""
    from tcomp.targets.webgpu.device import adapter_info

    info = adapter_info()
    if info.get("adapter_type") == "CPU" and not software:
        sys.exit(f"webgpu_gpu: wgpu picked a software adapter ({info.get('device')}, {info.get('description')}); "
                 f"no GPU Vulkan driver was found (on NVIDIA: VK_DRIVER_FILES=.../nvidia_icd.json)")
    return info


def nvidia_driver() -> str:
    try:
        return subprocess.run(["nvidia-smi", "--query-gpu=name,driver_version", "--format=csv,noheader"],
                              capture_output=True, text=True, timeout=30).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "no nvidia-smi"


def interleaved(runners: dict, rounds: int, inner: int) -> dict:
    """{name: median over ``rounds`` of the median of ``inner`` calls of runners[name]() (seconds each)}."""
    samples = {name: [] for name in runners}
    for _ in range(rounds):
        for name, run in runners.items():
            samples[name].append(statistics.median(run() for _ in range(inner)))
    return {name: statistics.median(s) for name, s in samples.items()}


# ---------------------------------------------------------------- GEMM
def matmul_model(n: int):
    from onnx import TensorProto, helper

    inputs = [helper.make_tensor_value_info(name, TensorProto.FLOAT, [n, n]) for name in ("A", "B")]
    output = helper.make_tensor_value_info("C", TensorProto.FLOAT, [n, n])
    graph = helper.make_graph([helper.make_node("MatMul", ["A", "B"], ["C"])], "gemm", inputs, [output])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def gemm_runner(target: str, n: int, a: np.ndarray, b: np.ndarray, launches: int, built=None):
    """(seconds per GEMM function, C, schedule, module): the compiled MatMul's kernel (or ``built``),
    operands on the device."""
    import tcomp

    mod = tcomp.compile(matmul_model(n), target=target)
    (kernel,) = mod.kernels.values()
    built = built or tcomp.build(kernel.func, target=target)
    c = np.empty((n, n), np.float32)
    prepared, memory = built._prepare([a, b, c])
    if target == "webgpu":
        device = built.device

        def run():
            start = time.perf_counter()
            for _ in range(launches):
                for launch in prepared:
                    device.launch(*launch)
            device.synchronize()
            return (time.perf_counter() - start) / launches
    else:
        from tcomp.targets.cuda.driver import synchronize

        def run():
            synchronize()
            start = time.perf_counter()
            for _ in range(launches):
                built._launch(prepared)
            synchronize()
            return (time.perf_counter() - start) / launches
    run.memory = memory  # the device copies live as long as the runner
    return run, mod.run({"A": a, "B": b})[0], kernel.func.attrs.get("gpu_schedule"), mod


def webgpu_variants(mod, n: int, a, b, launches: int, count: int, rounds: int) -> list:
    """[(label, seconds)]: the GEMM kernel's web-bundle variants (``variants.py``) timed through wgpu."""
    from tcomp.targets.webgpu.kernel import WebGPUKernel
    from tcomp.targets.webgpu.variants import kernel_variants

    (kernel,) = mod.kernels.values()
    timed = []
    for variant in kernel_variants(kernel, mod.groups[kernel.groups[0]], count):
        built = WebGPUKernel(variant.program, [variant.shaders[k.name] for k in variant.program.kernels])
        run = gemm_runner("webgpu", n, a, b, launches, built)[0]
        run()
        timed.append((variant.label, statistics.median(run() for _ in range(rounds))))
    return timed


def gemm(args, targets: list, torch) -> dict:
    rng = np.random.default_rng(0)
    n = args.n
    a = rng.standard_normal((n, n)).astype(np.float32)
    b = rng.standard_normal((n, n)).astype(np.float32)
    reference = a.astype(np.float64) @ b.astype(np.float64)
    runners, errors, schedules = {}, {}, {}
    variants = []
    for target in targets:
        run, c, schedule, mod = gemm_runner(target, n, a, b, args.launches)
        runners[f"tcomp {target}"], schedules[target] = run, schedule
        errors[f"tcomp {target}"] = float(np.linalg.norm(c - reference) / np.linalg.norm(reference))
        if target == "webgpu" and args.variants > 1:
            variants = webgpu_variants(mod, n, a, b, args.launches, args.variants, args.inner)
    if torch is not None:
        torch.backends.cuda.matmul.allow_tf32 = False
        ta, tb = torch.from_numpy(a).cuda(), torch.from_numpy(b).cuda()

        def run_torch():
            torch.cuda.synchronize()
            start = time.perf_counter()
            for _ in range(args.launches):
                torch.matmul(ta, tb)
            torch.cuda.synchronize()
            return (time.perf_counter() - start) / args.launches
        runners["torch"] = run_torch
        errors["torch"] = float(np.linalg.norm(torch.matmul(ta, tb).double().cpu().numpy() - reference)
                                / np.linalg.norm(reference))
    for run in runners.values():  # warm-up
        run()
    seconds = interleaved(runners, args.rounds, args.inner)
    return {"n": n, "seconds": seconds, "tflops": {k: 2.0 * n ** 3 / s / 1e12 for k, s in seconds.items()},
            "rel_error": errors, "schedules": schedules,
            "webgpu_variants": [(label, 2.0 * n ** 3 / t / 1e12) for label, t in variants]}


# ---------------------------------------------------------------- BERT
def bert(args, targets: list, torch) -> dict:
    import tcomp
    from model_zoo import VOCAB_SIZES, build_torch_model, export_model

    path = export_model("bert", args.model_dir, small=args.small, dynamic=True)
    rng = np.random.default_rng(1)
    feeds = {"input_ids": rng.integers(0, VOCAB_SIZES[("bert", args.small)], (args.batch, args.seq)),
             "attention_mask": np.ones((args.batch, args.seq), np.int64)}
    shapes = {name: value.shape for name, value in feeds.items()}
    modules, compile_s = {}, {}
    for target in targets:
        start = time.perf_counter()
        modules[target] = tcomp.compile(str(path), target=target, input_shapes=shapes)
        compile_s[target] = time.perf_counter() - start
    runners = {}
    for target, mod in modules.items():
        def run(mod=mod):
            start = time.perf_counter()
            mod.run(feeds)  # synchronizes and downloads the outputs
            return time.perf_counter() - start
        runners[f"tcomp {target}"] = run
    if torch is not None:
        module = build_torch_model("bert", args.small).cuda()
        host = {name: torch.from_numpy(value) for name, value in feeds.items()}

        def run_torch():
            start = time.perf_counter()
            with torch.no_grad():
                out = module(*(t.cuda() for t in host.values()))
            out.cpu()
            return time.perf_counter() - start
        runners["torch eager"] = run_torch
        with torch.no_grad():
            reference = module(*(t.cuda() for t in host.values())).cpu().numpy()
    else:
        import onnxruntime as ort

        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        reference = session.run(None, feeds)[0]
    differences = {target: float(np.max(np.abs(mod.run(feeds)[0] - reference))) for target, mod in modules.items()}
    for run in runners.values():  # warm-up
        for _ in range(3):
            run()
    seconds = interleaved(runners, args.rounds, args.inner)
    profiles = {}
    for target, mod in modules.items():
        steps = mod.profile(feeds, repeat=5)
        by_schedule = {}
        for (name, _, t) in steps:
            how = mod.kernels[name].func.attrs.get("gpu_schedule", "?")
            by_schedule[how] = by_schedule.get(how, 0.0) + t
        profiles[target] = {"total_s": sum(t for _, _, t in steps), "by_schedule_s": by_schedule,
                            "slowest": sorted(([n, label, t] for n, label, t in steps), key=lambda r: -r[2])[:8]}
    return {"shape": [args.batch, args.seq], "small": args.small, "seconds": seconds, "compile_s": compile_s,
            "max_abs_diff": differences, "profiles": profiles}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=2048)
    parser.add_argument("--launches", type=int, default=10, help="GEMM launches per synchronization")
    parser.add_argument("--variants", type=int, default=8,
                        help="also time the GEMM kernel's web-bundle variants on webgpu (1: none)")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--seq", type=int, default=128)
    parser.add_argument("--small", action="store_true", help="the model zoo's 2-layer BERT instead of BERT-base")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--inner", type=int, default=5)
    parser.add_argument("--model-dir", default=str(Path(tempfile.gettempdir()) / "tcomp_zoo"))
    parser.add_argument("--software", action="store_true", help="accept a software WebGPU adapter (a dry run)")
    parser.add_argument("--json", help="also write the results here")
    args = parser.parse_args()

    adapter = webgpu_adapter(args.software)
    try:
        import torch
        if not torch.cuda.is_available():
            torch = None
    except ImportError:
        torch = None
    targets = ["cuda", "webgpu"] if torch is not None else ["webgpu"]
    info = {"webgpu_adapter": {k: adapter.get(k) for k in ("vendor", "device", "description", "adapter_type",
                                                             "backend_type")},
            "nvidia": nvidia_driver(), "torch": torch.__version__ if torch is not None else None}
    print(json.dumps(info), flush=True)
    results = {"info": info, "gemm": gemm(args, targets, torch)}
    g = results["gemm"]
    print(f"\nGEMM {args.n}^3 fp32 (schedules {g['schedules']}), median of {args.rounds} interleaved rounds x "
          f"{args.inner} x {args.launches} launches", flush=True)
    for name, tflops in g["tflops"].items():
        print(f"  {name:14} {g['seconds'][name] * 1e3:9.3f} ms {tflops:7.2f} TFLOP/s   rel err "
              f"{g['rel_error'][name]:.1e}", flush=True)
    if "tcomp cuda" in g["tflops"]:
        print(f"  webgpu / cuda: {g['tflops']['tcomp webgpu'] / g['tflops']['tcomp cuda']:.2f}", flush=True)
    for label, tflops in g["webgpu_variants"]:
        print(f"  webgpu variant {tflops:7.2f} TFLOP/s  {label}", flush=True)
    results["bert"] = r = bert(args, targets, torch)
    print(f"\nBERT-{'2-layer' if args.small else 'base'} fp32 batch {args.batch} x {args.seq}, host inputs and "
          f"outputs, median of {args.rounds} interleaved rounds x {args.inner} runs; compile "
          + ", ".join(f"{t} {s:.0f} s" for t, s in r["compile_s"].items()), flush=True)
    for name, seconds in r["seconds"].items():
        target = name.split()[-1]
        diff = f"   max |diff| {r['max_abs_diff'][target]:.1e}" if target in r["max_abs_diff"] else ""
        print(f"  {name:14} {seconds * 1e3:9.2f} ms{diff}", flush=True)
    if "tcomp cuda" in r["seconds"]:
        print(f"  webgpu / cuda speed: {r['seconds']['tcomp cuda'] / r['seconds']['tcomp webgpu']:.2f}", flush=True)
    for target, p in r["profiles"].items():
        print(f"  {target} kernels: {p['total_s'] * 1e3:.2f} ms in all; by schedule "
              + ", ".join(f"{k} {v * 1e3:.2f}" for k, v in sorted(p["by_schedule_s"].items())), flush=True)
        for name, label, t in p["slowest"]:
            print(f"    {t * 1e3:8.3f} ms  {name} ({label})", flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
