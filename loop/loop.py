"""`./run.sh loop`: the research loop, unattended for hours, through claude-agent-sdk.

Karpathy kept a watcher that typed "keep going" into idle terminals; this is that watcher.
It drives the real Claude Code CLI with the project's own rules (the settings file passed
explicitly, so the allow rules apply headless, plus the command hooks it wires, in
`dontAsk` mode) and Claude Code's system prompt with program.md's body appended. It first
watches that CLI refuse a forbidden call (loop/canary.py) and starts no research otherwise. When the
model ends its turn while budget remains, it gets the Stop hook's reason as its next prompt;
when the CLI dies, the same session is resumed after a backoff (a few failures in a row end
the loop). It stops cleanly on a STOP file, on a cap (hours, experiments of this run, USD),
when program.md's own budget is spent, or on SIGINT/SIGTERM: then the agent is interrupted,
an interrupted experiment is completed by eval/experiment.py's recovery (train.py back at the
best, ledger consistent), and every session's transcript is in sessions/, crash or not. With --ray ADDRESS,
every session's ./run.sh runs its trials on that Ray cluster (eval/remote.py); all else stays here.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import fcntl
import json
import os
import signal
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from claude_agent_sdk import (
    AssistantMessage,
    ClaudeAgentOptions,
    ClaudeSDKClient,
    ClaudeSDKError,
    ResultMessage,
    SystemMessage,
    ToolResultBlock,
    ToolUseBlock,
    UserMessage,
)

from eval import config, remote
from eval.record import ledger
from eval.record.runs import LOOP, write_json
from hooks import session_end, stop
from loop import canary, workers
from sandbox.job import SandboxUnavailable

LOCK = Path("runs") / ".loop.lock"  # not runs/.lock: that one is held by each experiment
SETTINGS = Path(".claude") / "settings.json"
BACKOFF_S = (2, 10, 30, 120, 300)  # wait before resuming after the n-th failure in a row; one more ends the loop
EXPERIMENT_LOCK_WAIT_S = 180  # after a stop, how long an interrupted ./run.sh may take to let go of runs/.lock
INTERRUPT_WAIT_S = 30
STATUS_EVERY_S = 60
# Claude Code 2.1.332 prints this for the untrusted project layer even though --settings applies the
# very same allow rules (seen: such calls are accepted with source "config", reason "rule").
MISLEADING = "this workspace has not been trusted"

START = (
    "You are running unattended under ./run.sh loop: no human is watching or will answer questions. "
    "Run the research loop of program.md: read program.md and scratchpad.md, then repeat: one hypothesis, "
    "edit train.py, ./run.sh -m '<hypothesis>', read the verdict, record it in scratchpad.md."
)
RESUMED = (
    "The Claude Code process ended unexpectedly and ./run.sh loop resumed this session. An experiment that "
    "was running may have been cut short: the next ./run.sh completes its verdict (./run.sh status shows the "
    "ledger). Re-read scratchpad.md if you need to, then go on."
)


class LoopBusy(RuntimeError):
    """Another loop holds this repository."""


@dataclass(frozen=True)
class Caps:
    """The human's limits for this run; None = no limit of that kind."""

    hours: float | None = None
    experiments: int | None = None
    max_usd: float | None = None


@dataclass
class State:
    """What the loop knows while it runs; the status line and the summary read it."""

    started: float = field(default_factory=time.monotonic)
    started_at: str = field(default_factory=lambda: datetime.now(UTC).isoformat(timespec="seconds"))
    rows_at_start: list[dict] = field(default_factory=list)
    rows: list[dict] = field(default_factory=list)
    cost_done: float = 0.0  # USD of CLI processes that have ended
    cost_process: float = 0.0  # USD of the running one (total_cost_usd is per process)
    session_id: str | None = None
    sessions: list[str] = field(default_factory=list)
    tools_running: set[str] = field(default_factory=set)
    reprompts: int = 0
    resumes: int = 0
    compactions: int = 0
    failures: int = 0  # consecutive
    stop: str | None = None

    @property
    def cost(self) -> float:
        return self.cost_done + self.cost_process

    @property
    def hours(self) -> float:
        return (time.monotonic() - self.started) / 3600

    @property
    def new_rows(self) -> list[dict]:
        return self.rows[len(self.rows_at_start):]


