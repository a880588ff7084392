"""Tests of indexing, scan, integer and bit ops: tcomp against onnxruntime, or against onnx.reference
where onnxruntime lacks the op / type / opset (``check_ref``), or numpy.

Inputs are drawn fresh every run; shapes use odd extents and size-1 axes.
"""
from __future__ import annotations

import numpy as np
import pytest
from onnx import TensorProto, helper
from onnx.reference import ReferenceEvaluator
from onnx_helpers import (IR_VERSION, assert_matches, check, check_op, make_model, node, rand, randint, rng,
                          run_tcomp)

import tcomp

F32 = np.float32
INT_TYPES = [np.int8, np.int16, np.int32, np.int64, np.uint8, np.uint16, np.uint32, np.uint64]


def check_ref(nodes, inputs: dict, outputs: list, opset: int, inits: dict | None = None, rtol=1e-5, atol=1e-6):
    """Like ``check`` with onnx.reference as the reference (ops or types onnxruntime lacks)."""
    model = make_model(nodes, inputs, outputs, opset, inits)
    refs = ReferenceEvaluator(model).run(None, inputs)
    ours = run_tcomp(model, inputs)
    assert len(ours) == len(refs)
    for name, o, r in zip(outputs, ours, refs):
        assert_matches(o, np.asarray(r), rtol=rtol, atol=atol, name=name)
    return ours, refs


def int_values(shape, dtype):
    info = np.iinfo(dtype)
    return rng().integers(info.min, info.max, size=shape, dtype=dtype, endpoint=True)


# ---------------------------------------------------------------------------------------------
# bit ops
# ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", [np.uint8, np.uint32, np.uint64], ids=lambda d: d.__name__)  # onnxruntime's types
@pytest.mark.parametrize("direction", ["LEFT", "RIGHT"])
@pytest.mark.parametrize("shapes", [((7, 13), (7, 13)), ((3, 1, 5), (4, 1)), ((33,), ())], ids=str)
def test_bitshift_onnxruntime(direction, dtype, shapes):
    bits = np.iinfo(dtype).bits
    x = int_values(shapes[0], dtype)
    y = rng().integers(0, bits, size=shapes[1]).astype(dtype)
    check_op("BitShift", {"x": x, "y": y}, direction=direction)


@pytest.mark.parametrize("dtype", INT_TYPES, ids=lambda d: d.__name__)
@pytest.mark.parametrize("direction", ["LEFT", "RIGHT"])
def test_bitshift_signed_and_out_of_range(direction, dtype):
    """Signed types, negative values, shifts below 0 or of at least the bit width (opset 28 semantics)."""
    bits = np.iinfo(dtype).bits
    lo = -bits - 3 if np.issubdtype(dtype, np.signedinteger) else 0
    x = int_values((5, 17), dtype)
    y = rng().integers(lo, bits + 4, size=(5, 17)).astype(dtype)
    check_ref([node("BitShift", ["x", "y"], ["z"], direction=direction)], {"x": x, "y": y}, ["z"], opset=28)


@pytest.mark.parametrize("dtype", INT_TYPES, ids=lambda d: d.__name__)
@pytest.mark.parametrize("op", ["BitwiseAnd", "BitwiseOr", "BitwiseXor"])
def test_bitwise_binary(op, dtype):
    check_op(op, {"x": int_values((3, 1, 19), dtype), "y": int_values((4, 1), dtype)}, opset=18)


@pytest.mark.parametrize("dtype", INT_TYPES, ids=lambda d: d.__name__)
def test_bitwise_not(dtype):
    check_op("BitwiseNot", {"x": int_values((2, 3, 37), dtype)}, opset=18)


@pytest.mark.parametrize("src,dst", [(np.float32, np.int32), (np.int32, np.float32), (np.float64, np.int64),
                                     (np.uint16, np.int16), (np.int8, np.uint8), (np.uint64, np.float64),
                                     (np.bool_, np.uint8)], ids=str)
