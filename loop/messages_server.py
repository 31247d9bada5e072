"""A loopback server speaking the Anthropic Messages API as Claude Code uses it.

Tests and replays drive the real Claude Code CLI without a model: the CLI is pointed
here with ANTHROPIC_BASE_URL, and each main-loop request is answered with the next
assistant turn of a plain list (a test script, or the turns of a recorded transcript).
The CLI then executes the tools for real, applies its permission rules and our hooks,
and sends the outcome back in the next request as `tool_result` blocks; every request
is recorded so that the caller can read those decisions.

What Claude Code 2.1.332 sends (seen): `HEAD /api/hello` once at start, then
`POST /v1/messages?beta=true` with `"stream": true`, the `tools` list and the whole
conversation so far. Subagents (the Agent tool, which starts them in the background)
send the same kind of request from the same session, marked `cc_is_subagent=true` in
the first system block, racing the main loop. Only main-loop requests consume the
script; subagent and side requests (no `tools` list: titles, quota probes) get a short
text turn, so the script stays one turn per step of the main loop whatever else runs.

Standalone: `python -m loop.messages_server SCRIPT.json [--port N]`, where the file
holds a JSON list of turns, each a list of content blocks:
`{"type": "text", "text": ...}` or `{"type": "tool_use", "name": ..., "input": {...}}`.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import threading
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

Block = dict[str, Any]
Turn = list[Block]
RequestKind = Literal["main", "subagent", "side", "other"]
# Called with (turn index, request body) just before a main-loop turn is served, so that a
# test can change the world (e.g. steer program.md) between two tool calls of one session.
TurnCallback = Callable[[int, dict[str, Any]], None]

FILLER_TEXT = "ok"
END_TEXT = "Script finished."
SUBAGENT_MARK = "cc_is_subagent=true"


@dataclass(frozen=True)
class RecordedRequest:
    """One request as received; `turn` is the script index it consumed (main loop only)."""

    method: str
    path: str
    headers: dict[str, str]
    body: dict[str, Any]
    kind: RequestKind
    turn: int | None


@dataclass(frozen=True)
class ToolResult:
    """What the CLI reported back for one tool call: the decision a replay compares."""

    tool_use_id: str
    is_error: bool
    content: str


def request_kind(body: dict[str, Any]) -> RequestKind:
    """Classify a /v1/messages body: only "main" requests consume the script."""
    if not body.get("tools"):
        return "side"
    system = body.get("system")
    blocks = system if isinstance(system, list) else [{"text": system or ""}]
    if any(SUBAGENT_MARK in block.get("text", "") for block in blocks if isinstance(block, dict)):
        return "subagent"
    return "main"


def normalize_turn(turn: Turn) -> Turn:
    """Complete a scripted turn into API content blocks (a `toolu_` id for each tool_use)."""
    blocks: Turn = []
    for block in turn:
        if block["type"] == "text":
            blocks.append({"type": "text", "text": block["text"]})
        elif block["type"] == "tool_use":
            blocks.append(
                {
                    "type": "tool_use",
                    "id": block.get("id") or f"toolu_{uuid.uuid4().hex[:24]}",
                    "name": block["name"],
                    "input": block.get("input", {}),
                }
            )
        else:
            raise ValueError(f"unsupported block type in script: {block['type']!r}")
    return blocks


def make_message(content: Turn, model: str) -> dict[str, Any]:
    """The non-streaming response for a turn; the streamed one is derived from it."""
    size = sum(len(json.dumps(block)) for block in content)
    return {
        "id": f"msg_{uuid.uuid4().hex[:24]}",
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": content,
        "stop_reason": "tool_use" if any(b["type"] == "tool_use" for b in content) else "end_turn",
        "stop_sequence": None,
        "usage": {"input_tokens": 1, "output_tokens": max(1, size // 4)},
    }


def sse_events(message: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """The server-sent events that stream `message`, in the order the real API sends them."""
    start = dict(message, content=[], stop_reason=None, usage=dict(message["usage"], output_tokens=0))
    events: list[tuple[str, dict[str, Any]]] = [
        ("message_start", {"type": "message_start", "message": start}),
    ]
    for index, block in enumerate(message["content"]):
        if block["type"] == "text":
            opening = {"type": "text", "text": ""}
            delta = {"type": "text_delta", "text": block["text"]}
        else:
            opening = {"type": "tool_use", "id": block["id"], "name": block["name"], "input": {}}
            delta = {"type": "input_json_delta", "partial_json": json.dumps(block["input"])}
        events += [
            (
                "content_block_start",
                {"type": "content_block_start", "index": index, "content_block": opening},
            ),
            ("content_block_delta", {"type": "content_block_delta", "index": index, "delta": delta}),
            ("content_block_stop", {"type": "content_block_stop", "index": index}),
        ]
    stop = {"stop_reason": message["stop_reason"], "stop_sequence": None}
    events += [
        ("message_delta", {"type": "message_delta", "delta": stop, "usage": dict(message["usage"])}),
        ("message_stop", {"type": "message_stop"}),
    ]
    return events


def encode_sse(events: list[tuple[str, dict[str, Any]]]) -> bytes:
    return "".join(f"event: {name}\ndata: {json.dumps(data)}\n\n" for name, data in events).encode()


def result_text(content: Any) -> str:
    """A tool_result's content as text: the API allows a string or a list of blocks."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(block.get("text", "") for block in content if isinstance(block, dict))
    return ""


