"""Analytic cost of a CPU matmul tiling, used by the default schedule to pick tile sizes.

The learned model of the auto-scheduler replaces it; until then a few lines of
arithmetic choose among candidate tilings (see ``schedule/matmul.py``)::

    time   = rounds * task      rounds = ceil(tasks / threads)   (static chunks of tiles)
    task   = padded_flops / (FLOPS_PER_CYCLE * efficiency(mr, nr))
           + PACK_CYCLES * (elements of B packed for the tile)
           + EPILOGUE_CYCLES * mb * nb

Padding counts: a tile computes all of its mb x nb outputs even past M or N.
Only the ratios between the constants matter.
"""
from __future__ import annotations

FLOPS_PER_CYCLE = 64.0      # two 16-lane FMA pipes
PACK_CYCLES = 1.0           # per packed element of B
EPILOGUE_CYCLES = 0.5       # per output element written by the epilogue


def microkernel_efficiency(mr: int, nr_vectors: int) -> float:
    """Share of FMA throughput an mr x nr_vectors register tile sustains.

    Each k step issues mr * nr_vectors FMAs and mr + nr_vectors loads; more than one load
    per two FMAs stalls the FMA pipes, and fewer than 24 independent accumulators leave
    the FMA latency exposed.
    """
    fmas = mr * nr_vectors
    excess_loads = max(0.0, mr + nr_vectors - fmas / 2)
    load_bound = fmas / (fmas + 0.5 * excess_loads)
    latency_bound = min(1.0, fmas / 24)
    return load_bound * latency_bound


def matmul_cost(batch: int, M: int, N: int, K: int, mr: int, nr_vectors: int, mb: int, nb: int,
                lanes: int, threads: int, b_grid: tuple | None = None) -> float:
    """Estimated cycles of the tiled matmul (see module docstring).

    With ``b_grid = (OH, OW)`` (a convolution), B is packed by whole vector groups of
    output-pixel rows, so a tile pays for every row it touches, padded to the vector width.
    """
    m_tiles, n_tiles = -(-M // mb), -(-N // nb)
    tasks = batch * m_tiles * n_tiles
    rounds = -(-tasks // threads)
    compute = 2.0 * mb * nb * K / (FLOPS_PER_CYCLE * microkernel_efficiency(mr, nr_vectors))
    packed = nb
    if b_grid is not None:
        oh, ow = b_grid
        rows = min(oh, -(-nb // ow) + 1)
        packed = rows * -(-ow // lanes) * lanes
    task = compute + PACK_CYCLES * packed * K + EPILOGUE_CYCLES * mb * nb
    return rounds * task
