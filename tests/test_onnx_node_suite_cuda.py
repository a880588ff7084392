"""ONNX's node conformance suite on the cuda target (``tcomp.backend`` with device "CUDA").

Needs a CUDA device: skipped with the reason elsewhere (CI has none). Every case that
onnx.reference passes and ``onnx_node_exclusions.txt`` does not exclude runs on ``tcomp-cuda``
(isolated workers, ``onnx_node_suite.run_cases``, as many as there are cores): each must pass,
be refused with a clear unsupported-op error (as on the cpu), or be listed with its bug in
``onnx_node_exclusions_cuda.txt``; a listed case that passes is a stale entry and fails the test.
About four minutes on 16 cores.
"""
from __future__ import annotations

import pytest

from onnx_node_suite import (HERE, PASS, UNSUPPORTED, check_exclusions_well_formed, check_target_outcomes,
                             full_run_cases, run_cases)


def _no_gpu() -> str:
    try:
        from tcomp.targets.cuda.driver import device_count
    except ImportError:
        return "cuda-python is not installed (pip install 'tcomp[cuda]')"
    return "" if device_count() else "no CUDA device on this machine (CI has none)"


CUDA_EXCLUSIONS = HERE / "onnx_node_exclusions_cuda.txt"


def test_cuda_exclusions_are_well_formed():
    check_exclusions_well_formed(CUDA_EXCLUSIONS)


@pytest.mark.skipif(bool(_no_gpu()), reason=_no_gpu() or "-")
def test_node_suite_on_cuda():
    counted, jobs = full_run_cases()
    outcomes = run_cases(counted, ["tcomp-cuda"], jobs)
    ours = {case.name: outcomes[(case.name, "tcomp-cuda")] for case in counted}
    check_target_outcomes(ours, CUDA_EXCLUSIONS, "cuda", accepted=(PASS, UNSUPPORTED))
