"""The bubblewrap fallback, for hosts with no Docker engine.

What it gives, like Docker: no network (all namespaces unshared), a read-only view of only
the mounted paths (the job's masks shown empty), an unprivileged uid, no capabilities, a new
session, death with the harness, the wall-clock kill, a size-capped /tmp. What it gives less
well: memory through RLIMIT_AS (off with a GPU, where CUDA reserves large address space), the
output cap watched from outside plus RLIMIT_FSIZE per file. What it lacks: a pids limit and a
cgroup memory limit.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from sandbox.job import TMP_MB, UID, Job, OutputSink, Result, SandboxUnavailable, Started
from sandbox.process import lease_env, run_process
from sandbox.runtime import python_mounts, system_layout

BASE_ENV = {"PATH": "/usr/bin:/bin"}


def available() -> str:
    """Path of a bwrap that can build a sandbox here; raise SandboxUnavailable otherwise."""
    bwrap = shutil.which("bwrap")
    if not bwrap:
        raise SandboxUnavailable("bubblewrap (bwrap) is not installed")
    probe = subprocess.run([bwrap, "--unshare-all", "--unshare-user", "--ro-bind", "/", "/", "true"],
                           capture_output=True, timeout=10)
    if probe.returncode != 0:
        raise SandboxUnavailable(f"bwrap cannot create namespaces here: {probe.stderr.decode()[-300:]}")
    return bwrap


class BwrapBackend:
    name = "bwrap"

    def __init__(self):
        self.bwrap = available()

    def command(self, job: Job, empty_file: Path) -> list[str]:
        """The bwrap argv; empty_file (a host file of no bytes) is shown over each masked file."""
        mounts, links = system_layout()
        argv = [self.bwrap, "--unshare-all", "--unshare-user", "--uid", str(UID), "--gid", str(UID),
                "--die-with-parent", "--new-session", "--cap-drop", "ALL", "--clearenv",
                "--proc", "/proc", "--dev", "/dev", "--size", str(TMP_MB * 2**20), "--tmpfs", "/tmp"]
        for name, target in links.items():
            argv += ["--symlink", target, f"/{name}"]
        for m in mounts + python_mounts() + job.mounts:
            argv += ["--bind" if m.writable else "--ro-bind", str(m.host), m.target]
        for m in job.masks:  # after the mounts they lie in: bwrap mounts in argument order
            argv += ["--tmpfs", m.target, "--remount-ro", m.target] if m.directory else \
                ["--ro-bind", str(empty_file), m.target]
        if job.out_dir is not None:
            argv += ["--bind", str(job.out_dir), "/out"]
        argv += ["--remount-ro", "/"]
        for key, value in {**BASE_ENV, **job.env, **lease_env(job)}.items():
            argv += ["--setenv", key, value]
        return argv + ["--chdir", job.workdir, "--", *job.argv]

    def run(self, job: Job, sink: OutputSink, started: Started | None = None) -> Result:
        with tempfile.TemporaryDirectory(prefix="autoresearch-bwrap-") as tmp:
            empty = Path(tmp) / "empty"
            empty.touch(mode=0o444)
            return run_process(self.command(job, empty), dict(os.environ), Path("/"), job, sink, started)
