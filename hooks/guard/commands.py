"""The read-only shell commands the agent may run: each one's options and operands, as tables.

A Form says which options a command takes and what its operands are (files it reads,
names it lists, plain text); the few commands a table cannot describe (grep's pattern,
sed's script, find's expression, git) have a function of their own. FAMILIES only words
the reason for a refused command better.

Each Form's options are one table (hooks/guard/options.py), every spelling of an option in one
entry, so the short and the long form can never disagree about a value or a file. Long options
are matched whole: GNU tools also take unique abbreviations (`--rec` for `--recursive`), and an
abbreviation could name any option, so it is refused with the full name to use. Every long name
here is a real option of the tool (tests/test_policy.py checks the tables against each tool's
--help), so none is taken for an abbreviation of another.
"""

from __future__ import annotations

import fnmatch
import os
import re
from collections.abc import Callable
from dataclasses import dataclass, field

from hooks.guard.git import GIT_HELP, git, words_set
from hooks.guard.options import Option, option_table
from hooks.guard.paths import MAX_MATCHES, Context, Refused, expand, listable, literal, readable, resolve
from hooks.guard.shell import Command, Word


@dataclass(frozen=True)
class Form:
    """A read-only command: the options it may take (one table) and what its operands are."""

    spec: str = ""  # the options, in the syntax of hooks/guard/options.py
    operands: str = "read"  # read: files it reads; list: names it lists; text: not files
    max_operands: int | None = None
    numeric: bool = False  # accepts -NUM, as in head -20
    recursive: str = ""  # a name of the option that makes it read whole directories
    trees: bool = False  # it reads whole directories whatever the options
    table: dict[str, Option] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "table", option_table(self.spec))

    def split(self, name: str, words: list[Word]) -> tuple[set[Option], list[tuple[Option, str]], list[Word]]:
        """Return (options, [(option, value)], operand words), refusing any option not in the table."""
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
                option = self.long_option(name, key)
                if eq and not option.value:
                    raise Refused(f"{name}: {key} takes no value")
                if option.value == "required" and not eq:
                    raise Refused(f"{name}: give {key} its value in the same word: {key}=VALUE")
                options.add(option)
                values += [(option, value)] if eq else []
                continue
            if self.numeric and text.isascii() and text[1:].isdigit():
                continue
            for j, c in enumerate(text[1:], 1):
                option = self.table.get("-" + c)
                if option is None:
                    raise Refused(f"{name}: the option -{c} is not allowed" + HINT)
                options.add(option)
                if option.value != "required":
                    continue
                if j + 1 < len(text):
                    value = text[j + 1 :]
                elif i < len(words):
                    value, i = literal(words[i]), i + 1
                else:
                    raise Refused(f"{name}: -{c} needs a value")
                values.append((option, value))
                break
        return options, values, operands

    def long_option(self, name: str, key: str) -> Option:
        if key in self.table:
            return self.table[key]
        whole = sorted(n for n in self.table if n.startswith(key) and n.startswith("--"))
        if len(key) > 3 and whole:
            raise Refused(f"{name}: write the option in full ({', '.join(whole)}), not the abbreviation {key!r}")
        raise Refused(f"{name}: the option {key!r} is not allowed" + HINT)

    def given(self, options: set[Option], spelling: str) -> bool:
        return self.table[spelling] in options

    def check(self, ctx: Context, name: str, words: list[Word], implicit: str | None = None) -> None:
        options, values, operands = self.split(name, words)
        self.check_values(ctx, values)
        recursive = self.trees or bool(self.recursive and self.given(options, self.recursive))
        self.check_operands(ctx, name, operands, recursive, implicit)

    @staticmethod
    def check_values(ctx: Context, values: list[tuple[Option, str]]) -> None:
        for option, value in values:
            if option.reads:
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


SANDBOX_VIEW = ("(no network; train.py, scratchpad.md, results.tsv, runs/ and the training split data/train.bin at the "
                "same paths as here, read-only; val/test and the harness's internals invisible)")
HINT = " (the guard allows a fixed set of read-only options; see the reason's command list)"


