"""The worktrees of `./run.sh loop --workers N`: one git worktree and branch per agent session, one research.

Each worker's checkout is the home repository's commit on a branch of its own (research-w1, ...), under
workers/ (ignored by git): the same settings, hooks and guard, its own train.py and scratchpad.md. What
must be one for the whole research is a link to the home's: runs/ (the ledger, the run ids, the leases,
the serial lock), data/ (the frozen splits), sessions/ (the transcripts) and .venv. Created once, reused
by the next loop (a night resumed). program.md stays a file of each worktree (the agent reads it there),
copied from the home's whenever that changes: the human steers every worker by editing the home's.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from eval.record import history
from eval.record.runs import atomic_write

WORKERS = Path("workers")
SHARED = ("runs", "data", "sessions", ".venv")  # links to the home's in every worker
PROGRAM = "program.md"


@dataclass(frozen=True)
class Worker:
    name: str  # w1, w2, ...
    path: Path  # its worktree
    branch: str


def prepare(home: Path, n: int) -> list[Worker]:
    """N worktrees of the home repository, each on its own branch, sharing runs/, data/, sessions/, .venv."""
    r = history.open_repo(home)
    base = history.branch(home) or "research"
    for name in SHARED:
        if name != ".venv":
            (home / name).mkdir(exist_ok=True)
    workers = []
    for k in range(1, n + 1):
        w = Worker(f"w{k}", (home / WORKERS / f"w{k}").resolve(), f"{base}-w{k}")
        if not w.path.exists():
            exists = w.branch in [b.name for b in r.branches]
            r.git.worktree("add", *([] if exists else ["-b", w.branch]), str(w.path), w.branch if exists else "HEAD")
        for name in SHARED:
            link = w.path / name
            if not link.is_symlink() and (home / name).exists():
                os.symlink((home / name).resolve(), link)
        steer(home, w)
        workers.append(w)
    return workers


def steer(home: Path, worker: Worker) -> None:
    """The home's program.md into the worker's worktree, when it differs (the harness reads it every call)."""
    text = (home / PROGRAM).read_bytes()
    if (worker.path / PROGRAM).read_bytes() != text:
        atomic_write(worker.path / PROGRAM, text)
