"""./run.sh as a human or the agent calls it, in a scratch repo."""

from __future__ import annotations

import json
import math
import subprocess
from pathlib import Path


def run_sh(repo: Path, *args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run(["./run.sh", *args], cwd=repo, capture_output=True, text=True, timeout=timeout)


def test_one_experiment_through_run_sh(repo):
    done = run_sh(repo, "-m", "baseline")
    assert done.returncode == 0, done.stderr + done.stdout
    assert "outcome OK" in done.stdout and "[r0001] VERDICT: KEEP" in "\n".join(done.stdout.splitlines()[-5:])
    assert "| loss" not in done.stdout and "| loss" in (repo / "runs" / "r0001" / "train.log").read_text()
    assert "its output goes to runs/r0001/train.log" in done.stdout and len(done.stdout) < 8000
    metrics = json.loads((repo / "runs" / "r0001" / "metrics.json").read_text())
    assert metrics["outcome"] == "ok" and math.isfinite(metrics["value"])
    assert metrics["hypothesis"] == "baseline"
    status = run_sh(repo, "status")
    assert "r0001" in status.stdout and "best val_bpb (minimize)" in status.stdout


def test_broken_program_md_gets_a_clear_error_and_loses_nothing(repo):
    program = repo / "program.md"
    program.write_text(program.read_text().replace("direction: minimize", "direction: downwards"))
    train_before = (repo / "train.py").read_text()
    done = run_sh(repo)
    assert done.returncode == 2
    assert "task.direction" in done.stderr and "'downwards' is not one of" in done.stderr
    assert not (repo / "runs").exists()
    assert (repo / "train.py").read_text() == train_before


def test_missing_data_says_to_prepare(repo):
    for f in (repo / "data").iterdir():
        f.unlink()
    done = run_sh(repo)
    assert done.returncode == 2 and "./run.sh prepare" in done.stderr


def test_prepare_through_run_sh_is_idempotent(repo, corpus):
    first = run_sh(repo, "prepare", "--corpus", str(corpus))
    again = run_sh(repo, "prepare", "--corpus", str(corpus))
    assert first.returncode == again.returncode == 0
    assert first.stdout == again.stdout and "manifest hash" in first.stdout
    other = run_sh(repo, "prepare")  # the stdlib corpus differs from the frozen one
    assert other.returncode == 1 and "differs" in other.stderr