HEAD = Form("-n|--lines=N -c|--bytes=N -q|--quiet|--silent -v|--verbose -z|--zero-terminated", numeric=True)
GREP = Form(
    "-E|--extended-regexp -F|--fixed-strings -G|--basic-regexp -P|--perl-regexp -i|--ignore-case "
    "--no-ignore-case -v|--invert-match -w|--word-regexp -x|--line-regexp -c|--count --color[=WHEN] "
    "--colour[=WHEN] -L|--files-without-match -l|--files-with-matches -o|--only-matching -q|--quiet|--silent "
    "-s|--no-messages -b|--byte-offset -H|--with-filename -h|--no-filename -n|--line-number -T|--initial-tab "
    "-Z|--null -z|--null-data -a|--text -I -r|--recursive -U|--binary --line-buffered "
    "-e|--regexp=PATTERN -f|--file=FILE -m|--max-count=NUM -A|--after-context=NUM -B|--before-context=NUM "
    "-C|--context=NUM --include=GLOB --exclude=GLOB --exclude-dir=GLOB --binary-files=TYPE --label=LABEL",
    numeric=True,
    recursive="-r",
)
SED = Form("-n|--quiet|--silent -E|-r|--regexp-extended -s|--separate -u|--unbuffered -z|--null-data --posix")
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
    "-u|--utc|--universal -R|--rfc-email --iso-8601[=FMT] -d|--date=STRING --rfc-3339=FMT",
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
    if not (GREP.given(options, "-e") or GREP.given(options, "-f")):
        if not operands:
            raise Refused("grep needs a pattern")
        literal(operands.pop(0))
    GREP.check_values(ctx, values)
    recursive = GREP.given(options, "-r")
    GREP.check_operands(ctx, "grep", operands, recursive, "." if recursive else None)


def sed(ctx: Context, words: list[Word]) -> None:
    """Only the line printer `sed -n 'ADDRp' FILE`: no script can write (w), run (e) or edit (-i)."""
    try:
        options, _, operands = SED.split("sed", words)
        if not SED.given(options, "-n") or not SED_PRINT.fullmatch(literal(operands[0])):
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


CHECKSUM = "-b|--binary -t|--text --tag -z|--zero"  # -c/--check is left out: it reads the files a list names
RG = Form(
    "-e|--regexp=PATTERN -f|--file=FILE -F|--fixed-strings -i|--ignore-case -S|--smart-case -s|--case-sensitive "
    "-w|--word-regexp -x|--line-regexp -v|--invert-match -n|--line-number -N|--no-line-number -c|--count "
    "-l|--files-with-matches --files-without-match -o|--only-matching -H|--with-filename -I|--no-filename "
    "--no-heading --heading --vimgrep --json -q|--quiet -m|--max-count=NUM -A|--after-context=NUM "
    "-B|--before-context=NUM -C|--context=NUM -t|--type=TYPE -T|--type-not=TYPE -g|--glob=GLOB "
    "--iglob=GLOB -d|--max-depth=NUM --color=WHEN --hidden --files --sort=SORTBY -P|--pcre2 -U|--multiline",
    trees=True,  # rg searches directories whole; -L (follow links), --pre and -z (run programs) are left out
)
TEST_UNARY = words_set("-a -b -c -d -e -f -g -h -k -p -r -s -t -u -w -x -G -L -N -O -S -z -n -v")
TEST_BINARY = words_set("= == != -eq -ne -lt -le -gt -ge -nt -ot -ef < >")
TEST_LOGIC = words_set("! ( ) -o")
XARGS = "-0|--null -r|--no-run-if-empty -n|--max-args=MAX-ARGS -L|--max-lines=MAX-LINES -t|--verbose"
XARGS_NOT = frozenset({"git", "xargs", "diff"})  # git's options are decided on the whole line; diff reads trees
XARGS_SPLITS = re.compile(r"[\s'\"\\]")  # xargs splits a name there (or reads it as quoting) into other names


def test(ctx: Context, words: list[Word]) -> None:
    """`test EXPR` and `[ EXPR ]`: they read no file; a path they ask about must be inside the repository."""
    for word in words:
        if word.text not in TEST_UNARY | TEST_BINARY | TEST_LOGIC:
            Form(operands="list").check_operands(ctx, "test", [word])


def bracket(ctx: Context, words: list[Word]) -> None:
    if not words or words[-1].text != "]":
        raise Refused("`[` needs its closing `]` as the last word: `[ -f train.py ]`")
    test(ctx, words[:-1])


def rg(ctx: Context, words: list[Word]) -> None:
    options, values, operands = RG.split("rg", words)
    if not (RG.given(options, "-e") or RG.given(options, "-f") or RG.given(options, "--files")):
        if not operands:
            raise Refused("rg needs a pattern")
        literal(operands.pop(0))
    RG.check_values(ctx, values)
    RG.check_operands(ctx, "rg", operands, True, ".")


