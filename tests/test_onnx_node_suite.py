"""ONNX's node conformance suite (``onnx.backend.test`` node cases) through ``tcomp.backend``.

One test per case: it passes when tcomp's outputs match the case's expected outputs within
the case's tolerances. Cases that ``onnx.reference`` itself fails are skipped with that
reason; cases listed in ``onnx_node_exclusions.txt`` are skipped with theirs (and do not
count as passing). Every (case, system) runs isolated in a worker process under a time
limit (``onnx_node_suite.run_cases``), all selected cases at once, two at a time.

A case tcomp refuses with a clear unsupported-op error is an expected failure (xfail: not
counted as passing); a wrong answer or a crash fails. ``test_conformance_goal`` checks the
exclusions file (each listed case fails with a clear unsupported-op error, or, when its reason
starts with ``precision:``, is closer to the exact float64 result than the case's expected
output; none passes), that
no case gives a wrong answer, and that the pass rate over the cases onnx.reference passes does
not fall below ``FLOOR``; it prints the rate next to the ``GOAL`` and the failing cases.
"""
from __future__ import annotations

import pytest

from onnx_node_suite import (CLOSER, MISMATCH, PASS, PRECISION_REASON, UNSUPPORTED, load_cases, load_exclusions,
                             run_cases)

GOAL = 0.95  # of the cases that onnx.reference passes (benchmarks/onnx_conformance.py reports it)
FLOOR = 0.90  # what tcomp reached when the suite was plugged in: a regression below it fails

CASES = {case.name: case for case in load_cases()}
EXCLUDED = load_exclusions()


@pytest.fixture(scope="module")
def outcomes(request):
    """{(case name, system): Outcome} for the selected cases: reference first, tcomp where it passes."""
    selected = {item.callspec.params["name"] for item in request.session.items
                if item.module is request.module and hasattr(item, "callspec")}
    if any(item.name == "test_conformance_goal" for item in request.session.items):
        selected = set(CASES)
    cases = [CASES[name] for name in sorted(selected)]
    results = run_cases(cases, ["reference"])
    results.update(run_cases([c for c in cases if results[(c.name, "reference")].passed], ["tcomp"]))
    return results


@pytest.mark.parametrize("name", sorted(CASES))
def test_node_case(name, outcomes):
    reference = outcomes[(name, "reference")]
    if not reference.passed:
        pytest.skip(f"onnx.reference fails this case ({reference.status}: {reference.detail[:200]})")
    if name in EXCLUDED:
        pytest.skip(f"excluded: {EXCLUDED[name]}")
    ours = outcomes[(name, "tcomp")]
    if ours.status == UNSUPPORTED:  # a clear refusal is not a pass, and not a wrong answer either
        pytest.xfail(f"tcomp refuses this case: {ours.detail[:300]}")
    assert ours.status == PASS, f"{ours.status}: {ours.detail}"


def test_conformance_goal(outcomes):
    counted = [name for name in CASES if outcomes[(name, "reference")].passed]
    tcomp = {name: outcomes[(name, "tcomp")] for name in counted}
    passing = [name for name in counted if name not in EXCLUDED and tcomp[name].status == PASS]
    unlisted = sorted(name for name in counted if tcomp[name].status != PASS and name not in EXCLUDED)
    unclear = sorted(f"{name} ({tcomp[name].status}: {tcomp[name].detail[:120]})" for name in EXCLUDED
                     if name in tcomp and tcomp[name].status not in (_allowed_status(name), PASS))
    stale = sorted(name for name in EXCLUDED if name in tcomp and tcomp[name].status == PASS)
    unknown = sorted(name for name in EXCLUDED if name not in CASES)
    wrong = sorted(name for name in unlisted if tcomp[name].status == MISMATCH)
    rate = len(passing) / len(counted)
    summary = f"tcomp passes {len(passing)} of {len(counted)} cases that onnx.reference passes ({rate:.1%})"
    assert not unknown, f"onnx_node_exclusions.txt lists cases that do not exist: {unknown}"
    assert not stale, f"onnx_node_exclusions.txt lists cases that tcomp passes (remove them): {stale}"
    assert not unclear, (f"excluded cases must fail with an unsupported-op error (those listed for precision: "
                         f"be closer to the exact result than the expected output), these do not: {unclear}")
    assert not wrong, f"{summary}; wrong answers: {wrong}"
    assert rate >= FLOOR, f"{summary}; it must not fall below {FLOOR:.0%} (the goal is {GOAL:.0%})"
    print(f"{summary}; goal {GOAL:.0%}; {len(unlisted)} failing cases are not in onnx_node_exclusions.txt: "
          f"{unlisted}")


def _allowed_status(name: str) -> str:
    """How an excluded case must fail: closer to the exact result, or refused clearly."""
    return CLOSER if EXCLUDED[name].startswith(PRECISION_REASON) else UNSUPPORTED
