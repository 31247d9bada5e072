"""The host's Python runtime, shared read-only with every sandbox.

No image registry is needed: the sandbox image is an almost empty root filesystem, and the
interpreter, the virtual environment with torch and the system libraries are bind-mounted
read-only from the host at their own paths, so the same interpreter runs inside and out.
"""

from __future__ import annotations

import sys
from pathlib import Path

from sandbox.job import Mount

SYSTEM_DIRS = ("usr", "bin", "sbin", "lib", "lib32", "lib64", "libx32")


def system_layout() -> tuple[list[Mount], dict[str, str]]:
    """Mounts for real system dirs, and the top-level symlinks (merged /usr) to recreate."""
    mounts, links = [], {}
    for name in SYSTEM_DIRS:
        p = Path("/") / name
        if p.is_symlink():
            links[name] = str(p.readlink())
        elif p.is_dir():
            mounts.append(Mount(p, f"/{name}"))
    return mounts, links


def python_mounts() -> list[Mount]:
    """The interpreter's prefix and the venv's, unless the system dirs already hold them."""
    covered = [m.host for m in system_layout()[0]]
    mounts: list[Mount] = []
    for prefix in sorted({Path(sys.base_prefix).resolve(), Path(sys.prefix).resolve()}, key=lambda p: len(p.parts)):
        if not any(prefix.is_relative_to(c) for c in covered + [m.host for m in mounts]):
            mounts.append(Mount(prefix, str(prefix)))
    return mounts


def runtime_mounts() -> list[Mount]:
    """Everything every sandbox mounts besides its job's own paths, at the same path inside."""
    return system_layout()[0] + python_mounts()


def python_executable() -> str:
    """The interpreter by a path that python_mounts() makes valid inside the sandbox."""
    if sys.prefix != sys.base_prefix:  # a venv: keep its bin/python so site-packages is found
        return str(Path(sys.prefix).resolve() / "bin" / "python")
    return str(Path(sys.executable).resolve())
