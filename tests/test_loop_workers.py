"""`./run.sh loop --workers 2` end to end: two real Claude Code CLIs, real sandboxed training, one ledger.

A scripted model answers both sessions, told apart by their working directory (the worker's worktree).
w1 tries a real gain (the learning rate of a too-slow baseline raised), w2 at once a change that learns
nothing: the two run at the same time on the two CPU slots. w1's keep is confirmed beside fresh runs of the
global best before it is promoted; w2, once it is, runs again and follows it. STOP ends both.
"""

from __future__ import annotations

import json
import os
import re
import threading
from pathlib import Path

import git

from eval import experiment
from eval.record import ledger
from loop.messages_server import request_kind
from tests.conftest import write_program
from tests.test_loop import Model, Turn, bash, finish, newest_input, start_loop, text, tool, wait_for
from tests.test_sandbox import TINY_BIGRAM

# At a 1 s budget lr=0.01 reached within 0.01 of lr=0.1 on a fast machine (0.447 vs 0.457: the keep was not
# confirmed); lr=0.003 stays well below it (0.02-0.24 at 240-470 steps, against 0.36) and above no learning.
SLOW, GOOD, NONE = "lr=0.003", "lr=0.1", "lr=0.0"


def span(run_dir: Path) -> tuple[float, float]:
    """When an experiment ran: its first trial's start to its verdict."""
    first = run_dir / "metrics.json"
    started = os.path.getmtime(first) - json.loads(first.read_text())["total_seconds"]
    return started, os.path.getmtime(run_dir / "verdict.json")


def test_two_workers_one_ledger_a_keep_followed_and_stop_ends_both(repo, tmp_path):
    home = repo
    write_program(home, metric="val_acc", direction="maximize", evaluator="eval.scoring.accuracy:score",
                  budget=1, seeds=1)
    (home / "train.py").write_text(TINY_BIGRAM.replace("lr=0.1", SLOW))
    text_now = (home / "program.md").read_text()
    (home / "program.md").write_text(text_now.replace(  # workers here, not compute: every pair compares
        "verdict:", "devices: {cpu_slots: 2}\nverdict:\n  compute_tolerance: 1.0", 1))
    r = git.Repo(home)
    r.git.add(A=True)
    r.git.commit("-q", "-m", "a slow baseline on two slots", "--author", "test <test@example.com>")
    base = experiment.run_experiment(home, "baseline", None, False, say=lambda _: None)
    assert base["status"] == "keep", base["reason"]
    (home / "scratchpad.md").write_text((home / "scratchpad.md").read_text() + "\n- r0001 | keep | baseline\n")
    r.git.commit("-q", "-am", "noted", "--author", "test <test@example.com>")

    def w1_kept() -> bool:
        return any(row.get("branch") == "research-w1" and row["status"] == "keep" for row in ledger.read(home))

    def lr_now(p: Path) -> str:
        return SLOW if SLOW in (p / "train.py").read_text() else GOOD  # GOOD once w2 followed w1's keep

    scripts: dict[str, list] = {  # each step: the worktree -> a turn; (until, meanwhile): wait for `until`
        "w1": [lambda p: tool("Read", file_path=f"{p}/train.py"),
               lambda p: tool("Edit", file_path=f"{p}/train.py", old_string=SLOW, new_string=GOOD),
               lambda p: bash("./run.sh -m 'a learning rate that learns within the budget'")],
        "w2": [lambda p: tool("Read", file_path=f"{p}/train.py"),
               lambda p: tool("Edit", file_path=f"{p}/train.py", old_string=SLOW, new_string=NONE),
               lambda p: bash("./run.sh -m 'no learning at all'"),
               (w1_kept, bash("./run.sh status")),
               lambda p: tool("Read", file_path=f"{p}/scratchpad.md"),
               lambda p: tool("Edit", file_path=f"{p}/scratchpad.md", old_string="- r0001 | keep | baseline",
                              new_string="- r0001 | keep | baseline\n- r0002 r0003 | noted"),
               lambda p: tool("Read", file_path=f"{p}/train.py"),
               lambda p: tool("Edit", file_path=f"{p}/train.py", old_string=lr_now(p), new_string=NONE),
               lambda p: bash("./run.sh -m 'no learning, on the new best'")],
    }
    lock, w2_told_all = threading.Lock(), threading.Event()

    def decide(body: dict) -> Turn:
        said = json.dumps(body)
        name = next(n for n in scripts if f"directory: {home.resolve() / 'workers' / n}" in said)
        with lock:
            queue = scripts[name]
            if queue and isinstance(queue[0], tuple):
                until, meanwhile = queue[0]
                if not until():
                    return meanwhile
                queue.pop(0)
            if not queue:
                if name == "w2":
                    w2_told_all.set()  # this request carries the verdict of its last run
                return text("Done for now.")
            return queue.pop(0)(home / "workers" / name)

    with Model(decide) as model:
        proc = start_loop(home, model, tmp_path / "home", "--workers", "2")
        try:
            wait_for(lambda: w2_told_all.is_set(), 900, "w2 told the verdict of its last run")
        finally:
            (home / "STOP").write_text("")
        out = finish(proc, 300)
        told = [newest_input(q.body) for q in model.requests if request_kind(q.body) == "main"]
    assert proc.returncode == 0, out[-4000:]
    rows = ledger.read(home)
    by_branch = {}
    for row in rows:
        by_branch.setdefault(row.get("branch"), []).append((row["id"], row["status"]))
    assert len({row["id"] for row in rows}) == len(rows) == 4  # one ledger, ids unique across workers
    assert [s for _, s in by_branch["research-w1"]] == ["keep"] and [s for _, s in by_branch["research-w2"]] == [
        "discard", "discard"]
    kept = next(row for row in rows if row["status"] == "keep" and row["id"] != "r0001")
    assert kept["confirmation"]["status"] == "keep"  # confirmed beside fresh runs of the global best
    first_w2 = next(row for row in rows if row.get("branch") == "research-w2")
    slots = {c["lease"] for c in kept["compute"]}, {c["lease"] for c in first_w2["compute"]}
    assert len(slots[0]) == len(slots[1]) == 1 and slots[0] != slots[1]  # each on its own slot
    spans = [span(home / "runs" / i) for i in (kept["id"], first_w2["id"])]
    assert spans[0][0] < spans[1][1] and spans[1][0] < spans[0][1]  # the two experiments ran at the same time
    w2_train = (home / "workers" / "w2" / "train.py").read_text()
    assert GOOD in w2_train and NONE not in w2_train  # w2 follows w1's keep
    followed = [d for i in sorted(by_branch["research-w2"]) if (d := json.loads(
        (home / "runs" / i[0] / "verdict.json").read_text()))["followed"]]
    assert [d["followed"]["id"] for d in followed] == [kept["id"]]  # at its first verdict after the keep
    assert any(f"another worker's keep {kept['id']} (branch research-w1)" in t for t in told)
    assert out.count("loop stopped: the STOP file") == 2, out[-4000:]
    per_keep = re.search(r"\nper kept change \(2 workers\): \$([0-9.]+) and [0-9.]+ runs \((\d+) kept", out)
    assert per_keep and float(per_keep[1]) > 0 and 1 <= int(per_keep[2]) <= 2, out[-4000:]  # both sessions' cost