def test_bitcast(src, dst):
    g = rng()
    if src is np.bool_:
        x = g.random((5, 21)) < 0.5
    elif np.issubdtype(src, np.floating):
        x = (g.standard_normal((5, 21)) * 1e3).astype(src)
    else:
        x = int_values((5, 21), src)
    to = helper.np_dtype_to_tensor_dtype(np.dtype(dst))
    model = make_model([node("BitCast", ["x"], ["y"], to=to)], {"x": x}, ["y"], opset=26)
    (ours,) = run_tcomp(model, {"x": x})
    assert_matches(ours, x.view(dst), name="y")


def test_bitcast_width_mismatch_is_refused():
    graph = helper.make_graph([node("BitCast", ["x"], ["y"], to=TensorProto.INT64)], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [3])],
                              [helper.make_tensor_value_info("y", TensorProto.INT64, [3])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 26)], ir_version=IR_VERSION)
    with pytest.raises(tcomp.UnsupportedOpError, match="BitCast.*width"):
        tcomp.compile(model)


# ---------------------------------------------------------------------------------------------
# integer Pow
# ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("xt,yt", [(np.int32, np.int32), (np.int64, np.int64), (np.int32, np.float32),
                                   (np.int64, np.float32), (np.float32, np.int64)], ids=str)
def test_pow_integer_types(xt, yt):
    x = randint((4, 7), -6, 6).astype(xt)
    y = (randint((7,), 0, 5) if np.issubdtype(yt, np.integer) else rand((7,), 0, 4)).astype(yt)
    check_op("Pow", {"x": x, "y": y}, opset=15)


# ---------------------------------------------------------------------------------------------
# ArgMax / ArgMin
# ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("op", ["ArgMax", "ArgMin"])
@pytest.mark.parametrize("shape,axis", [((7, 13), 1), ((7, 13), 0), ((3, 5, 37), -2), ((2, 1, 19), 1), ((33,), 0)],
                         ids=str)
@pytest.mark.parametrize("keepdims", [0, 1])
@pytest.mark.parametrize("last", [0, 1])
def test_arg_float(op, shape, axis, keepdims, last):
    check_op(op, {"x": rand(shape, -3, 3)}, axis=axis, keepdims=keepdims, select_last_index=last)


@pytest.mark.parametrize("op", ["ArgMax", "ArgMin"])
@pytest.mark.parametrize("dtype", [np.int32, np.int64, np.uint8, np.int8, np.float64], ids=lambda d: d.__name__)
@pytest.mark.parametrize("last", [0, 1])
def test_arg_ties(op, dtype, last):
    """Few distinct values: ties everywhere; the first (or last) index wins."""
    x = randint((6, 41), 0, 3).astype(dtype)
    check_op(op, {"x": x}, axis=1, select_last_index=last)


@pytest.mark.parametrize("op", ["ArgMax", "ArgMin"])
def test_arg_default_axis_opset11(op):
    check_op(op, {"x": rand((5, 4, 3))}, opset=11)


@pytest.mark.parametrize("op", ["ArgMax", "ArgMin"])
def test_arg_nan_like_numpy(op):
    """A NaN wins, the first one (numpy's and onnx.reference's convention)."""
    x = rand((4, 29), -3, 3)
    x[1, 7] = x[1, 20] = x[3, 0] = np.nan
    check_ref([node(op, ["x"], ["y"], axis=1)], {"x": x}, ["y"], opset=13)


def test_arg_fused_prologue_and_epilogue():
    """ArgMax of a computed value, its index used by later arithmetic."""
    x = rand((9, 23), -3, 3)
    check([node("Mul", ["x", "x"], ["sq"]), node("ArgMax", ["sq"], ["i"], axis=1),
           node("Add", ["i", "one"], ["y"])], {"x": x}, ["y"], inits={"one": np.array(1, np.int64)})


# ---------------------------------------------------------------------------------------------
# CumSum / CumProd
# ---------------------------------------------------------------------------------------------

SCAN_SHAPES = [((37,), 0), ((7, 13), 0), ((7, 13), 1), ((7, 13), -1), ((3, 5, 33), 1), ((2, 19, 1), 1)]


