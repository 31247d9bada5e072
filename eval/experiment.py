"""One experiment: a candidate train.py measured in one or more trials, and its verdict applied.

`./run.sh` (commands/experiment.py) runs the candidate's first trial; when the noise rule
finds it promising (or when it is the baseline), it runs more trials with seeds the harness
chooses. Then the verdict is applied, in steps that are each idempotent and recorded in
runs/<id>/verdict.json:
  1. decide (the rule: eval/verdict.py) against the best so far and write the decision;
  2. git: keep commits train.py, anything else stores it under a ref and restores the best;
  3. append the ledger row (a no-op if the id is there);  4. redraw progress.png;
  5. rewrite the morning report, runs/report.html;  6. mark the verdict applied.
A kill -9 anywhere leaves a state the next ./run.sh (or the PostToolUse hook) completes.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import time
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

from eval import config, rules, verdict
from eval.record import history, ledger, morning, page, plot, tasks
from eval.record.runs import (
    RUNNING,
    RUNS,
    VERDICT,
    experiment_ids,
    new_run_dir,
    read_json,
    seed_dirs,
    trial_dir,
    write_json,
)
from eval.record.text import quoted, refusal, value
from eval.trial import Measure

LOCK = ".lock"


class Busy(RuntimeError):
    """Another experiment holds the repository."""


class BadHypothesis(ValueError):
    """The hypothesis cannot go into commit messages and the ledger; the message names the fix."""


@contextmanager
def exclusive(repo: Path):
    """One experiment at a time per repository: a second ./run.sh is refused, not queued."""
    (repo / RUNS).mkdir(exist_ok=True)
    with open(repo / RUNS / LOCK, "w") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise Busy("another experiment is running in this repository; wait for its verdict") from None
        yield


def seed_runs(run_dir: Path) -> list[dict]:
    """The metrics of every trial (seed) of one experiment, the first one first."""
    return [m for d in seed_dirs(run_dir) if (m := read_json(d / "metrics.json")) is not None]


def best_samples(rows: list[dict], direction: str) -> tuple[dict | None, verdict.Samples | None]:
    best = ledger.best(rows, direction)
    return best, (verdict.Samples(tuple(best["values"])) if best else None)


def decide(repo: Path, run_id: str, program: config.Program) -> dict:
    """Judge the experiment's seeds against the best so far; the decision, as written to verdict.json."""
    task = program.task
    runs = seed_runs(repo / RUNS / run_id)
    rows = [r for r in ledger.read(repo) if r["id"] != run_id]
    best_row, best = best_samples(rows, task.direction)
    outcome = next((m["outcome"] for m in runs if m["outcome"] != "ok"), "ok") if runs else "crash"
    values = [m["value"] for m in runs if m["outcome"] == "ok"]
    earlier = verdict.pooled_spread([r["values"] for r in rows if r.get("values")])
    v = verdict.judge(task.direction, program.verdict, best, outcome, values, fallback_spread=earlier)
    first = runs[0] if runs else {}
    reason = v.reason if runs else "interrupted: the run left no metrics (the harness was stopped mid-run)"
    return {
        "id": run_id,
        "status": v.status,
        "outcome": outcome,
        "metric": task.metric,
        "direction": task.direction,
        "values": values,
        "seeds": [m["seed"] for m in runs],
        "mean": v.mean,
        "spread": v.spread,
        "delta": v.delta,
        "threshold": v.threshold,
        "reason": reason,
        "rule": program.verdict.rule,
        "best_id": best_row["id"] if best_row else None,
        "best_mean": best_row["mean"] if best_row else None,
        "hypothesis": first.get("hypothesis", ""),
        "phase": program.current_phase.name,
        "peak_memory_mb": first.get("peak_memory_mb"),
        "total_seconds": sum(m.get("total_seconds", 0) for m in runs),
        "log_tail": "" if outcome == "ok" else (runs[-1].get("log_tail", "") if runs else ""),
        "applied": False,
    }


