"""The tool policy: what Claude Code may do inside the research loop.

Everything is an allowlist kept in tables: TOOLS (one rule per tool), COMMANDS (the shell
commands and their options), GIT_READS. A denial always says why and what to do instead,
because the reason is all the agent sees. decide() does no I/O beyond resolving paths and
expanding globs, so tests can point it at any repository and any program.md.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from hooks import shell
from hooks.shell import Word

TYPE_CHECKING = False  # not typing.TYPE_CHECKING: importing typing costs the hook ~5 ms per call
if TYPE_CHECKING:
    from eval.config import ConfigError, Program

EDITABLE = ("train.py", "scratchpad.md")
SEALED = ("data", ".git", "runs/confirm")  # folders that hold what the agent may not read (see secret())
MAX_COMMAND = 4000
MAX_HYPOTHESIS = 300
MAX_MATCHES = 5000  # per call: a slow hook would time out, and a timed-out hook fails open
BASH_TIMEOUT_CAP_MS = 7_200_000  # = BASH_MAX_TIMEOUT_MS in .claude/settings.json (Claude Code's default is 600 s)
INVISIBLE = re.compile("[\x00-\x08\x0b-\x1f\x7f\u200b-\u200f\u202a-\u202e\u2066-\u2069\ufeff]")


@dataclass(frozen=True)
class Decision:
    decision: str  # "allow" or "deny"
    reason: str
    updated_input: dict | None = None  # replaces the whole tool input when set


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


def allow(reason: str, updated_input: dict | None = None) -> Decision:
    return Decision("allow", reason, updated_input)


def deny(reason: str) -> Decision:
    return Decision("deny", reason)


def decide(
    tool_name: str,
    tool_input: dict,
    repo: Path,
    program: Program | ConfigError,
    cwd: str | Path | None = None,
) -> Decision:
    """Decide one tool call. `program` is program.md parsed, or the ConfigError it raised."""
    rule = TOOLS.get(tool_name)
    if rule is None:
        if tool_name.startswith("mcp__"):
            return deny(f"MCP tools ({tool_name}) are not part of the research loop")
        return deny(f"the tool {tool_name!r} is not part of the research loop; use Bash, Read, Edit or Write")
    if not isinstance(tool_input, dict):
        return deny("the tool input is not a JSON object")
    root = Path(os.path.realpath(repo))
    ctx = Context(root, Path(os.path.realpath(root / (cwd or "."))), program)
    try:
        return rule(tool_input, ctx)
    except Refused as e:
        return deny(str(e))


# ---------------------------------------------------------------- paths


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
    if (
        parts[:1] == ("data",)
        and len(parts) > 1
        and not (parts[1].startswith("train") or parts[1:] == ("manifest.json",))
    ):
        return (
            "data/ holds the held-out validation and test splits, which only the harness reads; "
            "data/train* and data/manifest.json are readable"
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


# ---------------------------------------------------------------- read-only commands


@dataclass(frozen=True)
class Form:
    """A read-only command: the options it may take and what its operands are.

    Long options take a value only as `--name=value`, never as the next word, so a
    misfiled option can never hide an operand from the path checks.
    """

    flags: str = ""  # short options without a value; may be combined (-rn)
    valued: str = ""  # short options with a value: -n 5 or -n5
    long: frozenset[str] = frozenset()  # --name
    long_valued: frozenset[str] = frozenset()  # --name=value
    operands: str = "read"  # read: files it reads; list: names it lists; text: not files
    max_operands: int | None = None
    numeric: bool = False  # accepts -NUM, as in head -20
    recursive: frozenset[str] = frozenset()  # options that make it read whole directories
    trees: bool = False  # it reads whole directories whatever the options
    file_values: frozenset[str] = frozenset()  # options whose value is a file it reads

    def split(self, name: str, words: list[Word]) -> tuple[set[str], list[tuple[str, str]], list[Word]]:
        """Return (options, [(option, value)], operand words), refusing any option not in the form."""
        options, values, operands, i, ended = set(), [], [], 0, False
        while i < len(words):
            word, i = words[i], i + 1
            text = word.text
            if ended or text == "-" or not text.startswith("-"):
                operands.append(word)
                continue
            if text == "--":
                ended = True
                continue
            if word.wild:
                raise Refused(f"{name}: `{text}` has a wildcard where an option goes")
            if text.startswith("--"):
                key, eq, value = text.partition("=")
                if key not in (self.long_valued if eq else self.long):
                    raise Refused(f"{name}: the option {text!r} is not allowed" + HINT)
                options.add(key)
                values += [(key, value)] if eq else []
                continue
            if self.numeric and text.isascii() and text[1:].isdigit():
                continue
            for j, c in enumerate(text[1:], 1):
                if c in self.flags:
                    options.add("-" + c)
                    continue
                if c not in self.valued:
                    raise Refused(f"{name}: the option -{c} is not allowed" + HINT)
                if j + 1 < len(text):
                    value = text[j + 1 :]
                elif i < len(words):
                    value, i = literal(words[i]), i + 1
                else:
                    raise Refused(f"{name}: -{c} needs a value")
                options.add("-" + c)
                values.append(("-" + c, value))
                break
        return options, values, operands

    def check(self, ctx: Context, name: str, words: list[Word], implicit: str | None = None) -> None:
        options, values, operands = self.split(name, words)
        self.check_values(ctx, values)
        self.check_operands(ctx, name, operands, self.trees or bool(self.recursive & options), implicit)

    def check_values(self, ctx: Context, values: list[tuple[str, str]]) -> None:
        for option, value in values:
            if option in self.file_values:
                readable(ctx, value)

    def check_operands(
        self,
        ctx: Context,
        name: str,
        operands: list[Word],
        recursive: bool = False,
        implicit: str | None = None,
    ) -> None:
        """Check each argument bash makes of the operands; `implicit` is what an empty list means."""
        args = [(arg, word.wild) for word in operands for arg in expand(ctx, word)]
        if self.max_operands is not None and len(args) > self.max_operands:
            raise Refused(f"{name} takes at most {self.max_operands} operand(s) here, got {len(args)}")
        for arg, wild in args or ([(implicit, False)] if implicit else []):
            if self.operands == "read":
                readable(ctx, arg, recursive)
            elif self.operands == "list" or wild:  # text that bash expanded into file names
                listable(ctx, arg)


HINT = " (the guard allows a fixed set of read-only options; see the reason's command list)"


def words_set(text: str) -> frozenset[str]:
    return frozenset(text.split())


HEAD = Form(
    flags="qvz",
    valued="nc",
    numeric=True,
    long=words_set("--quiet --silent --verbose --zero-terminated"),
    long_valued=words_set("--lines --bytes"),
)
GREP = Form(
    flags="EFGPiyvwxclLoqsbHhnTZzaIrU",
    valued="efmABC",
    numeric=True,
    recursive=frozenset({"-r", "--recursive"}),
    file_values=frozenset({"-f", "--file"}),
    long=words_set(
        "--extended-regexp --fixed-strings --basic-regexp --perl-regexp --ignore-case --no-ignore-case "
        "--invert-match --word-regexp --line-regexp --count --color --colour --files-without-match "
        "--files-with-matches --only-matching --quiet --silent --no-messages --byte-offset "
        "--with-filename --no-filename --line-number --initial-tab --null --null-data --text "
        "--recursive --line-buffered"
    ),
    long_valued=words_set(
        "--regexp --file --max-count --after-context --before-context --context --color "
        "--colour --include --exclude --exclude-dir --binary-files --label"
    ),
)
SED = Form(
    flags="nErsuz",
    long=words_set("--quiet --silent --regexp-extended --separate --unbuffered --null-data --posix"),
)
FIND_VALUED = words_set(
    "-name -iname -path -ipath -wholename -iwholename -regex -iregex -regextype -type -xtype "
    "-maxdepth -mindepth -size -mtime -mmin -atime -amin -ctime -cmin -used -perm -user "
    "-group -uid -gid -links -inum -printf -newer -samefile"
)
FIND_FLAGS = words_set(
    "-print -print0 -ls -prune -quit -empty -readable -writable -executable -true -false "
    "-not ! -a -and -o -or ( ) , -depth -xdev -mount -noleaf -daystart -nouser -nogroup"
)
DATE = Form(
    flags="uR",
    valued="d",
    long=words_set("--utc --universal --rfc-email --iso-8601"),
    long_valued=words_set("--date --iso-8601 --rfc-3339"),
    operands="text",
    max_operands=1,
)
SED_ADDRESS = r"(?:\d+|\$|/(?:[^/\\\n]|\\[^\n])*/)"
SED_PRINT = re.compile(
    rf"\s*{SED_ADDRESS}(?:\s*,\s*{SED_ADDRESS})?\s*p\s*(?:;\s*{SED_ADDRESS}"
    rf"(?:\s*,\s*{SED_ADDRESS})?\s*p\s*)*;?\s*"
)


def grep(ctx: Context, words: list[Word]) -> None:
    options, values, operands = GREP.split("grep", words)
    if options.isdisjoint({"-e", "-f", "--regexp", "--file"}):
        if not operands:
            raise Refused("grep needs a pattern")
        literal(operands.pop(0))
    GREP.check_values(ctx, values)
    recursive = bool(GREP.recursive & options)
    GREP.check_operands(ctx, "grep", operands, recursive, "." if recursive else None)


def sed(ctx: Context, words: list[Word]) -> None:
    """Only the line printer `sed -n 'ADDRp' FILE`: no script can write (w), run (e) or edit (-i)."""
    try:
        options, _, operands = SED.split("sed", words)
        if options.isdisjoint({"-n", "--quiet", "--silent"}) or not SED_PRINT.fullmatch(literal(operands[0])):
            raise Refused("not a line printer")
    except (Refused, IndexError):
        raise Refused(
            "sed is allowed only to print lines: `sed -n '10,40p' FILE` (addresses: numbers, $, /regex/; "
            "command: p); use the Edit tool to change train.py or scratchpad.md"
        ) from None
    SED.check_operands(ctx, "sed", operands[1:])


def find(ctx: Context, words: list[Word]) -> None:
    """Paths first, then an expression of tests from FIND_FLAGS/FIND_VALUED: no -exec, -delete, -fprint."""
    starts = [i for i, w in enumerate(words) if w.text.startswith("-") or w.text in FIND_FLAGS] + [len(words)]
    paths, expression = words[: starts[0]], iter(words[starts[0] :])
    for word in expression:
        test = literal(word)
        if test in FIND_VALUED:
            value = literal(next(expression, Word("")))
            if test in ("-newer", "-samefile"):
                listable(ctx, value)
        elif test not in FIND_FLAGS:
            raise Refused(
                f"find: {test!r} is not allowed; find may only list names (no -exec, -ok, -delete, "
                "-fprint, -fls, -L); pipe names to grep or read files with cat"
            )
    Form(operands="list").check_operands(ctx, "find", paths, implicit=".")


def echo(ctx: Context, words: list[Word]) -> None:
    """Any text, dashes included; only what bash would expand into file names is checked."""
    Form(operands="text").check_operands(ctx, "echo", words)


def date(ctx: Context, words: list[Word]) -> None:
    _, _, operands = DATE.split("date", words)
    if operands and not literal(operands[0]).startswith("+"):
        raise Refused("date may only print the time (`date`, `date +FORMAT`), not set it")


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


COMMANDS: dict[str, Callable[[Context, list[Word]], None] | Form] = {
    "ls": Form(
        flags="aAbBcCdDfFghiklmnNopqQrRsStuUvxXZ1",
        valued="IwT",
        operands="list",
        long=words_set(
            "--all --almost-all --human-readable --recursive --reverse --size --directory "
            "--classify --inode --numeric-uid-gid --group-directories-first --full-time --si "
            "--color --literal"
        ),
        long_valued=words_set(
            "--color --sort --time --time-style --ignore --hide --format --block-size "
            "--indicator-style --quoting-style --width"
        ),
    ),
    "cat": Form(
        flags="AbeEnstTuv",
        long=words_set(
            "--number --show-all --number-nonblank --squeeze-blank --show-ends --show-tabs --show-nonprinting"
        ),
    ),
    "head": HEAD,
    "tail": HEAD,  # the same options; -f/--follow (wait forever) is left out on purpose
    "wc": Form(flags="clmwL", long=words_set("--lines --words --chars --bytes --max-line-length")),
    "grep": grep,
    "find": find,
    "diff": Form(
        flags="qsuyiwbBEZtTNaprc",
        valued="UCxXIW",
        max_operands=2,
        trees=True,  # diff compares the files inside the directories it is given, even without -r
        file_values=frozenset({"-X"}),
        long=words_set(
            "--brief --report-identical-files --unified --side-by-side --ignore-case "
            "--ignore-all-space --ignore-space-change --ignore-blank-lines --text --recursive "
            "--new-file --strip-trailing-cr --suppress-common-lines --color --expand-tabs "
            "--initial-tab --minimal --show-c-function"
        ),
        long_valued=words_set("--unified --context --color --exclude --ignore-matching-lines --width --label"),
    ),
    "sort": Form(
        flags="bdfghiMnRrsuVcCz",
        valued="kt",
        long=words_set(
            "--numeric-sort --reverse --unique --human-numeric-sort --version-sort "
            "--ignore-case --general-numeric-sort --stable --check --ignore-leading-blanks "
            "--dictionary-order --month-sort --random-sort --zero-terminated"
        ),
        long_valued=words_set("--key --field-separator"),
    ),
    "uniq": Form(
        flags="cdDiuz",
        valued="fsw",
        max_operands=1,  # a second operand would be written to
        long=words_set("--count --repeated --unique --ignore-case --zero-terminated"),
        long_valued=words_set("--skip-fields --skip-chars --check-chars --all-repeated --group"),
    ),
    "cut": Form(
        flags="snz",
        valued="bcdf",
        long=words_set("--complement --only-delimited --zero-terminated"),
        long_valued=words_set("--bytes --characters --delimiter --fields --output-delimiter"),
    ),
    "tr": Form(
        flags="cCdst",
        operands="text",
        max_operands=2,
        long=words_set("--complement --delete --squeeze-repeats --truncate-set1"),
    ),
    "echo": echo,
    "true": Form(operands="text"),
    "false": Form(operands="text"),
    "pwd": Form(flags="LP", operands="text", max_operands=0),
    "date": date,
    "nl": Form(
        flags="p",
        valued="bdfhilnsvw",
        long=words_set("--no-renumber"),
        long_valued=words_set(
            "--body-numbering --number-format --number-width --number-separator --starting-line-number --line-increment"
        ),
    ),
    "file": Form(
        flags="bhiLkN",
        long=words_set("--brief --mime --mime-type --mime-encoding --no-dereference --dereference --keep-going"),
    ),
    "stat": Form(
        flags="LftZ",
        valued="c",
        operands="list",
        long=words_set("--dereference --file-system --terse"),
        long_valued=words_set("--format --printf"),
    ),
    "du": Form(
        flags="achksmbSx0",
        valued="d",
        operands="list",
        long=words_set(
            "--all --total --human-readable --summarize --apparent-size --bytes --separate-dirs --one-file-system --si"
        ),
        long_valued=words_set("--max-depth --exclude --threshold --block-size"),
    ),
    "tree": Form(
        flags="adfiFnNpsughDCrtvxJQ",
        valued="LIP",
        operands="list",
        long=words_set("--noreport --dirsfirst --du --prune --matchdirs --ignore-case"),
        long_valued=words_set("--filelimit --charset --sort --timefmt"),
    ),
    "sed": sed,
    "git": git,
}
IMPLICIT_CWD = frozenset({"ls", "du", "tree"})  # with no operand they list the working directory

# Families of refused commands, only to give a better reason than "not allowed".
FAMILIES = (
    (
        "pip pipx uv uvx conda mamba micromamba poetry pdm hatch npm npx yarn pnpm bun "
        "apt apt-get aptitude dpkg rpm yum dnf apk brew cargo gem go easy_install",
        "installing packages is not allowed: the environment is fixed; use what train.py can already import",
    ),
    (
        "python pypy node deno perl ruby php lua luajit awk gawk mawk nawk Rscript julia java tclsh",
        "running code on the host is not allowed: put the change in train.py and run ./run.sh, "
        "which trains it in the sandbox",
    ),
    (
        "bash sh zsh dash fish ksh csh tcsh busybox eval exec source . command builtin "
        "env nice nohup timeout xargs time stdbuf setsid script watch parallel",
        "nested shells and command wrappers are not allowed: call one allowed command directly",
    ),
    (
        "curl wget nc ncat netcat ssh scp sftp rsync ftp telnet socat",
        "network clients are not allowed; in a phase with web access, use WebFetch or WebSearch",
    ),
    (
        "docker podman sudo su doas chroot nsenter unshare",
        "containers and privileges belong to the harness: ./run.sh runs the sandbox",
    ),
    (
        "rm mv cp chmod chown chgrp ln truncate dd tee touch mkdir rmdir shred install unlink patch "
        "vi vim nano emacs ed",
        "changing files through the shell is not allowed: edit train.py or scratchpad.md with the Edit tool",
    ),
    ("kill pkill killall", "stopping processes is not allowed: the harness enforces the time budget"),
    (
        "cd pushd popd",
        "changing directory is not allowed: commands run in the repository root; use paths relative to it",
    ),
)
FAMILY_REASONS = {name: reason for names, reason in FAMILIES for name in names.split()}
ALLOWED_HELP = (
    'allowed: `./run.sh`, `./run.sh -m "hypothesis"`, `./run.sh status`; read-only '
    + ", ".join(sorted(n for n in COMMANDS if n != "git"))
    + f"; {GIT_HELP}"
)


def unknown(name: str) -> str:
    base = name.rsplit("/", 1)[-1]
    family = FAMILY_REASONS.get(base) or FAMILY_REASONS.get(re.sub(r"[\d.]+$", "", base))  # python3.11, pip3
    if family:
        return f"`{name}`: {family}"
    if not name.isascii():
        return f"`{name}` contains non-ASCII characters (look-alike letters are refused); {ALLOWED_HELP}"
    if "/" in name:
        return f"`{name}`: call commands by name, not by path; {ALLOWED_HELP}"
    return f"`{name}` is not an allowed command; {ALLOWED_HELP}"


# ---------------------------------------------------------------- ./run.sh


def run_form(words: list[Word]) -> str:
    """'experiment' or 'status' for the forms the agent may call; refuse the rest."""
    args = [literal(w) for w in words]
    if args == ["status"]:
        return "status"
    if not args or (len(args) == 2 and args[0] == "-m" and valid_hypothesis(args[1])):
        return "experiment"
    raise Refused(
        './run.sh takes exactly one of these forms: `./run.sh`, `./run.sh -m "one-line hypothesis"` '
        f"(at most {MAX_HYPOTHESIS} characters, no newline), `./run.sh status`"
    )


def valid_hypothesis(text: str) -> bool:
    return len(text.strip()) > 0 and len(text) <= MAX_HYPOTHESIS and "\n" not in text


def run_timeout_ms(program: Program) -> int:
    """Every seed's budget + grace + scoring, plus a minute for the verdict, capped at the Bash maximum."""
    task, limits = program.task, program.limits
    seconds = program.verdict.seeds * (task.budget_seconds + task.grace_seconds + limits.score_seconds) + 60
    return int(min(seconds * 1000, BASH_TIMEOUT_CAP_MS))


