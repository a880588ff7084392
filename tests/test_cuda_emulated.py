"""The cuda target's source, NVRTC-compiled (PTX, cubin) and then run on the host CPU
(``cuda_host_emulation.py``), against numpy and ONNX's node cases: what the CUDA renderer writes for
bit casts, integer powers, floor-mods of floats and of mixed integer types (bugs an H100 run of the
node suite found), checked without a GPU. Threads run in order here: races are not tested."""
from __future__ import annotations

import sys

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

pytest.importorskip("cuda.bindings.nvrtc", reason="cuda-python is not installed (pip install 'tcomp[cuda]')")

from cuda_host_emulation import COMPILER, EmulatedCuda  # noqa: E402

import tcomp  # noqa: E402

pytestmark = pytest.mark.skipif(COMPILER is None, reason="no host C++ compiler (g++) to run the CUDA source on")
TARGET = EmulatedCuda("sm_90")


def _model(op: str, inputs: list, output: tuple, **attrs) -> onnx.ModelProto:
    """One ``op`` node over ``inputs`` [(name, elem type, shape)] giving ``output`` (name, elem type, shape)."""
    node = helper.make_node(op, [name for name, _, _ in inputs], [output[0]], **attrs)
    graph = helper.make_graph([node], op.lower(), [helper.make_tensor_value_info(*i) for i in inputs],
                              [helper.make_tensor_value_info(*output)])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 26 if op == "BitCast" else 21)])


def _source(mod) -> str:
    return mod.executor.jit.source


@pytest.mark.parametrize("source,target", [("float32", "int32"), ("int64", "float64"), ("uint16", "int16"),
                                           ("float16", "int16"), ("int16", "bfloat16"), ("uint16", "float16"),
                                           ("bool", "uint8")])
def test_bitcast(source, target):
    import ml_dtypes  # noqa: F401  (bfloat16 as a numpy dtype)

    rng = np.random.default_rng()
    src_type, dst_type = (helper.np_dtype_to_tensor_dtype(np.dtype(t if t != "bfloat16" else ml_dtypes.bfloat16))
                          for t in (source, target))
    width = np.dtype(source if source != "bool" else "uint8").itemsize
    x = rng.integers(0, 256, size=(5, 7) + (width,), dtype=np.uint8).view(np.dtype(source) if source != "bool"
                                                                           else np.uint8).reshape(5, 7)
    if source == "bool":
        x = x % 2 == 1
    if target in ("float16", "bfloat16"):  # signalling NaNs (quiet bit clear) keep their bits: stored, not converted
        x.flat[:2] = np.array([0x7F81, 0xFF81] if target == "bfloat16" else [0x7C01, 0xFC01], np.uint16).view(x.dtype)
    mod = tcomp.compile(_model("BitCast", [("x", src_type, [5, 7])], ("y", dst_type, [5, 7]), to=dst_type),
                        target=TARGET)
    expected = x.view(np.uint8 if source == "bool" else x.dtype).view(
        ml_dtypes.bfloat16 if target == "bfloat16" else np.dtype(target))
    got = mod(x)[0]
    np.testing.assert_array_equal(got.view(np.uint8), expected.view(np.uint8))  # bit for bit (NaNs too)
    if source == "float32":
        assert "tc_bitcast<int>(((float)(" in _source(mod)


@pytest.mark.parametrize("dtype", ["int32", "int64"])
def test_integer_pow_wraps_like_numpy(dtype):
    rng = np.random.default_rng()
    base = rng.integers(-5, 6, size=64).astype(dtype)
    exponent = rng.integers(0, 70, size=64).astype(dtype)
    elem = helper.np_dtype_to_tensor_dtype(np.dtype(dtype))
    mod = tcomp.compile(_model("Pow", [("a", elem, [64]), ("b", elem, [64])], ("y", elem, [64])), target=TARGET)
    np.testing.assert_array_equal(mod(base, exponent)[0], np.power(base, exponent))
    assert f"tc_pow_int((({'int' if dtype == 'int32' else 'long long'})(" in _source(mod)


