"""The Claude Code status line (settings.json statusLine -> hooks/launch status_line): what it shows, that it
fails to an empty line and never hangs, and that the pinned interactive CLI shows it."""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from eval.record.runs import RUNNING
from loop.claude_cli import cli_env, cli_path
from tests.night import synthetic_night

SHOWN_WITHIN_S = 90  # the interactive CLI's start-up on a loaded machine
KEY = "sk-ant-status-line-test-0123456789"


def status_line(repo: Path, session: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([str(repo / "hooks" / "launch"), "status_line"], input=json.dumps(session or {}),
                          capture_output=True, text=True, timeout=60)


def announce(repo: Path, pid: int) -> None:
    (repo / RUNNING).parent.mkdir(exist_ok=True)
    (repo / RUNNING).write_text(json.dumps({"id": "r0004-s2", "seed": 2, "of": 3, "started": time.time(),
                                            "budget_seconds": 120, "pid": pid}))


def test_idle_running_and_a_killed_run(repo):
    rows = synthetic_night(repo, 3, seed=2)
    best = [r for r in rows if r["status"] == "keep"][-1]
    idle = status_line(repo, {"cost": {"total_cost_usd": 1.5}})
    kept = sum(r["status"] == "keep" for r in rows)
    assert idle.returncode == 0
    assert idle.stdout == (f"autoresearch: no experiment running | best val_bpb {best['mean']:.6f} ({best['id']}) | "
                           f"3/100 experiments, {kept} kept | $1.50\n")
    with subprocess.Popen(["sleep", "60"]) as harness:  # stands in for the ./run.sh that wrote runs/running.json
        announce(repo, harness.pid)
        running = status_line(repo).stdout
        harness.kill()
    assert running.startswith("autoresearch: r0004-s2 seed 2/3, 1") and " s left | best val_bpb" in running
    assert status_line(repo).stdout.startswith("autoresearch: no experiment running")  # its writer is gone


def test_it_fails_to_an_empty_line_and_never_hangs(repo):
    program = repo / "program.md"
    program.write_text(program.read_text().replace("direction: minimize", "direction: sideways"))
    broken = status_line(repo)
    assert (broken.returncode, broken.stdout) == (0, "\n")
    with subprocess.Popen([str(repo / "hooks" / "launch"), "status_line"], stdin=subprocess.PIPE,
                          stdout=subprocess.PIPE, text=True) as held:  # stdin never closed: read() would block
        held.wait(timeout=60)  # hooks/launch's own limit ends it
        assert held.stdout.read() == ""
        held.stdin.close()


@pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux runs the interactive CLI (.ci/run installs it)")
def test_the_pinned_interactive_cli_shows_it(repo, tmp_path):
    """Claude Code 2.1.332 in a terminal: the project's statusLine runs through $CLAUDE_PROJECT_DIR/hooks/launch
    and refreshes by itself (refreshInterval) while an experiment runs and no message arrives."""
    home = tmp_path / "home"
    env = cli_env("http://127.0.0.1:9", home, {"ANTHROPIC_API_KEY": KEY, "TERM": "xterm-256color"})
    config = {"hasCompletedOnboarding": True, "customApiKeyResponses": {"approved": [KEY[-20:]], "rejected": []},
              "projects": {str(repo): {"hasTrustDialogAccepted": True}}}
    for where in (home, home / ".claude"):
        where.mkdir(parents=True, exist_ok=True)
        (where / ".claude.json").write_text(json.dumps(config))
    name = f"status-line-{tmp_path.name}"
    command = " ".join(f"{k}='{v}'" for k, v in env.items())
    subprocess.run(["tmux", "new-session", "-d", "-s", name, "-x", "220", "-y", "40", "-c", str(repo),
                    f"env -i {command} {cli_path()}"], check=True)
    try:
        assert "autoresearch: no experiment running" in screen(name, "autoresearch: ")
        with subprocess.Popen(["sleep", "120"]) as harness:
            announce(repo, harness.pid)
            assert "autoresearch: r0004-s2 seed 2/3" in screen(name, "r0004-s2")
            harness.kill()
    finally:
        subprocess.run(["tmux", "kill-session", "-t", name], capture_output=True)


def screen(session: str, wanted: str) -> str:
    """The tmux pane once it shows `wanted` (or when the wait is over)."""
    deadline = time.monotonic() + SHOWN_WITHIN_S
    while True:
        text = subprocess.run(["tmux", "capture-pane", "-t", session, "-p"], capture_output=True, text=True).stdout
        if wanted in text or time.monotonic() > deadline:
            return text
        time.sleep(1)
