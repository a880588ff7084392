"""Design-space rules: each turns one block of a schedule into sketches (``space.py`` runs them).

    auto_inline.py        compute_inline of elementwise producers (before the per-block rules)
    multi_level_tiling.py blocks with data reuse (matmul, conv, batch matmul): tiles by a
                          structure ("SSRSRS" on the CPU), cache-write, fused epilogues,
                          parallel / vectorize / unroll
    tensorize.py          tiles to a registered intrinsic's shape and tensorizes, where it matches
    reduction.py          reductions without reuse (row sums / max): plain parallel and rfactor
    row_fusion.py         row statistics (softmax, layer norm) computed under the output's row loop
    injective.py          spatial-only blocks: fuse, split by the vector width, parallel, vectorize
    blocks.py             what the rules ask about blocks and loops (kinds, reuse, consumers)

A rule's ``apply(func, sch, name, ...)`` returns new schedules (forks of ``sch`` replayed from
its trace) with the block scheduled, or [] where it does not apply; sampled decisions are
sampling instructions in the trace, so every sketch is a design space.
"""