@pytest.mark.parametrize("shape,axis", SCAN_SHAPES, ids=str)
@pytest.mark.parametrize("exclusive", [0, 1])
@pytest.mark.parametrize("reverse", [0, 1])
def test_cumsum(shape, axis, exclusive, reverse):
    check_op("CumSum", {"x": rand(shape, -3, 3)}, inits={"axis": np.array(axis, np.int64)},
             exclusive=exclusive, reverse=reverse)


@pytest.mark.parametrize("dtype,axis_type", [(np.int32, np.int32), (np.int64, np.int64), (np.float64, np.int32)],
                         ids=str)
def test_cumsum_types(dtype, axis_type):
    x = randint((5, 27), -50, 50).astype(dtype)
    check_op("CumSum", {"x": x}, inits={"axis": np.array(1, axis_type)}, exclusive=1)


@pytest.mark.parametrize("shape,axis", SCAN_SHAPES, ids=str)
@pytest.mark.parametrize("exclusive", [0, 1])
@pytest.mark.parametrize("reverse", [0, 1])
def test_cumprod(shape, axis, exclusive, reverse):
    """CumProd (opset 26) against onnx.reference; factors near 1 keep products in range."""
    x = rand(shape, 0.8, 1.25) * np.where(rng().random(shape) < 0.5, -1, 1).astype(F32)
    check_ref([node("CumProd", ["x", "axis"], ["y"], exclusive=exclusive, reverse=reverse)], {"x": x}, ["y"],
              opset=26, inits={"axis": np.array(axis, np.int64)}, rtol=1e-5)


def test_cumprod_int64():
    check_ref([node("CumProd", ["x", "axis"], ["y"])], {"x": randint((4, 9), -3, 3)}, ["y"], opset=26,
              inits={"axis": np.array(1, np.int64)})


def test_cumsum_axis_at_run_time_is_refused():
    model = make_model([node("CumSum", ["x", "axis"], ["y"])], {"x": rand((3, 4)), "axis": np.array(1)}, ["y"])
    with pytest.raises(tcomp.UnsupportedOpError, match="axis must be a constant"):
        tcomp.compile(model)


# ---------------------------------------------------------------------------------------------
# Trilu / EyeLike
# ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("upper", [0, 1])
@pytest.mark.parametrize("shape", [(5, 7), (7, 5), (2, 3, 4, 19), (1, 6)], ids=str)
@pytest.mark.parametrize("k", [None, 0, 2, -3, 9, -9])
def test_trilu_constant_k(upper, shape, k):
    inits = {} if k is None else {"k": np.array(k, np.int64)}
    check_op("Trilu", {"x": rand(shape)}, opset=14, inits=inits, upper=upper)


@pytest.mark.parametrize("upper", [0, 1])
def test_trilu_k_at_run_time(upper):
    k = np.array(rng().integers(-4, 5), np.int64)
    check_op("Trilu", {"x": randint((3, 6, 8), -9, 9), "k": k}, opset=14, upper=upper)


@pytest.mark.parametrize("shape,k", [((4, 4), 0), ((3, 7), 2), ((6, 2), -1), ((5, 5), 9)], ids=str)
@pytest.mark.parametrize("dtype", [None, TensorProto.INT32, TensorProto.FLOAT])
def test_eyelike(shape, k, dtype):
    attrs = {"k": k} if dtype is None else {"k": k, "dtype": dtype}
    check_op("EyeLike", {"x": rand(shape)}, **attrs)


# ---------------------------------------------------------------------------------------------
# OneHot / GatherND / ReverseSequence
# ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("axis", [-1, 0, 1, -2])
@pytest.mark.parametrize("itype,vtype", [(np.int64, np.float32), (np.int32, np.int64), (np.float32, np.int32)],
                         ids=str)
def test_onehot(axis, itype, vtype):
    """Negative indices count from the end; out-of-range ones give an all-off row."""
    depth = 7
    indices = randint((4, 5), -depth - 2, depth + 2).astype(itype)
    values = np.array([rng().integers(-5, 0), rng().integers(1, 9)]).astype(vtype)
    check_ref([node("OneHot", ["indices", "depth", "values"], ["y"], axis=axis)],
              {"indices": indices, "values": values}, ["y"], opset=11, inits={"depth": np.array(depth, np.int64)})


