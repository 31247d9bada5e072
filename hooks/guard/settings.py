"""The allow list of .claude/settings.json, made from the guard's tables.

Claude Code pre-approves the calls these rules match (in a trusted workspace) and still
runs the PreToolUse hook on every call: the hook, not this list, is the gate. The list is
derived, never hand-kept: `python -m hooks.guard.settings` rewrites it, and a test fails
when the file and the tables disagree.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from hooks.guard.commands import COMMANDS, IMPLICIT_CWD, Form
from hooks.guard.git import GIT_READS
from hooks.guard.policy import EDITABLE, PERMITTED, RUN_FORMS, SUBAGENTS

SETTINGS = Path(__file__).resolve().parents[2] / ".claude" / "settings.json"
BARE = IMPLICIT_CWD | {"pwd", "date"}  # commands that mean something with no argument at all
SPECIAL = {"sed": ("sed -n *",), "xargs": ()}  # only these forms (xargs: none, the hook decides what it runs)


def bash_rules(name: str) -> list[str]:
    if name == "git":
        return [rule for sub in sorted(GIT_READS) for rule in (f"git {sub}", f"git {sub} *")]
    if name in SPECIAL:
        return list(SPECIAL[name])
    rule = COMMANDS[name]
    takes_operands = not (isinstance(rule, Form) and rule.max_operands == 0)
    return [name] * (name in BARE) + [f"{name} *"] * takes_operands


def allow_rules() -> list[str]:
    return [
        *(f"Edit({name})" for name in EDITABLE),
        "Read",
        *(f"Bash({form})" for form in RUN_FORMS),
        *(f"Bash({rule})" for name in COMMANDS for rule in bash_rules(name)),
        *SUBAGENTS,
        *PERMITTED,
    ]


def render(settings: dict) -> str:
    return json.dumps({**settings, "permissions": {**settings["permissions"], "allow": allow_rules()}}, indent=2) + "\n"


def main() -> int:
    SETTINGS.write_text(render(json.loads(SETTINGS.read_text())))
    print(f"wrote {len(allow_rules())} allow rules to {SETTINGS}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
