"""Path rules: what the agent may read or list, and the arguments bash would make of a word.

Everything resolves the way the OS will (symlinks, `..`, hard links); the sealed folders
hold what the agent may never read: the held-out splits, git's internals, test-split scores,
the scorer's raw output.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from hooks.guard.shell import Word

TYPE_CHECKING = False  # not typing.TYPE_CHECKING: importing typing costs the hook ~5 ms per call
if TYPE_CHECKING:
    from eval.config import ConfigError, Program

SEALED = ("data", ".git", "runs/confirm", "runs/scorer")  # folders that hold what the agent may not read (see secret())
MAX_MATCHES = 5000  # per call: a slow hook would time out, and a timed-out hook fails open


@dataclass
class Context:
    """One tool call: where it runs, the steering config, and the work its glob expansion has done."""

    repo: Path  # real path of the repository root
    cwd: Path  # real path of the directory the tool runs in
    program: Program | ConfigError  # the error, when program.md cannot be used
    listings: dict[Path, list[str]] = field(default_factory=dict)  # directory listings, memoized
    matches: int = 0  # files matched by globs so far, capped by MAX_MATCHES


class Refused(Exception):
    """A check failed; the message is the reason the agent reads."""


def resolve(ctx: Context, value: str) -> tuple[Path, Path]:
    """Resolve symlinks and `..` the way the OS will; return (path, path relative to the repo)."""
    if not isinstance(value, str) or not value or "\0" in value:
        raise Refused("a file path is required")
    path = Path(os.path.realpath(ctx.cwd / os.path.expanduser(value)))  # the tools expand a leading ~
    if not path.is_relative_to(ctx.repo):
        raise Refused(
            f"`{value}`{resolved(ctx, value, path)} is outside the repository; only files inside {ctx.repo} may be used"
        )
    return path, path.relative_to(ctx.repo)


def resolved(ctx: Context, value: str, path: Path) -> str:
    """Say where a path really points when a symlink took it elsewhere."""
    return "" if Path(os.path.normpath(ctx.cwd / value)) == path else f" (it resolves to {path})"


def secret(rel: Path) -> str | None:
    """Why the agent may not read this repository path, or None (case-blind: macOS disks are)."""
    parts = tuple(p.lower() for p in rel.parts)
    if parts[:1] == (".git",):
        return "read .git through git log/show/diff/status, not directly"
    if parts[:2] == ("runs", "confirm"):
        return "runs/confirm/ holds test-split scores (./run.sh confirm), which the research loop must not see"
    if parts[:2] == ("runs", "scorer"):
        return ("runs/scorer/ holds the scorer's raw output, which saw the validation split; the verdict's reason "
                "and runs/<id>/score.json say what it found")
    if (
        parts[:1] == ("data",)
        and len(parts) > 1
        and not (parts[1].startswith("train") or parts[1:] == ("manifest.json",) or parts[1] == "artifacts")
    ):
        return (
            "data/ holds the held-out validation and test splits, which only the harness reads; "
            "data/train*, data/artifacts/ (built from the training split) and data/manifest.json are readable"
        )
    return None


def readable(ctx: Context, value: str, recursive: bool = False) -> None:
    """Refuse unless reading `value` (a whole tree when recursive) stays inside the repo and off secrets."""
    path, rel = resolve(ctx, value)
    if recursive:
        parts = tuple(p.lower() for p in rel.parts)
        for sealed in SEALED:
            above = tuple(Path(sealed).parts[: len(parts)]) == parts  # the sealed folder or one above it
            if above and (ctx.repo / sealed).exists():
                raise Refused(
                    f"reading `{value}` recursively would reach {sealed}/; name the files or "
                    "folders to search instead (e.g. `grep -rn PATTERN train.py eval hooks`)"
                )
    reason = secret(rel) if recursive or not path.is_dir() else None  # a directory read flat is an error
    if reason is None and path.is_file() and same_file_as_sealed(ctx, path):
        reason = "it is another name (a hard link) for a held-out split"
    if reason:
        raise Refused(f"`{value}`: {reason}")


def same_file_as_sealed(ctx: Context, path: Path) -> bool:
    """A hard link has its own path: compare the file itself with the sealed files under data/."""
    data = ctx.repo / "data"
    try:
        inode = (path.stat().st_dev, path.stat().st_ino)
        sealed = [p for p in data.iterdir() if secret(p.relative_to(ctx.repo)) and p.is_file()]
    except OSError:
        return False
    return any((p.stat().st_dev, p.stat().st_ino) == inode for p in sealed)


def listable(ctx: Context, value: str) -> None:
    resolve(ctx, value)


def expand(ctx: Context, word: Word) -> list[str]:
    """The arguments bash makes of `word`: what its `*`/`?` match, else the word itself.

    Matches are a superset of bash's (any case, dot files included), so every file bash
    could pass is checked whatever the user's shell options.
    """
    if not word.wild:
        return [word.text]
    found, start = [Path("/") if word.text.startswith("/") else ctx.cwd], 0
    for part in word.text.split("/"):
        span, start = range(start, start + len(part)), start + len(part) + 1
        if not any(i in word.wild for i in span):
            found = [p / part for p in found] if part else found
            continue
        rx = re.compile(
            "".join(
                ("." if c == "?" else ".*") if i in word.wild else re.escape(c) for i, c in zip(span, part, strict=True)
            ),
            re.IGNORECASE | re.DOTALL,
        )
        found = [p / n for p in found for n in listing(ctx, p) if rx.fullmatch(n)]
        ctx.matches += len(found)
        if ctx.matches > MAX_MATCHES:
            raise Refused(f"the file patterns match more than {MAX_MATCHES} files; narrow them")
    prefix = "" if word.text.startswith("/") else str(ctx.cwd) + "/"
    args = [str(p).removeprefix(prefix) for p in found if os.path.lexists(p)]  # like bash: what exists
    if any(a.startswith("-") for a in args):
        raise Refused(f"`{word.text}` matches a file whose name starts with '-' (it would pass as an option)")
    return args or [word.text]


def listing(ctx: Context, directory: Path) -> list[str]:
    if directory not in ctx.listings:
        try:
            ctx.listings[directory] = sorted(os.listdir(directory))
        except OSError:  # not a directory, or unreadable: bash matches nothing there either
            ctx.listings[directory] = []
    return ctx.listings[directory]


def literal(word: Word) -> str:
    """A word whose position must hold one fixed string (a pattern, a value, a script)."""
    if word.wild:
        raise Refused(f"quote `{word.text}`: bash would expand its `*`/`?` into file names")
    return word.text
