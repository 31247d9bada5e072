"""Stop, SessionStart and SessionEnd: each hook through hooks/launch, then the real CLI.

The unit tests run the hooks the way Claude Code does (a subprocess of hooks/launch, the
event JSON on stdin) in a scratch copy of the harness with a ledger written by hand. The
end-to-end tests run the real Claude Code CLI against a scripted model that tries to end
its turn at once: the Stop hook's reason must come back to the model in the next request,
a STOP file must end the session, and the SessionStart context must be in the first request.
"""

from __future__ import annotations

import json
import subprocess
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from eval.config import split_front_matter
from loop.messages_server import MessagesServer
from tests.claude_cli import CompletedRun, make_repo, run_claude

IDEAS = ["raise the learning rate to 3e-3", "cosine schedule with 200 warmup steps"]
SCRATCHPAD = """# Scratchpad

## Current best

r0003 val_bpb 1.432100

## Experiment log

r0001 | keep | 1.5 | baseline | -

## Hypotheses

- {0}
* {1}
-

## Failed patterns

- dropout 0.3: worse, the model is too small to overfit in 5 minutes
"""
# (id, status, mean, hypothesis): r0003 is the best, the latest keep.
ROWS = [
    ("r0001", "keep", 1.5, "baseline"),
    ("r0002", "discard", 1.55, "halve the batch size"),
    ("r0003", "keep", 1.4321, "double the model width"),
    ("r0004", "crash", None, "flash attention by hand"),
    ("r0005", "discard", 1.44, "weight decay 0.1"),
    ("r0006", "timeout", None, "twelve layers"),
    ("r0007", "discard", 1.47, "label smoothing 0.1"),
]
RESTART = "Continue the loop: pick the next hypothesis, edit train.py, run ./run.sh -m"
COMMIT = "abcdef0123456789abcdef0123456789abcdef01"


@dataclass(frozen=True)
class Answer:
    returncode: int
    stdout: str
    stderr: str

    @property
    def json(self) -> dict[str, Any]:
        return json.loads(self.stdout) if self.stdout.strip() else {}


def set_budget(repo: Path, **budget: Any) -> None:
    """Rewrite program.md's budget block, as a human steering the loop would."""
    path = repo / "program.md"
    raw, body = split_front_matter(path.read_text(), "program.md")
    data = yaml.safe_load(raw)
    data["budget"] = {**data.get("budget", {}), **budget}
    path.write_text(f"---\n{yaml.safe_dump(data, sort_keys=False)}---\n{body}")


def write_ledger(repo: Path, rows=ROWS, started: datetime | None = None) -> None:
    """runs/ledger.jsonl in the documented row shape, one row a minute from `started`."""
    started = started or datetime.now(UTC) - timedelta(minutes=30)
    lines = []
    for i, (run_id, status, mean, hypothesis) in enumerate(rows):
        row = {
            "id": run_id,
            "time": (started + timedelta(minutes=i)).isoformat(timespec="seconds"),
            "status": status,
            "outcome": {"keep": "ok", "discard": "ok"}.get(status, status),
            "metric": "val_bpb",
            "direction": "minimize",
            "mean": mean,
            "values": [mean],
            "hypothesis": hypothesis,
            "phase": "hyperparameters",
            "commit": COMMIT,
        }
        lines.append(json.dumps(row) + "\n")
    (repo / "runs").mkdir(exist_ok=True)
    (repo / "runs" / "ledger.jsonl").write_text("".join(lines))


@pytest.fixture
def harness(tmp_path: Path) -> Path:
    """A scratch harness with seven experiments, two open ideas and the default budget."""
    repo = make_repo(tmp_path)
    write_ledger(repo)
    (repo / "scratchpad.md").write_text(SCRATCHPAD.format(*IDEAS))
    return repo


def hook(repo: Path, event: str, payload: dict[str, Any] | None = None) -> Answer:
    """Run one hook as Claude Code does: hooks/launch EVENT with the event JSON on stdin."""
    proc = subprocess.run(
        [str(repo / "hooks" / "launch"), event],
        input=json.dumps({"session_id": "s1", "cwd": str(repo), **(payload or {})}),
        capture_output=True,
        text=True,
        timeout=30,
    )
    return Answer(proc.returncode, proc.stdout, proc.stderr)


def blocked(answer: Answer) -> str:
    """The block reason; fails unless the hook answered a proper block."""
    assert answer.returncode == 0, answer.stderr
    assert answer.json.get("decision") == "block", answer.stdout
    return answer.json["reason"]


