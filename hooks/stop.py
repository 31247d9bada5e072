"""Stop: the agent may not end the research while the budget in program.md remains.

Only the human ends the loop: a STOP file at the repository root, or a spent budget
(hours since the first experiment, or the number of experiments; eval/rules.py decides).
Otherwise the answer is `{"decision": "block", "reason": ...}` and the reason restarts the
work: the best so far, the budget left, the untried ideas from scratchpad.md. Failing safe
here means blocking: an unattended loop must not end because of a bug, so any error blocks
too (unless STOP).
"""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
STOP = "STOP"
CONTINUE = (  # here, not in eval/: a broken eval/ must still restart the work
    "Continue the loop: pick the next hypothesis, edit train.py, run ./run.sh -m '<hypothesis>', "
    "then record the verdict in scratchpad.md."
)


def despite(problem: str, repo: Path) -> str:
    """The block reason when the budget cannot be read: say why, and still restart the work."""
    try:
        from eval.brief import ideas_text

        ideas = ideas_text(repo)
    except Exception:
        ideas = "Read scratchpad.md for the untried ideas."
    return "\n".join([f"Do not stop: {problem}", ideas, CONTINUE])


def reason_to_go_on(repo: Path, now: datetime) -> str | None:
    """Why the agent must continue, or None when the human's budget lets it stop."""
    from eval import brief, config, rules
    from eval.record import ledger

    try:
        program = config.load(repo / "program.md")
    except config.ConfigError as e:
        return despite(f"program.md is invalid, so the budget is unknown and the research goes on: {e}", repo)
    rows = ledger.read(repo)
    if rules.may_stop(rows, program, now):
        return None
    task = program.task
    return "\n".join(
        [
            "Do not stop: the research budget is not spent "
            f"({brief.budget_text(rows, program.budget, rules.hours_since_start(rows, now))}). "
            "No human is waiting for an answer.",
            f"Best so far: {brief.best_text(rows, task.metric, task.direction)}.",
            f"Phase: {program.current_phase.name}.",
            brief.files_text(task),
            brief.ideas_text(repo),
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
