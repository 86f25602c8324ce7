"""Paired intervals and verdicts (issue 22), on constructed differences with known answers."""
import math

import numpy as np
import pytest
from scipy import stats as scipy_stats

from hdlif_ref.training import stats
from hdlif_ref.training.stats import (CONTRADICTED, NOT_RESOLVED, REPRODUCED, Claim, Comparison, judge, judge_claim,
                                      ordering, seeds_to_resolve, t_interval)

# ten paired differences around +2 points with spread 0.2: far from 0 for any reading
CLEAR = np.array([2.0, 2.3, 1.8, 2.1, 2.4, 1.9, 2.2, 2.0, 2.1, 2.3])
# ten differences that cancel: mean 0.02, sd ~1.3
NOISE = np.array([1.0, -1.0, 2.0, -2.0, 0.5, -0.5, 1.5, -1.5, 0.2, 0.0])


def rng():
    return np.random.default_rng(0)


def test_t_interval_is_scipys_student_interval():
    t = t_interval(NOISE)
    low, high = scipy_stats.t.interval(0.95, len(NOISE) - 1, loc=NOISE.mean(), scale=scipy_stats.sem(NOISE))
    assert (t.n, t.mean) == (10, pytest.approx(NOISE.mean()))
    assert t.low == pytest.approx(low, rel=1e-12) and t.high == pytest.approx(high, rel=1e-12)
    assert t.sd == pytest.approx(np.std(NOISE, ddof=1))


def test_fewer_than_two_seeds_give_no_interval_and_no_verdict():
    t = t_interval([3.0])
    assert (t.low, t.high) == (-math.inf, math.inf)
    j = judge([3.0], Comparison("a", "b", +1), rng())
    assert j.verdict == NOT_RESOLVED and j.seeds_needed is None


def test_clear_effect_on_the_papers_side_is_reproduced():
    j = judge(CLEAR, Comparison("a", "b", +1), rng())
    assert j.verdict == REPRODUCED and j.t.low > 0 and j.bootstrap.low > 0 and j.seeds_needed is None
    assert judge(-CLEAR, Comparison("a", "b", -1), rng()).verdict == REPRODUCED  # "a < b" claims


def test_clear_opposite_effect_is_contradicted():
    assert judge(-CLEAR, Comparison("a", "b", +1), rng()).verdict == CONTRADICTED
    assert judge(CLEAR, Comparison("a", "b", -1), rng()).verdict == CONTRADICTED


def test_noise_is_not_resolved_with_a_seed_count_beyond_the_ten_run():
    j = judge(NOISE, Comparison("a", "b", +1), rng())
    assert j.verdict == NOT_RESOLVED
    assert j.t.low < 0 < j.t.high
    assert j.seeds_needed is not None and j.seeds_needed > 1000  # mean 0.02 against sd 1.3
    assert j.seeds_needed == seeds_to_resolve(NOISE.mean(), NOISE.std(ddof=1))


def test_seeds_to_resolve_is_the_paired_t_test_sample_size():
    # effect 1 point, sd 2 (effect size 0.5), 95% two-sided, 80% power: the smallest n with
    # (t_.975,n-1 + t_.8,n-1) * 2 / sqrt(n) <= 1, found here by walking n up one at a time
    def walk(effect, sd):
        n = 2
        while (scipy_stats.t.ppf(0.975, n - 1) + scipy_stats.t.ppf(0.8, n - 1)) * sd / math.sqrt(n) > effect:
            n += 1
        return n

    assert seeds_to_resolve(1.0, 2.0) == walk(1.0, 2.0) == 34  # G*Power's paired-t answer for d = 0.5
    assert seeds_to_resolve(-2.5, 1.3) == walk(2.5, 1.3)
    assert seeds_to_resolve(0.0, 1.0) is None and seeds_to_resolve(1.0, math.nan) is None
    assert seeds_to_resolve(1e-9, 1.0) is None  # beyond MAX_SEEDS
    assert seeds_to_resolve(1.0, 0.0) == 2