@pytest.mark.parametrize("data_shape,ind_shape,batch", [
    ((5, 7), (3, 2), 0), ((5, 7), (4, 1), 0), ((2, 3, 4), (5, 6, 3), 0), ((3, 4, 6), (3, 2, 1), 1),
    ((2, 3, 5, 4), (2, 3, 7, 1), 2), ((4, 3, 8), (4, 2), 1)], ids=str)
def test_gathernd(data_shape, ind_shape, batch):
    depth = ind_shape[-1]
    extents = data_shape[batch:batch + depth]
    g = rng()
    indices = np.stack([g.integers(-e, e, size=ind_shape[:-1]) for e in extents], axis=-1).astype(np.int64)
    check_op("GatherND", {"data": rand(data_shape), "indices": indices}, opset=13, batch_dims=batch)


@pytest.mark.parametrize("batch_axis,time_axis", [(1, 0), (0, 1)])
def test_reverse_sequence(batch_axis, time_axis):
    shape = [0, 0, 3]
    shape[batch_axis], shape[time_axis] = 5, 9
    lengths = rng().integers(1, 10, size=5).astype(np.int64)
    check_op("ReverseSequence", {"x": rand(tuple(shape)), "lengths": lengths}, opset=10,
             batch_axis=batch_axis, time_axis=time_axis)


@pytest.mark.parametrize("mode", ["linear", "circular"])
@pytest.mark.parametrize("axis,with_indices", [(-2, True), (1, True), (2, False)])
def test_tensor_scatter(mode, axis, with_indices):
    """A KV-cache write: ``update`` lands at each batch row's write index (wrapping when circular)."""
    past_shape = [3, 4, 11, 6]
    update_shape = list(past_shape)
    update_shape[axis] = 3
    capacity = past_shape[axis]
    inputs = {"past": rand(tuple(past_shape)), "update": rand(tuple(update_shape))}
    names = ["past", "update"]
    if with_indices:  # linear writes must fit in the cache; circular ones may wrap
        top = capacity if mode == "circular" else capacity - update_shape[axis] + 1
        inputs["write_indices"] = rng().integers(0, top, size=3).astype(np.int64)
        names.append("write_indices")
    check_ref([node("TensorScatter", names, ["present"], axis=axis, mode=mode)], inputs, ["present"], opset=24)


# ---------------------------------------------------------------------------------------------
# Einsum
# ---------------------------------------------------------------------------------------------

EINSUM_CASES = [
    ("ij,jk->ik", [(7, 13), (13, 5)]),
    ("ij,kj->ik", [(7, 13), (5, 13)]),
    ("bij,bjk->bik", [(3, 7, 9), (3, 9, 5)]),
    ("bhqd,bhkd->bhqk", [(2, 3, 5, 8), (2, 3, 7, 8)]),
    ("...ij,...jk->...ik", [(2, 1, 4, 6), (1, 3, 6, 5)]),
    ("...ij,...jk", [(5, 4, 6), (1, 6, 3)]),
    ("ij,jk", [(4, 6), (6, 3)]),
    ("i,i", [(17,), (17,)]),
    ("i,j->ij", [(5,), (7,)]),
    ("ij,ij->ij", [(4, 9), (4, 9)]),
    ("ij,ij->", [(4, 9), (4, 9)]),
    ("ii->i", [(6, 6)]),
    ("ii", [(6, 6)]),
    ("bii->bi", [(3, 5, 5)]),
    ("...ii->...i", [(2, 3, 4, 4)]),
    ("ij->", [(7, 13)]),
    ("ij->ji", [(7, 13)]),
    ("ijk->kji", [(2, 3, 4)]),
    ("ij->i", [(7, 13)]),
    ("abc,cd->abd", [(2, 3, 4), (4, 5)]),
    ("ij,jk,kl->il", [(3, 4), (4, 5), (5, 6)]),
    ("ijk,ikj->i", [(3, 4, 5), (3, 5, 4)]),
    ("iij,jk->ik", [(4, 4, 5), (5, 3)]),
    ("bn,anm,bm->ba", [(2, 3), (4, 3, 5), (2, 5)]),
    ("...,...->...", [(3, 1), (1, 4)]),
    ("i...,i...->...", [(5, 2, 3), (5, 1, 3)]),
]


