"""The audit log: every guard decision, one JSON object per line in runs/audit.jsonl."""

from __future__ import annotations

import json
import os
from pathlib import Path

from eval.record.runs import AUDIT as LOG

SUMMARY_KEYS = ("command", "file_path", "url", "query", "prompt")
MAX_SUMMARY = 300


def summary(tool_input: object) -> str:
    """The part of a tool input a reader needs (the command, the path, the URL), truncated."""
    if isinstance(tool_input, dict):
        text = next((v for k in SUMMARY_KEYS if isinstance(v := tool_input.get(k), str)), None)
    else:
        text = None
    text = text if text is not None else json.dumps(tool_input, ensure_ascii=False, default=repr)
    return text if len(text) <= MAX_SUMMARY else text[:MAX_SUMMARY] + "..."


def record(repo: Path, entry: dict) -> None:
    """Append one line with a single write on an O_APPEND file, so parallel hooks never interleave.

    Raises OSError when the log cannot be written; the caller then denies (fail closed).
    """
    path = repo / LOG
    path.parent.mkdir(exist_ok=True)
    line = (json.dumps(entry, ensure_ascii=False, default=repr) + "\n").encode()
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        if os.write(fd, line) != len(line):
            raise OSError(f"short write to {path}")
    finally:
        os.close(fd)