def test_integer_pow_negative_exponent():
    base = np.array([1, -1, -1, 2, -3, 0], np.int64)
    exponent = np.array([-3, -3, -2, -1, -2, 5], np.int64)
    elem = TensorProto.INT64
    mod = tcomp.compile(_model("Pow", [("a", elem, [6]), ("b", elem, [6])], ("y", elem, [6])), target=TARGET)
    np.testing.assert_array_equal(mod(base, exponent)[0], [1, -1, 1, 0, 0, 0])  # 1/x**n truncated, as the cpu


@pytest.mark.parametrize("dtype", ["float16", "float32", "float64"])
def test_float_mod_is_numpy_floor_mod_with_edge_values(dtype):
    rng = np.random.default_rng()
    edges = [(-3, np.inf), (3, np.inf), (-1, -np.inf), (1, -np.inf), (np.inf, 2), (1, 0), (np.nan, 2), (1, np.nan),
             (-4, 2), (4, -2), (5.5, -2), (-5.5, 2)]
    a = np.concatenate([[e[0] for e in edges], rng.normal(0, 10, 52)]).astype(dtype)
    b = np.concatenate([[e[1] for e in edges], rng.normal(0, 3, 52)]).astype(dtype)
    elem = helper.np_dtype_to_tensor_dtype(np.dtype(dtype))
    mod = tcomp.compile(_model("Mod", [("a", elem, [64]), ("b", elem, [64])], ("y", elem, [64]), fmod=0),
                        target=TARGET)
    with np.errstate(all="ignore"):
        expected = np.mod(a.astype(np.float64), b.astype(np.float64)).astype(dtype)
    np.testing.assert_allclose(mod(a, b)[0], expected, rtol=1e-3 if dtype == "float16" else 1e-6, atol=0)
    assert "tc_floormod(" in _source(mod)


def test_integer_floormod_of_mixed_types_compiles():
    """A 64-bit operand and a 32-bit literal (or index) take one type: the helper is a template."""
    from tcomp.targets.csource import CSourceRenderer
    from tcomp.targets.cuda.dialect import CUDA
    from tcomp.tir.expr import BinOp, Buffer, IntImm, Load, Var

    buf = Buffer("p", (IntImm(4),), "int64")
    i = Var("i", "int64")
    renderer = CSourceRenderer(CUDA)
    text = renderer.expr(BinOp("floormod", Load(buf, (i,)) - i, IntImm(4, "int64")))
    assert text.startswith("tc_floormod(((long long)(") and ", ((long long)(4)))" in text


NODE_CASES = ["test_bitcast_float64_to_int64", "test_bitcast_int8_to_uint8", "test_quantizelinear_e4m3fn",
              "test_quantizelinear_float4e2m1", "test_pow_types_int64_int64", "test_tensorscatter_circular",
              "test_mod_float_edge_cases_fmod_0_float32", "test_reduce_max_empty_set", "test_reduce_min_empty_set",
              "test_maxpool_2d_ceil_output_size_reduce_by_one", "test_scatter_elements_with_duplicate_indices",
              "test_scatternd_add", "test_top_k_same_values_largest"]


@pytest.mark.parametrize("name", NODE_CASES)
def test_node_case(name):
    """ONNX's node case, with its expected outputs, on the emulated cuda target."""
    sys.path.insert(0, str(__import__("pathlib").Path(__file__).parent))
    from onnx.backend.test.runner import Runner
    from onnx_node_suite import _payload, load_cases

    import tcomp.backend

    (case,) = [c for c in load_cases(f"^{name}$")]
    _, data_sets, rtol, atol = _payload(case)
    rep = tcomp.backend.TcompRep(case.model, TARGET)
    for inputs, expected in data_sets:
        with np.errstate(all="ignore"):
            Runner.assert_similar_outputs(expected, list(rep.run(inputs)), rtol, atol)


