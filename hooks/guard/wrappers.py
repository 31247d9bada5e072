"""The harmless wrappers agents put around `./run.sh`, peeled off down to the canonical call.

Agents launch an experiment the way they launch anything: `cd <repo> && ./run.sh`, `./run.sh 2>&1 |
tail -50`, `timeout 600 ./run.sh`, `source .venv/bin/activate && ./run.sh`. Each wrapper here changes
nothing the harness cares about: the shell is already in the repository root, ./run.sh sets up and uses
.venv itself, its output is a few KB (so a tail or head of it loses nothing that runs/<id>/ does not
keep), and the harness enforces its own time limit. The policy rewrites such a line to the bare call
(PreToolUse `updatedInput`) and says what it dropped; anything else around a run keeps it refused.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

from hooks.guard.paths import Context
from hooks.guard.shell import Command, Line

RUN = "./run.sh"
DURATION = re.compile(r"\d+(\.\d+)?[smhd]?")  # timeout's DURATION
TRIMS = ("tail", "head")  # `| tail -N`, `| head -N`: ./run.sh prints a few KB, the run keeps the rest
PREFIX_JOINS = ("&&", ";")
VENV_ACTIVATE = ".venv/bin/activate"


@dataclass(frozen=True)
class Peeled:
    run: Command  # the ./run.sh call alone: its own words, no redirection
    dropped: tuple[str, ...]  # what was taken off, as written


def texts(cmd: Command) -> list[str]:
    return [w.text for w in cmd.words]


def plain(cmd: Command) -> bool:
    """No glob, no redirection, nothing the shell reader objected to."""
    return not (cmd.problems or cmd.inputs or cmd.redirects or any(w.wild for w in cmd.words))


def at(ctx: Context, value: str) -> Path:
    """Where `value` points from the shell's directory, `..` resolved but not symlinks (.venv is one)."""
    return Path(os.path.normpath(ctx.cwd / value))


def prefix(ctx: Context, cmd: Command) -> str | None:
    """`cd <repo root>` or activating the project's own .venv, as written; None for anything else."""
    words = texts(cmd)
    if not plain(cmd) or len(words) != 2:
        return None
    if words[0] == "cd" and os.path.realpath(at(ctx, words[1])) == str(ctx.repo):
        return " ".join(words)
    if words[0] in ("source", ".") and at(ctx, words[1]) == ctx.repo / VENV_ACTIVATE:
        return " ".join(words)
    return None


def trim(cmd: Command) -> str | None:
    """`tail -N`, `tail -n N`, `head -N`, `head -n N` reading the pipe, as written; None otherwise."""
    words = texts(cmd)
    if not plain(cmd) or words[:1] not in ([t] for t in TRIMS):
        return None
    count = words[1:]
    if count[:1] == ["-n"]:
        count = count[1:]
    elif count[:1] and count[0][:1] == "-":
        count = [count[0][1:]]
    return " ".join(words) if len(count) == 1 and count[0].isdigit() else None


def peel(line: Line, ctx: Context) -> Peeled | None:
    """The ./run.sh call inside only harmless wrappers, or None when anything else is around it."""
    cmds, dropped = list(line.commands), []
    while len(cmds) > 1 and cmds[1].joined in PREFIX_JOINS and (text := prefix(ctx, cmds[0])):
        dropped.append(f"{text} {cmds[1].joined}")
        cmds.pop(0)
    if len(cmds) == 2 and cmds[1].joined == "|" and (text := trim(cmds[1])):
        dropped.append(f"| {text}")
        cmds.pop()
    if len(cmds) != 1:
        return None
    run = cmds[0]
    if run.problems or run.inputs or any(r != "2>&1" for r in run.redirects):
        return None
    dropped += list(run.redirects)
    words = list(run.words)
    if len(words) > 2 and words[0].text == "timeout" and DURATION.fullmatch(words[1].text):
        dropped.append(f"timeout {words[1].text} (the harness enforces the budget itself)")
        words = words[2:]
    if words[0].text != RUN or not dropped:
        return None
    return Peeled(Command(tuple(words)), tuple(dropped))
