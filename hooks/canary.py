"""Is the guard live? What a hook can check about its own session before research starts.

A hook cannot see whether Claude Code will call PreToolUse. It can check what that call depends
on: the settings files Claude Code reads switch no hooks off, the project's settings run the
guard before every tool and fail closed, and the wired command, run as Claude Code runs it,
refuses a known-forbidden call. SessionStart runs these checks; `./run.sh loop` goes further
(loop/canary.py) and watches the CLI itself refuse a call before the research starts.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
from pathlib import Path

GUARD = '"$CLAUDE_PROJECT_DIR"/hooks/launch pre_tool_use'  # the PreToolUse command of .claude/settings.json
FORBIDDEN = "git log -1 --output=eval/canary.txt"  # matches the allow rule `Bash(git log *)`; only the guard refuses it
PROBE_TIMEOUT_S = 5
MANAGED = Path("/etc/claude-code/managed-settings.json")  # Claude Code's policy file on Linux
SWITCHES = ("disableAllHooks", "allowManagedHooksOnly")  # settings that keep the project's hooks from running


def settings_files(repo: Path) -> list[Path]:
    """The settings Claude Code may read for this repository: project, local, the user's, the managed policy."""
    user = Path(os.environ.get("CLAUDE_CONFIG_DIR") or Path.home() / ".claude")
    return [repo / ".claude" / "settings.json", repo / ".claude" / "settings.local.json", user / "settings.json",
            MANAGED]


def read_settings(path: Path) -> dict:
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as e:
        return {"unreadable": str(e)}
    return data if isinstance(data, dict) else {"unreadable": "not a JSON object"}


def wiring_problems(repo: Path) -> list[str]:
    found = []
    for path in settings_files(repo):
        data = read_settings(path)
        if "unreadable" in data and path.parent == repo / ".claude":
            found.append(f"{path} cannot be read ({data['unreadable']})")
        found += [f"{path} sets {key}: Claude Code runs none of the project's hooks" for key in SWITCHES
                  if data.get(key)]
    entries = read_settings(repo / ".claude" / "settings.json").get("hooks", {}).get("PreToolUse", [])
    wired = [hook for entry in entries if isinstance(entry, dict) and entry.get("matcher") in ("*", "", None)
             for hook in entry.get("hooks", []) if isinstance(hook, dict) and hook.get("command") == GUARD]
    if not wired:
        found.append(f".claude/settings.json does not run `{GUARD}` before every tool")
    elif any(hook.get("onFailure") != "block" for hook in wired):
        found.append('.claude/settings.json wires the guard without "onFailure": "block": a guard that hangs or '
                     "dies would let the call through")
    return found


def probe(repo: Path, session_id: str | None) -> str | None:
    """Run the wired guard command on a forbidden call, as Claude Code would; None when it answers deny."""
    event = {"session_id": session_id, "hook_event_name": "PreToolUse", "cwd": str(repo), "tool_name": "Bash",
             "tool_input": {"command": FORBIDDEN}, "tool_use_id": "canary"}
    proc = subprocess.Popen(["sh", "-c", GUARD], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True,
                            env={**os.environ, "CLAUDE_PROJECT_DIR": str(repo)})
    try:
        out, err = proc.communicate(json.dumps(event), timeout=PROBE_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)  # the launcher; its `timeout` (a group of its own) ends the rest
        proc.wait()
        return f"the guard did not answer within {PROBE_TIMEOUT_S} s"
    try:
        decision = json.loads(out)["hookSpecificOutput"]["permissionDecision"]
    except (ValueError, KeyError, TypeError):
        decision = None
    if proc.returncode == 0 and decision == "deny":
        return None
    said = (err.strip() or out.strip())[-300:]
    return f"the guard answered `{FORBIDDEN}` with exit {proc.returncode} and {decision or 'no decision'} ({said})"


def refusal(repo: Path, command: str) -> str:
    """What the guard answers to a forbidden Bash call: the reason a live guard puts in its tool result."""
    from eval import config
    from hooks.guard import policy

    decision = policy.decide("Bash", {"command": command}, repo, config.load(repo / "program.md"), repo)
    if decision.decision != "deny":
        raise ValueError(f"the guard allows `{command}`: it cannot serve as a canary")
    return decision.reason


def problems(repo: Path, session_id: str | None = None) -> list[str]:
    """What keeps the guard from deciding this session's tool calls; [] when nothing was found."""
    found = wiring_problems(repo)
    failed = probe(repo, session_id)
    return found + ([failed] if failed else [])
