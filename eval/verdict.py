"""The verdict engine: keep, discard, crash or timeout, decided from measured values alone.

Why: Karpathy's loop keeps any lower number from a single run, and once kept a change of
the random seed: noise taken for progress. Here a candidate must beat the current best by
more than the seed-to-seed spread the harness measured. Pure code (no I/O, stdlib only):
the PostToolUse hook calls it, the tests and benchmarks/bench_verdict.py check it.

The rule, exactly. s = -1 to minimize, +1 to maximize; best = the current best's values
(one per seed); values = the candidate's values (one per seed, the harness's seeds).
  outcome crash | nan | oom          -> crash      (the outcome is named in the reason)
  outcome timeout | overtime         -> timeout    (overtime: it trained past the stop signal at the budget)
  outcome ok, no value or NaN/inf    -> crash
  no best yet (the baseline)         -> keep
  delta = s * (mean(values) - mean(best))                        positive = better
  greedy: keep iff delta > 0.                                    threshold 0, ties discard
  noise:  spread = pooled sample standard deviation of best and values, counting only groups
                   of two or more, so one candidate run is judged by the best's spread:
                   sqrt(sum (n_i - 1) var_i / sum (n_i - 1)), then max(spread, min_spread);
                   unknown (no group of two) -> the spread measured over earlier experiments
                   (fallback_spread), else min_spread
          threshold = k * spread * sqrt(1/n_best + 1/n_values)   k standard errors of the
                   difference of the two means
          seeds ignored: a group whose different seeds exported identical weights (model_sha256:
                   train.py ignores the seed it is given) is one draw, not n: n_i = 1, and it
                   measures no spread. Identical values alone are not that: a discrete metric on a
                   small split (accuracy on 24 rows) ties honestly.
          keep iff delta > threshold.                            ties discard
Pooled (Student) rather than Welch: with three seeds a side, each side's own variance is
too noisy to stand alone, and the seed noise of two nearby train.py versions is alike.

Extra seeds go only to promising candidates. Paired, the first run is screened only against the
best's stored runs of alike compute (Samples.alike); when none got alike compute, it is promising:
a screen across two load levels would measure the machine too. A first run is promising (noise rule, seeds > 1)
iff its delta exceeds PROMISING_FRACTION of the threshold it would face after all `seeds`
runs against the best's spread. Simulated with normal noise (k=2, 3 seeds a side): at 1/2,
an A/A candidate costs 1.55 runs instead of 2.0 at "beats the mean at all", the false-keep
rate drops from 5.8% to 5.6%, and the power at a true gain of 2.7 spreads (90% power)
drops by one point; at 3/4 the power drops by four. Below the fraction the candidate could
not have been kept on that one run anyway: its threshold with one run is larger still.

Paired (verdict.paired, the default): a promising candidate is not judged against the best's runs
of hours ago, whose compute the machine may have changed since, but against fresh runs of the best
made beside its own: pairs (candidate, best) with one seed each, in alternating order, so a drift
in the machine falls on both sides alike. A run is matched with a run of the other side that got
alike compute (CPU-seconds within compute_tolerance: comparable); a run left unmatched measured the
machine, not the change, and is never counted, and more rounds run instead. The rule above then
judges the matched runs' two groups as it judges any two: each side holds the same runs per load
level, so the means compare; a spread across two levels is larger than the seed noise, which costs
power, never false keeps (benchmarks/bench_drift.py: pooling within levels of compute instead gave
more false keeps than the target on real runs, whose noise differs between levels).

Compute within the tolerance still buys value when the metric follows compute (a fixed time budget on a
small model: 10% fewer steps, a visibly worse loss). So a paired candidate whose runs got more CPU-seconds
than their partners is also judged at its partners' compute: where the best's own runs (stored and fresh)
show a slope of the metric on CPU-seconds (pooled within versions, least squares, SLOPE_T standard errors
from zero), each candidate value is moved by slope x (its CPU-seconds - its partner's), and the verdict
takes the moved values when they lower its advantage, never when they raise it: a slope from a wider range
of compute than the pairs span may overstate the local one, which costs power, never false keeps.

Pairs that span unlike compute (their runs' CPU-seconds not all within compute_tolerance of each other: the
machine changed between rounds) are judged on their differences instead, each candidate run minus its
partner: a level of load moves both runs of a pair alike and cancels out, where the two groups' spread would
count it as noise (benchmarks/bench_drift.py, real runs: power on a real gain under random drift 25% -> 94%). n pairs
give n - 1 degrees of freedom, not 2(n - 1), so the k of the rule is moved to the same one-sided tail on
Student's t (paired_k: k = 2.2 over 3 pairs -> 3.05), and the false-keep rate stays the rule's.

Seeds come from harness_seeds(task.seed, n, experiment id): the agent cannot choose them,
and no fixed seed exists that a change could be tuned to (shifting the random stream is
a change of seed in disguise).
"""