def xargs(ctx: Context, words: list[Word], before: Command | None = None) -> None:
    """`find PATHS ... | xargs CMD ARGS`: CMD is a read-only command, and every name that find could print
    passes the path rules (the guard walks find's paths itself), as if CMD were given them directly."""
    table = Form(XARGS)
    i = next((j for j, w in enumerate(words) if not w.text.startswith("-") or w.text == "--"), len(words))
    table.split("xargs", words[:i])
    rest = words[i + (i < len(words) and words[i].text == "--"):]
    if before is None or before.words[0].text != "find":
        raise Refused("xargs may only take the names that `find PATHS ...` prints: `find eval -name '*.py' | "
                      "xargs grep -n lr`")
    if not rest or rest[0].text in XARGS_NOT or rest[0].text not in COMMANDS:
        allowed = ", ".join(sorted(set(COMMANDS) - XARGS_NOT))
        raise Refused(f"xargs may only run one of the read-only commands: {allowed}")
    found(ctx, list(before.words[1:]))
    rule = COMMANDS[rest[0].text]
    if isinstance(rule, Form):
        rule.check(ctx, rest[0].text, list(rest[1:]))
    else:
        rule(ctx, list(rest[1:]))


def found(ctx: Context, words: list[Word]) -> None:
    """Check every path `find` could print for `words` (its -name/-iname filters applied when it has no -o, !,
    -not or parentheses): each file readable, each directory readable whole."""
    starts = [i for i, w in enumerate(words) if w.text.startswith("-") or w.text in FIND_FLAGS] + [len(words)]
    paths, expression = [w.text for w in words[: starts[0]]] or ["."], [w.text for w in words[starts[0]:]]
    filtered = not {"-o", "-or", "!", "-not", "(", ")", ","} & set(expression)
    patterns = [expression[i + 1] for i, t in enumerate(expression[:-1]) if filtered and t in ("-name", "-iname")]
    files_only = filtered and "-type" in expression and expression[expression.index("-type") + 1:][:1] == ["f"]
    seen = 0
    for start in paths:
        top, _ = resolve(ctx, start)
        for root, dirs, files in os.walk(top) if top.is_dir() else [(top.parent, [], [top.name])]:
            names = [(n, False) for n in files] + [(n, True) for n in dirs if not files_only]
            for name, directory in names:
                if all(fnmatch.fnmatch(name.lower(), p.lower()) for p in patterns):
                    if XARGS_SPLITS.search(name):
                        raise Refused(f"find would print {os.path.join(root, name)!r}, which xargs would split into "
                                      "other names; name the files instead")
                    seen += 1
                    if seen > MAX_MATCHES:
                        raise Refused(f"find would print more than {MAX_MATCHES} names for xargs; narrow it")
                    readable(ctx, os.path.join(root, name), directory)