def released(answer: Answer) -> bool:
    return answer.returncode == 0 and answer.json.get("decision") is None


# --- Stop -------------------------------------------------------------------------------------


@pytest.mark.parametrize("active", [False, True])
def test_stop_blocks_while_budget_remains_and_restarts_the_work(harness: Path, active: bool) -> None:
    reason = blocked(hook(harness, "stop", {"hook_event_name": "Stop", "stop_hook_active": active}))
    assert "val_bpb 1.432100 (r0003, commit abcdef0" in reason
    assert "7 of 100 experiments done, 93 left" in reason
    assert all(f"- {idea}" in reason for idea in IDEAS)
    assert "dropout" not in reason  # a failed pattern is not an idea
    assert reason.splitlines()[-1].startswith(RESTART)


def test_stop_file_releases(harness: Path) -> None:
    (harness / "STOP").write_text("")
    assert released(hook(harness, "stop"))


def test_spent_experiment_budget_releases(harness: Path) -> None:
    set_budget(harness, experiments=2)
    write_ledger(harness, ROWS[:2])
    assert released(hook(harness, "stop"))
    set_budget(harness, experiments=3)
    assert "1 left" in blocked(hook(harness, "stop"))


def set_phase_cap(repo: Path, cap: int) -> None:
    path = repo / "program.md"
    raw, body = split_front_matter(path.read_text(), "program.md")
    data = yaml.safe_load(raw)
    data["phases"][0]["max_experiments"] = cap  # hyperparameters, the current phase
    path.write_text(f"---\n{yaml.safe_dump(data, sort_keys=False)}---\n{body}")


def test_a_spent_phase_releases(harness: Path) -> None:
    set_phase_cap(harness, len(ROWS) + 1)
    assert blocked(hook(harness, "stop"))
    set_phase_cap(harness, len(ROWS))  # no run is allowed any more: waiting for the human must not hang
    assert released(hook(harness, "stop"))


def test_spent_hours_release(harness: Path) -> None:
    set_budget(harness, hours=1)
    write_ledger(harness, started=datetime.now(UTC) - timedelta(hours=2))
    assert released(hook(harness, "stop"))


def test_no_ledger_blocks_and_asks_for_the_baseline(harness: Path) -> None:
    (harness / "runs" / "ledger.jsonl").unlink()
    reason = blocked(hook(harness, "stop"))
    assert "0 of 100 experiments" in reason and "./run.sh -m 'baseline'" in reason


def test_broken_program_blocks_with_the_problem(harness: Path) -> None:
    set_budget(harness, experiments="many")
    reason = blocked(hook(harness, "stop"))
    assert "program.md is invalid" in reason and "budget.experiments" in reason
    assert IDEAS[0] in reason


def test_internal_error_blocks_unless_stop(harness: Path) -> None:
    ledger = harness / "runs" / "ledger.jsonl"
    ledger.unlink()
    ledger.mkdir()  # reading it fails
    reason = blocked(hook(harness, "stop"))
    assert "the Stop hook failed" in reason and "Continue the loop" in reason
    (harness / "STOP").write_text("")
    assert released(hook(harness, "stop"))


# --- SessionStart -----------------------------------------------------------------------------


def context(answer: Answer) -> str:
    assert answer.returncode == 0, answer.stderr
    output = answer.json["hookSpecificOutput"]
    assert output["hookEventName"] == "SessionStart"
    return output["additionalContext"]


def test_session_start_injects_phase_best_recent_rows_and_ideas(harness: Path) -> None:
    text = context(hook(harness, "session_start", {"hook_event_name": "SessionStart", "source": "compact"}))
    assert "SessionStart: compact" in text
    assert "Phase: hyperparameters. Tune the obvious knobs first" in text
    assert "Metric: val_bpb (minimize)" in text
    assert "Best: val_bpb 1.432100 (r0003, commit abcdef0" in text
    shown = [run_id for run_id, *_ in ROWS if f"  {run_id}  " in text]
    assert shown == ["r0003", "r0004", "r0005", "r0006", "r0007"]
    assert "r0007  discard    1.470000  label smoothing 0.1" in text
    assert all(f"- {idea}" in text for idea in IDEAS)
    assert "scratchpad.md" in text.splitlines()[-1]


def test_session_start_without_ledger_asks_for_the_baseline(harness: Path) -> None:
    (harness / "runs" / "ledger.jsonl").unlink()
    text = context(hook(harness, "session_start"))
    assert "No experiments yet: run the baseline first: ./run.sh -m 'baseline'" in text