@pytest.mark.parametrize("equation,shapes", EINSUM_CASES, ids=[c[0] for c in EINSUM_CASES])
def test_einsum(equation, shapes):
    inputs = {f"x{i}": rand(s, -2, 2) for i, s in enumerate(shapes)}
    check_op("Einsum", inputs, opset=12, relnorm=1e-5, equation=equation)


@pytest.mark.parametrize("dtype", [np.float64, np.int64, np.int32], ids=lambda d: d.__name__)
def test_einsum_types(dtype):
    inputs = {"a": randint((3, 4, 5), -5, 5).astype(dtype), "b": randint((3, 5, 2), -5, 5).astype(dtype)}
    check_op("Einsum", inputs, opset=12, equation="bij,bjk->bik")


def test_einsum_bad_equation_is_refused():
    model = make_model([node("Einsum", ["a", "b"], ["y"], equation="ij,jk->ik")],
                       {"a": rand((3, 4)), "b": rand((4, 2))}, ["y"], opset=12)
    model.graph.node[0].attribute[0].s = b"ij,jk,kl->il"
    with pytest.raises(tcomp.UnsupportedOpError, match="names 3 operands"):
        tcomp.compile(model)


# ---------------------------------------------------------------------------------------------
# ScatterElements / ScatterND
# ---------------------------------------------------------------------------------------------

def _distinct_positions(extent, count, size):
    """``size`` rows of ``count`` distinct indices in [-extent, extent), as int64."""
    g = rng()
    rows = [g.permutation(extent)[:count] for _ in range(size)]
    return np.array([[j - extent if g.random() < 0.3 else j for j in row] for row in rows], np.int64)


@pytest.mark.parametrize("axis", [0, 1, -1])
def test_scatter_elements_distinct(axis):
    data = rand((6, 9))
    count_axis = axis % 2
    ind_shape = (4, 5) if count_axis == 0 else (5, 4)
    extent = data.shape[count_axis]
    rows = _distinct_positions(extent, ind_shape[count_axis], ind_shape[1 - count_axis])
    indices = rows.T if count_axis == 0 else rows
    check_op("ScatterElements", {"data": data, "indices": np.ascontiguousarray(indices), "updates": rand(ind_shape)},
             opset=18, axis=axis)


@pytest.mark.parametrize("reduction", ["add", "mul", "max", "min"])
@pytest.mark.parametrize("dtype", [np.float32, np.int64], ids=lambda d: d.__name__)
def test_scatter_elements_reduction_duplicates(reduction, dtype):
    data = randint((5, 7), -4, 4).astype(dtype)
    indices = randint((8, 7), -5, 4)  # many duplicates along axis 0
    updates = randint((8, 7), -3, 3).astype(dtype)
    check_op("ScatterElements", {"data": data, "indices": indices, "updates": updates}, opset=18,
             reduction=reduction)


@pytest.mark.parametrize("data_shape,ind_shape", [((8,), (4, 1)), ((5, 6, 3), (2, 2)), ((4, 5), (3, 2)),
                                                  ((7, 4, 5), (2, 3, 1))], ids=str)
def test_scatternd_distinct(data_shape, ind_shape):
    depth = ind_shape[-1]
    count = int(np.prod(ind_shape[:-1]))
    flat = rng().permutation(int(np.prod(data_shape[:depth])))[:count]
    indices = np.stack(np.unravel_index(flat, data_shape[:depth]), axis=-1).reshape(ind_shape).astype(np.int64)
    updates = rand(ind_shape[:-1] + data_shape[depth:])
    check_op("ScatterND", {"data": rand(data_shape), "indices": indices, "updates": updates}, opset=18)


@pytest.mark.parametrize("reduction", ["add", "mul", "max", "min"])
def test_scatternd_reduction_duplicates(reduction):
    indices = randint((6, 1), 0, 3)
    check_op("ScatterND", {"data": rand((4, 5)), "indices": indices, "updates": rand((6, 5))}, opset=18,
             reduction=reduction)


