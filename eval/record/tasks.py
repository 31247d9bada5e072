"""Which task the ledger is about: a change of metric, direction, evaluator or data starts a new ledger.

Results compare only within one task. A repository switched to another task (program.md's task
edited, other data frozen) kept the old ledger: results.tsv's header named the old metric and the
"best" was a number of another kind. Now runs/task.json says which task the ledger holds; when the
task differs, the ledger and what is drawn from it move to runs/archive/<time>-<metric>/, and the
next experiment is the new task's baseline. Git history and the run dirs stay where they are.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path

from eval.record.ledger import LEDGER, TSV
from eval.record.runs import RUNS, read_json, write_json

TASK = RUNS / "task.json"
ARCHIVE = RUNS / "archive"
DRAWN = (LEDGER, TSV, Path("progress.png"), RUNS / "report.html")  # the ledger and what is made from it
KEYS = ("metric", "direction", "evaluator", "data")


def identity(metric: str, direction: str, evaluator: str, data: str | None) -> dict:
    """What makes two results comparable; data: the frozen data's manifest hash."""
    return dict(zip(KEYS, (metric, direction, evaluator, data), strict=True))


def switch(repo: Path, current: dict, rows: list[dict]) -> str | None:
    """Archive the ledger when it holds another task; record the current one. What was done, or None.

    A ledger from before runs/task.json is taken to be the current task's when its last row has
    the same metric and direction (the evaluator and data were not recorded then).
    """
    known = read_json(repo / TASK)
    if known is None and rows and (rows[-1]["metric"], rows[-1]["direction"]) == (current["metric"],
                                                                                   current["direction"]):
        known = current
    if known is None and not rows or known == current:
        write_json(repo / TASK, current)
        return None
    old = known or {"metric": rows[-1]["metric"]}
    target = repo / ARCHIVE / f"{datetime.now(UTC):%Y%m%dT%H%M%SZ}-{old['metric']}"
    target.mkdir(parents=True)
    for path in (*DRAWN, TASK):
        if (repo / path).exists():
            os.replace(repo / path, target / path.name)
    write_json(repo / TASK, current)
    what = ", ".join(f"{k} {str(old.get(k))[:12]} -> {str(current[k])[:12]}" for k in KEYS if old.get(k) != current[k])
    return (f"the task changed ({what}): the old task's ledger, results.tsv and plot are in "
            f"{target.relative_to(repo)}/; this experiment is the new task's baseline")