def invalid_program(error: Exception) -> str:
    return f"program.md is invalid: {error}; ask the human to fix it"


# ---------------------------------------------------------------- tools


def bash(tool_input: dict, ctx: Context) -> Decision:
    command = tool_input.get("command")
    if not isinstance(command, str) or not command.strip():
        return deny("Bash needs a command")
    if len(command) > MAX_COMMAND:
        return deny(f"the command is {len(command)} characters long; the limit is {MAX_COMMAND}")
    if INVISIBLE.search(command):
        return deny("control, zero-width and bidirectional characters are not allowed in commands")
    if not ctx.cwd.is_relative_to(ctx.repo):
        return deny(f"the shell is in {ctx.cwd}, outside the repository {ctx.repo}; commands run in the repository")
    try:
        line = shell.parse(command)
    except shell.ShellError as e:
        return deny(str(e))
    experiment = False
    for cmd in line.commands:
        name, args = cmd.words[0].text, list(cmd.words[1:])
        for source in cmd.inputs:
            readable(ctx, literal(source))
        if name == "./run.sh":
            experiment |= run_form(args) == "experiment"
            if ctx.cwd != ctx.repo:
                raise Refused("run ./run.sh from the repository root")
            continue
        rule = COMMANDS.get(name)
        if rule is None:
            raise Refused(unknown(name))
        if isinstance(rule, Form):
            rule.check(ctx, name, args, "." if name in IMPLICIT_CWD else None)
        else:
            rule(ctx, args)
    if experiment:
        if not line.alone:
            raise Refused(
                'run the experiment on its own: `./run.sh` or `./run.sh -m "hypothesis"`, with no `;`, '
                "`&&`, `|`, `&` or redirection, so the harness sees exactly one run"
            )
        if isinstance(ctx.program, Exception):
            return deny(invalid_program(ctx.program))
        from eval.ledger import phase_spent, read  # here: only experiment runs pay for these
        from eval.scratchpad import unrecorded

        phase = ctx.program.current_phase
        if phase_spent(read(ctx.repo), phase):
            return deny(f"phase {phase.name} has used its {phase.max_experiments} experiments (max_experiments in "
                        "program.md); the human moves current_phase on. Write up what you learned in scratchpad.md")
        missing = unrecorded(ctx.repo)
        if missing:
            return deny(f"first record the verdict of {missing} in scratchpad.md (Experiment log: id | verdict | "
                        f"metric | change | lesson); ./run.sh is refused until scratchpad.md mentions {missing}")
        timeout = run_timeout_ms(ctx.program)
        updated = {k: v for k, v in tool_input.items() if k != "run_in_background"} | {"timeout": timeout}
        return allow(f"experiment run (timeout {timeout // 1000} s, foreground)", updated)
    if tool_input.get("run_in_background"):
        return deny("background commands are not allowed; run it in the foreground")
    return allow("read-only command inside the repository")


