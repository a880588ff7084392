"""Headless Chromium (apt's, driven by playwright) on web bundles served from 127.0.0.1: what the
browser test and ``benchmarks/web_browser.py`` share.

    with BrowserSession(root) as browser:        # serves ``root``; WebGPU on the browser's adapter
        result = browser.load_and_run("bundle", {"x": x})   # a fresh page of one browser profile
        result["outputs"]["y"]  -> numpy array; result["report"] -> model.report(); result["ms"]

A page is a secure context only over https or localhost, and WebGPU needs one; on a machine with
no GPU, Chromium's WebGPU (Dawn) runs on SwiftShader's Vulkan.
"""
from __future__ import annotations

import base64
import functools
import http.server
import os
import threading
from pathlib import Path

import numpy as np

CHROMIUM = "/usr/bin/chromium"
FLAGS = ["--enable-unsafe-webgpu", "--no-sandbox"]

# In the page: loads the bundle, reads the inputs from files next to it, runs `runs` times.
RUN_SCRIPT = """
async ({bundle, feeds, runs, options}) => {
  const tcomp = await import(`/${bundle}/tcomp.js`);
  const started = performance.now();
  const model = await tcomp.load(`/${bundle}/`, options);
  const loadMs = performance.now() - started;
  const types = {float32: Float32Array, int64: BigInt64Array, int32: Int32Array, uint8: Uint8Array,
                 bool: Uint8Array, float64: Float64Array};
  const inputs = {};
  for (const [name, {file, dtype}] of Object.entries(feeds)) {
    inputs[name] = new types[dtype](await (await fetch(`/${file}`)).arrayBuffer());
  }
  const ms = [];
  let outputs;
  for (let r = 0; r < runs; r++) {
    const t = performance.now();
    outputs = await model.run(inputs);
    ms.push(performance.now() - t);
  }
  const encoded = {};
  for (const [name, out] of Object.entries(outputs)) {
    const bytes = new Uint8Array(out.data.buffer, out.data.byteOffset, out.data.byteLength);
    let text = "";
    for (let i = 0; i < bytes.length; i += 8192) text += String.fromCharCode(...bytes.subarray(i, i + 8192));
    encoded[name] = {shape: out.shape, dtype: out.dtype, base64: btoa(text)};
  }
  return {loadMs, ms, report: model.report(), outputs: encoded};
}
"""

PROBE_SCRIPT = """
async () => {
  if (!navigator.gpu) return "navigator.gpu is missing";
  const adapter = await navigator.gpu.requestAdapter();
  return adapter ? "" : "navigator.gpu.requestAdapter() gave no adapter";
}
"""


def unavailable() -> str:
    """Why no browser test can run here ("" where one can): no chromium, no playwright."""
    if not os.path.exists(CHROMIUM):
        return f"no {CHROMIUM} (apt-get install chromium)"
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "playwright is not installed (pip install 'tcomp[web]')"
    return ""


class _Handler(http.server.SimpleHTTPRequestHandler):
    """Files of ``root``, never cached by the browser (tests rewrite bundles and inputs in place), no log."""

    def end_headers(self):
        self.send_header("Cache-Control", "no-store")
        super().end_headers()

    def log_message(self, *args):
        pass


class BrowserSession:
    """A local http server on ``root`` and one headless Chromium profile (its localStorage outlives pages)."""

    def __init__(self, root):
        self.root = Path(root)
        self.console: list = []

    def __enter__(self):
        from playwright.sync_api import sync_playwright

        handler = functools.partial(_Handler, directory=str(self.root))
        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        (self.root / "index.html").write_text("<!doctype html><title>tcomp</title>")
        self._playwright = sync_playwright().start()
        self.browser = self._playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=FLAGS)
        self.context = self.browser.new_context()
        return self

    def __exit__(self, *exc):
        self.browser.close()
        self._playwright.stop()
        self.server.shutdown()
        self.server.server_close()

    def open_page(self, timeout_ms: int = 600_000):
        """A fresh page of the profile at the server's index (console lines kept)."""
        page = self.context.new_page()
        page.set_default_timeout(timeout_ms)
        page.on("console", lambda message: self.console.append(message.text))
        page.goto(f"{self.url}/index.html")
        return page

    def evaluate(self, script: str, arg=None):
        """``script`` (an async JS function) run in a fresh page of the profile."""
        page = self.open_page()
        try:
            return page.evaluate(script, arg)
        finally:
            page.close()

    def webgpu_missing(self) -> str:
        return self.evaluate(PROBE_SCRIPT)

    def load_and_run(self, bundle: str, feeds: dict, runs: int = 1, options: dict | None = None) -> dict:
        """Loads ``root/bundle`` in a fresh page and runs it on ``feeds`` (numpy arrays, written next to it)."""
        files = {}
        for name, array in feeds.items():
            path = self.root / bundle / "feeds" / f"{name}.bin"
            path.parent.mkdir(exist_ok=True)
            path.write_bytes(np.ascontiguousarray(array).tobytes())
            files[name] = {"file": f"{bundle}/feeds/{name}.bin", "dtype": array.dtype.name}
        result = self.evaluate(RUN_SCRIPT, {"bundle": bundle, "feeds": files, "runs": runs, "options": options or {}})
        result["outputs"] = {name: _decode(out) for name, out in result["outputs"].items()}
        return result


def _decode(out: dict) -> np.ndarray:
    dtype = {"bool": np.bool_, "float16": np.uint16, "bfloat16": np.uint16}.get(out["dtype"], out["dtype"])
    return np.frombuffer(base64.b64decode(out["base64"]), dtype=dtype).reshape(out["shape"])
