"""`./run.sh python`: the agent's own Python runs in the training sandbox, sees what the agent may read, no more.

One sandboxed script probes everything at once (a sandbox start costs seconds): what it prints, the
result files it may read, the held-out splits and sealed folders it must not see, the network.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from commands import python as run_python
from tests.conftest import build_repo

PROBE = r"""
import json, os, socket, sys
def attempt(fn):
    try:
        return ["ok", repr(fn())[:200]]
    except Exception as e:
        return ["failed", type(e).__name__]
def connect():
    s = socket.socket(); s.settimeout(3); s.connect(("1.1.1.1", 53)); return "connected"
host = sys.argv[1]
print(json.dumps({
    "metrics": json.load(open("runs/r0001/metrics.json"))["value"],
    "train": len(open("data/train.bin", "rb").read()),
    "train_py": "import torch" in open("train.py").read(),
    "val": attempt(lambda: open("data/val.bin", "rb").read(10)),
    "test": attempt(lambda: open("data/test.bin", "rb").read(10)),
    "host_val": attempt(lambda: open(host + "/data/val.bin", "rb").read(10)),
    "host_repo": attempt(lambda: os.listdir(host)),
    "confirm": attempt(lambda: os.listdir("runs/confirm")),
    "scorer": attempt(lambda: os.listdir("runs/scorer")),
    "eval": attempt(lambda: os.listdir("eval")),
    "network": attempt(connect),
    "write": attempt(lambda: open("train.py", "a").write("x")),
}))
"""


@pytest.fixture(scope="module")
def repo(tmp_path_factory, corpus) -> Path:
    root = build_repo(tmp_path_factory.mktemp("run_python") / "repo", corpus)
    for name, text in {"runs/r0001/metrics.json": '{"value": 1.25}', "runs/confirm/log.jsonl": '{"test": 1}\n',
                       "runs/scorer/r0001.log": "saw val\n"}.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    return root


def run_sh(repo: Path, *args: str, timeout: float = 900) -> subprocess.CompletedProcess:
    return subprocess.run(["./run.sh", "python", *args], cwd=repo, capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def probe(repo) -> dict:
    """The probe's findings (the first call may run the held-out check: minutes, once per data and sandbox)."""
    done = run_sh(repo, "-c", PROBE, str(repo))
    assert done.returncode == 0, done.stderr + done.stdout
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_it_prints_its_output_and_reads_what_the_agent_may_read(probe):
    assert probe["metrics"] == 1.25 and probe["train"] > 0 and probe["train_py"]


@pytest.mark.parametrize("what", ["val", "test", "host_val", "host_repo", "confirm", "scorer", "eval"])
def test_held_out_data_sealed_folders_and_the_harness_are_invisible(probe, what):
    assert probe[what] == ["failed", "FileNotFoundError"] or probe[what] == ["ok", "[]"], probe[what]


def test_no_network_and_nothing_written(probe):
    assert probe["network"][0] == "failed" and probe["write"][0] == "failed"


def test_output_is_capped_and_time_is_limited(repo, monkeypatch, capsys):
    monkeypatch.setattr(run_python, "PYTHON_SECONDS", 5)
    monkeypatch.chdir(repo)
    assert run_python.main(["-c", "print('x' * 200_000, flush=True); import time; time.sleep(60)"]) == 124
    out = capsys.readouterr()
    assert len(out.out) < run_python.OUTPUT_CAP + 200 and "output cut" in out.out and "stopped after 5 s" in out.err


def test_the_unsafe_backend_is_refused(repo):
    done = subprocess.run(["./run.sh", "python", "-c", "print(1)"], cwd=repo, capture_output=True, text=True,
                          timeout=120, env={"PATH": "/usr/bin:/bin", "AUTORESEARCH_SANDBOX": "unsafe"})
    assert done.returncode == 2 and "choose docker or bwrap" in done.stderr and "1" not in done.stdout
