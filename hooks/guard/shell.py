"""Read a Bash command line as a list of simple commands, or refuse it.

bashlex (a port of bash's own grammar) builds the syntax tree. Only lists (`;`, `&&`, `||`),
pipelines (`|`) and simple commands pass; every other node (subshells, braces, functions,
control flow, substitutions, assignments, here-documents) is refused. Each word is then read
a second time from the source by a strict lexer that knows only literal characters, quotes,
backslashes and brace lists (`ckpt-{200,300}`, `{1..3}`), which it expands as bash does; where
the two readings disagree, the line is refused. A problem inside one command (a word, a
redirection, a here-document) is kept with that command rather than ending the reading, so the
policy can name every problem of the line and first what the command itself is. What comes out
is plain data, so the policy never looks at shell syntax.
"""

from __future__ import annotations

import importlib
import importlib.util
import json
import re
import shlex
import string
import sys
import zlib
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType, SimpleNamespace

# Unquoted characters a word may contain; anything else must be quoted. This leaves out
# `$ ` [ ] ! # ^` (expansions, bracket globs, negations, comments) and `~` where bash would
# expand it (word start, after = or :). `{ , }` are brace expansion, read by braces().
PLAIN = frozenset(string.ascii_letters + string.digits + "_./:=,+@%-")
GLOB = frozenset("*?")  # the only globs allowed: these two match the same files in bash and here
BRACE = frozenset("{,}")
MAX_BRACE_WORDS = 256  # arguments one word may expand into
SEQUENCE = re.compile(r"(-?\d+)\.\.(-?\d+)|([a-zA-Z])\.\.([a-zA-Z])")
TEST_BRACKETS = frozenset({"[", "]"})  # `[ -f x ]`: bash's test command and its closing word

NODE_REASONS = {
    "compound": "subshells, { } groups and control flow (if/for/while/case) are not allowed",
    "function": "defining shell functions is not allowed",
    "if": "control flow (if/for/while/case) is not allowed",
    "for": "control flow (if/for/while/case) is not allowed",
    "while": "control flow (if/for/while/case) is not allowed",
    "until": "control flow (if/for/while/case) is not allowed",
    "assignment": "variable assignments (`X=1 cmd`) are not allowed",
    "commandsubstitution": "command substitution (`$(...)` or backticks) is not allowed",
    "processsubstitution": "process substitution (`<(...)`, `>(...)`) is not allowed",
    "parameter": "variable expansion (`$VAR`, `${...}`) is not allowed",
    "tilde": "`~` is not allowed: the repository is the only place commands may touch",
    "reservedword": "`!` and other reserved words are not allowed",
}
OPERATOR_REASONS = {
    "&": "running in the background (`&`) is not allowed",
    "|&": "`|&` is not allowed: use `2>&1 |`",
}
LIST_OPERATORS = frozenset({";", "&&", "||", "\n"})


class ShellError(ValueError):
    """The line uses shell syntax the guard does not accept; the message says which."""


@dataclass(frozen=True)
class Word:
    text: str  # the value bash passes to the command, when no glob matches
    wild: frozenset[int] = frozenset()  # indexes in text of unquoted `*` and `?` (bash expands those)
    braces: frozenset[int] = frozenset()  # indexes in text of unquoted `{ , }` (before braces() expands them)


@dataclass(frozen=True)
class Command:
    words: tuple[Word, ...]
    inputs: tuple[Word, ...] = ()  # files redirected into stdin with `<`
    redirects: tuple[str, ...] = ()  # the dropped ones as written: `2>&1`, `2>/dev/null` (they write nothing)
    joined: str = ""  # the operator before it: "", ";", "&&", "||", "|" or "\n"
    problems: tuple[str, ...] = ()  # what bars it (a word, a redirection); its words are then bashlex's reading
    heredoc: str | None = None  # the text of a refused here-document, so advice can pass it as one argument

    @property
    def redirected(self) -> bool:
        return bool(self.redirects or self.inputs)


@dataclass(frozen=True)
class Line:
    commands: tuple[Command, ...]
    alone: bool  # exactly one simple command: no list, pipe or redirection


