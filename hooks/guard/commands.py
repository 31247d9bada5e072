"""The read-only shell commands the agent may run: each one's options and operands, as tables.

A Form says which options a command takes and what its operands are (files it reads,
names it lists, plain text); the few commands a table cannot describe (grep's pattern,
sed's script, find's expression, git) have a function of their own. FAMILIES only words
the reason for a refused command better.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from hooks.guard.git import GIT_HELP, git, words_set
from hooks.guard.paths import Context, Refused, expand, listable, literal, readable
from hooks.guard.shell import Word


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
