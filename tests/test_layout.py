"""The layout: each folder answers one question, and imports run one way.

    commands, replay, loop  ->  hooks  ->  eval  ->  eval/record, eval/scoring, sandbox

Read from the source (ast), every import counts, the ones inside functions too: an import
deferred for speed is still a dependency. eval/scoring/ is what the scoring sandbox
mounts, so it may import only itself, the standard library, torch and numpy.
"""

from __future__ import annotations

import ast
import functools
import json
import sys
from pathlib import Path

import pytest

from hooks.guard import settings

REPO = Path(__file__).resolve().parent.parent
PACKAGES = ("commands", "replay", "loop", "hooks", "eval", "sandbox")
# room -> the rooms it may import (besides itself); the longest matching prefix names a module's room
MAY_IMPORT = {
    "commands": {"replay", "loop", "hooks", "eval", "eval.record", "eval.scoring", "sandbox"},
    "replay": {"loop", "hooks", "eval", "eval.record", "eval.scoring", "sandbox"},
    "loop": {"hooks", "eval", "eval.record", "sandbox"},
    "hooks": {"hooks.guard", "eval", "eval.record"},
    "hooks.guard": {"eval", "eval.record"},
    "eval": {"eval.record", "eval.scoring", "sandbox"},
    "eval.record": set(),
    "eval.scoring": set(),
    "sandbox": set(),
}
SCORING_THIRD_PARTY = {"torch", "numpy"}


def module_name(path: Path, repo: Path) -> str:
    parts = path.relative_to(repo).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules(repo: Path = REPO, packages: tuple[str, ...] = PACKAGES) -> dict[str, Path]:
    return {module_name(p, repo): p for package in packages for p in (repo / package).rglob("*.py")}


def imports(path: Path) -> set[str]:
    """Every module this file imports, absolute names, wherever the import statement stands."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found |= {f"{node.module}.{alias.name}" for alias in node.names}
    return found


def room(module: str) -> str:
    return max((r for r in MAY_IMPORT if module == r or module.startswith(r + ".")), key=len)


def first_party(name: str, known: dict[str, Path]) -> str | None:
    """The project module `name` refers to (a module, or a package's __init__), else None."""
    while name and name not in known:
        name = name.rpartition(".")[0]
    return name or None


@functools.cache
def graph(repo: Path = REPO, packages: tuple[str, ...] = PACKAGES) -> dict[str, set[str]]:
    known = modules(repo, packages)
    return {m: {t for name in imports(p) if (t := first_party(name, known)) and t != m} for m, p in known.items()}


def test_every_module_belongs_to_a_room():
    assert all(room(m) for m in modules())


@pytest.mark.parametrize("module", sorted(modules()))
def test_imports_run_one_way(module):
    own = room(module)
    wrong = sorted(t for t in graph()[module] if room(t) != own and room(t) not in MAY_IMPORT[own])
    assert not wrong, f"{module} ({own}/) imports {wrong}: {own} may import only {sorted(MAY_IMPORT[own])}"


def circles(edges: dict[str, set[str]]) -> list[list[str]]:
    state, cycles = {}, []

    def visit(m: str, path: list[str]) -> None:
        state[m] = "open"
        for t in sorted(edges[m]):
            if state.get(t) == "open":
                cycles.append(path[path.index(t):] + [t])
            elif t not in state:
                visit(t, path + [t])
        state[m] = "done"

    for m in sorted(edges):
        if m not in state:
            visit(m, [m])
    return cycles


def test_no_import_circle():
    assert not circles(graph()), f"import circles: {circles(graph())}"


def test_the_scoring_folder_imports_only_itself_the_stdlib_torch_and_numpy():
    for module, path in modules().items():
        if room(module) != "eval.scoring":
            continue
        for name in imports(path):
            top = name.split(".")[0]
            ok = (top in sys.stdlib_module_names or top in SCORING_THIRD_PARTY or name == "__future__"
                  or name == "eval.scoring" or name.startswith("eval.scoring."))
            assert ok, f"{module} imports {name}: the scoring sandbox sees only eval/scoring/, torch and numpy"


def test_nothing_imports_a_command():
    users = {m: sorted(t for t in ts if room(t) == "commands") for m, ts in graph().items() if room(m) != "commands"}
    assert not any(users.values()), {m: u for m, u in users.items() if u}


def test_the_layout_checks_see_a_violation(tmp_path):
    """The checks above can fail: an upward import inside a function, and a circle, are both found."""
    for name, text in {"sandbox/job.py": "def f():\n    from eval.config import Program\n",
                       "eval/config.py": "import sandbox.job\n"}.items():
        (tmp_path / name).parent.mkdir(exist_ok=True)
        (tmp_path / name).write_text(text)
    edges = graph(tmp_path, ("sandbox", "eval"))
    assert edges == {"sandbox.job": {"eval.config"}, "eval.config": {"sandbox.job"}}
    assert room("eval.config") not in MAY_IMPORT[room("sandbox.job")]
    assert circles(edges) == [["eval.config", "sandbox.job", "eval.config"]]


def test_settings_allow_list_is_the_guards_tables():
    on_disk = json.loads((REPO / ".claude" / "settings.json").read_text())
    assert on_disk["permissions"]["allow"] == settings.allow_rules(), (
        "the allow list of .claude/settings.json disagrees with the guard's tables: "
        "run `.venv/bin/python -m hooks.guard.settings`")
