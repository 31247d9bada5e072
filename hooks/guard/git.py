"""git for the agent: the read-only subcommands, with every option that could write, run or leave refused.

git's own option space is too large for an allowlist, so two tables say what matters: the
options whose value names a file git reads (checked by the path rules, like any file the agent
reads) and the options refused outright. Both are matched the way git matches them: git takes a
unique prefix of a long option (`--exclude-f` is `--exclude-from`), a long option's value in the
same word or the next one, and a short option's value in the rest of its cluster (`-ciX FILE`).
Any word that git could read as one of these options is checked as that option.
"""

from __future__ import annotations

import os
from pathlib import Path

from hooks.guard.options import option_table
from hooks.guard.paths import Context, Refused, literal, readable
from hooks.guard.shell import Word


def words_set(text: str) -> frozenset[str]:
    return frozenset(text.split())


GIT_READS = words_set("log show diff status branch rev-parse ls-files blame")
GIT_NETWORK = words_set("clone fetch pull push remote ls-remote submodule send-email request-pull archive daemon")
GIT_GLOBAL = words_set("--no-pager -P")
# Per subcommand, every option whose value names a file git reads (git help of each, git 2.39), in the
# option-table syntax of hooks/guard/commands.py. -L<range>:<file> of log and blame reads committed
# content only, like `git show REV:FILE`.
GIT_FILES = {
    "ls-files": "-X|--exclude-from=FILE",
    "blame": "-S|--ignore-revs-file=FILE --contents=FILE",
    "diff": "-O=FILE",
    "log": "-O=FILE",
    "show": "-O=FILE",
}
# Refused in any spelling: options that write files, run programs or leave the repository ("*": every
# subcommand), and the two file readers not worth supporting.
GIT_REFUSED = {
    "*": dict.fromkeys(
        words_set(
            "--output --ext-diff --textconv --no-index --exec --open-files-in-pager --upload-pack --git-dir "
            "--work-tree --config"
        ),
        "it writes files, runs programs or leaves the repository",
    ),
    "ls-files": {"--exclude-per-directory": "it reads the file it names in every directory; use -X FILE"},
    "rev-parse": {"--resolve-git-dir": "it reads the path it names, wherever it is"},
}
# Whole options that are also prefixes of a name above: git takes an exact name as itself.
GIT_EXACT = words_set("--text --exclude --ignore-rev")
GIT_BRANCH_LIST = words_set(
    "-a -r -v -vv -l --all --remotes --verbose --list --show-current --no-color --color "
    "--contains --no-contains --merged --no-merged --points-at --sort --format "
    "--omit-empty --ignore-case"
)
GIT_BRANCH_PATTERNS = words_set("-l --list --contains --no-contains --merged --no-merged --points-at")
GIT_HELP = "git log, show, diff, status, branch (listing), rev-parse, ls-files and blame"


def git(ctx: Context, words: list[Word]) -> None:
    args = [literal(w) for w in words]
    while args and (args[0] in GIT_GLOBAL or args[0] == "-C" and len(args) > 1 and at_root(ctx, args[1])):
        del args[: 2 if args[0] == "-C" else 1]
    if not args or args[0].startswith("-"):
        raise Refused(
            f"git options before the subcommand (-c, --git-dir, --exec-path...) are not allowed, only --no-pager "
            f"and -C with the repository root ({ctx.repo}); use {GIT_HELP}"
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
    check_options(ctx, sub, options)
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


def check_options(ctx: Context, sub: str, options: list[str]) -> None:
    """Refuse what GIT_REFUSED names; check the file of each GIT_FILES option with the path rules."""
    refused = {**GIT_REFUSED["*"], **GIT_REFUSED.get(sub, {})}
    files = option_table(GIT_FILES.get(sub, ""))
    for i, word in enumerate(options):
        following = options[i + 1] if i + 1 < len(options) else None
        if word.startswith("--"):
            key, eq, value = word.partition("=")
            if key in GIT_EXACT:
                continue
            for name, why in refused.items():
                if name.startswith(key) or key.startswith(name):  # an abbreviation, or a longer spelling
                    raise Refused(f"git {sub} {key} is not allowed: {why}")
            for name in (n for n in files if n.startswith("--") and n.startswith(key)):
                git_file(ctx, sub, name, value if eq else following)
        elif word.startswith("-"):
            for j, c in enumerate(word[1:], 1):
                if "-" + c in files:
                    git_file(ctx, sub, "-" + c, word[j + 1 :] or following)


def at_root(ctx: Context, path: str) -> bool:
    """`git -C PATH` with PATH the repository root: git then runs exactly as it does without it."""
    return os.path.realpath(ctx.cwd / path) == str(ctx.repo)


def git_file(ctx: Context, sub: str, option: str, value: str | None) -> None:
    if not value:
        raise Refused(f"git {sub} {option} needs the file it reads")
    try:
        readable(ctx, value)
    except Refused as e:
        raise Refused(f"git {sub} {option} reads the file it names: {e}") from None


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
