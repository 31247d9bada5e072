"""SessionStart: put the state of the research back into the model's context.

It runs at startup, on resume, after /clear and after a context compaction, which is
when the agent has forgotten what it was doing: the phase and its instructions, the
metric, the best result, the latest experiments and the open ideas come back here.
It never fails: on an error the context says what went wrong. It also checks that the
guard is live (hooks/canary.py); when it is not, the context and a message to the human say
so first, and that no research may happen in this session.
"""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime
from pathlib import Path

from hooks.stop import CONTINUE

REPO = Path(__file__).resolve().parent.parent
RECENT = 5
LOOP = (
    "The loop: one hypothesis, edit train.py, ./run.sh -m '<hypothesis>', read the verdict, record it "
    "(id, verdict, lesson) in scratchpad.md, repeat. Never stop on your own."
)


def recent_rows(rows: list[dict]) -> list[str]:
    from eval.record import ledger
    from eval.record.text import value

    return [
        f"  {r['id']}  {r['status']:<7}  {value(r.get('mean')):>10}  {(r.get('hypothesis') or '')[:100]}"
        for r in ledger.last(rows, RECENT)
    ]


def context(repo: Path, source: str) -> str:
    from eval import config
    from eval.brief import best_text, budget_text, files_text
    from eval.record import ledger
    from eval.record.scratchpad import open_hypotheses
    from eval.rules import hours_since_start

    lines = [f"autoresearch state (SessionStart: {source}), read from program.md, runs/ledger.jsonl, scratchpad.md."]
    rows = ledger.read(repo)
    try:
        program = config.load(repo / "program.md")
    except config.ConfigError as e:
        program = None
        lines.append(f"program.md is INVALID, so runs are refused until a human fixes it: {e}")
    if program is not None:
        task, phase = program.task, program.current_phase
        lines += [
            f"Phase: {phase.name}. {phase.instructions}",
            f"Metric: {task.metric} ({task.direction}).",
            files_text(task),
            f"Budget: {budget_text(rows, program.budget, hours_since_start(rows, datetime.now(UTC)))}.",
        ]
        if rows:
            lines.append(f"Best: {best_text(rows, task.metric, task.direction)}.")
    if rows:
        lines += [f"Last {min(RECENT, len(rows))} experiments (id, status, value, hypothesis):", *recent_rows(rows)]
    else:
        lines.append("No experiments yet: run the baseline first: ./run.sh -m 'baseline'")
    ideas = open_hypotheses(repo)
    if ideas:
        lines += ["Open hypotheses (scratchpad.md):", *(f"- {idea}" for idea in ideas)]
    else:
        lines.append("No open hypotheses in scratchpad.md yet: write some under '## Hypotheses'.")
    lines.append(LOOP)
    return "\n".join(lines)


def guard_trouble(repo: Path, event: object) -> str | None:
    """The warning that opens the context when the guard is not live, else None."""
    from hooks import canary

    try:
        found = canary.problems(repo, event.get("session_id") if isinstance(event, dict) else None)
    except Exception as e:
        found = [f"the check itself failed ({type(e).__name__}: {e})"]
    if not found:
        return None
    return ("THE GUARD IS NOT LIVE, so this session must not do research: " + "; ".join(found) + ". Do not edit "
            "files or run experiments: end your turn and tell the human what is wrong.")


def respond(raw: str, repo: Path) -> dict:
    event: object = {}
    try:
        event = json.loads(raw or "{}")
        text = context(repo, event.get("source", "startup") if isinstance(event, dict) else "startup")
    except Exception as e:
        text = f"autoresearch: the SessionStart hook could not read the research state ({type(e).__name__}: {e}).\n"
        text += f"Read scratchpad.md and run ./run.sh status to see where the research stands. {CONTINUE}"
    trouble = guard_trouble(repo, event)
    try:
        from hooks import start_state

        start_state.save(repo, json.loads(raw or "{}"))  # for replays of this session
    except Exception as e:  # the session goes on; only its replay loses its starting point
        print(f"session_start: the start state was not saved: {type(e).__name__}: {e}", file=sys.stderr)
    answer: dict = {"hookSpecificOutput": {"hookEventName": "SessionStart",
                                           "additionalContext": f"{trouble}\n\n{text}" if trouble else text}}
    return answer | ({"systemMessage": f"autoresearch: {trouble}"} if trouble else {})


def main() -> int:
    print(json.dumps(respond(sys.stdin.read(), REPO)))
    return 0