from __future__ import annotations

import hashlib
import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass

from eval.config import VerdictRule

SIGN = {"minimize": -1.0, "maximize": 1.0}
RULES = ("noise", "greedy")
FAILED = {  # outcome -> (status, what happened)
    "crash": ("crash", "the run failed"),
    "nan": ("crash", "the metric is NaN or inf"),
    "oom": ("crash", "out of memory"),
    "timeout": ("timeout", "killed at the time limit"),
    "overtime": ("timeout", "trained past the budget's stop signal"),  # eval/clock.py: never kept, like a timeout
}
PROMISING_FRACTION = 0.5
SLOPE_T = 3.0  # a slope of the metric on compute this many standard errors from zero is real


@dataclass(frozen=True)
class Samples:
    """The measured values of one train.py version, one per seed, and its exported weights' digests."""

    values: tuple[float, ...]
    models: tuple[str | None, ...] = ()  # model_sha256 of each run; () or a None: not known
    cpu_seconds: tuple[float | None, ...] = ()  # the compute each run got; (): not known

    def __post_init__(self) -> None:
        values = tuple(float(v) for v in self.values)
        if not values or not all(math.isfinite(v) for v in values):
            raise ValueError(f"Samples needs one or more finite values, got {self.values!r}")
        object.__setattr__(self, "values", values)
        object.__setattr__(self, "models", tuple(self.models))
        object.__setattr__(self, "cpu_seconds", tuple(self.cpu_seconds))

    def alike(self, cpu_seconds: float | None, tolerance: float) -> Samples | None:
        """The runs that got compute alike to cpu_seconds (all of them when either is unknown); None: none did."""
        if len(self.cpu_seconds) != self.n:
            return self
        keep = [i for i, c in enumerate(self.cpu_seconds) if comparable(c, cpu_seconds, tolerance)]
        if not keep:
            return None
        models = tuple(self.models[i] for i in keep) if len(self.models) == self.n else ()
        return Samples(tuple(self.values[i] for i in keep), models, tuple(self.cpu_seconds[i] for i in keep))

    @property
    def n(self) -> int:
        return len(self.values)

    @property
    def mean(self) -> float:
        return statistics.fmean(self.values)

    @property
    def draws(self) -> int:
        return draws(self.values, self.models)

    @property
    def spread(self) -> float | None:
        """Sample standard deviation; None with one draw (unknown, not zero)."""
        return statistics.stdev(self.values) if self.draws > 1 else None


@dataclass(frozen=True)
class Verdict:
    status: str  # keep | discard | crash | timeout
    reason: str  # one line, with the numbers
    mean: float | None = None  # the candidate's mean
    delta: float | None = None  # improvement over the best's mean, positive = better
    spread: float | None = None  # the standard deviation the threshold was built from
    threshold: float | None = None  # the margin delta had to exceed