class MessagesServer:
    """Serves `turns` to Claude Code, one per main-loop request, and records every request.

    Use as a context manager: `with MessagesServer(turns) as srv: ... srv.url ...`.
    `turns` is a plain list so that any source (a test script, a recorded session) fits;
    past its end the server answers `end_turn` with a short text, which ends the CLI's run.
    """

    def __init__(
        self,
        turns: Sequence[Turn],
        *,
        subagent_turns: Sequence[Turn] = (),
        on_turn: TurnCallback | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        self.turns = [normalize_turn(turn) for turn in turns]
        self.subagent_turns = [normalize_turn(turn) for turn in subagent_turns]  # served to subagents, in order
        self._next_subagent_turn = 0
        self.on_turn = on_turn
        self.requests: list[RecordedRequest] = []
        self.callback_errors: list[BaseException] = []
        self._next_turn = 0
        self._lock = threading.Lock()
        self._httpd = ThreadingHTTPServer((host, port), _handler_for(self))
        self._httpd.daemon_threads = True
        # A short poll interval makes shutdown() prompt (the default waits up to half a second).
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, name="messages-server", daemon=True
        )

    @property
    def url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}"

    @property
    def turns_served(self) -> int:
        """How many script turns the main loop has consumed so far."""
        with self._lock:
            return self._next_turn

    def __enter__(self) -> MessagesServer:
        self._thread.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, *exc: object) -> None:
        """Stop serving; re-raise a failed `on_turn` here, where the caller will see it."""
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join()
        if exc_type is None and self.callback_errors:
            raise self.callback_errors[0]

    def record(self, method: str, path: str, headers: dict[str, str], body: dict[str, Any]) -> None:
        """Record a request that is not a message turn (probes, token counts)."""
        with self._lock:
            self.requests.append(RecordedRequest(method, path, headers, body, "other", None))

    def respond(self, path: str, headers: dict[str, str], body: dict[str, Any]) -> dict[str, Any]:
        """Record one /v1/messages request and answer it: the script's next turn, or filler."""
        kind = request_kind(body)
        with self._lock:
            turn = self._next_turn if kind == "main" else None
            if turn is not None:
                self._next_turn += 1
            subagent_turn = None
            if kind == "subagent" and self._next_subagent_turn < len(self.subagent_turns):
                subagent_turn = self.subagent_turns[self._next_subagent_turn]
                self._next_subagent_turn += 1
            self.requests.append(RecordedRequest("POST", path, headers, body, kind, turn))
        if subagent_turn is not None:
            content = subagent_turn
        elif turn is None:
            content = [{"type": "text", "text": FILLER_TEXT}]
        elif turn < len(self.turns):
            if self.on_turn is not None:
                try:
                    self.on_turn(turn, body)
                except Exception as exc:  # the CLI must still get its turn; __exit__ raises it
                    self.callback_errors.append(exc)
            content = self.turns[turn]
        else:
            content = [{"type": "text", "text": END_TEXT}]
        return make_message(content, body.get("model", "claude-scripted"))

    def tool_results(self, kind: RequestKind = "main") -> list[ToolResult]:
        """Every tool_result the main loop (or the subagents) sent back, once each, in order.

        Each request repeats the whole conversation, so results are deduplicated by id.
        """
        seen: dict[str, ToolResult] = {}
        with self._lock:
            bodies = [request.body for request in self.requests if request.kind == kind]
        for body in bodies:
            for message in body.get("messages", []):
                if message.get("role") != "user" or not isinstance(message.get("content"), list):
                    continue
                for block in message["content"]:
                    use_id = block.get("tool_use_id") if block.get("type") == "tool_result" else None
                    if use_id and use_id not in seen:
                        is_error = bool(block.get("is_error"))
                        seen[use_id] = ToolResult(use_id, is_error, result_text(block.get("content")))
        return list(seen.values())


