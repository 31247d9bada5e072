"""Kept versions become commits, discarded ones refs: on real git repositories in temp dirs."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import git
import pytest

from eval.record import history


@pytest.fixture
def research_repo(tmp_path: Path) -> Path:
    root = tmp_path / "repo"
    root.mkdir()
    r = git.Repo.init(root, initial_branch="research")
    with r.config_writer() as c:
        c.set_value("user", "name", "test").set_value("user", "email", "test@example.com")
    (root / "train.py").write_text("LR = 1\n")
    (root / "scratchpad.md").write_text("# notes\n")
    r.index.add(["train.py", "scratchpad.md"])
    r.index.commit("baseline")
    return root


def candidate(repo: Path, run_id: str, text: str) -> Path:
    run_dir = repo / "runs" / run_id
    run_dir.mkdir(parents=True)
    (repo / "train.py").write_text(text)
    (run_dir / "train.py").write_text(text)
    return run_dir / "train.py"


def test_keep_commits_train_py_and_scratchpad(research_repo):
    src = candidate(research_repo, "r0001", "LR = 2\n")
    (research_repo / "scratchpad.md").write_text("# notes\nr0001 keep\n")
    sha = history.keep(research_repo, "r0001", src, "r0001 keep: val_bpb 1.0", "experiment: r0001")
    r = git.Repo(research_repo)
    assert r.head.commit.hexsha == sha and r.active_branch.name == "research"
    assert r.head.commit.tree["train.py"].data_stream.read() == b"LR = 2\n"
    assert b"r0001 keep" in r.head.commit.tree["scratchpad.md"].data_stream.read()
    assert "Autoresearch-Experiment: r0001" in r.head.commit.message
    assert r.head.commit.author.name == "autoresearch harness"
    assert history.keep(research_repo, "r0001", src, "again", "again") == sha  # idempotent
    assert len(list(r.iter_commits())) == 2


def test_keep_commits_only_its_files_and_leaves_the_users_staging_alone(research_repo):
    (research_repo / "notes.txt").write_text("mine\n")
    r = git.Repo(research_repo)
    r.index.add(["notes.txt"])
    src = candidate(research_repo, "r0001", "LR = 2\n")
    sha = history.keep(research_repo, "r0001", src, "r0001 keep", "experiment: r0001")
    assert sorted(b.path for b in r.commit(sha).tree.blobs) == ["scratchpad.md", "train.py"]
    assert r.git.diff("--cached", "--name-only").split() == ["notes.txt"]  # still staged, not committed
    assert r.git.diff("--cached", "--", "train.py") == ""


def test_discard_keeps_the_diff_under_a_ref_and_restores_the_best(research_repo):
    before = history.head(research_repo)
    src = candidate(research_repo, "r0002", "LR = 99\n")
    ref = history.discard(research_repo, "r0002", src, "r0002 discard")
    assert ref == "refs/autoresearch/discarded/r0002"
    assert (research_repo / "train.py").read_text() == "LR = 1\n"
    r = git.Repo(research_repo)
    assert r.head.commit.hexsha == before  # no commit on the branch
    diff = r.git.diff(before, ref)
    assert "-LR = 1" in diff and "+LR = 99" in diff
    assert not r.is_dirty()
    assert history.discard(research_repo, "r0002", src, "again") == ref  # idempotent
    assert r.commit(ref).parents[0].hexsha == before  # the candidate sits on the best it was judged against


def test_discarded_ref_survives_gc(research_repo):
    src = candidate(research_repo, "r0003", "LR = 3\n")
    ref = history.discard(research_repo, "r0003", src, "r0003 discard")
    subprocess.run(["git", "gc", "--prune=now", "-q"], cwd=research_repo, check=True)
    assert "LR = 3" in git.Repo(research_repo).git.show(f"{ref}:train.py")


def test_every_editable_file_is_kept_discarded_and_restored_together(research_repo):
    r = git.Repo(research_repo)
    (research_repo / "nets").mkdir()
    (research_repo / "nets" / "model.py").write_text("WIDTH = 8\n")
    r.index.add(["nets/model.py"])
    r.index.commit("model")
    editable = ("train.py", "nets/model.py")
    history.check(research_repo, editable)
    src = candidate(research_repo, "r0001", "LR = 2\n")
    (src.parent / "nets").mkdir()
    (src.parent / "nets" / "model.py").write_text("WIDTH = 16\n")
    sha = history.keep(research_repo, "r0001", src, "r0001 keep", "experiment: r0001", editable)
    assert r.commit(sha).tree["nets/model.py"].data_stream.read() == b"WIDTH = 16\n"

    src = candidate(research_repo, "r0002", "LR = 3\n")
    (src.parent / "nets").mkdir()
    (src.parent / "nets" / "model.py").write_text("WIDTH = 99\n")
    (research_repo / "nets" / "model.py").write_text("WIDTH = 99\n")  # the agent's edit, as it ran
    ref = history.discard(research_repo, "r0002", src, "r0002 discard", editable)
    assert "+WIDTH = 99" in r.git.diff(sha, ref) and "+LR = 3" in r.git.diff(sha, ref)
    assert (research_repo / "nets" / "model.py").read_text() == "WIDTH = 16\n"  # back to the best
    assert (research_repo / "train.py").read_text() == "LR = 2\n" and not r.is_dirty()


def test_an_editable_file_that_is_not_committed_is_refused_before_a_run(research_repo):
    (research_repo / "model.py").write_text("WIDTH = 8\n")
    with pytest.raises(history.NotAResearchRepo, match="model.py is not committed"):
        history.check(research_repo, ("train.py", "model.py"))


def test_a_failed_run_before_any_keep_leaves_the_humans_files_as_they_ran(tmp_path, corpus):
    from eval import experiment
    from tests.conftest import build_repo

    repo = build_repo(tmp_path / "repo", corpus)
    fixed = (repo / "train.py").read_text() + "\n# the human's uncommitted fix, which still crashes\n"
    (repo / "train.py").write_text(fixed)
    run_dir = repo / "runs" / "r0001"
    run_dir.mkdir(parents=True)
    (run_dir / "train.py").write_text(fixed)
    (run_dir / "metrics.json").write_text(json.dumps({"id": "r0001", "outcome": "crash", "value": None, "seed": 1,
                                                      "hypothesis": "baseline", "total_seconds": 1.0,
                                                      "log_tail": "Traceback ..."}))
    d = experiment.apply_verdict(repo, "r0001")
    assert d["status"] == "crash" and (repo / "train.py").read_text() == fixed  # not replaced by HEAD's
    assert "left as it ran" in experiment.verdict_text(d)
    assert git.Repo(repo).git.show(f"{d['diff_ref']}:train.py") == fixed.rstrip("\n")  # and a copy in git