def read(tool_input: dict, ctx: Context) -> Decision:
    readable(ctx, tool_input.get("file_path"))
    return allow("read inside the repository")


def edit(tool_input: dict, ctx: Context) -> Decision:
    value = tool_input.get("file_path")
    path, rel = resolve(ctx, value)
    if path in [ctx.repo / name for name in EDITABLE]:
        return allow(f"{rel} is editable")
    raise Refused(
        f"`{value}`{resolved(ctx, value, path)} is not editable: the agent changes only train.py and "
        "scratchpad.md; everything else is the harness"
    )


def web_phase(ctx: Context) -> tuple[str, ...]:
    """The current phase's web domains; refuse when program.md is broken or the phase has no web."""
    if isinstance(ctx.program, Exception):
        raise Refused(invalid_program(ctx.program))
    phase = ctx.program.current_phase
    if not phase.web:
        raise Refused(
            f"the current phase '{phase.name}' does not allow web access (program.md decides which phases do)"
        )
    if not phase.domains:
        raise Refused(f"the phase '{phase.name}' allows web access but lists no domains in program.md")
    return phase.domains


def on_domains(host: str, domains: tuple[str, ...]) -> bool:
    host = host.lower().rstrip(".")
    return any(host == d or host.endswith("." + d) for d in domains)


