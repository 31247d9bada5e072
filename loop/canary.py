"""Before `./run.sh loop` starts the research: watch the CLI refuse a forbidden call, exactly as it will run.

A CLI is started with the loop's own options (binary, settings file and sources, permission
mode, system prompt, environment), but talking to a loopback MessagesServer instead of the API
and with a scratch config dir. Its scripted model asks for `git log -1 --output=runs/canary-...`
(the settings' allow rule `Bash(git log *)` matches it, so only the guard refuses it), first
itself, then through a subagent. The guard is live when both tool results carry the guard's own
reason for that call (so neither ran). This catches `--bare`, `disableAllHooks` in
any settings source, a PreToolUse hook that is unwired, broken or fails open, and subagent calls
that skip the hook. It does not prove that every later call of the session reaches the hook
(settings are hot-reloaded; the loop checks once, at its start).
"""

from __future__ import annotations

import asyncio
import dataclasses
import tempfile
import uuid
from pathlib import Path

from claude_agent_sdk import (
    ClaudeAgentOptions,
    ClaudeSDKClient,
    ResultMessage,
    SystemMessage,
    ToolResultBlock,
    UserMessage,
)

from hooks import canary as guard_check
from hooks import session_end
from loop.messages_server import MessagesServer

TIMEOUT_S = 120
PROMPT = "Guard check of ./run.sh loop: make the scripted calls."
MAIN, SUB, AGENT = "toolu_canary_main", "toolu_canary_sub", "toolu_canary_agent"


def forbidden(nonce: str, who: str) -> str:
    return f"git log -1 --output=runs/canary-{nonce}-{who}.txt"


def script(nonce: str) -> tuple[list, list]:
    """(main turns, subagent turns): the forbidden call, then the same through a foreground subagent."""
    def bash(use_id: str, command: str) -> list[dict]:
        return [{"type": "tool_use", "id": use_id, "name": "Bash", "input": {"command": command}}]

    agent = {"description": "guard check", "prompt": "Make the scripted call.", "subagent_type": "general-purpose",
             "run_in_background": False}
    main = [bash(MAIN, forbidden(nonce, "main")), [{"type": "tool_use", "id": AGENT, "name": "Agent", "input": agent}]]
    return main, [bash(SUB, forbidden(nonce, "sub")), [{"type": "text", "text": "Done."}]]


async def run_cli(options: ClaudeAgentOptions) -> str | None:
    """Drive the CLI until the subagent's call has come back; return the session id."""
    session_id = None
    async with ClaudeSDKClient(options) as client:
        await client.query(PROMPT)
        async for message in client.receive_response():
            if isinstance(message, SystemMessage):
                session_id = message.data.get("session_id") or session_id
            elif isinstance(message, ResultMessage):
                session_id = message.session_id or session_id
            elif isinstance(message, UserMessage) and isinstance(message.content, list) and any(
                    isinstance(b, ToolResultBlock) and b.tool_use_id == AGENT for b in message.content):
                break  # no need to wait for the Stop hook's re-prompts
    return session_id


async def check(repo: Path, options: ClaudeAgentOptions) -> str | None:
    """None when the guard refused both calls in the CLI itself; else what went wrong, in words."""
    nonce = uuid.uuid4().hex[:12]
    try:
        expected = {who: guard_check.refusal(repo, forbidden(nonce, who)) for who in ("main", "sub")}
    except Exception as e:  # program.md broken mid-edit, or a guard that allows the call
        return f"the guard's answer to the check's call is unknown ({type(e).__name__}: {e})"
    main, sub = script(nonce)
    with MessagesServer(main, subagent_turns=sub) as server, tempfile.TemporaryDirectory() as home:
        env = {**options.env, "ANTHROPIC_BASE_URL": server.url, "ANTHROPIC_API_KEY": "canary-no-key",
               "CLAUDE_CONFIG_DIR": home}
        canary = dataclasses.replace(options, env=env, resume=None, max_budget_usd=None)
        session_id = None
        try:
            session_id = await asyncio.wait_for(run_cli(canary), TIMEOUT_S)
        except Exception as e:  # a CLI that cannot start or hangs cannot be trusted to guard either
            return f"the CLI failed during the check ({type(e).__name__}: {e})"
        finally:
            forget(repo, session_id, nonce)
        results = {r.tool_use_id: r for r in [*server.tool_results(), *server.tool_results("subagent")]}
    wrong = []
    for use_id, who in ((MAIN, "main"), (SUB, "sub")):
        result = results.get(use_id)
        where = "the session" if who == "main" else "a subagent"
        if result is None:
            wrong.append(f"{where} reported no result for `{forbidden(nonce, who)}`")
        elif not result.is_error or expected[who] not in result.content:
            wrong.append(f"in {where}, `{forbidden(nonce, who)}` was not refused by the guard: {result.content[:200]}")
    return "; ".join(wrong) or None


def forget(repo: Path, session_id: str | None, nonce: str) -> None:
    """Remove what the check left: its session's files in sessions/ and any file the calls wrote."""
    leftovers = list((repo / "runs").glob(f"canary-{nonce}-*"))
    if session_id:
        leftovers += list((repo / session_end.SESSIONS).glob(f"{session_id}.*"))
    for path in leftovers:
        path.unlink(missing_ok=True)
