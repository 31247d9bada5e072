"""`./run.sh status`: the ledger's last rows, the best result and the counts, for humans.

Read-only. Before the first verdict there is no runs/ledger.jsonl yet; then the runs'
metrics.json files are listed instead, unjudged.
"""

from __future__ import annotations

import argparse
import sys
import warnings
from pathlib import Path

from eval import config
from eval.record import ledger
from eval.record.report import ROWS, best_of, load_runs, report, runs_table, workers_table
from eval.record.runs import LOOP, read_json


def show_workers(repo: Path, rows: list[dict]) -> None:
    """The workers of the last ./run.sh loop --workers, with the slots they hold now."""
    workers = (read_json(repo / LOOP) or {}).get("workers") or []
    if not workers:
        return
    from eval import experiment, leases  # the lease probe needs the serial lock

    try:
        with experiment.serial(repo, wait_s=5):
            held = leases.holders(repo)
    except experiment.Busy:
        held = {}
    print("\n" + workers_table(workers, rows, held))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="./run.sh status", description="The ledger's last rows and the best result")
    ap.add_argument("-n", "--rows", type=int, default=ROWS, help=f"how many of the last experiments to show ({ROWS})")
    args = ap.parse_args(argv)
    repo = Path.cwd()
    try:
        task = config.load(repo / "program.md").task
    except config.ConfigError as e:
        print(f"status: {e}", file=sys.stderr)
        return 2
    if (repo / ledger.LEDGER).exists():
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", ledger.TornLedger)
            rows = ledger.read(repo)
        for w in caught:
            print(f"status: {w.message}", file=sys.stderr)
        if rows:
            print(report(repo, rows, task.metric, task.direction, args.rows))
            show_workers(repo, rows)
            return 0
    runs = load_runs(repo / "runs")
    if not runs:
        print("no experiments yet: run ./run.sh")
        return 0
    print(runs_table(ledger.last(runs, args.rows), task.metric))
    best = best_of(runs, task.direction)
    shown = "none yet" if best is None else f"{best['value']:.6f} ({best['id']})"
    print(f"\nbest {task.metric} ({task.direction}): {shown}  (no verdicts yet: listed from runs/*/metrics.json)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
