// tcomp.js: runs a model that tcomp exported (mod.export_web) on WebGPU. One ES module, no dependencies.
//
//   import * as tcomp from "./out_dir/tcomp.js";
//   const model = await tcomp.load("./out_dir/");           // compiles the shaders; tunes (first load only)
//   const outputs = await model.run({input: float32Array}); // {name: {data: Float32Array, shape, dtype}}
//   model.report();                                         // the variant kept per kernel, and its times
//
// The bundle's manifest.json is a resolved plan: four GPU buffers (weights, arena, inputs, outputs),
// and per step the dispatches of each variant of its kernel, with buffer bindings (region, offset,
// size) and workgroup counts. On first load every variant of a kernel that has several is timed on
// this GPU (compiled when its turn comes) and the fastest kept; the choice is cached in localStorage under the adapter and the
// kernel's hash, so the next load compiles only the kept variants and times nothing.

const FORMAT = "tcomp-web/1";
const ARRAYS = {
  float32: Float32Array, int32: Int32Array, int64: BigInt64Array, uint32: Uint32Array, uint64: BigUint64Array,
  int16: Int16Array, uint16: Uint16Array, int8: Int8Array, uint8: Uint8Array, bool: Uint8Array,
  float16: Uint16Array, bfloat16: Uint16Array,  // 16-bit floats as their bits
};
const LIMITS = ["maxComputeInvocationsPerWorkgroup", "maxComputeWorkgroupSizeX", "maxComputeWorkgroupSizeY",
  "maxComputeWorkgroupSizeZ", "maxComputeWorkgroupStorageSize", "maxStorageBuffersPerShaderStage",
  "maxStorageBufferBindingSize", "maxBufferSize"];
const CACHE_PREFIX = "tcomp-jit:";

/** An error of the runtime: bad inputs, a bundle this runtime cannot run, a shader that does not compile. */
export class TcompError extends Error {
  constructor(message) { super(message); this.name = "TcompError"; }
}

/**
 * Loads the bundle at `url` (a folder with manifest.json). Options: `tune` (default true: time the
 * variants not cached), `tuneBudgetMs` (default 25000, checked before each variant, so that tuning ends
 * within 30 s: past it, the kernels not timed keep their best variant so far, also cached),
 * `runs` (timed runs per variant, default 3), `cache` (default true: read and write the
 * cached choices).
 */
export async function load(url, options = {}) {
  const opts = { tune: true, tuneBudgetMs: 25000, runs: 3, cache: true, ...options };
  const base = url.endsWith("/") ? url : url + "/";
  const started = performance.now();
  const manifest = await fetchOk(base + "manifest.json").then((r) => r.json());
  if (manifest.format !== FORMAT) {
    throw new TcompError(`${base}manifest.json: format ${manifest.format}, this runtime reads ${FORMAT}`);
  }
  if (!globalThis.navigator || !navigator.gpu) {
    throw new TcompError("WebGPU is not available here (navigator.gpu is missing: an old browser, a page not "
      + "served over https or localhost, or WebGPU disabled)");
  }
  const adapter = await navigator.gpu.requestAdapter({ powerPreference: "high-performance" });
  if (!adapter) throw new TcompError("WebGPU: no adapter (no GPU driver the browser accepts)");
  const requiredLimits = {};
  for (const name of LIMITS) requiredLimits[name] = adapter.limits[name];
  const device = await adapter.requestDevice({ requiredLimits });
  const info = adapter.info || {};
  const adapterKey = [info.vendor, info.architecture, info.device, info.description].join("/");
  const weights = await fetchOk(base + manifest.weights).then((r) => r.arrayBuffer());
  if (weights.byteLength !== manifest.regions.weights) {
    throw new TcompError(`${base}${manifest.weights}: ${weights.byteLength} bytes, the manifest says `
      + `${manifest.regions.weights}`);
  }
  const model = new Model(manifest, device, adapterKey, info);
  model._upload("weights", 0, new Uint8Array(weights));
  const picks = opts.cache ? model._cachedPicks() : {};
  await model._compile(base, picks);
  model.loadMs = performance.now() - started;
  if (opts.tune) await model._tune(picks, opts);
  return model;
}

