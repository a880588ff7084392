// tcomp.js: runs a model that tcomp exported (mod.export_web) on WebGPU. One ES module, no dependencies.
//
//   import * as tcomp from "./out_dir/tcomp.js";
//   const model = await tcomp.load("./out_dir/");           // tunes (first load only), compiles the shaders
//   const outputs = await model.run({input: float32Array}); // {name: {data: Float32Array, shape, dtype}}
//   model.report();                                         // the variant kept per kernel, and its times
//
// The bundle's manifest.json is a resolved plan: four GPU buffers (weights, arena, inputs, outputs),
// and per step the dispatches of each variant of its kernel, with buffer bindings (region, offset,
// size) and workgroup counts. On first load the variants of the kernels that have several are timed
// on this GPU within a time budget (heaviest kernels first, by the manifest's `work`) and the fastest
// kept; the choice is cached in localStorage under the adapter and the kernel's hash, so the next
// load compiles only the kept variants and times nothing.
//
// Timing a variant: each of its dispatches is first run on a slice of its workgroups (1, 8, 64, ...)
// until a slice takes SLICE_MS more than an empty submission or the slice is the whole grid. A
// variant whose dispatches all ran whole (any kernel on a real GPU) is then timed `runs` times as it
// runs in the model (median); on a slow device (a software one) its time is the slices' times, less
// an empty submission's, scaled to the whole grids. A variant stops being timed once it is 4x slower
// than the kernel's best. Kernels the budget leaves untimed take the variant (by label) that won
// most often among the timed ones.

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
const SLICE_MS = 4;      // a slice of a dispatch this long is scaled up to the whole grid
const SLICE_GROWTH = 8;  // workgroups of the next slice, times those of the last
const FAR_SLOWER = 4;    // a variant this much slower than the kernel's best is not timed further

/** An error of the runtime: bad inputs, a bundle this runtime cannot run, a shader that does not compile. */
export class TcompError extends Error {
  constructor(message) { super(message); this.name = "TcompError"; }
}

