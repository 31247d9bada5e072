"""How stored numbers and text read in every text the harness writes: the terminal, commits, the agent's context.

Output of untrusted code (train.py, the scorer) is shown, never obeyed: each character of an
UNSAFE Unicode category (controls such as ESC, CR, BEL and backspace; format characters such
as bidi overrides, zero-width and tag characters; private-use, surrogate and unassigned code
points; line and paragraph separators) is written as its escape, `\\x1b` or `\\u202e`, so no
escape sequence reaches a terminal and nothing is hidden from the human reading it. Text the
harness is asked to keep (a command, a hypothesis, a commit message, a ledger row) is refused
instead when it holds one, with the character named.
"""

from __future__ import annotations

import functools
import math
import re
import unicodedata

UNSAFE = {  # Unicode general category -> what it is, in a refusal
    "Cc": "a control character",
    "Cf": "an invisible format character",
    "Co": "a private-use character",
    "Cs": "a surrogate",
    "Cn": "an unassigned code point",
    "Zl": "a line separator",
    "Zp": "a paragraph separator",
}
QUOTE = "  | "  # the start of every line of untrusted output the harness shows: none of it starts a line
TAIL_LINES = 10  # lines of a log shown in a summary or a verdict
LINE_CHARS = 160  # characters of each shown line


def value(x: float | None) -> str:
    """A metric value, delta or spread: six decimals; '-' when there is none (or it is not finite)."""
    return "-" if x is None or not math.isfinite(x) else f"{x:.6f}"


def unsafe(c: str, allowed: str = "") -> bool:
    return c not in allowed and unicodedata.category(c) in UNSAFE


def escape(c: str) -> str:
    n = ord(c)
    return f"\\x{n:02x}" if n < 0x100 else f"\\u{n:04x}" if n < 0x10000 else f"\\U{n:08x}"


@functools.cache
def renderer(keep: str):
    """For one `keep`: the runs of characters that may need escaping, and each character as it is shown."""
    not_plain = re.compile(f"[^\\x20-\\x7e{re.escape(keep)}]+")  # printable ASCII and `keep` are shown as they are
    shown = functools.lru_cache(maxsize=4096)(lambda c: escape(c) if unsafe(c, keep) else c)
    return not_plain, shown


def visible(text: str, keep: str = "\n\t") -> str:
    """`text` with every unsafe character but those in `keep` written as its escape; idempotent."""
    not_plain, shown = renderer(keep)

    def render(run: re.Match) -> str:
        s = run[0]
        return s if s.isprintable() else "".join(map(shown, s))  # printable: no C* or Z* character but the space

    return not_plain.sub(render, text)


def refusal(text: str, what: str, allowed: str = "") -> str | None:
    """Why `text` may not be kept, naming its first unsafe character and the fix; None when it is plain."""
    at = next((i for i, c in enumerate(text) if unsafe(c, allowed)), None)
    if at is None:
        return None
    c = text[at]
    name = unicodedata.name(c, "")
    return (f"{what} holds U+{ord(c):04X}{f' {name}' if name else ''}, {UNSAFE[unicodedata.category(c)]} "
            f"(character {at + 1}): write it in plain visible text, without control or invisible characters, "
            "which could hide what it says from the human who reads it")


def quoted(log: str) -> str:
    """The last TAIL_LINES of untrusted output, neutralised, each cut to LINE_CHARS and indented by QUOTE."""
    shown = visible(log).splitlines()[-TAIL_LINES:]
    return "\n".join(QUOTE + (s if len(s) <= LINE_CHARS else s[:LINE_CHARS - 3] + "...") for s in shown)


def unquoted(block: str) -> str:
    """The lines quoted() shows, without their QUOTE (a replay reads a recorded log tail back)."""
    return "\n".join(line.removeprefix(QUOTE) for line in block.splitlines() if line.startswith(QUOTE))
