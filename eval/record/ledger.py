"""The ledger: every experiment's verdict, append-only, in runs/ledger.jsonl and results.tsv.

runs/ledger.jsonl is the record (one JSON object per line, everything); results.tsv holds
Karpathy's five columns and is derived from it. The verdict step appends one row per
experiment and may be killed at any instant, so an append is one os.write on an O_APPEND
file followed by fsync, under an exclusive flock (two appends never interleave, and the
check for a duplicate id sees every earlier row). A crash mid-write leaves at worst a torn
last line: readers skip it, and the next append (or repair) cuts it before writing.
"""

from __future__ import annotations

import fcntl
import json
import math
import os
import statistics
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

from eval.record.runs import EXPERIMENT_ID
from eval.record.text import refusal

LEDGER = Path("runs") / "ledger.jsonl"
TSV = Path("results.tsv")
STATUSES = ("keep", "discard", "crash", "timeout")
DIRECTIONS = ("minimize", "maximize")

NUM, STR, LIST, NONE = (int, float), (str,), (list,), (type(None),)
# name, accepted types, required, meaning. Every ledger line holds every field (null when not given),
# in this order; keys outside the table are kept as given, after these.
FIELDS: tuple[tuple[str, tuple[type, ...], bool, str], ...] = (
    ("id", STR, True, "experiment id r0001, r0002, ...; appending an id already in the ledger is a no-op"),
    ("time", STR, False, "when the verdict was made, ISO 8601 UTC; append fills it in when absent"),
    ("status", STR, True, "the verdict: keep | discard | crash | timeout"),
    ("outcome", STR, True, "how the candidate's run ended (metrics.json): ok | crash | timeout | nan | oom | overtime"),
    ("metric", STR, True, "the metric's name, e.g. val_bpb"),
    ("direction", STR, True, "minimize | maximize"),
    ("mean", NUM + NONE, True, "the candidate's metric: mean over its seeds; null when no run gave a value"),
    ("seeds", LIST + NONE, False, "the seeds the candidate ran with, one per run"),
    ("values", LIST + NONE, False, "the metric of each seed's run, null for a run without a value"),
    ("spread", NUM + NONE, False, "seed-to-seed standard deviation of the best: the noise a keep must beat"),
    ("delta", NUM + NONE, False, "improvement of the mean over the best's mean, in metric units: positive = better"),
    ("threshold", NUM + NONE, False, "the improvement a keep had to clear (e.g. k standard errors; 0 for greedy)"),
    ("best_id", STR + NONE, False, "id of the best the candidate was judged against; null for the first run"),
    ("hypothesis", STR, True, "the agent's one-line hypothesis (./run.sh -m)"),
    ("description", STR + NONE, False, "short text for results.tsv and the plot; the hypothesis when null"),
    ("phase", STR + NONE, False, "program.md's current phase when the verdict was made"),
    ("commit", STR, True, "keep: sha of the new commit; else sha of the best commit the candidate was judged against"),
    ("diff_ref", STR + NONE, False, "git ref that holds a discarded/crashed candidate's diff; null for keep"),
    ("reason", STR + NONE, False, "why the run gave no value (crash, timeout), from metrics.json"),
    ("training_seconds", NUM + NONE, False, "training wall clock, summed over the candidate's runs"),
    ("total_seconds", NUM + NONE, False, "the whole experiment's wall clock: training, scoring, reruns"),
    ("peak_memory_mb", NUM + NONE, False, "peak memory of the training sandbox, max over the runs"),
)
REQUIRED = tuple(name for name, _, required, _ in FIELDS if required)
# results.tsv: Karpathy's columns; the second is named after the metric (val_bpb for the default task).
TSV_COLUMNS = ("commit", "{metric}", "memory_gb", "status", "description")


class TornLedger(UserWarning):
    """The ledger ends in (or holds) a line that is not a complete row: a write cut short by a crash."""


