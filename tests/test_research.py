"""One experiment's verdict applied end to end: decision, git, ledger, plot, report, recovery after kill -9."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import git
import pytest

from eval import experiment
from eval.record import ledger
from tests.conftest import REPO

CASES = {  # id -> (train.py text, outcome, value); minimize
    "r0001": ("LR = 1\n", "ok", [2.00, 2.01, 1.99]),
    "r0002": ("LR = 2\n", "ok", [1.50, 1.51, 1.49]),
    "r0003": ("LR = 3\n", "ok", [1.52]),
    "r0004": ("LR = oops\n", "crash", [None]),
}


def fake_run(repo: Path, run_id: str) -> None:
    """The files ./run.sh leaves for one experiment, with its seeds' metrics written by hand."""
    text, outcome, values = CASES[run_id]
    run_dir = repo / "runs" / run_id
    run_dir.mkdir(parents=True)
    (run_dir / "train.py").write_text(text)
    (repo / "train.py").write_text(text)
    for k, value in enumerate(values, start=1):
        d = run_dir if k == 1 else run_dir / f"s{k}"
        d.mkdir(exist_ok=True)
        metrics = {"id": run_id, "outcome": outcome, "value": value, "seed": 100 + k, "hypothesis": f"set {text}",
                   "peak_memory_mb": 300.0, "total_seconds": 10.0, "cpu_seconds": 20.0,
                   "model_sha256": hashlib.sha256(f"{text}{'' if 'SEED = 0' in text else k}".encode()).hexdigest(),
                   "log_tail": "Traceback: boom" if value is None else ""}
        (d / "metrics.json").write_text(json.dumps(metrics))


@pytest.fixture
def research_repo(repo: Path) -> Path:
    with git.Repo(repo).config_writer() as c:
        c.set_value("user", "name", "test").set_value("user", "email", "test@example.com")
    return repo