COMMANDS: dict[str, Callable[[Context, list[Word]], None] | Form] = {
    "ls": Form(
        "-a|--all -A|--almost-all -b|--escape -B|--ignore-backups -c -C -d|--directory -D|--dired -f "
        "-F|--classify[=WHEN] -g -h|--human-readable -i|--inode -k|--kibibytes -l -m -n|--numeric-uid-gid -N|--literal "
        "-o -p -q|--hide-control-chars -Q|--quote-name -r|--reverse -R|--recursive -s|--size -S -t -u -U -v -x -X "
        "-Z|--context -1 --group-directories-first --full-time --si --color[=WHEN] -I|--ignore=PATTERN "
        "-w|--width=COLS -T|--tabsize=COLS --sort=WORD --time=WORD --time-style=STYLE --hide=PATTERN "
        "--format=WORD --block-size=SIZE --indicator-style=WORD --quoting-style=WORD",
        operands="list",
    ),
    "cat": Form(
        "-A|--show-all -b|--number-nonblank -e -E|--show-ends -n|--number -s|--squeeze-blank -t -T|--show-tabs "
        "-u -v|--show-nonprinting"
    ),
    "head": HEAD,
    "tail": HEAD,  # the same options; -f/--follow (wait forever) is left out on purpose
    "wc": Form("-c|--bytes -l|--lines -m|--chars -w|--words -L|--max-line-length"),
    "grep": grep,
    "find": find,
    "diff": Form(
        "-q|--brief -s|--report-identical-files -u|--unified[=NUM] -U=NUM -c|--context[=NUM] -C=NUM "
        "-y|--side-by-side -i|--ignore-case -w|--ignore-all-space -b|--ignore-space-change "
        "-B|--ignore-blank-lines -E|--ignore-tab-expansion -Z|--ignore-trailing-space -t|--expand-tabs "
        "-T|--initial-tab -N|--new-file -a|--text -p|--show-c-function -r|--recursive -d|--minimal "
        "--strip-trailing-cr --suppress-common-lines --color[=WHEN] -x|--exclude=PAT -X|--exclude-from=FILE "
        "-I|--ignore-matching-lines=RE -W|--width=NUM --label=LABEL",
        max_operands=2,
        trees=True,  # diff compares the files inside the directories it is given, even without -r
    ),
    "sort": Form(
        "-b|--ignore-leading-blanks -d|--dictionary-order -f|--ignore-case -g|--general-numeric-sort "
        "-h|--human-numeric-sort -i|--ignore-nonprinting -M|--month-sort -n|--numeric-sort -R|--random-sort "
        "-r|--reverse -s|--stable -u|--unique -V|--version-sort -c|--check[=HOW] -C -z|--zero-terminated "
        "-k|--key=KEYDEF -t|--field-separator=SEP"
    ),
    "uniq": Form(
        "-c|--count -d|--repeated -D --all-repeated[=METHOD] --group[=METHOD] -i|--ignore-case -u|--unique "
        "-z|--zero-terminated -f|--skip-fields=N -s|--skip-chars=N -w|--check-chars=N",
        max_operands=1,  # a second operand would be written to
    ),
    "cut": Form(
        "-s|--only-delimited -n -z|--zero-terminated --complement -b|--bytes=LIST -c|--characters=LIST "
        "-d|--delimiter=DELIM -f|--fields=LIST --output-delimiter=STRING"
    ),
    "tr": Form("-c|-C|--complement -d|--delete -s|--squeeze-repeats -t|--truncate-set1", operands="text",
               max_operands=2),
    "echo": echo,
    "true": Form(operands="text"),
    "false": Form(operands="text"),
    "pwd": Form("-L -P", operands="text", max_operands=0),  # bash's builtin: no long options
    "date": date,
    "nl": Form(
        "-p|--no-renumber -b|--body-numbering=STYLE -d|--section-delimiter=CC -f|--footer-numbering=STYLE "
        "-h|--header-numbering=STYLE -i|--line-increment=NUMBER -l|--join-blank-lines=NUMBER "
        "-n|--number-format=FORMAT -s|--number-separator=STRING -v|--starting-line-number=NUMBER "
        "-w|--number-width=NUMBER"
    ),
    "file": Form(
        "-b|--brief -h|--no-dereference -i|--mime --mime-type --mime-encoding -L|--dereference -k|--keep-going "
        "-N|--no-pad"
    ),
    "stat": Form(
        "-L|--dereference -f|--file-system -t|--terse -c|--format=FORMAT --printf=FORMAT",
        operands="list",
    ),
    "du": Form(
        "-a|--all -c|--total -h|--human-readable -k -s|--summarize -m -b|--bytes -S|--separate-dirs "
        "-x|--one-file-system -0|--null --apparent-size --si -d|--max-depth=N --exclude=PATTERN "
        "-t|--threshold=SIZE -B|--block-size=SIZE",
        operands="list",
    ),
    "tree": Form(
        "-a -d -f -i -F -n -N -p -s -u -g -h -D -C -r -t -v -x -J -Q --noreport --dirsfirst --du --prune "
        "--matchdirs --ignore-case -L=LEVEL -I=PATTERN -P=PATTERN --filelimit=N --charset=X --sort=TYPE "
        "--timefmt=FMT",
        operands="list",
    ),
    "sed": sed,
    "git": git,
    "test": test,
    "[": bracket,
    "rg": rg,
    "xargs": xargs,
    **{name: Form(CHECKSUM) for name in ("sha256sum", "sha1sum", "sha512sum", "sha224sum", "sha384sum", "md5sum")},
    "b2sum": Form(CHECKSUM + " -l|--length=BITS"),
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
        "env nice nohup timeout time stdbuf setsid script watch parallel",
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
    'allowed: `./run.sh`, `./run.sh -m "hypothesis"`, `./run.sh status`, `./run.sh python -c CODE` (your Python, '
    "in the training sandbox); read-only " + ", ".join(sorted(n for n in COMMANDS if n != "git"))
    + f"; {GIT_HELP}; pipes between them"
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
