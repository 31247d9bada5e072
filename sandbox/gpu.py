"""Whether this host can give a sandbox an NVIDIA GPU, and which ones it has."""

from __future__ import annotations

import os
import shutil
import subprocess


def has_gpu() -> bool:
    return shutil.which("nvidia-smi") is not None and os.path.exists("/dev/nvidiactl")


def nvidia_smi(*query: str, timeout: float = 10) -> list[list[str]] | None:
    """nvidia-smi's CSV answer to --query-gpu=<query>, one row per GPU; None where it is missing or fails."""
    if shutil.which("nvidia-smi") is None:
        return None
    try:
        out = subprocess.run(["nvidia-smi", f"--query-gpu={','.join(query)}", "--format=csv,noheader,nounits"],
                             capture_output=True, text=True, timeout=timeout)
    except (OSError, subprocess.SubprocessError):
        return None
    rows = [[cell.strip() for cell in line.split(",")] for line in out.stdout.strip().splitlines()]
    return rows if out.returncode == 0 and rows and all(len(r) == len(query) for r in rows) else None


def gpu_indices() -> list[int]:
    """The GPUs nvidia-smi lists (0, 1, ...); none where there is no GPU or the tool fails."""
    rows = nvidia_smi("index", timeout=20) if has_gpu() else None
    return [int(index) for index, in rows or () if index.isdigit()]
