"""Read a Bash command line as a list of simple commands, or refuse it.

bashlex (a port of bash's own grammar) builds the syntax tree. Only lists (`;`, `&&`, `||`),
pipelines (`|`) and simple commands pass; every other node (subshells, braces, functions,
control flow, substitutions, assignments, here-documents) is refused. Each word is then read
a second time from the source by a strict lexer that knows only literal characters, quotes
and backslashes; where the two readings disagree, the line is refused. What comes out is
plain data, so the policy never looks at shell syntax.
"""

from __future__ import annotations

import importlib
import importlib.util
import json
import string
import sys
import zlib
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType, SimpleNamespace

# Unquoted characters a word may contain; anything else must be quoted. This leaves out
# `$ ` { } [ ] ! # ^` (expansions, brace and bracket globs, negations, comments) and `~`
# where bash would expand it (word start, after = or :).
PLAIN = frozenset(string.ascii_letters + string.digits + "_./:=,+@%-")
GLOB = frozenset("*?")  # the only globs allowed: these two match the same files in bash and here

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


@dataclass(frozen=True)
class Command:
    words: tuple[Word, ...]
    inputs: tuple[Word, ...] = ()  # files redirected into stdin with `<`
    redirected: bool = False  # it had a redirection (`2>/dev/null` and `2>&1` are dropped: they write nothing)


@dataclass(frozen=True)
class Line:
    commands: tuple[Command, ...]
    alone: bool  # exactly one simple command: no list, pipe or redirection


def parse(source: str) -> Line:
    """Split `source` into simple commands; raise ShellError for anything else."""
    try:
        trees = load_bashlex().parse(source)
    except Exception as e:  # bashlex raises ParsingError, NotImplementedError, AssertionError...
        raise ShellError(f"the shell parser cannot read this line ({e})") from None
    commands: list[Command] = []
    for tree in trees:
        walk(tree, source, commands)
    if not commands:
        raise ShellError("the line holds no command")
    alone = len(trees) == 1 and trees[0].kind == "command" and not commands[0].redirected
    return Line(tuple(commands), alone)


def walk(node, source: str, out: list[Command]) -> None:
    if node.kind == "command":
        out.append(command(node, source))
    elif node.kind in ("list", "pipeline"):
        for part in node.parts:
            if part.kind == "operator" and part.op not in LIST_OPERATORS:
                raise ShellError(OPERATOR_REASONS.get(part.op, f"the operator `{part.op}` is not allowed"))
            if part.kind == "pipe" and part.pipe != "|":
                raise ShellError(OPERATOR_REASONS.get(part.pipe, f"the pipe `{part.pipe}` is not allowed"))
            if part.kind not in ("operator", "pipe"):
                walk(part, source, out)
    else:
        raise ShellError(NODE_REASONS.get(node.kind, f"shell syntax `{node.kind}` is not allowed"))


def command(node, source: str) -> Command:
    words, inputs, redirected = [], [], False
    for part in node.parts:
        if part.kind == "word":
            words.append(word(part, source))
        elif part.kind == "redirect":
            target = redirect(part, source)
            if target is None:
                redirected = True
            else:
                inputs.append(target)
        else:
            raise ShellError(NODE_REASONS.get(part.kind, f"shell syntax `{part.kind}` is not allowed"))
    if not words:
        raise ShellError("a redirection without a command is not allowed")
    return Command(tuple(words), tuple(inputs), redirected or bool(inputs))


def redirect(node, source: str) -> Word | None:
    """Accept `2>/dev/null`, `2>&1` (return None) and `< FILE` (return FILE); refuse the rest."""
    fd, kind, target = getattr(node, "input", None), node.type, node.output
    if kind == ">&" and fd == 2 and target == 1:
        return None
    if kind == ">" and fd == 2 and not isinstance(target, int) and word(target, source).text == "/dev/null":
        return None
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
    read = lex(raw)
    if read.text != node.word:
        raise ShellError(f"the word `{raw}` reads ambiguously; quote it with plain single quotes")
    return read


def lex(raw: str) -> Word:
    """Read one word: plain characters, '...', "..." without `$` or backticks, backslash escapes."""
    text, wild, i = [], set(), 0
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
        elif c in PLAIN or c in GLOB or (c == "~" and text and text[-1] not in "=:"):  # HEAD~1, not ~/x
            if c in GLOB:
                wild.add(len(text))
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
    return Word("".join(text), frozenset(wild))


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