def harness_seeds(base_seed: int, n: int, salt: str) -> list[int]:
    """n distinct seeds in [0, 2**31): sha256 of (base_seed, salt, i), for i = 0, 1, ...

    The harness passes task.seed and the experiment id it allocated, so every experiment,
    the baseline included, gets fresh seeds that neither the agent nor a rerun can pick.
    """
    seeds: list[int] = []
    i = 0
    while len(seeds) < n:
        seed = int.from_bytes(hashlib.sha256(f"{base_seed}/{salt}/{i}".encode()).digest()[:4], "big") >> 1
        if seed not in seeds:
            seeds.append(seed)
        i += 1
    return seeds


def draws(values: Sequence[float], models: Sequence[str | None] = ()) -> int:
    """Independent draws among one version's seed runs: identical exported weights from different
    seeds mean train.py ignored the seed, and its runs are one draw repeated."""
    known = len(models) == len(values) > 1 and all(models)
    return 1 if known and len(set(models)) == 1 else len(values)


def comparable(cpu_a: float | None, cpu_b: float | None, tolerance: float) -> bool:
    """Whether two runs got alike compute: CPU-seconds within tolerance of the larger. Unknown compute
    (a replayed recording) is taken as alike: only the sandbox measures it, and it always does."""
    if cpu_a is None or cpu_b is None:
        return True
    return abs(cpu_a - cpu_b) <= tolerance * max(cpu_a, cpu_b, 1e-9)


def pooled_spread(groups: Sequence[Sequence[float] | Samples]) -> float | None:
    """Pooled sample standard deviation over the groups of two or more draws; None if there is none."""
    groups = [g.values if isinstance(g, Samples) else tuple(g) for g in groups
              if (g.draws if isinstance(g, Samples) else draws(g)) > 1]
    dof = sum(len(g) - 1 for g in groups)
    return math.sqrt(sum((len(g) - 1) * statistics.variance(g) for g in groups) / dof) if dof else None


def noise_margin(rule: VerdictRule, spread: float | None, n_best: int, n_values: int) -> tuple[float, float]:
    """(spread after the min_spread floor, threshold = k standard errors of the difference of means)."""
    spread = max(spread or 0.0, rule.min_spread)
    return spread, rule.k * spread * math.sqrt(1 / n_best + 1 / n_values)


def margin(rule: VerdictRule, best: Samples, values: Sequence[float] | Samples,
           fallback_spread: float | None = None) -> tuple[float | None, float]:
    """(spread, threshold) under the configured rule; greedy still reports the spread it ignores."""
    cand = values if isinstance(values, Samples) else Samples(tuple(values))
    spread = pooled_spread([best, cand])
    spread = fallback_spread if spread is None else spread
    return (spread, 0.0) if rule.rule == "greedy" else noise_margin(rule, spread, best.draws, cand.draws)


def sign(direction: str, rule: VerdictRule) -> float:
    """+1 or -1, the good direction; a ValueError for a direction or rule not known here (the hook fails closed)."""
    if direction not in SIGN or rule.rule not in RULES:
        raise ValueError(f"unknown direction {direction!r} or rule {rule.rule!r}: expected {tuple(SIGN)}, {RULES}")
    return SIGN[direction]


def promising(direction: str, rule: VerdictRule, best: Samples | None, first: float,
              fallback_spread: float | None = None) -> bool:
    """Whether a candidate's first value earns rule.seeds - 1 more runs (see the module docstring).
    fallback_spread: the seed spread to screen with when best's runs measure none (one run of alike compute)."""
    s = sign(direction, rule)
    if rule.rule != "noise" or rule.seeds < 2 or not math.isfinite(first):
        return False
    if best is None:
        return True  # the baseline: its spread is the yardstick for every candidate after it
    spread = best.spread if best.spread is not None else fallback_spread
    _, threshold = noise_margin(rule, spread, best.draws, rule.seeds)
    return s * (first - best.mean) > PROMISING_FRACTION * threshold


def num(x: float) -> str:
    return f"{x:.4f}" if x == 0 or abs(x) >= 1e-3 else f"{x:.2e}"


