"""git for the agent: the read-only subcommands, with every option that could write, run or leave refused."""

from __future__ import annotations

import os
from pathlib import Path

from hooks.guard.paths import Context, Refused, literal, readable
from hooks.guard.shell import Word


def words_set(text: str) -> frozenset[str]:
    return frozenset(text.split())


GIT_READS = words_set("log show diff status branch rev-parse ls-files blame")
GIT_NETWORK = words_set("clone fetch pull push remote ls-remote submodule send-email request-pull archive daemon")
GIT_GLOBAL = words_set("--no-pager -P")
# Options that write files, run programs, read files by name or leave the repository. git
# accepts abbreviations (`--out` for `--output`), so any prefix of these is refused as well,
# except the complete options in GIT_EXACT.
GIT_DENIED = words_set(
    "--output --ext-diff --textconv --no-index --contents --ignore-revs-file --exec --open-files-in-pager "
    "--upload-pack --git-dir --work-tree --config"
)
GIT_EXACT = words_set("--text")
# Short options that read a file named in their value: blame -S <revs-file>, diff/log -O<orderfile>.
GIT_FILE_FLAGS = {"blame": "S", "diff": "O", "log": "O", "show": "O"}
GIT_BRANCH_LIST = words_set(
    "-a -r -v -vv -l --all --remotes --verbose --list --show-current --no-color --color "
    "--contains --no-contains --merged --no-merged --points-at --sort --format "
    "--omit-empty --ignore-case"
)
GIT_BRANCH_PATTERNS = words_set("-l --list --contains --no-contains --merged --no-merged --points-at")
GIT_HELP = "git log, show, diff, status, branch (listing), rev-parse, ls-files and blame"


def git(ctx: Context, words: list[Word]) -> None:
    args = [literal(w) for w in words]
    while args and args[0] in GIT_GLOBAL:
        args.pop(0)
    if not args or args[0].startswith("-"):
        raise Refused(
            f"git options before the subcommand (-c, -C, --git-dir, --exec-path...) are not allowed, "
            f"only --no-pager; use {GIT_HELP}"
        )
    sub, rest = args[0], args[1:]
    if sub in GIT_NETWORK:
        raise Refused(f"git {sub} talks to other repositories; the network is closed to the agent")
    if sub not in GIT_READS:
        raise Refused(
            f"git {sub} is not allowed: git is read-only for the agent ({GIT_HELP}); "
            "the harness commits kept experiments and restores train.py itself"
        )
    options = rest[: rest.index("--")] if "--" in rest else rest
    for option in (o.partition("=")[0] for o in options if o.startswith("--")):
        if option not in GIT_EXACT and any(d.startswith(option) or option.startswith(d) for d in GIT_DENIED):
            raise Refused(f"git {sub} {option} is not allowed: it writes files, runs programs or leaves the repository")
    reader = GIT_FILE_FLAGS.get(sub)
    if reader and any(o.startswith("-") and not o.startswith("--") and reader in o[1:] for o in options):
        raise Refused(f"git {sub} -{reader} reads a file named in its value; it is not allowed")
    for operand in (a for a in rest if not a.startswith("-")):
        git_operand(ctx, sub, operand)
    if sub == "branch":
        flags = {o.partition("=")[0] for o in options if o.startswith("-")}
        named = any(not o.startswith("-") for o in options)  # a name creates a branch unless listing
        if flags - GIT_BRANCH_LIST or (named and flags.isdisjoint(GIT_BRANCH_PATTERNS)):
            raise Refused(
                "git branch may only list branches (-a, -r, -v, --list, --show-current...); "
                "the harness creates and moves branches"
            )


def git_operand(ctx: Context, sub: str, operand: str) -> None:
    """A revision passes; a path must be readable. A path outside the work tree (even /dev/null)
    would turn `git diff` into `git diff --no-index`, which prints any file, so it is refused."""
    spec = operand.partition(":")[2] if ":" in operand and not operand.startswith(("/", ".")) else operand
    if not spec or (spec == operand and not looks_like_path(ctx, operand)):
        return
    if os.path.isabs(spec) or ".." in Path(spec).parts:
        path = Path(os.path.normpath(spec if os.path.isabs(spec) else ctx.cwd / spec))
        if not path.is_relative_to(ctx.repo):
            raise Refused(f"git {sub} `{operand}`: paths outside the repository are not allowed")
    readable(ctx, spec)  # inside the repo git only shows tracked content; a sealed name is refused anyway


def looks_like_path(ctx: Context, operand: str) -> bool:
    return "/" in operand or os.path.lexists(ctx.cwd / operand)
