"""PostToolUse (and PostToolUseFailure) on Bash: after an experiment run, apply its verdict and tell the agent.

./run.sh applies the verdict itself; this hook completes it when the run was cut short (a
timeout, a killed process) and hands the verdict text to the model as additionalContext. A
run that fails (exit 3: crash, timeout) or is killed reaches Claude Code's PostToolUseFailure
event instead of PostToolUse; both come here. Which experiment the call ran is read from the
harness's own records (eval/record/calls.py: noted by the PreToolUse hook when it allowed
the call), and its verdict from runs/<id>/verdict.json: never from the tool's output, which
train.py's prints fill and Claude Code cuts to a preview. Other Bash calls get an empty answer.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

from hooks.guard import shell, wrappers
from hooks.guard.paths import Context, Refused
from hooks.guard.policy import run_form

REPO = Path(__file__).resolve().parent.parent
EVENTS = ("PostToolUse", "PostToolUseFailure")
SERIAL_WAIT_S = 30  # the longest wait for a parallel experiment's verdict step, within the hook's 120 s
NO_RUN = ("No verdict: this ./run.sh call started no experiment (its output says why: another run, "
          "program.md, the data or the sandbox). Nothing was judged; fix the cause and run it again.")


def is_experiment(command: object, repo: Path = REPO) -> bool:
    """Whether a Bash command is one of the experiment forms, alone or in the wrappers the guard drops
    (replay asks too; Claude Code may report the call as the agent wrote it rather than as rewritten)."""
    try:
        line = shell.parse(command) if isinstance(command, str) else None
        if line and not line.alone:
            root = Path(os.path.realpath(repo))
            peeled = wrappers.peel(line, Context(root, root, None))
            line = peeled and shell.Line((peeled.run,), alone=True)
        return bool(line and line.commands[0].words[0].text == "./run.sh" and not line.commands[0].problems
                    and run_form(list(line.commands[0].words[1:])) == "experiment")
    except (shell.ShellError, Refused):
        return False


def report(repo: Path, call_id: object) -> str:
    from eval import experiment, leases
    from eval.record import calls

    try:
        with experiment.serial(repo, wait_s=SERIAL_WAIT_S):
            experiment.recover(repo, say=lambda s: None)  # a run cut short: its containers, its verdict
            here = str(repo.resolve())  # one experiment at a time per checkout: a worker's neighbours run on
            running = [h["run"] for h in leases.holders(repo).values() if h.get("worktree") == here]
            if running:
                raise experiment.Busy(f"{running[0]} is still running in this checkout")
            run_id = calls.claim(repo, call_id)
            return NO_RUN if run_id is None else experiment.verdict_text(experiment.apply_verdict(repo, run_id))
    except experiment.Busy as e:
        return f"{e}. Its verdict will be applied when it ends; do not start another run."
    except calls.NoRecord as e:
        return f"No verdict reported: {e}."


def main() -> int:
    name = EVENTS[0]
    try:
        event = json.loads(sys.stdin.read())
        name = event["hook_event_name"] if event.get("hook_event_name") in EVENTS else name
        if event.get("tool_name") != "Bash" or not is_experiment((event.get("tool_input") or {}).get("command")):
            print("{}")
            return 0
        text = report(REPO, event.get("tool_use_id"))
    except Exception as e:  # the agent must hear about it: the loop goes on, the human reads the log
        text = f"The harness could not apply the verdict ({type(e).__name__}: {e}). Run ./run.sh status."
    print(json.dumps({"hookSpecificOutput": {"hookEventName": name, "additionalContext": text}}))
    return 0
