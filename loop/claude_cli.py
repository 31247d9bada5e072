"""Run the real Claude Code CLI (bundled in the claude-agent-sdk wheel) headless against a local server.

Replays and the demo point the CLI at a loopback MessagesServer, in a throwaway HOME so no
user config, login or history leaks in or out, and pass the project's settings file
explicitly: headless runs ignore the allow rules of an untrusted project otherwise.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path


def cli_path() -> Path:
    """The `claude` binary inside the installed claude_agent_sdk (found without importing it)."""
    spec = importlib.util.find_spec("claude_agent_sdk")
    if spec is None or spec.origin is None:
        raise FileNotFoundError("claude_agent_sdk is not installed (./run.sh sets up .venv with it)")
    path = Path(spec.origin).parent / "_bundled" / "claude"
    if not path.is_file():
        raise FileNotFoundError(f"no bundled Claude Code CLI at {path}")
    return path


def cli_env(server_url: str, home: Path, extra: dict[str, str] | None = None) -> dict[str, str]:
    """A minimal environment: the local server, a dummy key, no non-essential traffic."""
    (home / "tmp").mkdir(parents=True, exist_ok=True)
    return {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(home),
        "CLAUDE_CONFIG_DIR": str(home / ".claude"),
        "TMPDIR": str(home / "tmp"),
        "ANTHROPIC_BASE_URL": server_url,
        "ANTHROPIC_API_KEY": "replay-no-key",
        "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
        "DISABLE_TELEMETRY": "1",
        "DISABLE_AUTOUPDATER": "1",
        **(extra or {}),
    }


@dataclass
class Session:
    """One finished headless CLI run and where it left its transcript."""

    returncode: int
    stderr: str
    session_id: str | None
    transcript: Path | None


def run(repo: Path, prompt: str, server_url: str, home: Path, extra_env: dict[str, str] | None = None,
        timeout: float = 600) -> Session:
    """`claude -p PROMPT` in `repo` with the project's settings; stream-json names the session."""
    command = [str(cli_path()), "-p", prompt, "--output-format", "stream-json", "--verbose",
               "--settings", str(repo / ".claude" / "settings.json")]
    proc = subprocess.run(command, cwd=repo, env=cli_env(server_url, home, extra_env), stdin=subprocess.DEVNULL,
                          capture_output=True, text=True, timeout=timeout)
    events = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
    session_id = next((e["session_id"] for e in events if "session_id" in e), None)
    found = next((home / ".claude" / "projects").glob(f"*/{session_id}.jsonl"), None) if session_id else None
    return Session(proc.returncode, proc.stderr, session_id, found)
