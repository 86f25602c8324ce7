"""Paired statistics for the ablation (issue 22): intervals, verdicts, power estimates.

Every claim of the paper that the ablation checks is a statement about the
difference of two rows, ``d_i = acc(row a, seed i) - acc(row b, seed i)`` in
accuracy points. Seed ``i`` gives both rows the same data split, initialization
stream and batch order, so the differences are *paired*: the seed-to-seed spread
that both rows share cancels.

Verdict rules (docs/results.md states them; no other words are used):

- **reproduced**: the 95% t-interval of the mean paired difference excludes 0 on the
  paper's side (a match claim: the interval lies inside ``(-margin, +margin)``);
- **contradicted**: it excludes 0 on the other side (a match claim: the interval lies
  entirely beyond the margin);
- **not resolved**: otherwise, with the number of seeds that would resolve the observed
  effect (:func:`seeds_to_resolve`).

The percentile bootstrap interval is a check of the t-interval, never a second chance:
a verdict other than *not resolved* needs both intervals to give it.

An ordering of several rows (``a > b > c``) is the set of every pairwise difference it
implies. It is *reproduced* when every pair is (an intersection-union test: no
correction needed), *contradicted* when some pair is contradicted at the
Bonferroni-corrected level ``1 - 0.05 / pairs`` (so one pair out of many cannot
contradict by chance), and *not resolved* otherwise.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
from scipy import stats as _scipy_stats

LEVEL = 0.95
POWER = 0.8
BOOTSTRAP_RESAMPLES = 10_000
#: Beyond this many seeds :func:`seeds_to_resolve` stops counting (``None``: not within reach).
MAX_SEEDS = 100_000

REPRODUCED, CONTRADICTED, NOT_RESOLVED = "reproduced", "contradicted", "not resolved"
VERDICTS = (REPRODUCED, CONTRADICTED, NOT_RESOLVED)


@dataclass(frozen=True)
class Interval:
    """Mean of paired differences with a two-sided confidence interval (``low, high``)."""

    n: int
    mean: float
    sd: float
    low: float
    high: float
    level: float


def t_interval(differences, level: float = LEVEL) -> Interval:
    """Student-t interval of the mean: ``mean +- t_{(1+level)/2, n-1} * sd / sqrt(n)``.

    ``sd`` is the sample standard deviation (``ddof=1``). Fewer than two differences
    give the whole line ``(-inf, inf)``.
    """
    d = np.asarray(differences, dtype=np.float64).ravel()
    n = d.size
    mean = float(d.mean()) if n else math.nan
    if n < 2:
        return Interval(n, mean, math.nan, -math.inf, math.inf, level)
    sd = float(d.std(ddof=1))
    half = float(_scipy_stats.t.ppf(0.5 + level / 2, n - 1)) * sd / math.sqrt(n)
    return Interval(n, mean, sd, mean - half, mean + half, level)


def bootstrap_interval(differences, rng: np.random.Generator, level: float = LEVEL,
                       resamples: int = BOOTSTRAP_RESAMPLES) -> Interval:
    """Percentile bootstrap interval of the mean (``resamples`` draws with replacement)."""
    d = np.asarray(differences, dtype=np.float64).ravel()
    n = d.size
    if n < 2:
        return Interval(n, float(d.mean()) if n else math.nan, math.nan, -math.inf, math.inf, level)
    means = d[rng.integers(0, n, size=(resamples, n))].mean(axis=1)
    low, high = np.quantile(means, [0.5 - level / 2, 0.5 + level / 2])
    return Interval(n, float(d.mean()), float(d.std(ddof=1)), float(low), float(high), level)


def seeds_to_resolve(effect: float, sd: float, level: float = LEVEL, power: float = POWER,
                     limit: int = MAX_SEEDS) -> int | None:
    """Seeds needed for an interval of half-width ``effect`` with probability ``power``.

    The smallest ``n >= 2`` with ``(t_{(1+level)/2, n-1} + t_{power, n-1}) * sd / sqrt(n) <= |effect|``
    (the usual sample size of a paired t-test, taking the observed ``sd`` as the truth).
    ``effect`` is the distance the interval must clear: the mean difference for an
    ordering, the distance of the mean to the margin for a match. ``None`` when no
    number up to ``limit`` does (an effect of 0, or an unknown ``sd``).
    """
    effect = abs(float(effect))
    if not math.isfinite(sd) or effect == 0.0:
        return None
    if sd == 0.0:
        return 2

    def half_width(n: int) -> float:  # decreases with n
        return float(_scipy_stats.t.ppf(0.5 + level / 2, n - 1) + _scipy_stats.t.ppf(power, n - 1)) * sd / math.sqrt(n)

    if half_width(limit) > effect:
        return None
    low, high = 2, limit  # invariant: half_width(high) <= effect
    while low < high:
        mid = (low + high) // 2
        if half_width(mid) <= effect:
            high = mid
        else:
            low = mid + 1
    return high


def _verdict(interval: Interval, side: int, margin: float) -> str:
    """The verdict one interval gives: ``side`` +1 (paper: a > b), -1 (a < b), 0 (a ~ b within margin)."""
    low, high = interval.low, interval.high
    if side == 0:
        if -margin < low and high < margin:
            return REPRODUCED
        if low > margin or high < -margin:
            return CONTRADICTED
        return NOT_RESOLVED
    low, high = (low, high) if side > 0 else (-high, -low)
    if low > 0:
        return REPRODUCED
    if high < 0:
        return CONTRADICTED
    return NOT_RESOLVED


@dataclass(frozen=True)
class Comparison:
    """One pairwise statement: row ``a`` against row ``b`` (labels), ``side`` as in :func:`judge`."""

    a: str
    b: str
    side: int
    margin: float = 0.0

    def relation(self) -> str:
        return {1: ">", -1: "<", 0: "~"}[self.side]


@dataclass(frozen=True)
class Judgement:
    """The verdict on one paired difference, with the evidence it rests on."""

    comparison: Comparison
    verdict: str
    t: Interval
    bootstrap: Interval
    seeds_needed: int | None  # seeds that would resolve it (only when not resolved)
    withheld: str | None = None  # the t-interval's verdict when the bootstrap withheld it


def judge(differences, comparison: Comparison, rng: np.random.Generator, level: float = LEVEL) -> Judgement:
    """Judge one paired difference ``a - b`` (accuracy points) by the rules of the module docstring."""
    t = t_interval(differences, level)
    boot = bootstrap_interval(differences, rng, level)
    verdict = _verdict(t, comparison.side, comparison.margin)
    withheld = None
    if _verdict(boot, comparison.side, comparison.margin) != verdict:
        withheld = verdict if verdict != NOT_RESOLVED else None
        verdict = NOT_RESOLVED
    needed = None
    if verdict == NOT_RESOLVED and t.n >= 2 and withheld is None:
        distance = abs(t.mean) if comparison.side else abs(comparison.margin - abs(t.mean))
        needed = seeds_to_resolve(distance, t.sd, level)
    return Judgement(comparison, verdict, t, boot, needed, withheld)


@dataclass(frozen=True)
class Claim:
    """A claim of the paper: one comparison, or an ordering given as every pairwise comparison."""

    text: str
    comparisons: tuple[Comparison, ...]

    @property
    def rows(self) -> tuple[str, ...]:
        seen: list[str] = []
        for c in self.comparisons:
            seen += [r for r in (c.a, c.b) if r not in seen]
        return tuple(seen)


@dataclass(frozen=True)
class ClaimJudgement:
    claim: Claim
    verdict: str
    pairs: tuple[Judgement, ...]
    seeds_needed: int | None
    corrected: tuple[Judgement, ...] = field(default=())  # Bonferroni-level judgements (orderings only)


def ordering(text: str, labels: list[str]) -> Claim:
    """The claim ``labels[0] > labels[1] > ...``: every implied pair ``labels[i] > labels[j]``, ``i < j``."""
    pairs = tuple(Comparison(labels[i], labels[j], +1) for i in range(len(labels)) for j in range(i + 1, len(labels)))
    return Claim(text, pairs)


def judge_claim(claim: Claim, differences: dict[tuple[str, str], np.ndarray], rng: np.random.Generator,
                level: float = LEVEL) -> ClaimJudgement:
    """Judge every comparison of ``claim``; ``differences[(a, b)]`` holds the paired ``a - b``.

    One comparison: its verdict. Several (an ordering): *reproduced* when every pair is,
    *contradicted* when some pair is at the Bonferroni level ``1 - (1 - level) / pairs``,
    else *not resolved*; the seeds needed are then the most any unresolved pair needs.
    """
    pairs = tuple(judge(differences[(c.a, c.b)], c, rng, level) for c in claim.comparisons)
    if len(pairs) == 1:
        return ClaimJudgement(claim, pairs[0].verdict, pairs, pairs[0].seeds_needed)
    corrected_level = 1 - (1 - level) / len(pairs)
    corrected = tuple(judge(differences[(c.a, c.b)], c, rng, corrected_level) for c in claim.comparisons)
    if all(p.verdict == REPRODUCED for p in pairs):
        return ClaimJudgement(claim, REPRODUCED, pairs, None, corrected)
    if any(p.verdict == CONTRADICTED for p in corrected):
        return ClaimJudgement(claim, CONTRADICTED, pairs, None, corrected)
    # every pair not yet reproduced must resolve: towards reproduced at the 95% level when its
    # observed effect lies on the paper's side, else towards contradicted at the corrected level
    needed = [seeds_to_resolve(p.t.mean, p.t.sd, level if p.t.mean * p.comparison.side > 0 else corrected_level)
              for p in pairs if p.verdict != REPRODUCED and not p.withheld]
    return ClaimJudgement(claim, NOT_RESOLVED, pairs, None if None in needed or not needed else max(needed),
                          corrected)