def url_host(url: object) -> str | None:
    """The host a URL reaches, or None when parsers could disagree about it (user@, backslash, spaces)."""
    if not isinstance(url, str) or not url.isascii() or re.search(r"[\s\\]", url):
        return None
    try:
        from urllib.parse import urlsplit  # here: only web calls pay for the import

        parts = urlsplit(url)
        host = parts.hostname
    except ValueError:
        return None
    if parts.scheme not in ("http", "https") or "@" in parts.netloc or not host:
        return None
    return host


def web_fetch(tool_input: dict, ctx: Context) -> Decision:
    domains = web_phase(ctx)
    url = tool_input.get("url")
    host = url_host(url)
    if host is None:
        return deny(f"WebFetch needs a plain http(s) URL (no user@, backslashes or spaces), got {url!r}")
    if not on_domains(host, domains):
        return deny(f"{host} is not among this phase's domains: {', '.join(domains)}")
    return allow(f"{host} is allowed in this phase")


def web_search(tool_input: dict, ctx: Context) -> Decision:
    domains = web_phase(ctx)
    asked = tool_input.get("allowed_domains")
    if not asked:
        return allow("search limited to this phase's domains", {**tool_input, "allowed_domains": list(domains)})
    if not isinstance(asked, list) or not all(isinstance(d, str) and on_domains(d, domains) for d in asked):
        return deny(f"allowed_domains must be within this phase's domains: {', '.join(domains)}")
    return allow("search within this phase's domains")


