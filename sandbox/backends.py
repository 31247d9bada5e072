"""Pick the strongest sandbox this host offers: Docker, else bubblewrap, else refuse."""

from __future__ import annotations

import os

from sandbox.bwrap_backend import BwrapBackend
from sandbox.docker_backend import DockerBackend
from sandbox.job import SandboxUnavailable
from sandbox.unsafe_backend import UnsafeBackend

BACKENDS = {"docker": DockerBackend, "bwrap": BwrapBackend, "unsafe": UnsafeBackend}
FORCE_ENV = "AUTORESEARCH_SANDBOX"  # docker | bwrap: use that one or fail (tests, picky users)


def select_backend(unsafe: bool = False):
    forced = os.environ.get(FORCE_ENV)
    if forced:
        if forced not in ("docker", "bwrap"):
            raise SandboxUnavailable(f"{FORCE_ENV}={forced!r}: choose docker or bwrap")
        return BACKENDS[forced]()
    reasons = []
    for name in ("docker", "bwrap"):
        try:
            return BACKENDS[name]()
        except SandboxUnavailable as e:
            reasons.append(f"{name}: {e}")
    if unsafe:
        return UnsafeBackend()
    raise SandboxUnavailable(
        "refusing to train: no sandbox is available (" + "; ".join(reasons) + "). Start a Docker engine "
        "(or install bubblewrap), or pass --unsafe-no-sandbox to run train.py unconfined on this host."
    )