def test_session_start_reports_an_invalid_program(harness: Path) -> None:
    (harness / "program.md").write_text("no front matter here\n")
    text = context(hook(harness, "session_start"))
    assert "program.md is INVALID" in text and "front matter" in text
    assert "r0007" in text  # the ledger is still shown


ALLOW_ALL = ('import json, sys\nsys.stdin.read()\nprint(json.dumps({"hookSpecificOutput": {"hookEventName": '
             '"PreToolUse", "permissionDecision": "allow"}}))\n')


def edit_settings(repo: Path, change: Any) -> None:
    path = repo / ".claude" / "settings.json"
    settings = json.loads(path.read_text())
    change(settings)
    path.write_text(json.dumps(settings))


# How a guard stops being live, and the words the SessionStart warning must use for it.
GUARD_BREAKS = {
    "unwired": (lambda repo: edit_settings(repo, lambda s: s["hooks"].pop("PreToolUse")), "does not run"),
    "fails_open": (lambda repo: edit_settings(repo, lambda s: s["hooks"]["PreToolUse"][0]["hooks"][0].pop(
        "onFailure")), '"onFailure": "block"'),
    "hooks_off": (lambda repo: (repo / ".claude" / "settings.local.json").write_text('{"disableAllHooks": true}'),
                  "disableAllHooks"),
    "allows_all": (lambda repo: (repo / "hooks" / "pre_tool_use.py").write_text(
        ALLOW_ALL + "def main():\n    return 0\n"), "allow"),
    "hangs": (lambda repo: (repo / "hooks" / "pre_tool_use.py").write_text(
        "import time\n\n\ndef main():\n    time.sleep(60)\n"), "did not answer"),
}


def test_session_start_finds_the_guard_live(harness: Path) -> None:
    answer = hook(harness, "session_start")
    assert "GUARD IS NOT LIVE" not in context(answer) and "systemMessage" not in answer.json
    audit = [json.loads(line) for line in (harness / "runs" / "audit.jsonl").read_text().splitlines()]
    assert [(a["tool_use_id"], a["decision"]) for a in audit] == [("canary", "deny")]  # the probe it ran


@pytest.mark.parametrize("how", sorted(GUARD_BREAKS))
def test_session_start_says_when_the_guard_is_not_live(harness: Path, how: str) -> None:
    breaks, words = GUARD_BREAKS[how]
    breaks(harness)
    answer = hook(harness, "session_start")
    text = context(answer)
    assert text.startswith("THE GUARD IS NOT LIVE") and words in text.split("\n")[0], text[:500]
    assert "autoresearch state (SessionStart" in text  # the research state still follows
    assert "NOT LIVE" in answer.json["systemMessage"]  # and the human is told


# --- SessionEnd -------------------------------------------------------------------------------


def test_session_end_copies_the_transcript(harness: Path, tmp_path: Path) -> None:
    transcript = tmp_path / "transcript.jsonl"
    transcript.write_text('{"type": "user"}\n{"type": "assistant"}\n')
    payload = {"session_id": "abc-123", "transcript_path": str(transcript), "reason": "other"}
    assert hook(harness, "session_end", payload).returncode == 0
    assert (harness / "sessions" / "abc-123.jsonl").read_bytes() == transcript.read_bytes()
    assert hook(harness, "session_end", {**payload, "session_id": "../escape"}).returncode == 0
    assert sorted(p.name for p in (harness / "sessions").iterdir()) == ["_escape.jsonl", "abc-123.jsonl"]


def test_session_end_ignores_a_missing_transcript(harness: Path, tmp_path: Path) -> None:
    answer = hook(harness, "session_end", {"transcript_path": str(tmp_path / "gone.jsonl")})
    assert answer.returncode == 0 and not (harness / "sessions").exists()


# --- the real CLI -----------------------------------------------------------------------------

END_TURN = [{"type": "text", "text": "I think that is enough for today."}]


def texts(body: dict[str, Any]) -> str:
    """Every text the CLI sent in one request's messages (strings and text blocks)."""
    found = []
    for message in body.get("messages", []):
        content = message.get("content")
        blocks = [{"text": content}] if isinstance(content, str) else content or []
        found += [block.get("text", "") for block in blocks if isinstance(block, dict)]
    return "\n".join(found)


@dataclass(frozen=True)
class Session:
    repo: Path
    run: CompletedRun
    main_requests: list[str]  # texts() of each main-loop request, in order


