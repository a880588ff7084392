"""Hopper's copy engine (TMA) and mbarriers for the bulk copies of ``gpu/bulk_copy.py`` (sm_90).

A tile map is a kernel parameter ``const __grid_constant__ tc_tile_map`` (the launch encodes it:
``driver.tile_map``); the calls render as inline PTX::

    async_barrier_init(ready[s], 1)          mbarrier.init.shared::cta.b64 [ready + 8s], 1
    async_barrier_expect(ready[s], 49152)    mbarrier.arrive.expect_tx.shared::cta.b64 _, [ready + 8s], 49152
    bulk_copy(&A_s[s, 0, 0], A[i0, k], ready[s], 256, 64)
                                             cp.async.bulk.tensor.2d.shared::cluster.global.mbarrier::
                                               complete_tx::bytes [A_s + ..], [A_tiles, {k, i0}], [ready + 8s]
    async_barrier_wait(ready[s], phase)      mbarrier.try_wait.parity.shared::cta.b64 until it holds

The box's coordinates go innermost axis first, as the descriptor's dimensions do.
"""
from __future__ import annotations

from ..gpu.bulk_copy import COPY, EXPECT, INIT, WAIT, tile_map_of
from .mma import _SHARED_ADDRESS

ARCH = "sm_90"  # the copy engine and transaction-counting mbarriers
_HELPERS = r"""
struct __align__(64) tc_tile_map { unsigned long long bits[16]; };
__device__ __forceinline__ void tc_async_barrier_wait(unsigned int barrier, unsigned int parity) {
  unsigned int ready = 0;
  do {
    asm volatile("{ .reg .pred p; mbarrier.try_wait.parity.shared::cta.b64 p, [%1], %2; selp.u32 %0, 1, 0, p; }"
                 : "=r"(ready) : "r"(barrier), "r"(parity) : "memory");
  } while (!ready);
}
"""


class BulkCopies:
    """The CUDA dialect's ``bulk_copies`` (``csource.Dialect``)."""

    def param(self, renderer, name: str) -> str:
        self._helpers(renderer)
        return f"const __grid_constant__ tc_tile_map {name}"

    def render(self, renderer, call) -> None:
        self._helpers(renderer)
        renderer.required_arch[COPY] = ARCH
        barrier = f"tc_shared_address({renderer.address_of(call.args[0] if call.name != COPY else call.args[2])})"
        if call.name == INIT:
            renderer.line(f'asm volatile("mbarrier.init.shared::cta.b64 [%0], %1;" :: "r"({barrier}), '
                          f'"r"({renderer.expr(call.args[1])}) : "memory");')
            renderer.line('asm volatile("fence.mbarrier_init.release.cluster;" ::: "memory");')
        elif call.name == EXPECT:
            renderer.line(f'asm volatile("mbarrier.arrive.expect_tx.shared::cta.b64 _, [%0], %1;" :: "r"({barrier}), '
                          f'"r"({renderer.expr(call.args[1])}) : "memory");')
        elif call.name == WAIT:
            renderer.line(f"tc_async_barrier_wait({barrier}, {renderer.expr(call.args[1])});")
        else:
            dst, src = call.args[0], call.args[1]
            coords = [f'"r"((int)({renderer.expr(index)}))' for index in reversed(src.indices)]
            rank = len(coords)
            slots = ", ".join(f"%{2 + i}" for i in range(rank))
            renderer.line(f'asm volatile("cp.async.bulk.tensor.{rank}d.shared::cluster.global.mbarrier::complete_tx::'
                          f'bytes [%0], [%1, {{{slots}}}], [%{2 + rank}];" :: '
                          f'"r"(tc_shared_address({renderer.address_of(dst)})), '
                          f'"l"((unsigned long long)&{renderer.tile_map(tile_map_of(call))}), {", ".join(coords)}, '
                          f'"r"({barrier}) : "memory");')

    @staticmethod
    def _helpers(renderer) -> None:
        renderer.snippets["tc_shared_address"] = _SHARED_ADDRESS
        renderer.snippets["tc_tile_map"] = _HELPERS


BULK_COPIES = BulkCopies()
