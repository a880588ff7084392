"""Hopper warpgroup tensor-core intrinsics: ``wgmma.mma_async`` on shared tiles (sm_90a).

A ``warpgroup`` buffer is a matrix spread over the registers of a warpgroup (4 consecutive
warps, 128 threads in ``threadIdx.x``); only these intrinsics touch it. Its layout is wgmma's
accumulator: the buffer is cut into 64 x N tiles (row-major, N the instruction's width), each
tile's N / 2 registers per thread lie together, and thread ``t`` holds, for each 8-column
chunk ``j``, rows ``16 * (t / 32) + (t % 32) / 4`` (and ``+ 8``), columns ``8 * j + 2 * (t % 4)``
(and ``+ 1``). A GEMM then reads::

    C_wg = 0                                     wgmma_fill_64xN_f32 per 64 x N tile (registers)
    for k0 [pipeline_stages=S]:                  per 64-deep step
      A_shared, B_shared = A[..], B[..]          (cooperative cp.async copies, storage_swizzle)
      C_wg += A_shared x B_shared                wgmma_64xNx64_f16f32: fence, 4 x wgmma.mma_async
                                                 m64nNk16, commit_group
                                                 (then wait_group 1 or 0: gpu/async_mma.py)
    C[..] = C_wg                                 wgmma_store_64xN_f32 (float2 per thread and chunk)

A and B are read from shared memory through matrix descriptors with the 128-byte swizzle, which
is ``storage_swizzle``'s layout on a 1024-byte aligned buffer: A (64 x 64, K-major) in rows of
exactly 128 bytes; B (64 x N, N-major) in rows of 64-element panels (``Buffer.panels``), its
tile starting at a panel. One call covers K = 64 (the swizzle line), so the four instructions
share one fence and one commit group. A call returns with its group running (``in_flight``):
the lowering waits for it (``wgmma.wait_group``) one call later in a pipelined loop, at once
elsewhere, and before the accumulators are read. ``arch = "sm_90a"``: building with ``-arch=sm_90``
compiles for ``sm_90a`` (``nvrtc.resolve_arch``); other architectures refuse it.
"""
from __future__ import annotations

from dataclasses import dataclass

from ...schedule.intrinsics import register_intrinsic, tile_starts
from ...tir import arith, te
from ...tir.expr import FloatImm, IntImm, dtype_bits
from ..csource import FRAGMENT_LANES, RenderError
from .intrinsics import matmul_description
from .mma import _SHARED_ADDRESS, _scoped

WARPGROUP = FRAGMENT_LANES["warpgroup"]
M, K_STEP, K = 64, 16, 64  # rows per instruction, depth per instruction, depth per call (a 128-byte line)
WIDTHS = (64, 128, 256)
ARCH = "sm_90a"
_DESCRIPTOR = """
__device__ __forceinline__ unsigned long long tc_wgmma_descriptor(const void* tile, unsigned int leading,
                                                                  unsigned int stride) {
  /* start address, leading and stride byte offsets (16-byte units), 128-byte swizzle */
  return (unsigned long long)((tc_shared_address(tile) & 0x3FFFF) >> 4) |
         ((unsigned long long)(leading >> 4) << 16) | ((unsigned long long)(stride >> 4) << 32) | (1ull << 62);
}
"""