class Model {
  constructor(manifest, device, adapterKey, adapterInfo) {
    this.manifest = manifest;
    this.device = device;
    this.adapterKey = adapterKey;
    this.adapter = { vendor: adapterInfo.vendor, architecture: adapterInfo.architecture,
      device: adapterInfo.device, description: adapterInfo.description };
    this.inputNames = manifest.inputs.map((t) => t.name);
    this.outputNames = manifest.outputs.map((t) => t.name);
    const usage = GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC | GPUBufferUsage.COPY_DST;
    this.buffers = {};
    for (const [region, bytes] of Object.entries(manifest.regions)) {
      this.buffers[region] = device.createBuffer({ size: Math.max(256, bytes), usage, label: region });
    }
    this.readback = device.createBuffer({ size: Math.max(256, manifest.regions.outputs),
      usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST });
    this.pipelines = {};  // shader name -> GPUComputePipeline
    this.picks = {};      // kernel -> {index, source, ms: [per variant]}; source: "single" (one variant),
                          // "cached", "timed", "budget" (tuning ran out of time), "untuned" (tune: false)
    this.tuneMs = 0;
    this._queue = Promise.resolve();  // runs one at a time (they share the buffers)
  }

  /** Runs the model: `feeds` maps every input name to a typed array of its dtype and size. */
  run(feeds) {
    this._checkFeeds(feeds);
    const result = this._queue.then(() => this._run(feeds));
    this._queue = result.catch(() => {});
    return result;
  }

  /** The variant kept per kernel, with each variant's median milliseconds where timed; printed too. */
  report() {
    const kernels = Object.entries(this.manifest.kernels).map(([name, kernel]) => {
      const pick = this.picks[name];
      return { kernel: name, ops: kernel.ops, variants: kernel.variants.length, picked: pick.index,
        label: kernel.variants[pick.index], source: pick.source, ms: pick.ms };
    });
    const report = { adapter: this.adapter, loadMs: this.loadMs, tuneMs: this.tuneMs, kernels };
    console.log(`tcomp: loaded in ${this.loadMs.toFixed(0)} ms, tuned in ${this.tuneMs.toFixed(0)} ms on `
      + `${this.adapterKey}`);
    for (const k of kernels) {
      const times = k.ms ? k.ms.map((t) => (t === null ? "-" : t.toFixed(3))).join(" ") : "";
      console.log(`  ${k.kernel} (${k.ops}): variant ${k.picked}/${k.variants} [${k.source}] ${k.label} ${times}`);
    }
    return report;
  }

  // ------------------------------------------------------------------ inputs and outputs
  _checkFeeds(feeds) {
    if (feeds === null || typeof feeds !== "object") {
      throw new TcompError(`run() takes an object {input name: typed array}; the inputs are ${this.inputNames}`);
    }
    const unknown = Object.keys(feeds).filter((name) => !this.inputNames.includes(name));
    if (unknown.length) {
      throw new TcompError(`unknown input name(s) ${unknown.join(", ")}; the model's inputs are `
        + `${this.inputNames.join(", ")}`);
    }
    for (const spec of this.manifest.inputs) {
      const value = feeds[spec.name];
      const want = ARRAYS[spec.dtype];
      const describe = `${spec.dtype}[${spec.shape.join(", ")}]`;
      if (value === undefined) throw new TcompError(`missing input '${spec.name}' (${describe})`);
      if (!(value instanceof want)) {
        const got = value && value.constructor ? value.constructor.name : typeof value;
        throw new TcompError(`input '${spec.name}': expected a ${want.name} (${describe}), got ${got}`);
      }
      const count = spec.shape.reduce((a, b) => a * b, 1);
      if (value.length !== count) {
        throw new TcompError(`input '${spec.name}': ${value.length} elements, expected ${count} (${describe})`);
      }
      if (spec.dtype === "int64" || spec.dtype === "uint64") {
        const [low, high] = spec.dtype === "int64" ? [-(2n ** 31n), 2n ** 31n - 1n] : [0n, 2n ** 32n - 1n];
        const bad = value.findIndex((v) => v < low || v > high);
        if (bad >= 0) {
          throw new TcompError(`input '${spec.name}': ${spec.dtype} value ${value[bad]} at index ${bad} does not fit `
            + `32 bits (WebGPU computes ${spec.dtype} in 32 bits)`);
        }
      }
    }
  }

