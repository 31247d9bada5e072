"""The research rules: when a run may start, how long it may take, when the research may stop.

The guard (hooks/guard/) consults them before an experiment starts; the Stop and
SessionStart hooks and the headless loop consult them to decide whether the agent goes on.
They read the research state (ledger, scratchpad) and decide nothing about shell syntax.
"""

from __future__ import annotations

import json
import re
from datetime import datetime
from pathlib import Path

from eval.clock import START_CAP_S
from eval.config import Phase, Program
from eval.record import ledger
from eval.record.runs import RUNS, VERDICT, experiment_ids
from eval.record.scratchpad import SCRATCHPAD

BASH_TIMEOUT_CAP_MS = 7_200_000  # = BASH_MAX_TIMEOUT_MS in .claude/settings.json (Claude Code's default is 600 s)


def phase_spent(rows: list[dict], phase: Phase) -> bool:
    """Whether the phase has used its max_experiments; never for an uncapped phase."""
    cap = phase.max_experiments
    return cap is not None and sum(r.get("phase") == phase.name for r in rows) >= cap


def last_judged(repo: Path) -> str | None:
    """The id of the newest experiment that has a verdict: of this worker's, where runs/ is shared by workers
    (a link to the home's, ./run.sh loop --workers)."""
    here = str(repo.resolve()) if (repo / RUNS).is_symlink() else None
    for i in reversed(experiment_ids(repo)):
        if (repo / RUNS / i / VERDICT).exists() and (here is None or mine(repo / RUNS / i / VERDICT, here)):
            return i
    return None


def mine(verdict_file: Path, worktree: str) -> bool:
    try:
        return json.loads(verdict_file.read_text()).get("worktree") == worktree
    except (OSError, ValueError, AttributeError):
        return True  # unreadable: counted, so the gate asks for a note rather than skipping one


def unrecorded(repo: Path) -> str | None:
    """The id of the last verdict when scratchpad.md does not mention it yet, else None."""
    run_id = last_judged(repo)
    if run_id is None:
        return None
    try:
        notes = (repo / SCRATCHPAD).read_text(encoding="utf-8", errors="replace")
    except OSError:
        return run_id
    return None if re.search(rf"\b{run_id}\b", notes) else run_id


def run_refusal(repo: Path, program: Program) -> str | None:
    """Why a new experiment may not start now (the agent reads it), or None."""
    phase = program.current_phase
    if phase_spent(ledger.read(repo), phase):
        return (f"phase {phase.name} has used its {phase.max_experiments} experiments (max_experiments in "
                "program.md); the human moves current_phase on. Write up what you learned in scratchpad.md")
    missing = unrecorded(repo)
    if missing:
        return (f"first record the verdict of {missing} in scratchpad.md (Experiment log: id | verdict | "
                f"metric | change | lesson); ./run.sh is refused until scratchpad.md mentions {missing}")
    return None


def run_timeout_ms(program: Program) -> int:
    """Every seed's start-up cap + budget + grace + scoring, plus a minute for the verdict, within the Bash cap."""
    task, limits = program.task, program.limits
    per_seed = START_CAP_S + task.budget_seconds + task.grace_seconds + limits.score_seconds
    seconds = program.verdict.seeds * per_seed + 60
    return int(min(seconds * 1000, BASH_TIMEOUT_CAP_MS))


def hours_since_start(rows: list[dict], now: datetime) -> float | None:
    """Hours since the first ledger row; None before the first experiment (the clock has not started)."""
    if not rows:
        return None
    started = datetime.fromisoformat(rows[0]["time"])
    if started.tzinfo is None:
        started = started.astimezone()  # a naive time is the machine's local time
    return (now - started).total_seconds() / 3600


def may_stop(rows: list[dict], program: Program, now: datetime) -> bool:
    """The human's budget is spent (hours or experiments), or the phase allows no further run."""
    budget, hours = program.budget, hours_since_start(rows, now)
    spent = len(rows) >= budget.experiments or (hours is not None and hours >= budget.hours)
    return spent or phase_spent(rows, program.current_phase)  # no run is allowed: waiting would hang
