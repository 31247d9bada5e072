"""Many candidates at once: a keep is confirmed beside fresh runs of the global best before it is promoted.

The family-wise property is simulated through the engine's own flow (benchmarks/bench_parallel.py); the
confirmation runs through eval/experiment.run_experiment with a scripted measurement (a real repository,
real git, ledger and verdict files), on a repository whose devices give two slots.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import git
import pytest

from benchmarks import bench_parallel
from eval import experiment
from eval.record import ledger
from tests.test_research import baseline_under_load, scripted


@pytest.fixture
def research(repo: Path) -> Path:
    with git.Repo(repo).config_writer() as c:
        c.set_value("user", "name", "test").set_value("user", "email", "test@example.com")
    return repo


def test_confirmed_keeps_hold_family_wise_false_keeps_to_5_percent_at_8_candidates():
    today = dataclasses.replace(bench_parallel.RULE, confirm="never")
    guarded = dataclasses.replace(bench_parallel.RULE, confirm="always")
    assert bench_parallel.rates(today, 8, 300, 0.0)[0] > 0.12  # without the guard, one family in five or so
    assert bench_parallel.rates(guarded, 8, 300, 0.0)[0] <= bench_parallel.TARGETS["false keeps"]
    assert bench_parallel.rates(guarded, 8, 40, 4.0, seed=1)[1] >= 0.9  # a clear gain is still kept


def two_slots(repo):
    text = (repo / "program.md").read_text()
    (repo / "program.md").write_text(text.replace("verdict:", "devices: {cpu_slots: 2}\nverdict:", 1))


LUCKY = [(1.90, 10.0), (1.91, 10.0), (1.89, 10.0)]  # the candidate's first three runs: beyond the required margin
AS_GOOD = [(2.00, 10.0), (2.01, 10.0), (1.99, 10.0), (2.00, 10.0), (2.01, 10.0), (1.99, 10.0)]  # k1 g1 g2 k2 k3 g3
BETTER = [(1.90, 10.0), (2.01, 10.0), (1.99, 10.0), (1.91, 10.0), (1.89, 10.0), (1.99, 10.0)]


@pytest.mark.parametrize("slots, confirmation, status, runs", [
    (1, [], "keep", 3),  # one slot: today's engine, kept on its first runs
    (2, AS_GOOD, "discard", 9),  # two slots: the lucky runs are not confirmed
    (2, BETTER, "keep", 9),
])
def test_a_keep_is_promoted_only_when_fresh_pairs_beside_the_global_best_confirm_it(research, slots,
                                                                                      confirmation, status, runs):
    repo = research
    if slots == 2:
        two_slots(repo)
    baseline_under_load(repo)  # r0001, at CPU 10 s: the candidate's runs are alike, judged without pairs
    said = []
    d = experiment.run_experiment(repo, "lucky or better", None, False, say=said.append,
                                  measure=scripted(LUCKY + confirmation))
    assert (d["status"], d["runs"]) == (status, runs), d["reason"]
    assert ledger.read(repo)[-1]["status"] == status
    if slots == 1:
        assert d["confirmation"] is None
        return
    c = d["confirmation"]
    assert (c["best_id"], c["done"], c["status"]) == ("r0001", True, status)
    assert [(p["candidate"], p["best"]) for p in c["pairs"]] == [
        ("r0002-k1", "r0002-g1"), ("r0002-k2", "r0002-g2"), ("r0002-k3", "r0002-g3")]
    assert any("confirmed beside fresh runs of the global best r0001" in line for line in said)
    assert ("not confirmed beside fresh runs of the global best r0001" in d["reason"]) == (status == "discard")
    assert d["values"] == [1.90, 1.91, 1.89]  # the first runs' verdict, the confirmation's on top
    assert ("# CANDIDATE" in (repo / "train.py").read_text()) == (status == "keep")


def test_a_confirmation_cut_short_is_never_promoted(research):
    repo = research
    two_slots(repo)
    baseline_under_load(repo)
    measure = scripted(LUCKY + AS_GOOD[:3])  # k1 g1 g2, then the harness dies

    def dies_at_k2(repo, program, trial, *args, **kwargs):
        if trial[0] == "r0002-k2":
            raise KeyboardInterrupt
        return measure(repo, program, trial, *args, **kwargs)

    with pytest.raises(KeyboardInterrupt):
        experiment.run_experiment(repo, "lucky", None, False, say=lambda _: None, measure=dies_at_k2)
    assert experiment.pending(repo) == ["r0002"]
    with experiment.exclusive(repo):
        experiment.recover(repo, say=lambda _: None)
    row = ledger.read(repo)[-1]
    assert (row["id"], row["status"]) == ("r0002", "discard")
    assert "its confirmation beside the global best did not finish" in row["reason"]


def test_a_keep_overtaken_by_another_workers_keep_while_it_is_confirmed_is_not_promoted(research):
    repo = research
    two_slots(repo)
    baseline_under_load(repo)
    measure = scripted(LUCKY + BETTER)

    def meanwhile_another_keep(repo, program, trial, *args, **kwargs):
        if trial[0] == "r0002-g1":  # another worker's keep lands in the one ledger while this one is confirmed
            ledger.append(repo, {**ledger.read(repo)[-1], "id": "r0099"})
        return measure(repo, program, trial, *args, **kwargs)

    d = experiment.run_experiment(repo, "better, but late", None, False, say=lambda _: None,
                                  measure=meanwhile_another_keep)
    assert d["status"] == "discard" and d["confirmation"]["best_id"] == "r0001"
    assert "r0099 became the global best while it was confirmed beside r0001: try it again" in d["reason"]
