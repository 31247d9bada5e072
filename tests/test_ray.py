"""Trials on a real Ray cluster on this machine: a head and a worker node, each its own processes
(ray.cluster_utils starts a GCS and a raylet per node, as `ray start` does), the worker offering the slots.

The repository and the driver stay in the test (or in ./run.sh's process); the trials run on the worker
node's raylet workers, in the same sandbox as a local run. Killing that node mid-run (its raylet and
workers, SIGKILL) must give a recorded infrastructure crash, the candidate kept under its ref.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import git
import pytest
from ray.cluster_utils import Cluster

from eval import config, remote
from eval.record import ledger
from eval.record.runs import read_json
from sandbox.backends import remove_leftovers
from sandbox.job import SandboxUnavailable
from tests.conftest import REPO, TEST_FRONT_MATTER, build_repo
from tests.test_sandbox import TINY_BIGRAM

SMALL = {"num_cpus": 1, "include_dashboard": False, "object_store_memory": 100_000_000}  # per node
PROGRAM = TEST_FRONT_MATTER.format(metric="val_bpb", direction="minimize", evaluator="eval.scoring.bpb:score", budget=1,
                                   grace=60, memory_gb=2, output_mb=16, seeds=1)
SLEEPER = "import time\nprint('started', flush=True)\ntime.sleep(300)\n"


class LocalCluster:
    """A head (no slots) and a worker node offering `slots` SLOTs, its trials' files under node_dir."""

    def __init__(self, node_dir: Path, slots: int) -> None:
        self.node_dir = node_dir
        saved = {k: os.environ.get(k) for k in (remote.NODE_DIR_ENV, "PYTHONPATH")}
        os.environ[remote.NODE_DIR_ENV] = str(node_dir)  # the nodes' processes inherit it, as from `ray start`
        os.environ["PYTHONPATH"] = str(REPO)  # a node imports the harness from its own path
        try:
            self.cluster = Cluster(initialize_head=True, head_node_args=SMALL)
            self.worker = self.cluster.add_node(**SMALL, resources={remote.SLOT: slots})
            self.cluster.wait_for_nodes()
        finally:
            for k, v in saved.items():
                os.environ.pop(k) if v is None else os.environ.__setitem__(k, v)

    @property
    def address(self) -> str:
        return self.cluster.address

    def close(self) -> None:
        self.cluster.shutdown()
        remove_leftovers(str(self.node_dir.resolve()) + "/")  # the containers a killed node left


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    c = LocalCluster(tmp_path_factory.mktemp("nodes"), slots=2)
    try:
        yield c
    finally:
        c.close()


@pytest.fixture(scope="module")
def measure(cluster):
    """This test process as the cluster's driver, as ./run.sh's process is."""
    import ray

    m = remote.RayMeasure(cluster.address)
    try:
        yield m
    finally:
        ray.shutdown()


@pytest.fixture
def repo(tmp_path: Path, corpus: Path) -> Path:
    root = build_repo(tmp_path / "repo", corpus, program=PROGRAM)
    (root / "train.py").write_text(TINY_BIGRAM)
    return root


def experiment(repo: Path, address: str, *args: str) -> subprocess.Popen:
    """./run.sh's experiment (commands/experiment.py) in its own process, told the cluster as the loop tells it."""
    return subprocess.Popen([sys.executable, "-m", "commands.experiment", *args], cwd=repo, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            env={**os.environ, remote.ENV: address, "PYTHONPATH": str(repo)})


def test_an_experiments_trials_run_on_the_node_and_land_in_the_ledger(repo, cluster):
    (repo / "program.md").write_text(PROGRAM.replace("seeds: 1", "seeds: 2"))  # a baseline: two trials
    run = experiment(repo, cluster.address, "-m", "a bigram table, on ray")
    out, _ = run.communicate(timeout=300)
    assert run.returncode == 0, out
    assert "[r0001] VERDICT: KEEP" in out, out
    trials = [read_json(d / "metrics.json") for d in (repo / "runs" / "r0001", repo / "runs" / "r0001" / "s2")]
    for m, d in zip(trials, ("r0001", "r0001/s2"), strict=True):
        assert m["outcome"] == "ok" and m["backend"] in ("docker", "bwrap"), m
        assert m["node"] == cluster.worker.node_id  # the worker node ran it, not the head (it offers no slot)
        assert m["lease"]["name"] in ("cpu0", "cpu1") and m["lease"]["cpus"], m["lease"]
        for name in ("train.log", "score.json", "train.py"):
            assert (repo / "runs" / d / name).is_file(), (d, name)
        assert (repo / "runs" / "scorer" / f"{m['id']}.log").is_file()
    [row] = ledger.read(repo)
    assert row["status"] == "keep" and row["values"] == [m["value"] for m in trials]
    sent = list(cluster.node_dir.glob(f"*/data/{trials[0]['data_manifest_hash']}"))  # the node's copy of data/
    assert sent and all((d / "val.bin").is_file() and not (d / "test.bin").exists() for d in sent)  # no test split
    assert all(read_json(d / "heldout-check.json")["passed"] for d in sent)  # the node's own: none is sent
    assert git.Repo(repo).head.commit.hexsha == row["commit"]


