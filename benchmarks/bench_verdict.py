"""The verdict rule against real noise: an A/A test (false keeps) and a planted fix (power).

Real runs, in the sandbox, on this machine: the shipped train.py N times and a copy with a
planted bug (a 10x too small learning rate) N times, each with harness seeds. Then, by
resampling those values as the harness would use them (a best of `seeds` runs, a candidate
of one run plus `seeds - 1` more when promising), the rate at which greedy and the noise
rule keep a candidate that is the same train.py (A/A: every keep is noise taken for progress)
and keep the fix (power: the shipped train.py against the planted bug). The rule's k, seeds
and min_spread come from program.md. Usage (from the repo root):

    .venv/bin/python benchmarks/bench_verdict.py [--n 12] [--budget 4] [--bad-lr 2e-4] [--resamples 20000]
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from eval import config  # noqa: E402
from eval.trial import run_trial  # noqa: E402
from eval.verdict import Samples, harness_seeds, judge, promising  # noqa: E402

SHIPPED_LR = "LEARNING_RATE = 2e-3"
TARGETS = {"false keeps": 0.05, "power": 0.90}  # the noise rule's: at most, at least


def measure(name: str, train_py: str, n: int, budget: float, seed: int) -> list[float]:
    """n real runs of this train.py in a scratch copy of the repo, with harness seeds."""
    with tempfile.TemporaryDirectory() as tmp:
        scratch = Path(tmp)
        shutil.copy(REPO / "program.md", scratch / "program.md")
        (scratch / "train.py").write_text(train_py)
        (scratch / "data").symlink_to(REPO / "data")
        values = []
        for i, s in enumerate(harness_seeds(seed, n, f"bench_verdict/{name}"), start=1):
            m = run_trial(scratch, hypothesis=name, budget=budget, seed=s, echo=lambda _: None)
            if m["outcome"] != "ok":
                sys.exit(f"{name}: run {i} (seed {s}) ended {m['outcome']}: {m['reason']}\n{m['log_tail']}")
            values.append(m["value"])
            print(f"  {name} {i}/{n}: seed {s:>10}  {m['metric']} {m['value']:.4f}  ({m['total_seconds']:.0f}s)",
                  file=sys.stderr, flush=True)
        return values


def trial(rng: random.Random, direction: str, rule: config.VerdictRule, best_pool: list[float],
          cand_pool: list[float] | None) -> tuple[bool, int]:
    """One candidate judged as the harness would: (kept, runs spent). No cand_pool: A/A, disjoint runs."""
    k = rule.seeds
    drawn = rng.sample(best_pool, 2 * k) if cand_pool is None else rng.sample(best_pool, k) + rng.sample(cand_pool, k)
    best, cand = Samples(tuple(drawn[:k])), drawn[k:]
    more = promising(direction, rule, best, cand[0])
    values = cand if more else cand[:1]
    return judge(direction, rule, best, "ok", values).status == "keep", len(values)


def rates(resamples: int, direction: str, rule: config.VerdictRule, best_pool: list[float],
          cand_pool: list[float] | None) -> tuple[float, float]:
    """(keep rate, mean runs per candidate) over resamples, from a fixed random seed."""
    rng = random.Random(0)
    results = [trial(rng, direction, rule, best_pool, cand_pool) for _ in range(resamples)]
    return sum(kept for kept, _ in results) / resamples, sum(runs for _, runs in results) / resamples


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=12, help="real runs per arm")
    ap.add_argument("--budget", type=float, default=4.0, help="training seconds per run")
    ap.add_argument("--bad-lr", default="2e-4", help="the planted bug: the learning rate of the worse arm")
    ap.add_argument("--resamples", type=int, default=20000)
    args = ap.parse_args()
    if not (REPO / "data" / "manifest.json").exists():
        subprocess.run([str(REPO / "run.sh"), "prepare"], check=True)
    program = config.load(REPO / "program.md")
    task, noise = program.task, dataclasses.replace(program.verdict, rule="noise")
    greedy = dataclasses.replace(noise, rule="greedy")
    if args.n < 2 * noise.seeds:
        sys.exit(f"--n must be at least {2 * noise.seeds}: an A/A pair takes 2 x seeds distinct runs")
    shipped = (REPO / "train.py").read_text()
    if SHIPPED_LR not in shipped:
        sys.exit(f"train.py no longer holds '{SHIPPED_LR}': plant another improvement")
    planted = shipped.replace(SHIPPED_LR, f"LEARNING_RATE = {args.bad_lr}")

    t0 = time.monotonic()
    good = measure("shipped", shipped, args.n, args.budget, task.seed)
    bad = measure("planted-bug", planted, args.n, args.budget, task.seed)
    wall = time.monotonic() - t0

    sign = -1 if task.direction == "minimize" else 1
    gain = sign * (statistics.fmean(good) - statistics.fmean(bad))
    se = (statistics.variance(good) / len(good) + statistics.variance(bad) / len(bad)) ** 0.5
    print(f"N={args.n} runs per arm, budget {args.budget:g}s, {os.cpu_count()} CPUs: {2 * args.n} runs in "
          f"{wall:.0f}s ({wall / (2 * args.n):.1f}s each)")
    print(f"rule from program.md: k={noise.k:g}, seeds={noise.seeds}, min_spread={noise.min_spread:g}; "
          f"{task.metric}, {task.direction}")
    for name, lr, values in (("shipped train.py", "2e-3", good), ("planted bug", args.bad_lr, bad)):
        print(f"  {name:<17} (lr {lr:>5}): mean {statistics.fmean(values):.4f}  spread {statistics.stdev(values):.4f}"
              f"  [{' '.join(f'{v:.4f}' for v in values)}]")
    print(f"planted improvement: {gain:+.4f} (Welch t {gain / se:.1f}): "
          + ("real" if gain / se > 3 else "NOT clearly real at this budget: try another --bad-lr or --budget"))
    print(f"resampled ({args.resamples} candidates each): best = {noise.seeds} seeds, candidate = 1 run "
          f"(+{noise.seeds - 1} seeds when promising, noise rule)")
    table = {}
    for rule in (greedy, noise):
        table[rule.rule] = {"false keeps": rates(args.resamples, task.direction, rule, good, None),
                            "power": rates(args.resamples, task.direction, rule, bad, good)}
    print(f"  {'':<26}{'greedy':>22}{'noise':>22}   target (noise)")
    for what, label in (("false keeps", "A/A false keeps"), ("power", "power (planted fix kept)")):
        cells = "".join(f"{f'{table[r][what][0]:6.1%} of {args.resamples}':>22}" for r in ("greedy", "noise"))
        bound = "<=" if what == "false keeps" else ">="
        print(f"  {label:<26}{cells}   {bound} {TARGETS[what]:.0%}")
    for what, label in (("false keeps", "runs per candidate, A/A"), ("power", "runs per candidate, fix")):
        print(f"  {label:<26}" + "".join(f"{table[r][what][1]:>22.2f}" for r in ("greedy", "noise")))
    ok = table["noise"]["false keeps"][0] <= TARGETS["false keeps"] and table["noise"]["power"][0] >= TARGETS["power"]
    print("noise rule meets both targets" if ok else "noise rule MISSES a target")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
