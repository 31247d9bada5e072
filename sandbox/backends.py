"""The sandbox backends behind one protocol, and the choice of the strongest one this host offers.

Docker, else bubblewrap, else refuse (unless the user asked for an unconfined run). Backends
are imported on first use: choosing bubblewrap never loads the docker SDK.
"""

from __future__ import annotations

import importlib
import os
from typing import Protocol

from sandbox.job import Job, OutputSink, Result, SandboxUnavailable, Started

# name -> "module:class"; the constructor raises SandboxUnavailable where the backend cannot run.
BACKENDS = {
    "docker": "sandbox.docker_backend:DockerBackend",
    "bwrap": "sandbox.bwrap_backend:BwrapBackend",
    "unsafe": "sandbox.unsafe_backend:UnsafeBackend",
}
FORCE_ENV = "AUTORESEARCH_SANDBOX"  # docker | bwrap: use that one or fail (tests, picky users)


class Backend(Protocol):
    """Runs one Job to its end (or its timeout), streaming its output to the sink.

    `started`, if given, is called once the job runs, with the Control that signals, measures
    and kills it (the heartbeat and the budget clock, eval/clock.py); Result.cpu_seconds is its CPU time.
    """

    name: str

    def run(self, job: Job, sink: OutputSink, started: Started | None = None) -> Result: ...


def backend(name: str) -> Backend:
    module, cls = BACKENDS[name].split(":")
    return getattr(importlib.import_module(module), cls)()


def select_backend(unsafe: bool = False) -> Backend:
    forced = os.environ.get(FORCE_ENV)
    if forced:
        if forced not in ("docker", "bwrap"):
            raise SandboxUnavailable(f"{FORCE_ENV}={forced!r}: choose docker or bwrap")
        return backend(forced)
    reasons = []
    for name in ("docker", "bwrap"):
        try:
            return backend(name)
        except SandboxUnavailable as e:
            reasons.append(f"{name}: {e}")
    if unsafe:
        return backend("unsafe")
    raise SandboxUnavailable(
        "refusing to train: no sandbox is available (" + "; ".join(reasons) + "). Start a Docker engine "
        "(or install bubblewrap), or pass --unsafe-no-sandbox to run train.py unconfined on this host."
    )


def remove_leftovers(owner_prefix: str, spare: tuple[str, ...] = ()) -> list[str]:
    """Remove what killed harness processes left running for owners under owner_prefix, but for the owners
    under `spare` (jobs still running); their names.

    Only Docker leaves anything: its containers outlive the process that started them, while
    bubblewrap and unsafe jobs die with their parent.
    """
    from sandbox.docker_backend import remove_leftovers as docker_leftovers

    return docker_leftovers(owner_prefix, spare)