def commit_message(d: dict) -> tuple[str, str]:
    mean = value(d["mean"])
    subject = f"{d['id']} {d['status']}: {d['metric']} {mean} | {d['hypothesis'][:60] or 'no hypothesis given'}"
    body = "\n".join([
        f"experiment: {d['id']}", f"metric: {d['metric']} = {mean} ({d['direction']}, seeds {d['seeds']})",
        f"delta: {value(d['delta'])} against {d['best_id'] or 'none (baseline)'}, threshold {value(d['threshold'])}",
        f"spread: {value(d['spread'])}", f"phase: {d['phase']}", f"hypothesis: {d['hypothesis']}",
        f"verdict: {d['reason']}",
    ])
    return subject, body


def apply_verdict(repo: Path, run_id: str, program: config.Program | None = None) -> dict:
    """Decide (once) and apply the verdict of one experiment; safe to call again at any point.

    program: what the experiment ran under; a human's edit to program.md mid-run (even a broken
    one) then does not strand a verdict. Read from program.md when not given (recovery).
    """
    run_dir = repo / RUNS / run_id
    path = run_dir / VERDICT
    d = read_json(path)
    if d and d.get("applied"):
        return d
    program = program or config.load(repo / "program.md")
    if d is None:
        d = decide(repo, run_id, program)
        write_json(path, d)
    subject, body = commit_message(d)
    candidate, editable, best = run_dir / "train.py", program.task.editable, d["best_id"] is not None
    if d["status"] == "keep":
        d["commit"], d["diff_ref"] = history.keep(repo, run_id, candidate, subject, body, editable), None
    elif all((run_dir / rel).exists() for rel in editable):  # restored only to a best: before one, files stay
        d["diff_ref"] = history.discard(repo, run_id, candidate, subject, editable, restore=best)
        d["commit"] = history.head(repo)
    else:  # killed before the snapshot: nothing ran, nothing to keep
        if best:
            history.restore_best(repo, editable)
        d["diff_ref"], d["commit"] = None, history.head(repo)
    ledger.append(repo, {k: v for k, v in d.items() if k not in ("applied", "log_tail")})
    plot.draw(repo, ledger.read(repo), d["metric"], d["direction"])
    write_report(repo, program)
    d["applied"] = True
    write_json(path, d)
    return d


def morning_report(repo: Path, program: config.Program) -> morning.Morning:
    """What the morning report says now: the page's and ./run.sh report's content."""
    rows, task, b = ledger.read(repo), program.task, program.budget
    used = rules.hours_since_start(rows, datetime.now(UTC))
    return morning.gather(repo, rows, task.metric, task.direction, morning.Budget(used, b.hours, b.experiments))


def write_report(repo: Path, program: config.Program) -> None:
    """runs/report.html (and its sealed copy once confirm has run); a bug in the report shows on the page
    instead of stranding the verdict, which every later ./run.sh would then fail to complete."""
    try:
        page.write(repo, morning_report(repo, program))
    except Exception as e:
        page.write_failure(repo, f"{type(e).__name__}: {e}")


def pending(repo: Path) -> list[str]:
    """Experiments whose verdict was never applied (the harness was killed), oldest first."""
    return [i for i in experiment_ids(repo) if not (read_json(repo / RUNS / i / VERDICT) or {}).get("applied")]


def recover(repo: Path, say=print) -> None:
    """Finish what a killed harness left: its containers, a torn ledger line, unapplied verdicts."""
    from sandbox.backends import remove_leftovers  # the sandbox stack: only runs need it

    for name in remove_leftovers(str((repo / RUNS).resolve()) + "/"):
        say(f"removed the container {name} left running by an interrupted experiment")
    ledger.repair(repo)
    for run_id in pending(repo):
        say(f"[{run_id}] completing the verdict of an interrupted experiment")
        apply_verdict(repo, run_id)


