"""What the agent is told about the research state when it starts, resumes or wants to stop.

The SessionStart and Stop hooks and the headless loop say the same things in the same words:
the best so far, the budget left, the untried ideas (the loop's own words are hooks.stop.CONTINUE,
which must hold even when eval/ is broken).
"""

from __future__ import annotations

from pathlib import Path

from eval.config import Budget, Task
from eval.record import ledger
from eval.record.scratchpad import open_hypotheses
from eval.record.text import value

MAX_IDEAS = 10


def ideas_text(repo: Path) -> str:
    ideas = open_hypotheses(repo)
    if not ideas:
        return (
            "No untried ideas in scratchpad.md: write new ones under '## Hypotheses' "
            "(re-read the log, combine near-misses, try the opposite)."
        )
    more = f"\n- ... and {len(ideas) - MAX_IDEAS} more in scratchpad.md" if len(ideas) > MAX_IDEAS else ""
    return "Untried ideas from scratchpad.md:\n" + "\n".join(f"- {idea}" for idea in ideas[:MAX_IDEAS]) + more


def best_text(rows: list[dict], metric: str, direction: str) -> str:
    """'val_bpb 1.234567 (r0003, commit abc1234)', or what to do when there is no result yet."""
    best = ledger.best(rows, direction)
    if best is None:
        if not rows:
            return "no experiments yet: run the baseline first: ./run.sh -m 'baseline'"
        return f"no kept {metric} yet ({len(rows)} experiments, none kept)"
    commit = (best.get("commit") or "?")[:7]
    return f"{metric} {value(best.get('mean'))} ({best['id']}, commit {commit}, {direction})"


def budget_text(rows: list[dict], budget: Budget, hours: float | None) -> str:
    clock = "the clock starts with the first experiment" if hours is None else f"{hours:.1f} of {budget.hours:g} h used"
    left = max(0, budget.experiments - len(rows))
    return f"{len(rows)} of {budget.experiments} experiments done, {left} left; {clock}"


def files_text(task: Task) -> str:
    """Which files the agent edits (program.md task.editable) and which project code it only reads (task.code)."""
    code = f"; read-only project code beside it: {', '.join(task.code)} (task.code)" if task.code else ""
    return (f"Editable: {', '.join(task.editable)} (task.editable) and scratchpad.md{code}. "
            "./run.sh check is a dry run of seconds (imports, a few steps, the export, the evaluator; no score).")
