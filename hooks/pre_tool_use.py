"""PreToolUse: decide one tool call, log the decision, answer Claude Code.

Every path out of here answers: an exception, unparseable input or an audit log that
cannot be written all become a deny with a reason, never a silent pass. An allowed
experiment run is noted first (eval/record/calls.py), so that the PostToolUse hook tells
the agent the verdict of that run and no other; a run that cannot be noted is refused.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from hooks import audit
from hooks.guard import policy

REPO = Path(__file__).resolve().parent.parent


def load_program(repo: Path):
    """program.md parsed now (humans edit it while the loop runs), or the ConfigError it raises."""
    from eval import config  # imported here so that a broken eval/ denies instead of crashing

    try:
        return config.load(repo / "program.md")
    except config.ConfigError as e:
        return e


def respond(raw: str, repo: Path) -> dict:
    event, phase = {}, None
    try:
        event = json.loads(raw)
        program = load_program(repo)
        phase = None if isinstance(program, Exception) else program.current_phase.name
        decision = policy.decide(event["tool_name"], event["tool_input"], repo, program, event.get("cwd"))
        if decision.experiment:
            from eval.record import calls

            calls.begin(repo, event.get("tool_use_id"))
    except Exception as e:
        decision = policy.deny(
            f"the guard could not decide ({type(e).__name__}: {e}), so the call is refused"
        )
    event = event if isinstance(event, dict) else {}
    try:
        audit.record(
            repo,
            {
                "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                "tool": event.get("tool_name"),
                "input": audit.summary(event.get("tool_input")),
                "decision": decision.decision,
                "reason": decision.reason,
                "phase": phase,
                "tool_use_id": event.get("tool_use_id"),
                "session_id": event.get("session_id"),
            },
        )
    except Exception as e:
        decision = policy.deny(
            f"the audit log {audit.LOG} cannot be written ({e}); every call is refused "
            "until the human fixes it"
        )
    output = {
        "hookEventName": "PreToolUse",
        "permissionDecision": decision.decision,
        "permissionDecisionReason": decision.reason,
    }
    if decision.updated_input is not None:
        output["updatedInput"] = decision.updated_input
    return {"hookSpecificOutput": output}


def main() -> int:
    print(json.dumps(respond(sys.stdin.read(), REPO)))
    return 0
