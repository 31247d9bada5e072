"""The scripted Messages API server, read by independent clients and by the real CLI.

Our own parser reading our own stream would prove little, so the stream is checked
with the official `anthropic` client where it is installed, with a plain SSE reading
here, and finally by Claude Code itself running a tool and reporting its result.
"""

from __future__ import annotations

import http.client
import json
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import anthropic
import pytest

from loop.messages_server import END_TEXT, FILLER_TEXT, MessagesServer, Turn
from tests.claude_cli import run_claude

LS_INPUT = {"command": "ls -la", "timeout": 5000}
TOOLS = [{"name": "Bash", "description": "run a command", "input_schema": {"type": "object"}}]
SCRIPT: list[Turn] = [
    [
        {"type": "text", "text": "Let me look."},
        {"type": "tool_use", "id": "toolu_ls", "name": "Bash", "input": LS_INPUT},
    ],
    [{"type": "text", "text": "All done."}],
]


def post(url: str, path: str, body: dict[str, Any]) -> tuple[int, str, bytes]:
    """POST JSON over a fresh connection; return status, content type and raw body."""
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=10)
    try:
        conn.request("POST", path, json.dumps(body), {"Content-Type": "application/json"})
        response = conn.getresponse()
        return response.status, response.getheader("Content-Type", ""), response.read()
    finally:
        conn.close()


def parse_sse(raw: bytes) -> list[tuple[str, dict[str, Any]]]:
    """Split a server-sent event stream into (event name, data) pairs."""
    events = []
    for frame in raw.decode().split("\n\n"):
        if not frame.strip():
            continue
        fields = dict(line.split(": ", 1) for line in frame.splitlines())
        events.append((fields["event"], json.loads(fields["data"])))
    return events


def accumulate(events: list[tuple[str, dict[str, Any]]]) -> dict[str, Any]:
    """Rebuild the message from its events the way SDK clients do (deltas onto blocks)."""
    message: dict[str, Any] = {}
    partial_json: dict[int, str] = {}
    for _, data in events:
        if data["type"] == "message_start":
            message = data["message"]
        elif data["type"] == "content_block_start":
            message["content"].append(dict(data["content_block"]))
        elif data["type"] == "content_block_delta":
            delta = data["delta"]
            if delta["type"] == "text_delta":
                message["content"][data["index"]]["text"] += delta["text"]
            else:
                partial_json[data["index"]] = partial_json.get(data["index"], "") + delta["partial_json"]
        elif data["type"] == "content_block_stop" and data["index"] in partial_json:
            message["content"][data["index"]]["input"] = json.loads(partial_json[data["index"]])
        elif data["type"] == "message_delta":
            message.update(data["delta"])
    return message


def main_request(stream: bool = True) -> dict[str, Any]:
    return {"model": "m", "max_tokens": 64, "stream": stream, "tools": TOOLS, "messages": []}


def test_stream_carries_the_scripted_turn() -> None:
    with MessagesServer(SCRIPT) as srv:
        status, content_type, raw = post(srv.url, "/v1/messages?beta=true", main_request())
    assert status == 200 and content_type == "text/event-stream"
    events = parse_sse(raw)
    assert all(name == data["type"] for name, data in events)
    assert [name for name, _ in events][0] == "message_start"
    assert [name for name, _ in events][-2:] == ["message_delta", "message_stop"]
    message = accumulate(events)
    assert message["stop_reason"] == "tool_use"
    assert message["content"] == [
        {"type": "text", "text": "Let me look."},
        {"type": "tool_use", "id": "toolu_ls", "name": "Bash", "input": LS_INPUT},
    ]


def test_official_client_reads_the_stream() -> None:
    with MessagesServer(SCRIPT) as srv:
        client = anthropic.Anthropic(base_url=srv.url, api_key="test-key", max_retries=0)
        with client.messages.stream(
            model="claude-scripted", max_tokens=64, messages=[{"role": "user", "content": "go"}], tools=TOOLS
        ) as stream:
            message = stream.get_final_message()
    assert message.stop_reason == "tool_use"
    assert message.content[0].text == "Let me look."
    tool_use = message.content[1]
    assert (tool_use.id, tool_use.name, tool_use.input) == ("toolu_ls", "Bash", LS_INPUT)


def test_plain_json_without_stream_and_end_of_script() -> None:
    with MessagesServer(SCRIPT) as srv:
        first = json.loads(post(srv.url, "/v1/messages", main_request(stream=False))[2])
        second = json.loads(post(srv.url, "/v1/messages", main_request(stream=False))[2])
        after = json.loads(post(srv.url, "/v1/messages", main_request(stream=False))[2])
    assert first["stop_reason"] == "tool_use" and first["content"][1]["input"] == LS_INPUT
    assert second == dict(second, stop_reason="end_turn", content=[{"type": "text", "text": "All done."}])
    assert after["stop_reason"] == "end_turn" and after["content"][0]["text"] == END_TEXT


