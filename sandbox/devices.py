"""Which devices the harness owns, split into slots: each slot is what one experiment may use, alone.

Why: two experiments on the same cores or GPU measure each other, not their change. So every slot is a
disjoint set of cores and GPUs, and an experiment runs all its trials (and the best's reruns beside them)
on the one slot it leases (eval/leases.py). The rule, from program.md's `devices: {gpus, cpu_slots}`:
  gpus: all   one slot with every GPU found (none on a CPU machine) and every core: cpu_slots must be 1
              when there are GPUs, else cpu_slots slots of cores (the default, 1 slot: today's harness)
  gpus: auto  one slot per GPU found; on a machine without one, cpu_slots slots of cores
  gpus: [i..] one slot per listed GPU (each must exist); [] uses no GPU: cpu_slots slots of cores
The cores this process may run on are split evenly among the slots, in order.
"""

from __future__ import annotations

import os

from sandbox.gpu import gpu_indices
from sandbox.job import Lease, SandboxUnavailable


class DeviceError(SandboxUnavailable):
    """program.md asks for devices this machine does not have; the message names the fix."""


def split(cores: list[int], n: int) -> list[tuple[int, ...]]:
    """n disjoint runs of consecutive cores, as even as they come."""
    return [tuple(cores[i * len(cores) // n:(i + 1) * len(cores) // n]) for i in range(n)]


def slots(gpus: str | list[int], cpu_slots: int, cores: list[int] | None = None,
          found: list[int] | None = None) -> list[Lease]:
    """The slots of this machine (cores: those this process may use; found: the GPUs nvidia-smi lists)."""
    cores = sorted(os.sched_getaffinity(0)) if cores is None else cores
    found = gpu_indices() if found is None else found
    if gpus == "all" and found:
        if cpu_slots != 1:
            raise DeviceError(f"devices: cpu_slots: {cpu_slots} with gpus: all would share the GPUs among slots; "
                              "use gpus: auto (one slot per GPU) or cpu_slots: 1")
        return [Lease("gpus", tuple(cores), tuple(found))]
    chosen = found if gpus == "auto" else [] if gpus == "all" else list(gpus)
    missing = sorted(set(chosen) - set(found))
    if missing:
        raise DeviceError(f"devices.gpus: GPU {missing} not found on this machine (nvidia-smi lists {found or 'none'})")
    n = len(chosen) or cpu_slots
    if n > len(cores):
        raise DeviceError(f"devices: {n} slots need {n} cores at least, this process may use {len(cores)}; "
                          "lower devices.cpu_slots")
    if chosen:
        return [Lease(f"gpu{g}", c, (g,)) for g, c in zip(chosen, split(cores, n), strict=True)]
    return [Lease(f"cpu{i}", c) for i, c in enumerate(split(cores, n))]