def judge(direction: str, rule: VerdictRule, best: Samples | None, outcome: str, values: Sequence[float],
          fallback_spread: float | None = None, models: Sequence[str | None] = ()) -> Verdict:
    """The verdict on a candidate with this outcome and these values (one per seed) against the best.

    fallback_spread: the spread measured over earlier experiments, for when neither side measures one.
    models: the candidate's model_sha256 per value (seed-ignoring is found from them).
    """
    s = sign(direction, rule)
    if outcome in FAILED:
        status, what = FAILED[outcome]
        return Verdict(status, f"{status}: {what} (outcome {outcome})")
    if outcome != "ok":
        raise ValueError(f"unknown outcome {outcome!r}: expected ok, {', '.join(FAILED)}")
    if not values or not all(math.isfinite(v) for v in values):
        return Verdict("crash", f"crash: the metric is not finite ({list(values)}) though the run ended ok")
    mean = statistics.fmean(values)
    n = len(values)
    cand = Samples(tuple(values), tuple(models) if len(models) == n else ())
    ignored = " (its seeds exported identical weights: train.py ignores the seed, so they count as one run)"
    ignored = ignored if cand.draws < n else ""
    if best is None:
        spread = pooled_spread([cand])
        measured = f"spread {num(spread)} over {n} seeds" if spread is not None else f"{n} seed(s), spread unknown"
        return Verdict("keep", f"kept as the baseline: {num(mean)} ({measured}){ignored}", mean, None, spread, None)
    delta = s * (mean - best.mean) + 0.0  # + 0.0: a tie is 0.0, not -0.0
    spread, threshold = margin(rule, best, cand, fallback_spread)
    keep = delta > threshold
    relation = (f"beats {num(best.mean)} by {num(delta)}" if delta > 0 else
                f"trails {num(best.mean)} by {num(-delta)}" if delta < 0 else f"ties {num(best.mean)}")
    seeds = f"{best.n}+{n} seeds"
    spread_text = f"spread {num(spread)} over {seeds}" if spread is not None else f"spread unknown over {seeds}"
    if rule.rule == "greedy":
        why = f" (greedy: any improvement counts; {spread_text})"
    else:
        required = f"the required {num(threshold)}"
        floored = ", the min_spread floor" if rule.min_spread > 0 and spread == rule.min_spread else ""
        why = ((f", beyond {required}" if keep else f", not beyond {required}") if delta > 0 else
               f"; {required} improvement was not reached")
        why += f" (k={rule.k:g} x standard error, {spread_text}{floored})"
    status, word = ("keep", "kept") if keep else ("discard", "discarded")
    return Verdict(status, f"{word}: {num(mean)} {relation}{why}{ignored}", mean, delta, spread, threshold)


