"""scratchpad.md, the agent's working memory, as the harness reads it."""

from __future__ import annotations

import re
from pathlib import Path

SCRATCHPAD = Path("scratchpad.md")
BULLET = re.compile(r"\s*(?:[-*+]|\d+[.)])\s+(\S.*)")


def open_hypotheses(repo: Path) -> list[str]:
    """The non-empty bullets under scratchpad.md's '## Hypotheses': the agent's own untried ideas."""
    try:
        text = (repo / SCRATCHPAD).read_text(encoding="utf-8", errors="replace")
    except OSError:
        return []
    found, inside = [], False
    for line in text.splitlines():
        if line.startswith("## "):
            inside = line[3:].strip().lower() == "hypotheses"
        elif inside and (match := BULLET.match(line)):
            found.append(match.group(1).strip())
    return found