def normalize(row: dict) -> dict:
    """The row as it is stored: checked, every field present, NaN/inf as null (JSON has neither)."""
    missing = [name for name in REQUIRED if name not in row]
    if missing:
        raise ValueError(f"ledger row lacks required fields: {', '.join(missing)}")
    out = {name: finite(row.get(name)) for name, _, _, _ in FIELDS}
    out.update({k: finite(v) for k, v in row.items() if k not in out})
    out["time"] = out["time"] or datetime.now(UTC).isoformat(timespec="seconds")
    for name, types, _, _ in FIELDS:
        if not isinstance(out[name], types) or isinstance(out[name], bool):
            expected = " or ".join(t.__name__ for t in types)
            raise ValueError(f"ledger row field {name}={out[name]!r}: expected {expected}")
    if not EXPERIMENT_ID.match(out["id"]):
        raise ValueError(f"ledger row id {out['id']!r}: expected r0001, r0002, ...")
    if out["status"] not in STATUSES:
        raise ValueError(f"ledger row status {out['status']!r}: expected one of {', '.join(STATUSES)}")
    if out["direction"] not in DIRECTIONS:
        raise ValueError(f"ledger row direction {out['direction']!r}: expected one of {', '.join(DIRECTIONS)}")
    if out["status"] == "keep" and out["mean"] is None:
        raise ValueError(f"ledger row {out['id']}: a keep needs a finite mean")
    for name, text in out.items():  # what the ledger shows (results.tsv, status) hides nothing from the human
        why = isinstance(text, str) and refusal(text, f"ledger row field {name}", allowed="\t\n")
        if why:
            raise ValueError(why)
    return out


def finite(value):
    """JSON has no NaN: a non-finite number (also inside a list) is stored as null."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, list):
        return [finite(v) for v in value]
    return value


def describe(row: dict) -> str:
    """One line of text: the description, else the hypothesis, with tabs and newlines flattened."""
    return " ".join((row.get("description") or row.get("hypothesis") or "").split())


def seed_spread(row: dict) -> float | None:
    """The row's own seed-to-seed standard deviation; None with one draw (identical values are one draw)."""
    values = row.get("values") or []
    return statistics.stdev(values) if len(set(values)) > 1 else None


def tsv_line(row: dict) -> str:
    """Karpathy's row: 7-char commit, value with 6 decimals (0.000000 without one), memory in GB (0.0 unknown)."""
    mean, memory = row.get("mean"), row.get("peak_memory_mb")
    value = 0.0 if mean is None else mean
    memory_gb = 0.0 if memory is None else memory / 1024
    return f"{row['commit'][:7]}\t{value:.6f}\t{memory_gb:.1f}\t{row['status']}\t{describe(row)}\n"


def render_tsv(rows: list[dict]) -> bytes:
    """results.tsv as the ledger says it must be; empty for an empty ledger (no metric to name a column)."""
    if not rows:
        return b""
    header = "\t".join(TSV_COLUMNS).format(metric=rows[0]["metric"]) + "\n"
    return (header + "".join(tsv_line(r) for r in rows)).encode()


def parse(line: bytes) -> dict | None:
    try:
        row = json.loads(line)
    except ValueError:
        return None
    return row if isinstance(row, dict) and all(k in row for k in REQUIRED) else None


def scan(data: bytes) -> tuple[list[dict], int, int]:
    """(complete rows, byte offset just past the last of them, invalid lines before that offset)."""
    rows, end, bad, pending, start = [], 0, 0, 0, 0
    while (newline := data.find(b"\n", start)) != -1:
        row = parse(data[start:newline])
        if row is None:
            pending += 1
        else:
            rows.append(row)
            end, bad, pending = newline + 1, bad + pending, 0
        start = newline + 1
    return rows, end, bad


def read_all(fd: int) -> bytes:
    chunks, offset = [], 0
    while chunk := os.pread(fd, 1 << 20, offset):
        chunks.append(chunk)
        offset += len(chunk)
    return b"".join(chunks)


