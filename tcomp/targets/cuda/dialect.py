"""The CUDA C++ dialect of the C-style renderer (``targets/csource.py``).

Self-contained: NVRTC compiles it without any header (16-bit floats are stored as
``unsigned short`` and converted with PTX ``cvt``; tensor-core code is inline PTX too), so
the NVRTC wheel alone is enough.
"""
from __future__ import annotations

from ..csource import Dialect
from .bulk_copy import BULK_COPIES
from .fragments import element as fragment_element

PREAMBLE = r"""
#ifdef __CUDA_ARCH_FEAT_SM90_ALL
/* shared memory that ordinary stores or cp.async wrote and wgmma reads next: order the writes for the
   tensor cores' (async) proxy in each writing thread before the barrier */
#define TC_PROXY_FENCE asm volatile("fence.proxy.async.shared::cta;" ::: "memory");
#else
#define TC_PROXY_FENCE
#endif
__device__ __forceinline__ float tc_half_to_float(unsigned short h) {
  float f; asm("cvt.f32.f16 %0, %1;" : "=f"(f) : "h"(h)); return f;
}
__device__ __forceinline__ unsigned short tc_float_to_half(float f) {
  unsigned short h; asm("cvt.rn.f16.f32 %0, %1;" : "=h"(h) : "f"(f)); return h;
}
__device__ __forceinline__ float tc_bfloat_to_float(unsigned short h) {
  return __uint_as_float(((unsigned int)h) << 16);
}
__device__ __forceinline__ unsigned short tc_float_to_bfloat(float f) {
  unsigned int u = __float_as_uint(f);
  if ((u & 0x7fffffffu) > 0x7f800000u) return (unsigned short)((u >> 16) | 0x40u);  /* NaN stays NaN */
  return (unsigned short)((u + 0x7fffu + ((u >> 16) & 1u)) >> 16);                   /* round to even */
}
/* x rounded to TF32 (10 mantissa bits; to nearest, ties away from zero) as fp32 bits; cvt.rna.tf32.f32 from
   sm_80 (ptxas merges the conversions of one register that several tensor-core products read) */
__device__ __forceinline__ unsigned int tc_tf32_bits(float x) {
#if __CUDA_ARCH__ >= 800
  unsigned int r; asm("cvt.rna.tf32.f32 %0, %1;" : "=r"(r) : "f"(x)); return r & 0xffffe000u;
#else
  unsigned int u = __float_as_uint(x);
  return (u & 0x7fffffffu) > 0x7f800000u ? u : (u + 0x1000u) & 0xffffe000u;
#endif
}
__device__ __forceinline__ float tc_round_tf32(float x) { return __uint_as_float(tc_tf32_bits(x)); }
__device__ __forceinline__ void tc_cp_async(void* dst, const void* src) {
  unsigned int address;
  asm volatile("{ .reg .u64 a; cvta.to.shared.u64 a, %0; cvt.u32.u64 %1, a; }" : "+l"(dst), "=r"(address));
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16;" :: "r"(address), "l"(src) : "memory");
}
template <typename A, typename B> __device__ __forceinline__ auto tc_min(A a, B b) -> decltype(a + b) {
  return (decltype(a + b))a < (decltype(a + b))b ? (decltype(a + b))a : (decltype(a + b))b;
}
template <typename A, typename B> __device__ __forceinline__ auto tc_max(A a, B b) -> decltype(a + b) {
  return (decltype(a + b))a < (decltype(a + b))b ? (decltype(a + b))b : (decltype(a + b))a;
}
template <typename T> __device__ __forceinline__ T tc_floordiv(T a, T b) {
  T q = a / b; return (a % b != 0 && ((a < 0) != (b < 0))) ? q - 1 : q;
}
template <typename T> __device__ __forceinline__ T tc_floormod(T a, T b) {
  T r = a % b; return (r != 0 && ((r < 0) != (b < 0))) ? r + b : r;
}
/* float floor-mod as numpy: fmod's exact remainder moved to the divisor's sign (x % inf is x or inf, inf % y nan) */
__device__ __forceinline__ float tc_floormod(float a, float b) {
  float r = fmodf(a, b); return (r != 0.0f && ((r < 0.0f) != (b < 0.0f))) ? r + b : r;
}
__device__ __forceinline__ double tc_floormod(double a, double b) {
  double r = fmod(a, b); return (r != 0.0 && ((r < 0.0) != (b < 0.0))) ? r + b : r;
}
/* integer power by squaring, wrapping like numpy; a negative exponent gives 0 unless |a| is 1 */
template <typename T> __device__ __forceinline__ T tc_pow_int(T a, T b) {
  if (b < (T)0) return a == (T)1 ? (T)1 : a == (T)-1 ? ((b & 1) ? a : (T)1) : (T)0;
  unsigned long long r = 1ull, x = (unsigned long long)a;
  for (unsigned long long e = (unsigned long long)b; e; e >>= 1, x *= x) if (e & 1ull) r *= x;
  return (T)r;
}
/* the bits of x as another type of the same width */
template <typename To, typename From> __device__ __forceinline__ To tc_bitcast(From x) {
  static_assert(sizeof(To) == sizeof(From), "tc_bitcast between types of different widths");
  union { From from; To to; } u; u.from = x; return u.to;
}
"""

