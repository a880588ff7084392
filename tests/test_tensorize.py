"""blockize, tensorize and the tensor-intrinsic registry: x86 VNNI (u8 x s8 -> s32) and BF16 GEMMs against numpy."""
from __future__ import annotations

import functools

import numpy as np
import pytest

import tcomp
from tcomp import tir
from tcomp.schedule.intrinsics import (
    IntrinsicError,
    get_intrinsic,
    list_intrinsics,
    register_implementation,
    register_intrinsic,
)
from tcomp.targets.cpu.codegen import CodegenError
from tcomp.targets.cpu.intrinsics import dot_description
from tcomp.tir.expr import cast
import dot_gemm

# (intrinsic, A dtype, B dtype, accumulator dtype, k per instruction, CPU feature)
VNNI = ("dot_16x4_vnni", "uint8", "int8", "int32", 4, "avx512vnni")
BF16 = ("dot_16x2_bf16", "bfloat16", "bfloat16", "float32", 2, "avx512bf16")


@functools.cache
def _host_features() -> set:
    import llvmlite.binding as llvm

    llvm.initialize_native_target()
    return {f[1:] for f in llvm.get_host_cpu_features().flatten().split(",") if f.startswith("+")}


def _require(feature: str) -> None:
    if feature not in _host_features():
        pytest.skip(f"the host CPU lacks {feature}")


def _gemm(m, n, k, a_dtype, b_dtype, acc, depth, packed=True):
    """C[m, n] = sum_k acc(A[m, k]) * acc(B[k, n]), B packed [n/16, k/depth, 16, depth] (or plain [k, n])."""
    if packed:
        return dot_gemm.packed_gemm(m, n, k, a_dtype, b_dtype, acc, depth)
    a = tir.placeholder((m, k), a_dtype, name="A")
    b = tir.placeholder((k, n), b_dtype, name="B")
    r = tir.reduce_axis(k, name="k")
    c = tir.compute((m, n), lambda i, j: tir.sum(cast(acc, a[i, r]) * cast(acc, b[r, j]), axis=r), name="C")
    return tir.create_func([a, b, c])


def _inputs(m, n, k, a_dtype, depth):
    return dot_gemm.inputs(np.random.default_rng(), m, n, k, a_dtype, depth)


@pytest.mark.parametrize("spec", [VNNI, BF16], ids=["vnni", "bf16"])
@pytest.mark.parametrize("m, n, k, parallel", [(64, 64, 64, False), (37, 48, 32, True)])
def test_tensorized_gemm_matches_numpy_and_uses_the_instruction(spec, m, n, k, parallel):
    name, a_dtype, b_dtype, acc, depth, feature = spec
    _require(feature)
    func = _gemm(m, n, k, a_dtype, b_dtype, acc, depth)
    sch = tcomp.Schedule(func)
    sch.tensorize(dot_gemm.tile(sch, depth, parallel), name)
    text = str(sch.func)
    assert f"{name}(&A[vi_o, (vk_o * {depth})], &B[vj_o, vk_o, 0, 0], &C[vi_o, (vj_o * 16)])" in text
    assert "block C_o[" in text and "block C[" not in text
    kernel = tcomp.build(sch.func)
    a, b, ref = _inputs(m, n, k, a_dtype, depth)
    if acc == "int32":
        np.testing.assert_array_equal(kernel(a, b), ref)
    else:
        np.testing.assert_allclose(kernel(a, b), ref, rtol=1e-4, atol=1e-4)
    instruction = {"dot_16x4_vnni": "vpdpbusd", "dot_16x2_bf16": "vdpbf16ps"}[name]
    assert instruction in kernel.assembly()


def test_blockize_then_tensorize_the_block_and_trace_round_trip():
    _require("avx512vnni")
    func = _gemm(32, 32, 16, "uint8", "int8", "int32", 4)
    sch = tcomp.Schedule(func)
    outer = sch.blockize(dot_gemm.tile(sch, 4))
    text = str(sch.func)
    assert "block C_o[vi_o = S(32): i, vj_o = S(2): j_0, vk_o = R(4): k_0]:" in text
    assert "block C[vi = S(32): vi_o, vj = S(32): (j_1 + (vj_o * 16)), vk = R(16): (k_1 + (vk_o * 4))]:" in text
    a, b, ref = _inputs(32, 32, 16, "uint8", 4)
    np.testing.assert_array_equal(tcomp.build(sch.func)(a, b), ref)  # blockize alone keeps the meaning
    sch.tensorize(outer, "dot_16x4_vnni")
    np.testing.assert_array_equal(tcomp.build(sch.func)(a, b), ref)
    replayed = tcomp.Trace.from_json(sch.trace.to_json()).apply_to(func)
    assert str(replayed.func) == str(sch.func)
    assert "sch.tensorize(b8, 'dot_16x4_vnni')" in str(sch.trace)


