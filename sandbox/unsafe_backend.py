"""No sandbox at all: only with the explicit --unsafe-no-sandbox flag, for trusted code.

train.py then runs as a plain host process with the harness's rlimits and wall clock;
it could read the validation split, reach the network and write anywhere this user can.
The sandbox paths of the job (/code, /data, /out, ...) are mapped to their host paths.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from sandbox.job import Job, OutputSink, Result
from sandbox.process import run_process


class UnsafeBackend:
    name = "unsafe"

    def run(self, job: Job, sink: OutputSink) -> Result:
        paths = {m.target: str(m.host) for m in job.mounts}
        if job.out_dir is not None:
            paths["/out"] = str(job.out_dir)

        def host(value: str) -> str:
            for target, source in sorted(paths.items(), key=lambda kv: -len(kv[0])):
                if value == target or value.startswith(target + "/"):
                    return source + value[len(target):]
            return value

        with tempfile.TemporaryDirectory() as tmp:
            env = {**os.environ, **{k: host(v) for k, v in job.env.items()}, "TMPDIR": tmp, "HOME": tmp}
            cwd = Path(host(job.workdir)) if job.workdir != "/tmp" else Path(tmp)
            return run_process([host(a) for a in job.argv], env, cwd, job, sink)