def t_tail(t: float, dof: int) -> float:
    """P(T > t) for Student's t with an integer dof, in closed form (Abramowitz & Stegun 26.7.3-4)."""
    theta = math.atan(t / math.sqrt(dof))
    c2 = math.cos(theta) ** 2
    if dof % 2:
        term, total = math.cos(theta), 0.0
        for j in range((dof - 1) // 2):
            total += term
            term *= (2 * j + 2) / (2 * j + 3) * c2
        inside = 2 / math.pi * (theta + math.sin(theta) * total)
    else:
        term, total = 1.0, 1.0
        for j in range(dof // 2 - 1):
            term *= (2 * j + 1) / (2 * j + 2) * c2
            total += term
        inside = math.sin(theta) * total
    return (1 - inside) / 2


def t_quantile(tail: float, dof: int) -> float:
    """The t with P(T > t) = tail (0 < tail < 1/2), by bisection on t_tail."""
    lo, hi = 0.0, 1.0
    while t_tail(hi, dof) > tail:
        lo, hi = hi, hi * 2
    for _ in range(100):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if t_tail(mid, dof) > tail else (lo, mid)
    return (lo + hi) / 2


def paired_k(k: float, n: int) -> float:
    """The k for n paired differences (n - 1 degrees of freedom) with the one-sided tail that k has for two
    groups of n (2(n - 1)): the same false-keep rate from fewer degrees of freedom."""
    return t_quantile(t_tail(k, 2 * (n - 1)), n - 1)


def judge_pairs(direction: str, rule: VerdictRule, best_values: Sequence[float], values: Sequence[float]) -> Verdict:
    """The verdict on n >= 2 pairs from their differences (candidate minus partner, in the good direction):
    keep iff mean(d) > paired_k x spread x sqrt(2 / n), spread = sd(d) / sqrt(2): one run's seed noise, as
    judge reports it, floored at min_spread."""
    s = sign(direction, rule)
    n = len(values)
    if n < 2 or len(best_values) != n:
        raise ValueError(f"judge_pairs needs two or more pairs, got {n} and {len(best_values)} values")
    d = [s * (c - b) for c, b in zip(values, best_values, strict=True)]
    delta, mean, k = statistics.fmean(d) + 0.0, statistics.fmean(values), paired_k(rule.k, n)
    spread = max(statistics.stdev(d) / math.sqrt(2), rule.min_spread)
    threshold = k * spread * math.sqrt(2 / n)
    keep = delta > threshold
    best = statistics.fmean(best_values)
    relation = (f"beats {num(best)} by {num(delta)}" if delta > 0 else
                f"trails {num(best)} by {num(-delta)}" if delta < 0 else f"ties {num(best)}")
    required = f"the required {num(threshold)}"
    why = ((f", beyond {required}" if keep else f", not beyond {required}") if delta > 0 else
           f"; {required} improvement was not reached")
    floored = ", the min_spread floor" if rule.min_spread > 0 and spread == rule.min_spread else ""
    why += (f" (paired: the machine's load changed between rounds, so judged on the {n} differences between "
            f"partners; k={k:.2f} x standard error for {n - 1} degrees of freedom, spread {num(spread)}{floored})")
    status, word = ("keep", "kept") if keep else ("discard", "discarded")
    return Verdict(status, f"{word}: {num(mean)} {relation}{why}", mean, delta, spread, threshold)


def compute_slope(versions: Sequence[Sequence[tuple[float, float]]]) -> tuple[float, float] | None:
    """How the metric moves per CPU-second: the least-squares slope pooled within versions (each its own mean,
    one slope) over their (cpu_seconds, value) runs, and its standard error; None without the runs or the
    spread of compute to tell."""
    groups = [g for g in versions if len(g) > 1]
    centred = [[(c - statistics.fmean(x for x, _ in g), v - statistics.fmean(y for _, y in g)) for c, v in g]
               for g in groups]
    points = [p for g in centred for p in g]
    dof = len(points) - len(groups) - 1
    sxx = sum(c * c for c, _ in points)
    if dof < 1 or sxx <= 0:
        return None
    slope = sum(c * v for c, v in points) / sxx
    sse = sum((v - slope * c) ** 2 for c, v in points)
    return slope, math.sqrt(sse / dof / sxx)


def at_partners_compute(direction: str, versions: Sequence[Sequence[tuple[float, float]]],
                        values: Sequence[float], gaps: Sequence[float]) -> tuple[list[float], float] | None:
    """The candidate's values moved to the compute their partners got (gaps: its CPU-seconds minus each
    partner's), when the runs show the metric follows compute (compute_slope, SLOPE_T standard errors from
    zero) and moving them lowers its advantage; (the moved values, the slope), else None."""
    fit = compute_slope(versions)
    if fit is None or abs(fit[0]) < SLOPE_T * fit[1]:
        return None
    moved = [v - fit[0] * g for v, g in zip(values, gaps, strict=True)]
    worse = SIGN[direction] * (statistics.fmean(moved) - statistics.fmean(values)) < 0
    return (moved, fit[0]) if worse else None