def cap_reached(caps: Caps, state: State, cost: float) -> str | None:
    """The first of the human's caps that is spent, in words; None while all have room. The experiments are
    the shared ledger's (every worker's), the cost every worker's session's."""
    checks = (
        (caps.hours, state.hours, "the hours cap ({:g} h)"),
        (caps.experiments, len(state.new_rows), "the experiments cap ({:g})"),
        (caps.max_usd, cost, "the cost cap (${:g})"),
    )
    return next((words.format(cap) for cap, used, words in checks if cap is not None and used >= cap), None)


def stop_reason(repo: Path, caps: Caps, state: State, turn_ended: bool, home: Path | None = None,
                cost: float | None = None) -> str | None:
    """Why the loop must stop now, or None. program.md's own budget counts only once the model has
    ended its turn: the Stop hook then let it stop, and prompting it again would spin. home: where the
    STOP file is (a worker's session stops on the home repository's); cost: every worker's so far."""
    if ((home or repo) / stop.STOP).exists():
        return "the STOP file (remove it before the next run)"
    rows = ledger.read(repo)
    if len(rows) > len(state.rows):
        state.failures = 0  # an experiment finished: progress since the last failure
    state.rows = rows
    if reason := cap_reached(caps, state, state.cost if cost is None else cost):
        return reason
    if turn_ended and stop.respond(repo, datetime.now(UTC)) == {}:
        return "program.md's budget is spent (or its phase is)"
    return None


def continue_prompt(repo: Path) -> str:
    """What the Stop hook would have said: the budget left, the best so far, the open ideas."""
    answer = stop.respond(repo, datetime.now(UTC))
    return "(./run.sh loop) " + answer.get("reason", stop.CONTINUE)


def cli_stderr(line: str) -> None:
    if MISLEADING not in line:
        print(f"claude: {line}", file=sys.stderr)


def options(repo: Path, model: str | None, resume: str | None, caps: Caps, spent: float) -> ClaudeAgentOptions:
    """The CLI under the project's own rules, and nothing from the user's or local settings. spent: the USD of
    the sessions that have ended (every worker's), so the CLI stops at what is left of the cost cap."""
    body = config.load(repo / "program.md").body
    budget = None if caps.max_usd is None else max(caps.max_usd - spent, 0.0)
    return ClaudeAgentOptions(
        cwd=str(repo),
        settings=str(repo / SETTINGS),
        setting_sources=["project"],
        permission_mode="dontAsk",
        system_prompt={"type": "preset", "preset": "claude_code", "append": body},
        model=model,
        resume=resume,
        max_budget_usd=budget,  # the CLI enforces it between API calls, mid-turn
        stderr=cli_stderr,
    )


def observe(message: object, state: State) -> str | None:
    """Update the state from one message; return a line worth printing, if any."""
    if isinstance(message, SystemMessage):
        state.session_id = message.data.get("session_id") or state.session_id
        if state.session_id and state.session_id not in state.sessions:
            state.sessions.append(state.session_id)
        if message.subtype == "compact_boundary":
            state.compactions += 1
            return "context compacted; SessionStart re-injects the state of the research"
    elif isinstance(message, AssistantMessage) and message.parent_tool_use_id is None:
        state.tools_running |= {b.id for b in message.content if isinstance(b, ToolUseBlock)}
    elif isinstance(message, UserMessage) and message.parent_tool_use_id is None and isinstance(message.content, list):
        state.tools_running -= {b.tool_use_id for b in message.content if isinstance(b, ToolResultBlock)}
    elif isinstance(message, ResultMessage):
        state.session_id = message.session_id or state.session_id
        state.cost_process = max(state.cost_process, message.total_cost_usd or 0.0)
        state.tools_running.clear()
        if not message.is_error:
            state.failures = 0  # a turn went through: the failures so far were not in a row
        if message.is_error and state.stop is None:  # once stopping, the interrupted turn ends "in error"
            return f"turn ended with an error: {message.subtype} {message.errors or message.result or ''}".strip()
    return None


