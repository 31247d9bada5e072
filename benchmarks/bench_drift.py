"""A/A under drift: does a verdict measure the change or the machine? Today's engine against paired verdicts.

Real runs, in the sandbox, on this machine: the shipped train.py and a copy with a planted bug (a 10x
too small learning rate), each N times on the quiet machine and N times beside busy loops (one per
core) (the drift: another job on a shared machine), every run with its value and its CPU-seconds.
Then candidates are drawn as the harness would judge them (Machine: a real run's compute, a value from
the line of value on compute), on a machine whose busy loops are
switched on for a random half of the runs (reproducible: a fixed random seed), and on the quiet one:
  never:  today's engine: best = `seeds` stored runs; candidate = 1 run, + seeds - 1 more when promising;
  auto:   the default: the screen against the stored runs of alike compute; a promising candidate whose
          runs and the best's stored ones got unlike compute is judged beside fresh runs of the best;
  always: every promising candidate beside fresh runs of the best.
Each through the engine's own flow (eval/experiment.py candidate_runs and judgement).
A/A: best and candidate are the same train.py, every keep is the machine taken for progress.
Power: the shipped train.py as the candidate against the planted bug as the best. Usage:

    .venv/bin/python benchmarks/bench_drift.py [--n 8] [--budget 3] [--resamples 4000] [--save F | --runs F]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import random
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from benchmarks.bench_verdict import SHIPPED_LR, TARGETS  # noqa: E402
from eval import config, experiment, verdict  # noqa: E402
from eval.trial import run_trial  # noqa: E402
from tests.test_compute import CORES, busy_machine  # noqa: E402

Pool = dict[bool, list[dict]]  # busy? -> runs: {"value", "cpu_seconds": what the budget bought}
MODES = ("never", "auto", "always")  # verdict.paired; never is the engine before paired verdicts


def measure(name: str, train_py: str, n: int, budget: float, seed: int) -> Pool:
    """n real runs of this train.py on the quiet machine and n beside one busy loop per core."""
    pool: Pool = {False: [], True: []}
    with tempfile.TemporaryDirectory() as tmp:
        scratch = Path(tmp)
        program = (REPO / "program.md").read_text()
        (scratch / "program.md").write_text(re.sub(r"grace_seconds: \d+", "grace_seconds: 60", program))  # busy exports
        (scratch / "train.py").write_text(train_py)
        (scratch / "data").symlink_to(REPO / "data")
        for busy in (False, True):
            for i, s in enumerate(verdict.harness_seeds(seed, n, f"bench_drift/{name}/{busy}"), start=1):
                with busy_machine(CORES if busy else 0):
                    m = run_trial(scratch, hypothesis=name, budget=budget, seed=s, echo=lambda _: None)
                if m["outcome"] != "ok":
                    sys.exit(f"{name}: run {i} ended {m['outcome']}: {m['reason']}\n{m['log_tail']}")
                pool[busy].append({"value": m["value"], "cpu_seconds": experiment.compute(m)})
                print(f"  {name} {'busy ' if busy else 'quiet'} {i}/{n}: {m['value']:.4f} CPU "
                      f"{experiment.compute(m):.1f}s bought (of {m['cpu_seconds']:.1f}s)", file=sys.stderr, flush=True)
    return pool


class Machine:
    """Draws one run of a version: busy with probability `drift`, else quiet; its CPU-seconds those of one of that
    version's real runs in that state, its value from the line of value on CPU-seconds fitted to those runs plus
    normal noise of their residual spread. The line keeps what a run's compute buys (the one quiet run of the
    default train.py that got 6.3 CPU-seconds, not 7.3-7.9, scored 6.62, not 6.2); real runs' values resampled
    would repeat, and a repeated value is no seed noise; independent normals for value and compute made up
    compute no run can get (8.5 CPU-seconds from a 4 s budget on 2 cores) and cut the link between the two."""

    def __init__(self, rng: random.Random, drift: float):
        self.rng, self.drift, self.n = rng, drift, 0

    def run(self, pool: Pool, seed: int = 0) -> dict:
        self.n += 1
        runs = pool[self.rng.random() < self.drift]
        cpu = self.rng.choice(runs)["cpu_seconds"]
        mean, slope, noise = line(runs)
        value = mean + slope * (cpu - statistics.fmean(r["cpu_seconds"] for r in runs)) + self.rng.gauss(0, noise)
        return {"id": f"t{self.n}", "outcome": "ok", "seed": seed, "value": value, "cpu_seconds": cpu}


def line(runs: list[dict]) -> tuple[float, float, float]:
    """(mean value, least-squares slope of value on CPU-seconds, residual standard deviation) of these runs."""
    c = [r["cpu_seconds"] - statistics.fmean(r["cpu_seconds"] for r in runs) for r in runs]
    v = [r["value"] - statistics.fmean(r["value"] for r in runs) for r in runs]
    sxx = sum(x * x for x in c)
    slope = sum(x * y for x, y in zip(c, v, strict=True)) / sxx if sxx > 0 else 0.0
    sse = sum((y - slope * x) ** 2 for x, y in zip(c, v, strict=True))
    return statistics.fmean(r["value"] for r in runs), slope, math.sqrt(sse / max(len(runs) - 2, 1))


def candidate(machine: Machine, rule: config.VerdictRule, direction: str, best_pool: Pool,
              cand_pool: Pool) -> tuple[bool, int]:
    """One candidate judged by the engine's own flow (experiment.candidate_runs, experiment.judgement) on a
    drifting machine: (kept, runs spent on it). The best's stored runs were measured on the same machine."""
    task = config.Task("m", direction, "e:f", "train.py", 1.0, 1.0, 0)
    stored = [machine.run(best_pool) for _ in range(rule.seeds)]
    best = verdict.Samples(tuple(r["value"] for r in stored), (), tuple(r["cpu_seconds"] for r in stored))
    seeds = list(range(rule.seeds + int(experiment.MORE_PAIRS * rule.seeds)))
    ran = experiment.candidate_runs(rule, direction, best, seeds,
                                    lambda arm, k, seed: machine.run(best_pool if arm == "b" else cand_pool, seed))
    v, _, _ = experiment.judgement(task, rule, best, ran["s"], ran["b"], None)
    return v.status == "keep", len(ran["s"]) + len(ran["b"])


