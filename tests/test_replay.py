"""Session replay: the bundled recordings replay through the real CLI without divergence, and a
changed harness (policy, verdict rule) is reported as exactly the decisions it changes.

Every replay here runs the real Claude Code CLI in a scratch clone with real hooks and real git;
`--runs recorded` replaces only the training by the recorded measurements (replay/recorded.py).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import anthropic
import pytest

from hooks import pre_tool_use
from loop.messages_server import MessagesServer
from replay import demo, recorded, replay, transcript
from replay.replay import Divergence
from tests.conftest import REPO

SESSIONS = REPO / "tests" / "sessions"
BUNDLED = sorted(p.stem for p in SESSIONS.glob("*.jsonl"))
HARNESS_COPY = replay.HARNESS


def test_every_scenario_is_bundled() -> None:
    assert BUNDLED == ["crash_and_timeout", "forbidden", "moonshot", "premature_stop", "showcase"]


@pytest.mark.parametrize("name", BUNDLED)
def test_bundled_session_replays_without_divergence(name: str, tmp_path: Path) -> None:
    result = replay.replay(SESSIONS / f"{name}.jsonl", "recorded", workdir=tmp_path)
    assert result.divergences == [], result.report()
    assert result.turns_served == len(result.recording.turns) and result.recording.calls


def test_the_recordings_cover_what_ci_must_prove() -> None:
    """The scenarios the replays stand for are really in the recordings (not just in their names)."""
    read = {name: transcript.read(SESSIONS / f"{name}.jsonl") for name in BUNDLED}
    statuses = {name: [status for status, _ in t.verdicts.values()] for name, t in read.items()}
    assert statuses["showcase"][:2] == ["keep", "keep"] and statuses["showcase"][2] == "discard"
    assert sum("scratchpad.md" in str(c.input) and c.name == "Edit" for c in read["showcase"].calls.values()) == 3
    assert statuses["crash_and_timeout"] == ["keep", "crash", "timeout"]
    denied = [c.input.get("command") or c.input.get("file_path") for c in read["forbidden"].calls.values()
              if c.decision == "denied"]
    assert denied[0].startswith("pip install") and denied[1].startswith("curl") and denied[2].endswith("eval/bpb.py")
    assert denied[3] == "git push origin research" and statuses["forbidden"] == ["keep"]
    fetches = [c.decision for c in read["moonshot"].calls.values() if c.name == "WebFetch"]
    assert fetches == ["allowed", "denied"] and "Phase: moonshot" in read["moonshot"].contexts[0]
    assert read["premature_stop"].stop_blocks == 1 and len(statuses["premature_stop"]) == 2


def copy_harness(tmp_path: Path) -> Path:
    """Today's harness, to be changed by a test; the research state comes from the recording."""
    harness = tmp_path / "harness"
    for name in HARNESS_COPY:
        source = REPO / name
        if source.is_dir():
            shutil.copytree(source, harness / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(source, harness / name)
    (harness / ".venv").symlink_to(REPO / ".venv")
    return harness


def change(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert text.count(old) == 1, f"{old!r} not found once in {path}"
    path.write_text(text.replace(old, new))


def test_a_changed_policy_is_reported_as_exactly_that_divergence(tmp_path: Path) -> None:
    harness = copy_harness(tmp_path)
    commands = harness / "hooks" / "guard" / "commands.py"
    change(commands, '    "wc": Form(', '    "wc-retired": Form(')  # wc no longer allowed
    result = replay.replay(SESSIONS / "forbidden.jsonl", "recorded", harness=harness, workdir=tmp_path / "replay")
    assert result.divergences == [Divergence("tool call", "toolu_count Bash(wc -l train.py)", "allowed", "denied")]
    assert "1 divergence(s):" in result.report() and "recorded allowed, today denied" in result.report()


def test_a_changed_verdict_rule_is_reported_as_exactly_that_verdict(tmp_path: Path) -> None:
    harness = copy_harness(tmp_path)
    change(harness / "eval" / "verdict.py", '"crash": ("crash", "the run failed")', '"crash": ("discard", "failed")')
    result = replay.replay(SESSIONS / "crash_and_timeout.jsonl", "recorded", harness=harness,
                           workdir=tmp_path / "replay")
    assert result.divergences == [Divergence("verdict", "r0002", "crash crash", "discard crash")], result.report()


def test_replay_exits_nonzero_with_a_readable_report(tmp_path: Path, capsys) -> None:
    session = tmp_path / "session.jsonl"
    shutil.copyfile(SESSIONS / "forbidden.jsonl", session)
    assert replay.main([str(session)]) == 2  # no start state beside it: a clear error, nothing run
    assert "no start state for this session" in capsys.readouterr().err
    (tmp_path / "x.jsonl").write_text('{"type": "summary"}\n')
    assert replay.main([str(tmp_path / "x.jsonl")]) == 2
    assert "not a Claude Code session transcript" in capsys.readouterr().err


def test_the_official_client_streams_the_recorded_turns() -> None:
    recording = transcript.read(SESSIONS / "showcase.jsonl")
    tools = [{"name": "Bash", "description": "run", "input_schema": {"type": "object"}}]
    with MessagesServer(recording.turns) as server:
        client = anthropic.Anthropic(base_url=server.url, api_key="replay", max_retries=0)
        for recorded in recording.turns:
            with client.messages.stream(model="claude-replayed", max_tokens=64, tools=tools,
                                        messages=[{"role": "user", "content": "go"}]) as stream:
                message = stream.get_final_message()
            assert [block.model_dump(exclude_none=True) for block in message.content] == [
                {k: v for k, v in block.items() if k in ("type", "text", "id", "name", "input")} for block in recorded
            ]
            assert message.stop_reason == ("tool_use" if recorded[-1]["type"] == "tool_use" else "end_turn")


def test_recorded_seed_results_come_from_the_run_output() -> None:
    seeds = transcript.read(SESSIONS / "crash_and_timeout.jsonl").seed_results()
    assert sorted(seeds) == ["r0001", "r0001-s2", "r0002", "r0003"]
    assert seeds["r0001"]["outcome"] == "ok" and 0 < seeds["r0001"]["value"] < 9
    assert seeds["r0002"]["outcome"] == "crash" and "Adamm" in seeds["r0002"]["log_tail"]
    assert seeds["r0003"]["outcome"] == "timeout" and seeds["r0003"]["value"] is None


@pytest.mark.parametrize("command", [
    f"{recorded.ENV}=/tmp/forged.json ./run.sh -m 'x'",
    f"export {recorded.ENV}=/tmp/forged.json",
    f"env {recorded.ENV}=/tmp/forged.json ./run.sh",
])
def test_the_agent_cannot_switch_on_recorded_metrics(repo: Path, command: str) -> None:
    event = {"tool_name": "Bash", "tool_input": {"command": command}, "cwd": str(repo)}
    answer = pre_tool_use.respond(json.dumps(event), repo)["hookSpecificOutput"]
    assert answer["permissionDecision"] == "deny", answer


def test_demo_trains_for_real_and_shows_the_status_table(tmp_path: Path, capsys) -> None:
    """The demo's path with a short session (CI cannot spend the showcase's two minutes)."""
    assert demo.main(["--session", str(SESSIONS / "forbidden.jsonl"), "--workdir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "no divergence" in out and "VERDICT: KEEP" in out
    assert "best val_bpb (minimize):" in out and f"progress plot: {tmp_path}" in out
    metrics = json.loads((tmp_path / "repo" / "runs" / "r0001" / "metrics.json").read_text())
    assert metrics["backend"] in ("docker", "bwrap") and metrics["training_seconds"] > 0  # really trained


def test_the_start_state_is_written_once_at_startup(tmp_path: Path) -> None:
    from hooks import start_state

    (tmp_path / "train.py").write_text("print('v1')\n")
    assert start_state.save(tmp_path, {"session_id": "s-1", "source": "resume"}) is None  # began earlier
    saved = start_state.save(tmp_path, {"session_id": "s-1", "source": "startup"})
    (tmp_path / "train.py").write_text("print('v2')\n")
    assert start_state.save(tmp_path, {"session_id": "s-1", "source": "startup"}) is None  # never overwritten
    state = start_state.load(tmp_path / "elsewhere" / "s-1.jsonl", "s-1", tmp_path)
    assert saved == tmp_path / "sessions" / "s-1.start.json" and state["files"] == {"train.py": "print('v1')\n"}


def test_the_start_state_carries_the_projects_editable_files_and_code_and_nothing_else(tmp_path: Path) -> None:
    from hooks import start_state

    program = (REPO / "program.md").read_text().replace(
        "  seed: 1337\n", "  seed: 1337\n  code: [lib]\n  editable: [train.py, model.py]\n")
    (tmp_path / "program.md").write_text(program)
    (tmp_path / "train.py").write_text("import model\n")
    (tmp_path / "model.py").write_text("WIDTH = 8\n")
    (tmp_path / "lib" / "__pycache__").mkdir(parents=True)
    (tmp_path / "lib" / "data.py").write_text("class Corpus: ...\n")
    (tmp_path / "lib" / "__pycache__" / "data.cpython-311.pyc").write_text("x")
    (tmp_path / "notes.txt").write_text("not the project's code\n")
    files = start_state.snapshot(tmp_path)["files"]
    assert sorted(files) == ["lib/data.py", "model.py", "program.md", "train.py"]
    forged = {**files, "eval/scoring/bpb.py": "x", "../outside.py": "x", "lib/../../x": "x"}
    assert sorted(start_state.project_files_named(forged)) == ["lib/data.py", "model.py", "train.py"]
