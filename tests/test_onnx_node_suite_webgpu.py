"""ONNX's node conformance suite on the webgpu target (``tcomp.backend.TcompRep(model, "webgpu")``).

``onnx_node_exclusions_webgpu.txt`` lists, with reasons, the cases tcomp passes on cpu and not on
webgpu (``onnx_node_exclusions.txt``'s cases are skipped on webgpu too).

- ``test_webgpu_conformance`` (CI, lavapipe): the first ``CASES_PER_OPERATOR`` cases of each operator,
  by name, among the cases neither list excludes: each that tcomp passes on cpu must pass on webgpu
  (a few minutes; the full suite takes about 25 minutes of a 2-core machine with lavapipe).
- ``test_node_suite_on_webgpu``: every case, where the adapter is a GPU (skipped on a software one):
  each case tcomp passes on cpu passes on webgpu or is listed; a listed case that passes is a stale
  entry and fails the test. ``python benchmarks/onnx_conformance.py --target webgpu --verbose`` runs
  the same anywhere.
"""
from __future__ import annotations

import pytest

from onnx_node_suite import (HERE, MISMATCH, check_exclusions_well_formed, check_target_outcomes, full_run_cases,
                             load_cases, load_exclusions, op_of, run_cases)
from webgpu_helpers import requires_webgpu

WEBGPU_EXCLUSIONS = HERE / "onnx_node_exclusions_webgpu.txt"
CASES_PER_OPERATOR = 3


def test_webgpu_exclusions_are_well_formed():
    check_exclusions_well_formed(WEBGPU_EXCLUSIONS)


def _webgpu_outcomes(cases: list, jobs: int | None = None) -> dict:
    """{case name: webgpu Outcome} of the ``cases`` that tcomp passes on cpu."""
    on_cpu = run_cases(cases, ["tcomp"], jobs)
    passing = [case for case in cases if on_cpu[(case.name, "tcomp")].passed]
    outcomes = run_cases(passing, ["tcomp-webgpu"], jobs)
    return {case.name: outcomes[(case.name, "tcomp-webgpu")] for case in passing}


@requires_webgpu
def test_webgpu_conformance():
    excluded = set(load_exclusions()) | set(load_exclusions(WEBGPU_EXCLUSIONS))
    first: dict = {}
    for case in load_cases():
        if case.name not in excluded and len(first.setdefault(op_of(case), [])) < CASES_PER_OPERATOR:
            first[op_of(case)].append(case)
    ours = _webgpu_outcomes(sorted((case for cases in first.values() for case in cases), key=lambda case: case.name))
    wrong = sorted(f"{name}: {o.detail[:200]}" for name, o in ours.items() if o.status == MISMATCH)
    failing = sorted(f"{name} ({o.status}: {o.detail[:150]})" for name, o in ours.items() if not o.passed)
    print(f"tcomp on webgpu passes {len(ours) - len(failing)} of the {len(ours)} cases (the first {CASES_PER_OPERATOR} of "
          f"each operator that no list excludes) tcomp passes on cpu")
    assert not wrong, f"webgpu gives wrong answers: {wrong}"
    assert not failing, f"node cases failing on webgpu that onnx_node_exclusions_webgpu.txt does not list: {failing}"


def _software_adapter() -> str:
    if requires_webgpu.args[0]:
        return requires_webgpu.kwargs["reason"]
    from tcomp.targets.webgpu.device import adapter_info

    info = adapter_info()
    return f"a software adapter ({info['device']}): the full suite takes hours" if info["adapter_type"] == "CPU" else ""


@pytest.mark.skipif(bool(_software_adapter()), reason=_software_adapter() or "-")
def test_node_suite_on_webgpu():
    counted, jobs = full_run_cases()
    check_target_outcomes(_webgpu_outcomes(counted, jobs), WEBGPU_EXCLUSIONS, "webgpu")