def test_scatter_with_prologue_and_epilogue():
    """Computed data and updates; the scatter's result feeds elementwise ops and a Cast."""
    indices = _distinct_positions(7, 3, 4).T.copy()
    check([node("Abs", ["data"], ["a"]), node("Neg", ["upd"], ["u"]),
           node("ScatterElements", ["a", "indices", "u"], ["s"], reduction="add"),
           node("Relu", ["s"], ["r"]), node("Cast", ["r"], ["y"], to=TensorProto.INT32)],
          {"data": rand((7, 4), -3, 3) * 5, "indices": np.ascontiguousarray(indices), "upd": rand((3, 4)) * 5},
          ["y", "s"], opset=18)


def test_scatter_opset9():
    indices = _distinct_positions(6, 2, 3)
    check_op("Scatter", {"data": rand((3, 6)), "indices": indices, "updates": rand((3, 2))}, opset=9, axis=1)


# ---------------------------------------------------------------------------------------------
# TopK
# ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("shape,axis,k", [((7, 13), -1, 4), ((7, 13), 0, 7), ((3, 19, 5), 1, 1), ((40,), 0, 40),
                                          ((2, 3, 33), 2, 17)], ids=str)
@pytest.mark.parametrize("largest", [0, 1])
def test_topk(shape, axis, k, largest):
    check_op("TopK", {"x": rand(shape, -3, 3)}, opset=11, inits={"k": np.array([k], np.int64)}, n_outputs=2,
             axis=axis, largest=largest)


@pytest.mark.parametrize("dtype", [np.float32, np.int64, np.int32, np.float64], ids=lambda d: d.__name__)
@pytest.mark.parametrize("largest", [0, 1])
def test_topk_ties(dtype, largest):
    """Equal values: the lower index comes first."""
    x = randint((5, 23), 0, 3).astype(dtype)
    check_op("TopK", {"x": x}, opset=11, inits={"k": np.array([9], np.int64)}, n_outputs=2, largest=largest)


def test_topk_opset1_attribute():
    check_op("TopK", {"x": rand((4, 11))}, opset=1, n_outputs=2, k=3)



# ---------------------------------------------------------------------------------------------
# value-dependent extents: Compress (constant condition), refusals
# ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("axis", [None, 0, 1, -1])
def test_compress_constant_condition(axis):
    x = rand((6, 7))
    extent = x.size if axis is None else x.shape[axis]
    condition = rng().random(extent - 1) < 0.5  # shorter than the axis is allowed
    condition[0] = True
    attrs = {} if axis is None else {"axis": axis}
    check_op("Compress", {"x": x}, opset=11, inits={"condition": condition}, **attrs)


@pytest.mark.parametrize("op,inputs", [
    ("NonZero", {"x": rand((3, 4))}),
    ("Unique", {"x": rand((7,))}),
    ("Compress", {"x": rand((3, 4)), "condition": np.array([True, False, True])}),
], ids=lambda v: v if isinstance(v, str) else "")
def test_value_dependent_extent_is_refused(op, inputs):
    model = make_model([node(op, list(inputs), ["y"], **({"axis": 0} if op == "Compress" else {}))], inputs, ["y"],
                       opset=11)
    with pytest.raises(tcomp.ShapeOperandError, match="depends on its values|decides the output's extent"):
        tcomp.compile(model)


# ---------------------------------------------------------------------------------------------
# Det
# ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("shape", [(1, 1), (2, 2), (5, 5), (3, 7, 7), (2, 2, 4, 4), (16, 16)], ids=str)
def test_det(shape):
    check_op("Det", {"x": rand(shape, -2, 2)}, opset=11, rtol=1e-4, atol=1e-5)


def test_det_singular_and_pivoting():
    """A zero leading entry needs a row swap; a repeated row gives 0."""
    x = rand((3, 4, 4), -2, 2)
    x[0, 0, 0] = 0.0
    x[1, 2] = x[1, 0]
    check_op("Det", {"x": x}, opset=11, rtol=1e-4, atol=1e-5)
