"""What the agent has written down: the guard refuses a new run until the last verdict is recorded."""

from __future__ import annotations

import re
from pathlib import Path

RUN_DIR = re.compile(r"^r\d{4,}$")


def last_judged(repo: Path) -> str | None:
    """The id of the newest experiment that has a verdict."""
    runs = repo / "runs"
    ids = sorted((p.name for p in runs.iterdir() if RUN_DIR.match(p.name)), reverse=True) if runs.is_dir() else []
    return next((i for i in ids if (runs / i / "verdict.json").exists()), None)


def unrecorded(repo: Path) -> str | None:
    """The id of the last verdict when scratchpad.md does not mention it yet, else None."""
    run_id = last_judged(repo)
    if run_id is None:
        return None
    try:
        notes = (repo / "scratchpad.md").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return run_id
    return None if re.search(rf"\b{run_id}\b", notes) else run_id
