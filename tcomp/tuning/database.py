"""Tuning records: one JSON object per line, appended as measurements arrive.

    db = Database("tuning.db")
    db.commit(TuningRecord(workload_key(func), "cpu", trace.to_json(), 0.0012, "ok"))
    db.best(workload_key(func), "cpu")   ->  the fastest "ok" record (confirmed ones first), or None
    db.workloads()                       ->  [(workload, target), ...]
    db.verdict(workload_key(func), "cpu", trace_json)  ->  the in-model verdict of that trace, or None

A line looks like::

    {"workload": "3f1c...", "target": "cpu", "trace": "[...]", "seconds": 0.0012, "status": "ok",
     "features": null, "confirmed": false}

Confirmed records: the search's fastest single measurement is often a lucky one on a busy
machine, so at the end of tuning the top candidates are measured again (``search.confirm_best``)
and committed once more with ``confirmed: true`` and the median of those fresh measurements (or
the status of a failed one). ``best`` then picks among the confirmed "ok" records of the
workload; without any it picks among the other "ok" records, leaving out traces whose
confirmation failed. Lines without the field (older files) load as not confirmed.

In-model verdicts: after tuning a model, ``tuning/in_model.py`` times the kernels the compile
would apply between their neighbours in the model, against the template kernels, and commits
one verdict per task: status ``"verified"`` (won in the model) or ``"rejected"`` (did not; the
compile keeps the template), ``trace`` the record it judged, ``seconds`` the tuned kernel's time
in the model and ``baseline`` the template's::

    {"workload": "3f1c...", "target": "cpu", "trace": "[...]", "seconds": 0.00174, "status": "rejected",
     "features": null, "confirmed": false, "baseline": 0.00122}

Verdicts are not measurements: ``records``, ``best`` and ``trials`` leave them out, and
``verdict`` returns the latest one of a trace (a trace tuned further gets its own). Only verdict
lines carry ``baseline``; older files (no verdicts) load as before.

The file is only ever appended to (opened, written and flushed per commit), so a new Database
on the same path resumes where an earlier one stopped. A line cut short by a crash mid-write
(or any line that is not a record) is skipped on loading, and the next commit starts on a
fresh line. Records are indexed in memory by (workload, target).
"""
from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class TuningRecord:
    workload: str                 # workload_key(func)
    target: str                   # e.g. "cpu"
    trace: str                    # Trace JSON: replaying it on the func gives the measured program
    seconds: float | None         # median run time when status is "ok"
    status: str                   # a MeasureResult status: "ok", "build_error", "crash", "timeout", "wrong"
    features: list | None = None  # the cost model's features of the program, if kept
    confirmed: bool = False       # a re-measurement of a top candidate after the search (see above)
    baseline: float | None = None  # a verdict's template seconds in the model

    def to_json(self) -> str:
        fields = asdict(self)
        if self.features is not None:
            fields["features"] = [float(x) for x in self.features]
        if self.baseline is None:
            del fields["baseline"]
        return json.dumps(fields)

    @staticmethod
    def from_json(line: str) -> TuningRecord:
        fields = json.loads(line)
        return TuningRecord(fields["workload"], fields["target"], fields["trace"], fields["seconds"],
                            fields["status"], fields.get("features"), bool(fields.get("confirmed", False)),
                            fields.get("baseline"))

    @property
    def is_verdict(self) -> bool:
        return self.status in VERDICTS


VERDICTS = ("verified", "rejected")  # statuses of in-model verdicts (see above)


class Database:
    """The records of a JSON lines file, loaded on creation and appended to by ``commit``."""

    def __init__(self, path):
        self.path = os.fspath(path)
        self._records: dict = {}  # (workload, target) -> [TuningRecord] in commit order
        self._best: dict = {}     # (workload, target) -> best() result, dropped when a record is added
        self._verdicts: dict = {}  # (workload, target, trace) -> the latest verdict
        self._lines = 0
        if os.path.exists(self.path):
            with open(self.path, encoding="utf-8") as f:
                for line in f:
                    record = _parse(line)
                    if record is not None:
                        self._index(record)

    def commit(self, record: TuningRecord) -> None:
        """Appends ``record`` to the file (flushed) and to the index."""
        line = record.to_json() + "\n"
        with open(self.path, "a+b") as f:
            if f.tell() > 0:  # a line cut short by a crash: end it, so this record stays whole
                f.seek(f.tell() - 1)
                if f.read(1) != b"\n":
                    line = "\n" + line
            f.write(line.encode("utf-8"))
            f.flush()
        self._index(record)

    def records(self, workload: str, target: str) -> list:
        """All measurement records of a workload on a target (verdicts left out), in commit order."""
        return list(self._records.get((workload, target), ()))

    def best(self, workload: str, target: str) -> TuningRecord | None:
        """The fastest confirmed "ok" record of a workload on a target; without one, the fastest
        "ok" record whose trace has no failed confirmation (None if there is none)."""
        key = (workload, target)
        if key not in self._best:
            self._best[key] = _fastest(self._records.get(key, ()))
        return self._best[key]

    def trials(self, workload: str, target: str) -> int:
        """How many candidates the search measured (records less confirmations)."""
        return sum(not record.confirmed for record in self._records.get((workload, target), ()))

    def verdict(self, workload: str, target: str, trace: str) -> TuningRecord | None:
        """The latest in-model verdict ("verified" or "rejected") of ``trace``, or None."""
        return self._verdicts.get((workload, target, trace))

    def workloads(self) -> list:
        """The (workload, target) pairs that have records, in order of first record."""
        return list(self._records)

    def __len__(self):
        """Records in the file, verdicts included."""
        return self._lines

    def _index(self, record: TuningRecord) -> None:
        self._lines += 1
        key = (record.workload, record.target)
        if record.is_verdict:
            self._verdicts[key + (record.trace,)] = record
            return
        self._records.setdefault(key, []).append(record)
        self._best.pop(key, None)


def _fastest(records) -> TuningRecord | None:
    """``best`` over one workload's records: confirmed "ok" ones first (first of equal times)."""
    ok = [r for r in records if r.status == "ok" and r.seconds is not None]
    pool = [r for r in ok if r.confirmed]
    if not pool:
        failed = {r.trace for r in records if r.confirmed}
        pool = [r for r in ok if r.trace not in failed]
    return min(pool, key=lambda r: r.seconds, default=None)


def _parse(line: str) -> TuningRecord | None:
    """The record on ``line``, or None for a blank, truncated or foreign line."""
    line = line.strip()
    if not line:
        return None
    try:
        return TuningRecord.from_json(line)
    except (ValueError, KeyError, TypeError):
        return None