def rates(resamples: int, rule: config.VerdictRule, direction: str, drift: float, best: Pool,
          cand: Pool) -> tuple[float, float]:
    """(keep rate, runs per candidate) over resamples, from a fixed random seed."""
    machine = Machine(random.Random(0), drift)
    results = [candidate(machine, rule, direction, best, cand) for _ in range(resamples)]
    return sum(k for k, _ in results) / resamples, sum(n for _, n in results) / resamples


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=8, help="real runs per arm and machine state")
    ap.add_argument("--budget", type=float, default=3.0, help="training seconds per run")
    ap.add_argument("--bad-lr", default="2e-4", help="the planted bug: the learning rate of the worse arm")
    ap.add_argument("--resamples", type=int, default=4000)
    ap.add_argument("--save", type=Path, help="write the real runs to this JSON file")
    ap.add_argument("--runs", type=Path, help="simulate from real runs saved earlier (--save) instead of measuring")
    args = ap.parse_args()
    if not (REPO / "data" / "manifest.json").exists():
        subprocess.run([str(REPO / "run.sh"), "prepare"], check=True)
    program = config.load(REPO / "program.md")
    task = program.task
    rules = {mode: dataclasses.replace(program.verdict, rule="noise", paired=mode) for mode in MODES}
    shipped = (REPO / "train.py").read_text()
    if SHIPPED_LR not in shipped:
        sys.exit(f"train.py no longer holds '{SHIPPED_LR}': plant another improvement")
    t0 = time.monotonic()
    if args.runs:
        saved = json.loads(args.runs.read_text())
        good, bad = ({busy == "busy": runs for busy, runs in saved[name].items()} for name in ("shipped", "bad"))
        where = f"real runs from {args.runs} ({saved['note']})"
    else:
        good = measure("shipped", shipped, args.n, args.budget, task.seed)
        bad = measure("planted-bug", shipped.replace(SHIPPED_LR, f"LEARNING_RATE = {args.bad_lr}"), args.n,
                      args.budget, task.seed)
        where = f"{4 * args.n} real runs in {time.monotonic() - t0:.0f}s, budget {args.budget:g}s, {CORES} CPUs"
        if args.save:
            args.save.write_text(json.dumps({"note": where, **{name: {("busy" if b else "quiet"): runs for b, runs
                                            in pool.items()} for name, pool in (("shipped", good), ("bad", bad))}}))
    rule = rules["auto"]
    print(f"{where}; rule k={rule.k:g}, seeds={rule.seeds}, compute_tolerance={rule.compute_tolerance:g}")
    for name, pool in (("shipped", good), ("planted bug", bad)):
        for busy in (False, True):
            runs = pool[busy]
            values, cpu = [r["value"] for r in runs], [r["cpu_seconds"] for r in runs]
            _, slope, noise = line(runs)
            print(f"  {name:<12} {'busy ' if busy else 'quiet'}: {len(runs)} runs, mean {statistics.fmean(values):.4f} "
                  f"sd {statistics.stdev(values):.4f}, CPU bought {statistics.fmean(cpu):.1f}s "
                  f"sd {statistics.stdev(cpu):.1f}; {slope:+.3f} per CPU-second, residual sd {noise:.4f}")
    print(f"{args.resamples} resampled candidates per cell; drift: busy loops on for a random half of the runs")
    print(f"  {'':<36}" + "".join(f"{'paired: ' + m:>16}" for m in MODES) + "   target")
    ok = True
    for drift, label in ((0.5, "drift"), (0.0, "quiet")):
        cells = {m: (rates(args.resamples, rules[m], task.direction, drift, good, good),
                     rates(args.resamples, rules[m], task.direction, drift, bad, good)) for m in MODES}
        for i, (what, bound, name) in enumerate((("false keeps", "<=", "A/A false keeps"), ("power", ">=", "power"))):
            row = "".join(f"{cells[m][i][0]:>16.1%}" for m in MODES)
            print(f"  {label + ', ' + name:<36}{row}   {bound} {TARGETS[what]:.0%}")
        for i, name in enumerate(("A/A", "fix")):
            print(f"  {label + ', runs per ' + name + ' candidate':<36}" + "".join(f"{cells[m][i][1]:>16.2f}"
                                                                               for m in MODES))
        ok = ok and cells["auto"][0][0] <= TARGETS["false keeps"] and cells["auto"][1][0] >= TARGETS["power"]
    print("paired: auto meets both targets, drifting and quiet" if ok else "paired: auto MISSES a target")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
