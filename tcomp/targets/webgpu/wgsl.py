"""WGSL compute shaders from lowered device kernels: a sibling of the C-style renderer.

The statement walk, names, bounds and block lowering are ``CSourceRenderer``'s; what WGSL writes
differently is here: declarations (``var x: array<f32, 16>``), ``select`` instead of ``?:``,
conversions as ``T(x)``, helpers for what WGSL lacks (erf, floor division, an exact fmod, integer
powers, 16-bit floats), and memory. A kernel (``gpu/lower.py``)::

    kernel f: launch {blockIdx.x: 4, threadIdx.x: 256}
    for blockIdx_x in blockIdx.x(4):
      for threadIdx_x in threadIdx.x(256):
        block B[vi = S(1024): blockIdx_x * 256 + threadIdx_x]:
          B[vi] = exp(A[vi])

renders as::

    @group(0) @binding(0) var<storage, read_write> A: array<f32>;
    @group(0) @binding(1) var<storage, read_write> B: array<f32>;
    @compute @workgroup_size(256, 1, 1)
    fn f(@builtin(workgroup_id) tc_wid: vec3<u32>, @builtin(local_invocation_id) tc_lid: vec3<u32>, ...) {
      let blockIdx_x: i32 = i32(tc_wid.x);
      let threadIdx_x: i32 = i32(tc_lid.x);
      B[((blockIdx_x * 256) + threadIdx_x)] = exp(A[((blockIdx_x * 256) + threadIdx_x)]);
    }

Memory keeps the host's byte layout, so a tensor is uploaded and downloaded as its bytes:
32-bit types are arrays of themselves; int64/uint64 are pairs of 32-bit words (the low word
read, both written: values must fit 32 bits, which uploads check; arithmetic that may leave 32
bits raises a status word the runtime checks, ``overflow.py``); 8- and 16-bit types
(bool, int8, uint8, float16, bfloat16, int16, uint16) are packed in ``u32`` words, written with
``atomicAnd``/``atomicOr`` on the element's bits (threads that share a word never race).
Size variables come from a uniform buffer (binding after the storage buffers), the status word
(``tc_status``, where the kernel checks 64-bit overflow) from the binding after that. ``shared``
buffers are ``var<workgroup>`` arrays and ``local`` ones function arrays of 32-bit values.
Storage buffers are all ``read_write``: the device executor binds one arena buffer at several
offsets in one dispatch, and WebGPU refuses a buffer bound both read-only and writable there.

Bounds: the device compiles the shaders without naga's runtime checks (``device.py``), so the
renderer keeps every access in bounds itself. An index that ``arith.bound`` proves within its
buffer from the loops' and threads' ranges is written as it is (a tiled GEMM's all are); otherwise
a workgroup or private array's index is clamped (``i32(min(u32(i), n - 1u))``), and so is a storage
buffer's where WGSL evaluates an access that the loop IR makes conditional (both operands of a
``select``, a predicated load), against ``arrayLength``. Other storage accesses are in bounds as the
lowering made them (the CUDA rendering runs them unchecked).

A grid larger than WebGPU's 65535 workgroups per dimension, or a symbolic one, is folded: the
shader numbers its workgroup linearly over a 2-D or 3-D dispatch and derives the block indices
(``grid_folded``); the extra workgroups return at once.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ...errors import TcompError
from ...tir import arith
from ...tir.expr import (BinOp, Buffer, Call, Cast, Expr, IntImm, Load, Select, dtype_bits, is_float, is_unsigned,
                         logical_or)
from ...tir.stmt import Allocate, BufferStore, For
from ..csource import CSourceRenderer, Dialect, RenderError
from . import overflow
from .unroll import unroll_kernel

MAX_WORKGROUPS_PER_DIMENSION = 65535   # WebGPU's limit (maxComputeWorkgroupsPerDimension)
AXES = ("x", "y", "z")

HALF = ("float16", "bfloat16")  # 16-bit floats: stored as their bits, held as f32
# 32-bit value types; int64/uint64 are narrowed to 32 bits, 8- and 16-bit integers widened.
VALUE_TYPES = {"float32": "f32", "float16": "f32", "bfloat16": "f32", "int8": "i32", "int16": "i32", "int32": "i32",
               "int64": "i32", "uint8": "u32", "uint16": "u32", "uint32": "u32", "uint64": "u32", "bool": "bool"}

PREAMBLE = r"""
fn tc_floordiv(a: i32, b: i32) -> i32 {  // from the magnitudes (floor-mod from a signed % was wrong on NVIDIA)
  let m = bitcast<u32>(abs(a));
  let n = bitcast<u32>(abs(b));
  let q = bitcast<i32>(m / n);
  if ((a < 0) == (b < 0)) { return q; }
  return select(-q, -q - 1, m % n != 0u);
}
fn tc_floormod(a: i32, b: i32) -> i32 {  // from the magnitudes, then the divisor's sign
  let n = bitcast<u32>(abs(b));
  let r = bitcast<i32>(bitcast<u32>(abs(a)) % n);
  if (r == 0) { return 0; }
  if ((a < 0) == (b < 0)) { return select(r, -r, b < 0); }
  return select(b - r, b + r, b < 0);
}
fn tc_truncdiv(a: i32, b: i32) -> i32 {  // C's a / b from the magnitudes
  let q = bitcast<i32>(bitcast<u32>(abs(a)) / bitcast<u32>(abs(b)));
  return select(q, -q, (a < 0) != (b < 0));
}
fn tc_log(x: f32) -> f32 {  // log, accurate near 1 too (Vulkan allows an absolute error of 2^-21 there)
  let d = x - 1.0f;  // exact for x in [0.5, 2]
  if (abs(d) < 0.0625f) {  // 2 atanh(s), s = d / (x + 1): 2s (1 + s^2/3 + s^4/5 + s^6/7)
    let s = d / (x + 1.0f);
    let s2 = s * s;
    return 2.0f * s * (1.0f + s2 * (0.33333334f + s2 * (0.2f + s2 * 0.14285715f)));
  }
  return log(x);
}
fn tc_pow_i32(a: i32, b: i32) -> i32 {  // by squaring, wrapping; a negative exponent gives 0 unless |a| is 1
  if (b < 0) { return select(select(0, select(1, -1, (b & 1) != 0), a == -1), 1, a == 1); }
  var r = 1;
  var x = a;
  for (var e = b; e != 0; e = e >> 1u) {
    if ((e & 1) != 0) { r = r * x; }
    x = x * x;
  }
  return r;
}
fn tc_pow_u32(a: u32, b: u32) -> u32 {
  var r = 1u;
  var x = a;
  for (var e = b; e != 0u; e = e >> 1u) {
    if ((e & 1u) != 0u) { r = r * x; }
    x = x * x;
  }
  return r;
}
fn tc_f32_bits(bits: u32) -> f32 {  // inf and nan as runtime values: WGSL refuses them as constants (Tint)
  return bitcast<f32>(bits);
}
fn tc_isnan(x: f32) -> bool { return (bitcast<u32>(x) & 0x7fffffffu) > 0x7f800000u; }
fn tc_isinf(x: f32) -> bool { return (bitcast<u32>(x) & 0x7fffffffu) == 0x7f800000u; }
fn tc_sign(x: f32) -> f32 {
  if (tc_isnan(x)) { return x; }
  return select(select(0.0f, -1.0f, x < 0.0f), 1.0f, x > 0.0f);
}
fn tc_fmod(a: f32, b: f32) -> f32 {  // C's fmodf: exact, the dividend's sign; nan for an inf dividend or 0 divisor
  let y = abs(b);
  if (tc_isnan(a) || tc_isnan(b) || tc_isinf(a) || y == 0.0f) { return tc_f32_bits(0x7fc00000u); }
  var x = abs(a);
  if (tc_isinf(b) || x < y) { return a; }
  let ey = frexp(y).exp;
  while (x >= y) {  // subtract y scaled to x's binary exponent (or one below): exact (Sterbenz)
    let k = frexp(x).exp - ey;
    let t = ldexp(y, k);
    x = x - select(t, ldexp(y, k - 1), t > x);
  }
  return select(x, -x, a < 0.0f);
}
fn tc_floormod_f32(a: f32, b: f32) -> f32 {  // numpy's float mod: fmod moved to the divisor's sign
  let r = tc_fmod(a, b);
  if (r == 0.0f) { return select(abs(r), -abs(r), b < 0.0f); }  // a zero takes the divisor's sign
  if ((r < 0.0f) != (b < 0.0f)) { return r + b; }
  return r;
}
fn tc_pow(a: f32, b: f32) -> f32 {
  if (b == 0.0f) { return 1.0f; }
  let r = pow(abs(a), b);
  if (a < 0.0f) {
    if (b != floor(b)) { return tc_f32_bits(0x7fc00000u); }
    if (b * 0.5f != floor(b * 0.5f)) { return -r; }
  }
  return r;
}
fn tc_tanh(x: f32) -> f32 {
  let a = abs(x);
  if (a < 0.0625f) {  // x - x^3/3 + 2x^5/15 - 17x^7/315: relative accuracy near 0
    let a2 = a * a;
    return sign(x) * a * (1.0f + a2 * (-0.33333334f + a2 * (0.13333334f + a2 * -0.053968254f)));
  }
  return sign(x) * (1.0f - 2.0f / (exp(2.0f * a) + 1.0f));
}
fn tc_erf(x: f32) -> f32 {
  let a = abs(x);
  if (a < 0.25f) {  // Taylor series near 0
    let a2 = a * a;
    return sign(x) * a * 1.1283792f * (1.0f + a2 * (-0.33333334f + a2 * (0.1f + a2 * (-0.023809524f
        + a2 * 0.0046296297f))));
  }
  let t = 1.0f / (1.0f + 0.3275911f * a);  // Abramowitz-Stegun 7.1.26, |error| < 1.5e-7
  let p = t * (0.254829592f + t * (-0.284496736f + t * (1.421413741f + t * (-1.453152027f + t * 1.061405429f))));
  return sign(x) * (1.0f - p * exp(-a * a));
}
fn tc_f16_bits(x: f32) -> u32 {
  let b = bitcast<u32>(x);
  let sign = (b >> 16u) & 0x8000u;
  let m = b & 0x7fffffffu;
  if (m > 0x7f800000u) { return sign | 0x7e00u; }
  if (m >= 0x477ff000u) { return sign | 0x7c00u; }
  return pack2x16float(vec2<f32>(x, 0.0f)) & 0xffffu;
}
fn tc_bf16_bits(x: f32) -> u32 {
  let b = bitcast<u32>(x);
  if ((b & 0x7fffffffu) > 0x7f800000u) { return (b >> 16u) | 0x40u; }
  return (b + 0x7fffu + ((b >> 16u) & 1u)) >> 16u;
}
fn tc_to_f16(x: f32) -> f32 { return unpack2x16float(tc_f16_bits(x)).x; }
fn tc_to_bf16(x: f32) -> f32 { return bitcast<f32>(tc_bf16_bits(x) << 16u); }
fn tc_field(word: u32, index: i32, bits: u32) -> u32 {
  let per_word = 32u / bits;
  return (word >> (u32(index) % per_word * bits)) & ((1u << bits) - 1u);
}
fn tc_signed_field(word: u32, index: i32, bits: u32) -> i32 {
  return bitcast<i32>(tc_field(word, index, bits) << (32u - bits)) >> (32u - bits);
}
""" + overflow.HELPERS

_MATH = {name: name for name in ("exp", "sqrt", "sin", "cos", "tan", "asin", "acos", "atan", "sinh", "cosh",
                                 "floor", "ceil", "abs")}
_MATH.update({"fabs": "abs", "rsqrt": "inverseSqrt", "round": "round", "roundeven": "round", "tanh": "tc_tanh",
              "erf": "tc_erf", "log": "tc_log"})

WGSL = Dialect(
    name="webgpu",
    kernel_qualifier="fn",
    axis_index={},
    barrier="workgroupBarrier();",
    shared_qualifier="var<workgroup>",
    restrict="",
    scalar_types=VALUE_TYPES,
    half_types={},
    preamble=PREAMBLE,
    float_math=_MATH,
    binding="let {name} = {value};",
)

# Keywords, reserved words and type names of WGSL, the builtins the shaders call and the
# renderer's own names: a buffer or variable so named gets a suffix.
RESERVED = set("""
alias break case const const_assert continue continuing default diagnostic discard else enable false fn for if let
loop override requires return struct switch true var while bool f16 f32 i32 u32 vec2 vec3 vec4 mat2x2 mat3x3 mat4x4
array atomic ptr sampler texture_1d texture_2d NULL Self abstract active alignas alignof as asm asm_fragment async
attribute auto await become cast catch class co_await co_return co_yield coherent column_major common compile
compile_fragment concept const_cast consteval constexpr constinit crate debugger decltype delete demote
demote_to_helper do dynamic_cast enum explicit export extends extern external fallthrough filter final finally friend
from fxgroup get goto groupshared highp impl implements import inline instanceof interface layout lowp macro
macro_rules match mediump meta mod module move mut mutable namespace new nil noexcept noinline nointerpolation
non_coherent noncoherent noperspective null nullptr of operator package packoffset partition pass patch
pixelfragment precise precision premerge priv protected pub public readonly ref regardless register reinterpret_cast
require resource restrict self set shared sizeof smooth snorm static static_assert static_cast std subroutine super
target template this thread_local throw trait try type typedef typeid typename typeof union unless unorm unsafe
unsized use using varying virtual volatile wgsl where with writeonly yield
exp log sqrt sin cos tan asin acos atan sinh cosh floor ceil abs inverseSqrt round select min max pow sign bitcast
i32 u32 f32 atomicAnd atomicOr atomicLoad atomicStore workgroupBarrier pack2x16float unpack2x16float
tc_sizes tc_wid tc_lid tc_nwg tc_block tc_i tc_shift tc_word tc_status
""".split()) | {name for name in PREAMBLE.split() if name.startswith("tc_")}


class WGSLError(TcompError):
    """A kernel that WGSL cannot express (float64, a 64-bit constant, an unsupported call)."""


@dataclass(frozen=True)
class WGSLKernel:
    """One compute shader: its source, the buffers bound at 0, 1, ... (then the sizes' uniform
    buffer, when ``size_vars``, then a status word, when ``status``: 64-bit overflow was found),
    the workgroup size, the grid (blockIdx extents, expressions of the size variables) and whether
    the shader folds the grid (``dispatch`` gives the workgroup counts either way)."""

    name: str
    source: str
    params: tuple
    size_vars: tuple
    workgroup: tuple
    grid: tuple
    grid_folded: bool
    status: bool = False

    def dispatch(self, grid: tuple) -> tuple:
        """Workgroup counts for a grid of ``grid`` blocks (x, y, z ints)."""
        if not self.grid_folded:
            return grid
        total = grid[0] * grid[1] * grid[2]
        limit = MAX_WORKGROUPS_PER_DIMENSION
        x = min(total, limit)
        y = min(-(-total // x), limit) if x else 0
        z = -(-total // (x * y)) if x else 0
        if z > limit:
            raise TcompError(f"kernel {self.name}: {total} workgroups, more than a dispatch holds ({limit}^3)")
        return x, y, z


def render_kernel(kernel) -> WGSLKernel:
    """The WGSL shader of one ``DeviceKernel`` (``gpu/lower.py``), its unrolled loops expanded (``unroll.py``)."""
    return WGSLRenderer().render_kernel(unroll_kernel(kernel))


class WGSLRenderer(CSourceRenderer):
    """Renders one ``DeviceKernel`` as a WGSL module with one entry point, named as the kernel."""

    def __init__(self):
        super().__init__(WGSL)
        self._written: set = set()
        self._kernel_name = ""
        self._status = False            # whether the kernel checks 64-bit overflow
        self._speculative = 0           # > 0: rendering what WGSL evaluates where the loop IR would not

    def render(self, kernels) -> str:
        return "\n".join(self.render_kernel(k).source for k in kernels)

    def render_kernel(self, kernel) -> WGSLKernel:
        self._kernel_name = kernel.name
        try:
            body, folded = self._kernel_body(kernel)
        except RenderError as exc:
            raise WGSLError(f"kernel {kernel.name}: {exc}") from None
        grid = tuple(kernel.launch.get(f"blockIdx.{a}", IntImm(1)) for a in AXES)
        workgroup = tuple(self._threads(kernel, a) for a in AXES)
        return WGSLKernel(kernel.name, _helpers_used(body) + body, tuple(kernel.params),
                          tuple(kernel.size_vars), workgroup, grid, folded, self._status)

    # ------------------------------------------------------------------ the shader
    def _kernel_body(self, kernel) -> tuple:
        from ...tir.transform import buffer_accesses

        self._begin_kernel(kernel)
        _, writes = buffer_accesses(kernel.body)
        self._written = set(writes)
        header = []
        for binding, buf in enumerate(kernel.params):
            self._check_dtype(buf)
            header.append(f"@group(0) @binding({binding}) var<storage, read_write> {self.name(buf)}: "
                          f"array<{self._word_type(buf)}>;")
        if kernel.size_vars:
            fields = "".join(f"  s{i}: i32,\n" for i in range(len(kernel.size_vars)))
            header.append(f"struct TcSizes {{\n{fields}}}")
            header.append(f"@group(0) @binding({len(kernel.params)}) var<uniform> tc_sizes: TcSizes;")
        for buf in kernel.shared:
            self._check_dtype(buf)
            size = arith.simplify(buf.storage_elements()).value
            header.append(f"var<workgroup> {self.name(buf)}: array<{VALUE_TYPES[buf.dtype]}, {size}>;")
        workgroup = ", ".join(str(self._threads(kernel, a)) for a in AXES)
        header.append(f"@compute @workgroup_size({workgroup})")
        header.append(f"fn {kernel.name}(@builtin(workgroup_id) tc_wid: vec3<u32>, "
                      f"@builtin(local_invocation_id) tc_lid: vec3<u32>, "
                      f"@builtin(num_workgroups) tc_nwg: vec3<u32>) {{")
        self._indent = 1
        for i, var in enumerate(kernel.size_vars):
            self._line(f"let {self.name(var)}: i32 = tc_sizes.s{i};")
        folded = self._grid_folded(kernel)
        grid = [(axis, kernel.launch[f"blockIdx.{axis}"]) for axis in AXES if f"blockIdx.{axis}" in kernel.launch]
        for axis, extent in grid:
            self._bounds[self._axis_var(kernel.body, f"blockIdx.{axis}")] = \
                (0, extent.value - 1 if isinstance(extent, IntImm) else None)
        if folded:
            extents = [f"({self.expr(arith.simplify(extent))})" for _, extent in grid]
            self._line("let tc_block: i32 = i32(tc_wid.x + tc_nwg.x * (tc_wid.y + tc_nwg.y * tc_wid.z));")
            self._line(f"if (tc_block >= {' * '.join(extents)}) {{ return; }}")
        for number, (axis, extent) in enumerate(grid):
            value = f"i32(tc_wid.{axis})"
            if folded:  # x varies fastest: block = x + X * (y + Y * z)
                value = f"tc_block / ({' * '.join(extents[:number])})" if number else "tc_block"
                if number < len(grid) - 1:
                    value = f"{value} % {extents[number]}"
            self._line(f"let {self.name(self._axis_var(kernel.body, f'blockIdx.{axis}'))}: i32 = {value};")
        for axis in AXES:
            extent = kernel.launch.get(f"threadIdx.{axis}")
            if extent is not None:
                var = self._axis_var(kernel.body, f"threadIdx.{axis}")
                self._bounds[var] = (0, extent.value - 1)
                self._line(f"let {self.name(var)}: i32 = i32(tc_lid.{axis});")
        if not any(isinstance(extent, IntImm) and extent.value == 0 for extent in kernel.launch.values()):
            self._stmt(kernel.body)  # else a zero-sized tensor: nothing to compute, and never dispatched
        self._indent = 0
        self._line("}")
        if self._status:
            binding = len(kernel.params) + bool(kernel.size_vars)
            header.insert(-2, f"@group(0) @binding({binding}) var<storage, read_write> tc_status: array<atomic<u32>>;")
        return "\n".join(header + self._lines) + "\n", folded

    def _begin_kernel(self, kernel) -> None:
        self._status = False
        self._lines, self._indent, self._names, self._taken = [], 0, {}, set(RESERVED)
        self._launch = kernel.launch
        self._bounds = {v: (1, None) for v in kernel.size_vars}
        self._index = "i32"

    @staticmethod
    def _threads(kernel, axis: str) -> int:
        """Threads per workgroup along ``axis`` (at least 1: WGSL refuses an empty workgroup)."""
        extent = kernel.launch.get(f"threadIdx.{axis}")
        return max(1, extent.value) if extent is not None else 1

    @staticmethod
    def _grid_folded(kernel) -> bool:
        extents = [kernel.launch.get(f"blockIdx.{a}") for a in AXES]
        return not all(e is None or (isinstance(e, IntImm) and e.value <= MAX_WORKGROUPS_PER_DIMENSION)
                       for e in extents)

    def _check_dtype(self, buf: Buffer) -> None:
        if buf.dtype not in VALUE_TYPES:
            raise RenderError(f"buffer {buf.name} is {buf.dtype}, which WGSL has no type for (no float64: compute "
                              f"in float32)")

    def _word_type(self, buf: Buffer) -> str:
        """The element type of a storage buffer's array: the 32-bit value type, or u32 words packing
        8- or 16-bit elements (atomic where the kernel writes them)."""
        if dtype_bits(buf.dtype) >= 32:
            return VALUE_TYPES[buf.dtype]
        return "atomic<u32>" if buf in self._written else "u32"

    # ------------------------------------------------------------------ statements
    def _bound(self, render, *roots: Expr):
        """``CSourceRenderer._bound``, and before the statement, a check of the 64-bit arithmetic that the
        values of ``roots`` depend on and that may leave 32 bits (``overflow.py``)."""
        if self._cse is not None:
            return render()
        flags = overflow.Flags(self._bounds, lambda load: self._flat(load.buffer, load.indices))
        flag = logical_or(*[flags.of(root) for root in roots])
        if flag is None:
            return super()._bound(render)
        texts, condition = super()._bound(lambda: (render(), self.expr(flag)))
        self._status = True
        self._line(f"if ({condition}) {{ atomicOr(&tc_status[0], 1u); }}")
        return texts

    def _for(self, loop: For) -> None:
        if loop.kind == "thread_binding":
            super()._for(loop)
            return
        extent = arith.simplify(loop.extent, self._bounds)
        self._bounds[loop.var] = (0, extent.value - 1 if isinstance(extent, IntImm) else None)
        var = self.name(loop.var)
        self._scope(f"for (var {var}: i32 = 0; {var} < {self.expr(extent)}; {var}++)", loop.body)

    def _store(self, store: BufferStore) -> None:
        buf, value = store.buffer, store.value
        offset = self._flat(buf, store.indices)
        # a bit cast stored in a 16-bit float buffer: its bits (through f32 a NaN would lose its payload)
        raw = buf.scope == "global" and buf.dtype in HALF and isinstance(value, Call) and value.name == "bitcast"

        def emit() -> None:
            index, text = self._bound(lambda: (self._element(buf, offset), self._bits(value.args[0]) if raw else self.expr(value)),
                                      offset, value)
            self._store_lines(buf, index, text, raw)

        self._guarded(store.predicate, emit)

    def _store_lines(self, buf: Buffer, index: str, value: str, raw: bool = False) -> None:
        if buf.scope != "global":
            rounded = {"float16": "tc_to_f16", "bfloat16": "tc_to_bf16"}.get(buf.dtype)
            self._line(f"{self.name(buf)}[{index}] = {f'{rounded}({value})' if rounded else value};")
        elif dtype_bits(buf.dtype) == 32:
            self._line(f"{self.name(buf)}[{index}] = {value};")
        elif dtype_bits(buf.dtype) == 64:  # the low word, then the high word: sign (zero) extension
            high = "0u" if is_unsigned(buf.dtype) else "(tc_word >> 31u)"
            self._line(f"{{ let tc_i = 2 * ({index}); let tc_word = {value};")
            self._line(f"  {self.name(buf)}[tc_i] = tc_word; {self.name(buf)}[tc_i + 1] = {high}; }}")
        else:
            self._packed_store(buf, index, value, raw)

    def _packed_store(self, buf: Buffer, index: str, value: str, raw: bool = False) -> None:
        """An 8- or 16-bit element written into its u32 word: the new value computed first (it may read
        the element itself: ``R[i] = max(R[i], x)``), then the element's bits cleared and set (atomics:
        the word's other elements belong to other threads). ``raw``: ``value`` is the element's bits."""
        bits = dtype_bits(buf.dtype)
        mask = f"0x{(1 << bits) - 1:x}u"
        if raw:
            word = f"({value} & {mask})"
        elif buf.dtype == "bool":
            word = f"select(0u, 1u, {value})"
        elif buf.dtype == "float16":
            word = f"tc_f16_bits({value})"
        elif buf.dtype == "bfloat16":
            word = f"tc_bf16_bits({value})"
        else:
            word = f"(bitcast<u32>({value}) & {mask})"
        name = self.name(buf)
        self._line(f"{{ let tc_i = {index}; let tc_shift = u32(tc_i) % {32 // bits}u * {bits}u; let tc_word = {word};")
        self._line(f"  atomicAnd(&{name}[tc_i / {32 // bits}], ~({mask} << tc_shift));")
        self._line(f"  atomicOr(&{name}[tc_i / {32 // bits}], tc_word << tc_shift); }}")

    def _fragment(self, stmt: Allocate) -> None:
        raise RenderError(f"{stmt.buffer.scope} buffer {stmt.buffer.name}: WGSL has no register fragments "
                          f"(tensor-core intrinsics are CUDA's)")

    def _local_declaration(self, buf: Buffer, count: int) -> str:
        self._check_dtype(buf)
        return f"var {self.name(buf)}: array<{VALUE_TYPES[buf.dtype]}, {count}>;"

    # ------------------------------------------------------------------ expressions
    def _render(self, e: Expr) -> str:
        if isinstance(e, IntImm):
            return self._int_literal(e)
        if isinstance(e, Load):
            return self._load(e)
        if isinstance(e, Select):  # WGSL's select evaluates both sides: their accesses are clamped (``_element``)
            self._speculative += 1
            try:
                a, b = self.expr(e.a), self.expr(e.b)
            finally:
                self._speculative -= 1
            return f"select({b}, {a}, {self.expr(e.cond)})"
        return super()._render(e)

    def _int_literal(self, e: IntImm) -> str:
        if e.dtype == "bool":
            return "true" if e.value else "false"
        value = e.value
        if e.dtype in ("int64", "uint64"):  # the extremes are reduction identities: the 32-bit ones
            value = {2**63 - 1: 2**31 - 1, -2**63: -2**31, 2**64 - 1: 2**32 - 1}.get(value, value)
        signed = not is_unsigned(e.dtype)
        if not (-2**31 <= value < 2**31 if signed else 0 <= value < 2**32):
            raise RenderError(f"the {e.dtype} constant {e.value} does not fit 32 bits (WGSL has no 64-bit integers)")
        return f"i32({value})" if value == -2**31 else f"{value}" if signed else f"{value}u"

    def _float_literal(self, value: float, dtype: str) -> str:
        if dtype == "float64":
            raise RenderError("float64 arithmetic (WGSL has no float64: compute in float32)")
        value = float(np.float32(value))
        if math.isnan(value):
            return "tc_f32_bits(0x7fc00000u)"
        if math.isinf(value):
            return f"tc_f32_bits({'0x7f800000u' if value > 0 else '0xff800000u'})"
        return f"{value!r}f"

    def _load(self, e: Load) -> str:
        buf = e.buffer
        offset = self._flat(buf, e.indices)
        name = self.name(buf)
        bits = dtype_bits(buf.dtype)
        self._speculative += e.predicate is not None  # both evaluated: the access where the predicate is false too
        try:
            if buf.scope != "global" or bits == 32:
                text = f"{name}[{self._element(buf, offset)}]"
            elif bits == 64:
                text = f"{name}[2 * ({self._element(buf, offset)})]"
            elif buf.dtype in ("int8", "int16"):
                text = f"tc_signed_field({self._packed_word(buf, offset)}, {self._element(buf, offset)}, {bits}u)"
            else:
                field = self._packed_field(e)
                text = {"bool": f"({field} != 0u)", "float16": f"unpack2x16float({field}).x",
                        "bfloat16": f"bitcast<f32>({field} << 16u)"}.get(buf.dtype, field)
        finally:
            self._speculative -= e.predicate is not None
        if e.predicate is not None:
            zero = {"bool": "false", "f32": "0.0f", "i32": "0", "u32": "0u"}[_value_type(e.dtype)]
            text = f"select({zero}, {text}, {self.expr(e.predicate)})"
        return text

    def _element(self, buf: Buffer, offset: Expr) -> str:
        """The text of element ``offset`` of ``buf``, clamped into the buffer unless ``arith.bound`` proves it
        there: every access of a workgroup or private array, and of a storage buffer where WGSL evaluates
        what the loop IR evaluates only under a condition (a ``select``'s operands, a predicated load). The
        shaders are compiled without naga's bounds checks (``device.py``): these are the only ones."""
        text = self.expr(offset)
        if buf.scope == "global" and not self._speculative:
            return text  # in bounds by the lowering (the CUDA rendering runs unchecked)
        count = arith.simplify(buf.storage_elements(), self._bounds)
        lo, hi = arith.bound(offset, self._bounds)
        if isinstance(count, IntImm) and lo is not None and hi is not None and 0 <= lo and hi < count.value:
            return text
        if buf.scope != "global":
            return f"i32(min(u32({text}), {max(count.value, 1) - 1}u))"
        bits, words = dtype_bits(buf.dtype), f"arrayLength(&{self.name(buf)})"
        last = (f"{words} - 1u" if bits == 32 else f"({words} - 1u) / 2u" if bits == 64
                else f"{words} * {32 // bits}u - 1u")
        return f"i32(min(u32({text}), {last}))"

    def _packed_word(self, buf: Buffer, offset: Expr) -> str:
        word = f"{self.name(buf)}[({self._element(buf, offset)}) / {32 // dtype_bits(buf.dtype)}]"
        return f"atomicLoad(&{word})" if buf in self._written else word

    def _packed_field(self, e: Load) -> str:
        """The bits of an element of a packed 8- or 16-bit global buffer (a u32; predicate aside)."""
        offset = self._flat(e.buffer, e.indices)
        return (f"tc_field({self._packed_word(e.buffer, offset)}, {self._element(e.buffer, offset)}, "
                f"{dtype_bits(e.buffer.dtype)}u)")

    def _binop(self, e: BinOp) -> str:
        form = None  # a format of the operands' texts {a} and {b}
        if e.op in ("shl", "shr"):
            form = f"({{a}} {'<<' if e.op == 'shl' else '>>'} u32({{b}}))"
        elif e.op == "xor" and e.dtype == "bool":
            form = "({a} != {b})"
        elif e.op in ("min", "max"):
            _value_type(e.dtype)
            form = f"{e.op}({{a}}, {{b}})"
        elif is_float(e.dtype):
            _value_type(e.dtype)
            form = {"pow": "tc_pow({a}, {b})", "floordiv": "floor({a} / {b})",
                    "floormod": "tc_floormod_f32({a}, {b})"}.get(e.op)
        elif e.op == "pow":  # integers: by squaring, wrapping at 32 bits (int64 too: see the module doc)
            form = f"tc_pow_{_value_type(e.dtype)}({{a}}, {{b}})"
        elif e.op == "div" and not is_unsigned(e.dtype) and not self._nonnegative(e.a, e.b):
            form = "tc_truncdiv({a}, {b})"
        if form is None:
            return super()._binop(e)
        return form.format(a=self.expr(e.a), b=self.expr(e.b))

    def _nonnegative(self, *exprs) -> bool:
        """Whether every one of ``exprs`` is proven >= 0 under the bounds in scope."""
        return all((lo := arith.bound(e, self._bounds)[0]) is not None and lo >= 0 for e in exprs)

    def _cast(self, e: Cast) -> str:
        value, source = self.expr(e.value), e.value.dtype
        target = _value_type(e.dtype)
        if source == "bool" and e.dtype == "bool":
            return value
        if e.dtype == "bool":
            return f"({value} != {'0.0f' if is_float(source) else '0u' if is_unsigned(source) else '0'})"
        converted = f"{target}({value})"
        if e.dtype in ("float16", "bfloat16"):
            return f"tc_to_{'f16' if e.dtype == 'float16' else 'bf16'}(f32({value}))"
        if e.dtype in ("int8", "int16"):
            shift = 32 - dtype_bits(e.dtype)
            return f"(({converted} << {shift}u) >> {shift}u)"
        if e.dtype in ("uint8", "uint16"):
            return f"({converted} & 0x{(1 << dtype_bits(e.dtype)) - 1:x}u)"
        if target == "u32" and _value_type(source) == "i32":
            return f"bitcast<u32>({value})"  # two's complement, as C converts
        return converted

    def _bits(self, x: Expr) -> str:
        """A u32 whose low bits are ``x``'s (8- and 16-bit values are held widened: floats as f32,
        integers as i32/u32). A 16-bit float is read as its stored bits where it is loaded: through f32
        a NaN would lose its payload."""
        source, bits = x.dtype, dtype_bits(x.dtype)
        if isinstance(x, Load) and x.predicate is None and x.buffer.scope == "global" and source in HALF:
            return self._packed_field(x)
        value = self.expr(x)
        return {"bool": f"select(0u, 1u, {value})", "float16": f"tc_f16_bits({value})",
                "bfloat16": f"tc_bf16_bits({value})"}.get(
            source, f"bitcast<u32>({value})" if bits == 32 else f"(bitcast<u32>({value}) & 0x{(1 << bits) - 1:x}u)")

    @staticmethod
    def _from_bits(dtype: str, word: str) -> str:
        """The ``dtype`` value whose bits are the low bits of ``word`` (a u32)."""
        bits = dtype_bits(dtype)
        if dtype == "bool":
            return f"({word} != 0u)"
        if dtype in HALF:
            return f"unpack2x16float({word}).x" if dtype == "float16" else f"bitcast<f32>({word} << 16u)"
        if bits == 32 or is_unsigned(dtype):
            return f"bitcast<{_value_type(dtype)}>({word})"
        return f"((bitcast<i32>({word}) << {32 - bits}u) >> {32 - bits}u)"  # int8/int16: sign-extended

    def _call(self, e: Call) -> str:
        source = e.args[0].dtype if e.args else e.dtype

        def x() -> str:  # the first operand, rendered per use (what the CSE pass counts)
            return self.expr(e.args[0])

        if e.name == overflow.CHECK:
            return overflow.condition(e.args[0], self.expr)
        if e.name in ("isnan", "isinf"):
            return f"tc_{e.name}({x()})" if is_float(source) else "false"
        if e.name == "bitcast":
            if dtype_bits(e.dtype) != dtype_bits(source) or dtype_bits(e.dtype) > 32:
                raise RenderError(f"bitcast from {source} to {e.dtype} (WebGPU has no 64-bit types)")
            return self._from_bits(e.dtype, self._bits(e.args[0]))
        if not is_float(e.dtype):
            if e.name == "not":
                return f"(!{x()})" if e.dtype == "bool" else f"(~{x()})"
            if e.name == "abs":
                return x() if is_unsigned(e.dtype) else f"abs({x()})"
            if e.name == "neg":
                return f"(-({x()}))"
            if e.name == "sign":
                zero, one = ("0u", "1u") if is_unsigned(e.dtype) else ("0", "1")
                negative = "0u" if is_unsigned(e.dtype) else f"select(0, -1, {x()} < 0)"
                return f"select({negative}, {one}, {x()} > {zero})"
            raise RenderError(f"unsupported call {e.name} for {e.dtype}")
        _value_type(e.dtype)
        if e.name == "neg":
            return f"(-({x()}))"
        if e.name == "reciprocal":
            return f"(1.0f / {x()})"
        if e.name == "sigmoid":
            return f"(1.0f / (1.0f + exp(-({x()}))))"
        if e.name == "sign":
            return f"tc_sign({x()})"
        if e.name not in _MATH:
            raise RenderError(f"unsupported math function {e.name} for {e.dtype}")
        return f"{_MATH[e.name]}({', '.join(self.expr(a) for a in e.args)})"


def _helpers_used(body: str) -> str:
    """The preamble's functions that ``body`` calls, directly or through another helper."""
    functions = ["fn " + text for text in PREAMBLE.split("\nfn ") if text.strip()]
    names = [text.split("(")[0][3:] for text in functions]
    used: set = set()
    pending = [body]
    while pending:
        text = pending.pop()
        for name, function in zip(names, functions):
            if name not in used and f"{name}(" in text:
                used.add(name)
                pending.append(function)
    return "".join(function.strip("\n") + "\n" for name, function in zip(names, functions) if name in used)


def _value_type(dtype: str) -> str:
    if dtype not in VALUE_TYPES:
        raise RenderError(f"{dtype} arithmetic (WGSL has no float64: compute in float32)")
    return VALUE_TYPES[dtype]

