"""Evolutionary search: sampled schedules scored by a cost model, the best predicted measured.

    search = EvolutionarySearch(func, design_space(func), model, measurer, database, seed=0)
    search.run(trials=64, batch_size=16)          # 64 measurements, each committed to database
    confirm_best(func, measurer, database)        # the top 5 measured again, committed as confirmed
    database.best(workload_key(func), "cpu")      # -> the fastest confirmed TuningRecord
    EvolutionarySearch(func, sketches, model, seed=0).predicted(8)   # no measurement: [(score, Candidate)]

A candidate is a concrete trace: a sketch of the design space whose sampling instructions all
carry decisions. Each round draws a population (random samples of the sketches plus the best
measured so far), evolves it for a few generations (keep the top predicted, mutate one
decision of a parent: another tile factorization, categorical choice or compute location),
then measures a batch: the top-predicted candidates not measured yet, an ``epsilon`` share of
them random samples instead. ``predicted`` runs the same evolution without a measurer or a
database and returns the best predicted candidates (what an untuned compile picks from,
``predicted.py``). Results go to the database and train the cost model. Candidates
are identified by their trace JSON, so none is measured twice (across resumed runs too).
Everything random comes from ``seed``: the same seed, measurements and model give the same
candidates.

A candidate's single measurement during the search may be a lucky one (a busy machine makes
the minimum over hundreds of noisy medians optimistic), so ``confirm_best`` measures the
fastest few again at the end, interleaved, and commits their medians as confirmed records,
which ``Database.best`` prefers.
"""
from __future__ import annotations

import random
from dataclasses import dataclass

import numpy as np

from ..costmodel.features import extract
from ..schedule.trace import Trace
from ..tir.stmt import PrimFunc
from .database import TuningRecord
from .workload import workload_key


@dataclass
class Candidate:
    trace: Trace      # concrete: every sampling instruction has its decision
    func: PrimFunc    # the scheduled function
    key: str          # the trace's JSON: the candidate's identity


CONFIRM_TOP = 5     # candidates measured again at the end of tuning a workload
CONFIRM_ROUNDS = 3  # fresh measurements of each


