"""The research state at a session's start, kept beside its transcript for replays.

A replay must run today's harness on the research as it stood when the recorded session
began: train.py, program.md (the human's steering, often uncommitted), scratchpad.md, the
project's other files that program.md names (task.editable, task.code), the ledger (what the
verdicts compare against) and a STOP file. A transcript holds none of
that, so SessionStart (on startup only: a resumed or compacted session started earlier)
writes sessions/<session_id>.start.json, and SessionEnd puts the transcript beside it.
"""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path, PurePosixPath

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


def project_files(repo: Path, program_text: str) -> list[str]:
    """The files program.md's task.editable and task.code name (folders walked), relative; none while it is broken."""
    from eval.config import ConfigError, parse

    try:
        task = parse(program_text).task
    except ConfigError:
        return []
    found = []
    for rel in (*task.editable, *task.code):
        root = repo / rel
        files = [root] if root.is_file() else sorted(f for f in root.rglob("*") if f.is_file()) if root.is_dir() else []
        found += [f.relative_to(repo).as_posix() for f in files if "__pycache__" not in f.parts]
    return found


def project_files_named(files: dict) -> list[str]:
    """Which of a start state's file names its own program.md declares (task.editable, task.code): a replay
    writes those, and nothing outside the project (config.project_path refuses the harness's and '..')."""
    from eval.config import ConfigError, parse

    try:
        task = parse(files.get("program.md", "")).task
    except ConfigError:
        return []
    roots = [PurePosixPath(p) for p in (*task.editable, *task.code)]
    return [name for name in files if isinstance(name, str) and ".." not in PurePosixPath(name).parts
            and not name.startswith("/") and any(PurePosixPath(name).is_relative_to(r) for r in roots)]


def snapshot(repo: Path) -> dict:
    """What a replay needs to rebuild the research as it is now."""
    files = {name: (repo / name).read_text(encoding="utf-8") for name in FILES if (repo / name).is_file()}
    for name in project_files(repo, files.get("program.md", "")):
        files[name] = (repo / name).read_text(encoding="utf-8", errors="replace")
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