def _handler_for(server: MessagesServer) -> type[BaseHTTPRequestHandler]:
    """A request handler class bound to `server` (http.server instantiates it per request)."""

    class Handler(BaseHTTPRequestHandler):
        # HTTP/1.1 keeps the CLI's connections alive; every response sets Content-Length,
        # so the whole event stream of a turn goes out as one body.
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:
            """Silence the per-request stderr lines: callers read `server.requests` instead."""

        def _headers(self) -> dict[str, str]:
            return dict(self.headers.items())

        def _send(self, status: int, payload: bytes, content_type: str) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(payload)

        def _send_json(self, status: int, data: dict[str, Any]) -> None:
            self._send(status, json.dumps(data).encode(), "application/json")

        def do_HEAD(self) -> None:
            server.record("HEAD", self.path, self._headers(), {})
            self._send(200, b"", "text/plain")

        def do_GET(self) -> None:
            server.record("GET", self.path, self._headers(), {})
            self._send_json(200, {})

        def do_POST(self) -> None:
            path = urlsplit(self.path).path
            raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            try:
                body = json.loads(raw or b"{}")
            except ValueError as exc:
                error = {"type": "invalid_request_error", "message": f"body is not JSON: {exc}"}
                self._send_json(400, {"type": "error", "error": error})
                return
            if path != "/v1/messages":
                server.record("POST", self.path, self._headers(), body)
            if path == "/v1/messages/count_tokens":
                self._send_json(200, {"input_tokens": max(1, len(raw) // 4)})
            elif path == "/v1/messages":
                message = server.respond(self.path, self._headers(), body)
                if body.get("stream"):
                    self._send(200, encode_sse(sse_events(message)), "text/event-stream")
                else:
                    self._send_json(200, message)
            else:
                self._send_json(404, {"type": "error", "error": {"type": "not_found_error", "message": path}})

    return Handler


def main(argv: Sequence[str] | None = None) -> None:
    """Serve a JSON script file until interrupted (for trying the CLI by hand)."""
    parser = argparse.ArgumentParser(description="Serve scripted assistant turns to Claude Code.")
    parser.add_argument("script", type=Path, help="JSON list of turns, each a list of content blocks")
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args(argv)
    with MessagesServer(json.loads(args.script.read_text()), port=args.port) as server:
        print(f"ANTHROPIC_BASE_URL={server.url}", flush=True)
        with contextlib.suppress(KeyboardInterrupt):
            threading.Event().wait()


if __name__ == "__main__":
    main()
