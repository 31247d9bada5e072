"""The morning report's content, read from what a night leaves: the ledger, git, runs/, the audit log.

One gathering serves the page (eval/record/page.py) and the terminal (eval/record/report.py).
It reads runs/confirm/log.jsonl too, for the human: the page the agent can read leaves those
test-split numbers out (page.render decides, with `sealed`).
"""

from __future__ import annotations

import contextlib
import json
import re
import statistics
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from eval.record import history, ledger
from eval.record.runs import AUDIT, CONFIRM, LOOP, RUNS, VERDICT, read_json, seed_dirs
from eval.record.scratchpad import SCRATCHPAD
from eval.record.text import value

DIFF_CHARS = 20_000  # per experiment: a huge train.py must not make the page unreadable
SCRATCHPAD_CHARS = 100_000
AUDIT_BYTES = 32 * 2**20  # the audit log's tail that is read: a night is a few MB
LAST_REFUSALS = 10
KIND_CHARS = 70
OWN_LOGS = {"tensorboard": "events.out.tfevents.*", "wandb": "*.wandb"}  # train.py's own logs under out/
NOT_DIFFED = ("scratchpad.md",)  # committed with each keep, shown whole in its own section
QUOTED = re.compile(r"`[^`]*`|'[^']*'|\"[^\"]*\"|\([^)]*\)")
IDS = re.compile(r"\br\d{4,}\b")


@dataclass(frozen=True)
class Budget:
    """program.md's budget and how much of it is used (hours: since the first verdict)."""

    hours_used: float | None
    hours: float
    experiments: int


@dataclass(frozen=True)
class Experiment:
    row: dict  # the ledger row
    diff: str  # the candidate's train.py against the version it was tried on; "" when it changed nothing
    diff_cut: int  # characters of the diff left out
    git_diff: str | None  # the command that shows the whole diff; None when nothing of it is in git
    log_tail: str  # the end of the log of a run that gave no value
    files: tuple[str, ...]  # paths relative to runs/: each seed's train.log and metrics.json, verdict.json
    own_logs: tuple[tuple[str, str], ...]  # (tensorboard | wandb, folder relative to runs/) written by train.py

    @property
    def spread(self) -> float | None:
        return ledger.seed_spread(self.row)

    @property
    def measured(self) -> str:
        """'1.234567 ± 0.012345 (3 seeds)': the mean, its own seed spread, how many runs it rests on."""
        n = len(self.row.get("values") or [])
        spread = f" ± {value(self.spread)}" if self.spread is not None else ""
        return f"{value(self.row.get('mean'))}{spread} ({n} seed{'s' * (n != 1)})" if n else "no value"

    @property
    def margin(self) -> str:
        """How far the delta cleared (or missed) the improvement it needed, as a multiple of it: how sure a keep is."""
        delta, threshold = self.row.get("delta"), self.row.get("threshold")
        return "-" if delta is None or not threshold else f"{delta / threshold:.1f}x"


@dataclass(frozen=True)
class Refusals:
    total: int
    kinds: tuple[tuple[str, int], ...]  # (kind, count), the most frequent first
    last: tuple[dict, ...]  # the latest audit entries that were denials, oldest first


@dataclass(frozen=True)
class Morning:
    metric: str
    direction: str
    generated: str  # ISO 8601 UTC
    experiments: tuple[Experiment, ...]
    baseline: dict | None  # the first kept row
    best: dict | None  # the latest kept row (ledger.best)
    budget: Budget
    loop: dict | None  # runs/loop.json: the last headless loop's clock, caps and API cost
    refusals: Refusals
    scratchpad: str
    confirm: tuple[dict, ...]  # runs/confirm/log.jsonl: test-split numbers, only for sealed pages

    def count(self, status: str) -> int:
        return sum(e.row.get("status") == status for e in self.experiments)

    def find(self, row: dict | None) -> Experiment | None:
        return next((e for e in self.experiments if row and e.row["id"] == row["id"]), None)

    @property
    def gain(self) -> tuple[float, float | None] | None:
        """The best's improvement over the baseline (positive = better) and as a fraction of it; None before a
        second keep."""
        if self.best is None or self.baseline is None or self.best["id"] == self.baseline["id"]:
            return None
        gain = (self.best["mean"] - self.baseline["mean"]) * (1 if self.direction == "maximize" else -1)
        return gain, gain / abs(self.baseline["mean"]) if self.baseline["mean"] else None

    @property
    def test_result(self) -> list[str]:
        """The latest confirm in words: the held-out numbers the agent must never see (sealed pages, the terminal)."""
        if not self.confirm:
            return ["not read yet (./run.sh confirm)"]
        last = self.confirm[-1]
        lines = [f"confirm of {last.get('time', '?')}; the test split has been read {len(self.confirm)} time(s)"]
        for label, r in (last.get("runs") or {}).items():
            lines.append(f"{label} {r.get('id')}: val {value(mean(r.get('val')))}, test {value(mean(r.get('test')))} "
                         f"({len(r.get('test') or [])} seeds)")
        j = last.get("judgement")
        lines.append("nothing kept after the baseline: nothing to confirm" if not j else
                     f"{str(j.get('status', '?')).upper()}: test delta {value(j.get('delta_test'))} against the noise "
                     f"threshold {value(j.get('threshold'))} (val delta {value(j.get('delta_val'))})")
        return lines