def session(tmp_path: Path, stop_at_turn: int | None) -> Session:
    """A scripted model that ends its turn at every request; the test writes STOP at `stop_at_turn`."""
    repo = make_repo(tmp_path)
    write_ledger(repo)
    (repo / "scratchpad.md").write_text(SCRATCHPAD.format(*IDEAS))
    if stop_at_turn == 0:
        (repo / "STOP").write_text("")

    def on_turn(turn: int, body: dict[str, Any]) -> None:
        if turn == stop_at_turn:
            (repo / "STOP").write_text("")

    with MessagesServer([END_TURN, END_TURN, END_TURN], on_turn=on_turn) as srv:
        run = run_claude(repo, "Run the research loop.", srv.url, home=tmp_path / "home", timeout=90)
    assert run.returncode == 0, run.stderr
    return Session(repo, run, [texts(r.body) for r in srv.requests if r.kind == "main"])


@pytest.fixture(scope="module")
def blocked_once(tmp_path_factory: pytest.TempPathFactory) -> Session:
    """The model ends its turn; Stop blocks; the human writes STOP; the model ends its turn again."""
    return session(tmp_path_factory.mktemp("blocked_once"), stop_at_turn=1)


def test_cli_feeds_the_stop_reason_back_and_a_stop_file_ends_it(blocked_once: Session) -> None:
    first, *rest = blocked_once.main_requests
    assert len(rest) == 1, "one block, then STOP lets the session end"
    assert "Stop hook feedback:" not in first
    # The CLI sends the reason twice: a user <system-reminder> and a role "system" message.
    assert "Stop hook feedback:\nDo not stop: the research budget is not spent" in rest[0]
    assert "val_bpb 1.432100 (r0003" in rest[0] and IDEAS[0] in rest[0]


@pytest.fixture(scope="module")
def stopped(tmp_path_factory: pytest.TempPathFactory) -> Session:
    """The human wrote STOP before the session started."""
    return session(tmp_path_factory.mktemp("stopped"), stop_at_turn=0)


def test_cli_ends_after_the_first_end_turn_with_a_stop_file(stopped: Session) -> None:
    assert len(stopped.main_requests) == 1


def test_cli_session_start_context_reaches_the_first_request(blocked_once: Session) -> None:
    """The startup matcher proves the injection path; `compact` runs the same hook with another source."""
    first = blocked_once.main_requests[0]
    assert "SessionStart hook additional context: autoresearch state (SessionStart: startup)" in first
    assert "Best: val_bpb 1.432100 (r0003, commit abcdef0" in first and IDEAS[1] in first
    assert "GUARD IS NOT LIVE" not in first


def test_cli_session_start_warns_when_the_guard_allows_everything(tmp_path: Path) -> None:
    repo = make_repo(tmp_path)
    (repo / "STOP").write_text("")
    GUARD_BREAKS["allows_all"][0](repo)
    with MessagesServer([END_TURN]) as srv:
        run = run_claude(repo, "Run the research loop.", srv.url, home=tmp_path / "home", timeout=90)
        first = next(texts(r.body) for r in srv.requests if r.kind == "main")
    assert run.returncode == 0, run.stderr
    assert "THE GUARD IS NOT LIVE" in first and "end your turn and tell the human" in first


def test_cli_session_end_keeps_the_transcript(blocked_once: Session) -> None:
    run = blocked_once.run
    assert run.transcript_path is not None
    copy = blocked_once.repo / "sessions" / f"{run.session_id}.jsonl"
    assert copy.read_bytes() == run.transcript_path.read_bytes()


def test_cli_compaction_reinjects_the_state(stopped: Session) -> None:
    """`/compact` on the resumed session fires SessionStart with source compact; the next request holds it."""
    repo, home, resume = stopped.repo, stopped.run.home, ["--resume", str(stopped.run.session_id)]
    with MessagesServer([[{"type": "text", "text": "Summary: seven experiments, r0003 is the best."}]]) as srv:
        compact = run_claude(repo, "/compact", srv.url, home=home, extra_args=resume, timeout=90)
    assert compact.returncode == 0, compact.stderr
    assert any(e.get("hook_name") == "SessionStart:compact" for e in compact.events)
    with MessagesServer([END_TURN]) as srv:
        resumed = run_claude(repo, "Go on.", srv.url, home=home, extra_args=resume, timeout=90)
        first = next(texts(r.body) for r in srv.requests if r.kind == "main")
    assert resumed.returncode == 0, resumed.stderr
    assert "(SessionStart: compact)" in first
    injected = first.split("(SessionStart: compact)", 1)[1].split("The loop:", 1)[0]
    assert "Best: val_bpb 1.432100 (r0003, commit abcdef0" in injected and IDEAS[0] in injected
