"""`./run.sh loop` end to end: the real loop process, the real Claude Code CLI, real training.

The model is a function of the conversation (what it was told since its last answer), served
by a MessagesServer subclass: the tests do not depend on how many times the Stop hook blocks or
when a side request arrives, only on what the loop and the harness say to the model.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import git
import pytest

from eval.experiment import pending
from eval.record import ledger
from loop.messages_server import MessagesServer, make_message, normalize_turn, request_kind
from tests.claude_cli import cli_env
from tests.conftest import write_program
from tests.test_sandbox import TINY_BIGRAM

Turn = list[dict[str, Any]]
LOOP_MARK = "(./run.sh loop)"  # how the loop's continue prompt starts
RESUME_MARK = "resumed this session"
GOOD_LR, BAD_LR = "lr=0.1", "lr=0.0"


def text(words: str) -> Turn:
    return [{"type": "text", "text": words}]


def bash(command: str) -> Turn:
    return [{"type": "tool_use", "name": "Bash", "input": {"command": command}}]


def tool(name: str, **tool_input: Any) -> Turn:
    return [{"type": "tool_use", "name": name, "input": tool_input}]


def newest_input(body: dict) -> str:
    """Everything said to the model since its last answer: a prompt, hook feedback, tool results."""
    messages = body["messages"]
    since = next((i for i in range(len(messages) - 1, -1, -1) if messages[i]["role"] == "assistant"), -1)
    parts = []
    for message in messages[since + 1:]:
        content = message["content"]
        blocks = [{"type": "text", "text": content}] if isinstance(content, str) else content
        parts += [b.get("text") or json.dumps(b.get("content", "")) for b in blocks]
    return "\n".join(parts)


class Model(MessagesServer):
    """Answers each main-loop request with `decide(body)`; everything is still recorded."""

    def __init__(self, decide: Callable[[dict], Turn]) -> None:
        super().__init__([])
        self.decide = decide

    def respond(self, path: str, headers: dict[str, str], body: dict[str, Any]) -> dict[str, Any]:
        message = super().respond(path, headers, body)
        if request_kind(body) != "main":
            return message
        return make_message(normalize_turn(self.decide(body)), body.get("model", "claude-scripted"))

    def main_texts(self) -> list[str]:
        """What the model was told in each main-loop request, oldest first."""
        return [newest_input(r.body) for r in self.requests if r.kind == "main"]


@pytest.fixture
def tiny(repo: Path) -> Path:
    """The harness repo with the tiny bigram task: seconds per experiment."""
    write_program(repo, metric="val_acc", direction="maximize", evaluator="eval.scoring.accuracy:score",
                  budget=1, seeds=1)
    (repo / "train.py").write_text(TINY_BIGRAM)
    r = git.Repo(repo)
    r.git.add(A=True)
    r.git.commit("-q", "-m", "tiny task", "--author", "test <test@example.com>")
    return repo


def start_loop(repo: Path, server: MessagesServer, home: Path, *args: str) -> subprocess.Popen:
    env = cli_env(server.url, home)
    return subprocess.Popen(["./run.sh", "loop", *args], cwd=repo, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, start_new_session=True)


def finish(proc: subprocess.Popen, timeout: float = 300) -> str:
    try:
        out, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, _ = proc.communicate()
        raise AssertionError("the loop did not stop:\n" + out[-5000:]) from None
    return out


def test_an_early_end_of_turn_is_reprompted_and_the_experiments_cap_stops(tiny, tmp_path):
    ran = []

    def decide(body: dict) -> Turn:
        if LOOP_MARK in newest_input(body) and not ran:
            ran.append(True)
            return bash("./run.sh -m 'baseline'")
        return text("That is enough research for today.")

    with Model(decide) as model:
        proc = start_loop(tiny, model, tmp_path / "home", "--experiments", "1")
        out = finish(proc, 150)
        said = model.main_texts()
    assert proc.returncode == 0, out
    reprompt = next(s for s in said if LOOP_MARK in s)  # only the loop's prompt got the model to run anything
    assert "the research budget is not spent" in reprompt and "Best so far" in reprompt
    assert "loop stopped: the experiments cap (1)" in out and "1 re-prompts" in out, out
    assert [r["id"] for r in ledger.read(tiny)] == ["r0001"]  # whatever its verdict, the cap counts it
    row = ledger.read(tiny)[0]
    cost = float(re.search(r"cost \$([0-9.]+);", out).group(1))
    per_keep = (f"per kept change: ${cost:.4f} and {row['runs']:.1f} runs (1 kept" if row["status"] == "keep"
                else f"nothing kept: ${cost:.4f} and {row['runs']} runs")  # one worker: its session's cost
    assert cost > 0 and per_keep in out, out
    assert "(saved by the SessionEnd hook)" in out  # the hook fires in SDK sessions too


def steps(*turns: Turn) -> Callable[[dict], Turn]:
    """A model that says `turns` in order, whatever it is told, then only a closing text."""
    queue = list(turns)
    return lambda body: queue.pop(0) if queue else text("Done.")


def wait_for(check: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)


def test_sigint_mid_experiment_leaves_train_py_as_it_ran_and_a_consistent_ledger(tiny, tmp_path):
    write_program(tiny, metric="val_acc", direction="maximize", evaluator="eval.scoring.accuracy:score",
                  budget=60, seeds=1)
    train = tiny / "train.py"
    model = Model(steps(
        tool("Read", file_path=str(train)),
        tool("Edit", file_path=str(train), old_string=GOOD_LR, new_string=BAD_LR),
        bash("./run.sh -m 'no learning at all'"),
    ))
    with model:
        proc = start_loop(tiny, model, tmp_path / "home")
        wait_for(lambda: (tiny / "runs" / "r0001" / "train.log").exists() or proc.poll() is not None, 120, "training")
        time.sleep(2)
        os.kill(proc.pid, signal.SIGINT)
        out = finish(proc, 200)
    assert proc.returncode == 0, out
    assert "loop stopped: SIGINT" in out, out
    assert pending(tiny) == []  # every experiment's verdict is applied
    rows = ledger.read(tiny)
    assert [(r["id"], r["status"]) for r in rows] == [("r0001", "crash")], out
    r = git.Repo(tiny)
    assert BAD_LR in train.read_text()  # no version is kept yet: the files stay as they ran (nothing to restore)
    assert GOOD_LR in r.git.show("HEAD:train.py")  # the commit is untouched
    assert BAD_LR in r.git.show("refs/autoresearch/discarded/r0001:train.py")  # and the candidate is not lost
    assert (tiny / "results.tsv").read_text().count("\n") == 2


def cli_children(pid: int) -> list[int]:
    """The Claude Code processes the loop (pid) has started."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            cmdline = (stat.parent / "cmdline").read_bytes()
        except (OSError, IndexError):
            continue
        if int(fields[1]) == pid and b"_bundled/claude" in cmdline:
            found.append(int(stat.parent.name))
    return found


