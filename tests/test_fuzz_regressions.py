"""Every failure the differential fuzzer (benchmarks/fuzz.py) found, minimized, as a regression test.

Each case is the minimized graph that failed; inputs and random weights are drawn fresh
from the case's specs on every run and the result is compared with onnxruntime.
"""
from __future__ import annotations

import numpy as np
import pytest
from fuzzing.case import Case, N, Spec
from fuzzing.runner import run_case

CASES = {
    # a load whose index mentions the vector lane only through (lane // 16) (uniform over 16
    # lanes): the broadcast load was emitted at a vector of addresses (LLVM rejected the module)
    "uniform_load_whose_index_mentions_the_lane": Case(opset=13, nodes=[
        N('Div', ['v8', 'w9'], ['v10']),
        N('GatherElements', ['v10', 'x11'], ['v12'], {'axis': 3}),
        N('ConvTranspose', ['v12', 'w30', 'w31'], ['v32'], {'strides': [3, 2], 'pads': [1, 0, 1, 0],
                                                           'dilations': [2, 2], 'group': 7}),
    ], specs={
        'v8': Spec(shape=(1, 18, 4, 4), dtype='float32', lo=-6.0, hi=6.0, away=0.0, err=0.0),
        'w9': Spec(shape=(1, 18, 1, 1), dtype='float32', lo=0.5, hi=2.0, away=0.0, err=0.0),
        'v10': Spec(shape=(1, 18, 4, 4), dtype='float32', lo=-12.0, hi=12.0, away=0.0, err=1.1444091796875e-05),
        'x11': Spec(shape=(1, 7, 4, 4), dtype='int32', lo=-4.0, hi=3.0, away=0.0, err=0.0),
        'v12': Spec(shape=(1, 7, 4, 4), dtype='float32', lo=-12.0, hi=12.0, away=0.0, err=1.1444091796875e-05),
        'w30': Spec(shape=(7, 3, 3, 1), dtype='float32', lo=-1.0, hi=1.0, away=0.0, err=0.0),
        'w31': Spec(shape=(21,), dtype='float32', lo=-1.0, hi=1.0, away=0.0, err=0.0),
        'v32': Spec(shape=(1, 21, 12, 7), dtype='float32', lo=-37.0, hi=37.0, away=0.0, err=6.890296936035156e-05),
    }, inputs=['x11', 'v8', 'w9', 'w30', 'w31'], weights=[], consts={
    }, outputs=['v32']),
    # onnx.reference folds Slice with numpy's slicing: a start before the beginning with a negative
    # step gave an empty tensor (ONNX clamps the start to 0: one element)
    "folded_slice_negative_step_start_before_begin": Case(opset=18, nodes=[
        N('Slice', ['w1', 'c26', 'c27', 'c28', 'c29'], ['v30']),
    ], specs={
        'w1': Spec(shape=(3,), dtype='float32', lo=-1.0, hi=1.0, away=0.0, err=0.0),
        'v30': Spec(shape=(1,), dtype='float32', lo=-1.0, hi=1.0, away=0.0, err=0.0),
    }, inputs=[], weights=['w1'], consts={
        'c26': np.array([-6], dtype=np.int64),
        'c27': np.array([-6], dtype=np.int64),
        'c28': np.array([0], dtype=np.int64),
        'c29': np.array([-2], dtype=np.int64),
    }, outputs=['v30']),
    # the same folded Slice feeding a Reshape: the importer rejected the graph
    "folded_slice_negative_step_then_reshape": Case(opset=17, nodes=[
        N('Slice', ['w1', 'c21', 'c22', 'c23', 'c24'], ['v25']),
        N('Pad', ['v25', 'c26'], ['v27'], {'mode': 'edge'}),
        N('Reshape', ['v27', 'c28'], ['v29']),
        N('Conv', ['v29', 'w30'], ['v31'], {'strides': [2, 2], 'pads': [0, 0, 0, 0], 'dilations': [1, 1],
                                            'kernel_shape': [1, 2], 'group': 1}),
    ], specs={
        'w1': Spec(shape=(16,), dtype='float32', lo=-2.0, hi=2.0, away=0.0, err=0.0),
        'v25': Spec(shape=(1,), dtype='float32', lo=-2.0, hi=2.0, away=0.0, err=0.0),
        'v27': Spec(shape=(5,), dtype='float32', lo=-2.0, hi=2.0, away=0.0, err=0.0),
        'v29': Spec(shape=(1, 1, 1, 5), dtype='float32', lo=-2.0, hi=2.0, away=0.0, err=0.0),
        'w30': Spec(shape=(2, 1, 1, 2), dtype='float32', lo=-1.0, hi=1.0, away=0.0, err=0.0),
        'v31': Spec(shape=(1, 2, 1, 2), dtype='float32', lo=-4.0, hi=4.0, away=0.0, err=1.9073486328125e-06),
    }, inputs=['w30'], weights=['w1'], consts={
        'c21': np.array([-4611686018427387904], dtype=np.int64),
        'c22': np.array([-19], dtype=np.int64),
        'c23': np.array([0], dtype=np.int64),
        'c24': np.array([-1], dtype=np.int64),
        'c26': np.array([2, 2], dtype=np.int64),
        'c28': np.array([1, 1, 1, 5], dtype=np.int64),
    }, outputs=['v31']),
    # onnx.reference folds GlobalMaxPool over one spatial axis as a max over channels and that axis
    "folded_global_max_pool_1d": Case(opset=20, nodes=[
        N('LeakyRelu', ['w2'], ['v3'], {'alpha': 0.3}),
        N('GlobalMaxPool', ['v3'], ['v14']),
    ], specs={
        'w2': Spec(shape=(9, 5, 4), dtype='float32', lo=0.5, hi=3.0, away=0.0, err=0.0),
        'v3': Spec(shape=(9, 5, 4), dtype='float32', lo=0.5, hi=3.0, away=0.0, err=1.430511474609375e-06),
        'v14': Spec(shape=(9, 5, 1), dtype='float32', lo=0.5, hi=3.0, away=0.0, err=1.430511474609375e-06),
    }, inputs=[], weights=['w2'], consts={
    }, outputs=['v14']),
    # onnx.reference folds LpNormalization with p = 1 as x / sum(x), without the absolute value
    "folded_lp_normalization_p1": Case(opset=20, nodes=[
        N('LpNormalization', ['w5'], ['v6'], {'axis': -2, 'p': 1}),
    ], specs={
        'w5': Spec(shape=(3, 17), dtype='float32', lo=-2.0, hi=2.0, away=0.25, err=0.0),
        'v6': Spec(shape=(3, 17), dtype='float32', lo=-1.0, hi=1.0, away=0.0, err=1.3113021850585938e-06),
    }, inputs=[], weights=['w5'], consts={
    }, outputs=['v6']),
    # onnx.reference folds LRN with a wrong channel window (size 1 mixes neighbouring channels)
    "folded_lrn": Case(opset=17, nodes=[
        N('Softmax', ['w28'], ['v30'], {'axis': 0}),
        N('Reshape', ['v30', 'c32'], ['v33']),
        N('LRN', ['v33'], ['v34'], {'size': 1, 'alpha': 0.1, 'beta': 0.5, 'bias': 2.0}),
    ], specs={
        'w28': Spec(shape=(4,), dtype='float32', lo=-1.0, hi=1.0, away=0.0, err=0.0),
        'v30': Spec(shape=(4,), dtype='float32', lo=0.0, hi=1.0, away=0.0, err=1.430511474609375e-06),
        'v33': Spec(shape=(1, 2, 1, 2), dtype='float32', lo=0.0, hi=1.0, away=0.0, err=1.430511474609375e-06),
        'v34': Spec(shape=(1, 2, 1, 2), dtype='float32', lo=-1.0, hi=1.0, away=0.0, err=3.933906555175781e-06),
    }, inputs=[], weights=['w28'], consts={
        'c32': np.array([1, 2, 1, 2], dtype=np.int64),
    }, outputs=['v34']),
}


@pytest.mark.parametrize("name", CASES)
def test_fuzz_regression(name):
    outcome = run_case(CASES[name], np.random.default_rng())
    assert outcome.status == "ok", f"{outcome.status}: {outcome.detail}"
