"""The Claude Code status line: the running experiment and its time left, the best, the experiments done.

Claude Code runs settings.json's statusLine command (hooks/launch status_line) as the session
changes, with the session's JSON on stdin, and shows the line printed. It reads only what the
harness wrote (program.md, the ledger, runs/running.json), so it is quick; it never fails
loudly: any error prints an empty line, and hooks/launch's timeout ends a hang.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SEPARATOR = " | "


def alive(pid: object) -> bool:
    """Whether the process that wrote runs/running.json still runs: a killed ./run.sh leaves the file behind."""
    if not isinstance(pid, int) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except PermissionError:
        return True
    except OSError:
        return False
    return True


def running(repo: Path, now: float) -> str | None:
    """'r0007 seed 2/3, 192 s left' for the trial running now; None when none is."""
    from eval.record.runs import RUNNING, read_json

    trial = read_json(repo / RUNNING)
    if not trial or not alive(trial.get("pid")):
        return None
    seed = f"seed {trial.get('seed')}" + (f"/{trial['of']}" if trial.get("of") else "")
    left = float(trial.get("budget_seconds", 0)) - (now - float(trial.get("started", now)))
    return f"{trial.get('id')} {seed}, " + (f"{left:.0f} s left" if left > 0 else "exporting and scoring")


def line(repo: Path, session: dict, now: float) -> str:
    from eval import config
    from eval.record import ledger
    from eval.record.text import value

    program = config.load(repo / "program.md")
    task, rows = program.task, ledger.read(repo)
    best = ledger.best(rows, task.direction)
    kept = sum(r.get("status") == "keep" for r in rows)
    parts = [running(repo, now) or "no experiment running",
             f"best {task.metric} {value(best['mean'])} ({best['id']})" if best else f"no {task.metric} kept yet",
             f"{len(rows)}/{program.budget.experiments} experiments, {kept} kept"]
    cost = (session.get("cost") or {}).get("total_cost_usd") if isinstance(session, dict) else None
    if isinstance(cost, (int, float)):
        parts.append(f"${cost:.2f}")
    return "autoresearch: " + SEPARATOR.join(parts)


def main() -> int:
    try:
        raw = sys.stdin.read()
        text = line(REPO, json.loads(raw) if raw.strip() else {}, time.time())
    except Exception:  # a status line that cannot be made is an empty one, never an error on the screen
        text = ""
    print(text)
    return 0
