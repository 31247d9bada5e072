"""The research state at a session's start, kept beside its transcript for replays.

A replay must run today's harness on the research as it stood when the recorded session
began: train.py, program.md (the human's steering, often uncommitted), scratchpad.md, the
ledger (what the verdicts compare against) and a STOP file. A transcript holds none of
that, so SessionStart (on startup only: a resumed or compacted session started earlier)
writes sessions/<session_id>.start.json, and SessionEnd puts the transcript beside it.
"""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

from eval.record.runs import atomic_write

FILES = ("train.py", "program.md", "scratchpad.md", "STOP")
LEDGER = "runs/ledger.jsonl"
SUFFIX = ".start.json"
UNSAFE = re.compile(r"[^A-Za-z0-9._-]")


class NoStartState(FileNotFoundError):
    """No start state for a transcript; the message says where it was looked for."""


def head(repo: Path) -> str | None:
    proc = subprocess.run(["git", "rev-parse", "HEAD"], cwd=repo, capture_output=True, text=True)
    return proc.stdout.strip() if proc.returncode == 0 else None


def snapshot(repo: Path) -> dict:
    """What a replay needs to rebuild the research as it is now."""
    files = {name: (repo / name).read_text(encoding="utf-8") for name in FILES if (repo / name).is_file()}
    ledger = repo / LEDGER
    return {"commit": head(repo), "files": files, "ledger": ledger.read_text() if ledger.is_file() else ""}


def save(repo: Path, event: dict) -> Path | None:
    """At a session's startup, write sessions/<id>.start.json once (atomically); None when not due."""
    session_id = UNSAFE.sub("_", str(event.get("session_id") or "")).lstrip(".")
    if event.get("source", "startup") != "startup" or not session_id:
        return None
    target = repo / "sessions" / f"{session_id}{SUFFIX}"
    if target.exists():
        return None
    target.parent.mkdir(exist_ok=True)
    atomic_write(target, json.dumps({"session_id": session_id, **snapshot(repo)}, indent=1))
    return target


def load(transcript: Path, session_id: str, repo: Path) -> dict:
    """The start state beside the transcript, else in repo/sessions/; NoStartState names both places."""
    places = [transcript.with_name(transcript.name.removesuffix(".jsonl") + SUFFIX),
              repo / "sessions" / f"{UNSAFE.sub('_', session_id)}{SUFFIX}"]
    for place in places:
        if place.is_file():
            state = json.loads(place.read_text())
            if not isinstance(state.get("files"), dict) or "train.py" not in state["files"]:
                raise NoStartState(f"{place}: not a start state (no train.py in 'files')")
            return state
    raise NoStartState(
        "no start state for this session: looked for " + " and ".join(map(str, places)) + ". The SessionStart hook "
        "writes it when a session starts (hooks/start_state.py); a session recorded before that cannot be replayed."
    )
