"""Verdicts that measure the change, not the machine: real containers, real CPU load.

The harness records the compute each trial got, can stop a run at a CPU-seconds budget whatever
the wall clock says, and judges a promising candidate beside fresh runs of the best: a baseline
measured while the machine was busy cannot make identical code look like progress.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import re
import time

import jsonschema
import pytest

from eval import compute, experiment
from eval.clock import EXPORT_CPU_S
from eval.record.metrics import SCHEMA as METRICS_SCHEMA
from eval.trial import run_trial
from sandbox.job import Lease
from tests.conftest import write_program

EXPORT = """
seq = int(os.environ["AUTORESEARCH_SEQ_LEN"])
batch = torch.export.Dim("batch", min=1, max=4096)
program = torch.export.export(table, (torch.zeros(2, seq, dtype=torch.long),), dynamic_shapes=({0: batch},))
torch.export.save(program, os.environ["AUTORESEARCH_OUT"] + "/model.pt2")
"""
# A bigram table whose loss after the budget depends on the steps it got: one thread, a small learning
# rate (LR), so half the CPU is a visibly worse val_bpb. It stops at the harness's SIGURG.
SLOW_BIGRAM = """
import os, signal, time, torch
torch.set_num_threads(1)
LR = 0.01
torch.manual_seed(int(os.environ["AUTORESEARCH_SEED"]))
stop = []
signal.signal(signal.SIGURG, lambda *_: stop.append(1))
data = torch.frombuffer(bytearray(open(os.environ["AUTORESEARCH_DATA"], "rb").read()), dtype=torch.uint8).long()
table = torch.nn.Embedding(256, 256)
opt = torch.optim.Adam(table.parameters(), lr=LR)
steps = 0
while not stop:
    ix = torch.randint(len(data) - 1, (256,))
    loss = torch.nn.functional.cross_entropy(table(data[ix]), data[ix + 1])
    opt.zero_grad(); loss.backward(); opt.step()
    steps += 1
import json; json.dump({"steps": steps}, open(os.environ["AUTORESEARCH_OUT"] + "/train_stats.json", "w"))
""" + EXPORT

# Half busy, half asleep: 0.5 cores for as long as it is let run. Then it exports.
HALF_BUSY = """
import os, signal, time, torch
torch.set_num_threads(1)
stop = []
signal.signal(signal.SIGURG, lambda *_: stop.append(1))
table = torch.nn.Embedding(256, 256)
while not stop:
    t = time.process_time()
    while time.process_time() - t < 0.05:
        pass
    time.sleep(0.05)