def parse(source: str) -> Line:
    """Split `source` into simple commands; raise ShellError for anything else."""
    try:
        trees = load_bashlex().parse(source)
    except Exception as e:  # bashlex raises ParsingError, NotImplementedError, AssertionError...
        if "<<" not in source or source.endswith("\n"):
            raise ShellError(f"the shell parser cannot read this line ({e})") from None
        return parse(source + "\n")  # bash ends a here-document at the end of the text; bashlex wants a newline
    commands: list[Command] = []
    for i, tree in enumerate(trees):
        walk(tree, source, commands, "\n" if i else "")
    if not commands:
        raise ShellError("the line holds no command")
    alone = len(trees) == 1 and trees[0].kind == "command" and not commands[0].redirected
    return Line(tuple(commands), alone)


def walk(node, source: str, out: list[Command], joined: str) -> None:
    """Append the simple commands of `node`; `joined` is the operator before its first one."""
    if node.kind == "command":
        out.append(command(node, source, joined))
    elif node.kind in ("list", "pipeline"):
        for part in node.parts:
            if part.kind == "operator" and part.op not in LIST_OPERATORS:
                raise ShellError(OPERATOR_REASONS.get(part.op, f"the operator `{part.op}` is not allowed"))
            if part.kind == "pipe" and part.pipe != "|":
                raise ShellError(OPERATOR_REASONS.get(part.pipe, f"the pipe `{part.pipe}` is not allowed"))
            if part.kind in ("operator", "pipe"):
                joined = "|" if part.kind == "pipe" else part.op
            else:
                walk(part, source, out, joined)
    else:
        raise ShellError(NODE_REASONS.get(node.kind, f"shell syntax `{node.kind}` is not allowed"))


def command(node, source: str, joined: str = "") -> Command:
    words, inputs, redirects, problems, heredoc = [], [], [], [], None
    for part in node.parts:
        if part.kind == "redirect" and part.type in ("<<", "<<-") and getattr(part, "heredoc", None) is not None:
            heredoc = part.heredoc.value.rpartition("\n")[0] + "\n"  # without the delimiter line
        try:
            if part.kind == "word":
                words += braces(word(part, source))
            elif part.kind == "redirect":
                target = redirect(part, source)
                if isinstance(target, Word):
                    inputs.append(target)
                else:
                    redirects.append(target)
            else:
                raise ShellError(NODE_REASONS.get(part.kind, f"shell syntax `{part.kind}` is not allowed"))
        except ShellError as e:
            problems.append(str(e))
            if part.kind == "word":  # keep bashlex's reading, so the command is still named
                words.append(Word(part.word))
    if not words:
        raise ShellError("a redirection without a command is not allowed")
    return Command(tuple(words), tuple(inputs), tuple(redirects), joined, tuple(problems), heredoc)


def redirect(node, source: str) -> Word | str:
    """Accept `2>/dev/null`, `2>&1` (return it as written) and `< FILE` (return FILE); refuse the rest."""
    fd, kind, target = getattr(node, "input", None), node.type, node.output
    if kind == ">&" and fd == 2 and target == 1:
        return "2>&1"
    if kind == ">" and fd == 2 and not isinstance(target, int) and word(target, source).text == "/dev/null":
        return "2>/dev/null"
    if kind == "<" and fd in (None, 0) and not isinstance(target, int):
        return word(target, source)
    if kind in ("<<", "<<-", "<<<"):
        raise ShellError("here-documents and here-strings are not allowed")
    raise ShellError(
        f"the redirection `{source[node.pos[0] : node.pos[1]]}` is not allowed: "
        "output goes to the terminal only (`2>/dev/null` and `2>&1` are fine)"
    )


def word(node, source: str) -> Word:
    parts = getattr(node, "parts", ())
    if parts:  # an expansion inside the word: $VAR, $(...), `...`, ~, <(...)
        raise ShellError(NODE_REASONS.get(parts[0].kind, f"shell syntax `{parts[0].kind}` is not allowed"))
    raw = source[node.pos[0] : node.pos[1]]
    if raw in TEST_BRACKETS:
        return Word(raw)
    read = lex(raw)
    if read.text != node.word:
        raise ShellError(f"the word `{raw}` reads ambiguously; quote it with plain single quotes")
    return read


