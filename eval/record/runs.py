"""The layout of runs/, and the one way to write a file there: whole or not at all.

runs/<id>/            one experiment (r0001, r0002, ...): its first trial's train.py, train.log,
                      metrics.json, score.json (the scorer's parsed result), out/; verdict.json for the experiment;
                      origin.json: the checkout that started it (a worker's worktree, when workers share runs/)
runs/<id>/s2, s3 ...  the experiment's further trials (one seed each), named <id>-s2, ... in metrics
runs/<id>/b1, b2 ...  the best's reruns beside a promising candidate (paired verdicts), named <id>-b1, ...
runs/<id>/c1, c2 ...  retrains of a kept version for ./run.sh confirm (their test scores: runs/confirm/)
runs/<id>/k1, g1 ...  a keep's confirmation before it is promoted (parallel slots): the candidate (k) beside
                      fresh runs of the global best (g); runs/<id>/confirm.json says against which, and if it ended
runs/ledger.jsonl     every verdict (eval/record/ledger.py)
runs/calls/           which experiment each of the agent's ./run.sh calls started (eval/record/calls.py)
runs/scorer/          each trial's raw scorer output, <trial id>.log: sealed from the agent (it read the split)
runs/audit.jsonl      every guard decision (hooks/audit.py)
runs/running.json     the trial running now, for the status line (gone when none is)
runs/.leases/         one flock'ed file per device slot, held by the experiment running on it (eval/leases.py)
runs/.lock            the serial lock: a lease and an id taken, a recovery, a verdict applied, one at a time
runs/loop.json        the headless loop's clock, caps and API cost (loop/loop.py)
runs/report.html      the morning report (eval/record/page.py); test-split numbers never in it
runs/confirm/         test-split scores (./run.sh confirm) and the report with them: sealed from the agent
"""

from __future__ import annotations

import json
import os
import re
import threading
from pathlib import Path

RUNS = Path("runs")
EXPERIMENT_ID = re.compile(r"^r\d{4,}$")  # an experiment: r0001
TRIAL_ID = re.compile(r"^(r\d{4,})(?:-([sbcgk])(\d+))?$")  # a trial: r0001 (the first), r0001-s2, -b1, -c1, -k1, -g1
VERDICT = "verdict.json"
METRICS = "metrics.json"
SCORE = "score.json"
ORIGIN = "origin.json"
SCORER_LOGS = RUNS / "scorer"
AUDIT = RUNS / "audit.jsonl"
RUNNING = RUNS / "running.json"
LOOP = RUNS / "loop.json"
LEASES = RUNS / ".leases"
CONFIRM = RUNS / "confirm"


def new_run_dir(runs: Path) -> tuple[str, Path]:
    """Allocate the next id r0001, r0002, ...; mkdir is atomic, so two runs never share one."""
    runs.mkdir(parents=True, exist_ok=True)
    taken = [int(p.name[1:]) for p in runs.glob("r[0-9]*") if EXPERIMENT_ID.match(p.name)]
    n = max(taken, default=0) + 1
    while True:
        run_id = f"r{n:04d}"
        try:
            (runs / run_id).mkdir()
            return run_id, runs / run_id
        except FileExistsError:
            n += 1


def origin(repo: Path, run_id: str) -> Path:
    """The checkout that started the experiment: its verdict is applied there (its branch, its train.py). The
    repo asking, for an experiment that did not record one (or whose worktree is gone)."""
    where = (read_json(repo / RUNS / run_id / ORIGIN) or {}).get("worktree")
    return Path(where) if isinstance(where, str) and Path(where).is_dir() else repo.resolve()


def experiment_ids(repo: Path) -> list[str]:
    """Every experiment dir under runs/, oldest first."""
    runs = repo / RUNS
    return sorted(p.name for p in runs.iterdir() if EXPERIMENT_ID.match(p.name)) if runs.is_dir() else []


def trial_dir(experiment_dir: Path, k: int, arm: str = "s") -> tuple[str, Path]:
    """The id and dir of trial k (1 = the first) of the experiment in experiment_dir.

    arm: "s" the candidate's trials (its first is the experiment dir itself), "b" the best's reruns, "c" confirm's.
    """
    if arm == "s" and k == 1:
        return experiment_dir.name, experiment_dir
    return f"{experiment_dir.name}-{arm}{k}", experiment_dir / f"{arm}{k}"


def trial_path(trial_id: str) -> str:
    """Where a trial's files are, relative to the repository: r0001-s2 is runs/r0001/s2."""
    return str(RUNS / trial_id.replace("-", "/"))


def scorer_log(repo: Path, trial_id: str) -> Path:
    """Where the scorer's own output of one trial goes: out of the run dir, in a folder the guard seals."""
    (repo / SCORER_LOGS).mkdir(parents=True, exist_ok=True)
    return repo / SCORER_LOGS / f"{trial_id}.log"


def seed_dirs(run_dir: Path, arm: str = "s") -> list[Path]:
    """runs/<id> holds the first trial, runs/<id>/s2, s3, ... the others, in order; arm "b": the best's b1, b2, ..."""
    extra = sorted((p for p in run_dir.glob(f"{arm}[0-9]*") if p.name[1:].isdigit()), key=lambda p: int(p.name[1:]))
    return [run_dir, *extra] if arm == "s" else extra


def atomic_write(path: Path, data: bytes | str) -> None:
    """Write through a temporary file beside `path` and rename: a reader sees the old file or the new one. The
    temporary name is the writer's (process and thread): two trials at once in one process (parallel slots, a
    Ray driver) write the same data/heldout-check.json."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    try:
        with open(tmp, "wb") as f:
            f.write(data.encode() if isinstance(data, str) else data)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)  # gone after the rename; left only by a failed write


def write_json(path: Path, data: dict) -> None:
    atomic_write(path, json.dumps(data, indent=2) + "\n")


def read_json(path: Path) -> dict | None:
    """A JSON object from disk, or None when it is missing or broken."""
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None
