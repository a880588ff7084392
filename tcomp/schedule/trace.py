"""Schedule traces: every primitive call with its inputs, outputs and sampled decisions.

A trace is data. Its JSON form names random variables by number::

    [{"kind": "get_block", "inputs": ["C"], "outputs": [{"block": 0}]},
     {"kind": "get_loops", "inputs": [{"block": 0}], "outputs": [{"loop": 1}, {"loop": 2}, {"loop": 3}]},
     {"kind": "sample_perfect_tile", "inputs": [{"loop": 1}, 2, 16], "outputs": [{"int": 4}, {"int": 5}],
      "decision": [8, 16]},
     {"kind": "split", "inputs": [{"loop": 1}, [{"int": 4}, {"int": 5}]], "outputs": [{"loop": 6}, {"loop": 7}]}]

``trace.apply_to(func)`` replays it on a fresh schedule of ``func``: the same calls, each
sampling instruction taking its recorded decision (or one given in ``decisions``, which is
how a tuner mutates a schedule), so the program comes out identical.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Instruction:
    kind: str              # the primitive's name
    inputs: tuple          # encoded arguments: literals, {"block"|"loop"|"int": number}, lists of those
    kwargs: dict           # encoded keyword arguments
    outputs: tuple         # encoded results
    decision: object = None  # what a sampling instruction chose

    def to_dict(self) -> dict:
        entry = {"kind": self.kind, "inputs": list(self.inputs), "outputs": list(self.outputs)}
        if self.kwargs:
            entry["kwargs"] = dict(self.kwargs)
        if self.decision is not None:
            entry["decision"] = self.decision
        return entry

    @staticmethod
    def from_dict(entry: dict) -> "Instruction":
        return Instruction(entry["kind"], tuple(entry["inputs"]), dict(entry.get("kwargs", {})),
                           tuple(entry["outputs"]), entry.get("decision"))


@dataclass
class Trace:
    instructions: list = field(default_factory=list)

    def to_json(self) -> str:
        return json.dumps([inst.to_dict() for inst in self.instructions])

    @staticmethod
    def from_json(text: str) -> "Trace":
        return Trace([Instruction.from_dict(entry) for entry in json.loads(text)])

    def apply_to(self, func, decisions: dict | None = None, resample: bool = False, seed: int | None = None):
        """A new ``Schedule`` of ``func`` with every instruction replayed.

        ``decisions`` maps an instruction's position to a decision replacing the recorded one.
        With ``resample``, the sampling instructions not in ``decisions`` draw new decisions
        (from ``seed``): a trace of sampling instructions is a design space, and this samples it.
        """
        from .schedule import Schedule

        sch = Schedule(func, seed=seed)
        chosen = dict(decisions or {})
        if not resample:
            chosen = {**self.decisions, **chosen}
        sch.replay(self, chosen)
        return sch

    @property
    def decisions(self) -> dict:
        """{position: decision} of the sampling instructions."""
        return {index: inst.decision for index, inst in enumerate(self.instructions) if inst.decision is not None}

    def __len__(self):
        return len(self.instructions)

    def __str__(self):
        return "\n".join(_render(inst) for inst in self.instructions)


def _render(inst: Instruction) -> str:
    """One instruction as Python-like text: ``l6, l7 = sch.split(l1, [v4, v5])  # decision``."""
    def show(value):
        if isinstance(value, dict):
            kind, number = next(iter(value.items()))
            return f"{ {'block': 'b', 'loop': 'l', 'int': 'v'}[kind] }{number}".replace(" ", "")
        if isinstance(value, list):
            return "[" + ", ".join(show(v) for v in value) + "]"
        return repr(value)

    args = [show(v) for v in inst.inputs] + [f"{k}={show(v)}" for k, v in inst.kwargs.items()]
    outs = ", ".join(show(v) for v in _flat(inst.outputs))
    text = f"{outs + ' = ' if outs else ''}sch.{inst.kind}({', '.join(args)})"
    return text + (f"  # decision: {inst.decision}" if inst.decision is not None else "")


def _flat(values):
    for value in values:
        if isinstance(value, list):
            yield from _flat(value)
        else:
            yield value