_C_MATH = {name: name for name in ("exp", "log", "sqrt", "tanh", "erf", "sin", "cos", "tan", "asin", "acos", "atan",
                                    "sinh", "cosh", "floor", "ceil", "fabs", "rsqrt")}
_C_MATH.update({"abs": "fabs", "round": "rint", "roundeven": "rint"})
DOUBLE_MATH = {**_C_MATH, "isnan": "isnan", "isinf": "isinf"}
FLOAT_MATH = {**{name: function + "f" for name, function in _C_MATH.items()}, "isnan": "isnan", "isinf": "isinf",
              "round_tf32": "tc_round_tf32"}

CUDA = Dialect(
    name="cuda",
    kernel_qualifier='extern "C" __global__ void',
    axis_index={f"{axis}.{d}": f"{axis}.{d}" for axis in ("blockIdx", "threadIdx") for d in "xyz"},
    barrier="TC_PROXY_FENCE __syncthreads();",
    shared_qualifier="__shared__",
    restrict="__restrict__",
    scalar_types={"float32": "float", "float64": "double", "int8": "signed char", "uint8": "unsigned char",
                  "int16": "short", "uint16": "unsigned short", "int32": "int", "uint32": "unsigned int",
                  "int64": "long long", "uint64": "unsigned long long", "bool": "bool"},
    half_types={"float16": ("unsigned short", "tc_half_to_float", "tc_float_to_half"),
                "bfloat16": ("unsigned short", "tc_bfloat_to_float", "tc_float_to_bfloat")},
    preamble=PREAMBLE,
    launch_bounds="__launch_bounds__({})",
    float_math=FLOAT_MATH,
    double_math=DOUBLE_MATH,
    vector_types={4: "unsigned int", 8: "uint2", 16: "uint4"},
    vector_pack={4: "{0}", 8: "make_uint2({0}, {1})", 16: "make_uint4({0}, {1}, {2}, {3})"},
    shared_align="__align__(16)",
    swizzle_align="__align__(1024)",
    async_copy="tc_cp_async({dst}, {src});",
    async_copy_bytes=(16,),
    async_commit='asm volatile("cp.async.commit_group;" ::: "memory");',
    async_wait='asm volatile("cp.async.wait_group {n};" ::: "memory");',
    async_mma_wait='asm volatile("wgmma.wait_group.sync.aligned {n};" ::: "memory");',
    register_fence={"float": 'asm volatile("" : "+f"({reg}) :: "memory");',
                    "unsigned int": 'asm volatile("" : "+r"({reg}) :: "memory");'},
    dynamic_shared='extern __shared__ __align__(1024) unsigned char {name}[];',
    static_shared_bytes=48 * 1024,
    int_pow="tc_pow_int",
    bitcast="tc_bitcast<{type}>({value})",
    fragment_element=fragment_element,
    bulk_copies=BULK_COPIES,
)
