"""Stop: the agent may not end the research while the budget in program.md remains.

Only the human ends the loop: a STOP file at the repository root, or a spent budget
(hours since the first experiment, or the number of experiments). Otherwise the answer is
`{"decision": "block", "reason": ...}` and the reason restarts the work: the best so far,
the budget left, the untried ideas from scratchpad.md. Failing safe here means blocking:
an unattended loop must not end because of a bug, so any error blocks too (unless STOP).
"""

from __future__ import annotations

import json
import re
import sys
from datetime import UTC, datetime
from pathlib import Path

TYPE_CHECKING = False  # as in hooks/policy.py: eval/ is imported late, so that a broken eval/ still blocks
if TYPE_CHECKING:
    from eval.config import Budget

REPO = Path(__file__).resolve().parent.parent
STOP = "STOP"
MAX_IDEAS = 10
BULLET = re.compile(r"\s*(?:[-*+]|\d+[.)])\s+(\S.*)")
CONTINUE = (
    "Continue the loop: pick the next hypothesis, edit train.py, run ./run.sh -m '<hypothesis>', "
    "then record the verdict in scratchpad.md."
)


def open_hypotheses(repo: Path) -> list[str]:
    """The non-empty bullets under scratchpad.md's '## Hypotheses': the agent's own untried ideas."""
    try:
        text = (repo / "scratchpad.md").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return []
    found, inside = [], False
    for line in text.splitlines():
        if line.startswith("## "):
            inside = line[3:].strip().lower() == "hypotheses"
        elif inside and (match := BULLET.match(line)):
            found.append(match.group(1).strip())
    return found


def ideas_text(repo: Path) -> str:
    ideas = open_hypotheses(repo)
    if not ideas:
        return (
            "No untried ideas in scratchpad.md: write new ones under '## Hypotheses' "
            "(re-read the log, combine near-misses, try the opposite)."
        )
    more = f"\n- ... and {len(ideas) - MAX_IDEAS} more in scratchpad.md" if len(ideas) > MAX_IDEAS else ""
    return "Untried ideas from scratchpad.md:\n" + "\n".join(f"- {idea}" for idea in ideas[:MAX_IDEAS]) + more


def show(value: float | None) -> str:
    return "-" if value is None else f"{value:.6f}"


def best_text(rows: list[dict], metric: str, direction: str) -> str:
    """'val_bpb 1.234567 (r0003, commit abc1234)', or what to do when there is no result yet."""
    from eval import ledger

    best = ledger.best(rows, direction)
    if best is None:
        if not rows:
            return "no experiments yet: run the baseline first: ./run.sh -m 'baseline'"
        return f"no kept {metric} yet ({len(rows)} experiments, none kept)"
    commit = (best.get("commit") or "?")[:7]
    return f"{metric} {show(best.get('mean'))} ({best['id']}, commit {commit}, {direction})"


def hours_since_start(rows: list[dict], now: datetime) -> float | None:
    """Hours since the first ledger row; None before the first experiment (the clock has not started)."""
    if not rows:
        return None
    started = datetime.fromisoformat(rows[0]["time"])
    if started.tzinfo is None:
        started = started.astimezone()  # a naive time is the machine's local time
    return (now - started).total_seconds() / 3600


def budget_text(rows: list[dict], budget: Budget, hours: float | None) -> str:
    clock = "the clock starts with the first experiment" if hours is None else f"{hours:.1f} of {budget.hours:g} h used"
    left = max(0, budget.experiments - len(rows))
    return f"{len(rows)} of {budget.experiments} experiments done, {left} left; {clock}"


def despite(problem: str, repo: Path) -> str:
    """The block reason when the budget cannot be read: say why, and still restart the work."""
    return "\n".join([f"Do not stop: {problem}", ideas_text(repo), CONTINUE])


def reason_to_go_on(repo: Path, now: datetime) -> str | None:
    """Why the agent must continue, or None when the human's budget lets it stop."""
    from eval import config, ledger

    try:
        program = config.load(repo / "program.md")
    except config.ConfigError as e:
        return despite(f"program.md is invalid, so the budget is unknown and the research goes on: {e}", repo)
    rows = ledger.read(repo)
    budget, task = program.budget, program.task
    hours = hours_since_start(rows, now)
    spent = len(rows) >= budget.experiments or (hours is not None and hours >= budget.hours)
    if spent or ledger.phase_spent(rows, program.current_phase):  # no run is allowed: waiting would hang
        return None
    return "\n".join(
        [
            f"Do not stop: the research budget is not spent ({budget_text(rows, budget, hours)}). "
            "No human is waiting for an answer.",
            f"Best so far: {best_text(rows, task.metric, task.direction)}.",
            f"Phase: {program.current_phase.name}.",
            ideas_text(repo),
            CONTINUE,
        ]
    )


def respond(repo: Path, now: datetime) -> dict:
    if (repo / STOP).exists():
        return {}
    try:
        reason = reason_to_go_on(repo, now)
    except Exception as e:
        reason = despite(f"the Stop hook failed ({type(e).__name__}: {e}); the loop must not end on a bug.", repo)
    return {} if reason is None else {"decision": "block", "reason": reason}


def main() -> int:
    sys.stdin.read()  # stop_hook_active does not matter: the budget alone decides
    answer = respond(REPO, datetime.now(UTC))
    if answer:
        print(json.dumps(answer))
    return 0
