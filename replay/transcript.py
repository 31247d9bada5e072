"""Read a Claude Code session transcript (the JSONL the CLI writes) into what a replay needs.

The CLI writes one JSON object per line under $HOME/.claude/projects/<dir>/<session>.jsonl;
hooks/session_end.py copies it to sessions/. Lines that matter here (Claude Code 2.1.332, seen):
  - `type: assistant`: one content block of a model turn; the lines of one turn share
    `message.id`. `isSidechain` marks subagents; `model: "<synthetic>"` marks lines the CLI
    wrote itself (errors, interruptions), which no model served.
  - `type: user`: the prompt (string content), or `tool_result` blocks with, beside them,
    `permissionDecision: {decision: accept|reject, source, ...}` and `toolUseResult` (Bash:
    the full `stdout`). A failing command is `is_error` too, so the decision, not is_error,
    says whether the harness allowed the call.
  - `attachment` lines: hook output, e.g. PostToolUse `hook_additional_context` (the verdict,
    with the `toolUseID` of its call) and Stop `hook_blocking_error` (a refused end of session).
The same reader parses the recording and the transcript of its replay, so both are compared
through one lens. Verdicts and per-seed results are read only from the experiment runs (allowed
`./run.sh` experiment calls: their output and their PostToolUse context), and only from lines the
harness prints, which start a line; the output of train.py (or of `echo`, `cat scratchpad.md`)
never does: ./run.sh shows it quoted, each line behind eval/record/text.py's QUOTE.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from eval.record.text import QUOTE, unquoted
from hooks.post_tool_use import is_experiment

VERDICT = re.compile(r"^\[(r\d{4,})\] VERDICT: ([A-Z]+) \((\w+)\)", re.MULTILINE)
# One trial's summary as eval/trial.py summary() prints it.
SEED = re.compile(
    r"^experiment\s+(r\d{4,}(?:-[sbcgk]\d+)?)\s+outcome (\w+)\n\S+\s+(\S+)\s+\((?:minimize|maximize)\)\n"
    r"(?:reason\s+(.*)\n)?",
    re.MULTILINE,
)
LOG_TAIL = re.compile(rf"^log tail:\n((?:{re.escape(QUOTE)}.*\n)*)", re.MULTILINE)
SYNTHETIC = "<synthetic>"
POST_TOOL = ("PostToolUse", "PostToolUseFailure")
KEPT_BLOCKS = ("text", "tool_use")  # thinking blocks carry signatures only the real API can make


class TranscriptError(ValueError):
    """The file is not a Claude Code transcript a replay can use; the message says why."""


@dataclass
class ToolCall:
    """One tool call and what the harness made of it."""

    id: str
    name: str
    input: dict[str, Any]
    decision: str = "no result"  # allowed | denied | not run (refused before permissions) | no result
    output: str = ""
    contexts: list[str] = field(default_factory=list)  # what its PostToolUse(Failure) hook told the model


@dataclass
class Transcript:
    session_id: str
    cwd: str
    prompt: str
    turns: list[list[dict]] = field(default_factory=list)  # main-loop model turns, in order
    subagent_turns: list[list[dict]] = field(default_factory=list)
    calls: dict[str, ToolCall] = field(default_factory=dict)  # by tool_use_id, in call order
    contexts: list[str] = field(default_factory=list)  # hook additionalContext texts
    stop_blocks: int = 0  # times the Stop hook refused to let the session end
    later_prompts: int = 0  # human messages after the first: a headless replay cannot type them

    @property
    def runs(self) -> list[ToolCall]:
        """The experiment runs: Bash calls of an experiment form of ./run.sh that the harness allowed."""
        return [call for call in self.calls.values() if call.name == "Bash" and call.decision == "allowed"
                and is_experiment(call.input.get("command"))]

    @property
    def verdicts(self) -> dict[str, tuple[str, str]]:
        """Experiment id -> (status, outcome) from the runs' outputs and their PostToolUse context."""
        texts = [text for call in self.runs for text in (call.output, *call.contexts)]
        return {m[1]: (m[2].lower(), m[3]) for text in texts for m in VERDICT.finditer(text)}

    def seed_results(self) -> dict[str, dict]:
        """Per seed ('r0001', 'r0001-s2'): the outcome, value, reason and log tail the run printed."""
        found: dict[str, dict] = {}
        for call in self.runs:
            for m in SEED.finditer(call.output):
                value = None if m[3] == "-" else float(m[3])
                tail = LOG_TAIL.search(call.output, m.end())
                found[m[1]] = {"outcome": m[2].lower(), "value": value, "reason": m[4] or "",
                               "log_tail": unquoted(tail[1]) if tail and m[2] != "OK" else ""}
        return found


