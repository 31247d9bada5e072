"""Device leases: each running experiment holds one slot of the machine (sandbox/devices.py) alone.

A lease is an flock on runs/.leases/<slot>.lock, held by the experiment's process from its start to its
verdict. The kernel lets go of it when that process dies, kill -9 included, so no lease outlives its
experiment and nothing needs cleaning up. The file says who holds it (the experiment, the pid, since
when): recovery spares the experiments still running, and ./run.sh status shows them. Leases are taken,
and their holders read, only under the repository's serial lock (eval/experiment.py serial), so a probe
never takes a slot from under an experiment that is starting. When every slot is held, the next
experiment is refused, not queued (a loop's worker tries again after its next turn).
"""

from __future__ import annotations

import fcntl
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path

from eval.record.runs import LEASES
from sandbox.job import Lease


@dataclass
class Held:
    """A lease this process holds: its open, flocked file (closing it lets go)."""

    lease: Lease
    fd: int


def path(repo: Path, name: str) -> Path:
    return repo / LEASES / f"{name}.lock"


def try_lock(file: Path) -> int | None:
    """The file opened and flocked, or None while another process holds it."""
    fd = os.open(file, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    return fd


def take(repo: Path, pool: list[Lease]) -> Held | None:
    """The first free slot of the pool, held; None when every one is."""
    (repo / LEASES).mkdir(parents=True, exist_ok=True)
    for lease in pool:
        fd = try_lock(path(repo, lease.name))
        if fd is not None:
            return Held(lease, fd)
    return None


def claim(held: Held, run_id: str, worktree: Path) -> None:
    """Write into the lease file which experiment holds it, from which checkout (a worker's worktree)."""
    data = json.dumps({"run": run_id, "worktree": str(worktree.resolve()), "pid": os.getpid(), "since": time.time(),
                       **held.lease.record()})
    os.ftruncate(held.fd, 0)
    os.pwrite(held.fd, data.encode(), 0)


def release(held: Held) -> None:
    os.close(held.fd)


def holders(repo: Path) -> dict[str, dict]:
    """slot name -> what its holder wrote (run, worktree, pid, since, cpus, gpus), for every slot held now."""
    found = {}
    for file in sorted((repo / LEASES).glob("*.lock")):
        fd = try_lock(file)
        if fd is not None:  # free: its contents are a dead holder's
            os.close(fd)
            continue
        try:
            found[file.stem] = json.loads(file.read_text() or "{}")
        except (OSError, ValueError):
            found[file.stem] = {}  # taken a moment ago, not claimed yet (cannot happen under the serial lock)
    return found


def live_runs(repo: Path) -> set[str]:
    """The experiments running now: those named by a held lease."""
    return {h["run"] for h in holders(repo).values() if "run" in h}
