"""The verdict engine (eval/verdict.py): pure decisions, so tables of cases and their expected verdicts."""

from __future__ import annotations

import math

import pytest

from eval.config import VerdictRule
from eval.verdict import (
    PROMISING_FRACTION,
    Samples,
    at_partners_compute,
    comparable,
    compute_slope,
    draws,
    harness_seeds,
    judge,
    judge_pairs,
    paired_k,
    promising,
    t_tail,
)

NOISE = VerdictRule("noise", k=2.0, seeds=3, min_spread=0.0)
GREEDY = VerdictRule("greedy", k=2.0, seeds=3, min_spread=0.0)
NAN, INF = float("nan"), float("inf")

# The best: mean 1.0, sample std 0.01 (three seeds). Standard error of the difference of means
# against 3 candidate seeds with the same spread: 0.01 * sqrt(2/3) = 0.00816; k=2 -> 0.0163.
BEST = Samples((0.99, 1.00, 1.01))
SPREAD3 = (-0.01, 0.0, 0.01)  # candidate offsets with the same sample std 0.01


def mirrored(direction: str, values: list[float]) -> tuple[Samples, list[float]]:
    """The same case in the other direction: maximizing -x is minimizing x."""
    if direction == "minimize":
        return BEST, values
    return Samples(tuple(-v for v in BEST.values)), [-v for v in values]


@pytest.mark.parametrize("direction", ["minimize", "maximize"])
@pytest.mark.parametrize("rule, values, status", [
    # greedy: any improvement of the mean, one run; ties and worse discard
    (GREEDY, [0.9999], "keep"),
    (GREEDY, [0.99], "keep"),
    (GREEDY, [1.0], "discard"),
    (GREEDY, [1.0001], "discard"),
    # noise, three candidate seeds: an improvement inside the spread is rejected, one beyond it kept
    (NOISE, [1.0 - 0.01 + o for o in SPREAD3], "discard"),  # 0.010 < 0.0163
    (NOISE, [1.0 - 0.016 + o for o in SPREAD3], "discard"),  # just inside
    (NOISE, [1.0 - 0.017 + o for o in SPREAD3], "keep"),  # just beyond
    (NOISE, [1.0 - 0.05 + o for o in SPREAD3], "keep"),
    (NOISE, [1.0 + o for o in SPREAD3], "discard"),  # a tie
    (NOISE, [1.02 + o for o in SPREAD3], "discard"),  # worse
    # noise, one candidate run (not promising): judged by the best's spread, 0.01 * sqrt(4/3) * 2 = 0.0231
    (NOISE, [0.98], "discard"),
    (NOISE, [0.97], "keep"),
])
def test_keep_or_discard(direction, rule, values, status):
    expected_delta = 1.0 - sum(values) / len(values)  # positive = better, in either direction
    best, values = mirrored(direction, values)
    v = judge(direction, rule, best, "ok", values)
    assert v.status == status, v.reason
    assert v.reason.startswith("kept: " if status == "keep" else "discarded: ")
    assert v.delta == pytest.approx(expected_delta, abs=1e-12)


@pytest.mark.parametrize("direction", ["minimize", "maximize"])
def test_numbers_in_the_verdict(direction):
    best, values = mirrored(direction, [0.95, 0.96, 0.97])
    v = judge(direction, NOISE, best, "ok", values)
    assert v.status == "keep"
    assert v.delta == pytest.approx(0.04)
    assert v.spread == pytest.approx(0.01)
    assert v.threshold == pytest.approx(2 * 0.01 * math.sqrt(2 / 3))
    assert abs(v.mean) == pytest.approx(0.96)
    assert "by 0.0400, beyond the required 0.0163" in v.reason and "spread 0.0100 over 3+3 seeds" in v.reason