  async _run(feeds) {
    for (const spec of this.manifest.inputs) {
      const value = feeds[spec.name];
      this._upload("inputs", spec.offset, new Uint8Array(value.buffer, value.byteOffset, value.byteLength));
    }
    const encoder = this.device.createCommandEncoder();
    const pass = encoder.beginComputePass();
    for (const step of this.manifest.steps) this._dispatch(pass, step, this.picks[step.kernel].index);
    pass.end();
    for (const out of this.manifest.outputs) {
      if (out.copy_from && out.bytes) {
        encoder.copyBufferToBuffer(this.buffers[out.copy_from.region], out.copy_from.offset, this.buffers.outputs,
          out.offset, pad4(out.bytes));
      }
    }
    encoder.copyBufferToBuffer(this.buffers.outputs, 0, this.readback, 0, this.manifest.regions.outputs);
    this.device.queue.submit([encoder.finish()]);
    await this.readback.mapAsync(GPUMapMode.READ);
    const bytes = this.readback.getMappedRange();
    const outputs = {};
    for (const out of this.manifest.outputs) {
      const Array = ARRAYS[out.dtype];
      const data = new Array(bytes.slice(out.offset, out.offset + out.bytes));
      outputs[out.name] = { data, shape: out.shape, dtype: out.dtype };
    }
    this.readback.unmap();
    return outputs;
  }

  _upload(region, offset, bytes) {
    if (bytes.byteLength % 4) {  // writeBuffer writes whole words
      const padded = new Uint8Array(pad4(bytes.byteLength));
      padded.set(bytes);
      bytes = padded;
    }
    if (bytes.byteLength) this.device.queue.writeBuffer(this.buffers[region], offset, bytes);
  }

  // ------------------------------------------------------------------ shaders and dispatches
  /** Compiles the variant to run of every kernel: the cached pick, else the first (the compiled one). */
  async _compile(base, picks) {
    this.base = base;
    this.bindGroups = new Map();  // launch -> GPUBindGroup, made on first dispatch
    for (const name of Object.keys(this.manifest.kernels)) {
      this.picks[name] = picks[name] || { index: 0, source: "untuned", ms: null };
    }
    await Promise.all(this.manifest.steps.map((step) => this._compileVariant(step, this.picks[step.kernel].index)));
  }

  _compileVariant(step, variant) {
    const names = step.variants[variant].map((launch) => launch.shader).filter((name) => !this.pipelines[name]);
    return Promise.all(names.map((name) => {
      this.pipelines[name] = this._pipeline(this.base, name);  // a promise until compiled
      return this.pipelines[name].then((pipeline) => { this.pipelines[name] = pipeline; });
    }));
  }

  async _pipeline(base, name) {
    const shader = this.manifest.shaders[name];
    const code = await fetchOk(base + shader.file).then((r) => r.text());
    this.device.pushErrorScope("validation");
    const module = this.device.createShaderModule({ label: name, code });
    const info = await module.getCompilationInfo();
    const scope = await this.device.popErrorScope();
    const errors = info.messages.filter((m) => m.type === "error");
    if (errors.length || scope) {
      const log = errors.map((m) => `  ${shader.file}:${m.lineNum}:${m.linePos}: ${m.message}`).join("\n");
      throw new TcompError(`kernel ${name}: the WGSL shader does not compile:\n${log || scope.message}`);
    }
    try {
      return await this.device.createComputePipelineAsync({ label: name, layout: "auto",
        compute: { module, entryPoint: name } });
    } catch (error) {
      throw new TcompError(`kernel ${name}: no compute pipeline: ${error.message}`);
    }
  }

  _dispatch(pass, step, variant) {
    for (const launch of step.variants[variant]) {
      const pipeline = this.pipelines[launch.shader];
      pass.setPipeline(pipeline);
      pass.setBindGroup(0, this._bindGroup(launch, pipeline));
      pass.dispatchWorkgroups(...launch.dispatch);
    }
  }