def test_a_crashed_cli_is_resumed_in_the_same_session(repo, tmp_path):
    killed: list[int] = []
    copied_before_resume: list[Path] = []

    def decide(body: dict) -> Turn:
        said = newest_input(body)
        if RESUME_MARK in said:
            copied_before_resume.extend((repo / "sessions").glob("*.jsonl"))  # no SessionEnd ran for the crash
            (repo / "STOP").write_text("")  # resumed: the test is over once this turn ends
            return text("Resumed; stopping as the STOP file asks.")
        if "tool_result" in json.dumps(body["messages"][-1]) and not killed:
            killed.extend(cli_children(proc.pid))
            for pid in killed:
                os.kill(pid, signal.SIGKILL)  # the answer to this request never arrives
            return text("unheard")
        return bash("./run.sh status")

    with Model(decide) as model:
        proc = start_loop(repo, model, tmp_path / "home")
        out = finish(proc, 120)
        mains = [r for r in model.requests if r.kind == "main"]
    assert proc.returncode == 0, out
    assert len(killed) == 1, out
    assert "loop stopped: the STOP file (remove it" in out and "1 resumes" in out, out
    sessions = {r.headers.get("X-Claude-Code-Session-Id") for r in mains}
    assert len(sessions) == 1, sessions  # the same session went on
    resumed = next(r for r in mains if RESUME_MARK in newest_input(r.body))
    assert "./run.sh status" in json.dumps(resumed.body["messages"])  # with the conversation before the crash
    (session_id,) = sessions
    transcript = (repo / "sessions" / f"{session_id}.jsonl").read_text()
    assert RESUME_MARK in transcript and "./run.sh status" in transcript
    assert [p.stem for p in copied_before_resume] == [session_id]


class FullContext(Model):
    """Reports the context window as full once, on the first answer to a tool result: Claude Code compacts."""

    def __init__(self, decide: Callable[[dict], Turn]) -> None:
        super().__init__(decide)
        self.filled = False

    def respond(self, path: str, headers: dict[str, str], body: dict[str, Any]) -> dict[str, Any]:
        message = super().respond(path, headers, body)
        if request_kind(body) == "main" and not self.filled and "tool_result" in json.dumps(body["messages"][-1]):
            self.filled = True
            message["usage"]["input_tokens"] = 990_000
        return message


