"""`./run.sh report`: the morning summary in the terminal, and the page rewritten now.

The verdict step rewrites runs/report.html after every experiment; this rewrites it (and
runs/confirm/report.html, once confirm has run) and prints the same summary as tables, with
confirm's test-split result: the agent cannot run this command (the guard allows it
./run.sh, ./run.sh -m and ./run.sh status), and runs/confirm/ is sealed from it.
"""

from __future__ import annotations

import argparse
import sys
import warnings
from pathlib import Path

from eval import config, experiment
from eval.record import ledger, page
from eval.record.report import ROWS, morning


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="./run.sh report", description=__doc__.splitlines()[0])
    ap.add_argument("-n", "--rows", type=int, default=ROWS, help=f"how many of the last experiments to list ({ROWS})")
    args = ap.parse_args(argv)
    repo = Path.cwd()
    try:
        program = config.load(repo / "program.md")
    except config.ConfigError as e:
        print(f"report: {e}", file=sys.stderr)
        return 2
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ledger.TornLedger)
        m = experiment.morning_report(repo, program)
    for w in caught:
        print(f"report: {w.message}", file=sys.stderr)
    if not m.experiments:
        print("no experiments yet: run ./run.sh (each verdict rewrites runs/report.html)")
        return 0
    written = page.write(repo, m)
    print(morning(m, args.rows))
    print("\npage: " + "\n      ".join(f"{p.resolve()}" + ("  (with the test split; sealed from the agent)"
                                                         if p.parent.name == "confirm" else "") for p in written))
    return 0


if __name__ == "__main__":
    sys.exit(main())
