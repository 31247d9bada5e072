"""PostToolUse on Bash: after an experiment run, make sure its verdict is applied and tell the agent.

./run.sh applies the verdict itself; this hook completes it when the run was cut short (a
timeout, a killed process) and hands the verdict text to the model as additionalContext.
Other Bash calls get an empty answer.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

from hooks.guard import shell
from hooks.guard.paths import Refused
from hooks.guard.policy import run_form

REPO = Path(__file__).resolve().parent.parent
VERDICT_LINE = re.compile(r"^\[(r\d{4,})\] VERDICT:", re.MULTILINE)


def is_experiment(command: object) -> bool:
    try:
        line = shell.parse(command) if isinstance(command, str) else None
        return bool(line and line.alone and line.commands[0].words[0].text == "./run.sh"
                    and run_form(list(line.commands[0].words[1:])) == "experiment")
    except (shell.ShellError, Refused):
        return False


def report(repo: Path, response: dict) -> str:
    from eval import experiment

    said = VERDICT_LINE.findall(str(response.get("stdout", "")))
    waiting = experiment.pending(repo)
    run_id = said[-1] if said else (waiting[-1] if waiting else None)
    if run_id is None:
        stderr = str(response.get("stderr", ""))[-1500:]
        return f"No verdict: ./run.sh did not complete an experiment.\n{stderr}".strip()
    try:
        with experiment.exclusive(repo):
            experiment.recover(repo, say=lambda s: None)  # a run cut short: its containers, its verdict
            return experiment.verdict_text(experiment.apply_verdict(repo, run_id))
    except experiment.Busy as e:
        return f"{e}. Its verdict will be applied when it ends; do not start another run."


def main() -> int:
    try:
        event = json.loads(sys.stdin.read())
        if event.get("tool_name") != "Bash" or not is_experiment((event.get("tool_input") or {}).get("command")):
            print("{}")
            return 0
        text = report(REPO, event.get("tool_response") or {})
    except Exception as e:  # the agent must hear about it: the loop goes on, the human reads the log
        text = f"The harness could not apply the verdict ({type(e).__name__}: {e}). Run ./run.sh status."
    print(json.dumps({"hookSpecificOutput": {"hookEventName": "PostToolUse", "additionalContext": text}}))
    return 0