def mean(values: object) -> float | None:
    return statistics.fmean(values) if isinstance(values, list) and values else None


def refusal_kind(tool: object, reason: object) -> str:
    """What kind of refusal: the reason's first clause, without the quoted specifics (`pip`, a path, an id)."""
    text = IDS.sub("rNNNN", QUOTED.sub("", str(reason or "")))
    clause = next((c.strip() for c in re.split(r"[:;]", text) if re.search(r"[a-zA-Z]{3}", c)), "no reason given")
    return f"{tool or '?'}: {clause}"[:KIND_CHARS]


def refusals(repo: Path) -> Refusals:
    """The guard's denials in runs/audit.jsonl, counted by kind; lines that are not JSON are skipped."""
    lines = []
    if (repo / AUDIT).is_file():  # not a FIFO or a device: reading one could block the verdict
        with contextlib.suppress(OSError), open(repo / AUDIT, "rb") as f:
            f.seek(max(0, f.seek(0, 2) - AUDIT_BYTES))
            lines = f.read().splitlines()
    denied = []
    for line in lines:
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        if isinstance(entry, dict) and entry.get("decision") == "deny":
            denied.append(entry)
    kinds = Counter(refusal_kind(e.get("tool"), e.get("reason")) for e in denied)
    return Refusals(len(denied), tuple(kinds.most_common()), tuple(denied[-LAST_REFUSALS:]))


def jsonl(path: Path) -> tuple[dict, ...]:
    try:
        lines = path.read_text(errors="replace").splitlines() if path.is_file() else []
    except OSError:
        return ()
    found = []
    for line in lines:
        try:
            found.append(json.loads(line))
        except ValueError:
            continue
    return tuple(r for r in found if isinstance(r, dict))


def own_logs(run_dir: Path) -> tuple[tuple[str, str], ...]:
    """The folders under each seed's out/ that hold TensorBoard or W&B (offline) files train.py wrote."""
    found = []
    for seed in seed_dirs(run_dir):
        for kind, pattern in OWN_LOGS.items():
            for folder in sorted({p.parent for p in (seed / "out").rglob(pattern) if p.is_file()}):
                found.append((kind, str(folder.relative_to(run_dir.parent))))
    return tuple(found)


def files(run_dir: Path) -> tuple[str, ...]:
    names = [d / name for d in seed_dirs(run_dir) for name in ("train.log", "metrics.json")] + [run_dir / VERDICT]
    return tuple(str(p.relative_to(run_dir.parent)) for p in names if p.is_file())


def diffed(row: dict, refs: dict[str, str]) -> tuple[str, str] | None:
    """(sha, name) of the commit holding the candidate: the keep's own commit, or the discarded one's ref."""
    if row.get("status") == "keep":
        return (row["commit"], row["commit"][:10]) if row.get("commit") else None
    return (refs[row["id"]], f"{history.DISCARDED}/{row['id']}") if row["id"] in refs else None


def experiments(repo: Path, rows: list[dict]) -> tuple[Experiment, ...]:
    refs = history.discarded(repo)
    commits = {row["id"]: found for row in rows if (found := diffed(row, refs))}
    diffs = history.changes(repo, list(dict.fromkeys(sha for sha, _ in commits.values())), DIFF_CHARS, NOT_DIFFED)
    found = []
    for row in rows:
        run_dir, (sha, name) = repo / RUNS / row["id"], commits.get(row["id"], ("", ""))
        diff, cut = diffs.get(sha, ("", 0))
        tail = "" if row.get("status") in ("keep", "discard") else (read_json(run_dir / VERDICT) or {}).get(
            "log_tail", "")
        found.append(Experiment(row, diff, cut, f"git diff {name}^ {name}" if sha in diffs else None,
                                str(tail or ""), files(run_dir), own_logs(run_dir)))
    return tuple(found)


def gather(repo: Path, rows: list[dict], metric: str, direction: str, budget: Budget) -> Morning:
    """The report on these ledger rows (ledger.read) and what runs/, git and the logs hold about them."""
    kept = [r for r in rows if r.get("status") == "keep" and r.get("direction") == direction]
    try:
        notes = (repo / SCRATCHPAD).read_text(encoding="utf-8", errors="replace")[:SCRATCHPAD_CHARS]
    except OSError:
        notes = ""
    return Morning(
        metric=metric, direction=direction, generated=datetime.now(UTC).isoformat(timespec="seconds"),
        experiments=experiments(repo, rows), baseline=kept[0] if kept else None, best=ledger.best(rows, direction),
        budget=budget, loop=read_json(repo / LOOP), refusals=refusals(repo), scratchpad=notes,
        confirm=jsonl(repo / CONFIRM / "log.jsonl"),
    )
