"""`./run.sh replay SESSION.jsonl [--runs recorded|real]`: does today's harness decide as it did?

A recorded session's model turns are served, in order and with their tool_use ids, by a
loopback MessagesServer to the real Claude Code CLI, which runs in a scratch clone: today's
harness (.claude, hooks, eval, sandbox, run.sh) with the research as it stood when the
session started (train.py, program.md, scratchpad.md, ledger: hooks/start_state.py). The
CLI executes every tool call for real under today's settings and hooks, and writes its own
transcript; both transcripts are read by replay/transcript.py and compared:
  - each tool call: allowed, denied or not run, by tool_use_id;
  - each experiment's verdict (keep, discard, crash, timeout);
  - the commits the harness made (their Autoresearch-Experiment trailers, in order);
  - how the session ended: the turns served and the Stop hook's refusals.
`--runs recorded` replays each seed's recorded measurement (replay/recorded.py: deterministic,
no training); `--runs real` trains for real with a small budget. Exit 0: no divergence;
1: divergences (listed); 2: the replay could not run (the reason is printed).
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from eval.record import history
from hooks import start_state
from loop import claude_cli
from loop.messages_server import MessagesServer
from replay import transcript

REPO = Path(__file__).resolve().parent.parent
# The harness's own code and settings: what a replay copies as "today's harness" (and the tests too).
HARNESS = (".claude", ".gitignore", "hooks", "eval", "sandbox", "commands", "replay", "loop", "run.sh",
           "pyproject.toml")
RUNS = ("recorded", "real")
REAL_BUDGET_S = 5.0
TIMEOUT_S = {"recorded": 600, "real": 3600}
IDENTITY = ("-c", "user.name=replay", "-c", "user.email=replay@harness.invalid", "-c", "commit.gpgsign=false")
TRAILER = f"{history.TRAILER}: "


class ReplayError(RuntimeError):
    """The replay could not run (not a divergence): the message says why."""


@dataclass(frozen=True)
class Divergence:
    kind: str  # tool call | verdict | commits | ending
    where: str
    recorded: str
    today: str

    def __str__(self) -> str:
        return f"{self.kind:<9} {self.where}: recorded {self.recorded}, today {self.today}"


@dataclass
class Replay:
    session: Path
    clone: Path
    runs: str
    recording: transcript.Transcript
    today: transcript.Transcript | None
    commits: list[str]
    turns_served: int
    seconds: float
    divergences: list[Divergence] = field(default_factory=list)

    def report(self) -> str:
        r = self.recording
        lines = [
            f"replay of {self.session.name} (session {r.session_id}), runs {self.runs}, in {self.seconds:.1f}s",
            f"  {len(r.turns)} model turns, {len(r.calls)} tool calls, {len(r.verdicts)} experiments",
        ]
        if r.later_prompts:
            lines.append(f"  note: {r.later_prompts} later human message(s) in the recording are not replayed")
        if not self.divergences:
            lines.append("no divergence: today's harness decides as the recorded session's did")
        else:
            lines.append(f"{len(self.divergences)} divergence(s):")
            lines += [f"  {d}" for d in self.divergences]
        return "\n".join(lines)


def describe(call: transcript.ToolCall) -> str:
    shown = call.input.get("command") or call.input.get("file_path") or call.input.get("url") or ""
    return f"{call.id} {call.name}({str(shown)[:80]})"


def compare(recording: transcript.Transcript, today: transcript.Transcript | None, commits: list[str],
            turns_served: int) -> list[Divergence]:
    """Every way today's run differs from the recording, in the recording's order."""
    now = today or transcript.Transcript("", "", "")
    found = []
    for call_id, call in recording.calls.items():
        decision = now.calls[call_id].decision if call_id in now.calls else "never called"
        if decision != call.decision:
            found.append(Divergence("tool call", describe(call), call.decision, decision))
    before, after = recording.verdicts, now.verdicts
    for run_id in sorted(set(before) | set(after)):
        was, is_ = (" ".join(v[run_id]) if run_id in v else "no verdict" for v in (before, after))
        if was != is_:
            found.append(Divergence("verdict", run_id, was, is_))
    kept = sorted(run_id for run_id, (status, _) in before.items() if status == "keep")
    if kept != commits:
        found.append(Divergence("commits", "kept experiments, in order", str(kept), str(commits)))
    if turns_served != len(recording.turns):
        found.append(Divergence("ending", "model turns served", str(len(recording.turns)), str(turns_served)))
    if now.stop_blocks != recording.stop_blocks:
        found.append(Divergence("ending", "Stop hook refusals", str(recording.stop_blocks), str(now.stop_blocks)))
    return found


def git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", *IDENTITY, *args], cwd=repo, capture_output=True, text=True, check=True).stdout


def shrink_budget(program: str, budget: float) -> str:
    """program.md with task.budget_seconds capped at `budget` (real runs in a replay stay short)."""
    import yaml

    from eval.config import split_front_matter

    raw, body = split_front_matter(program, "program.md")
    data = yaml.safe_load(raw)
    data["task"]["budget_seconds"] = min(float(data["task"]["budget_seconds"]), budget)
    return "---\n" + yaml.safe_dump(data, sort_keys=False) + "---\n" + body


def scratch_clone(harness: Path, state: dict, root: Path, runs: str, budget: float) -> Path:
    """Today's harness from `harness`, the research from the start state, committed as one start commit."""
    repo = root / "repo"
    repo.mkdir(parents=True)
    for name in HARNESS:
        source = harness / name
        if source.is_dir():
            shutil.copytree(source, repo / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        elif source.is_file():
            shutil.copy2(source, repo / name)
    (repo / ".venv").symlink_to((harness / ".venv").resolve())
    if runs == "real":
        if not (harness / "data" / "manifest.json").is_file():
            raise ReplayError(f"no prepared data in {harness / 'data'}: run ./run.sh prepare first")
        shutil.copytree(harness / "data", repo / "data")
    project = set(start_state.project_files_named(state["files"]))
    for name, text in state["files"].items():
        if name in start_state.FILES or name in project:
            (repo / name).parent.mkdir(parents=True, exist_ok=True)
            (repo / name).write_text(text, encoding="utf-8")
    if runs == "real":
        (repo / "program.md").write_text(shrink_budget((repo / "program.md").read_text(), budget))
    restore_ledger(repo, state.get("ledger") or "")
    git(repo, "init", "-q", "-b", "research")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", f"replay start: harness of today, research of {state.get('commit') or 'unknown'}")
    return repo


def restore_ledger(repo: Path, ledger_text: str) -> None:
    """The ledger at the session's start, and an applied verdict per row, so that new ids follow on."""
    if not ledger_text.strip():
        return
    (repo / "runs").mkdir()
    (repo / start_state.LEDGER).write_text(ledger_text)
    for raw in ledger_text.splitlines():
        row = json.loads(raw) if raw.strip() else None
        if row and row.get("id"):
            (repo / "runs" / row["id"]).mkdir(exist_ok=True)
            (repo / "runs" / row["id"] / "verdict.json").write_text(json.dumps({**row, "applied": True}))


def kept_commits(repo: Path) -> list[str]:
    """The experiments the harness committed in the clone since the start commit, oldest first."""
    log = git(repo, "log", "--reverse", "--format=%B%x00", "HEAD")
    return [line.removeprefix(TRAILER).strip() for message in log.split("\0")
            for line in message.splitlines() if line.startswith(TRAILER)]


def mapped(turns: list[list[dict]], recorded_dir: str, clone: Path) -> list[list[dict]]:
    """The turns with the recorded project directory replaced by the clone's (tool inputs hold absolute paths)."""
    return [json.loads(json.dumps(turn).replace(recorded_dir, str(clone))) for turn in turns]


def replay(session: Path, runs: str = "recorded", harness: Path = REPO, budget: float = REAL_BUDGET_S,
           workdir: Path | None = None) -> Replay:
    """Replay `session` against today's harness in `harness`; the clone stays under `workdir` if given."""
    if runs not in RUNS:
        raise ReplayError(f"--runs must be one of {RUNS}, not {runs!r}")
    started = time.monotonic()
    try:
        recording = transcript.read(session)
        state = start_state.load(session, recording.session_id, harness)
    except (transcript.TranscriptError, start_state.NoStartState, ValueError) as e:
        raise ReplayError(str(e)) from None
    root = workdir or Path(tempfile.mkdtemp(prefix="replay-"))
    if (root / "repo").exists():
        raise ReplayError(f"{root / 'repo'} already exists: give an empty directory to build the clone in")
    clone = scratch_clone(harness, state, root, runs, budget)
    extra = {}
    if runs == "recorded":
        from replay.recorded import ENV

        results = root / "recorded-runs.json"
        results.write_text(json.dumps(recording.seed_results(), indent=1))
        extra[ENV] = str(results)
    turns = mapped(recording.turns, recording.cwd, clone)
    subagent_turns = mapped(recording.subagent_turns, recording.cwd, clone)
    with MessagesServer(turns, subagent_turns=subagent_turns) as server:
        try:
            run = claude_cli.run(clone, recording.prompt, server.url, root / "home", extra, TIMEOUT_S[runs])
        except subprocess.TimeoutExpired:
            raise ReplayError(f"the CLI ran past {TIMEOUT_S[runs]}s; the clone is in {clone}") from None
        served = server.turns_served
    today = transcript.read(run.transcript) if run.transcript else None
    commits = kept_commits(clone)
    result = Replay(session, clone, runs, recording, today, commits, served, time.monotonic() - started)
    result.divergences = compare(recording, today, commits, served)
    if today is None:
        result.divergences.insert(0, Divergence("ending", "the CLI", "a transcript",
                                                f"none (exit {run.returncode}: {run.stderr[-300:].strip()})"))
    return result


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="./run.sh replay", description=__doc__.splitlines()[0])
    ap.add_argument("session", type=Path, help="a Claude Code transcript (.jsonl), e.g. sessions/<id>.jsonl")
    ap.add_argument("--runs", choices=RUNS, default="recorded",
                    help="recorded: replay each seed's recorded metrics (no training); real: train for real")
    ap.add_argument("--budget", type=float, default=REAL_BUDGET_S,
                    help=f"with --runs real: cap the training budget at this many seconds ({REAL_BUDGET_S:g})")
    ap.add_argument("--keep", type=Path, metavar="DIR", help="build the scratch clone under DIR and keep it")
    args = ap.parse_args(argv)
    try:
        result = replay(args.session, args.runs, REPO, args.budget, args.keep)
    except ReplayError as e:
        print(f"replay: {e}", file=sys.stderr)
        return 2
    print(result.report())
    if args.keep is None:
        shutil.rmtree(result.clone.parent, ignore_errors=True)
    else:
        print(f"the scratch clone is kept in {result.clone}")
    return 1 if result.divergences else 0


if __name__ == "__main__":
    sys.exit(main())
