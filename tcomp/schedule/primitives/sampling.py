"""Sampling instructions: ``sample_perfect_tile`` and ``sample_categorical``.

    i0, i1, i2 = sch.sample_perfect_tile(i, 3, max_innermost_factor=16)   # e.g. 4, 2, 16 for 128
    sch.split(i, [i0, i1, i2])
    unroll = sch.sample_categorical([0, 16, 64], [0.5, 0.25, 0.25])

They return ``IntRV``s and record what they chose as the instruction's *decision* (the factors;
the candidate's index), drawn from ``sch.rng`` so that ``Schedule(func, seed=...)`` is
reproducible. Replaying a trace gives each instruction its recorded decision, or the one that
``trace.apply_to(func, decisions={position: ...})`` puts in its place; a decision given this
way is checked like a sampled one (the factors must multiply to the extent).
"""
from __future__ import annotations

from ...tir import arith
from ...tir.expr import IntImm
from ..schedule import ScheduleError, primitive


@primitive(sampling=True)
def sample_perfect_tile(sch, loop, n: int, max_innermost_factor: int | None = 16, decision=None):
    """``n`` factors, outermost first, whose product is ``loop``'s constant extent exactly; the
    innermost is at most ``max_innermost_factor`` (None: no limit)."""
    node = sch.get_loop(loop)
    where = f"sample_perfect_tile of loop {node.var.name}"
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ScheduleError(f"{where}: n must be a positive int, got {n!r}")
    if max_innermost_factor is not None and (not isinstance(max_innermost_factor, int) or max_innermost_factor < 1):
        raise ScheduleError(f"{where}: max_innermost_factor must be a positive int or None, got "
                            f"{max_innermost_factor!r}")
    extent = arith.simplify(node.extent)
    if not isinstance(extent, IntImm):
        raise ScheduleError(f"{where}: its extent {extent} is not a constant; perfect tiles need one "
                            f"(split it by constant factors instead)")
    limit = extent.value if max_innermost_factor is None else max_innermost_factor
    if decision is None:
        factors = _sample_factors(sch.rng, extent.value, n, limit)
        if factors is None:
            raise ScheduleError(f"{where}: a single factor is the extent {extent.value}, above "
                                f"max_innermost_factor={max_innermost_factor}")
    else:
        factors = _checked_decision(decision, extent.value, n, limit, where)
    return [sch.new_int(f) for f in factors], list(factors)


@primitive(sampling=True)
def sample_categorical(sch, candidates, probs, decision=None):
    """One of ``candidates`` (ints), drawn with weights ``probs``; the decision is its index."""
    candidates, probs = list(candidates), list(probs)
    if not candidates or len(candidates) != len(probs):
        raise ScheduleError(f"sample_categorical: give as many probabilities as candidates (at least one), got "
                            f"{len(candidates)} candidates and {len(probs)} probabilities")
    if any(isinstance(c, bool) or not isinstance(c, int) for c in candidates):
        raise ScheduleError(f"sample_categorical: candidates must be ints, got {candidates}")
    if any(isinstance(p, bool) or not isinstance(p, (int, float)) or not p >= 0 for p in probs) or sum(probs) <= 0:
        raise ScheduleError(f"sample_categorical: probabilities must be non-negative numbers with a positive sum, "
                            f"got {probs}")
    if decision is None:
        index = sch.rng.choices(range(len(candidates)), weights=probs)[0]
    else:
        index = decision
        if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index < len(candidates):
            raise ScheduleError(f"sample_categorical: decision {decision!r} is not an index into the "
                                f"{len(candidates)} candidates {candidates}")
    return sch.new_int(candidates[index]), index


def _sample_factors(rng, extent: int, n: int, limit: int) -> list | None:
    """A random factorization: the innermost factor uniform among the divisors up to ``limit``, each
    prime factor of the rest given to one of the outer positions at random."""
    if n == 1:
        return [extent] if extent <= limit else None
    divisors = [d for d in range(1, min(extent, limit) + 1) if extent % d == 0]
    innermost = rng.choice(divisors)
    factors = [1] * (n - 1) + [innermost]
    for prime in _prime_factors(extent // innermost):
        factors[rng.randrange(n - 1)] *= prime
    return factors


def _prime_factors(value: int) -> list:
    primes, p = [], 2
    while p * p <= value:
        while value % p == 0:
            primes.append(p)
            value //= p
        p += 1
    if value > 1:
        primes.append(value)
    return primes


def _checked_decision(decision, extent: int, n: int, limit: int, where: str) -> list:
    factors = list(decision) if isinstance(decision, (list, tuple)) else None
    if (factors is None or len(factors) != n
            or any(isinstance(f, bool) or not isinstance(f, int) or f < 1 for f in factors)):
        raise ScheduleError(f"{where}: decision {decision!r} is not a list of {n} positive ints")
    product = 1
    for f in factors:
        product *= f
    if product != extent:
        raise ScheduleError(f"{where}: decision {factors} multiplies to {product}, not the extent {extent}")
    if factors[-1] > limit:
        raise ScheduleError(f"{where}: decision {factors} has innermost factor {factors[-1]} above "
                            f"max_innermost_factor={limit}")
    return [int(f) for f in factors]