def test_pooled_spread_uses_both_sides():
    """A noisy candidate widens the margin: pooled std of (0.01, 0.03) over 2+2 dof = sqrt(0.0005)."""
    v = judge("minimize", NOISE, BEST, "ok", [0.95, 0.98, 1.01])
    assert v.spread == pytest.approx(math.sqrt((0.01**2 + 0.03**2) / 2))
    assert v.status == "discard"  # 0.02 better, but the required margin is 0.0258


@pytest.mark.parametrize("min_spread, status", [(0.0, "keep"), (0.05, "discard")])
def test_min_spread_floors_the_spread(min_spread, status):
    rule = VerdictRule("noise", k=2.0, seeds=3, min_spread=min_spread)
    v = judge("minimize", rule, BEST, "ok", [0.95, 0.96, 0.97])
    assert v.status == status
    assert v.spread == pytest.approx(max(0.01, min_spread))


def test_unknown_spread_without_a_floor_is_greedy():
    """One seed a side (seeds: 1) and no floor: nothing is known of the noise, any gain counts."""
    best = Samples((1.0,))
    assert judge("minimize", NOISE, best, "ok", [0.999]).status == "keep"
    assert judge("minimize", NOISE, best, "ok", [1.0]).status == "discard"
    floored = VerdictRule("noise", k=2.0, seeds=1, min_spread=0.01)
    assert judge("minimize", floored, best, "ok", [0.99]).status == "discard"  # 0.01 < 2 * 0.01 * sqrt(2)


@pytest.mark.parametrize("rule", [NOISE, GREEDY])
@pytest.mark.parametrize("outcome, values, status, named", [
    ("crash", [], "crash", "outcome crash"),
    ("oom", [], "crash", "outcome oom"),
    ("nan", [], "crash", "outcome nan"),
    ("timeout", [], "timeout", "outcome timeout"),
    ("crash", [0.5], "crash", "outcome crash"),  # a failed seed fails the candidate, good values or not
    ("ok", [NAN], "crash", "not finite"),
    ("ok", [INF], "crash", "not finite"),
    ("ok", [-INF], "crash", "not finite"),
    ("ok", [0.9, NAN, 0.9], "crash", "not finite"),
    ("ok", [], "crash", "not finite"),
])
@pytest.mark.parametrize("best", [BEST, None])
def test_failures(rule, outcome, values, status, named, best):
    v = judge("minimize", rule, best, outcome, values)
    assert (v.status, v.mean, v.delta, v.threshold) == (status, None, None, None)
    assert named in v.reason and v.reason.startswith(f"{status}: ")


@pytest.mark.parametrize("rule", [NOISE, GREEDY])
@pytest.mark.parametrize("values, spread", [([1.7], None), ([1.0, 1.2], math.sqrt(0.02))])
def test_baseline_is_kept(rule, values, spread):
    v = judge("maximize", rule, None, "ok", values)
    assert (v.status, v.delta, v.threshold) == ("keep", None, None)
    assert v.spread == (None if spread is None else pytest.approx(spread))
    assert v.reason.startswith("kept as the baseline")


@pytest.mark.parametrize("bad", [("sideways", NOISE), ("minimize", VerdictRule("bayes", 2.0, 3, 0.0))])
def test_unknown_direction_or_rule_fails_closed(bad):
    direction, rule = bad
    with pytest.raises(ValueError):
        judge(direction, rule, BEST, "ok", [0.5])
    with pytest.raises(ValueError):
        promising(direction, rule, BEST, 0.5)
    with pytest.raises(ValueError):
        judge("minimize", NOISE, BEST, "exploded", [0.5])


def test_samples():
    s = Samples([1.0, 2.0, 3.0])
    assert (s.values, s.n, s.mean, s.spread) == ((1.0, 2.0, 3.0), 3, 2.0, 1.0)
    assert Samples((4.0,)).spread is None
    for bad in [(), (NAN,), (1.0, INF)]:
        with pytest.raises(ValueError):
            Samples(bad)


# Noise rule, best spread 0.01, 3+3 seeds: threshold 0.0163, promising beyond half of it: 0.00816.
HALF = PROMISING_FRACTION * 2 * 0.01 * math.sqrt(2 / 3)


