"""Hand-written variants of the fp16 wgmma GEMM next to tcomp's kernels and cuBLAS: which structure pays.

    python benchmarks/gpu_gemm_variants.py [--n 4096] [--rounds 15] [--variants tma,ws,...]

The question behind ``targets/gpu/bulk_copy.py``: what holds the 256 x 128 x 64 wgmma tile (2 warpgroups x
2 64-row tiles, 4 stages) that tcomp's untuned schedule builds? Each variant below is that tile written by
hand in CUDA (descriptors and the 128-byte swizzle as ``targets/cuda/wgmma.py`` makes them), timed with
CUDA events in interleaved rounds (medians) against:

- ``tcomp cp.async``: tcomp's kernel without bulk copies (the loop's ``pipeline_bulk_copy`` annotation
  dropped): every thread copies its share with ``cp.async``;
- ``tcomp bulk``: tcomp's kernel as it builds (TMA from one thread, ``bulk_copy.py``);
- ``cuBLAS``: ``torch.matmul`` (fp16 out) and ``torch.mm(.., out_dtype=float32)`` where torch has it.

Variants: ``tma`` (one thread issues the TMA copies, all threads wait on the stage's mbarrier, one barrier a
step: what tcomp's lowering now emits), ``ws`` (warp specialization: a producer warpgroup with
``setmaxnreg.dec``, two consumer warpgroups, full/empty mbarriers, no block barrier), ``raster8`` (blocks
in groups of 8 block rows for L2 reuse), ``cluster2`` (2-CTA clusters along N, A multicast to both).
Each is checked against fp32 torch before it is timed. Needs an sm_90 GPU and torch.
"""
from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tcomp.targets.cuda.wgmma import _DESCRIPTOR

HEAD = r"""
struct __align__(64) TmaDesc { unsigned long long v[16]; };
__device__ __forceinline__ unsigned tc_shared_address(const void* p) { return (unsigned)__cvta_generic_to_shared(p); }
__device__ __forceinline__ void mbar_init(unsigned bar, unsigned count) {
  asm volatile("mbarrier.init.shared::cta.b64 [%0], %1;" :: "r"(bar), "r"(count)); }
__device__ __forceinline__ void mbar_expect_tx(unsigned bar, unsigned bytes) {
  asm volatile("mbarrier.arrive.expect_tx.shared::cta.b64 _, [%0], %1;" :: "r"(bar), "r"(bytes) : "memory"); }
__device__ __forceinline__ void mbar_wait(unsigned bar, unsigned parity) {
  unsigned ok = 0;
  do { asm volatile("{ .reg .pred P; mbarrier.try_wait.parity.shared::cta.b64 P, [%1], %2; selp.u32 %0, 1, 0, P; }"
                    : "=r"(ok) : "r"(bar), "r"(parity) : "memory"); } while (!ok); }
__device__ __forceinline__ void mbar_arrive(unsigned bar) {
  asm volatile("mbarrier.arrive.shared::cta.b64 _, [%0];" :: "r"(bar) : "memory"); }
__device__ __forceinline__ void mbar_arrive_cluster(unsigned bar, unsigned rank) {
  asm volatile("{ .reg .b32 r; mapa.shared::cluster.u32 r, %0, %1; mbarrier.arrive.release.cluster.shared::cluster.b64 _, [r]; }"
               :: "r"(bar), "r"(rank) : "memory"); }
__device__ __forceinline__ void tma_load(unsigned dst, const TmaDesc* map, int c0, int c1, unsigned bar) {
  asm volatile("cp.async.bulk.tensor.2d.shared::cluster.global.mbarrier::complete_tx::bytes [%0], [%1, {%2, %3}], [%4];"
               :: "r"(dst), "l"((unsigned long long)map), "r"(c0), "r"(c1), "r"(bar) : "memory"); }
__device__ __forceinline__ void tma_load_multicast(unsigned dst, const TmaDesc* map, int c0, int c1, unsigned bar, unsigned short mask) {
  asm volatile("cp.async.bulk.tensor.2d.shared::cluster.global.mbarrier::complete_tx::bytes.multicast::cluster [%0], [%1, {%2, %3}], [%4], %5;"
               :: "r"(dst), "l"((unsigned long long)map), "r"(c0), "r"(c1), "r"(bar), "h"(mask) : "memory"); }
__device__ __forceinline__ unsigned cluster_rank() { unsigned r; asm volatile("mov.u32 %0, %%cluster_ctarank;" : "=r"(r)); return r; }
"""