def status_line(state: State, caps: Caps, metric: str, direction: str) -> str:
    """experiments, best, time / experiments / USD left, cost so far: one line."""
    best = ledger.best(state.rows, direction)
    shown = "none yet" if best is None else f"{best['mean']:.6f} ({best['id']})"
    left = [
        f"{max(caps.hours - state.hours, 0):.2f} h" if caps.hours is not None else None,
        f"{max(caps.experiments - len(state.new_rows), 0)} exp" if caps.experiments is not None else None,
        f"${max(caps.max_usd - state.cost, 0):.2f}" if caps.max_usd is not None else None,
    ]
    left_text = ", ".join(x for x in left if x) or "no caps"
    elapsed = time.strftime("%H:%M:%S", time.gmtime(time.monotonic() - state.started))
    return (f"[loop {elapsed}] experiments {len(state.rows)} (+{len(state.new_rows)}) | best {metric} {shown} | "
            f"left {left_text} | cost ${state.cost:.4f} | session {(state.session_id or '-')[:8]}")


def record(repo: Path, state: State, caps: Caps, team: list[Loop] | None = None) -> None:
    """runs/loop.json: this loop's clock, caps and API cost, for the morning report (runs/report.html); with
    workers (team), the cost of all and each one's branch, worktree, session and stop, for ./run.sh status."""
    team = team or []
    cost = sum(w.state.cost for w in team) if team else state.cost
    stopped = state.stop if not team or all(w.state.stop for w in team) else None
    write_json(repo / LOOP, {"started": state.started_at, "updated": datetime.now(UTC).isoformat(timespec="seconds"),
                             "hours": round(state.hours, 3), "cost_usd": round(cost, 4), "caps": asdict(caps),
                             "experiments": len(state.new_rows), "stop": stopped,
                             "workers": [w.record() for w in team]})


def summary(state: State, metric: str, direction: str, saved: dict[Path, str]) -> str:
    counts = {s: sum(r["status"] == s for r in state.new_rows) for s in ledger.STATUSES}
    before, after = ledger.best(state.rows_at_start, direction), ledger.best(state.rows, direction)
    shown = {k: "none" if b is None else f"{b['mean']:.6f} ({b['id']})" for k, b in (("before", before),
                                                                                      ("after", after))}
    return "\n".join([
        f"loop stopped: {state.stop}",
        f"ran {state.hours:.2f} h; {len(state.new_rows)} experiments: "
        + ", ".join(f"{n} {s}" for s, n in counts.items()),
        f"best {metric} ({direction}): {shown['before']} -> {shown['after']}",
        f"cost ${state.cost:.4f}; {state.reprompts} re-prompts, {state.resumes} resumes, "
        f"{state.compactions} compactions",
        "transcripts: " + ("; ".join(f"{p} ({how})" for p, how in saved.items()) or "none"),
    ])


def cost_per_keep(cost: float, rows: list[dict], workers: int) -> str:
    """What one kept change cost the whole research: the API's USD of every session (N workers are N sessions:
    N times the API) and the trials of every experiment in the shared ledger."""
    runs, keeps = sum(r.get("runs") or 1 for r in rows), sum(r["status"] == "keep" for r in rows)
    sessions = f" ({workers} workers)" if workers > 1 else ""
    if not keeps:
        return f"nothing kept{sessions}: ${cost:.4f} and {runs} runs for no kept change"
    return (f"per kept change{sessions}: ${cost / keeps:.4f} and {runs / keeps:.1f} runs ({keeps} kept, {runs} runs, "
            f"${cost:.4f} in all)")


def config_dir() -> Path:
    """Where the CLI keeps its transcripts (the env the loop passes on to it)."""
    return Path(os.environ.get("CLAUDE_CONFIG_DIR") or Path.home() / ".claude")