@pytest.mark.parametrize("direction", ["minimize", "maximize"])
@pytest.mark.parametrize("rule, best, first, expected", [
    (NOISE, BEST, 1.0 - HALF - 1e-4, True),
    (NOISE, BEST, 1.0 - HALF + 1e-4, False),
    (NOISE, BEST, 1.0, False),
    (NOISE, BEST, 1.1, False),
    (NOISE, BEST, NAN, False),
    (NOISE, None, 1.0, True),  # the baseline: its spread is measured
    (GREEDY, BEST, 0.5, False),  # greedy never runs more seeds
    (GREEDY, None, 0.5, False),
    (VerdictRule("noise", 2.0, 1, 0.0), BEST, 0.5, False),  # seeds: 1 has no extra seeds to give
])
def test_promising(direction, rule, best, first, expected):
    best, (first,) = mirrored(direction, [first]) if best is not None else (None, [first])
    assert promising(direction, rule, best, first) is expected


def test_not_promising_could_not_have_been_kept():
    """Below the promising line the one run is discarded anyway: no candidate is lost by not rerunning it."""
    for i in range(200):
        first = 1.0 - 0.05 * i / 200
        if not promising("minimize", NOISE, BEST, first):
            assert judge("minimize", NOISE, BEST, "ok", [first]).status == "discard"


def test_harness_seeds():
    seeds = harness_seeds(1337, 5, "r0007")
    assert seeds == harness_seeds(1337, 5, "r0007")  # deterministic: a replay gets the same seeds
    assert len(set(seeds)) == 5 and all(0 <= s < 2**31 for s in seeds)
    assert harness_seeds(1337, 3, "r0007") == seeds[:3]  # more seeds extend, never reshuffle
    assert not set(seeds) & set(harness_seeds(1337, 5, "r0008"))  # each experiment its own
    assert not set(seeds) & set(harness_seeds(1338, 5, "r0007"))  # and each base seed
    assert harness_seeds(1337, 0, "r0007") == []


@pytest.mark.parametrize("direction", ["minimize", "maximize"])
@pytest.mark.parametrize("rule", [NOISE, GREEDY])
def test_exact_ties_discard(direction, rule):
    """Zero spread and no floor make the margin zero: a tie must still not count as progress."""
    v = judge(direction, rule, Samples((2.5, 2.5, 2.5)), "ok", [2.5, 2.5, 2.5][: 3 if rule is NOISE else 1])
    assert (v.status, v.delta, v.threshold) == ("discard", 0.0, 0.0)
    assert "ties 2.5000" in v.reason


# ------------------------------------------------------------------ train.py ignoring the seed

def test_a_candidate_that_ignores_the_seed_counts_as_one_run():
    """Three seeds that exported the same weights are one draw: they may not shrink the spread or the margin."""
    best = Samples((1.0, 1.1, 0.9))  # spread 0.1
    v = judge("minimize", NOISE, best, "ok", [0.85, 0.85, 0.85], models=["a" * 64] * 3)
    honest = judge("minimize", NOISE, best, "ok", [0.85])  # the same evidence: one run
    assert (v.status, v.spread, v.threshold) == ("discard", honest.spread, honest.threshold)
    assert v.threshold == pytest.approx(2.0 * 0.1 * math.sqrt(1 / 3 + 1))
    assert "ignores the seed" in v.reason
    assert "ignores the seed" not in judge("minimize", NOISE, best, "ok", [0.85, 0.86, 0.84]).reason


def test_identical_values_from_different_weights_are_honest_ties_not_an_ignored_seed():
    """A discrete metric on a small split (accuracy on 24 rows) ties across seeds: the weights tell."""
    values, models = [0.9583, 0.9583, 0.9583], ["a" * 64, "b" * 64, "c" * 64]
    assert draws(values, models) == 3 and draws(values) == 3 and draws(values, ["a" * 64] * 3) == 1
    assert draws(values, ["a" * 64, None, "a" * 64]) == 3  # one weight unknown: no claim
    v = judge("maximize", NOISE, None, "ok", values, models=models)
    assert v.status == "keep" and "ignores the seed" not in v.reason
    assert Samples(tuple(values), tuple(models)).draws == 3