def wgmma_calls(n, acc0, a_expr, b_expr, leading):
    """One 64-deep step of m64n{n}k16 wgmma calls on descriptors of the two shared tiles."""
    regs = "{" + ", ".join(f"%{i}" for i in range(n // 2)) + "}"
    outs = ", ".join(f'"+f"(acc[{acc0} + {i}])' for i in range(n // 2))
    lines = [f"{{ const unsigned long long da = tc_wgmma_descriptor({a_expr}, 16, 1024);",
             f"  const unsigned long long db = tc_wgmma_descriptor({b_expr}, {leading}, 1024);"]
    for s in range(4):
        lines.append(f'  asm volatile("{{ .reg .pred p; setp.ne.b32 p, 1, 0; wgmma.mma_async.sync.aligned.m64n{n}k16.f32.f16.f16 '
                     f'{regs}, %{n//2}, %{n//2+1}, p, 1, 1, 0, 1; }}" : {outs} : "l"(da + {2*s}), "l"(db + {128*s}));')
    lines.append("}")
    return "\n".join(lines)


def kernel_source(n: int, ws: bool, cluster: int, group: int, TM: int = 2, BN: int = 128, S: int = 4, consumers: int = 2):
    """CUDA source of the hand-written variant, its dynamic shared bytes, grid, block, and the A/B box rows."""
    BM = 64 * TM * consumers
    KT = n // 64
    N = n
    acc_n = TM * BN // 2
    threads = 128 * (consumers + (1 if ws else 0))
    a_bytes, b_bytes = BM * 128, BN * 128
    tm_expr = lambda i: f"As + s * {BM*64} + (c * {TM} + {i}) * 4096"
    body = []
    for i in range(TM):
        body.append(wgmma_calls(BN, i * (BN // 2), tm_expr(i), f"Bs + s * {64*BN}", 64 * 64 * 2))
    mma = "\n".join(body)
    issue = f"""
      mbar_expect_tx(full + 8 * s, {a_bytes + b_bytes});
      {"tma_load_multicast(As_u + s * %d + rank * %d, &tA, k * 64, bm * %d + rank * %d, full + 8 * s, 3);" % (BM*128, BM*64, BM, BM//2) if cluster == 2 else "tma_load(As_u + s * %d, &tA, k * 64, bm * %d, full + 8 * s);" % (BM*128, BM)}
      #pragma unroll
      for (int p = 0; p < {BN // 64}; ++p) tma_load(Bs_u + s * {BN*128} + p * 8192, &tB, bn * {BN} + p * 64, k * 64, full + 8 * s);"""
    raster = "int bn = blockIdx.x, bm = blockIdx.y;"
    if group:
        raster = f"""int lin = blockIdx.y * gridDim.x + blockIdx.x; int rank_x = lin % {cluster}; int pair = lin / {cluster};
    int npairs = gridDim.x / {cluster}; int width = {group} * npairs; int first = (pair / width) * {group};
    int gsize = min((int)gridDim.y - first, {group});
    int bm = first + (pair % width) % gsize; int bn = ((pair % width) / gsize) * {cluster} + rank_x;"""
    release = "if (tid == 0 && k > 0) { %s }" % (
        "mbar_arrive_cluster(empty + 8 * ((k - 1) % S), 0); mbar_arrive_cluster(empty + 8 * ((k - 1) % S), 1);" if cluster == 2
        else "mbar_arrive(empty + 8 * ((k - 1) % S));")
    epilogue = f"""
    #pragma unroll
    for (int i = 0; i < {TM}; ++i) {{
      #pragma unroll
      for (int j = 0; j < {BN // 8}; ++j) {{
        int row = bm * {BM} + (c * {TM} + i) * 64 + (tid / 32) * 16 + (tid % 32) / 4;
        int col = bn * {BN} + j * 8 + (tid % 4) * 2;
        *(float2*)(C + row * {N} + col) = make_float2(acc[i * {BN//2} + j * 4 + 0], acc[i * {BN//2} + j * 4 + 1]);
        *(float2*)(C + (row + 8) * {N} + col) = make_float2(acc[i * {BN//2} + j * 4 + 2], acc[i * {BN//2} + j * 4 + 3]);
      }}
    }}"""
    cluster_attr = f"__cluster_dims__({cluster}, 1, 1) " if cluster > 1 else ""
    sync_all = ('asm volatile("barrier.cluster.arrive.release.aligned; barrier.cluster.wait.acquire.aligned;" ::: "memory");'
                if cluster > 1 else "__syncthreads();")
    end_sync = 'asm volatile("barrier.cluster.arrive.release; barrier.cluster.wait.acquire;" ::: "memory");' if cluster > 1 else ""
    if ws:
        main = f"""
  if (threadIdx.x < 128) {{
    asm volatile("setmaxnreg.dec.sync.aligned.u32 40;");
    if (threadIdx.x == 0) {{
      for (int k = 0; k < {KT}; ++k) {{
        const int s = k % S;
        mbar_wait(empty + 8 * s, ((k / S) & 1) ^ 1);
        {issue}
      }}
    }}
  }} else {{
    asm volatile("setmaxnreg.inc.sync.aligned.u32 232;");
    const int c = threadIdx.x / 128 - 1, tid = threadIdx.x % 128;
    float acc[{acc_n}];
    #pragma unroll
    for (int r = 0; r < {acc_n}; ++r) acc[r] = 0.0f;
    for (int k = 0; k < {KT}; ++k) {{
      const int s = k % S;
      mbar_wait(full + 8 * s, (k / S) & 1);
      asm volatile("wgmma.fence.sync.aligned;" ::: "memory");
      {mma}
      asm volatile("wgmma.commit_group.sync.aligned;" ::: "memory");
      asm volatile("wgmma.wait_group.sync.aligned 1;" ::: "memory");
      {release}
    }}
    asm volatile("wgmma.wait_group.sync.aligned 0;" ::: "memory");
    #pragma unroll
    for (int r = 0; r < {acc_n}; ++r) asm volatile("" : "+f"(acc[r]) :: "memory");
    {epilogue}
  }}"""
    else:
        main = f"""
  const int c = threadIdx.x / 128, tid = threadIdx.x % 128;
  if (threadIdx.x == 0) {{
    for (int k = 0; k < S - 2; ++k) {{ const int s = k; {issue} }}
  }}
  float acc[{acc_n}];
  #pragma unroll
  for (int r = 0; r < {acc_n}; ++r) acc[r] = 0.0f;
  for (int k = 0; k < {KT}; ++k) {{
    const int s = k % S;
    mbar_wait(full + 8 * s, (k / S) & 1);
    __syncthreads();
    if (threadIdx.x == 0 && k + S - 2 < {KT}) {{ const int kk = k + S - 2; {{ const int s = kk % S; const int k = kk; {issue} }} }}
    asm volatile("wgmma.fence.sync.aligned;" ::: "memory");
    {mma}
    asm volatile("wgmma.commit_group.sync.aligned;" ::: "memory");
    asm volatile("wgmma.wait_group.sync.aligned 1;" ::: "memory");
  }}
  asm volatile("wgmma.wait_group.sync.aligned 0;" ::: "memory");
  #pragma unroll
  for (int r = 0; r < {acc_n}; ++r) asm volatile("" : "+f"(acc[r]) :: "memory");
  {epilogue}"""
    src = HEAD + _DESCRIPTOR + f"""
extern "C" __global__ void {cluster_attr}__launch_bounds__({threads}, 1) gemm(const __grid_constant__ TmaDesc tA, const __grid_constant__ TmaDesc tB, float* __restrict__ C) {{
  constexpr int S = {S};
  extern __shared__ __align__(1024) unsigned char smem[];
  unsigned short* As = (unsigned short*)smem;
  unsigned short* Bs = (unsigned short*)(smem + {S * a_bytes});
  const unsigned As_u = tc_shared_address(As), Bs_u = tc_shared_address(Bs);
  const unsigned full = tc_shared_address(smem + {S * (a_bytes + b_bytes)}), empty = full + 8 * S;
  const unsigned rank = {"cluster_rank()" if cluster > 1 else "0"};
  (void)rank;
  {raster}
  if (threadIdx.x == 0) {{
    for (int s = 0; s < S; ++s) {{ mbar_init(full + 8 * s, 1); mbar_init(empty + 8 * s, {consumers * cluster}); }}
    asm volatile("fence.mbarrier_init.release.cluster;" ::: "memory");
  }}
  {sync_all}
  {main}
  {end_sync}
}}
"""
    smem = S * (a_bytes + b_bytes) + 16 * S
    grid = (n // BN, n // BM, 1)
    return src, smem, grid, (threads, 1, 1), BM, BN


def events_time(fn, inner: int = 20) -> float:
    import torch

    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    start.record()
    for _ in range(inner):
        fn()
    end.record()
    end.synchronize()
    return start.elapsed_time(end) / inner / 1e3


def without_bulk_copies(func):
    """``func`` (scheduled) with its loops' ``pipeline_bulk_copy`` annotations dropped: the threads' copies."""
    from tcomp.targets.gpu.bulk_copy import BULK_COPY
    from tcomp.tir.stmt import For
    from tcomp.tir.transform import walk_stmts

    for node in walk_stmts(func.body):
        if isinstance(node, For):
            node.annotations.pop(BULK_COPY, None)
    return func


def tcomp_launch(func, a, b, c):
    """A launch of tcomp's build of ``func`` on torch's device tensors (its own launches, no copies)."""
    import tcomp
    from tcomp.targets.cuda import driver
    from tcomp.targets.cuda.kernel import AXES

    kernel = tcomp.build(func, target="cuda -arch=sm_90")
    module = driver.Module(kernel.image.cubin, kernel.image.dynamic_shared)
    (device_kernel,) = kernel.program.kernels
    pointers = {buf: t.data_ptr() for buf, t in zip(kernel.func.params, (a, b, c))}
    args = [(pointers[buf], driver.POINTER) for buf in device_kernel.params]
    args += [(driver.tile_map(pointers[t.buffer], tuple(int(e.value) for e in t.buffer.shape), t.box, t.buffer.dtype),
              None) for t in device_kernel.tile_maps]
    grid, block = ([device_kernel.launch[f"{axis}.{x}"].value if f"{axis}.{x}" in device_kernel.launch else 1
                    for x in AXES] for axis in ("blockIdx", "threadIdx"))
    function = module.function(device_kernel.name)
    return lambda: driver.launch(function, grid, block, args)


VARIANTS = {"tma": (False, 1, 0), "tma raster8": (False, 1, 8), "ws": (True, 1, 0), "ws raster8": (True, 1, 8),
            "ws cluster2": (True, 2, 0), "ws cluster2 raster8": (True, 2, 8)}


def main() -> None:
    import torch
    from gpu import gemm_func
    from tcomp.targets.cuda import driver
    from tcomp.targets.cuda.nvrtc import compile_cuda
    from tcomp.targets.gpu.groups import tiled_func

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=4096)
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--variants", default=",".join(VARIANTS))
    args = parser.parse_args()
    n = args.n
    torch.manual_seed(0)
    a = torch.randn(n, n, device="cuda", dtype=torch.float16)
    b = torch.randn(n, n, device="cuda", dtype=torch.float16)
    ref = a.float() @ b.float()
    target = "cuda -arch=sm_90"
    runs = {}
    for name, func in (("tcomp cp.async", without_bulk_copies(tiled_func(gemm_func(n, "float16"), target))),
                       ("tcomp bulk", tiled_func(gemm_func(n, "float16"), target))):
        c = torch.zeros(n, n, device="cuda", dtype=torch.float32)
        runs[name] = (tcomp_launch(func, a, b, c), c)
    for name in args.variants.split(","):
        ws, cluster, group = VARIANTS[name]
        source, smem, grid, block, rows, _ = kernel_source(n, ws, cluster, group)
        image = compile_cuda(source, "gemm", "sm_90a")
        function = driver.Module(image.cubin, {"gemm": smem}).function("gemm")
        c = torch.zeros(n, n, device="cuda", dtype=torch.float32)
        launch_args = [(driver.tile_map(a.data_ptr(), (n, n), (rows // cluster, 64), "float16"), None),
                       (driver.tile_map(b.data_ptr(), (n, n), (64, 64), "float16"), None),
                       (c.data_ptr(), driver.POINTER)]
        runs[name] = ((lambda f=function, g=grid, k=block, x=launch_args: driver.launch(f, g, k, x)), c)
    for name, (launch, c) in runs.items():
        launch()
        torch.cuda.synchronize()
        error = ((c - ref).norm() / ref.norm()).item()
        print(f"{name}: relative error {error:.2e}")
        if error > 1e-3:
            raise SystemExit(f"{name} is wrong")
    timed = {name: launch for name, (launch, _) in runs.items()}
    timed["cuBLAS (fp16 out)"] = lambda: torch.matmul(a, b)
    if "out_dtype" in (torch.mm.__doc__ or ""):
        timed["cuBLAS (fp32 out)"] = lambda: torch.mm(a, b, out_dtype=torch.float32)
    for fn in timed.values():
        for _ in range(5):
            fn()
    torch.cuda.synchronize()
    times = {name: [] for name in timed}
    for _ in range(args.rounds):
        for name, fn in timed.items():
            times[name].append(events_time(fn))
    base = statistics.median(times["cuBLAS (fp16 out)"])
    print(f"GEMM {n}^3 fp16, fp32 accumulate; medians of {args.rounds} interleaved rounds x 20 launches")
    for name, ts in times.items():
        m = statistics.median(ts)
        print(f"{name:24s} {m * 1e6:8.1f} us {2 * n ** 3 / m / 1e12:7.1f} TFLOP/s  / cuBLAS {base / m:.3f}")


if __name__ == "__main__":
    main()
