"""TF32 products on the cuda target (``"cuda -tf32"``, ``targets/cuda/tf32.py``): the target option, the tuning
database's target key, the rewrite (fp32 products round their operands, nothing else changes), the mma.sync
m16n8k8 .tf32 sketch compiled for sm_80 / sm_90 (no GPU needed), the SIMT tiles' rounding run on the host (a
product the fragments do not tile), and on a GPU a TF32 GEMM and conv against numpy in float64 on the same
TF32-rounded operands.

The reference rounds as ``cvt.rna.tf32.f32`` (to nearest, ties away from zero, 10 mantissa bits).
With both sides rounding the operands alike, the products of TF32 values are exact in fp32 and only
the fp32 accumulation differs: |err| <= K * 2^-22 * sum_k |a_ik b_kj| (K terms, each add off by at
most 2^-23 of the running sum's magnitude, doubled for the tensor cores' accumulation order). That the
operands were rounded shows in the norms: the result's distance to the rounded operands' product is a
few 2^-24 per term, the exact product lies ~2^-12 per term away (TF32 keeps 10 of fp32's 23 mantissa
bits), so it must be under 1% of that.
"""
from __future__ import annotations

import re

import numpy as np
import pytest
from onnx import TensorProto, helper, numpy_helper

pytest.importorskip("cuda.bindings.nvrtc", reason="cuda-python is not installed (pip install 'tcomp[cuda]')")

import cuda_kernels as kernels  # noqa: E402
from cuda_host_emulation import COMPILER, EmulatedCuda  # noqa: E402
from onnx_helpers import IR_VERSION  # noqa: E402
from test_gpu_conv import conv_model  # noqa: E402

import tcomp  # noqa: E402
from tcomp.errors import TcompError  # noqa: E402
from tcomp.schedule.schedule import Schedule, ScheduleError  # noqa: E402
from tcomp.targets.cuda.kernel import parse_target  # noqa: E402
from tcomp.targets.cuda.target import cuda_target  # noqa: E402
from tcomp.tuning.database import Database, TuningRecord  # noqa: E402
from tcomp.tuning.rules import gpu_tensor_core  # noqa: E402
from tcomp.tuning.tasks import database_target, extract_tasks, group_func, model_groups  # noqa: E402
from tcomp.tuning.workload import workload_key  # noqa: E402

MMA = "mma.sync.aligned.m16n8k8.row.col.f32.tf32.tf32.f32"
CVT = "cvt.rna.tf32.f32"


def tf32(x: np.ndarray) -> np.ndarray:
    """fp32 values rounded to TF32 as cvt.rna does: the 13 low mantissa bits dropped after adding half of
    their weight to the magnitude (sign-magnitude bits: ties go away from zero)."""
    bits = np.ascontiguousarray(x, np.float32).view(np.uint32)
    return ((bits + np.uint32(0x1000)) & np.uint32(0xFFFFE000)).view(np.float32)


def matmul_model(m: int, k: int, n: int, seed: int = 0):
    """``y = x @ w`` (w a constant), fp32."""
    w = np.random.default_rng(seed).standard_normal((k, n)).astype(np.float32)
    graph = helper.make_graph([helper.make_node("MatMul", ["x", "w"], ["y"])], "mm",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [m, k])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [m, n])],
                              [numpy_helper.from_array(w, "w")])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=IR_VERSION), w


def check_accumulated(got: np.ndarray, a: np.ndarray, b: np.ndarray) -> None:
    """``got`` = tf32(a) @ tf32(b) up to fp32 accumulation (the module docstring's bound)."""
    ra, rb = tf32(a).astype(np.float64), tf32(b).astype(np.float64)
    want = ra @ rb
    bound = a.shape[-1] * 2.0 ** -22 * (np.abs(ra) @ np.abs(rb))
    err = np.abs(got.astype(np.float64) - want)
    worst = np.unravel_index(np.argmax(err - bound), err.shape)
    assert (err <= bound + 1e-30).all(), f"error {err[worst]} over the bound {bound[worst]} at {worst}"
    exact = a.astype(np.float64) @ b.astype(np.float64)
    # TF32 was used: ``got`` lies far closer to the rounded operands' product than to the exact one (fp32
    # accumulation differs from it by ~2^-24 per term, the exact product by ~2^-12)
    assert np.linalg.norm(got - want) < 0.01 * np.linalg.norm(exact - want)