def accumulator_register(renderer, load, width: int) -> str:
    """The first register (index into the thread's array) of the 64 x ``width`` accumulator tile
    starting at ``load`` (a ``warpgroup`` buffer access), as C text."""
    buf = load.buffer
    if buf.scope != "warpgroup":
        raise RenderError(f"{buf.name} is a {buf.scope} buffer; the accumulator must be a warpgroup fragment "
                          f"(scope 'warpgroup')")
    shape = [arith.simplify(s) for s in buf.shape]
    if not all(isinstance(s, IntImm) for s in shape) or shape[-2].value % M or shape[-1].value % width:
        raise RenderError(f"warpgroup buffer {buf.name} has shape {[str(s) for s in shape]}, not whole {M}x{width} "
                          f"accumulator tiles")
    counts = [s.value for s in shape[:-2]] + [shape[-2].value // M, shape[-1].value // width]
    index = list(load.indices[:-2]) + [load.indices[-2] // M, load.indices[-1] // width]
    linear = IntImm(0)
    for i, count in zip(index, counts):
        linear = linear * count + i
    return renderer.expr(arith.simplify(linear * (M * width // WARPGROUP), renderer.bounds()))


def _check_shared(load, what: str, rows_bytes: int | None) -> None:
    buf = load.buffer
    if buf.scope != "shared" or not buf.swizzled:
        raise RenderError(f"wgmma reads {what} from a swizzled shared buffer (storage_swizzle); {buf.name} is "
                          f"{buf.scope}{'' if buf.swizzled else ', not swizzled'}")
    row_bytes = arith.simplify(buf.shape[-1]).value * dtype_bits(buf.dtype) // 8
    rows = arith.simplify(buf.shape[-2])
    if rows_bytes is not None and row_bytes != rows_bytes:
        raise RenderError(f"wgmma reads {what} ({buf.name}) in rows of exactly {rows_bytes} bytes (the 128-byte "
                          f"swizzle line), not {row_bytes}")
    if row_bytes % 128 or not isinstance(rows, IntImm) or rows.value % 8:
        raise RenderError(f"wgmma reads {what} ({buf.name}) in whole 8 x 128-byte swizzle atoms; its shape is "
                          f"{[str(s) for s in buf.shape]}")


@dataclass(frozen=True)
class WarpgroupMma:
    """``C += A x B`` for a 64 x ``width`` fp32 tile over K = 64: four ``wgmma.mma_async
    m64n{width}k16`` between one ``wgmma.fence`` and one commit (``kind``: f16, bf16); the group
    is left running."""

    width: int
    kind: str
    in_flight = 1
    warp_wide = True
    lanes = WARPGROUP
    arch = ARCH

    def render(self, renderer, intrinsic, call) -> None:
        a, b, c = tile_starts(call)
        _check_shared(a, "A", 128)
        _check_shared(b, "B", None)
        renderer.snippets["tc_shared_address"] = _SHARED_ADDRESS
        renderer.snippets["tc_wgmma_descriptor"] = _DESCRIPTOR
        first, name = accumulator_register(renderer, c, self.width), renderer.name(c.buffer)
        panels = b.buffer.panels()
        elem = dtype_bits(b.buffer.dtype) // 8
        leading = panels[1] * panels[0] * elem if panels is not None else 16  # bytes between 64-column panels
        count = self.width // 2
        outputs = ", ".join(f'"+f"({name}[{first} + {i}])' for i in range(count))
        regs = "{" + ", ".join(f"%{i}" for i in range(count)) + "}"
        renderer.line("{")
        renderer.line(f"  const unsigned long long tc_da = tc_wgmma_descriptor({renderer.address_of(a)}, 16, 1024);")
        renderer.line(f"  const unsigned long long tc_db = tc_wgmma_descriptor({renderer.address_of(b)}, {leading}, "
                      f"1024);")
        renderer.line('  asm volatile("wgmma.fence.sync.aligned;" ::: "memory");')
        for step in range(K // K_STEP):
            # A advances 16 elements (32 bytes) along its line, B 16 rows (two 1024-byte atoms)
            renderer.line(f'  asm volatile("{{ .reg .pred p; setp.ne.b32 p, 1, 0; wgmma.mma_async.sync.aligned.'
                          f'm64n{self.width}k16.f32.{self.kind}.{self.kind} {regs}, %{count}, %{count + 1}, p, 1, 1, '
                          f'0, 1; }}" : {outputs} : "l"(tc_da + {2 * step}), "l"(tc_db + {128 * step}));')
        renderer.line('  asm volatile("wgmma.commit_group.sync.aligned;" ::: "memory");')
        renderer.line("}")


@dataclass(frozen=True)
class FillWarpgroupAccumulator:
    """Zeroes a 64 x ``width`` fp32 accumulator tile (``width / 2`` registers per thread)."""

    width: int
    warp_wide = True
    lanes = WARPGROUP

    def render(self, renderer, intrinsic, call) -> None:
        (c,) = tile_starts(call)
        first, name = accumulator_register(renderer, c, self.width), renderer.name(c.buffer)
        renderer.line(f"#pragma unroll")
        renderer.line(f"for (int tc_r = 0; tc_r < {self.width // 2}; ++tc_r) {name}[{first} + tc_r] = 0.0f;")


@dataclass(frozen=True)
class StoreWarpgroupAccumulator:
    """A 64 x ``width`` fp32 accumulator tile to memory, one ``float2`` per thread, 8-column chunk and
    8-row half."""

    width: int
    warp_wide = True
    lanes = WARPGROUP

    def render(self, renderer, intrinsic, call) -> None:
        c, dst = tile_starts(call)
        first, name = accumulator_register(renderer, c, self.width), renderer.name(c.buffer)
        stride = renderer.row_stride(dst)
        row = f"((threadIdx.x / 32) * 16 + (threadIdx.x % 32) / 4)"
        renderer.line("#pragma unroll")
        renderer.line(f"for (int tc_j = 0; tc_j < {self.width // 8}; ++tc_j) {{")
        for half in range(2):
            at = renderer.address_of(dst, f"({row} + {8 * half}) * {stride} + tc_j * 8 + (threadIdx.x % 4) * 2")
            renderer.line(f"  *(float2*){at} = make_float2({name}[{first} + tc_j * 4 + {2 * half}], "
                          f"{name}[{first} + tc_j * 4 + {2 * half + 1}]);")
        renderer.line("}")


def _copy(name: str, shape: tuple, src_scope: str, dst_scope: str):
    src = te.placeholder(shape, "float32", name="S")
    dst = te.compute(shape, lambda i, j: src[i, j], name="D")
    return _scoped(te.create_func([src, dst], name=name), {"S": src_scope, "D": dst_scope})


def _fill(name: str, width: int):
    c = te.compute((M, width), lambda i, j: FloatImm(0.0, "float32"), name="C")
    return _scoped(te.create_func([c], name=name), {"C": "warpgroup"})


for _width in WIDTHS:
    for _dtype, _kind in (("float16", "f16"), ("bfloat16", "bf16")):
        _name = f"wgmma_64x{_width}x{K}_{_kind}f32"
        register_intrinsic(_name, _scoped(matmul_description(_name, M, _width, K, _dtype, "float32"),
                                          {"A": "shared", "B": "shared", "C": "warpgroup"}),
                           {"cuda": WarpgroupMma(_width, _kind)}, strided_rows=True)
    register_intrinsic(f"wgmma_fill_64x{_width}_f32", _fill(f"wgmma_fill_64x{_width}_f32", _width),
                       {"cuda": FillWarpgroupAccumulator(_width)}, strided_rows=True)
    register_intrinsic(f"wgmma_store_64x{_width}_f32",
                       _copy(f"wgmma_store_64x{_width}_f32", (M, _width), "warpgroup", "global"),
                       {"cuda": StoreWarpgroupAccumulator(_width)}, strided_rows=True)
