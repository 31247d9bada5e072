"""What compute a trial got, measured by the harness: the host's CPU beside the job, the GPU, the model.

A fixed time budget buys whatever compute the machine gives: a run beside a CPU hog trains a
third of the steps, and its worse metric says nothing about train.py. So every trial records
what it got (the job's CPU-seconds come from its backend: the cgroup or the process tree), what
else ran on the host meanwhile (/proc/stat: busy cores of the whole machine, less the job's
own), the GPU model and how long a kernel ran on it (nvidia-smi's utilization, sampled), and a
digest of the exported weights (same weights from two seeds: the seed is ignored, whatever the
metric says). The verdict compares runs only when their compute is alike (eval/verdict.py
comparable).
"""

from __future__ import annotations

import hashlib
import os
import re
import threading
import time
import zipfile
from dataclasses import dataclass
from pathlib import Path

from sandbox.gpu import nvidia_smi

STAT = Path("/proc/stat")
GPU_POLL_S = 1.0  # how often GpuBusy asks nvidia-smi (its utilization covers the last sample period)
# The tensors of a torch.export archive (eval/scoring/archive.py checks the whole archive in the scorer).
TENSOR = re.compile(r"^[^/]+/data/(?:weights/weight_\d+|constants/tensor_\d+)$")


@dataclass(frozen=True)
class HostCpu:
    """The whole machine's CPU time so far: busy and total, in seconds over all cores."""

    busy: float
    total: float
    at: float  # monotonic time of the reading

    @classmethod
    def now(cls) -> HostCpu | None:
        """None where /proc/stat cannot be read (not Linux): the host's load is then unknown, not zero."""
        try:
            fields = [float(x) for x in STAT.read_text().split("\n", 1)[0].split()[1:]]
        except (OSError, ValueError, IndexError):
            return None
        tick = os.sysconf("SC_CLK_TCK")
        idle = fields[3] + (fields[4] if len(fields) > 4 else 0.0)  # idle + iowait
        return cls(busy=(sum(fields[:8]) - idle) / tick, total=sum(fields[:8]) / tick, at=time.monotonic())


def other_load(before: HostCpu | None, after: HostCpu | None, job_cpu_seconds: float | None) -> float | None:
    """Cores the rest of the host kept busy while the job ran: the machine's busy cores less the job's."""
    if before is None or after is None or job_cpu_seconds is None or after.at - before.at <= 0:
        return None
    wall = after.at - before.at
    return round(max(0.0, (after.busy - before.busy - job_cpu_seconds) / wall), 2)


def gpu_name(indices: tuple[int, ...] = ()) -> str | None:
    """The model of the GPU the job is given (the first of its lease's; else the first listed), or None."""
    rows = nvidia_smi("index", "name")
    if rows is None:
        return None
    names = [name for index, name in rows if not indices or index.isdigit() and int(index) in indices]
    return names[0] if names else None


class GpuBusy:
    """GPU-seconds during which a kernel ran on the job's GPUs (its lease's; else every GPU): nvidia-smi's
    utilization (the share of its last sample period with a kernel running), sampled every GPU_POLL_S and
    summed over the GPUs, from `begin` (the clock's start marker: start-up is the harness's) to the end. A
    context: `with GpuBusy(indices, begin) as busy: ...`, then busy.seconds() (None: no sample was readable)."""

    def __init__(self, indices: tuple[int, ...] = (), begin: threading.Event | None = None):
        self.indices, self.busy, self.samples = indices, 0.0, 0
        self.begin = begin
        self.done = threading.Event()
        self.thread = threading.Thread(target=self.watch, daemon=True)

    def __enter__(self) -> GpuBusy:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.done.set()
        self.thread.join()

    def utilization(self) -> float | None:
        """The summed utilization of the job's GPUs now, in GPUs (2 at 100%: 2.0); None: not readable."""
        rows = nvidia_smi("index", "utilization.gpu")
        if rows is None:
            return None
        try:
            shares = [float(u) / 100 for index, u in rows if not self.indices or int(index) in self.indices]
        except ValueError:  # "[N/A]": a GPU that does not report it
            return None
        return sum(shares) if shares else None

    def watch(self) -> None:
        while self.begin is not None and not self.begin.wait(GPU_POLL_S):
            if self.done.is_set():
                return
        at = time.monotonic()
        while True:
            stopped = self.done.wait(GPU_POLL_S)
            now, share = time.monotonic(), self.utilization()
            if share is not None:
                self.busy += share * (now - at)
                self.samples += 1
            at = now
            if stopped:
                return

    def seconds(self) -> float | None:
        return round(self.busy, 3) if self.samples else None


def weights_digest(model: Path) -> str | None:
    """sha256 over the exported weights and constants (names and bytes), or None without a readable archive.

    Read with zipfile only, nothing deserialised: the archive is untrusted until the scorer has checked it,
    and the digest only compares runs of one experiment with each other.
    """
    try:
        with zipfile.ZipFile(model) as archive:
            h = hashlib.sha256()
            for info in sorted((i for i in archive.infolist() if TENSOR.match(i.filename)), key=lambda i: i.filename):
                if info.file_size > 2**32:
                    return None
                h.update(info.filename.split("/", 1)[1].encode() + b"\0")
                with archive.open(info) as f:
                    for chunk in iter(lambda: f.read(2**20), b""):
                        h.update(chunk)
            return h.hexdigest()
    except (OSError, zipfile.BadZipFile, ValueError, RuntimeError):
        return None
