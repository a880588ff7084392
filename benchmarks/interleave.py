"""Timing several systems side by side without letting them disturb each other.

Each system lives in its own worker process. Thread pools keep spinning for a while
after each run (OpenBLAS for up to ~0.1 s), so the parent pauses between systems
before it asks the next one for a round: A, pause, B, pause, C, pause, A ... A round
is one untimed run (threads wake up, data returns to cache), then ``inner`` timed
runs whose median is the round's sample. The result per system is the median over
rounds.

A system is ``(setup, args)``: ``setup(*args)`` runs in the worker and returns
``(info, run)`` where ``run()`` executes once and returns an output to check.
"""
from __future__ import annotations

import multiprocessing
import time

import numpy as np


def round_samples(run, inner: int) -> list:
    """One round: an untimed ``run()`` (threads wake up, data returns to cache), then the seconds of
    ``inner`` timed runs."""
    run()
    samples = []
    for _ in range(inner):
        start = time.perf_counter()
        run()
        samples.append(time.perf_counter() - start)
    return samples


def _worker(setup, args, conn, inner: int) -> None:
    info, run = setup(*args)
    conn.send((info, run()))
    while conn.recv() == "run":
        conn.send(round_samples(run, inner))


def interleaved_samples(systems: dict, rounds: int, warmup: int = 3, inner: int = 3, pause: float = 0.25) -> tuple:
    """``systems``: name -> (setup, args). Returns ({name: [the ``inner`` timed seconds of each
    round after ``warmup`` rounds]}, {name: info}, {name: output})."""
    ctx = multiprocessing.get_context("spawn")
    workers, infos, outputs = {}, {}, {}
    for name, (setup, args) in systems.items():
        parent, child = ctx.Pipe()
        proc = ctx.Process(target=_worker, args=(setup, args, child, inner), daemon=True)
        proc.start()
        child.close()  # a worker that dies then ends our recv() with EOFError
        workers[name] = (proc, parent)
        infos[name], outputs[name] = parent.recv()
    samples = {name: [] for name in systems}
    for round_index in range(warmup + rounds):
        for name, (_, conn) in workers.items():
            time.sleep(pause)
            conn.send("run")
            timed = conn.recv()
            if round_index >= warmup:
                samples[name].append(timed)
    for proc, conn in workers.values():
        conn.send("stop")
        proc.join()
    return samples, infos, outputs


def interleaved_medians(systems: dict, rounds: int, warmup: int = 3, inner: int = 3, pause: float = 0.25) -> tuple:
    """``systems``: name -> (setup, args). Returns ({name: median over rounds of each round's
    median seconds}, {name: info}, {name: output})."""
    samples, infos, outputs = interleaved_samples(systems, rounds, warmup, inner, pause)
    return {name: float(np.median([np.median(r) for r in rs])) for name, rs in samples.items()}, infos, outputs
