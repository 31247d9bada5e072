"""runs/calls/<tool_use_id>.json: which experiment each of the agent's ./run.sh calls started.

The verdict the agent is told must be that of its own run, whatever the run printed (train.py's
output can say anything, and Claude Code cuts a long output to a preview). So the harness keeps
its own record: when the guard allows an experiment call, the PreToolUse hook notes the newest
experiment there is (`begin`); after the call, the PostToolUse hook takes the first experiment
started since then, in this checkout, that no other call has taken (`claim`, under the serial lock).
Ids only grow and one experiment runs at a time per checkout (workers share runs/, each from its own
worktree: runs/<id>/origin.json), so that is the call's own: a refused run started none.
"""

from __future__ import annotations

import re
from pathlib import Path

from eval.record.runs import RUNS, experiment_ids, origin, read_json, write_json

CALLS = RUNS / "calls"
CALL_ID = re.compile(r"^[A-Za-z0-9_-]{1,128}$")  # Claude Code's tool_use ids: toolu_...


class NoRecord(LookupError):
    """The harness has no note of when this call began; the message says what to do."""


def number(run_id: str) -> int:
    return int(run_id[1:])


def path(repo: Path, call_id: object) -> Path:
    if not isinstance(call_id, str) or not CALL_ID.match(call_id):
        raise NoRecord(f"the tool call has no usable tool_use_id ({call_id!r}), so its experiment cannot be told apart")
    return repo / CALLS / f"{call_id}.json"


def begin(repo: Path, call_id: object) -> None:
    """The guard allowed an experiment call: note the newest experiment now (the call's own comes after it)."""
    target = path(repo, call_id)
    target.parent.mkdir(parents=True, exist_ok=True)
    ids = experiment_ids(repo)
    write_json(target, {"after": max(ids, key=number) if ids else None, "experiment": None})


def claim(repo: Path, call_id: object) -> str | None:
    """The experiment this call started, or None when it started none. Call it under the experiment lock."""
    target = path(repo, call_id)
    note = read_json(target)
    if note is None:
        raise NoRecord("the harness has no note of when this ./run.sh call began (the PreToolUse hook writes it), "
                       "so it cannot tell which experiment the call ran; ./run.sh status shows the latest verdicts")
    if note.get("experiment"):
        return note["experiment"]
    taken = {n.get("experiment") for p in (repo / CALLS).glob("*.json") if (n := read_json(p))}
    after = number(note["after"]) if note.get("after") else 0
    here = repo.resolve()
    mine = next((i for i in sorted(experiment_ids(repo), key=number)
                 if number(i) > after and i not in taken and origin(repo, i) == here), None)
    if mine is not None:
        write_json(target, {**note, "experiment": mine})
    return mine
