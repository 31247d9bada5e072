"""Many comparisons at once: the family-wise false keeps of N candidates judged in parallel, and the power kept.

N workers on N device slots each judge a candidate against the same best at the same time. Each verdict
keeps a candidate that is no better with a small chance (a few percent at k=2.2), but the family has N
such chances: 16 at 3.3% each is about 42% that one slips through and becomes everyone's best. The guard
(verdict.confirm, eval/experiment.py confirms): a keep is run again beside fresh runs of the global best,
in interleaved pairs with fresh seeds, and promoted only if that verdict keeps it too.

Simulated through the engine's own flow: experiment.candidate_runs and experiment.judgement (as
benchmarks/bench_drift.py), then, with the guard, experiment.pair_rounds and experiment.judgement on the
fresh pairs and experiment.promoted. Each run's value is drawn from a normal pool (spread 1, the best's
mean 0; a real candidate's mean `gain` spreads better), all runs of alike compute, as on slots of their own.
A family: the best's stored seeds, then N candidates judged against them (one shared best, as in parallel).
Today's engine (confirm: never) is the baseline, measured in the same run. Usage:

    .venv/bin/python benchmarks/bench_parallel.py [--families 4000] [--gain 2.7]
"""

from __future__ import annotations

import argparse
import dataclasses
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from eval import config, experiment, verdict  # noqa: E402

TASK = config.Task("m", "minimize", "e:f", "train.py", 1.0, 1.0, 0)
RULE = config.VerdictRule(**config.VERDICT_DEFAULTS)  # the shipped rule: k=2.2, 3 seeds, paired auto
TARGETS = {"false keeps": 0.05}  # family-wise, at N = 8


@dataclasses.dataclass(frozen=True)
class Family:
    """What one family of candidates came to."""

    kept: int  # candidates promoted
    runs: int  # trials spent, confirmations included


def draw(rng: random.Random, mean: float) -> dict:
    return {"outcome": "ok", "value": rng.gauss(mean, 1.0), "cpu_seconds": 100.0}


def family(rng: random.Random, rule: config.VerdictRule, n: int, gain: float) -> Family:
    """N candidates, each `gain` spreads better than the best (0: A/A), judged against one best."""
    stored = [draw(rng, 0.0)["value"] for _ in range(rule.seeds)]
    best = verdict.Samples(tuple(stored), (), (100.0,) * rule.seeds)
    seeds = list(range(rule.seeds + int(experiment.MORE_PAIRS * rule.seeds)))
    kept = runs = 0

    def trial(arm: str, k: int, seed: int) -> dict:
        return {"id": f"{arm}{k}", "seed": seed, **draw(rng, 0.0 if arm == "b" else -gain)}

    for _ in range(n):
        ran = experiment.candidate_runs(rule, TASK.direction, best, seeds, trial)
        v, _, _ = experiment.judgement(TASK, rule, best, ran["s"], ran["b"], None)
        runs += len(ran["s"]) + len(ran["b"])
        if v.status == "keep" and experiment.confirms(rule, n):
            fresh = experiment.pair_rounds(rule, [], seeds, trial)
            check, _, _ = experiment.judgement(TASK, rule, None, fresh["s"], fresh["b"], None)
            v = experiment.promoted(v, check, "the best")
            runs += len(fresh["s"]) + len(fresh["b"])
        kept += v.status == "keep"
    return Family(kept, runs)


def rates(rule: config.VerdictRule, n: int, families: int, gain: float, seed: int = 0) -> tuple[float, float, float]:
    """(families with a keep, keeps per candidate, runs per candidate), from a fixed random seed."""
    rng = random.Random(seed)
    found = [family(rng, rule, n, gain) for _ in range(families)]
    return (sum(f.kept > 0 for f in found) / families, sum(f.kept for f in found) / (families * n),
            sum(f.runs for f in found) / (families * n))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--families", type=int, default=4000, help="families per cell")
    ap.add_argument("--gains", type=float, nargs="+", default=[2.7, 4.0], help="real candidates' gains, in spreads")
    args = ap.parse_args()
    modes = {"today (confirm: never)": dataclasses.replace(RULE, confirm="never"),
             "confirmed (confirm: always)": dataclasses.replace(RULE, confirm="always")}
    t0 = time.monotonic()
    print(f"rule k={RULE.k:g}, seeds={RULE.seeds}, paired={RULE.paired}; normal noise, spread 1; "
          f"{args.families} families per cell")
    print(f"  {'':<30}{'N':>4}{'family-wise false keeps':>25}{'runs/A-A':>10}"
          + "".join(f"{f'power at {g:g}':>15}{'runs':>6}" for g in args.gains))
    ok = True
    for n in (1, 8, 16):
        for name, rule in modes.items():
            fw, _, runs = rates(rule, n, args.families, 0.0)
            powers = [rates(rule, n, max(args.families // n, 200), g, seed=1)[1:] for g in args.gains]
            print(f"  {name:<30}{n:>4}{fw:>25.1%}{runs:>10.2f}" + "".join(f"{p:>15.1%}{r:>6.2f}" for p, r in powers))
            if n == 8 and rule.confirm == "always":
                ok = fw <= TARGETS["false keeps"]
    print(f"{time.monotonic() - t0:.0f}s; " + ("confirmed keeps meet <= 5% family-wise at N = 8" if ok else
                                               "confirmed keeps MISS 5% family-wise at N = 8"))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
