"""Schedules: the ``Schedule`` API with its primitives and traces (``schedule.py``, ``trace.py``,
``primitives/``), and the default schedules the model compiler applies to fused groups
(``matmul.py``, ``rows.py``, ``window.py`` ...)."""
from . import primitives  # noqa: F401  (adds the primitives to Schedule)
from .schedule import BlockRV, IntRV, LoopRV, Schedule, ScheduleError
from .trace import Instruction, Trace

__all__ = ["BlockRV", "Instruction", "IntRV", "LoopRV", "Schedule", "ScheduleError", "Trace"]