/**
 * Loads the bundle at `url` (a folder with manifest.json). Options: `tune` (default true: time the
 * variants not cached), `tuneBudgetMs` (default 25000: no timing starts past it, nor a variant when
 * less is left than a variant's compile and timing took so far, the median: tuning ends within 30 s), `runs`
 * (timed runs per variant, default 3), `cache` (default true: read and write the cached choices).
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
  model._start(base, picks);
  if (opts.tune) await model._tune(picks, opts);
  await Promise.all(model.manifest.steps.map((step) => model._compileVariant(step, model.picks[step.kernel].index)));
  model.loadMs = performance.now() - started - model.tuneMs;
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
    // a status word per shader that checks its int64 arithmetic (256 bytes apart: the offset alignment);
    // a shader sets its word where an int64 result left 32 bits, and _run refuses the run
    this.statusShaders = Object.keys(manifest.shaders).filter((name) => manifest.shaders[name].status);
    const statusBytes = 256 * Math.max(1, this.statusShaders.length);
    this.status = device.createBuffer({ size: statusBytes, usage, label: "status" });
    this.statusReadback = device.createBuffer({ size: statusBytes,
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
    const checked = this.statusShaders.length > 0;
    if (checked) this.device.queue.writeBuffer(this.status, 0, new Uint8Array(this.status.size));
    const encoder = this.device.createCommandEncoder();
    const pass = encoder.beginComputePass();
    for (const step of this.manifest.steps) this._dispatch(pass, step, this.picks[step.kernel].index);
    pass.end();
    if (checked) encoder.copyBufferToBuffer(this.status, 0, this.statusReadback, 0, this.status.size);
    for (const out of this.manifest.outputs) {
      if (out.copy_from && out.bytes) {
        encoder.copyBufferToBuffer(this.buffers[out.copy_from.region], out.copy_from.offset, this.buffers.outputs,
          out.offset, pad4(out.bytes));
      }
    }
    encoder.copyBufferToBuffer(this.buffers.outputs, 0, this.readback, 0, this.manifest.regions.outputs);
    this.device.queue.submit([encoder.finish()]);
    if (checked) {
      await this.statusReadback.mapAsync(GPUMapMode.READ);
      const words = new Uint32Array(this.statusReadback.getMappedRange().slice(0));
      this.statusReadback.unmap();
      const failed = this.statusShaders.find((_, slot) => words[slot * 64] !== 0);
      if (failed) {
        await this.readback.mapAsync(GPUMapMode.READ);  // the outputs' copy was submitted: let it end
        this.readback.unmap();
        throw new TcompError(`kernel ${failed}: int64 results beyond 32 bits (WebGPU computes int64 in 32 bits: `
          + "the inputs fit, a result computed from them does not)");
      }
    }
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
  /**
   * Starts with the cached picks, else the first variant of every kernel (the one compiled in
   * Python) that fits this device's workgroup limits; a kernel with none that fits is an error.
   */
  _start(base, picks) {
    this.base = base;
    this.bindGroups = new Map();  // launch -> GPUBindGroup, made on first dispatch
    for (const [name, kernel] of Object.entries(this.manifest.kernels)) {
      const step = this.manifest.steps.find((s) => s.kernel === name);
      const index = step ? kernel.variants.findIndex((_, v) => this._fits(step, v)) : 0;
      if (index < 0) {
        const limits = ["maxComputeInvocationsPerWorkgroup", "maxComputeWorkgroupSizeX", "maxComputeWorkgroupSizeY",
          "maxComputeWorkgroupSizeZ"].map((k) => `${k} ${this.device.limits[k]}`).join(", ");
        throw new TcompError(`kernel ${name}: every variant's workgroups are larger than this device allows (${limits})`);
      }
      this.picks[name] = picks[name] || { index, source: "untuned", ms: null };
    }
  }

  /** Whether every dispatch of `variant` of `step` has workgroups within this device's limits. */
  _fits(step, variant) {
    const limits = this.device.limits;
    return step.variants[variant].every((launch) => {
      const [x, y, z] = this.manifest.shaders[launch.shader].workgroup;
      return x * y * z <= limits.maxComputeInvocationsPerWorkgroup && x <= limits.maxComputeWorkgroupSizeX
        && y <= limits.maxComputeWorkgroupSizeY && z <= limits.maxComputeWorkgroupSizeZ;
    });
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
    // pushed and popped with no await between: kernels compile concurrently, and a scope popped
    // after an await would be another kernel's (its error then named this kernel)
    this.device.pushErrorScope("validation");
    const module = this.device.createShaderModule({ label: name, code });
    const popped = this.device.popErrorScope();
    const info = await module.getCompilationInfo();
    const scope = await popped;
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
    for (const launch of step.variants[variant]) this._dispatchLaunch(pass, launch, launch.dispatch);
  }

  _dispatchLaunch(pass, launch, groups) {
    const pipeline = this.pipelines[launch.shader];
    pass.setPipeline(pipeline);
    pass.setBindGroup(0, this._bindGroup(launch, pipeline));
    pass.dispatchWorkgroups(...groups);
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
    if (this.manifest.shaders[launch.shader].status) {
      const slot = this.statusShaders.indexOf(launch.shader);
      entries.push({ binding: entries.length, resource: { buffer: this.status, offset: 256 * slot, size: 4 } });
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
   * fastest. The heaviest kernels (the manifest's `work`) go first: they gain most from the budget.
   * Within a kernel, the smallest shaders go first (the cheapest to compile: on a software adapter
   * compiling a tiled variant takes seconds, timing its slices a fraction of that).
   */
  async _tune(picks, opts) {
    const started = performance.now();
    const budget = { deadline: started + opts.tuneBudgetMs, costs: [], overhead: 0 };
    const empty = [];
    for (let r = 0; r < 5; r++) empty.push(await this._timed(budget, () => {}));
    budget.overhead = empty.includes(null) ? 0 : median(empty);  // a submission that dispatches nothing
    const order = Object.entries(this.manifest.kernels).filter(([name]) => !picks[name])
      .sort((a, b) => b[1].work - a[1].work);
    const untimed = [];
    for (const [name, kernel] of order) {
      if (kernel.variants.length === 1) { this.picks[name] = { index: 0, source: "single", ms: null }; continue; }
      const step = this.manifest.steps.find((s) => s.kernel === name);
      const ms = kernel.variants.map(() => null);
      const variants = kernel.variants.map((_, v) => v).filter((v) => this._fits(step, v))
        .sort((a, b) => this._bytes(step, a) - this._bytes(step, b) || a - b);
      let best = null;
      let cut = false;
      for (const v of variants) {
        const begun = performance.now();
        if (begun + (budget.costs.length ? median(budget.costs) : 0) > budget.deadline) { cut = true; break; }
        ms[v] = await this._measure(step, v, best === null ? Infinity : FAR_SLOWER * ms[best], opts.runs, budget);
        budget.costs.push(performance.now() - begun);  // compiling it included
        if (ms[v] === null) { cut = true; break; }
        if (best === null || ms[v] < ms[best]) best = v;
      }
      if (best === null) { untimed.push(name); continue; }
      this.picks[name] = { index: best, source: cut ? "budget" : "timed", ms };
      this._save(name, opts);
    }
    const wins = {};  // variant label -> kernels whose timing it won
    for (const [name, pick] of Object.entries(this.picks)) {
      if (pick.source === "timed" || pick.source === "budget") {
        const label = variantFamily(this.manifest.kernels[name].variants[pick.index]);
        wins[label] = (wins[label] || 0) + 1;
      }
    }
    for (const name of untimed) {
      const step = this.manifest.steps.find((s) => s.kernel === name);
      const labels = this.manifest.kernels[name].variants.map(variantFamily);
      const index = labels.reduce((b, label, v) => (this._fits(step, v) && (wins[label] || 0) > (wins[labels[b]] || 0)
        ? v : b), this.picks[name].index);
      this.picks[name] = { index, source: "inferred", ms: null };
      this._save(name, opts);
    }
    this.tuneMs = performance.now() - started;
  }

  /** Bytes of WGSL of `variant`'s shaders: what compiling it costs, roughly (seconds on a software adapter). */
  _bytes(step, variant) {
    return step.variants[variant].reduce((total, launch) => total + this.manifest.shaders[launch.shader].bytes, 0);
  }

  _save(name, opts) {  // a pick cut short by the budget too: later loads time nothing
    if (opts.cache && globalThis.localStorage) {
      const { index, ms } = this.picks[name];
      localStorage.setItem(this._cacheKey(name), JSON.stringify({ index, ms }));
    }
  }

  /**
   * Milliseconds of `variant` of `step` (compiled first): its dispatches timed on growing slices of
   * their workgroups, then `runs` whole runs where every slice grew to the whole grid; null where the
   * budget ran out first. Stops at a time over `limit` (far slower than the best: that time is kept).
   */
  async _measure(step, variant, limit, runs, budget) {
    await this._compileVariant(step, variant);
    const launches = step.variants[variant];
    let scaled = 0;
    let whole = true;
    for (const launch of launches) {
      const total = launch.dispatch.reduce((a, b) => a * b, 1);
      let count = 1;
      for (;;) {
        const groups = slice(launch.dispatch, count);
        const size = groups.reduce((a, b) => a * b, 1);
        const ms = await this._timed(budget, (pass) => this._dispatchLaunch(pass, launch, groups));
        if (ms === null) return null;
        if (size === total) { scaled += ms; break; }
        const work = Math.max(ms - budget.overhead, 0) * total / size;  // the slice's time less a submission's
        if (ms - budget.overhead >= SLICE_MS || scaled + work > limit) {
          scaled += budget.overhead + work;
          whole = false;
          break;
        }
        count = size * SLICE_GROWTH;
      }
      if (scaled > limit) return scaled;
    }
    if (!whole) return scaled;
    const times = [];
    for (let r = 0; r < runs; r++) {
      const ms = await this._timed(budget, (pass) => this._dispatch(pass, step, variant));
      if (ms === null) break;
      times.push(ms);
    }
    return times.length ? median(times) : scaled;
  }

  /** Milliseconds of the dispatches `record(pass)` makes, until done; null past the budget's deadline. */
  async _timed(budget, record) {
    if (performance.now() > budget.deadline) return null;
    const encoder = this.device.createCommandEncoder();
    const pass = encoder.beginComputePass();
    record(pass);
    pass.end();
    const start = performance.now();
    this.device.queue.submit([encoder.finish()]);
    await this.device.queue.onSubmittedWorkDone();
    return performance.now() - start;
  }
}

/** The workgroup counts of a slice of about `count` workgroups of the grid `dispatch` (whole z planes, then y rows). */
function slice(dispatch, count) {
  const [x, y, z] = dispatch;
  if (count >= x * y) return [x, y, Math.min(z, Math.floor(count / (x * y)))];
  if (count >= x) return [x, Math.floor(count / x), 1];
  return [count, 1, 1];
}


/** A variant's label without its workgroup shapes: what the same schedule of different kernels shares. */
function variantFamily(label) { return label.split(";")[0]; }

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