def save_transcript(repo: Path, session_id: str) -> tuple[Path | None, bool]:
    """Copy the session's transcript into sessions/ (the SessionEnd hook does not run after a crash).
    Returns (where it is, whether sessions/ already held it as it is now)."""
    source = next((config_dir() / "projects").glob(f"*/{session_id}.jsonl"), None)
    if source is None:
        return None, False
    target = repo / session_end.SESSIONS / f"{session_id}.jsonl"
    already = target.is_file() and target.read_bytes() == source.read_bytes()
    if not already:
        target = session_end.save(json.dumps({"session_id": session_id, "transcript_path": str(source)}), repo)
    return target, already


@contextlib.contextmanager
def only_loop(repo: Path) -> Iterator[None]:
    """One loop per repository: a second one is refused while the first holds the flock."""
    path = repo / LOCK
    path.parent.mkdir(exist_ok=True)
    with open(path, "a+") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            f.seek(0)
            raise LoopBusy(f"another loop is running in this repository ({path}: {f.read().strip()})") from None
        f.truncate(0)
        f.write(f"pid {os.getpid()}, started {datetime.now(UTC).isoformat(timespec='seconds')}\n")
        f.flush()
        yield


def finish_experiment(repo: Path, say: Callable[[str], None]) -> None:
    """Complete what an interrupted ./run.sh left (its verdict, a torn ledger line, containers),
    once it has let go of runs/.lock; eval/experiment.py's own recovery does the work."""
    from eval import experiment

    deadline = time.monotonic() + EXPERIMENT_LOCK_WAIT_S
    while True:
        try:
            with experiment.exclusive(repo):
                experiment.recover(repo, say)
            return
        except experiment.Busy:
            if time.monotonic() > deadline:
                say("an experiment still holds runs/.lock; the next ./run.sh completes it")
                return
            time.sleep(1)