def quote(text: str) -> str:
    """`text` as one word both readers take the same way: bare, in single quotes, or in double quotes when it
    holds a single quote (bashlex misreads the `'"'"'` splice) and nothing double quotes would expand."""
    if text and all(c in PLAIN for c in text):
        return text
    if "'" not in text:
        return f"'{text}'"
    if not set(text) & set('"$`\\!'):
        return f'"{text}"'
    return shlex.quote(text)


def lex(raw: str) -> Word:
    """Read one word: plain characters, '...', "..." without `$` or backticks, backslash escapes."""
    text, wild, brace, i = [], set(), set(), 0
    while i < len(raw):
        c = raw[i]
        if c == "'":
            end = raw.find("'", i + 1)
            if end < 0:
                raise ShellError("unterminated single quote")
            chunk, i = raw[i + 1 : end], end + 1
        elif c == '"':
            chunk, i = double_quoted(raw, i + 1)
        elif c == "\\":
            if i + 1 == len(raw):
                raise ShellError("a trailing backslash is not allowed")
            chunk, i = ("" if raw[i + 1] == "\n" else raw[i + 1]), i + 2
        elif c in PLAIN or c in GLOB or c in BRACE or (c == "~" and text and text[-1] not in "=:"):  # HEAD~1
            if c in GLOB:
                wild.add(len(text))
            if c in BRACE:
                brace.add(len(text))
            chunk, i = c, i + 1
        elif not c.isascii():
            raise ShellError(f"the non-ASCII character {c!r} must be quoted (look-alike letters are refused)")
        elif c == "$" or c == "`":
            raise ShellError(f"`{c}` outside single quotes is not allowed (no expansions or substitutions)")
        else:
            raise ShellError(f"the unquoted character {c!r} is not allowed; put it in single quotes")
        text.extend(chunk)
    if any(i + 1 in wild and text[i] == text[i + 1] == "*" for i in wild):
        raise ShellError("`**` is not allowed: name the directories")
    return Word("".join(text), frozenset(wild), frozenset(brace) if "{" in {text[j] for j in brace} else frozenset())


def braces(word: Word) -> list[Word]:
    """The words bash's brace expansion makes of `word` (`a{b,c}` -> ab ac, `{1..3}` -> 1 2 3).

    Braces bash would leave as they are (`{x}`, `{}`, an unmatched one) are refused rather than
    guessed: the guard must check exactly the arguments the command gets.
    """
    if not word.braces:
        return [word]
    chars = [(c, i in word.wild, i in word.braces) for i, c in enumerate(word.text)]
    out = [Word("".join(c for c, _, _ in seq), frozenset(i for i, (_, w, _) in enumerate(seq) if w))
           for seq in alternatives(chars, word.text)]
    if len(out) > MAX_BRACE_WORDS:
        raise ShellError(f"`{word.text}` expands into more than {MAX_BRACE_WORDS} words; narrow it")
    return out


Char = tuple[str, bool, bool]  # (character, an unquoted glob, an unquoted brace character)


def alternatives(chars: list[Char], text: str) -> list[list[Char]]:
    start = next((i for i, (c, _, b) in enumerate(chars) if b and c == "{"), None)
    if start is None:
        return [chars]
    depth, commas, end = 0, [], None
    for i in range(start, len(chars)):
        c, _, b = chars[i]
        if b and c == "{":
            depth += 1
        elif b and c == "}":
            depth -= 1
            if depth == 0:
                end = i
                break
        elif b and c == "," and depth == 1:
            commas.append(i)
    if end is None:
        raise ShellError(f"`{text}` has an unmatched `{{`; quote it if it is meant literally")
    head, body, tail = chars[:start], chars[start + 1 : end], chars[end + 1 :]
    if commas:
        cuts = [start, *commas, end]
        options = [chars[a + 1 : b] for a, b in zip(cuts, cuts[1:], strict=False)]
    else:
        options = [[(c, False, False)] for c in sequence(body, text)]
    if len(options) > MAX_BRACE_WORDS:
        raise ShellError(f"`{text}` expands into more than {MAX_BRACE_WORDS} words; narrow it")
    return [seq for option in options for seq in alternatives(head + option + tail, text)]


