"""The option tables of the read-only commands: every spelling of an option in one entry.

An entry is the option's names joined by `|`, then what its value is:
    -n|--lines=N          a value: -n 5, -n5, --lines=5
    -q|--quiet|--silent   no value
    --color[=WHEN]        an optional value: --color or --color=auto (a short name takes none)
    -f|--file=FILE        the value names a file the command reads: the path rules check it
So the short and the long form of an option share one answer to "does it take a value, and is
that a file", and can never disagree.
"""

from __future__ import annotations

import re
from dataclasses import dataclass


@dataclass(frozen=True)
class Option:
    """One option of a command: all its spellings, whether it takes a value, whether that names a file."""

    names: tuple[str, ...]  # -n, --lines
    value: str = ""  # "" (none), "required" or "optional"
    reads: bool = False  # the value is a file the command reads


def option_table(spec: str) -> dict[str, Option]:
    """Each spelling -> its Option, from entries like `-n|--lines=N`."""
    table: dict[str, Option] = {}
    for entry in spec.split():
        names, optional, value = entry.partition("[=")
        if not optional:
            names, _, value = entry.partition("=")
        option = Option(tuple(names.split("|")), "optional" if optional else "required" if value else "",
                        value.rstrip("]") == "FILE")
        for name in option.names:
            if name in table or not re.fullmatch(r"-[^-]|--[a-z0-9][a-z0-9-]*", name):
                raise ValueError(f"option table: {name!r} is repeated or not an option name")
            table[name] = option
    return table