def prompt_text(content: object) -> str | None:
    """A human message: a string, or text blocks only (a list holding tool results is not one)."""
    if isinstance(content, str):
        return content
    if isinstance(content, list) and content and all(isinstance(b, dict) and b.get("type") == "text" for b in content):
        return "\n".join(b.get("text", "") for b in content)
    return None


def decision_of(line: dict) -> str:
    meta = line.get("permissionDecision")
    if isinstance(meta, dict) and meta.get("decision") in ("accept", "reject"):
        return "allowed" if meta["decision"] == "accept" else "denied"
    return "not run"


def output_of(line: dict, block: dict) -> str:
    """Bash's full stdout where the CLI kept it, else the tool_result text (which it may shorten)."""
    result = line.get("toolUseResult")
    if isinstance(result, dict) and isinstance(result.get("stdout"), str):
        return result["stdout"] + "\n" + str(result.get("stderr") or "")
    content = block.get("content")
    if isinstance(content, list):
        return "\n".join(b.get("text", "") for b in content if isinstance(b, dict))
    return str(content or "")


def read(path: Path) -> Transcript:
    """Parse a transcript file; raise TranscriptError when it holds no session to replay."""
    try:
        lines = [json.loads(raw) for raw in path.read_text(encoding="utf-8").splitlines() if raw.strip()]
    except (OSError, ValueError) as e:
        raise TranscriptError(f"{path}: not a readable JSONL transcript: {e}") from None
    start = next((i for i, line in enumerate(lines) if line.get("type") == "user" and not line.get("isMeta")
                  and prompt_text((line.get("message") or {}).get("content"))), None)
    if start is None or not lines[start].get("cwd"):
        raise TranscriptError(f"{path}: no prompt with a working directory: not a Claude Code session transcript")
    first = lines[start]
    t = Transcript(str(first.get("sessionId", path.stem)), str(first["cwd"]), prompt_text(first["message"]["content"]))
    turn_index: dict[tuple[bool, str], list[dict]] = {}
    for line in lines[:start]:  # SessionStart's context comes before the prompt
        if isinstance(line.get("attachment"), dict):
            add_attachment(t, line["attachment"])
    for line in lines[start + 1:]:
        if line.get("type") == "assistant":
            add_block(t, turn_index, line)
        elif line.get("type") == "user":
            add_user(t, line)
        elif isinstance(line.get("attachment"), dict):
            add_attachment(t, line["attachment"])
    t.turns = [turn for turn in t.turns if turn]  # a turn of thinking alone has nothing to serve
    t.subagent_turns = [turn for turn in t.subagent_turns if turn]
    if not t.turns:
        raise TranscriptError(f"{path}: the session has no model turns to replay")
    return t


def add_block(t: Transcript, turn_index: dict[tuple[bool, str], list[dict]], line: dict) -> None:
    message = line.get("message") or {}
    if message.get("model") == SYNTHETIC:
        return
    side = bool(line.get("isSidechain"))
    key = (side, str(message.get("id")))
    if key not in turn_index:
        turn_index[key] = []
        (t.subagent_turns if side else t.turns).append(turn_index[key])
    for block in message.get("content") or []:
        if block.get("type") not in KEPT_BLOCKS:
            continue
        turn_index[key].append(block)
        if block["type"] == "tool_use" and not side:
            t.calls[block["id"]] = ToolCall(block["id"], block["name"], dict(block.get("input") or {}))


def add_user(t: Transcript, line: dict) -> None:
    content = (line.get("message") or {}).get("content")
    if prompt_text(content) is not None:
        t.later_prompts += not line.get("isMeta") and not line.get("isSidechain")
        return
    for block in content or []:
        call = t.calls.get(block.get("tool_use_id")) if block.get("type") == "tool_result" else None
        if call is not None:
            call.decision, call.output = decision_of(line), output_of(line, block)


def add_attachment(t: Transcript, attachment: dict) -> None:
    if attachment.get("type") == "hook_additional_context":
        texts = [str(c) for c in attachment.get("content") or []]
        t.contexts += texts
        call = t.calls.get(attachment.get("toolUseID")) if attachment.get("hookEvent") in POST_TOOL else None
        if call is not None:
            call.contexts += texts
    elif attachment.get("type") == "hook_blocking_error" and attachment.get("hookEvent") == "Stop":
        t.stop_blocks += 1