def test_reference_rounds_to_nearest_ties_away():
    one = np.float32(1.0)
    ulp = np.float32(2.0 ** -10)  # TF32's unit in the last place at 1
    x = np.array([1 + ulp / 2, -(1 + ulp / 2), 1 + ulp / 2 - 2.0 ** -23, 1 + 3 * ulp / 2, np.inf], np.float32)
    np.testing.assert_array_equal(tf32(x), [one + ulp, -(one + ulp), one, one + 2 * ulp, np.inf])


def test_target_option_parses_and_reaches_the_database_key():
    assert parse_target("cuda -arch=sm_90 -tf32") == "sm_90" and parse_target("cuda -tf32") is None
    tgt = cuda_target("cuda -arch=sm_80 -tf32")
    assert tgt.tf32 and tgt.target == "cuda -arch=sm_80 -tf32" and "tf32" in tgt.describe()
    assert not cuda_target("cuda -arch=sm_80").tf32
    assert database_target("cuda -arch=sm_90 -tf32") == "cuda -tf32" and database_target("cuda -arch=sm_90") == "cuda"
    with pytest.raises(TcompError, match=r"unknown option '-tf16'.*-tf32"):
        parse_target("cuda -tf16")
    with pytest.raises(TcompError, match="-tf32 is an option of the cuda target only"):
        database_target("webgpu -tf32")


def test_tf32_task_is_another_workload_whose_records_never_serve_exact_compiles(tmp_path):
    (group,) = model_groups(matmul_model(64, 32, 48)[0])
    exact, rounded = group_func(group, "cuda"), group_func(group, "cuda -arch=sm_90 -tf32")
    assert "round_tf32" not in str(exact) and str(rounded).count("round_tf32(") == 2
    assert workload_key(exact) != workload_key(rounded)
    db = Database(tmp_path / "db.jsonl")
    db.commit(TuningRecord(workload_key(rounded), database_target("cuda -tf32"), "[]", 1e-5, "ok"))
    assert db.best(workload_key(exact), "cuda") is None and db.best(workload_key(rounded), "cuda") is None
    assert db.best(workload_key(rounded), "cuda -tf32") is not None
    (task,) = extract_tasks(matmul_model(64, 32, 48)[0], "cuda -arch=sm_90 -tf32")  # what tcomp tune searches
    assert task.workload == workload_key(rounded)


def test_tf32_intrinsic_matches_only_rounded_products():
    exact = kernels.half_gemm_func(64, 64, 32, "float32")
    assert gpu_tensor_core.apply(exact, Schedule(exact), "C") == []
    rounded = kernels.tf32_gemm_func(64, 64, 32)
    (sketch,) = gpu_tensor_core.apply(rounded, Schedule(rounded), "C")
    assert "mma_16x8x8_tf32f32" in str(sketch.trace.instructions)
    sch = Schedule(exact)  # the exact product tiled as the intrinsic's description, tensorize refuses it
    i, j, k = sch.get_loops(sch.get_block("C"))
    io, ii = sch.split(i, [None, 16])
    jo, ji = sch.split(j, [None, 8])
    ko, ki = sch.split(k, [None, 8])
    sch.reorder(io, jo, ko, ii, ji, ki)
    with pytest.raises(ScheduleError):
        sch.tensorize(ii, "mma_16x8x8_tf32f32")


@pytest.mark.parametrize("arch", ["sm_80", "sm_90"])
def test_tf32_gemm_sketch_compiles_to_mma_and_rna_rounding(arch):
    kernel = tcomp.build(kernels.mma_gemm(256, 256, 128, "tf32"), target=f"cuda -arch={arch}")
    ptx = kernel.ptx()
    assert f".target {arch}" in ptx and kernel.image.cubin[:4] == b"\x7fELF"
    assert MMA in ptx and CVT in ptx and "ldmatrix.sync.aligned.m8n8.x4.shared.b16" in ptx
    assert "cp.async.cg.shared.global" in ptx and ".local" not in ptx


@pytest.mark.parametrize("arch", ["sm_80", "sm_90"])
def test_tf32_target_takes_tensor_cores_for_fp32_convs_and_matmuls(arch):
    for model in (conv_model(2, 64, 128, 9, 3, 1, 1), matmul_model(256, 128, 256)[0]):
        jit = tcomp.compile(model, target=f"cuda -arch={arch} -tf32").executor.jit
        assert MMA in jit.image.ptx and CVT in jit.image.ptx
        # the bare fp32 product's write-back reads its fragment by registers, never as a vector in memory
        assert not re.search(r"\(const \w+\*\)\(\w+_warp\b", jit.source)
        exact = tcomp.compile(model, target=f"cuda -arch={arch}").executor.jit
        assert "tf32" not in exact.image.ptx and exact.source.count("tc_round_tf32(") == 1  # the preamble's