class Loop:
    """One run of the loop: sessions, one after another, until a reason to stop."""

    def __init__(self, repo: Path, caps: Caps, model: str | None, say: Callable[[str], None] = print,
                 home: Path | None = None, worker: workers.Worker | None = None) -> None:
        self.repo, self.caps, self.model, self.say = repo, caps, model, say
        self.home, self.worker = home or repo, worker  # a worker runs in its worktree, stops on the home's STOP
        self.team: list[Loop] = [self]  # the loops whose caps are one (./run.sh loop --workers)
        task = config.load(repo / "program.md").task
        self.metric, self.direction = task.metric, task.direction
        self.state = State()
        self.state.rows_at_start = self.state.rows = ledger.read(repo)
        self.client: ClaudeSDKClient | None = None
        self.stopping = asyncio.Event()
        self.interrupted = False
        self.tasks: set[asyncio.Task] = set()  # the event loop keeps only weak references
        self.transcripts: dict[Path, str] = {}  # how each got into sessions/
        self.copied: dict[Path, int] = {}  # the size of what the loop itself copied

    def show(self) -> None:
        self.say(status_line(self.state, self.caps, self.metric, self.direction))
        record(self.home, self.state, self.caps, self.team if self.worker else None)
        if self.worker is not None:
            workers.steer(self.home, self.worker)

    def cost(self) -> float:
        return sum(w.state.cost for w in self.team)

    def stop_reason(self, turn_ended: bool) -> str | None:
        return stop_reason(self.repo, self.caps, self.state, turn_ended, self.home, self.cost())

    def record(self) -> dict:
        """What ./run.sh status shows of this worker."""
        w = self.worker
        return {"name": w.name, "branch": w.branch, "worktree": str(w.path), "session": self.state.session_id,
                "cost_usd": round(self.state.cost, 4), "stop": self.state.stop}

    def request_stop(self, reason: str) -> None:
        """Stop now (a signal): interrupt the agent, even mid-experiment; recovery completes the run."""
        if self.state.stop is None:
            self.state.stop = reason
        self.stopping.set()
        if self.client is not None and not self.interrupted:
            self.interrupted = True
            task = asyncio.get_running_loop().create_task(self.interrupt())
            self.tasks.add(task)
            task.add_done_callback(self.tasks.discard)

    async def interrupt(self) -> None:
        if self.client is None:
            return
        try:
            await asyncio.wait_for(self.client.interrupt(), INTERRUPT_WAIT_S)
        except Exception as e:  # a dead or stuck CLI: leaving the session closes it
            self.say(f"interrupt failed ({type(e).__name__}: {e}); closing the session")

    async def session(self, prompt: str) -> None:
        """One CLI process: prompt, follow the turn, re-prompt while the budget remains."""
        state = self.state
        state.cost_process = 0.0
        self.interrupted = False
        resume = state.session_id
        spent = sum(w.state.cost_done for w in self.team)
        async with ClaudeSDKClient(options(self.repo, self.model, resume, self.caps, spent)) as client:
            self.client = client
            try:
                while True:
                    await client.query(prompt)
                    result = None
                    async for message in client.receive_response():
                        if line := observe(message, state):
                            self.say(line)
                        if isinstance(message, ResultMessage):
                            result = message
                        elif not state.tools_running and state.stop is None and (
                            reason := self.stop_reason(turn_ended=False)
                        ):
                            self.request_stop(reason)  # between tool calls: no experiment is cut short
                    if result is None:
                        raise ClaudeSDKError("the CLI ended without a result")
                    if state.stop is None:
                        state.stop = self.stop_reason(turn_ended=True)
                    if state.stop is None and result.subtype == "error_max_budget_usd":
                        state.stop = f"the cost cap (${self.caps.max_usd:g})"
                    self.show()
                    if state.stop is not None:
                        return
                    if result.is_error:  # an API error (overload, rate limit): wait as after a crash
                        await self.back_off("the turn failed")
                        if state.stop is not None:
                            return
                    state.reprompts += 1
                    prompt = continue_prompt(self.repo)
            finally:
                self.client = None
                state.cost_done += state.cost_process
                state.cost_process = 0.0

    async def back_off(self, why: str) -> None:
        """Wait before trying again; too many failures in a row end the loop."""
        state = self.state
        state.failures += 1
        if state.failures > len(BACKOFF_S):
            state.stop = f"{why}: {state.failures} failures in a row"
            return
        wait = BACKOFF_S[state.failures - 1]
        self.say(f"{why}; trying again in {wait} s (failure {state.failures} of {len(BACKOFF_S)} allowed in a row)")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.stopping.wait(), wait)

    async def run(self) -> None:
        state = self.state
        prompt = START
        heartbeat = asyncio.get_running_loop().create_task(self.heartbeat())
        try:
            while state.stop is None:
                if reason := self.stop_reason(turn_ended=False):
                    state.stop = reason
                    break
                try:
                    await self.session(prompt)
                except (ClaudeSDKError, OSError, config.ConfigError) as e:  # program.md may be mid-edit
                    self.keep_transcripts()
                    if state.stop is not None:  # the CLI died because we stopped it (or with us, on Ctrl-C)
                        break
                    self.say(f"Claude Code failed: {type(e).__name__}: {e}")
                    await self.back_off("the CLI process failed")
                    if state.session_id is not None:
                        state.resumes += 1
                        prompt = RESUMED + "\n\n" + continue_prompt(self.repo)
        finally:
            heartbeat.cancel()

    def keep_transcripts(self) -> list[Path]:
        """Every session's transcript into sessions/, now: a crashed CLI ran no SessionEnd hook."""
        saved = []
        for session_id in self.state.sessions:
            path, already = save_transcript(self.repo, session_id)
            if path is None:
                continue
            size = path.stat().st_size
            if not already:
                self.copied[path] = size
            saved.append(path)
            ours = self.copied.get(path) == size
            self.transcripts[path] = "copied by the loop" if ours else "saved by the SessionEnd hook"
        return saved

    async def heartbeat(self) -> None:
        while True:
            await asyncio.sleep(STATUS_EVERY_S)
            self.show()


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(prog="./run.sh loop", description="Run the research loop unattended for hours")
    ap.add_argument("--hours", type=float, help="stop after this many hours (the running experiment finishes)")
    ap.add_argument("--experiments", type=int, help="stop after this many experiments of this run")
    ap.add_argument("--max-usd", type=float, help="stop once the API cost of this run reaches this many USD")
    ap.add_argument("--model", help="the Claude model (default: Claude Code's)")
    ap.add_argument("--workers", type=int, default=1, help="agent sessions at once, each in its own worktree and "
                    "branch under workers/, one ledger (give program.md's devices as many slots)")
    ap.add_argument("--ray", metavar="ADDRESS", help="run every trial on a node of this Ray cluster (ray.init's "
                    "address; its nodes offer autoresearch_slot resources): git, the ledger and the agents stay here")
    args = ap.parse_args(argv)
    for name in ("hours", "experiments", "max_usd", "workers"):
        if (value := getattr(args, name)) is not None and value <= 0:
            ap.error(f"--{name.replace('_', '-')} must be positive, not {value}")
    return args