def fsync_dir(path: Path) -> None:
    """A new or replaced file survives a crash only once its directory entry is on disk."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_line(fd: int, data: bytes) -> None:
    """One os.write on an O_APPEND fd: the bytes land whole at the end, or (crash) as a torn tail."""
    written = os.write(fd, data)
    if written != len(data):
        raise OSError(f"short write to the ledger: {written} of {len(data)} bytes (disk full?)")
    os.fsync(fd)


@contextmanager
def locked(repo: Path) -> Iterator[int]:
    """The ledger opened for appending under an exclusive lock; also guards results.tsv."""
    path = repo / LEDGER
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield fd
    finally:
        os.close(fd)


def cut_torn_tail(fd: int, ledger_dir: Path) -> tuple[list[dict], int]:
    """Truncate the ledger to its last complete row, so the next line starts on a line of its own."""
    data = read_all(fd)
    rows, end, _ = scan(data)
    if end < len(data):
        os.ftruncate(fd, end)
        os.fsync(fd)
    if not data:
        fsync_dir(ledger_dir)  # the file may be new
    return rows, len(data) - end


def sync_tsv(repo: Path, rows: list[dict]) -> int:
    """Make results.tsv agree with the ledger; returns how many of its bytes were dropped.

    The usual case, bytes missing at the end (a new file, a kill between the two appends,
    a torn last line), is completed with an O_APPEND write; anything else (an edited or
    garbled file) is rewritten whole through a temporary file and os.replace.
    """
    if not rows:
        return 0
    path, want = repo / TSV, render_tsv(rows)
    try:
        have = path.read_bytes()
    except FileNotFoundError:
        have = b""
    if have == want:
        return 0
    if want.startswith(have):
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            write_line(fd, want[len(have) :])
        finally:
            os.close(fd)
        if not have:
            fsync_dir(path.parent)
        return 0
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "wb") as f:
        f.write(want)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    fsync_dir(path.parent)
    same = next((i for i, (a, b) in enumerate(zip(have, want, strict=False)) if a != b), min(len(have), len(want)))
    return len(have) - same


def append(repo: Path, row: dict) -> bool:
    """Record one experiment in runs/ledger.jsonl and results.tsv; False if its id was already there.

    Safe to repeat: a verdict step re-run after a kill -9 finds its row and only brings
    results.tsv up to date.
    """
    row = normalize(row)
    line = (json.dumps(row, allow_nan=False) + "\n").encode()
    with locked(repo) as fd:
        rows, _ = cut_torn_tail(fd, (repo / LEDGER).parent)
        fresh = all(r["id"] != row["id"] for r in rows)
        if fresh:
            write_line(fd, line)
            rows.append(row)
        sync_tsv(repo, rows)
    return fresh


def read(repo: Path) -> list[dict]:
    """The complete rows of runs/ledger.jsonl, oldest first; a torn tail is skipped with a TornLedger warning."""
    path = repo / LEDGER
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return []
    try:
        fcntl.flock(fd, fcntl.LOCK_SH)  # an append in progress finishes first: a torn tail is a real crash
        data = read_all(fd)
    finally:
        os.close(fd)
    rows, end, bad = scan(data)
    if end < len(data):
        warnings.warn(TornLedger(f"{path}: skipped a torn last line ({len(data) - end} bytes); "
                                 "the next append or ledger.repair() cuts it"), stacklevel=2)
    if bad:
        warnings.warn(TornLedger(f"{path}: skipped {bad} invalid line(s) before the last row"), stacklevel=2)
    return rows


def repair(repo: Path) -> int:
    """Cut a torn tail off runs/ledger.jsonl and bring results.tsv in line; returns the bytes removed.

    Idempotent: a clean ledger returns 0 and changes nothing.
    """
    if not (repo / LEDGER).exists():
        return 0
    with locked(repo) as fd:
        rows, cut = cut_torn_tail(fd, (repo / LEDGER).parent)
        return cut + sync_tsv(repo, rows)


def best(rows: list[dict], direction: str) -> dict | None:
    """The current best: the latest kept row (in this direction), not the best number ever seen.

    A keep is a commit, and the latest one is what train.py holds, what the next candidate
    is judged against and what a discard restores. The lowest (or highest) number in the
    ledger is often a discarded run's lucky draw: crowning it would take noise for progress,
    the failure the noise-aware verdict exists to prevent. Under that verdict each keep
    credibly beats the previous best anyway.
    """
    kept = [r for r in rows if r.get("status") == "keep" and r.get("direction") == direction]
    return kept[-1] if kept else None


def last(rows: list[dict], n: int) -> list[dict]:
    return rows[-n:] if n > 0 else []
