"""What every backend is asked to run, under which limits, and what it reports back."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

UID = 1000  # the unprivileged user that runs untrusted code in every backend
TMP_MB = 512  # the private /tmp, capped like the output dir
MAX_OUT_FILES = 1000  # entries in the output dir: many empty files fit any byte cap
SANDBOX_ENV = {"HOME": "/tmp", "TMPDIR": "/tmp", "PYTHONUNBUFFERED": "1", "PYTHONDONTWRITEBYTECODE": "1",
               "PATH": "/usr/bin:/bin"}  # what every sandboxed Python starts with


@dataclass(frozen=True)
class Limits:
    """The resource caps of one sandboxed process (program.md's `sandbox:` section)."""

    memory_gb: float
    pids: int
    shm_mb: int
    output_mb: int
    score_seconds: float


@dataclass(frozen=True)
class Lease:
    """One slot: the cores its jobs run on and the GPUs they see (none: CPU only)."""

    name: str
    cpus: tuple[int, ...]
    gpus: tuple[int, ...] = ()

    def record(self) -> dict:
        """As metrics.json, the verdict and the status show it."""
        return {"name": self.name, "cpus": list(self.cpus), "gpus": list(self.gpus)}

    def cuda_visible(self) -> str:
        """CUDA_VISIBLE_DEVICES for a backend that cannot hide devices otherwise (an empty string: none)."""
        return ",".join(map(str, self.gpus))


@dataclass(frozen=True)
class Mount:
    host: Path
    target: str
    writable: bool = False

    def __post_init__(self) -> None:  # Docker reads a relative source as a volume name
        object.__setattr__(self, "host", Path(self.host).absolute())


@dataclass(frozen=True)
class Mask:
    """A path inside the sandbox shown empty: a directory as an empty read-only one, a file as an empty file."""

    target: str
    directory: bool = True


@dataclass(frozen=True)
class Job:
    """One sandboxed process: argv run with mounts and env, killed at timeout_s."""

    argv: list[str]
    mounts: list[Mount]
    env: dict[str, str]
    timeout_s: float
    limits: Limits
    out_dir: Path | None = None  # host dir that receives the sandbox's /out after a clean exit
    workdir: str = "/tmp"
    gpu: bool = False
    owner: str = ""  # who started it (the run dir): labels its container, so leftovers can be traced
    masks: tuple[Mask, ...] = ()  # what the runtime mounts show that this job must not see (eval/heldout.py)
    lease: Lease | None = None  # the cores and GPUs it may use (sandbox/devices.py); None: the whole machine


@dataclass
class Result:
    exit_code: int | None
    timed_out: bool = False
    oom: bool = False
    seconds: float = 0.0
    peak_memory_mb: float | None = None
    out_error: str | None = None  # the output dir could not be collected (over its cap, bad entries)
    cpu_seconds: float | None = None  # CPU time of all the job's processes, at its exit or its kill; None: unknown
    extra: dict = field(default_factory=dict)


@dataclass(frozen=True)
class Usage:
    """What a running job has used so far, where its backend can tell (None where it cannot)."""

    cpu_seconds: float | None
    memory_mb: float | None


OutputSink = Callable[[bytes], None]
Meter = Callable[[], Usage]  # measures the job while it runs


@dataclass(frozen=True)
class Control:
    """What the harness may do to a job while it runs: Backend.run hands one to its `started` callback."""

    meter: Meter  # what the job has used so far (after its end: its CPU time at the end)
    signal: Callable[[int], None]  # send a signal to every process of the job
    kill: Callable[[], None]  # end it now, as at its timeout (Result.timed_out)


Started = Callable[[Control], None]  # a backend calls it once the job runs


class SandboxUnavailable(RuntimeError):
    """No backend can run untrusted code safely here; the message says what to do."""


class SandboxFailed(RuntimeError):
    """The sandbox itself broke mid-run (its engine died): an infrastructure failure, not the job's."""