def test_scatter_with_duplicate_indices_runs_its_updates_in_one_thread():
    """Duplicate indices: the updates' order (reduction none) and combining (add, mul, max) would race
    over threads; the nest storing at indices read from memory runs in one thread, in order."""
    rng = np.random.default_rng()
    data, updates = rng.normal(size=(4, 8)).astype(np.float32), rng.normal(size=(6, 8)).astype(np.float32)
    indices = np.array([[1], [3], [1], [1], [0], [3]], np.int64)
    mod = tcomp.compile(_model("ScatterND", [("x", TensorProto.FLOAT, [4, 8]), ("i", TensorProto.INT64, [6, 1]),
                                             ("u", TensorProto.FLOAT, [6, 8])], ("y", TensorProto.FLOAT, [4, 8]),
                               reduction="mul"), target=TARGET)
    expected = data.copy()
    for row, update in zip(indices[:, 0], updates):
        expected[row] *= update
    np.testing.assert_allclose(mod(data, indices, updates)[0], expected, rtol=1e-6)
    assert "__launch_bounds__(1)" in _source(mod)


def test_int64_minimum_literal_stays_signed():
    """``-9223372036854775808LL`` negates an unsigned constant in CUDA C++ (NVRTC): a top-k's max sentinel
    turned unsigned, and every comparison with it (ties: lowest index first) went wrong on the GPU."""
    from tcomp.targets.csource import CSourceRenderer
    from tcomp.targets.cuda.dialect import CUDA
    from tcomp.tir.expr import IntImm

    assert CSourceRenderer(CUDA).expr(IntImm(-2**63, "int64")) == "(-9223372036854775807LL - 1LL)"


def test_pipelined_shared_matmul_matches_numpy():
    """An fp32 MatMul + bias on the SIMT sketch with its operands copied by cp.async one step ahead
    (pipeline_stages = 2, rules/gpu_tiling.py): what each step computes on is the stage it waited for."""
    rng = np.random.default_rng()
    m, k, n = 64, 96, 80
    w, b = rng.standard_normal((k, n)).astype(np.float32), rng.standard_normal(n).astype(np.float32)
    nodes = [helper.make_node("MatMul", ["x", "w"], ["y"]), helper.make_node("Add", ["y", "b"], ["z"])]
    graph = helper.make_graph(nodes, "mm", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [m, k])],
                              [helper.make_tensor_value_info("z", TensorProto.FLOAT, [m, n])],
                              [onnx.numpy_helper.from_array(w, "w"), onnx.numpy_helper.from_array(b, "b")])
    mod = tcomp.compile(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 21)]), target=TARGET)
    assert "cp.async.commit_group" in _source(mod) and "% 2) *" in _source(mod)  # two stages, copied ahead
    x = rng.standard_normal((m, k)).astype(np.float32)
    np.testing.assert_allclose(mod(x)[0], x @ w + b, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("op,shape", [("LayerNormalization", (5, 7, 96)), ("Softmax", (4, 6, 50)),
                                      ("Softmax", (3, 300))])
def test_row_reductions_and_their_consumer_are_one_kernel(op, shape):
    """Softmax (max, exp-sum, quotient) and layer norm (mean, variance, normalize) over the last axis:
    one kernel, a row per thread block, the rows' statistics in shared memory (gpu_reduction.schedule_rows)."""
    rng = np.random.default_rng()
    n = shape[-1]
    scale, bias = rng.standard_normal(n).astype(np.float32), rng.standard_normal(n).astype(np.float32)
    inits = [onnx.numpy_helper.from_array(scale, "g"), onnx.numpy_helper.from_array(bias, "b")]
    inputs = ["x", "g", "b"] if op == "LayerNormalization" else ["x"]
    node = helper.make_node(op, inputs, ["y"], axis=-1)
    graph = helper.make_graph([node], "rows", [helper.make_tensor_value_info("x", TensorProto.FLOAT, list(shape))],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, list(shape))],
                              inits if op == "LayerNormalization" else [])
    mod = tcomp.compile(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 21)]), target=TARGET)
    assert _source(mod).count("__global__") == 1
    x = rng.standard_normal(shape).astype(np.float32) * 3
    if op == "Softmax":
        e = np.exp(x - x.max(-1, keepdims=True))
        expected = e / e.sum(-1, keepdims=True)
    else:
        mean = x.mean(-1, keepdims=True)
        expected = (x - mean) / np.sqrt(((x - mean) ** 2).mean(-1, keepdims=True) + 1e-5) * scale + bias
    np.testing.assert_allclose(mod(x)[0], expected, rtol=1e-4, atol=1e-5)