def test_baseline_keep_discard_crash(research_repo):
    repo = research_repo
    verdicts = {}
    for run_id in CASES:
        fake_run(repo, run_id)
        verdicts[run_id] = experiment.apply_verdict(repo, run_id)
    assert [verdicts[i]["status"] for i in CASES] == ["keep", "keep", "discard", "crash"]
    r = git.Repo(repo)
    assert (repo / "train.py").read_text() == "LR = 2\n"  # the best, restored after the discard and the crash
    assert r.head.commit.hexsha == verdicts["r0002"]["commit"]
    assert "LR = 3" in r.git.show("refs/autoresearch/discarded/r0003:train.py")
    assert "LR = oops" in r.git.show("refs/autoresearch/discarded/r0004:train.py")
    rows = ledger.read(repo)
    assert [row["id"] for row in rows] == list(CASES)
    assert ledger.best(rows, "minimize")["id"] == "r0002"
    tsv = (repo / "results.tsv").read_text().splitlines()
    assert tsv[0].split("\t") == ["commit", "val_bpb", "memory_gb", "status", "description"]
    assert [line.split("\t")[3] for line in tsv[1:]] == ["keep", "keep", "discard", "crash"]
    assert (repo / "progress.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    text = experiment.verdict_text(verdicts["r0003"])
    assert "DISCARD" in text and "refs/autoresearch/discarded/r0003" in text and "scratchpad.md" in text
    assert experiment.pending(repo) == []


KILLER = """
import os, signal, sys
from pathlib import Path
from eval.record import history, ledger, page, plot
from eval import experiment
step = sys.argv[2]
def die(real):
    def wrapped(*args, **kwargs):
        real(*args, **kwargs)
        os.kill(os.getpid(), signal.SIGKILL)
    return wrapped
targets = {"decide": (experiment, "write_json"), "git": (history, "keep"), "git-discard": (history, "discard"),
           "ledger": (ledger, "append"), "plot": (plot, "draw"), "report": (page, "write")}
module, name = targets[step]
setattr(module, name, die(getattr(module, name)))
experiment.apply_verdict(Path(sys.argv[1]), sys.argv[3])
"""


@pytest.mark.parametrize("step, run_id", [("decide", "r0001"), ("git", "r0001"), ("ledger", "r0001"),
                                          ("plot", "r0001"), ("report", "r0001"), ("git-discard", "r0003")])
def test_kill_9_at_each_step_is_completed_by_the_next_run(research_repo, step, run_id):
    repo = research_repo
    if run_id == "r0003":
        for earlier in ("r0001", "r0002"):
            fake_run(repo, earlier)
            experiment.apply_verdict(repo, earlier)
    fake_run(repo, run_id)
    killed = subprocess.run([sys.executable, "-c", KILLER, str(repo), step, run_id], cwd=REPO,
                            env={**os.environ, "PYTHONPATH": str(REPO)}, capture_output=True, text=True)
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    assert experiment.pending(repo) == [run_id]
    experiment.recover(repo, say=lambda s: None)  # what the next ./run.sh does first
    assert experiment.pending(repo) == []
    rows = ledger.read(repo)
    assert [row["id"] for row in rows].count(run_id) == 1
    r = git.Repo(repo)
    assert sum(f"Autoresearch-Experiment: {run_id}" in c.message for c in r.iter_commits()) == (run_id == "r0001")
    assert not r.is_dirty(path="train.py")
    best = ledger.best(rows, "minimize")
    assert (repo / "train.py").read_text() == CASES[best["id"]][0]
    report = (repo / "runs" / "report.html").read_text()  # rewritten by the recovery: killed before it, or after
    assert all(f'<tr id="{row["id"]}">' in report for row in rows)


def test_the_report_is_regenerated_by_recovery_even_when_it_was_deleted_after_the_kill(research_repo):
    """A kill right after the page was written leaves a pending verdict; its recovery writes the page again."""
    repo = research_repo
    fake_run(repo, "r0001")
    killed = subprocess.run([sys.executable, "-c", KILLER, str(repo), "report", "r0001"], cwd=REPO,
                            env={**os.environ, "PYTHONPATH": str(REPO)}, capture_output=True, text=True)
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    (repo / "runs" / "report.html").unlink()
    experiment.recover(repo, say=lambda s: None)
    assert '<tr id="r0001">' in (repo / "runs" / "report.html").read_text()


def test_a_run_killed_before_its_metrics_is_recorded_as_a_crash(research_repo):
    repo = research_repo
    fake_run(repo, "r0001")
    experiment.apply_verdict(repo, "r0001")
    run_dir = repo / "runs" / "r0002"
    run_dir.mkdir()
    (run_dir / "train.py").write_text("LR = half-done\n")
    (repo / "train.py").write_text("LR = half-done\n")
    experiment.recover(repo, say=lambda s: None)
    row = ledger.read(repo)[-1]
    assert (row["id"], row["status"]) == ("r0002", "crash")
    assert "half-done" in git.Repo(repo).git.show("refs/autoresearch/discarded/r0002:train.py")
    assert (repo / "train.py").read_text() == "LR = 1\n"


def test_a_second_run_at_once_is_refused(research_repo):
    with experiment.exclusive(research_repo), pytest.raises(experiment.Busy), experiment.exclusive(research_repo):
        pass


def test_recover_removes_containers_a_killed_harness_left_running(research_repo, tmp_path):
    import docker

    from sandbox.docker_backend import LABEL, connect
    from sandbox.image import ensure_image

    client = connect()
    image = ensure_image(client)

    def sleeper(owner: str):
        return client.containers.run(image, ["/usr/bin/sleep", "300"], detach=True, labels={LABEL: owner},
                                     volumes={"/usr": {"bind": "/usr", "mode": "ro"}}, network_mode="none")

    ours = sleeper(str((research_repo / "runs" / "r0042").resolve()))
    other = sleeper(str(tmp_path / "another-repo" / "runs" / "r0001"))
    try:
        experiment.recover(research_repo, say=lambda s: None)
        with pytest.raises(docker.errors.NotFound):
            ours.reload()
        other.reload()
        assert other.status == "running"  # another repository's run is not ours to touch
    finally:
        for c in (ours, other):
            with contextlib.suppress(docker.errors.APIError):
                c.remove(force=True)


def launch(repo: Path, event: str, payload: dict) -> dict:
    """One hook through hooks/launch, as Claude Code runs it."""
    done = subprocess.run([str(repo / "hooks" / "launch"), event], input=json.dumps({"session_id": "s", **payload}),
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def pre_tool_use(repo: Path, call_id: str, command: str) -> str:
    """The guard's decision on an agent's Bash call (an allowed experiment call is noted in runs/calls/)."""
    event = {"hook_event_name": "PreToolUse", "cwd": str(repo), "tool_name": "Bash", "tool_use_id": call_id,
             "tool_input": {"command": command}}
    return launch(repo, "pre_tool_use", event)["hookSpecificOutput"]["permissionDecision"]


def post_tool_use(repo: Path, call_id: str, command: str, stdout: str = "", event: str = "PostToolUse") -> dict:
    payload = {"hook_event_name": event, "cwd": str(repo), "tool_name": "Bash", "tool_use_id": call_id,
               "tool_input": {"command": command},
               "tool_response": {"stdout": stdout, "stderr": "", "interrupted": True}}
    return launch(repo, "post_tool_use", payload)


def told(answer: dict) -> str:
    return answer["hookSpecificOutput"]["additionalContext"]


def noted(repo: Path, run_id: str) -> None:
    """The agent records the verdict in scratchpad.md, so the guard allows the next run."""
    pad = repo / "scratchpad.md"
    pad.write_text(pad.read_text() + f"\n- {run_id} | noted\n")


def test_post_tool_use_completes_a_run_cut_short_and_reports_it(research_repo):
    repo = research_repo
    fake_run(repo, "r0001")
    experiment.apply_verdict(repo, "r0001")
    noted(repo, "r0001")
    assert pre_tool_use(repo, "toolu_cut", "./run.sh -m 'cut short'") == "allow"
    (repo / "runs" / "r0002").mkdir()  # the run starts, and is killed before its first metrics
    (repo / "runs" / "r0002" / "train.py").write_text("LR = cut short\n")
    (repo / "train.py").write_text("LR = cut short\n")
    assert post_tool_use(repo, "toolu_ls", "ls runs") == {}
    answer = post_tool_use(repo, "toolu_cut", "./run.sh -m 'cut short'", stdout="[r0002] training train.py ...",
                           event="PostToolUseFailure")  # Claude Code's event for a call that failed or was killed
    assert answer["hookSpecificOutput"]["hookEventName"] == "PostToolUseFailure"
    text = told(answer)
    assert "[r0002] VERDICT: CRASH" in text and "interrupted" in text and "scratchpad.md" in text
    assert (repo / "train.py").read_text() == "LR = 1\n"
    assert [row["id"] for row in ledger.read(repo)] == ["r0001", "r0002"]
    assert "[r0002] VERDICT: CRASH" in told(post_tool_use(repo, "toolu_cut", "./run.sh"))  # asked again: the same


def test_post_tool_use_tells_each_call_its_own_experiment(research_repo):
    """Two calls allowed before either ran (parallel agents): each is told the verdict of the run it started."""
    repo = research_repo
    fake_run(repo, "r0001")
    experiment.apply_verdict(repo, "r0001")
    noted(repo, "r0001")
    assert pre_tool_use(repo, "toolu_a", "./run.sh -m 'a'") == pre_tool_use(repo, "toolu_b", "./run.sh") == "allow"
    fake_run(repo, "r0002")
    fake_run(repo, "r0003")
    assert told(post_tool_use(repo, "toolu_a", "./run.sh -m 'a'")).startswith("[r0002] VERDICT: KEEP")
    assert told(post_tool_use(repo, "toolu_b", "./run.sh")).startswith("[r0003] VERDICT: DISCARD")
    noted(repo, "r0003")
    assert pre_tool_use(repo, "toolu_c", "./run.sh") == "allow"  # this one's ./run.sh is refused: no experiment
    assert told(post_tool_use(repo, "toolu_c", "./run.sh")).startswith("No verdict: this ./run.sh call started no")
    assert "no note of when this ./run.sh call began" in told(post_tool_use(repo, "toolu_never_allowed", "./run.sh"))
    assert [row["id"] for row in ledger.read(repo)] == ["r0001", "r0002", "r0003"]


def test_decide_judges_seed_ignoring_versions_by_the_spread_of_earlier_experiments(research_repo):
    """Once a kept version ignores the seed, neither side of the next verdict measures noise: the ledger does."""
    repo = research_repo
    extra = {"r0002": ("SEED = 0\n", "ok", [1.0, 1.0, 1.0]),  # a big gain, one draw: kept
             "r0003": ("SEED = 0; LR = 2\n", "ok", [0.99, 0.99, 0.99])}  # 0.01 better, one draw again
    saved = dict(CASES)
    CASES.update(extra)
    try:
        verdicts = {}
        for run_id in ("r0001", "r0002", "r0003"):
            fake_run(repo, run_id)
            verdicts[run_id] = experiment.apply_verdict(repo, run_id)
    finally:
        CASES.clear()
        CASES.update(saved)
    assert [verdicts[i]["status"] for i in ("r0001", "r0002", "r0003")] == ["keep", "keep", "discard"]
    d = verdicts["r0003"]
    assert "ignores the seed" in d["reason"]
    assert d["spread"] == pytest.approx(0.01)  # r0001's three honest seeds


def test_a_report_that_cannot_be_made_does_not_strand_the_verdict(research_repo):
    """The page is for reading: when it fails (here a garbled confirm log), the verdict is applied all the same
    and the page says what went wrong."""
    repo = research_repo
    (repo / "runs" / "confirm").mkdir(parents=True)
    (repo / "runs" / "confirm" / "log.jsonl").write_text(json.dumps({"runs": {"baseline": {"test": ["x"]}}}) + "\n")
    fake_run(repo, "r0001")
    assert experiment.apply_verdict(repo, "r0001")["applied"]
    assert experiment.pending(repo) == []
    assert "The morning report could not be written" in (repo / "runs" / "report.html").read_text()


# ------------------------------------------------------------------ paired verdicts: the change, not the machine

def scripted(machine: list[tuple[float, float]], gain: float = 0.0):
    """A Measure standing in for training on a machine whose state changes: each trial takes the next
    (value, CPU-seconds) of `machine`, in order; the candidate's train.py (a source outside runs/<id>/best/
    and not the first experiment) is `gain` better. Values: minimize."""
    from eval.record import metrics as metrics_file

    state = iter(machine)

    def measure(repo, program, trial, source, hypothesis, budget, seed, unsafe=False, lease=None):
        run_id, run_dir = trial
        (run_dir / "train.py").write_bytes(source.read_bytes())
        value, cpu = next(state)
        is_candidate = source.parent.name != "best" and "CANDIDATE" in source.read_text()
        value -= gain if is_candidate else 0.0
        m = metrics_file.record(run_id, program.task, hypothesis, seed, budget, hashlib.sha256(
            source.read_bytes()).hexdigest(), "0" * 64, "replayed", outcome="ok", value=value, cpu_seconds=cpu,
            model_sha256=hashlib.sha256(f"{run_id}".encode()).hexdigest(), lease=lease.record() if lease else None)
        metrics_file.write(run_dir, m)
        return m

    return measure


def baseline_under_load(repo: Path) -> None:
    """The baseline measured while the machine was busy: half the compute, a worse value."""
    experiment.run_experiment(repo, "baseline", None, False, say=lambda _: None,
                              measure=scripted([(2.00, 10.0), (2.02, 10.0), (1.98, 10.0)]))
    (repo / "train.py").write_text((repo / "train.py").read_text() + "\n# CANDIDATE\n")


def test_identical_code_after_a_load_change_is_not_kept(research_repo):
    """The candidate trains on the quiet machine and beats the busy baseline's stored runs; beside fresh runs
    of the best, on the same quiet machine, it gains nothing: discarded. Without pairs it was kept."""
    repo = research_repo
    quiet = [(1.80, 20.0), (1.81, 20.0), (1.79, 20.1), (1.80, 19.9), (1.82, 20.0), (1.78, 20.0)]
    baseline_under_load(repo)
    d = experiment.run_experiment(repo, "a comment", None, False, say=lambda _: None, measure=scripted(quiet))
    assert d["status"] == "discard" and d["paired"] and d["runs"] == 6, d
    assert [(p["candidate"], p["best"]) for p in d["pairs"]] == [
        ("r0002", "r0002-b1"), ("r0002-s2", "r0002-b2"), ("r0002-s3", "r0002-b3")]
    assert d["best_values"] == [1.81, 1.79, 1.78] and d["values"] == [1.80, 1.80, 1.82]  # s b, b s, s b
    text = experiment.verdict_text(d)
    assert "r0002-s2 vs r0002-b2 (CPU 19.9s vs 20.1s)" in text and "6 runs in all" in text
    program = (repo / "program.md").read_text()
    (repo / "program.md").write_text(program.replace("  seeds: 3", "  seeds: 3\n  paired: never"))
    (repo / "scratchpad.md").write_text((repo / "scratchpad.md").read_text() + "\nr0002 noted\n")
    (repo / "train.py").write_text((repo / "train.py").read_text() + "\n# again\n")
    unpaired = experiment.run_experiment(repo, "the same, unpaired", None, False, say=lambda _: None,
                                         measure=scripted(quiet))
    assert unpaired["status"] == "keep" and not unpaired["paired"]  # today's engine: the machine was measured


@pytest.mark.parametrize("gain", [0.0, 0.3])
def test_more_compute_within_the_tolerance_is_not_taken_for_progress(research_repo, gain):
    """A metric that follows compute (3.0 - 0.05 per CPU-second); the baseline ran on a busy machine, the
    candidate's runs then got 20 CPU-seconds and the best's reruns beside them 17.5 (within the 15%
    tolerance): the identical code's 0.125 lead is what 2.5 CPU-seconds buy, and it is not kept; a real
    gain of 0.3 still is, judged at its partners' compute."""
    repo = research_repo
    experiment.run_experiment(repo, "baseline", None, False, say=lambda _: None,
                              measure=scripted([(2.51, 10.0), (2.48, 10.2), (2.505, 9.9)]))
    (repo / "train.py").write_text((repo / "train.py").read_text() + "\n# CANDIDATE\n")
    machine = [(2.00, 20.0), (2.126, 17.5), (2.128, 17.4), (2.01, 20.1), (1.99, 19.9), (2.122, 17.6)]
    d = experiment.run_experiment(repo, "more compute", None, False, say=lambda _: None,
                                  measure=scripted(machine, gain))
    assert d["paired"] and all(p["comparable"] for p in d["pairs"]) and d["runs"] == 6, d
    assert d["status"] == ("keep" if gain else "discard"), d["reason"]
    assert "judged at its partners' compute: its runs got +14.3% CPU-seconds" in d["reason"]
    assert d["mean"] == pytest.approx(2.0 - gain)  # the values as measured, in the ledger and the text


def test_a_pair_whose_compute_differs_is_run_again_and_never_counted(research_repo):
    repo = research_repo
    baseline_under_load(repo)
    machine = [(1.50, 20.0), (1.80, 20.0),  # round 1 (s, b): the candidate 0.3 better
               (1.80, 9.0), (1.50, 20.0),  # round 2 (b, s): the best's rerun beside a hog, half the compute
               (1.50, 20.0), (1.80, 20.0), (1.80, 20.0), (1.50, 20.0)]  # rounds 3 (s, b) and 4 (b, s)
    d = experiment.run_experiment(repo, "a real gain", None, False, say=lambda _: None, measure=scripted(machine))
    assert d["status"] == "keep" and d["runs"] == 8, d
    assert [(p["candidate"], p["best"]) for p in d["pairs"]] == [
        ("r0002", "r0002-b1"), ("r0002-s2", "r0002-b3"), ("r0002-s3", "r0002-b4"), ("r0002-s4", None),
        (None, "r0002-b2")]  # matched by compute, the hogged rerun left out
    assert d["seeds"] == [p["seed"] for p in d["pairs"] if p["comparable"]] and len(d["values"]) == 3
    assert "r0002-b2 (CPU 9.0s) unmatched" in experiment.verdict_text(d)
    row = ledger.read(repo)[-1]
    assert row["id"] == "r0002" and row["values"] == [1.50, 1.50, 1.50] and len(row["compute"]) == 8


def test_no_comparable_pair_is_no_verdict_on_the_change(research_repo):
    repo = research_repo
    baseline_under_load(repo)
    s, b = (1.50, 20.0), (1.80, 5.0)  # the best's reruns always beside a hog
    machine = [s, b, b, s] * 3  # rounds (s, b), (b, s), ...
    d = experiment.run_experiment(repo, "a gain on a drifting machine", None, False, say=lambda _: None,
                                  measure=scripted(machine))
    assert d["status"] == "discard" and "no pair got comparable compute" in d["reason"], d
    assert d["runs"] == 12 and not any(p["comparable"] for p in d["pairs"])
    assert git.Repo(repo).git.show("refs/autoresearch/discarded/r0002:train.py").endswith("# CANDIDATE")


@pytest.mark.parametrize("gain", [0.0, 0.1])
def test_pairs_across_a_load_that_switches_are_judged_on_their_differences(research_repo, gain):
    """The machine switches between quiet (20 CPU-seconds, the best at 1.80) and busy (10, at 2.00) between
    rounds: as two groups the load's 0.2 would swamp a real 0.1 gain; each pair ran under one load, so their
    differences keep it (and find nothing in identical code)."""
    repo = research_repo
    baseline_under_load(repo)
    noise = [0.002, -0.003, 0.001, 0.0, -0.001, 0.003]
    loads = [(1.80, 20.0), (1.80, 20.1), (2.00, 10.0), (2.00, 10.1), (1.80, 19.9), (1.80, 20.0)]  # s b, b s, s b
    machine = [(v + e, c) for (v, c), e in zip(loads, noise, strict=True)]
    d = experiment.run_experiment(repo, "tied weights", None, False, say=lambda _: None,
                                  measure=scripted(machine, gain))
    assert d["paired"] and d["runs"] == 6 and all(p["comparable"] for p in d["pairs"]), d
    assert d["status"] == ("keep" if gain else "discard"), d["reason"]
    assert "the machine's load changed between rounds, so judged on the 3 differences between partners" in d["reason"]
    assert d["delta"] == pytest.approx(gain, abs=0.005)