""" + EXPORT


CORES = os.cpu_count() or 1
HOGS = 2 * CORES  # busy loops that load the whole machine: a job's one thread must share its core


def hog() -> None:
    os.setsid()  # a session of its own: the kernel's autogroups would otherwise share one core among all hogs
    while True:
        pass


@contextlib.contextmanager
def busy_machine(processes: int):
    """Other work on the host: `processes` busy loops, as another job on a shared machine."""
    hogs = [multiprocessing.get_context("fork").Process(target=hog, daemon=True) for _ in range(processes)]
    for p in hogs:
        p.start()
    try:
        yield
    finally:
        for p in hogs:
            p.kill()
            p.join()


def test_every_trial_records_the_compute_it_got(repo):
    write_program(repo, budget=2)
    (repo / "train.py").write_text(SLOW_BIGRAM)
    quiet = run_trial(repo, echo=lambda _: None)
    with busy_machine(HOGS):
        busy = run_trial(repo, echo=lambda _: None)
    for m in (quiet, busy):
        jsonschema.validate(m, METRICS_SCHEMA)
        assert m["outcome"] == "ok", m["reason"] + m["log_tail"]
        assert 0 < m["trained_cpu_seconds"] <= m["cpu_seconds"] and re.fullmatch("[0-9a-f]{64}", m["model_sha256"])
        assert m["reported"]["steps"] > 0 and m["gpu"] is None
    loads = quiet["host_other_load"], busy["host_other_load"]
    assert loads[1] >= 1.0 and loads[1] > loads[0] + 0.3, loads  # the busy loops, seen beside the job
    assert busy["trained_cpu_seconds"] < 0.8 * quiet["trained_cpu_seconds"]  # the same 2 s bought less
    assert busy["reported"]["steps"] < 0.8 * quiet["reported"]["steps"]
    assert busy["model_sha256"] != quiet["model_sha256"]


@pytest.mark.parametrize("program", ["half busy", "two threads"])
def test_a_cpu_budget_stops_the_run_at_its_cpu_seconds_whatever_the_wall_clock_says(repo, program):
    """cpu_budget_seconds 3 with a 60 s wall backstop: half-busy code is stopped after about 6 s of wall clock,
    code busy on two threads after about 1.5 s on two free cores: both at 3 CPU-seconds."""
    write_program(repo, budget=60, grace=30)
    (repo / "program.md").write_text((repo / "program.md").read_text().replace(
        "  seed: 1337", "  seed: 1337\n  cpu_budget_seconds: 3"))
    two_threads = ("import threading\n"  # a second busy thread until SLOW_BIGRAM's `stop` (set by SIGURG)
                   "threading.Thread(target=lambda: [0 for _ in iter(lambda: bool(globals().get('stop')), True)],"
                   " daemon=True).start()\n")
    code = HALF_BUSY if program == "half busy" else two_threads + SLOW_BIGRAM
    (repo / "train.py").write_text(code)
    m = run_trial(repo, echo=lambda _: None)
    assert m["outcome"] == "ok", m["reason"] + m["log_tail"]
    assert m["cpu_budget_seconds"] == 3 and 3 <= m["trained_cpu_seconds"] < 3 + 1.0, m
    wall = m["training_seconds"] - m["after_stop_seconds"]  # marker to stop
    assert wall < 60 - 10  # the CPU budget stopped it, not the wall backstop
    if program == "half busy":
        assert wall > 1.5 * m["trained_cpu_seconds"], m  # half a core: twice the wall clock
    assert m["after_stop_cpu_seconds"] <= EXPORT_CPU_S + 1


def test_a_load_change_does_not_keep_identical_code_and_a_real_gain_is_still_kept(repo):
    """The baseline trains while busy loops share the machine; then the same train.py (a comment changed)
    trains on the quiet machine: its first run beats the busy baseline, so it is promising, but beside fresh
    runs of the best it gains nothing and is not kept. A real change (a too-small learning rate 10x larger)
    still is."""
    write_program(repo, budget=2, seeds=3)
    (repo / "program.md").write_text((repo / "program.md").read_text().replace("  seeds: 3", "  seeds: 3\n  k: 3.0"))
    slow = SLOW_BIGRAM.replace("LR = 0.01", "LR = 0.001")  # learns in proportion to its steps: load shows
    (repo / "train.py").write_text(slow)
    with busy_machine(HOGS):
        base = experiment.run_experiment(repo, "baseline under load", None, False, say=lambda _: None)
    assert base["status"] == "keep" and base["runs"] == 3
    (repo / "train.py").write_text(slow + "# a comment\n")
    same = experiment.run_experiment(repo, "a comment", None, False, say=lambda _: None)
    first = experiment.seed_runs(repo / "runs" / "r0002")[0]
    assert first["value"] < base["mean"] and first["trained_cpu_seconds"] > 1.5 * max(base["value_cpu_seconds"]), base
    assert same["paired"] and same["status"] == "discard", experiment.verdict_text(same)
    cpu = [p["cpu_seconds"] for p in same["pairs"] if p["comparable"]]
    assert all(abs(a - b) <= 0.15 * max(a, b) for a, b in cpu) and len(cpu) == 3
    (repo / "train.py").write_text(SLOW_BIGRAM)
    gain = experiment.run_experiment(repo, "a 10x learning rate", None, False, say=lambda _: None)
    assert gain["status"] == "keep" and gain["paired"], experiment.verdict_text(gain)
    assert gain["best_values"] and max(gain["values"]) < min(gain["best_values"])


# No GPU exists here: a stand-in for nvidia-smi answers the harness's queries (GPU 1 busy, GPU 0 a quarter).
NVIDIA_SMI = """#!/usr/bin/env python3
import sys
query = next(a for a in sys.argv if a.startswith("--query-gpu=")).split("=", 1)[1]
rows = {"index,name": ["0, NVIDIA H100 80GB HBM3", "1, NVIDIA H200"],
        "index,utilization.gpu": ["0, 25", "1, " + UTIL]}[query]