def test_side_and_subagent_requests_do_not_consume_the_script() -> None:
    side = dict(main_request(), tools=[])
    subagent = dict(main_request(), system=[{"type": "text", "text": "billing: cc_is_subagent=true;"}])
    with MessagesServer(SCRIPT) as srv:
        side_message = accumulate(parse_sse(post(srv.url, "/v1/messages?beta=true", side)[2]))
        sub_message = accumulate(parse_sse(post(srv.url, "/v1/messages?beta=true", subagent)[2]))
        main_message = accumulate(parse_sse(post(srv.url, "/v1/messages?beta=true", main_request())[2]))
        kinds = [(r.kind, r.turn) for r in srv.requests]
    assert side_message["content"] == sub_message["content"] == [{"type": "text", "text": FILLER_TEXT}]
    assert main_message["content"][1]["id"] == "toolu_ls"
    assert kinds == [("side", None), ("subagent", None), ("main", 0)]


def test_probes_and_token_counts_answer_without_consuming() -> None:
    with MessagesServer(SCRIPT) as srv:
        parts = urlsplit(srv.url)
        conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=10)
        conn.request("HEAD", "/api/hello")
        assert conn.getresponse().status == 200
        conn.close()
        status, _, raw = post(srv.url, "/v1/messages/count_tokens", main_request())
        assert status == 200 and json.loads(raw)["input_tokens"] > 0
        assert srv.turns_served == 0
        assert [(r.method, r.path, r.kind) for r in srv.requests] == [
            ("HEAD", "/api/hello", "other"),
            ("POST", "/v1/messages/count_tokens", "other"),
        ]


def test_tool_results_are_recorded_once_in_order_and_callback_sees_each_turn() -> None:
    seen: list[int] = []

    def user(*blocks: dict[str, Any]) -> dict[str, Any]:
        return {"role": "user", "content": list(blocks)}

    ok = {"type": "tool_result", "tool_use_id": "toolu_a", "content": "file1\nfile2"}
    denied = {
        "type": "tool_result",
        "tool_use_id": "toolu_b",
        "is_error": True,
        "content": [{"type": "text", "text": "denied: "}, {"type": "text", "text": "not allowed"}],
    }
    sent = [dict(main_request(), messages=[user(ok)]), dict(main_request(), messages=[user(ok), user(denied)])]
    with MessagesServer(SCRIPT * 2, on_turn=lambda turn, body: seen.append(turn)) as srv:
        for body in sent:
            post(srv.url, "/v1/messages?beta=true", body)
        results = srv.tool_results()
    assert seen == [0, 1]
    assert [(r.path, r.body, r.headers["Content-Type"]) for r in srv.requests] == [
        ("/v1/messages?beta=true", body, "application/json") for body in sent
    ]
    assert [(r.tool_use_id, r.is_error, r.content) for r in results] == [
        ("toolu_a", False, "file1\nfile2"),
        ("toolu_b", True, "denied: \nnot allowed"),
    ]


def test_a_failing_callback_still_serves_the_turn_and_is_raised_at_exit() -> None:
    def steer(turn: int, body: dict[str, Any]) -> None:
        raise RuntimeError("could not steer")

    with pytest.raises(RuntimeError, match="could not steer"), MessagesServer(SCRIPT, on_turn=steer) as srv:
        message = json.loads(post(srv.url, "/v1/messages", main_request(stream=False))[2])
        assert message["content"][1]["id"] == "toolu_ls"


def test_real_cli_runs_a_scripted_tool_and_reports_its_result(tmp_path: Path) -> None:
    """The whole chain: server -> Claude Code -> Bash -> tool_result back to the server."""
    project = tmp_path / "project"
    (project / ".claude").mkdir(parents=True)
    settings = {"permissions": {"allow": ["Bash(echo *)"], "defaultMode": "dontAsk"}}
    (project / ".claude" / "settings.json").write_text(json.dumps(settings))
    script: list[Turn] = [
        [{"type": "tool_use", "id": "toolu_echo", "name": "Bash", "input": {"command": "echo hi-from-cli"}}],
        [{"type": "text", "text": "Done."}],
    ]
    with MessagesServer(script) as srv:
        run = run_claude(project, "say hi", srv.url, home=tmp_path / "home")
        results = srv.tool_results()
    assert run.returncode == 0, run.stderr
    assert [(r.tool_use_id, r.is_error, r.content) for r in results] == [("toolu_echo", False, "hi-from-cli")]
    assert run.decisions["toolu_echo"]["decision"] == "accept"
    assert run.permission_denials == []
    assert run.result["result"] == "Done."
    assert run.transcript_path is not None and "toolu_echo" in run.transcript_path.read_text()