def permit(reason: str) -> Callable[[dict, Context], Decision]:
    return lambda tool_input, ctx: allow(reason)


def refuse(reason: str) -> Callable[[dict, Context], Decision]:
    return lambda tool_input, ctx: deny(reason)


NO_SCHEDULING = "scheduling is not part of the research loop: keep looping yourself"
TOOLS: dict[str, Callable[[dict, Context], Decision]] = {
    "Bash": bash,
    "Read": read,
    "Edit": edit,
    "Write": edit,
    "MultiEdit": edit,
    "NotebookEdit": refuse("notebooks are not part of the research loop; edit train.py"),
    "WebFetch": web_fetch,
    "WebSearch": web_search,
    "Task": permit("subagents run under this same guard"),
    "Agent": permit("subagents run under this same guard"),
    "TodoWrite": permit("a to-do list changes no files"),
    "TaskOutput": permit("reads the output of the agent's own background task"),
    "BashOutput": permit("reads the output of the agent's own background task"),
    "KillShell": permit("stops only the agent's own background task"),
    "TaskStop": permit("stops only the agent's own background task"),
    "CronCreate": refuse(NO_SCHEDULING),
    "CronDelete": refuse(NO_SCHEDULING),
    "CronList": refuse(NO_SCHEDULING),
    "Monitor": refuse("Monitor runs commands outside the Bash policy; ./run.sh already waits for the run"),
    "Skill": refuse("skills are not part of the research loop"),
    "AskUserQuestion": refuse(
        "no human is watching the loop: decide, record your reasoning in scratchpad.md, and go on"
    ),
}
