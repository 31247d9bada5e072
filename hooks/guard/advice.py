"""What to tell the agent about a command that no table allows: the allowed way to the same result.

The reason is all the agent sees, so it names the exact call that does what the refused one meant
(`python3 -c X` -> `./run.sh python -c X`), or says plainly that the goal itself is not allowed.
A call offered after "instead: " is one the guard allows (tests/test_policy.py follows each one).
"""

from __future__ import annotations

import os
import re

from hooks.guard.commands import FAMILY_REASONS, SANDBOX_VIEW, unknown
from hooks.guard.paths import Context
from hooks.guard.shell import Command, quote

PYTHON = re.compile(r"python(\d+(\.\d+)?)?")  # python, python3, python3.11, by any path (.venv/bin/python)
# A whole line that is Python fed a here-document (bashlex cannot read a quoted delimiter like <<'EOF').
HEREDOC_PYTHON = re.compile(
    r"\s*(?:\S*/)?(python[\d.]*)(?:\s+-)?\s*<<-?\s*(['\"]?)(\w+)\2[ \t]*\n(.*\n)\3\s*", re.DOTALL)
RUNNERS = frozenset({"uv", "poetry", "pdm", "hatch", "pipenv", "conda", "rye"})  # `X run python ...`
EDITABLE_PY = ("train.py",)
SANDBOX = "runs on the host, which is not allowed; ./run.sh python runs it in the training sandbox " + SANDBOX_VIEW
MAX_ADVISED = 4000
PIP_READS = frozenset({"show", "list", "freeze"})  # pip subcommands that only look
GPU_PROBE = "./run.sh python -c 'import torch; print(torch.cuda.is_available() and torch.cuda.get_device_name())'"


def refused(ctx: Context, cmd: Command) -> str:
    """The reason for a command outside the tables, naming the allowed call where one does the same."""
    words = [w.text for w in cmd.words]
    name, base = words[0], os.path.basename(words[0])
    if PYTHON.fullmatch(base):
        return host_python(cmd, words[1:], name)
    if base in RUNNERS and words[1:2] == ["run"]:
        rest = words[2:]
        if rest and PYTHON.fullmatch(os.path.basename(rest[0])):
            return host_python(cmd, rest[1:], f"{base} run {rest[0]}")
        if rest and rest[0].endswith(".py"):
            return host_python(cmd, rest, f"{base} run")
        return f"`{base} run` runs code on the host, which is not allowed; " + FAMILY_REASONS["pip"]
    if base in ("pip", "pip3") and words[1:2] and words[1] in PIP_READS:
        return (f"`{base} {words[1]}` runs on the host; the sandbox's packages: "
                f"instead: `./run.sh python -m pip {' '.join(map(quote, words[1:]))}`")
    if base == "nvidia-smi":
        return f"`nvidia-smi` is not among the allowed commands; the GPU the sandbox sees: instead: `{GPU_PROBE}`"
    if name in ("source", ".") and words[1:2] and words[1].endswith("bin/activate"):
        return ("activating a virtual environment is not needed: ./run.sh sets up and uses .venv itself, and "
                "`./run.sh python ...` runs Python in the training sandbox")
    if name == "cd" and len(words) == 2 and os.path.realpath(ctx.cwd / words[1]) == str(ctx.repo):
        return "the shell is already in the repository root: drop the `cd ... &&` and run the rest"
    if name == "timeout":
        return ("`timeout` is accepted only around ./run.sh (and dropped: the harness enforces the budget); "
                "the read-only commands end on their own: drop it")
    return unknown(name)


def unread(command: str) -> str | None:
    """Advice for a line the shell reader refused as a whole, where it is Python on a here-document."""
    found = HEREDOC_PYTHON.fullmatch(command)
    if found is None or len(found[4]) >= MAX_ADVISED:
        return None
    return (f"`{found[1]}` with a here-document {SANDBOX}; pass the script as one argument instead: "
            f"`./run.sh python -c {quote(found[4])}`")


def host_python(cmd: Command, args: list[str], spelled: str) -> str:
    """Host Python, pointed to `./run.sh python` with the same arguments where that can do the same."""
    if args[:2] == ["-m", "pip"] or args[:2] == ["-m", "venv"]:
        return f"`{spelled} {' '.join(args[:2])}`: " + FAMILY_REASONS["pip"]
    if cmd.heredoc is not None and args in ([], ["-"]) and len(cmd.heredoc) < MAX_ADVISED:
        return (f"`{spelled}` with a here-document {SANDBOX}; pass the script as one argument instead: "
                f"`./run.sh python -c {quote(cmd.heredoc)}`")
    if any("here-document" in p for p in cmd.problems):
        return (f"`{spelled}` with a here-document {SANDBOX}: pass the script as one argument, "
                "`./run.sh python -c '...'` (here-documents are not allowed)")
    if cmd.joined == "|":
        return (f"`{spelled}` reading a pipe {SANDBOX}; the sandboxed script reads no pipe: open the file in it, "
                "`./run.sh python -c '...'`")
    if not args or args[0] not in ("-c", "-m") and args[0] not in EDITABLE_PY:
        what = f"`{args[0]}` is not a file you edit: read it with cat, or" if args and args[0].endswith(".py") \
            else "give it"
        return (f"`{spelled}` {SANDBOX}; {what} `./run.sh python -c CODE`, `./run.sh python -m MODULE` "
                "or `./run.sh python train.py`")
    advised = "./run.sh python " + " ".join(map(quote, args))
    if len(advised) > MAX_ADVISED or "`" in advised or cmd.problems:  # $X, `...`: the advice would differ
        return f"`{spelled}` {SANDBOX}: `./run.sh python {args[0]} ...` with the same arguments"
    return f"`{spelled}` {SANDBOX}; instead: `{advised}`"