def team_of(repo: Path, args: argparse.Namespace) -> list[Loop]:
    """The loops to run at once: this checkout's; or, with --workers N, one per worker's worktree, their caps
    counted together and their STOP the home's."""
    caps = Caps(args.hours, args.experiments, args.max_usd)
    if args.workers == 1:
        return [Loop(repo, caps, args.model)]
    team = [Loop(w.path, caps, args.model, say=lambda line, n=w.name: print(f"[{n}] {line}", flush=True),
                 home=repo, worker=w) for w in workers.prepare(repo, args.workers)]
    for loop in team:
        loop.team = team
    return team


async def main_async(repo: Path, args: argparse.Namespace) -> int:
    team = team_of(repo, args)
    loop = team[0]
    if len(team) > 1:
        loop.say(f"{len(team)} workers: " + "; ".join(f"{w.worker.name} on {w.worker.branch} in {w.repo}"
                                                     for w in team))
    loop.say("checking that the guard is live (a forbidden call through the CLI, as the loop runs it)...")
    if trouble := await canary.check(loop.repo, options(loop.repo, args.model, None, loop.caps, 0.0)):
        print(f"loop: the guard is not live, so no research was started: {trouble}", file=sys.stderr)
        return 2
    loop.say("the guard is live: it refused the call in the session and in a subagent")
    aio = asyncio.get_running_loop()
    signals: list[str] = []

    def on_signal(name: str) -> None:
        signals.append(name)
        if len(signals) > 1:  # the second one: the human will not wait for the clean stop
            print(f"loop: {name} again: quitting now; the next ./run.sh completes an interrupted experiment",
                  file=sys.stderr, flush=True)
            os._exit(130)
        loop.say(f"{name}: stopping (interrupting the agent, then completing an interrupted experiment)")
        for each in team:
            each.request_stop(name)

    for sig, name in ((signal.SIGINT, "SIGINT"), (signal.SIGTERM, "SIGTERM")):
        aio.add_signal_handler(sig, on_signal, name)
    loop.show()
    try:
        await asyncio.gather(*(each.run() for each in team))
    finally:
        saved = {each: each.keep_transcripts() for each in team}
        await asyncio.to_thread(finish_experiment, repo, loop.say)
        for each in team:
            each.state.rows = ledger.read(repo)
        record(repo, loop.state, loop.caps, team if len(team) > 1 else None)
        for each, paths in saved.items():
            each.say(summary(each.state, each.metric, each.direction, {p: each.transcripts[p] for p in paths}))
        print(cost_per_keep(sum(each.state.cost for each in team), loop.state.new_rows, len(team)), flush=True)
    # a clean stop is 0; giving up on the CLI is not
    return 1 if any(each.state.failures > len(BACKOFF_S) for each in team) else 0


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    repo = Path.cwd()
    try:
        if args.ray:  # each session's ./run.sh reads it (commands/experiment.py); checked once here
            slots = remote.probe(args.ray)
            print(f"loop: the Ray cluster at {args.ray} runs {slots} experiment(s) at once"
                  + ("; a worker beyond them is refused until a slot is free" if args.workers > slots else ""),
                  flush=True)
            os.environ[remote.ENV] = args.ray
        with only_loop(repo):
            return asyncio.run(main_async(repo, args))
    except (LoopBusy, config.ConfigError, SandboxUnavailable) as e:
        print(f"loop: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
