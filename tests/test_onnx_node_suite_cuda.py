"""ONNX's node conformance suite on the cuda target (``tcomp.backend`` with device "CUDA").

Needs a CUDA device: skipped with the reason elsewhere (CI has none). Every case that
onnx.reference passes and ``onnx_node_exclusions.txt`` does not exclude runs on ``tcomp-cuda``
(isolated workers, ``onnx_node_suite.run_cases``, as many as there are cores): each must pass,
be refused with a clear unsupported-op error (as on the cpu), or be listed with its bug in
``onnx_node_exclusions_cuda.txt``; a listed case that passes is a stale entry and fails the test.
About four minutes on 16 cores.
"""
from __future__ import annotations

import os

import pytest

from onnx_node_suite import HERE, PASS, UNSUPPORTED, load_cases, load_exclusions, run_cases


def _no_gpu() -> str:
    try:
        from tcomp.targets.cuda.driver import device_count
    except ImportError:
        return "cuda-python is not installed (pip install 'tcomp[cuda]')"
    return "" if device_count() else "no CUDA device on this machine (CI has none)"


CUDA_EXCLUSIONS = HERE / "onnx_node_exclusions_cuda.txt"


def test_cuda_exclusions_are_well_formed():
    cuda = load_exclusions(CUDA_EXCLUSIONS)
    names = {case.name for case in load_cases()}
    assert not sorted(set(cuda) - names), "onnx_node_exclusions_cuda.txt lists cases that do not exist"
    assert not sorted(set(cuda) & set(load_exclusions())), "cases excluded on every target belong in one list"


@pytest.mark.skipif(bool(_no_gpu()), reason=_no_gpu() or "-")
def test_node_suite_on_cuda():
    cases = load_cases()
    excluded, cuda_excluded = load_exclusions(), load_exclusions(CUDA_EXCLUSIONS)
    jobs = max(1, min(16, (os.cpu_count() or 2) - 1))
    outcomes = run_cases(cases, ["reference"], jobs)
    counted = [case for case in cases if outcomes[(case.name, "reference")].passed and case.name not in excluded]
    outcomes.update(run_cases(counted, ["tcomp-cuda"], jobs))
    ours = {case.name: outcomes[(case.name, "tcomp-cuda")] for case in counted}
    failing = sorted(f"{name} ({o.status}: {o.detail[:150]})" for name, o in ours.items()
                     if o.status not in (PASS, UNSUPPORTED) and name not in cuda_excluded)
    stale = sorted(name for name in cuda_excluded if name in ours and ours[name].status == PASS)
    passing = sum(o.status == PASS for o in ours.values())
    print(f"tcomp on cuda passes {passing} of {len(counted)} node cases (onnx.reference passes them, none excluded)")
    assert not stale, f"onnx_node_exclusions_cuda.txt lists cases that pass on cuda (remove them): {stale}"
    assert not failing, f"node cases failing on cuda that onnx_node_exclusions_cuda.txt does not list: {failing}"
