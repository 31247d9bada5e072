"""SessionEnd: keep the session's transcript in sessions/<session_id>.jsonl.

Claude Code keeps transcripts under the user's config directory, outside the repository;
a copy beside the research is what `./run.sh replay` and CI replay later. The copy is
atomic (a temporary file renamed into place), so a reader never sees half a transcript.
It never raises: a missing transcript is ignored, a failed copy is reported on stderr.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

from eval.record.runs import atomic_write

REPO = Path(__file__).resolve().parent.parent
SESSIONS = "sessions"
UNSAFE = re.compile(r"[^A-Za-z0-9._-]")


def save(raw: str, repo: Path) -> Path | None:
    """Copy the transcript named in the hook input; return where it went (None if there was none)."""
    event = json.loads(raw)
    source = Path(event.get("transcript_path") or "")
    if not source.name or not source.is_file():
        return None
    name = UNSAFE.sub("_", str(event.get("session_id") or source.stem)).lstrip(".") or "session"
    target = repo / SESSIONS / f"{name}.jsonl"
    target.parent.mkdir(exist_ok=True)
    atomic_write(target, source.read_bytes())
    return target


def main() -> int:
    try:
        save(sys.stdin.read(), REPO)
    except Exception as e:
        print(f"session_end: the transcript was not copied into {SESSIONS}/: {type(e).__name__}: {e}", file=sys.stderr)
        return 1
    return 0
