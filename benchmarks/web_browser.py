"""A web bundle in headless Chromium: load time, JIT tuning time and run latency (ResNet-18 by default).

    python benchmarks/web_browser.py [--model resnet18] [--small] [--runs 10] [--variants 8]

Exports the model zoo's model compiled for ``webgpu`` (``mod.export_web``), serves it on 127.0.0.1
and, in one fresh browser profile (apt's chromium through playwright, WebGPU on the browser's
adapter: SwiftShader on a machine without a GPU):

1. first load: the variants of the heavy kernels compiled and timed within the runtime's budget
   (``tuneMs``), then the picked variants' shaders compiled (``loadMs``, tuning aside);
2. ``--runs`` runs after 2 warm-up runs: the median latency of ``model.run`` (upload, dispatches,
   download), and the largest difference from onnxruntime;
3. second load (same profile): the cached choices, no timing.

onnxruntime (CPU, this process) is timed on the same inputs in the same run, interleaved with the
browser's batches, as the peer figure.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

LOAD = """
async ({bundle, feeds}) => {
  const tcomp = await import(`/${bundle}/tcomp.js`);
  window.model = await tcomp.load(`/${bundle}/`);   // cached choices: no timing
  const types = {float32: Float32Array, int64: BigInt64Array};
  window.inputs = {};
  for (const [name, {file, dtype}] of Object.entries(feeds)) {
    window.inputs[name] = new types[dtype](await (await fetch(`/${file}`)).arrayBuffer());
  }
}
"""
RUN = "async () => { const t = performance.now(); await window.model.run(window.inputs); return performance.now() - t; }"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="resnet18")
    parser.add_argument("--small", action="store_true", help="the model zoo's small configuration")
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--variants", type=int, default=8)
    parser.add_argument("--zoo-dir", default=str(Path(tempfile.gettempdir()) / "tcomp_zoo"))
    args = parser.parse_args()

    import onnx
    import onnxruntime as ort

    import tcomp
    from model_zoo import export_model, random_inputs
    from web_browser_helpers import BrowserSession, unavailable

    reason = unavailable()
    if reason:
        sys.exit(f"web_browser: {reason}")
    path = export_model(args.model, args.zoo_dir, small=args.small)
    feeds = random_inputs(str(path), np.random.default_rng(0))
    start = time.perf_counter()
    mod = tcomp.compile(str(path), target="webgpu")
    compile_s = time.perf_counter() - start
    session = ort.InferenceSession(onnx.load(str(path)).SerializeToString(), providers=["CPUExecutionProvider"])
    want = session.run(None, feeds)

    with tempfile.TemporaryDirectory() as root, BrowserSession(root) as browser:
        start = time.perf_counter()
        mod.export_web(Path(root) / "bundle", variants=args.variants)
        export_s = time.perf_counter() - start
        first = browser.load_and_run("bundle", feeds, runs=1)
        report = first["report"]
        diff = max(float(np.max(np.abs(got.astype(np.float64) - ref)))
                   for got, ref in zip(first["outputs"].values(), want))
        second = browser.load_and_run("bundle", feeds, runs=1)
        files = {name: {"file": f"bundle/feeds/{name}.bin", "dtype": array.dtype.name} for name, array in feeds.items()}
        page = browser.open_page()
        page.evaluate(LOAD, {"bundle": "bundle", "feeds": files})
        for _ in range(2):  # warm-up
            page.evaluate(RUN)
        ours, peer = [], []
        for _ in range(args.runs):  # interleaved: one browser run, one onnxruntime run
            ours.append(page.evaluate(RUN))
            start = time.perf_counter()
            session.run(None, feeds)
            peer.append((time.perf_counter() - start) * 1e3)
        page.close()

    kernels = report["kernels"]
    tuned = [k for k in kernels if k["variants"] > 1]
    print(f"{args.model}{' (small)' if args.small else ''} in headless Chromium on "
          f"{'/'.join(v for v in report['adapter'].values() if v)}")
    print(f"compile {compile_s:.1f} s, export {export_s:.1f} s; kernels {len(kernels)}, with variants {len(tuned)} "
          f"({sum(k['variants'] for k in tuned)} variants)")
    sources = {source: sum(k["source"] == source for k in tuned) for source in ("timed", "budget", "inferred")}
    print(f"first load   {report['loadMs'] / 1e3:7.2f} s (weights, shaders of the picked variants; tuning aside)")
    print(f"JIT tuning   {report['tuneMs'] / 1e3:7.2f} s (kernels: all variants timed {sources['timed']}, some "
          f"{sources['budget']}, none: inferred from the others' picks {sources['inferred']})")
    print(f"second load  {second['report']['loadMs'] / 1e3:7.2f} s (cached choices; tuning "
          f"{second['report']['tuneMs'] / 1e3:.2f} s)")
    print(f"run latency  {statistics.median(ours):9.1f} ms median of {args.runs} (after 2 warm-up runs)")
    print(f"onnxruntime  {statistics.median(peer):9.1f} ms median (CPU, same run); ratio tcomp-web/ort "
          f"{statistics.median(ours) / statistics.median(peer):.2f}")
    print(f"max |tcomp-web - onnxruntime| = {diff:.2e}")
    for k in kernels:
        print(f"  {k['kernel']:<28} {k['ops'][:30]:<30} variant {k['picked']}/{k['variants']} [{k['source']}]")


if __name__ == "__main__":
    main()
