"""No sandbox at all: only with the explicit --unsafe-no-sandbox flag, for trusted code.

train.py then runs as a plain host process with the harness's rlimits and wall clock;
it could read the validation split, reach the network and write anywhere this user can. It
cannot hide anything, so it refuses a job that asks for masks.
The sandbox paths of the job (/code, /data, /out, ...) are mapped to their host paths.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path, PurePosixPath

from sandbox.job import Job, OutputSink, Result, SandboxUnavailable, Started
from sandbox.process import lease_env, run_process


def sandbox_to_host(job: Job) -> dict[str, str]:
    """Map each mount target, and each ancestor whose host path has the same shape, to the host."""
    mounts = {m.target: m.host for m in job.mounts}
    if job.out_dir is not None:
        mounts["/out"] = job.out_dir
    paths: dict[str, str] = {}
    for target, host in mounts.items():
        for depth, ancestor in enumerate(PurePosixPath(target).parents):
            if str(ancestor) != "/" and len(host.parents) > depth:
                paths.setdefault(str(ancestor), str(host.parents[depth]))
    return {**paths, **{t: str(h) for t, h in mounts.items()}}


class UnsafeBackend:
    name = "unsafe"

    def run(self, job: Job, sink: OutputSink, started: Started | None = None) -> Result:
        if job.masks:
            raise SandboxUnavailable(f"the unsafe backend cannot hide {', '.join(m.target for m in job.masks)}: "
                                     "start a Docker engine or install bubblewrap")
        paths = sandbox_to_host(job)

        def host(value: str) -> str:
            for target, source in sorted(paths.items(), key=lambda kv: -len(kv[0])):
                if value == target or value.startswith(target + "/"):
                    return source + value[len(target):]
            return value

        with tempfile.TemporaryDirectory() as tmp:
            env = {**os.environ, **{k: host(v) for k, v in job.env.items()}, **lease_env(job), "TMPDIR": tmp,
                   "HOME": tmp}
            cwd = Path(host(job.workdir)) if job.workdir != "/tmp" else Path(tmp)
            return run_process([host(a) for a in job.argv], env, cwd, job, sink, started)