def run_experiment(repo: Path, hypothesis: str, budget: float | None, unsafe: bool, say=print,
                   measure: Measure | None = None) -> dict:
    """Run one experiment (extra trials where needed) and apply its verdict.

    measure: how each trial is measured; the sandbox (eval/trial.py) unless a replay serves recordings.
    """
    from eval.trial import run_trial, summary  # the sandbox stack: only runs need it

    measure = measure or run_trial
    program = config.load(repo / "program.md")
    task, rule = program.task, program.verdict
    budget = task.budget_seconds if budget is None else budget
    why = refusal(hypothesis, "the hypothesis (-m)", allowed="\t\n")  # the guard refuses it too; humans call this
    if why:
        raise BadHypothesis(why)
    hypothesis = " ".join(hypothesis.split())  # one line: it goes into commit messages and the ledger
    history.check(repo, task.editable)
    with exclusive(repo):
        recover(repo, say)
        if moved := tasks.switch(repo, task_identity(repo, task), ledger.read(repo)):
            say(moved)
        _, best = best_samples(ledger.read(repo), task.direction)
        run_id, run_dir = new_run_dir(repo / RUNS)
        seeds = verdict.harness_seeds(task.seed, rule.seeds, run_id)
        announce(repo, run_id, 1, len(seeds) if best is None and rule.rule == "noise" else None, budget)
        try:
            first = measure(repo, program, (run_id, run_dir), repo / task.train_file, hypothesis, budget, seeds[0],
                            unsafe)
        except BaseException:
            with contextlib.suppress(OSError):
                run_dir.rmdir()  # still empty: nothing ran (no sandbox, no data), so there is nothing to judge
            raise
        say(summary(first))
        extra = rule.rule == "noise" and first["outcome"] == "ok" and (
            best is None or verdict.promising(task.direction, rule, best, first["value"]))
        for k, seed in enumerate(seeds[1:] if extra else [], start=2):
            say(f"[{run_id}] {'baseline' if best is None else 'promising'}: seed {k} of {len(seeds)} ({seed})")
            trial = trial_dir(run_dir, k)
            trial[1].mkdir()
            announce(repo, trial[0], k, len(seeds), budget)
            m = measure(repo, program, trial, run_dir / "train.py", hypothesis, budget, seed, unsafe)
            say(summary(m))
            if m["outcome"] != "ok":
                break
        (repo / RUNNING).unlink()
        return apply_verdict(repo, run_id, program)


def task_identity(repo: Path, task: config.Task) -> dict:
    """The task a result belongs to: program.md's metric, direction and evaluator, and the frozen data."""
    manifest = read_json(repo / "data" / "manifest.json") or {}
    return tasks.identity(task.metric, task.direction, task.evaluator, manifest.get("hash"))


def announce(repo: Path, trial_id: str, seed: int, of: int | None, budget: float) -> None:
    """runs/running.json: which trial runs now and since when, for the status line (of: None while unknown).
    A run that dies leaves it behind; the status line ignores it once the process that wrote it is gone."""
    write_json(repo / RUNNING, {"id": trial_id, "seed": seed, "of": of, "started": time.time(),
                                "budget_seconds": budget, "pid": os.getpid()})


def verdict_text(d: dict) -> str:
    """The verdict as the agent reads it (PostToolUse additionalContext and the terminal)."""
    lines = [
        f"[{d['id']}] VERDICT: {d['status'].upper()} ({d['outcome']}) {d['metric']} {value(d['mean'])} "
        f"over {len(d['values'])} seed(s), {d['direction']}",
        f"why: {d['reason']}",
    ]
    if d["best_id"]:
        lines.append(f"best before: {d['best_id']} at {value(d['best_mean'])}; delta {value(d['delta'])}, "
                     f"required {value(d['threshold'])}, spread {value(d['spread'])}")
    if d["status"] == "keep":
        lines.append(f"train.py: committed as {d['commit'][:10]}: this is the new best.")
    elif d["best_id"] is None:
        copy = f"; a copy is {d['diff_ref']}" if d["diff_ref"] else ""
        lines.append(f"train.py: left as it ran: no version is kept yet, so there is none to restore{copy}. "
                     "Fix it and run again: the first kept run is the baseline.")
    else:
        lines.append(f"train.py: restored to the best version ({d['commit'][:10]}); your candidate is kept as "
                     f"{d['diff_ref']} (git diff {d['commit'][:10]} {d['diff_ref']}).")
    if d["log_tail"]:
        lines.append("log tail:\n" + quoted(d["log_tail"]))
    lines.append(f"Now record {d['id']} in scratchpad.md (Experiment log: id | verdict | metric | change | lesson); "
                 f"the next ./run.sh is refused until scratchpad.md mentions {d['id']}.")
    return "\n".join(lines)
