"""Whether this host can give a sandbox an NVIDIA GPU."""

from __future__ import annotations

import os
import shutil


def has_gpu() -> bool:
    return shutil.which("nvidia-smi") is not None and os.path.exists("/dev/nvidiactl")
