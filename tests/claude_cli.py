"""Drive the real Claude Code CLI (bundled in the claude-agent-sdk wheel) headless in tests.

The CLI talks only to a loopback MessagesServer (loop/messages_server.py), runs in a
throwaway HOME so no user config, login or history leaks in or out, and gets the
project's settings file passed explicitly: headless runs ignore the allow rules of an
untrusted project otherwise. Its `stream-json` output says, per tool call, how the
permission system decided (`tool_result_meta`) and, at the end, what was denied.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from loop.claude_cli import cli_env, cli_path
from replay.replay import HARNESS

MAIN_REPO = Path(__file__).resolve().parents[1]
# What a harness checkout is made of; the virtual environment, data and run outputs stay out.
REPO_ENTRIES = (*HARNESS, "program.md", "scratchpad.md", "train.py")
# git ignores `.venv/` only as a directory; the copy's `.venv` is a symlink, so say it again.
LOCAL_EXCLUDES = ".venv\nruns/\ndata/\n__pycache__/\n"


@dataclass
class CompletedRun:
    """One finished CLI run: its parsed stream-json events and where it left its transcript."""

    returncode: int
    events: list[dict[str, Any]]
    stderr: str
    duration_s: float
    home: Path
    session_id: str | None = field(default=None)

    @property
    def result(self) -> dict[str, Any]:
        """The final `result` event ({} if the CLI died before printing one)."""
        return next((e for e in reversed(self.events) if e.get("type") == "result"), {})

    @property
    def permission_denials(self) -> list[dict[str, Any]]:
        """`[{tool_name, tool_use_id, tool_input}]` for every call the permission system refused."""
        return list(self.result.get("permission_denials", []))

    @property
    def decisions(self) -> dict[str, dict[str, Any]]:
        """tool_use_id -> `{decision: accept|reject, source: hook|config, reason_type}`."""
        found: dict[str, dict[str, Any]] = {}
        for event in self.events:
            for meta in event.get("tool_result_meta") or []:
                if "permission_decision" in meta:
                    found[meta["id"]] = meta["permission_decision"]
        return found

    @property
    def transcript_path(self) -> Path | None:
        """The session transcript the CLI wrote under the throwaway config dir, if any."""
        if self.session_id is None:
            return None
        return next((self.home / ".claude" / "projects").glob(f"*/{self.session_id}.jsonl"), None)


def run_claude(
    repo: Path,
    prompt: str,
    server_url: str,
    extra_args: Sequence[str] = (),
    timeout: float = 120,
    home: Path | None = None,
) -> CompletedRun:
    """Run `claude -p PROMPT` in `repo` against `server_url` and parse what it prints.

    `home` defaults to a fresh temporary directory; pass one to keep transcripts together.
    """
    home = home or Path(tempfile.mkdtemp(prefix="claude-home-"))
    command = [
        str(cli_path()),
        "-p",
        prompt,
        "--output-format",
        "stream-json",
        "--verbose",
        "--settings",
        str(repo / ".claude" / "settings.json"),
        *extra_args,
    ]
    started = time.monotonic()
    proc = subprocess.run(
        command,
        cwd=repo,
        env=cli_env(server_url, home),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    events = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
    session_id = next((e["session_id"] for e in events if "session_id" in e), None)
    return CompletedRun(proc.returncode, events, proc.stderr, time.monotonic() - started, home, session_id)


def trust(home: Path, repo: Path) -> None:
    """Accept the workspace-trust dialog for `repo`, as a user who runs `claude` there once does: then the
    allow rules of .claude/settings.json apply headless too (the worst case when the guard is not there)."""
    config = home / ".claude" / ".claude.json"
    config.parent.mkdir(parents=True, exist_ok=True)
    config.write_text(json.dumps({"projects": {str(repo): {"hasTrustDialogAccepted": True}}}))


def git(repo: Path, *args: str) -> str:
    """Run git in `repo` with a local identity; return stdout (raises on failure)."""
    identity = ["-c", "user.name=harness-test", "-c", "user.email=harness-test@example.invalid"]
    proc = subprocess.run(
        ["git", *identity, "-c", "commit.gpgsign=false", *args],
        cwd=repo,
        capture_output=True,
        text=True,
        check=True,
    )
    return proc.stdout


def make_repo(tmp_path: Path, source: Path = MAIN_REPO) -> Path:
    """A committed scratch copy of the harness, as the CLI would find a user's checkout.

    The working tree is copied (tracked or not, since the harness is being written right
    now); `.venv` is a symlink to the real one because the hook launcher runs
    `$REPO/.venv/bin/python`.
    """
    repo = tmp_path / "repo"
    repo.mkdir()
    for name in REPO_ENTRIES:
        entry = source / name
        if entry.is_dir():
            ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
            shutil.copytree(entry, repo / name, symlinks=True, ignore=ignore)
        elif entry.is_file():
            shutil.copy2(entry, repo / name)
    (repo / ".venv").symlink_to(source / ".venv")
    git(repo, "init", "-q", "-b", "main")
    (repo / ".git" / "info" / "exclude").write_text(LOCAL_EXCLUDES)
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "harness under test")
    return repo