def sequence(body: list[Char], text: str) -> list[str]:
    """`{1..3}`, `{01..10}`, `{a..e}` as bash counts them; any other lone brace is refused."""
    found = None if any(g or b for _, g, b in body) else SEQUENCE.fullmatch("".join(c for c, _, _ in body))
    if found is None:
        raise ShellError(
            f"`{text}`: bash leaves braces without a comma or a `a..b` range as they are; quote them, "
            "or list the alternatives: `ckpt-{200,300}`"
        )
    if found[3]:
        a, b = ord(found[3]), ord(found[4])
        return [chr(x) for x in range(a, b + (1 if b >= a else -1), 1 if b >= a else -1)]
    a, b = int(found[1]), int(found[2])
    if abs(b - a) >= MAX_BRACE_WORDS:
        raise ShellError(f"`{text}` expands into more than {MAX_BRACE_WORDS} words; narrow it")
    padded = any(re.fullmatch(r"-?0\d+", end) for end in found.group(1, 2))  # bash pads {01..10} to 2 digits
    width = max(len(found[1]), len(found[2])) if padded else 0
    return [f"{x:0{width}d}" for x in range(a, b + (1 if b >= a else -1), 1 if b >= a else -1)]


def double_quoted(raw: str, i: int) -> tuple[str, int]:
    """Read "..." from index i (after the opening quote); return (text, index after the closing quote)."""
    out = []
    while i < len(raw):
        c = raw[i]
        if c == '"':
            return "".join(out), i + 1
        if c in "$`":
            raise ShellError(f"`{c}` inside double quotes is not allowed; use single quotes")
        if c == "\\" and i + 1 < len(raw) and raw[i + 1] in '"\\$`\n':
            out.append("" if raw[i + 1] == "\n" else raw[i + 1])
            i += 2
            continue
        out.append(c)
        i += 1
    raise ShellError("unterminated double quote")


def load_bashlex() -> ModuleType:
    """Import bashlex with its parse tables read from a cache.

    bashlex regenerates its LALR tables with ply on every import (0.2-0.5 s), which alone
    would exceed the hook's latency budget. The tables depend only on bashlex's sources, so
    they are built once by ply itself and kept as JSON beside our bytecode, keyed by a hash
    of those sources; tests check that the cached parser's tables equal a fresh build.
    """
    if "bashlex" in sys.modules:
        return sys.modules["bashlex"]
    spec = importlib.util.find_spec("bashlex")
    root = Path(spec.origin).parent
    sources = b"".join((root / f).read_bytes() for f in ("parser.py", "yacc.py", "tokenizer.py"))
    key = f"{zlib.crc32(sources):08x}{len(sources):x}"  # zlib, not hashlib: a few ms less per hook call
    cache = Path(__file__).parent / "__pycache__" / f"bashlex-tables-{key}.json"
    package = importlib.util.module_from_spec(spec)
    sys.modules["bashlex"] = package
    try:
        yacc = importlib.import_module("bashlex.yacc")
        build = yacc.yacc

        def cached_yacc(**kwargs):
            module = sys.modules[sys._getframe(1).f_globals["__name__"]]
            try:
                tables = json.loads(cache.read_text())
                productions = [
                    SimpleNamespace(name=n, len=k, str=n, callable=getattr(module, f) if f else None)
                    for n, k, f in tables["productions"]
                ]
                table = SimpleNamespace(
                    lr_productions=productions,
                    lr_action=dict(enumerate(tables["action"])),
                    lr_goto=dict(enumerate(tables["goto"])),
                )
                return yacc.LRParser(table, module.p_error)
            except Exception:  # missing, unreadable or damaged: build the tables with ply
                parser = build(module=module, **kwargs)
                tables = {
                    "productions": [[p.name, p.len, p.func] for p in parser.productions],
                    "action": [parser.action[s] for s in range(len(parser.action))],
                    "goto": [parser.goto[s] for s in range(len(parser.goto))],
                }
                save(cache, json.dumps(tables))
                return parser

        yacc.yacc = cached_yacc
        try:
            spec.loader.exec_module(package)
        finally:
            yacc.yacc = build
    except BaseException:
        for name in [n for n in sys.modules if n == "bashlex" or n.startswith("bashlex.")]:
            del sys.modules[name]
        raise
    return package


def save(path: Path, text: str) -> None:
    """Write atomically (hooks run in parallel); a cache that cannot be written is only slower."""
    try:
        from eval.record.runs import atomic_write  # here: only a cache miss pays for it

        path.parent.mkdir(exist_ok=True)
        atomic_write(path, text)
    except OSError:
        pass
