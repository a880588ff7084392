"""Unrolled loops expanded before WGSL is rendered (``targets/webgpu/unroll.py``): the expansion
itself, and a compiled MatMul's register tile indexed by constants in its shader, against numpy."""
from __future__ import annotations

import re

import numpy as np
from onnx import helper

from onnx_helpers import make_model, rand
from webgpu_helpers import requires_webgpu

import tcomp
from tcomp.tir.expr import Buffer, IntImm, Load, Var
from tcomp.tir.stmt import BufferStore, For, SeqStmt
from tcomp.targets.webgpu.unroll import MAX_COPIES, loop_bounds, never_runs, unroll


def _copy_loop(extent: int, kind: str = "unrolled") -> tuple:
    """``for i in <kind>(extent): B[i * 2 + 1] = A[i]``."""
    a, b, i = Buffer("A", (extent,), "float32"), Buffer("B", (2 * extent + 1,), "float32"), Var("i")
    return For(i, extent, BufferStore(b, Load(a, (i,)), (i * 2 + 1,)), kind), a, b


def test_unrolled_loop_becomes_its_copies_with_constant_indices():
    loop, a, b = _copy_loop(3)
    expanded = unroll(loop)
    assert isinstance(expanded, SeqStmt) and len(expanded.stmts) == 3
    for value, store in enumerate(expanded.stmts):
        assert store.buffer is b and store.indices == (IntImm(2 * value + 1),)
        assert store.value.indices == (IntImm(value),)


def test_serial_or_too_long_loops_stay_loops():
    assert isinstance(unroll(_copy_loop(3, kind="serial")[0]), For)
    assert isinstance(unroll(_copy_loop(MAX_COPIES + 1)[0]), For)
    outer = For(Var("o"), 2, _copy_loop(MAX_COPIES // 2 + 1)[0], "unrolled")  # 2 x (MAX/2 + 1) copies: too many
    expanded = unroll(outer)
    assert isinstance(expanded, SeqStmt) and all(isinstance(s, For) for s in expanded.stmts)



def test_copies_that_never_run_are_left_out():
    """A tile larger than its tensor: ``for t in threadIdx(4): for i in unrolled(MAX_COPIES * 2): if t * 16 + i
    < 3: B[t * 16 + i] = A[t * 16 + i]``. Only i < 3 can run (t = 0): three copies (counted against the
    budget, which the whole loop exceeds), each keeping its predicate."""
    a, b, i, t = Buffer("A", (3,), "float32"), Buffer("B", (3,), "float32"), Var("i"), Var("t")
    store = BufferStore(b, Load(a, (t * 16 + i,)), (t * 16 + i,), predicate=t * 16 + i < 3)
    kernel_body = For(t, 4, For(i, MAX_COPIES * 2, store, "unrolled"), "thread_binding", "threadIdx.x")
    expanded = unroll(kernel_body, bounds=loop_bounds(kernel_body))
    assert isinstance(expanded, For) and isinstance(expanded.body, SeqStmt) and len(expanded.body.stmts) == 3
    assert all(s.predicate is not None for s in expanded.body.stmts)
    assert never_runs(store, {t: (1, 3), i: (0, 15)}) and not never_runs(store, loop_bounds(kernel_body))

@requires_webgpu
def test_compiled_matmul_register_tile_has_constant_indices():
    w = rand((160, 200))
    model = make_model([helper.make_node("MatMul", ["x", "w"], ["y"])], {"x": rand((96, 160))}, ["y"],
                       opset=13, inits={"w": w})
    mod = tcomp.compile(model, target="webgpu")
    source = mod.assembly()
    locals_ = set(re.findall(r"var (\w+): array<f32, \d+>;", source))
    assert locals_, "the tiled schedule keeps a register tile"
    for name in locals_:
        indices = re.findall(rf"{name}\[([^\]]*)\]", source)
        assert indices and all(index.isdigit() for index in indices), name
    x = np.random.default_rng().standard_normal((96, 160)).astype(np.float32)
    np.testing.assert_allclose(mod.run({"x": x})[0], x @ w, rtol=1e-4, atol=1e-4)