def test_the_loop_goes_on_after_a_context_compaction(repo, tmp_path):
    def decide(body: dict) -> Turn:
        said = newest_input(body)
        if "TEXT ONLY" in said:  # Claude Code's request for the summary
            return text("Summary: the baseline has not been run yet.")
        if "SessionStart: compact" in said:  # the state of the research is back: the test is over
            (repo / "STOP").write_text("")
            return text("Stopping as the STOP file asks.")
        return bash("./run.sh status")

    with FullContext(decide) as model:
        proc = start_loop(repo, model, tmp_path / "home")
        out = finish(proc, 120)
        mains = [r for r in model.requests if r.kind == "main"]
    assert proc.returncode == 0, out
    assert "context compacted" in out and "1 compactions" in out, out
    assert "loop stopped: the STOP file (remove it" in out, out
    assert len({r.headers.get("X-Claude-Code-Session-Id") for r in mains}) == 1
    after = next(r for r in mains if "SessionStart: compact" in newest_input(r.body))
    assert len(after.body["messages"]) < len(mains[1].body["messages"]) + 2  # the history was replaced by a summary


@pytest.mark.parametrize(("cap", "words"), [
    (["--max-usd", "0.0001"], "the cost cap ($0.0001)"),
    (["--hours", "0.001"], "the hours cap (0.001 h)"),
])
def test_a_cap_stops_the_loop(repo, tmp_path, cap, words):
    with Model(lambda body: text("Nothing to do.")) as model:
        proc = start_loop(repo, model, tmp_path / "home", *cap)
        out = finish(proc, 120)
    assert proc.returncode == 0, out
    assert f"loop stopped: {words}" in out, out
    recorded = json.loads((repo / "runs" / "loop.json").read_text())  # what the morning report shows
    assert recorded["stop"] == words and recorded["caps"]["max_usd"] == (0.0001 if "--max-usd" in cap else None)
    assert recorded["cost_usd"] >= (0.0001 if "--max-usd" in cap else 0.0)


def test_a_spent_program_budget_ends_the_loop_instead_of_reprompting(repo, tmp_path):
    program = repo / "program.md"
    program.write_text(program.read_text().replace("verdict:", "budget: {experiments: 1}\nverdict:"))
    ledger.append(repo, {"id": "r0001", "status": "keep", "outcome": "ok", "metric": "val_bpb",
                         "direction": "minimize", "mean": 3.0, "hypothesis": "baseline", "commit": "0" * 40})
    with Model(lambda body: text("The budget is spent; stopping.")) as model:
        proc = start_loop(repo, model, tmp_path / "home")
        out = finish(proc, 120)
    assert proc.returncode == 0, out
    assert "loop stopped: program.md's budget is spent" in out and "0 re-prompts" in out, out
    assert "best val_bpb (minimize): 3.000000 (r0001) -> 3.000000 (r0001)" in out, out


def test_a_second_loop_on_the_same_repo_is_refused(repo, tmp_path):
    with Model(lambda body: bash("./run.sh status")) as model:
        first = start_loop(repo, model, tmp_path / "home")
        wait_for(lambda: any(r.kind == "main" for r in model.requests), 60, "the first loop's session")
        second = subprocess.run(["./run.sh", "loop"], cwd=repo, env=cli_env(model.url, tmp_path / "home2"),
                                capture_output=True, text=True, timeout=60)
        first.send_signal(signal.SIGINT)
        out = finish(first, 120)
    assert second.returncode == 2 and "another loop is running" in second.stderr, second.stderr
    assert f"pid {first.pid}" in second.stderr
    assert first.returncode == 0 and "loop stopped: SIGINT" in out, out


def test_the_loop_first_watches_the_guard_refuse_a_call_and_leaves_no_trace(repo, tmp_path):
    (repo / "STOP").write_text("")
    with Model(lambda body: text("Nothing to do.")) as model:
        proc = start_loop(repo, model, tmp_path / "home")
        out = finish(proc, 120)
    assert proc.returncode == 0, out
    assert "the guard is live: it refused the call in the session and in a subagent" in out, out
    audit = [json.loads(line) for line in (repo / "runs" / "audit.jsonl").read_text().splitlines()]
    checked = [(a["tool_use_id"], a["decision"]) for a in audit if "canary" in (a["tool_use_id"] or "")]
    assert ("toolu_canary_main", "deny") in checked and ("toolu_canary_sub", "deny") in checked
    assert not list((repo / "sessions").glob("*")) and not list((repo / "runs").glob("canary-*"))
