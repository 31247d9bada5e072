"""program.md's YAML front matter: the one steering config, schema-checked on every read.

Humans edit program.md while the loop runs, so nothing caches it: every run and every
hook call reads it again, and a broken edit is reported with the field that is wrong.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from eval.record.runs import atomic_write
from sandbox.job import Limits

SCHEMA_PATH = Path(__file__).parent / "schemas" / "program.schema.json"
# Validated front matter by content hash: the guard reads program.md on every tool call,
# and yaml + jsonschema cost it ~250 ms to import. The agent cannot write under eval/.
CACHE_FILE = Path(__file__).parent / "__pycache__" / "program-front-matter.json"

TASK_DEFAULTS = {
    "train_file": "train.py",
    "code": [],
    "editable": ["train.py"],
    "grace_seconds": 15,
    "seed": 1337,
    "cpu_budget_seconds": None,
    "options": {},
}
MOVED_TO_OPTIONS = ("seq_len", "eval_bytes")  # task keys of earlier versions, now evaluator options
VERDICT_DEFAULTS = {"rule": "noise", "k": 2.2, "seeds": 3, "min_spread": 0.0, "paired": "auto",
                    "compute_tolerance": 0.15, "confirm": "auto"}
BUDGET_DEFAULTS = {"hours": 8.0, "experiments": 100}
SANDBOX_DEFAULTS = {"memory_gb": 8, "pids": 512, "shm_mb": 1024, "output_mb": 512, "score_seconds": 120}
DEVICES_DEFAULTS = {"gpus": "all", "cpu_slots": 1}  # one slot, the whole machine: one experiment at a time


# What task.code and task.editable may not name: the harness, its records and the held-out data.
HARNESS_OWNED = ("eval", "hooks", "sandbox", "commands", "replay", "loop", "tests", "benchmarks", "data", "runs",
                 "sessions", ".git", ".claude", ".venv", "program.md", "run.sh", "pyproject.toml", "scratchpad.md")
# Names a run dir already uses: an editable file is snapshotted at runs/<id>/<path>.
RUN_DIR_NAMES = ("out", "score_in", "train.log", "metrics.json", "score.json", "verdict.json", "best", "global")


class ConfigError(ValueError):
    """program.md cannot be used; the message names the file and the field."""


@dataclass(frozen=True)
class Task:
    metric: str
    direction: str
    evaluator: str
    train_file: str
    budget_seconds: float
    grace_seconds: float
    seed: int
    cpu_budget_seconds: float | None = None  # a compute budget (eval/clock.py); None: the wall budget alone
    options: dict = field(default_factory=dict)
    code: tuple[str, ...] = ()  # read-only project files and folders, mounted at /code/<path> beside train.py
    editable: tuple[str, ...] = ("train.py",)  # what the agent may edit: snapshotted per run, kept or discarded in git


@dataclass(frozen=True)
class VerdictRule:
    """How a candidate is judged: 'noise' keeps only an improvement beyond the seed-to-seed spread."""

    rule: str
    k: float  # standard errors the improvement must clear
    seeds: int  # runs (seeds) per measured version: the baseline and each promising candidate
    min_spread: float  # floor for the measured spread, in metric units
    paired: str = "auto"  # auto | always | never: when a promising candidate is judged beside fresh runs of the best
    compute_tolerance: float = 0.15  # pairs whose CPU-seconds differ more are not compared, but run again
    confirm: str = "auto"  # auto | always | never: a keep is confirmed on fresh pairs first (auto: with >1 slot)


@dataclass(frozen=True)
class Budget:
    hours: float
    experiments: int


@dataclass(frozen=True)
class Devices:
    """What the harness owns, split into slots that experiments lease one each (sandbox/devices.py)."""

    gpus: str | tuple[int, ...]  # all | auto | the GPU indices
    cpu_slots: int  # slots of disjoint cores, on a machine (or a choice) without GPUs


@dataclass(frozen=True)
class Phase:
    name: str
    instructions: str
    web: bool = False
    domains: tuple[str, ...] = ()
    max_experiments: int | None = None


@dataclass(frozen=True)
class Program:
    task: Task
    limits: Limits
    phases: tuple[Phase, ...]
    current_phase: Phase
    body: str
    verdict: VerdictRule
    budget: Budget
    devices: Devices


def split_front_matter(text: str, source: str) -> tuple[str, str]:
    """Return (yaml, body) of a markdown file that starts with a '---' fenced block."""
    lines = text.splitlines(keepends=True)
    if not lines or lines[0].strip() != "---":
        raise ConfigError(f"{source}: must start with a '---' line opening the YAML front matter")
    for i, line in enumerate(lines[1:], start=1):
        if line.strip() == "---":
            return "".join(lines[1:i]), "".join(lines[i + 1 :])
    raise ConfigError(f"{source}: the YAML front matter is not closed by a second '---' line")


def field_name(error) -> str:
    path = ".".join(str(p) for p in error.absolute_path)
    if error.validator == "additionalProperties":
        return path or "(top level)"
    if error.validator == "required":
        missing = error.message.split("'")[1]
        return f"{path}.{missing}" if path else missing
    return path or "(top level)"


def validated(raw_yaml: str, source: str) -> dict:
    """The front matter as a dict that satisfies the schema, or a ConfigError naming the fields."""
    import jsonschema
    import yaml

    try:
        data = yaml.safe_load(raw_yaml)
    except yaml.YAMLError as e:
        raise ConfigError(f"{source}: the front matter is not valid YAML: {e}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: the front matter must be a mapping of settings")
    moved = [k for k in MOVED_TO_OPTIONS if isinstance(data.get("task"), dict) and k in data["task"]]
    if moved:
        raise ConfigError(f"{source}: task.{moved[0]} is now task.options.{moved[0]}: the evaluator's settings "
                          f"live in task.options (e.g. options: {{seq_len: 256, eval_bytes: 65536}})")
    schema = json.loads(SCHEMA_PATH.read_text())
    errors = sorted(jsonschema.Draft202012Validator(schema).iter_errors(data), key=lambda e: list(e.path))
    if errors:
        lines = [f"  {field_name(e)}: {e.message}" for e in errors]
        raise ConfigError(f"{source}: invalid front matter:\n" + "\n".join(lines))
    return data


def build(data: dict, body: str, source: str) -> Program:
    phases = tuple(
        Phase(p["name"], p["instructions"].strip(), p.get("web", False), tuple(p.get("domains", ())),
              p.get("max_experiments"))
        for p in data["phases"]
    )
    names = [p.name for p in phases]
    if len(set(names)) != len(names):
        raise ConfigError(f"{source}: phases: names must be unique, got {names}")
    if data["current_phase"] not in names:
        raise ConfigError(f"{source}: current_phase: '{data['current_phase']}' is not one of {names}")
    task_data = {**TASK_DEFAULTS, **data["task"]}
    task = Task(**{**task_data, "code": tuple(task_data["code"]), "editable": tuple(task_data["editable"])})
    check_files(task, source)
    limits = Limits(**{**SANDBOX_DEFAULTS, **data.get("sandbox", {})})
    current = phases[names.index(data["current_phase"])]
    verdict = VerdictRule(**{**VERDICT_DEFAULTS, **data.get("verdict", {})})
    budget = Budget(**{**BUDGET_DEFAULTS, **data.get("budget", {})})
    devices = {**DEVICES_DEFAULTS, **data.get("devices", {})}
    gpus = devices["gpus"] if isinstance(devices["gpus"], str) else tuple(devices["gpus"])
    return Program(task, limits, phases, current, body, verdict, budget, Devices(gpus, devices["cpu_slots"]))


def project_path(path: str, key: str, source: str) -> str:
    """A path of the project, relative and normalised; refused when it names the harness or leaves the repo."""
    parts = PurePosixPath(path).parts
    if not parts or path.startswith("/") or ".." in parts or "." in parts or path != "/".join(parts):
        raise ConfigError(f"{source}: {key}: '{path}' must be a plain relative path inside the repository "
                          "(no '/', '.' or '..' at its start, no trailing '/')")
    if parts[0] in HARNESS_OWNED or parts[0].startswith("."):
        raise ConfigError(f"{source}: {key}: '{path}' is the harness's or hidden ({parts[0]}); list your project's "
                          "own files and folders")
    return path


def check_files(task: Task, source: str) -> None:
    """task.code and task.editable: project paths, train.py editable, no file in both, no clash with runs/<id>/."""
    for key, paths in (("task.code", task.code), ("task.editable", task.editable)):
        for path in paths:
            project_path(path, key, source)
    if "train.py" not in task.editable:
        raise ConfigError(f"{source}: task.editable must include train.py, the entry point every run starts")
    for path in task.editable:
        if PurePosixPath(path).parts[0] in RUN_DIR_NAMES or re.fullmatch(r"[sbcgk]\d+", PurePosixPath(path).parts[0]):
            raise ConfigError(f"{source}: task.editable: '{path}' clashes with a name in runs/<id>/; rename it")
        inside = [c for c in task.code if PurePosixPath(path).is_relative_to(c)]
        if inside:
            raise ConfigError(f"{source}: task.editable: '{path}' lies inside task.code '{inside[0]}', which is "
                              "mounted read-only; list the folder's other files in task.code instead")


def parse(text: str, source: str = "program.md") -> Program:
    raw_yaml, body = split_front_matter(text, source)
    return build(validated(raw_yaml, source), body, source)


def load(path: Path) -> Program:
    """Read and check program.md now; an unchanged front matter is served from the cache."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as e:
        raise ConfigError(f"{path}: cannot read: {e.strerror}") from None
    raw_yaml, body = split_front_matter(text, str(path))
    key = {"yaml": raw_yaml, "schema": SCHEMA_PATH.read_text()}
    try:
        cached = json.loads(CACHE_FILE.read_text())
        data = cached["data"] if cached["key"] == key else None
    except (OSError, ValueError, KeyError, TypeError):
        data = None
    if data is None:
        data = validated(raw_yaml, str(path))
        try:
            CACHE_FILE.parent.mkdir(exist_ok=True)
            atomic_write(CACHE_FILE, json.dumps({"key": key, "data": data}))
        except OSError:
            pass  # a read-only checkout just validates every time
    return build(data, body, str(path))