def test_match_claims_use_the_margin():
    tight_zero = np.array([0.1, -0.1, 0.05, -0.05, 0.0, 0.1, -0.1, 0.05, -0.05, 0.0])
    assert judge(tight_zero, Comparison("a", "b", 0, 1.0), rng()).verdict == REPRODUCED
    assert judge(tight_zero + 3, Comparison("a", "b", 0, 1.0), rng()).verdict == CONTRADICTED
    assert judge(tight_zero - 3, Comparison("a", "b", 0, 1.0), rng()).verdict == CONTRADICTED
    wide = judge(2 * NOISE, Comparison("a", "b", 0, 1.0), rng())  # 95% half-width ~1.9 > margin
    assert wide.verdict == NOT_RESOLVED
    assert wide.seeds_needed == seeds_to_resolve(1.0 - abs(2 * NOISE.mean()), 2 * NOISE.std(ddof=1))


def test_the_bootstrap_may_withhold_a_verdict_but_never_add_one(monkeypatch):
    wide = stats.Interval(10, 2.0, 0.2, -5.0, 5.0, 0.95)
    monkeypatch.setattr(stats, "bootstrap_interval", lambda d, rng, level=0.95: wide)
    withheld = judge(CLEAR, Comparison("a", "b", +1), rng())
    assert withheld.verdict == NOT_RESOLVED and withheld.withheld == REPRODUCED  # t alone would reproduce
    assert withheld.seeds_needed is None  # more seeds are not what it lacks
    narrow = stats.Interval(3, 0.2, 0.1, 0.1, 0.3, 0.95)
    monkeypatch.setattr(stats, "bootstrap_interval", lambda d, rng, level=0.95: narrow)
    # t with n = 3: [-0.05, 0.45] includes 0; the bootstrap's [0.1, 0.3] does not, and must not count
    assert judge([0.1, 0.2, 0.3], Comparison("a", "b", +1), rng()).verdict == NOT_RESOLVED


def _three_rows(a_minus_b, b_minus_c):
    """Paired differences of three rows a, b, c built from per-seed accuracies."""
    base = np.linspace(70, 80, 10)
    acc = {"a": base + a_minus_b + b_minus_c, "b": base + b_minus_c, "c": base}
    return {(x, y): acc[x] - acc[y] for x in acc for y in acc if x != y}


def test_an_ordering_of_three_rows_checks_every_implied_pair():
    claim = ordering("a > b > c", ["a", "b", "c"])
    assert [(c.a, c.b) for c in claim.comparisons] == [("a", "b"), ("a", "c"), ("b", "c")]
    clear = judge_claim(claim, _three_rows(CLEAR, CLEAR), rng())
    assert clear.verdict == REPRODUCED and all(p.verdict == REPRODUCED for p in clear.pairs)
    # a > c and a > b hold, b ~ c is noise: one open pair leaves the ordering not resolved,
    # and its seed count is that pair's
    open_pair = judge_claim(claim, _three_rows(CLEAR, NOISE), rng())
    assert open_pair.verdict == NOT_RESOLVED
    assert [p.verdict for p in open_pair.pairs] == [REPRODUCED, REPRODUCED, NOT_RESOLVED]
    assert open_pair.seeds_needed == open_pair.pairs[2].seeds_needed
    # c clearly above b: contradicted, also at the Bonferroni level
    flipped = judge_claim(claim, _three_rows(3 * CLEAR, -CLEAR), rng())
    assert flipped.verdict == CONTRADICTED
    assert [p.verdict for p in flipped.corrected] == [REPRODUCED, REPRODUCED, CONTRADICTED]


def test_an_ordering_is_contradicted_only_at_the_corrected_level():
    # b - c is just below 0: contradicted at 95% on its own, not at 1 - 0.05/3
    d = np.array([-0.24, -0.04, -0.44, 0.11, -0.34, -0.14, 0.16, -0.29, -0.19, -0.09])  # mean -0.15, sd 0.19
    single = t_interval(d)
    corrected = t_interval(d, 1 - 0.05 / 3)
    assert single.high < 0 < corrected.high  # the construction does what it says
    judged = judge_claim(ordering("a > b > c", ["a", "b", "c"]), _three_rows(CLEAR, d), rng())
    assert judged.pairs[2].verdict == CONTRADICTED and judged.corrected[2].verdict == NOT_RESOLVED
    assert judged.verdict == NOT_RESOLVED


def test_a_claim_lists_its_rows_once_in_order():
    claim = Claim("x", (Comparison("r7", "r2", -1), Comparison("r7", "r5", -1), Comparison("r7", "r6", -1)))
    assert claim.rows == ("r7", "r2", "r5", "r6")
