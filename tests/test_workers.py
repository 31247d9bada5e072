"""Workers: one research in several git worktrees, one ledger, each experiment on its own slot.

Real git worktrees, real leases, real verdicts; the trials are scripted (tests/test_research.scripted), so
two experiments can be made to overlap for sure: each waits in its first trial until the other is there.
"""

from __future__ import annotations

import json
import threading
from pathlib import Path

import git
import pytest

from commands import status
from eval import config, experiment, rules
from eval.record import ledger
from loop import workers
from tests.test_research import scripted


@pytest.fixture
def home(repo: Path) -> Path:
    with git.Repo(repo).config_writer() as c:
        c.set_value("user", "name", "test").set_value("user", "email", "test@example.com")
    text = (repo / "program.md").read_text()
    (repo / "program.md").write_text(text.replace("verdict:", "devices: {cpu_slots: 2}\nverdict:", 1))
    return repo


def candidate(w: workers.Worker, note: str) -> None:
    (w.path / "train.py").write_text((w.path / "train.py").read_text() + f"\n# CANDIDATE {note}\n")


def noted(w: workers.Worker, run_id: str) -> None:
    (w.path / "scratchpad.md").write_text((w.path / "scratchpad.md").read_text() + f"\n- {run_id} noted\n")


def test_worktrees_share_the_ledger_data_and_steering_of_their_home(home):
    w1, w2 = workers.prepare(home, 2)
    assert (w1.branch, w2.branch) == ("research-w1", "research-w2")
    assert git.Repo(w2.path).active_branch.name == "research-w2"
    for w in (w1, w2):
        for name in workers.SHARED:
            assert (w.path / name).resolve() == (home / name).resolve()
    assert "cpu_slots: 2" in (w1.path / "program.md").read_text()  # the home's, uncommitted edit included
    (home / "program.md").write_text((home / "program.md").read_text().replace("seeds: 3", "seeds: 2"))
    workers.steer(home, w1)
    assert "seeds: 2" in (w1.path / "program.md").read_text()
    assert workers.prepare(home, 2) == [w1, w2]  # the next loop reuses them


def test_two_workers_at_once_on_two_slots_one_ledger_and_the_keep_of_one_is_followed_by_the_other(home):
    w1, w2 = workers.prepare(home, 2)
    base = experiment.run_experiment(w1.path, "baseline", None, False, say=lambda _: None,
                                     measure=scripted([(2.00, 10.0), (2.02, 10.0), (1.98, 10.0)]))
    assert base["status"] == "keep"
    noted(w1, "r0001")
    both_running = threading.Barrier(2, timeout=60)
    results: dict[str, dict] = {}

    def run(w: workers.Worker, machine: list[tuple[float, float]]) -> None:
        inner = scripted(machine)

        def measure(repo, program, trial, *args, **kwargs):
            if trial[1].name in ("r0002", "r0003"):  # the first trial of each: both leases are held now
                both_running.wait()
            return inner(repo, program, trial, *args, **kwargs)

        results[w.name] = experiment.run_experiment(w.path, f"idea of {w.name}", None, False, say=lambda _: None,
                                                    measure=measure)

    candidate(w1, "a real gain")
    candidate(w2, "no gain")
    gain = [(1.90, 10.0)] * 3 + [(1.90, 10.0), (2.00, 10.0), (2.00, 10.0), (1.90, 10.0), (1.90, 10.0), (2.00, 10.0)]
    threads = [threading.Thread(target=run, args=(w1, gain)), threading.Thread(target=run, args=(w2, [(2.05, 10.0)]))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    d1, d2 = results["w1"], results["w2"]
    assert {d1["id"], d2["id"]} == {"r0002", "r0003"}
    assert {c["lease"] for c in d1["compute"]} | {c["lease"] for c in d2["compute"]} == {"cpu0", "cpu1"}
    assert {c["lease"] for c in d1["compute"]} != {c["lease"] for c in d2["compute"]}  # each on its own slot
    assert (d1["status"], d1["confirmation"]["status"], d2["status"]) == ("keep", "keep", "discard")
    rows = ledger.read(home)
    assert sorted(r["id"] for r in rows) == ["r0001", "r0002", "r0003"] and ledger.read(w2.path) == rows
    assert {r["id"]: r["branch"] for r in rows}[d1["id"]] == "research-w1"

    noted(w2, d2["id"])
    assert rules.unrecorded(w2.path) is None and rules.unrecorded(w1.path) == d1["id"]  # each its own verdicts
    candidate(w2, "another no gain")
    d3 = experiment.run_experiment(w2.path, "w2 again", None, False, say=lambda _: None,
                                   measure=scripted([(2.05, 10.0)]))
    kept = git.Repo(w1.path).head.commit
    if d2["followed"]:  # w2's first verdict came after w1's keep: it followed then
        assert d2["followed"]["id"] == d1["id"] and d3["followed"] is None
    else:
        assert d3["followed"]["id"] == d1["id"]
        assert f"another worker's keep {d1['id']} (branch research-w1)" in experiment.verdict_text(d3)
    assert (w2.path / "train.py").read_bytes() == kept.tree["train.py"].data_stream.read()  # w2 is on the best
    assert "follow" in git.Repo(w2.path).head.commit.message


def test_status_shows_every_worker_its_branch_slot_and_last_verdict(home, monkeypatch, capsys):
    w1, w2 = workers.prepare(home, 2)
    experiment.run_experiment(w1.path, "baseline", None, False, say=lambda _: None,
                              measure=scripted([(2.00, 10.0), (2.02, 10.0), (1.98, 10.0)]))
    (home / "runs" / "loop.json").write_text(json.dumps({"workers": [
        {"name": w.name, "branch": w.branch, "worktree": str(w.path), "stop": None} for w in (w1, w2)]}))
    monkeypatch.chdir(home)
    program = config.load(w2.path / "program.md")
    with experiment.leased(w2.path, program, say=lambda _: None) as (_, run_id, _, _):
        assert status.main([]) == 0
    out = capsys.readouterr().out
    lines = {line.split()[0]: line.split() for line in out.splitlines() if line.startswith("w")}
    assert lines["w1"][1:3] == ["research-w1", "-"] and lines["w1"][4:6] == ["r0001", "keep"]
    assert lines["w2"][1:5] == ["research-w2", "cpu0", run_id, "-"]