print("\\n".join(rows))
"""


@pytest.fixture
def nvidia_smi(tmp_path, monkeypatch):
    """Write an nvidia-smi reporting GPU 1 at `util` percent (or failing) first on PATH; returns the writer."""
    def write(util: str = "100", fails: bool = False) -> None:
        tool = tmp_path / "bin" / "nvidia-smi"
        tool.parent.mkdir(exist_ok=True)
        tool.write_text("#!/bin/sh\nexit 9\n" if fails else NVIDIA_SMI.replace("UTIL", repr(util)))
        tool.chmod(0o755)

    monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}:{os.environ['PATH']}")
    monkeypatch.setattr(compute, "GPU_POLL_S", 0.2)
    return write


def test_gpu_busy_time_is_nvidia_smis_utilization_over_the_run(nvidia_smi):
    nvidia_smi()
    assert compute.gpu_name((1,)) == "NVIDIA H200" and compute.gpu_name() == "NVIDIA H100 80GB HBM3"
    with compute.GpuBusy((1,)) as leased, compute.GpuBusy() as every:
        t0 = time.monotonic()
        time.sleep(1.5)
    wall = time.monotonic() - t0
    assert wall - 0.45 <= leased.seconds() <= wall + 0.1, (leased.seconds(), wall)  # GPU 1: busy throughout
    assert every.seconds() == pytest.approx(1.25 * leased.seconds(), rel=0.25)  # both: 1.25 GPUs at a time
    nvidia_smi(util="[N/A]")
    with compute.GpuBusy((1,)) as unknown:
        time.sleep(0.5)
    assert unknown.seconds() is None  # not readable is unknown, not idle
    nvidia_smi(fails=True)
    assert compute.gpu_name((1,)) is None


def test_a_trial_on_a_gpu_lease_records_the_gpu_and_its_busy_time(repo, nvidia_smi):
    """The GPU fields of a real trial on a slot with GPU 1 (the sandbox's train.py runs on the CPU: there is no
    GPU to give it), in metrics.json, the ledger's compute and the verdict text."""
    nvidia_smi()
    write_program(repo, budget=2)
    (repo / "train.py").write_text(SLOW_BIGRAM)
    m = run_trial(repo, echo=lambda _: None, lease=Lease("gpu1", (0,), (1,)))
    jsonschema.validate(m, METRICS_SCHEMA)
    assert m["outcome"] == "ok", m["reason"] + m["log_tail"]
    assert m["gpu"] == "NVIDIA H200" and m["lease"]["gpus"] == [1]
    # from the marker to the job's end and its container's removal (0.6 s past the end under the suite's load)
    assert 0.5 * m["training_seconds"] <= m["gpu_busy_seconds"] <= m["training_seconds"] + 2.0, m
    text = experiment.verdict_text({**DECISION, "compute": [experiment.compute_of(m)]})
    assert f"GPU: {m['id']} NVIDIA H200, busy {m['gpu_busy_seconds']:.1f}s" in text


DECISION = {"id": "r0001", "status": "keep", "outcome": "ok", "metric": "val_bpb", "mean": 2.0, "values": [2.0],
            "direction": "minimize", "reason": "kept as the baseline", "best_id": None, "commit": "0" * 40,
            "diff_ref": None, "log_tail": "", "pairs": []}