@pytest.mark.skipif(COMPILER is None, reason="no host C++ compiler (g++) to run the CUDA source on")
def test_simt_tiles_round_operands_on_the_host():
    """A conv whose 24 output channels no 16-row fragment tiles takes the SIMT tiles, which multiply the
    rounded operands (run on the host)."""
    n, c, k, size = 2, 8, 24, 9
    conv, w = conv_only_model(n, c, k, size)
    mod = tcomp.compile(conv, target=EmulatedCuda("sm_90", tf32=True))
    kernels = mod.executor.jit.source.split("__global__")[1]
    assert "tc_round_tf32(" in kernels and "mma" not in kernels
    x = np.random.default_rng().standard_normal((n, c, size, size)).astype(np.float32)
    check_accumulated(mod.run({"x": x})[0].transpose(0, 2, 3, 1).reshape(-1, k), im2col(x), w.reshape(k, -1).T)


def im2col(x: np.ndarray) -> np.ndarray:
    """(pixel, tap) rows of a 3x3 conv with padding 1 over NCHW ``x``: pixels (n, oh, ow), taps (c, r, s)."""
    n, c, h, w = x.shape
    padded = np.pad(x, ((0, 0), (0, 0), (1, 1), (1, 1)))
    cols = np.lib.stride_tricks.sliding_window_view(padded, (3, 3), axis=(2, 3))  # n, c, oh, ow, r, s
    return cols.transpose(0, 2, 3, 1, 4, 5).reshape(n * h * w, c * 9)


def conv_only_model(n: int, c: int, k: int, size: int):
    """One 3x3 Conv (pad 1, no bias) of ``n x c x size x size`` to ``k`` channels, fp32; its weights."""
    w = (np.random.default_rng(3).standard_normal((k, c, 3, 3)) / np.sqrt(9 * c)).astype(np.float32)
    graph = helper.make_graph([helper.make_node("Conv", ["x", "w"], ["y"], pads=[1] * 4)], "conv",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [n, c, size, size])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [n, k, size, size])],
                              [numpy_helper.from_array(w, "w")])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=IR_VERSION), w


def _has_gpu() -> bool:
    try:
        from tcomp.targets.cuda.driver import device_count

        return device_count() > 0
    except Exception:  # noqa: BLE001  (no driver library: no GPU)
        return False


needs_gpu = pytest.mark.skipif(not _has_gpu(), reason="no CUDA device on this machine (CI has none); the compile-only "
                                                      "tests above check the generated code there")


def _sm80() -> bool:
    from tcomp.targets.cuda.driver import device_arch

    return int(device_arch()[3:].rstrip("a")) >= 80


@needs_gpu
@pytest.mark.parametrize("stages,warps", [(2, (2, 2)), (1, (1, 2)), (4, (2, 4))])
def test_tf32_gemm_on_the_gpu(stages, warps):
    if not _sm80():
        pytest.skip("mma.sync .tf32 needs sm_80")
    m, n, k = 256, 512, 192
    rng = np.random.default_rng()
    a, b = rng.standard_normal((m, k)).astype(np.float32), rng.standard_normal((k, n)).astype(np.float32)
    c = tcomp.build(kernels.mma_gemm(m, n, k, "tf32", warps=warps, stages=stages), target="cuda")(a, b)
    check_accumulated(c, a, b)


@needs_gpu
def test_tf32_matmul_model_on_the_gpu():
    model, w = matmul_model(512, 384, 256, seed=2)
    mod = tcomp.compile(model, target="cuda -tf32")
    if _sm80():
        assert MMA in mod.executor.jit.image.ptx
    x = np.random.default_rng().standard_normal((512, 384)).astype(np.float32)
    check_accumulated(mod.run({"x": x})[0], x, w)


@needs_gpu
def test_tf32_conv_model_on_the_gpu():
    rng = np.random.default_rng()
    n, c, k, size = 4, 64, 128, 14
    conv, w = conv_only_model(n, c, k, size)
    mod = tcomp.compile(conv, target="cuda -tf32")
    if _sm80():
        assert MMA in mod.executor.jit.image.ptx
    x = rng.standard_normal((n, c, size, size)).astype(np.float32)
    got = mod.run({"x": x})[0].transpose(0, 2, 3, 1).reshape(n * size * size, k)
    check_accumulated(got, im2col(x), w.reshape(k, c * 9).T)
