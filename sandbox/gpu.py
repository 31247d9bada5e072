"""Whether this host can give a sandbox an NVIDIA GPU, and which ones it has."""

from __future__ import annotations

import os
import shutil
import subprocess


def has_gpu() -> bool:
    return shutil.which("nvidia-smi") is not None and os.path.exists("/dev/nvidiactl")


def gpu_indices() -> list[int]:
    """The GPUs nvidia-smi lists (0, 1, ...); none where there is no GPU or the tool fails."""
    if not has_gpu():
        return []
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=index", "--format=csv,noheader"], capture_output=True,
                             text=True, timeout=20).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    return [int(line) for line in out.split() if line.isdigit()]