  _bindGroup(launch, pipeline) {
    let group = this.bindGroups.get(launch);
    if (group) return group;
    const entries = launch.buffers.map(([region, offset, size], binding) => ({ binding,
      resource: { buffer: this.buffers[region], offset, size } }));
    if (this.manifest.shaders[launch.shader].uniform) {  // the size variables, as i32
      const sizes = new Int32Array(Math.max(4, Math.ceil(launch.sizes.length / 4) * 4));
      sizes.set(launch.sizes);
      const buffer = this.device.createBuffer({ size: sizes.byteLength, usage: GPUBufferUsage.UNIFORM,
        mappedAtCreation: true });
      new Int32Array(buffer.getMappedRange()).set(sizes);
      buffer.unmap();
      entries.push({ binding: entries.length, resource: { buffer } });
    }
    group = this.device.createBindGroup({ layout: pipeline.getBindGroupLayout(0), entries });
    this.bindGroups.set(launch, group);
    return group;
  }

  // ------------------------------------------------------------------ the JIT: timing variants
  _cacheKey(kernel) { return `${CACHE_PREFIX}${this.adapterKey}:${kernel}:${this.manifest.kernels[kernel].hash}`; }

  _cachedPicks() {
    const picks = {};
    const storage = globalThis.localStorage;
    if (!storage) return picks;
    for (const [name, kernel] of Object.entries(this.manifest.kernels)) {
      const saved = JSON.parse(storage.getItem(this._cacheKey(name)) || "null");
      if (saved && saved.index < kernel.variants.length) {
        picks[name] = { index: saved.index, source: "cached", ms: saved.ms };
      }
    }
    return picks;
  }

  /**
   * Compiles and times the variants of every kernel not in `picks` (on its first step), keeps the
   * fastest. The slowest kernels (by one run of their first variant) go first: they gain most from
   * the time budget.
   */
  async _tune(picks, opts) {
    const started = performance.now();
    const order = [];
    for (const [name, kernel] of Object.entries(this.manifest.kernels)) {
      if (picks[name]) continue;
      if (kernel.variants.length === 1) { this.picks[name] = { index: 0, source: "single", ms: null }; continue; }
      const step = this.manifest.steps.find((s) => s.kernel === name);
      order.push({ name, step, ms: await this._time(step, 0) });
    }
    order.sort((a, b) => b.ms - a.ms);
    for (const { name, step } of order) {
      const kernel = this.manifest.kernels[name];
      const ms = kernel.variants.map(() => null);
      let best = 0;
      let source = "timed";
      for (let v = 0; v < kernel.variants.length; v++) {
        if (performance.now() - started > opts.tuneBudgetMs) { source = "budget"; break; }
        await this._compileVariant(step, v);
        const first = await this._time(step, v);  // a warm-up run, also a first estimate
        if (ms[best] !== null && first > 4 * ms[best]) { continue; }  // far slower: not worth more runs
        const runs = [];
        for (let r = 0; r < opts.runs; r++) runs.push(await this._time(step, v));
        ms[v] = median(runs);
        if (ms[v] < ms[best] || ms[best] === null) best = v;
      }
      this.picks[name] = { index: ms[best] === null ? 0 : best, source, ms };
      if (opts.cache && globalThis.localStorage) {  // a pick cut short by the budget too: later loads time nothing
        localStorage.setItem(this._cacheKey(name), JSON.stringify({ index: best, ms }));
      }
    }
    this.tuneMs = performance.now() - started;
  }

  async _time(step, variant) {
    const encoder = this.device.createCommandEncoder();
    const pass = encoder.beginComputePass();
    this._dispatch(pass, step, variant);
    pass.end();
    const start = performance.now();
    this.device.queue.submit([encoder.finish()]);
    await this.device.queue.onSubmittedWorkDone();
    return performance.now() - start;
  }
}

async function fetchOk(url) {
  const response = await fetch(url);
  if (!response.ok) throw new TcompError(`${url}: HTTP ${response.status} ${response.statusText}`);
  return response;
}

function pad4(n) { return Math.ceil(n / 4) * 4; }

function median(values) {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)];
}