def test_when_neither_side_measures_a_spread_the_earlier_experiments_do():
    best = Samples((1.0, 1.0, 1.0), ("a" * 64,) * 3)  # a kept version that ignored the seed
    assert (best.draws, best.spread) == (1, None)
    ignoring = ["b" * 64] * 3
    assert judge("minimize", NOISE, best, "ok", [0.9, 0.9, 0.9], models=ignoring).status == "keep"  # no noise known
    v = judge("minimize", NOISE, best, "ok", [0.9, 0.9, 0.9], fallback_spread=0.1, models=ignoring)
    assert (v.status, v.spread) == ("discard", 0.1)
    assert v.threshold == pytest.approx(2.0 * 0.1 * math.sqrt(2))
    assert judge("minimize", NOISE, best, "ok", [0.5, 0.5, 0.5], fallback_spread=0.1, models=ignoring).status == "keep"
    measured = judge("minimize", NOISE, Samples((1.0, 1.2, 0.8)), "ok", [0.9], fallback_spread=5.0)
    assert measured.spread == pytest.approx(0.2)  # a spread measured here wins over the fallback


def test_a_baseline_that_ignores_the_seed_says_so():
    v = judge("minimize", NOISE, None, "ok", [2.0, 2.0, 2.0], models=["a" * 64] * 3)
    assert v.status == "keep" and v.spread is None and "ignores the seed" in v.reason


@pytest.mark.parametrize("a, b, tolerance, alike", [
    (100.0, 90.0, 0.15, True), (100.0, 80.0, 0.15, False), (20.0, 60.0, 0.5, False), (None, 10.0, 0.0, True),
    (0.0, 0.0, 0.0, True),
])
def test_runs_compare_only_with_alike_compute(a, b, tolerance, alike):
    assert comparable(a, b, tolerance) is alike and comparable(b, a, tolerance) is alike


# A metric that follows compute: 3.0 - 0.05 per CPU-second, with a little seed noise.
LOADED = [(10.0, 2.51), (10.2, 2.48), (9.9, 2.505)]  # the best's stored runs, on a busy machine
FRESH = [(17.5, 2.126), (17.4, 2.128), (17.6, 2.122)]  # its reruns beside the candidate


def test_the_slope_is_pooled_within_versions():
    """Each version keeps its own mean: a candidate better at every compute does not tilt the slope."""
    better = [(c, v - 0.4) for c, v in FRESH]
    slope, se = compute_slope([LOADED + FRESH, better])
    assert slope == pytest.approx(-0.05, abs=0.003) and se < 0.003
    assert compute_slope([[(20.0, 2.0), (20.0, 2.01)], [(20.0, 1.9)]]) is None  # no compute range: no slope
    assert compute_slope([[(10.0, 2.5), (20.0, 2.0)]]) is None  # two runs, one version: nothing left to tell noise


@pytest.mark.parametrize(("gaps", "moved"), [
    ((2.5, 2.6, 2.4), True),  # the candidate's runs got more compute: its values move to its partners'
    ((-2.5, -2.6, -2.4), False),  # less: moving would flatter it, so they stay as measured
])
def test_values_move_to_the_partners_compute_only_against_the_candidate(gaps, moved):
    values = [2.0, 2.01, 1.99]
    at = at_partners_compute("minimize", [LOADED + FRESH, []], values, gaps)
    if moved:
        expected = [v + 0.05 * g for v, g in zip(values, gaps, strict=True)]
        assert at is not None and at[0] == pytest.approx(expected, abs=0.01)
    else:
        assert at is None
    up = at_partners_compute("maximize", [[(c, -v) for c, v in LOADED + FRESH], []], [-v for v in values], gaps)
    assert (up is not None) == moved  # maximize: the same, mirrored


