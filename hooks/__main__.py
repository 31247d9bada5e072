"""`python -m hooks EVENT`: the one entry point hooks/launch runs for every Claude Code hook and the status line."""

from __future__ import annotations

import importlib
import sys

# Event name -> module with main() -> exit code. Imported on demand: each event pays only for its own imports.
EVENTS = {
    "pre_tool_use": "hooks.pre_tool_use",
    "post_tool_use": "hooks.post_tool_use",
    "stop": "hooks.stop",
    "session_start": "hooks.session_start",
    "session_end": "hooks.session_end",
    "status_line": "hooks.status_line",
}


def main(argv: list[str]) -> int:
    if len(argv) != 1 or argv[0] not in EVENTS:
        print(f"usage: python -m hooks {{{'|'.join(EVENTS)}}}", file=sys.stderr)
        return 2
    try:
        return importlib.import_module(EVENTS[argv[0]]).main()
    except BaseException as e:  # last resort: exit 2 is the one failure Claude Code treats as blocking
        print(f"hook {argv[0]} failed: {type(e).__name__}: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