def test_tensorize_of_a_loop_round_trips():
    func = _gemm(16, 32, 8, "bfloat16", "bfloat16", "float32", 2)
    sch = tcomp.Schedule(func)
    sch.tensorize(dot_gemm.tile(sch, 2), "dot_16x2_bf16")
    replayed = tcomp.Trace.from_json(sch.trace.to_json()).apply_to(func)
    assert str(replayed.func) == str(sch.func)


def _mismatch(func, depth, intrinsic, match):
    sch = tcomp.Schedule(func)
    ji = dot_gemm.tile(sch, depth)
    before, recorded = str(sch.func), len(sch.trace)
    with pytest.raises(tcomp.ScheduleError, match=match):
        sch.tensorize(ji, intrinsic)
    assert str(sch.func) == before and len(sch.trace) == recorded  # nothing changed, nothing recorded


def test_mismatch_wrong_extent():
    _mismatch(_gemm(16, 32, 16, "uint8", "int8", "int32", 8), 8, "dot_16x4_vnni",
              "tensorize dot_16x4_vnni: loop k_1 has extent 8, the description's k has 4")


def test_mismatch_wrong_dtype():
    _mismatch(_gemm(16, 32, 16, "int8", "int8", "int32", 4), 4, "dot_16x4_vnni",
              r"A is int8, the description wants uint8 \(its A\)")
    _mismatch(_gemm(16, 32, 16, "float32", "float32", "float32", 2), 2, "dot_16x2_bf16",
              r"A is float32, the description wants bfloat16 \(its A\)")


def test_mismatch_wrong_layout():
    # B as [K, N]: the tile is indexed B[k, i], the instruction reads B[i, k]
    _mismatch(_gemm(16, 32, 16, "uint8", "int8", "int32", 4, packed=False), 4, "dot_16x4_vnni",
              r"B is indexed \[k, i\] in the description's loop names, the description wants B\[i, k\]")
    # B as [N, K]: the right index pattern, but rows K apart instead of 4
    a = tir.placeholder((16, 64), "uint8", name="A")
    b = tir.placeholder((32, 64), "int8", name="B")
    r = tir.reduce_axis(64, name="k")
    c = tir.compute((16, 32), lambda i, j: tir.sum(cast("int32", a[i, r]) * cast("int32", b[j, r]), axis=r), name="C")
    _mismatch(tir.create_func([a, b, c]), 4, "dot_16x4_vnni",
              r"B's last 2 dimensions have strides \[64, 1\], the description's B is a compact \[16, 4\] array")


def test_mismatch_wrong_tile_and_unknown_intrinsic():
    sch = tcomp.Schedule(_gemm(16, 32, 16, "uint8", "int8", "int32", 4))
    dot_gemm.tile(sch, 4)
    i = sch.get_loops(sch.get_block("C"))[0]
    with pytest.raises(tcomp.ScheduleError, match=r"5 loops \(i, j_0, k_0, j_1, k_1\) form the tile of block C, "
                                                  r"the description has 2 \(i, k\)"):
        sch.tensorize(i, "dot_16x4_vnni")
    with pytest.raises(tcomp.ScheduleError, match="no tensor intrinsic named 'mma'.*dot_16x4_vnni"):
        sch.tensorize(i, "mma")


def test_blockize_refuses_partial_tiles():
    func = _gemm(16, 32, 16, "uint8", "int8", "int32", 4, packed=False)
    sch = tcomp.Schedule(func)
    j = sch.get_loops(sch.get_block("C"))[1]
    _, ji = sch.split(j, [None, 12])
    with pytest.raises(tcomp.ScheduleError, match="blockize of loop j_1: block C has the predicate"):
        sch.blockize(ji)


def test_registry_lists_and_takes_other_targets():
    assert {"dot_16x4_vnni", "dot_16x2_bf16"} <= set(list_intrinsics("cpu"))
    vnni = get_intrinsic("dot_16x4_vnni")
    assert [p.name for p in vnni.description.params] == ["A", "B", "C"]
    assert [p.dtype for p in vnni.description.params] == ["uint8", "int8", "int32"]
    assert vnni.implementations["cpu"].llvm_name == "llvm.x86.avx512.vpdpbusd.512"
    with pytest.raises(IntrinsicError, match="no tensor intrinsic named 'nope'"):
        get_intrinsic("nope")
    # an intrinsic of another target joins without changing the registry; the cpu codegen refuses it
    name = "test_dot_16x4_other_target"
    register_intrinsic(name, dot_description(name, 16, 4, "uint8", "int8", "int32"), {"cuda": "a CUDA snippet"})
    register_implementation(name, "amx", "an AMX sequence")
    assert name in list_intrinsics() and name not in list_intrinsics("cpu") and name in list_intrinsics("cuda")
    with pytest.raises(IntrinsicError, match="registered already"):
        register_intrinsic(name, dot_description(name, 16, 4, "uint8", "int8", "int32"))
    sch = tcomp.Schedule(_gemm(16, 32, 16, "uint8", "int8", "int32", 4))
    sch.tensorize(dot_gemm.tile(sch, 4), name)
    with pytest.raises(CodegenError, match=f"{name} has no implementation for cpu \\(it has: amx, cuda\\)"):
        tcomp.build(sch.func)
