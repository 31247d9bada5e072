"""Device slots and their leases: disjoint devices per experiment, held alone, freed by the kernel on kill -9.

The slot rule is a table (sandbox/devices.py); leases are real flocks in a scratch repo, held by real
processes; the cpusets are seen from inside real containers (Docker) and a real bubblewrap sandbox.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from eval import config, experiment, leases
from eval.record import ledger
from eval.trial import run_trial
from sandbox import devices
from sandbox.job import Lease
from tests.conftest import REPO, write_program
from tests.test_compute import EXPORT


@pytest.mark.parametrize("gpus, cpu_slots, cores, found, want", [
    ("all", 1, [0, 1], [], [("cpu0", (0, 1), ())]),  # the default on a CPU machine: today's one slot
    ("all", 2, [0, 1, 2, 3], [], [("cpu0", (0, 1), ()), ("cpu1", (2, 3), ())]),
    ("all", 3, [0, 1, 2, 3, 4, 5, 6], [], [("cpu0", (0, 1), ()), ("cpu1", (2, 3), ()), ("cpu2", (4, 5, 6), ())]),
    ("all", 1, [0, 1, 2, 3], [0, 1], [("gpus", (0, 1, 2, 3), (0, 1))]),  # the default on a GPU machine
    ("auto", 1, [0, 1, 2, 3], [0, 1], [("gpu0", (0, 1), (0,)), ("gpu1", (2, 3), (1,))]),
    ("auto", 2, [0, 1], [], [("cpu0", (0,), ()), ("cpu1", (1,), ())]),  # auto without a GPU: CPU slots
    ([1], 1, [4, 5, 6], [0, 1], [("gpu1", (4, 5, 6), (1,))]),
    ([], 2, [0, 1], [0], [("cpu0", (0,), ()), ("cpu1", (1,), ())]),  # [] leaves the GPU alone
])
def test_slots_are_disjoint_sets_of_the_machine(gpus, cpu_slots, cores, found, want):
    got = devices.slots(gpus, cpu_slots, cores, found)
    assert [(s.name, s.cpus, s.gpus) for s in got] == want
    used = [c for s in got for c in s.cpus] + [-1 - g for s in got for g in s.gpus]
    assert len(used) == len(set(used))  # no core, no GPU in two slots


@pytest.mark.parametrize("gpus, cpu_slots, cores, found, says", [
    ("all", 3, [0, 1], [], "3 slots need 3 cores"),
    ("all", 2, [0, 1], [0], "would share the GPUs"),
    ([2], 1, [0, 1], [0, 1], "GPU [2] not found"),
])
def test_slots_the_machine_cannot_give_are_refused_with_the_fix(gpus, cpu_slots, cores, found, says):
    with pytest.raises(devices.DeviceError, match=re.escape(says)):
        devices.slots(gpus, cpu_slots, cores, found)


def with_slots(repo: Path, n: int) -> config.Program:
    text = (repo / "program.md").read_text()
    (repo / "program.md").write_text(text.replace("verdict:", f"devices: {{cpu_slots: {n}}}\nverdict:", 1))
    return config.load(repo / "program.md")


HOLDER = """
import sys, time
from pathlib import Path
from eval import experiment, leases
from sandbox.job import Lease
repo = Path(sys.argv[1])
with experiment.serial(repo):
    held = leases.take(repo, [Lease("cpu0", (0,))])
    leases.claim(held, sys.argv[2], repo)
