"""One fuzz case through onnxruntime (the reference) and tcomp (in the isolated worker), classified.

Outcomes:

* ``ok``;
* ``mismatch``: an output differs in shape, dtype or value (floats: beyond a tolerance
  from the output's error bound, see ``case.Spec``; integers and bools: any difference);
* ``crash``: tcomp raised an internal error, killed its process or hung past the time limit;
* ``unsupported``: tcomp raised UnsupportedOpError, a generator bug (it must produce only
  supported graphs);
* ``invalid``: onnx or onnxruntime rejected the graph, or the reference is not finite:
  a generator bug too.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import onnx_helpers
from onnx_helpers import reference, with_static_outputs

from tcomp.errors import UnsupportedOpError

from .builder import ulps
from .case import Case, Spec

TIMEOUT_S = 60.0
STATUSES = ("ok", "mismatch", "crash", "unsupported", "invalid")


@dataclass
class Outcome:
    status: str
    detail: str = ""


def tolerance(spec: Spec, ref: np.ndarray) -> np.ndarray:
    """Allowed absolute difference per element: the error bound, a few roundings, 1e-5 relative."""
    return 8 * spec.err + ulps(spec.mag, 4) + 1e-5 * np.abs(ref)


def compare(case: Case, ours: list, refs: list) -> str | None:
    """A description of the first output that differs, or None."""
    for name, o, r in zip(case.outputs, ours, refs):
        o = np.asarray(o)
        if o.shape != r.shape or o.dtype != r.dtype:
            return f"{name}: {o.dtype}{list(o.shape)} vs reference {r.dtype}{list(r.shape)}"
        if r.dtype == np.float32:
            bad = ~(np.abs(o.astype(np.float64) - r) <= tolerance(case.specs[name], r))
        else:
            bad = o != r
        if np.any(bad):
            first = tuple(int(i) for i in np.argwhere(bad)[0])
            return (f"{name}: {int(bad.sum())} of {r.size} elements differ, first at {first}: "
                    f"tcomp {o[first]!r} vs reference {r[first]!r}")
    return None


def run_case(case: Case, rng: np.random.Generator, timeout: float = TIMEOUT_S) -> Outcome:
    try:
        model, feeds = case.instantiate(rng)
        refs = reference(model, feeds)
    except Exception as exc:  # noqa: BLE001 - any rejection of the graph is a generator bug
        return Outcome("invalid", f"{type(exc).__name__}: {exc}")
    for name, r in zip(case.outputs, refs):
        if r.dtype == np.float32 and not np.all(np.isfinite(r)):
            return Outcome("invalid", f"{name}: the reference is not finite")
    model = with_static_outputs(model, refs)
    try:
        ours = onnx_helpers._WORKER.call("compile_and_run_many", model.SerializeToString(), [feeds],
                                         timeout=timeout)[0]
    except UnsupportedOpError as exc:
        return Outcome("unsupported", str(exc))
    except Exception as exc:  # noqa: BLE001 - internal errors, killed or hung workers
        return Outcome("crash", f"{type(exc).__name__}: {exc}")
    mismatch = compare(case, ours, refs)
    return Outcome("mismatch", mismatch) if mismatch else Outcome("ok")

