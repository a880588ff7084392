"""Tuning records: one JSON object per line, appended as measurements arrive.

    db = Database("tuning.db")
    db.commit(TuningRecord(workload_key(func), "cpu", trace.to_json(), 0.0012, "ok"))
    db.best(workload_key(func), "cpu")   ->  the fastest "ok" record, or None
    db.workloads()                       ->  [(workload, target), ...]

A line looks like::

    {"workload": "3f1c...", "target": "cpu", "trace": "[...]", "seconds": 0.0012, "status": "ok",
     "features": null}

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

    def to_json(self) -> str:
        fields = asdict(self)
        if self.features is not None:
            fields["features"] = [float(x) for x in self.features]
        return json.dumps(fields)

    @staticmethod
    def from_json(line: str) -> TuningRecord:
        fields = json.loads(line)
        return TuningRecord(fields["workload"], fields["target"], fields["trace"], fields["seconds"],
                            fields["status"], fields.get("features"))


class Database:
    """The records of a JSON lines file, loaded on creation and appended to by ``commit``."""

    def __init__(self, path):
        self.path = os.fspath(path)
        self._records: dict = {}  # (workload, target) -> [TuningRecord] in commit order
        self._best: dict = {}     # (workload, target) -> fastest "ok" TuningRecord
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
        """All records of a workload on a target, in commit order."""
        return list(self._records.get((workload, target), ()))

    def best(self, workload: str, target: str) -> TuningRecord | None:
        """The fastest "ok" record of a workload on a target (None if there is none)."""
        return self._best.get((workload, target))

    def workloads(self) -> list:
        """The (workload, target) pairs that have records, in order of first record."""
        return list(self._records)

    def __len__(self):
        return sum(len(records) for records in self._records.values())

    def _index(self, record: TuningRecord) -> None:
        key = (record.workload, record.target)
        self._records.setdefault(key, []).append(record)
        if record.status == "ok" and record.seconds is not None:
            best = self._best.get(key)
            if best is None or record.seconds < best.seconds:
                self._best[key] = record


def _parse(line: str) -> TuningRecord | None:
    """The record on ``line``, or None for a blank, truncated or foreign line."""
    line = line.strip()
    if not line:
        return None
    try:
        return TuningRecord.from_json(line)
    except (ValueError, KeyError, TypeError):
        return None
