"""Harness overhead per experiment, against a direct `python train.py` with the same budget.

Overhead = everything but train.py's own training loop: sandbox start and stop, torch
import, export, scoring, bookkeeping. Both runs happen here, in one process, on the same
data and train.py, so the ratio compares like with like. Usage (from the repo root, after
./run.sh prepare): .venv/bin/python benchmarks/bench_experiment.py [--budget 10] [--repeat 3]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from eval.trial import run_trial  # noqa: E402


def direct_run(budget: float) -> tuple[float, dict]:
    with tempfile.TemporaryDirectory() as out:
        env = {**os.environ, "AUTORESEARCH_BUDGET_S": str(budget), "AUTORESEARCH_OUT": out,
               "AUTORESEARCH_DATA": str(REPO / "data" / "train.bin")}
        t0 = time.monotonic()
        subprocess.run([sys.executable, str(REPO / "train.py")], env=env, check=True, capture_output=True)
        wall = time.monotonic() - t0
        return wall, json.loads((Path(out) / "train_stats.json").read_text())


def harness_run(scratch: Path, budget: float) -> tuple[float, dict]:
    t0 = time.monotonic()
    metrics = run_trial(scratch, hypothesis="benchmark", budget=budget, echo=lambda s: None)
    assert metrics["outcome"] == "ok", metrics["reason"] + metrics["log_tail"]
    return time.monotonic() - t0, metrics


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--budget", type=float, default=10.0)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        scratch = Path(tmp)
        for name in ("program.md", "train.py"):
            shutil.copy(REPO / name, scratch / name)
        (scratch / "data").symlink_to(REPO / "data")
        rows = []
        for _ in range(args.repeat):
            d_wall, d_stats = direct_run(args.budget)
            h_wall, m = harness_run(scratch, args.budget)
            rows.append({
                "direct_wall": d_wall, "direct_loop": d_stats["training_seconds"],
                "direct_bps": d_stats["tokens_per_second"],
                "harness_wall": h_wall, "harness_loop": m["reported"]["training_seconds"],
                "harness_bps": m["reported"]["tokens_per_second"],
                "train_container": m["training_seconds"], "scoring": m["scoring_seconds"],
                "backend": m["backend"], "eval_bytes": m["scored_bytes"],
            })

    def med(key: str) -> float:
        return statistics.median(r[key] for r in rows)

    direct_overhead = med("direct_wall") - med("direct_loop")
    harness_overhead = med("harness_wall") - med("harness_loop")
    print(f"budget {args.budget:g}s, {args.repeat} pairs, backend {rows[0]['backend']}, "
          f"scored bytes {rows[0]['eval_bytes']}, {os.cpu_count()} CPUs (medians)")
    print(f"direct python train.py   wall {med('direct_wall'):6.2f}s  (start-up + export {direct_overhead:5.2f}s)")
    print(f"harness ./run.sh         wall {med('harness_wall'):6.2f}s  (training container "
          f"{med('train_container'):.2f}s, scoring {med('scoring'):.2f}s)")
    print(f"harness overhead beyond the direct run: {med('harness_wall') - med('direct_wall'):5.2f}s")
    print(f"everything but train.py's training loop: {harness_overhead:5.2f}s "
          f"(direct run: {direct_overhead:.2f}s)")
    print(f"ratio harness / direct wall: {med('harness_wall') / med('direct_wall'):.3f}")
    ratios = [r["harness_bps"] / r["direct_bps"] for r in rows]  # each pair ran back to back: a paired ratio
    se = statistics.stdev(ratios) / len(ratios) ** 0.5 if len(ratios) > 1 else float("nan")
    print(f"throughput: direct {med('direct_bps'):,.0f} bytes/s, sandboxed {med('harness_bps'):,.0f} bytes/s "
          f"(ratio of medians {med('harness_bps') / med('direct_bps'):.3f}; paired ratio "
          f"{statistics.fmean(ratios):.3f} +- {se:.3f} standard error over {len(ratios)} pairs)")
    overhead = harness_overhead
    print(f"experiments per hour at a 300 s budget: {3600 / (300 + overhead):.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