def test_the_loops_check_counts_the_clusters_slots(cluster):
    """./run.sh loop --ray ADDRESS asks the cluster once, before any session, how many experiments it runs."""
    probe = subprocess.run([sys.executable, "-c", f"from eval import remote; print(remote.probe({cluster.address!r}))"],
                           cwd=REPO, capture_output=True, text=True, timeout=120)
    assert probe.stdout.strip() == "2", probe.stdout + probe.stderr


def test_a_node_with_another_harness_version_refuses_the_trial_and_leaves_nothing(repo, measure, monkeypatch):
    """What refuses a run here refuses it on a node (./run.sh exits 2, nothing recorded): this driver claims
    another version of eval/ and sandbox/ than the node's own."""
    monkeypatch.setattr(measure, "version", "0" * 64)  # this driver's, not the node's
    run_dir = repo / "runs" / "r0001"
    run_dir.mkdir(parents=True)
    with pytest.raises(SandboxUnavailable, match="another version of the harness"):
        measure(repo, config.load(repo / "program.md"), ("r0001", run_dir), repo / "train.py", "", 1.0, 1)
    assert list(run_dir.iterdir()) == []  # the snapshot is gone again: nothing ran, nothing to judge


def test_three_trials_on_two_slots_never_share_one(repo, measure):
    """Ray runs at most SLOT trials on the node at once; the node's leases give them disjoint cores."""
    program = config.load(repo / "program.md")
    got, calls = {}, {}

    def trial(run_id: str) -> None:
        run_dir = repo / "runs" / run_id
        run_dir.mkdir(parents=True)
        t0 = time.monotonic()
        got[run_id] = measure(repo, program, (run_id, run_dir), repo / "train.py", "", 1.0, 1)
        calls[run_id] = time.monotonic() - t0

    threads = [threading.Thread(target=trial, args=(f"r000{k}",)) for k in (1, 2, 3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=400)
    assert all(m["outcome"] == "ok" for m in got.values()), [m["reason"] for m in got.values()]
    leases = {m["lease"]["name"]: set(m["lease"]["cpus"]) for m in got.values()}
    assert set(leases) == {"cpu0", "cpu1"} and not leases["cpu0"] & leases["cpu1"], leases
    # The third waited for a slot: its call took its own trial and (at least most of) another one's.
    last = max(calls, key=calls.get)
    shortest_other = min(m["total_seconds"] for i, m in got.items() if i != last)
    assert calls[last] >= got[last]["total_seconds"] + 0.8 * shortest_other, (calls, got)


def wait_started(node_dir: Path, run: subprocess.Popen) -> None:
    """Until train.py printed 'started' on the node (r0001's train.log in a slot's scratch repository)."""
    deadline = time.monotonic() + 180
    while not any("started" in p.read_text() for p in node_dir.glob("*/trials/cpu*/runs/r0001/train.log")):
        assert time.monotonic() < deadline and run.poll() is None, "training never started on the node"
        time.sleep(0.5)


def test_a_node_killed_mid_run_is_an_infrastructure_crash_and_the_candidate_is_kept(repo, tmp_path):
    dying = LocalCluster(tmp_path / "nodes", slots=1)
    try:
        (repo / "train.py").write_text(SLEEPER)
        run = experiment(repo, dying.address, "-m", "sleep through a node's death", "--budget", "60")
        wait_started(dying.node_dir, run)
        dying.cluster.remove_node(dying.worker, allow_graceful=False)  # SIGKILL: its raylet and its workers
        t0 = time.monotonic()
        out, _ = run.communicate(timeout=120)
        assert time.monotonic() - t0 < 60, "the harness waited for a dead node"
    finally:
        dying.close()
    assert run.returncode == 3, out
    assert "[r0001] VERDICT: CRASH" in out and "not train.py's doing" in out and "Ray" in out, out
    v = read_json(repo / "runs" / "r0001" / "verdict.json")
    assert (v["status"], v["values"], v["diff_ref"]) == ("crash", [], "refs/autoresearch/discarded/r0001")
    kept = git.Repo(repo).commit(v["diff_ref"]).tree["train.py"].data_stream.read()
    assert kept == SLEEPER.encode()
    assert read_json(repo / "runs" / "r0001" / "metrics.json")["backend"] == "ray"
    assert [r["id"] for r in ledger.read(repo)] == ["r0001"]