print("held", flush=True)
time.sleep(600)
"""


def hold_in_another_process(repo: Path, run_id: str) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-c", HOLDER, str(repo), run_id], cwd=REPO, stdout=subprocess.PIPE,
                            text=True)
    assert proc.stdout.readline() == "held\n"
    return proc


def test_kill_9_of_a_lease_holder_frees_its_lease_and_recovery_completes_its_experiment(repo):
    pool = [Lease("cpu0", (0,))]
    (repo / "runs" / "r0001").mkdir(parents=True)  # the holder's experiment, cut short before its first metrics
    proc = hold_in_another_process(repo, "r0001")
    try:
        with experiment.serial(repo):
            assert leases.take(repo, pool) is None  # held: no second experiment on that slot
            assert leases.holders(repo)["cpu0"]["run"] == "r0001"
            experiment.recover(repo, say=lambda _: None)
        assert experiment.pending(repo) == ["r0001"] and ledger.read(repo) == []  # running: left alone
        with pytest.raises(experiment.Busy), experiment.exclusive(repo):
            pass
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    with experiment.exclusive(repo):  # the kernel let go of the flock with the process
        assert leases.holders(repo) == {}
        held = leases.take(repo, pool)
        assert held is not None
        leases.release(held)
        experiment.recover(repo, say=lambda _: None)
    assert [(r["id"], r["status"]) for r in ledger.read(repo)] == [("r0001", "crash")]


def test_an_experiment_is_refused_when_every_slot_is_leased_and_names_the_holders(repo):
    program = with_slots(repo, 2)
    pool = devices.slots("all", 2)
    with experiment.serial(repo):
        held = [leases.take(repo, pool) for _ in pool]
        for h, run_id in zip(held, ("r0007", "r0008"), strict=True):
            leases.claim(h, run_id, repo)
    try:
        with pytest.raises(experiment.Busy, match=r"all 2 device slots are leased \(cpu0: r0007, cpu1: r0008\)"):
            experiment.run_experiment(repo, "a third", budget=1, unsafe=False, say=lambda _: None)
    finally:
        for h in held:
            leases.release(h)
    with experiment.leased(repo, program, say=lambda _: None) as (lease, run_id, _, slots):
        assert (lease.name, run_id, slots) == ("cpu0", "r0001", 2)  # a freed slot serves the next one


AFFINITY = """
import json, os, signal, torch
torch.set_num_threads(1)
stop = []
signal.signal(signal.SIGURG, lambda *_: stop.append(1))
table = torch.nn.Embedding(256, 256)
json.dump({"cpus": sorted(os.sched_getaffinity(0))}, open(os.environ["AUTORESEARCH_OUT"] + "/cpus.json", "w"))
while not stop:
    pass
""" + EXPORT


@pytest.mark.parametrize("sandbox", ["docker", "bwrap"])
def test_two_trials_at_once_on_two_slots_run_on_disjoint_cores_and_both_finish(repo, sandbox, monkeypatch):
    monkeypatch.setenv("AUTORESEARCH_SANDBOX", sandbox)
    write_program(repo, budget=1)
    (repo / "train.py").write_text(AFFINITY)
    pool = devices.slots("all", 2)
    results: dict[str, dict] = {}

    def trial(lease: Lease) -> None:
        results[lease.name] = run_trial(repo, echo=lambda _: None, lease=lease)

    threads = [threading.Thread(target=trial, args=(lease,)) for lease in pool]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for lease in pool:
        m = results[lease.name]
        assert m["outcome"] == "ok", m["reason"] + m["log_tail"]
        assert m["lease"] == lease.record()
        seen = json.loads((repo / "runs" / m["id"] / "out" / "cpus.json").read_text())["cpus"]
        assert seen == list(lease.cpus)  # train.py ran on its slot's cores alone
    assert results["cpu0"]["id"] != results["cpu1"]["id"]


def test_one_slot_leases_the_whole_machine_and_changes_nothing(repo):
    (slot,) = devices.slots("all", 1)
    assert slot.cpus == tuple(sorted(os.sched_getaffinity(0)))
    program = config.load(repo / "program.md")
    with (experiment.leased(repo, program, say=lambda _: None), pytest.raises(experiment.Busy) as busy,
          experiment.leased(repo, program, say=lambda _: None)):
        pass
    assert str(busy.value) == experiment.RUNNING_ALREADY
