"""Fixtures shared by the harness tests: a scratch copy of the repo with small frozen data."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from eval.data import prepare
from replay import replay as harness_code

REPO = Path(__file__).resolve().parent.parent
HARNESS = (*harness_code.HARNESS, "program.md", "scratchpad.md", "train.py")

# Small but real: short budgets, a small scored slice, tight sandbox limits.
TEST_FRONT_MATTER = """---
task:
  metric: {metric}
  direction: {direction}
  evaluator: {evaluator}
  budget_seconds: {budget}
  grace_seconds: {grace}
  seed: 1337
  options: {{seq_len: 64, eval_bytes: 16384}}
sandbox:
  memory_gb: {memory_gb}
  pids: 128
  shm_mb: 64
  output_mb: {output_mb}
  score_seconds: 120
phases:
  - name: hyperparameters
    instructions: Tune.
current_phase: hyperparameters
verdict:
  seeds: {seeds}
---
# test program
"""


def write_program(
    repo: Path,
    metric="val_bpb",
    direction="minimize",
    evaluator="eval.scoring.bpb:score",
    budget=2,
    grace=40,
    memory_gb=2,
    output_mb=64,
    seeds=3,
) -> None:
    (repo / "program.md").write_text(TEST_FRONT_MATTER.format(**locals()))


def make_corpus(root: Path, files: int = 60) -> Path:
    """A few dozen small text files: enough for every split to get some."""
    root.mkdir(parents=True, exist_ok=True)
    for i in range(files):
        lines = [f"def function_{i}_{j}(x):\n    return x * {j} + {i}  # line {j}\n" for j in range(40)]
        (root / f"module_{i:03d}.py").write_text("".join(lines))
    return root


@pytest.fixture(scope="session")
def corpus(tmp_path_factory) -> Path:
    return make_corpus(tmp_path_factory.mktemp("corpus"))


def build_repo(root: Path, corpus: Path, program: str | None = None) -> Path:
    """A committed scratch copy of the harness with its own frozen data; program.md is the test one
    unless `program` gives its text."""
    root.mkdir()
    for name in HARNESS:
        src = REPO / name
        if src.is_dir():
            shutil.copytree(src, root / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        elif src.exists():
            shutil.copy2(src, root / name)
    (root / ".venv").symlink_to(REPO / ".venv")
    prepare(root / "data", corpus)
    if program is None:
        write_program(root)
    else:
        (root / "program.md").write_text(program)
    (root / ".gitignore").write_text(".venv\nruns/\ndata/\n__pycache__/\nresults.tsv\nprogress.png\n")
    for args in (["init", "-q", "-b", "research"], ["add", "-A"],
                 ["-c", "user.name=test", "-c", "user.email=test@example.com", "commit", "-q", "-m", "harness"]):
        subprocess.run(["git", *args], cwd=root, check=True)
    return root


@pytest.fixture
def repo(tmp_path: Path, corpus: Path) -> Path:
    """A scratch harness repo with its own frozen data and the test program.md."""
    return build_repo(tmp_path / "repo", corpus)
