"""Loop IR: codegen against numpy (the simplifier on its own: tests/test_arith.py)."""
import ctypes

import numpy as np
import pytest

from tcomp.targets.cpu.jit import JITModule, host_target
from tcomp.tir import arith
from tcomp.tir.expr import BinOp, Buffer, IntImm, Var, call, substitute
from tcomp.tir.stmt import BufferStore, For, PrimFunc, block, loop, prefetch, seq


def _run(func, arrays):
    module = JITModule([func], host_target())
    args = (ctypes.c_void_p * len(arrays))(*[a.ctypes.data for a in arrays])
    module.function(func.name)(ctypes.addressof(args))


@pytest.mark.parametrize("n", [1, 15, 16, 17, 100, 1000])
def test_vectorized_loop_with_tail_and_math(n):
    a_buf, b_buf = Buffer("A", (n,), "float32"), Buffer("B", (n,), "float32")
    io, ii = Var("io"), Var("ii")
    body = For(io, (n + 15) // 16, For(ii, 16, block(
        "B", [("S", n, io * 16 + ii)],
        lambda v: BufferStore(b_buf, call("exp", a_buf[v]) + call("tanh", a_buf[v]) * call("erf", a_buf[v]), (v,)),
        predicate=io * 16 + ii < n), "vectorized"), "parallel")
    a = np.random.default_rng().uniform(-10, 10, n).astype(np.float32)
    guard = np.full(n + 64, 7.0, np.float32)  # B followed by a guard zone that must stay untouched
    b = guard[:n]
    _run(PrimFunc("k", (a_buf, b_buf), body), [a, b])
    from math import erf

    expected = np.exp(a.astype(np.float64)) + np.tanh(a.astype(np.float64)) * np.array([erf(x) for x in a])
    np.testing.assert_allclose(b, expected, rtol=2e-6, atol=1e-6)
    assert (guard[n:] == 7.0).all()


def test_gather_and_strided_loads_in_vector_loops():
    n = 40
    src = Buffer("S", (4 * n,), "float32")
    dst = Buffer("D", (3, n), "float32")
    r, jo, ji = Var("r"), Var("jo"), Var("ji")

    def value(vr, vj):
        # stride 2 (shuffled wide load), stride 3 (shuffled) and a non-affine index (gather)
        return src[vj * 2] + src[vj * 3 + vr] * 10.0 + src[(vj * vj) % 97] * 100.0

    body = loop(r, 3, loop(jo, 3, loop(ji, 16, block(
        "D", [("S", 3, r), ("S", n, jo * 16 + ji)], lambda vr, vj: BufferStore(dst, value(vr, vj), (vr, vj)),
        predicate=jo * 16 + ji < n), "vectorized")))
    s = np.random.default_rng().standard_normal(4 * n).astype(np.float32)
    d = np.zeros((3, n), np.float32)
    _run(PrimFunc("g", (src, dst), body), [s, d])
    j = np.arange(n)
    expected = np.stack([s[j * 2] + s[j * 3 + rr] * 10 + s[(j * j) % 97] * 100 for rr in range(3)])
    np.testing.assert_allclose(d, expected, rtol=1e-5)


def test_prefetch_hints_change_no_values_and_never_fault():
    """A prefetch of the element a row ahead (past the buffer at the last rows) beside a vectorized copy:
    the copy is exact; on x86 the hint is a ``prefetcht1`` (L2 locality)."""
    rows, n = 8, 32
    a_buf, b_buf = Buffer("A", (rows, n), "float32"), Buffer("B", (rows, n), "float32")
    r, j = Var("r"), Var("j")
    body = loop(r, rows, seq(prefetch(a_buf[r + 1, 0]), prefetch(a_buf[r + 4, 16]), loop(j, n, block(
        "B", [("S", rows, r), ("S", n, j)], lambda vr, vj: BufferStore(b_buf, a_buf[vr, vj] * 2.0, (vr, vj))),
        "vectorized")))
    func = PrimFunc("pf", (a_buf, b_buf), body)
    a, b = np.random.default_rng().standard_normal((rows, n)).astype(np.float32), np.zeros((rows, n), np.float32)
    _run(func, [a, b])
    np.testing.assert_array_equal(b, a * 2)
    module = JITModule([func], host_target())
    if module.target.triple.startswith("x86_64"):
        assert "prefetcht1" in module.assembly()


def test_substitute_replaces_only_the_given_variable():
    i, j = Var("i"), Var("i")
    expr = i + j
    assert arith.simplify(substitute(expr, {i: IntImm(3)}), {}) == arith.simplify(j + 3)


def test_int64_floor_division_of_negative_values():
    n = 32
    a_buf, b_buf, c_buf = (Buffer(name, (n,), "int64") for name in "ABC")
    i = Var("i")
    body = loop(i, n, block("C", [("S", n, i)], lambda v: BufferStore(
        c_buf, BinOp("floordiv", a_buf[v], b_buf[v]) * 1000 + BinOp("floormod", a_buf[v], b_buf[v]), (v,))))
    rng = np.random.default_rng()
    a = rng.integers(-50, 50, n)
    b = rng.integers(1, 7, n) * rng.choice([-1, 1], n)
    c = np.zeros(n, np.int64)
    _run(PrimFunc("fd", (a_buf, b_buf, c_buf), body), [a, b, c])
    np.testing.assert_array_equal(c, (a // b) * 1000 + a % b)


def test_ir_expresses_gpu_bindings_scopes_symbolic_extents_and_intrinsics():
    from tcomp.targets.cpu.codegen import CodegenError
    from tcomp.tir.expr import Call
    from tcomp.tir.stmt import Allocate, Evaluate

    n = Var("n")  # a symbolic extent
    a_buf, c_buf = Buffer("A", (n, 64), "float32"), Buffer("C", (n, 64), "float32")
    tile = Buffer("A_shared", (16, 64), "float32", scope="shared")
    bx, tx = Var("bx"), Var("tx")
    body = For(bx, (n + 15) // 16, Allocate(tile, For(tx, 64, block(
        "copy", [("S", 16, tx // 4), ("S", 64, tx)],
        lambda i, j: BufferStore(c_buf, a_buf[bx * 16 + i, j] * 2.0, (bx * 16 + i, j))),
        "thread_binding", "threadIdx.x")), "thread_binding", "blockIdx.x")
    func = PrimFunc("gpu_style", (a_buf, c_buf), body)
    text = str(func)
    assert 'thread_binding(64, "threadIdx.x")' in text and 'scope="shared"' in text
    assert "A: float32[n, 64]" in text
    intrinsic = Evaluate(Call("mma_sync_16x16x16", (a_buf[0, 0],), "float32"))
    assert "mma_sync_16x16x16(A[0, 0])" in str(intrinsic)
    with pytest.raises(CodegenError, match="bound to blockIdx.x"):
        JITModule([func], host_target())