class EvolutionarySearch:
    """Searches one workload's design space; ``run`` measures and records candidates."""

    def __init__(self, func: PrimFunc, sketches: list, model, measurer=None, database=None, target: str = "cpu",
                 seed: int | None = None, population: int = 48, generations: int = 3,
                 epsilon: float = 0.25, elites: int = 8, first: tuple = ()):
        """``measurer`` and ``database`` are needed by ``run`` only (``predicted`` measures nothing);
        ``first``: concrete traces measured before any other candidate (e.g. the untuned schedule's)."""
        if not sketches:
            raise ValueError("EvolutionarySearch needs at least one sketch")
        self.func, self.sketches, self.model = func, list(sketches), model
        self.measurer, self.database, self.target = measurer, database, target
        self.population, self.generations, self.epsilon, self.elites = population, generations, epsilon, elites
        self.workload = workload_key(func)
        self.rng = random.Random(seed)
        records = database.records(self.workload, target) if database is not None else []
        self.measured = {record.trace for record in records}
        self.best_measured = self._learn_from(records)
        self.first = [c for c in (self._realize(t, t.decisions, resample=False) for t in first) if c is not None]

    # ---------------------------------------------------------------- the loop
    def run(self, trials: int, batch_size: int = 16, on_batch=None) -> int:
        """Measures up to ``trials`` new candidates in batches (fewer when the space runs out);
        ``on_batch(candidates, results)`` after each. Returns how many were measured."""
        done = 0
        while done < trials:
            batch = self.next_batch(min(batch_size, trials - done))
            if not batch:
                break
            results = self.measurer.measure([c.trace for c in batch])
            self._record(batch, results)
            done += len(batch)
            if on_batch is not None:
                on_batch(batch, results)
        return done

    def next_batch(self, size: int) -> list:
        """``size`` unmeasured candidates: ``first``'s, then the top predicted after evolution, an epsilon
        share of the rest random."""
        first = [cand for cand in self.first if cand.key not in self.measured][:size]
        unmeasured = [cand for _, cand in self._evolve()
                      if cand.key not in self.measured and all(cand.key != c.key for c in first)]
        n_random = round((size - len(first)) * self.epsilon)
        predicted = size - len(first) - n_random
        batch = first + unmeasured[:predicted]
        # then random samples (the epsilon share, or more where evolution found too few), then predicted
        for cand in self._sample(4 * (size - len(batch))) + unmeasured[predicted:]:
            if len(batch) == size:
                break
            if cand.key not in self.measured and all(cand.key != c.key for c in batch):
                batch.append(cand)
        return batch

    def predicted(self, count: int) -> list:
        """The ``count`` best predicted distinct candidates after evolution, as (score, Candidate),
        best first; nothing is measured."""
        return self._evolve()[:count]

    def _evolve(self) -> list:
        """Every candidate scored during one evolution, as (score, Candidate), best first: a
        population of the best measured plus random samples, then ``generations`` rounds that keep
        the top predicted half and fill up with mutations of them (the better, the likelier)."""
        population = [c for _, c in self.best_measured] + self._sample(self.population)
        pool: dict = {}
        for generation in range(self.generations + 1):
            population = _unique(population)
            scores = self._predict(population)
            for cand, score in zip(population, scores):
                pool.setdefault(cand.key, (score, cand))
            if generation == self.generations:
                break
            ranked = [population[i] for i in np.argsort(-scores, kind="stable")]
            parents = ranked[:max(1, self.population // 2)]
            weights = [len(parents) - i for i in range(len(parents))]
            children = [self._mutate(p) for p in self.rng.choices(parents, weights, k=self.population - len(parents))]
            population = parents + [c for c in children if c is not None]
        return sorted(pool.values(), key=lambda item: -item[0])

    # ---------------------------------------------------------------- candidates
    def _sample(self, count: int) -> list:
        """Up to ``count`` random candidates of the sketches (invalid draws are dropped)."""
        found = []
        for _ in range(2 * count):
            if len(found) == count:
                break
            sketch = self.rng.choice(self.sketches)
            cand = self._realize(sketch, {}, resample=True)
            if cand is not None:
                found.append(cand)
        return found

    def _mutate(self, parent: Candidate) -> Candidate | None:
        """``parent`` with one sampling decision drawn again (a different result), or None."""
        decisions = parent.trace.decisions
        if not decisions:
            return None
        position = self.rng.choice(sorted(decisions))
        kept = {i: d for i, d in decisions.items() if i != position}
        for _ in range(4):
            child = self._realize(parent.trace, kept, resample=True)
            if child is not None and child.key != parent.key:
                return child
        return None

    def _realize(self, trace: Trace, decisions: dict, resample: bool) -> Candidate | None:
        """``trace`` replayed on the function (undecided samples drawn from the search's rng);
        None when the schedule refuses it (a design-space rule or mutation may make illegal
        combinations: any error of the replay drops the candidate)."""
        try:
            sch = trace.apply_to(self.func, decisions=decisions, resample=resample,
                                 seed=self.rng.randrange(2**31))
        except Exception:  # noqa: BLE001 - an illegal candidate is skipped, never fatal to tuning
            return None
        return Candidate(sch.trace, sch.func, sch.trace.to_json())

    def _predict(self, candidates: list) -> np.ndarray:
        if not candidates:
            return np.zeros(0)
        return np.asarray(self.model.predict([c.func for c in candidates]), dtype=np.float64)

    # ---------------------------------------------------------------- records
    def _record(self, batch: list, results: list) -> None:
        """Commits the measurements, trains the model on the successful ones, keeps the best."""
        good_funcs, good_seconds = [], []
        for cand, result in zip(batch, results):
            ok = result.status == "ok" and result.seconds is not None
            self.database.commit(TuningRecord(self.workload, self.target, cand.key,
                                              result.seconds if ok else None, result.status,
                                              extract(cand.func).tolist()))
            self.measured.add(cand.key)
            if ok:
                good_funcs.append(cand.func)
                good_seconds.append(result.seconds)
                self.best_measured.append((result.seconds, cand))
        if good_funcs:
            self.model.update(good_funcs, good_seconds)
        self.best_measured.sort(key=lambda item: item[0])
        del self.best_measured[self.elites:]

    def _learn_from(self, records: list) -> list:
        """Trains the model on earlier successful search records (confirmations are repeats of
        them); returns the best as (seconds, candidate)."""
        best = []
        for record in records:
            if record.status != "ok" or record.seconds is None or record.confirmed:
                continue
            cand = self._realize(Trace.from_json(record.trace), {}, resample=False)
            if cand is not None:
                best.append((record.seconds, cand))
        if best:
            self.model.update([c.func for _, c in best], [s for s, _ in best])
        best.sort(key=lambda item: item[0])
        return best[:self.elites]


def confirm_best(func: PrimFunc, measurer, database, target: str = "cpu", top: int = CONFIRM_TOP,
                 rounds: int = CONFIRM_ROUNDS, template_measurer=None) -> int:
    """Measures the ``top`` fastest distinct "ok" candidates of the search again, ``rounds``
    fresh measurements each, interleaved (c1 c2 .. ck, c1 c2 .. ck, ...), and commits each as a
    confirmed record: the median of its measurements, or the status of the first that failed.
    Candidates confirmed before are not measured again (a repeated or resumed call measures only
    newcomers to the top). Returns how many candidates were measured.

    ``template_measurer`` (a Measurer of the task's template kernel) measures the template once in
    each round too (c1 .. ck T, c1 .. ck T, ...), committed as confirmed "template" records: the
    template is then compared with the candidates on measurements taken side by side
    (``tasks.template_seconds``), not on the few taken when its search began."""
    workload = workload_key(func)
    records = database.records(workload, target)
    confirmed = {record.trace for record in records if record.confirmed}
    ranked = sorted((r for r in records if r.status == "ok" and r.seconds is not None and not r.confirmed),
                    key=lambda r: r.seconds)
    leaders = list(dict.fromkeys(record.trace for record in ranked))[:top]
    todo = [trace for trace in leaders if trace not in confirmed]
    if not todo or rounds < 1:
        return 0
    rounds_results = []
    for _ in range(rounds):
        rounds_results.append(measurer.measure(todo))
        if template_measurer is not None:
            (measured,) = template_measurer.measure([Trace()])
            if measured.status == "ok" and measured.seconds is not None:
                database.commit(TuningRecord(workload, target, Trace().to_json(), measured.seconds, "template",
                                             confirmed=True))
    for i, trace in enumerate(todo):
        results = [round_results[i] for round_results in rounds_results]
        failed = next((r for r in results if r.status != "ok" or r.seconds is None), None)
        if failed is not None:
            record = TuningRecord(workload, target, trace, None, failed.status, confirmed=True)
        else:
            record = TuningRecord(workload, target, trace, float(np.median([r.seconds for r in results])), "ok",
                                  confirmed=True)
        database.commit(record)
    return len(todo)


def _unique(candidates: list) -> list:
    seen, out = set(), []
    for cand in candidates:
        if cand.key not in seen:
            seen.add(cand.key)
            out.append(cand)
    return out