def test_no_slope_beyond_the_noise_moves_nothing():
    quiet = [(20.0, 2.0), (20.3, 2.02), (19.8, 1.99), (20.1, 1.98), (19.9, 2.01)]  # compute explains nothing
    assert at_partners_compute("minimize", [quiet, []], [1.9, 1.9], [0.3, 0.2]) is None


@pytest.mark.parametrize(("t", "dof", "tail"), [
    (1.0, 1, 0.25),  # Cauchy: 1/2 - atan(t)/pi
    (2.0, 2, 0.5 - 1 / (2 * math.sqrt(1.5))),  # 1/2 - t / (2 sqrt(2 + t^2))
    (2.2, 4, 0.046326),  # the rule's default: k = 2.2 over two groups of 3 seeds
    (2.0, 3, 0.069663), (2.0, 5, 0.050970),
])
def test_t_tail_is_students(t, dof, tail):
    assert t_tail(t, dof) == pytest.approx(tail, abs=2e-5)
    assert t_tail(2.0, 1000) == pytest.approx(0.5 * math.erfc(2.0 / math.sqrt(2)), abs=2e-4)  # the normal's


def test_paired_k_keeps_the_rules_tail_on_fewer_degrees_of_freedom():
    assert paired_k(2.2, 3) == pytest.approx(3.052, abs=0.002)  # 3 pairs: 2 dof, the tail of 2.2 on 4
    assert t_tail(paired_k(2.2, 5), 4) == pytest.approx(t_tail(2.2, 8), rel=1e-6)
    assert paired_k(2.2, 2) > paired_k(2.2, 3) > paired_k(2.2, 6) > 2.2


# Pairs on a machine whose load switched between rounds: quiet, busy, quiet (the best's runs 1.80, 2.00, 1.80).
PARTNERS = [1.80, 2.00, 1.802]


@pytest.mark.parametrize("direction", ["minimize", "maximize"])
@pytest.mark.parametrize(("values", "status"), [
    ([1.70, 1.90, 1.705], "keep"),  # 0.1 better beside each partner: the load cancels out
    ([1.804, 1.997, 1.804], "discard"),  # the same code: differences within the noise
    ([1.60, 2.00, 1.80], "discard"),  # one pair better by 0.2, the others not: no credible gain
])
def test_pairs_across_loads_are_judged_on_their_differences(direction, values, status):
    mirror = 1 if direction == "minimize" else -1
    v = judge_pairs(direction, NOISE, [mirror * b for b in PARTNERS], [mirror * c for c in values])
    assert v.status == status, v.reason
    assert "judged on the 3 differences between partners; k=2.67 x standard error for 2 degrees" in v.reason
    groups = judge(direction, NOISE, Samples(tuple(mirror * b for b in PARTNERS)), "ok", [mirror * c for c in values])
    assert groups.status == "discard"  # as two groups, the load's 0.2 swamps the 0.1 gain


def test_pairs_differences_are_floored_at_min_spread():
    floor = VerdictRule("noise", k=2.0, seeds=3, min_spread=0.1)
    v = judge_pairs("minimize", floor, PARTNERS, [1.70, 1.90, 1.70])
    assert v.status == "discard" and v.spread == 0.1 and "the min_spread floor" in v.reason


def test_one_alike_run_screens_with_the_spread_of_all_the_best_runs():
    """Of the best's stored runs only one got the candidate's compute: its spread is unknown, and 0 would make
    any first run that beats it promising; the spread all its runs measured is the yardstick instead."""
    one = Samples((1.0,))
    assert promising("minimize", NOISE, one, 0.999)  # spread unknown: beating it at all is promising
    assert not promising("minimize", NOISE, one, 0.999, fallback_spread=0.01)
    assert promising("minimize", NOISE, one, 0.98, fallback_spread=0.01)
