"""One experiment: a candidate train.py measured in one or more trials, and its verdict applied.

`./run.sh` (commands/experiment.py) runs the candidate's first trial; when it is the baseline,
it runs more trials with seeds the harness chooses; when the noise rule finds it promising, it
runs the best's train.py beside it in interleaved pairs with one seed each (best, candidate,
best, ... as trials b1, s2, b2, ...), rerunning a pair whose compute differs (eval/verdict.py).
Then the verdict is applied, in steps that are each idempotent and recorded in
runs/<id>/verdict.json:
  1. decide (the rule: eval/verdict.py) against the best so far and write the decision;
  2. git: keep commits train.py, anything else stores it under a ref and restores the best;
  3. append the ledger row (a no-op if the id is there);  4. redraw progress.png;
  5. rewrite the morning report, runs/report.html;  6. mark the verdict applied.
A kill -9 anywhere leaves a state the next ./run.sh (or the PostToolUse hook) completes.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import os
import statistics
import time
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

from eval import config, leases, rules, verdict
from eval.record import history, ledger, morning, page, plot, tasks
from eval.record.runs import (
    ORIGIN,
    RUNNING,
    RUNS,
    VERDICT,
    experiment_ids,
    new_run_dir,
    origin,
    read_json,
    seed_dirs,
    trial_dir,
    write_json,
)
from eval.record.text import quoted, refusal, value
from eval.trial import Measure
from sandbox import devices
from sandbox.job import Lease

LOCK = ".lock"
SERIAL_WAIT_S = 120  # the longest wait for another experiment's verdict step (plot, report, git: seconds)
RUNNING_ALREADY = "another experiment is running in this repository; wait for its verdict"


class Busy(RuntimeError):
    """Another experiment holds the repository."""


class BadHypothesis(ValueError):
    """The hypothesis cannot go into commit messages and the ledger; the message names the fix."""


@contextmanager
def serial(repo: Path, wait_s: float = SERIAL_WAIT_S):
    """The repository's short critical sections, one at a time: taking a lease and an experiment id, recovery,
    applying a verdict (git, ledger, plot, report). Busy after wait_s (0: at once) of waiting."""
    (repo / RUNS).mkdir(exist_ok=True)
    deadline = time.monotonic() + wait_s
    with open(repo / RUNS / LOCK, "w") as f:
        while True:
            try:
                fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise Busy(RUNNING_ALREADY) from None
                time.sleep(0.05)
        yield


@contextmanager
def exclusive(repo: Path):
    """No experiment runs in this repository, and none starts meanwhile (the loop completes one cut short)."""
    with serial(repo, wait_s=0):
        if leases.holders(repo):
            raise Busy(RUNNING_ALREADY)
        yield


@contextmanager
def leased(repo: Path, program: config.Program, say=print, pool: list[Lease] | None = None):
    """A device slot of its own for a new experiment, and the experiment's id: (lease, id, dir, slots in the
    pool). Refused (Busy) while every slot is held: with one slot (the default), a second ./run.sh is refused,
    not queued. pool: the slots to lease from; by default this machine's (program.md's devices)."""
    pool = pool or devices.slots(program.devices.gpus, program.devices.cpu_slots)
    with serial(repo):
        held = leases.take(repo, pool)
        if held is None:
            running = ", ".join(f"{name}: {h.get('run', '?')}" for name, h in leases.holders(repo).items())
            raise Busy(RUNNING_ALREADY if len(pool) == 1 else
                       f"all {len(pool)} device slots are leased ({running}); wait for a verdict")
        try:
            recover(repo, say)
            if moved := tasks.switch(repo, task_identity(repo, program.task), ledger.read(repo)):
                say(moved)
            run_id, run_dir = new_run_dir(repo / RUNS)
            write_json(run_dir / ORIGIN, {"worktree": str(repo.resolve())})
            leases.claim(held, run_id, repo)
        except BaseException:
            leases.release(held)
            raise
    try:
        yield held.lease, run_id, run_dir, len(pool)
    finally:
        leases.release(held)


BEST_SOURCE = "best"  # runs/<id>/best/: the best's editable files, as its reruns beside the candidate ran them
GLOBAL_SOURCE = "global"  # runs/<id>/global/: the global best's editable files, as the keep's confirmation ran them
CONFIRM = "confirm.json"  # runs/<id>/confirm.json: a keep must be confirmed before it is promoted (confirms())
CONFIRM_ARMS = {"s": "k", "b": "g"}  # pair_rounds' arms -> the confirmation's: the candidate (k), the global best (g)
MORE_PAIRS = 1.0  # pairs run again for want of comparable compute, at most this fraction of verdict.seeds more


def seed_runs(run_dir: Path, arm: str = "s") -> list[dict]:
    """The metrics of every trial of one experiment, the first one first; arm "b": the best's reruns."""
    return [m for d in seed_dirs(run_dir, arm) if (m := read_json(d / "metrics.json")) is not None]


def best_samples(rows: list[dict], direction: str) -> tuple[dict | None, verdict.Samples | None]:
    best = ledger.best(rows, direction)
    if best is None:
        return None, None
    return best, verdict.Samples(tuple(best["values"]), tuple(best.get("models") or ()),
                                 tuple(best.get("value_cpu_seconds") or ()))


def compute(m: dict) -> float | None:
    """The compute a trial's budget bought: its CPU-seconds from the start marker to the stop signal (the
    start-up, importing torch, costs the same on a busy machine, only slower), else all of them (a run that
    ended before its budget)."""
    trained = m.get("trained_cpu_seconds")
    return trained if trained is not None else m.get("cpu_seconds")


def pairs_of(runs: list[dict], best_runs: list[dict], tolerance: float) -> list[dict]:
    """Each candidate trial matched with the earliest unmatched rerun of the best that got alike compute
    (its own round's first); a trial with no such partner is listed unmatched, and never counted."""
    free = [m for m in best_runs if m["outcome"] == "ok"]
    pairs = []
    for c in runs:
        rounds = sorted(free, key=lambda b: (b["seed"] != c["seed"], free.index(b)))
        b = next((b for b in rounds if c["outcome"] == "ok"
                  and verdict.comparable(compute(c), compute(b), tolerance)), None)
        if b is not None:
            free.remove(b)
        pairs.append({"candidate": c["id"], "best": b["id"] if b else None, "seed": c["seed"],
                      "values": [c["value"], b["value"] if b else None],
                      "cpu_seconds": [compute(c), compute(b) if b else None],
                      "comparable": b is not None})
    pairs += [{"candidate": None, "best": b["id"], "seed": b["seed"], "values": [None, b["value"]],
               "cpu_seconds": [None, compute(b)], "comparable": False} for b in free]
    return pairs


def judgement(task: config.Task, rule: config.VerdictRule, best: verdict.Samples | None, runs: list[dict],
              best_runs: list[dict], earlier: float | None) -> tuple[verdict.Verdict, list[dict], list[dict]]:
    """The verdict on the candidate's runs: beside the best's fresh reruns when there are any (paired), else
    against the best's stored runs. (verdict, the pairs, the candidate's runs it counted)."""
    if best_runs and runs:
        return paired_judgement(task, rule, best, runs, best_runs, earlier)
    outcome = next((m["outcome"] for m in runs if m["outcome"] != "ok"), "ok") if runs else "crash"
    counted = [m for m in runs if m["outcome"] == "ok"]
    v = verdict.judge(task.direction, rule, best, outcome, [m["value"] for m in counted], fallback_spread=earlier,
                      models=[m.get("model_sha256") for m in counted])
    return v, [], counted


def paired_judgement(task: config.Task, rule: config.VerdictRule, best: verdict.Samples | None, runs: list[dict],
                     best_runs: list[dict], earlier: float | None) -> tuple[verdict.Verdict, list[dict], list[dict]]:
    """The verdict on the comparable pairs, at the partners' compute where the metric follows compute
    (verdict.at_partners_compute): (verdict, the pairs, the candidate's runs it counted). best: the best's
    stored runs, which show how its metric moves with compute."""
    pairs = pairs_of(runs, best_runs, rule.compute_tolerance)
    used = [p for p in pairs if p["comparable"]]
    failed = next((m for m in runs if m["outcome"] != "ok"), None)
    if failed is not None:
        return verdict.judge(task.direction, rule, None, failed["outcome"], []), pairs, []
    best_failed = next((m for m in best_runs if m["outcome"] != "ok"), None)
    if best_failed is not None or not used:
        why = (f"the best's rerun {best_failed['id']} ended {best_failed['outcome']}" if best_failed else
               f"no pair got comparable compute (CPU-seconds within {rule.compute_tolerance:.0%}: "
               + ", ".join(cpu(p["cpu_seconds"][0] if p["candidate"] else p["cpu_seconds"][1]) for p in pairs) + ")")
        return verdict.Verdict("discard", f"discarded: not judged, {why}: the machine, not the change, "
                               "was measured; try it again"), pairs, []
    counted = {p["candidate"] for p in used}
    mine = [m for m in runs if m["id"] in counted]
    theirs = {m["id"]: m for m in best_runs}
    fresh = verdict.Samples(tuple(p["values"][1] for p in used),
                            tuple(theirs[p["best"]].get("model_sha256") for p in used))
    values = [p["values"][0] for p in used]
    models = [m.get("model_sha256") for m in mine]
    cpu_used = [c for p in used for c in p["cpu_seconds"]]
    across = rule.rule == "noise" and len(used) > 1 and fresh.draws == len(used) and \
        verdict.draws(values, models) == len(used) and None not in cpu_used and \
        not verdict.comparable(min(cpu_used), max(cpu_used), rule.compute_tolerance)

    def judged(vals: list[float]) -> verdict.Verdict:
        """The pairs' differences when they span unlike compute (verdict.judge_pairs), else the two groups."""
        return verdict.judge_pairs(task.direction, rule, fresh.values, vals) if across else \
            verdict.judge(task.direction, rule, fresh, "ok", vals, fallback_spread=earlier, models=models)

    v = judged(values)
    gaps = [p["cpu_seconds"][0] - p["cpu_seconds"][1] for p in used if None not in p["cpu_seconds"]]
    moved = verdict.at_partners_compute(task.direction, runs_by_version(best, runs, best_runs), values, gaps) \
        if len(gaps) == len(used) else None
    if moved is not None:
        at = judged(moved[0])
        more = statistics.fmean(gaps) / statistics.fmean(p["cpu_seconds"][1] for p in used)
        v = dataclasses.replace(at, mean=v.mean, reason=(
            f"{at.reason}; judged at its partners' compute: its runs got {more:+.1%} CPU-seconds, and this "
            f"metric moves {verdict.num(moved[1])} per CPU-second (the best's runs), so its values count as "
            f"{', '.join(verdict.num(x) for x in moved[0])} (as measured: {verdict.num(v.mean)})"))
    return v, pairs, mine


def runs_by_version(best: verdict.Samples | None, runs: list[dict], best_runs: list[dict]) -> list[list[tuple]]:
    """(CPU-seconds, value) of every measured run: the best's (stored and rerun), the candidate's."""
    stored = list(zip(best.cpu_seconds, best.values, strict=True)) \
        if best is not None and len(best.cpu_seconds) == best.n else []
    ran = [[(compute(m), m["value"]) for m in side if m["outcome"] == "ok"] for side in (best_runs, runs)]
    return [[(c, v) for c, v in side if c is not None] for side in (stored + ran[0], ran[1])]


def confirms(rule: config.VerdictRule, slots: int) -> bool:
    """Whether a keep must be confirmed on fresh pairs before it is promoted: N candidates judged at once give
    N chances of a false keep (8 at once: one family in five keeps one that is no better), two independent
    checks about the square of one's (1.9%: benchmarks/bench_parallel.py)."""
    return rule.rule == "noise" and (rule.confirm == "always" or rule.confirm == "auto" and slots > 1)


def promoted(first: verdict.Verdict, check: verdict.Verdict, against: str) -> verdict.Verdict:
    """A keep on its first runs stays one only if the fresh pairs beside the global best keep it too."""
    if check.status == "keep":
        return dataclasses.replace(first, reason=f"{first.reason}; confirmed beside fresh runs of the global best "
                                                 f"{against}: {check.reason}")
    return not_promoted(first, f"not confirmed beside fresh runs of the global best {against} ({check.reason})")


def not_promoted(first: verdict.Verdict, why: str) -> verdict.Verdict:
    return dataclasses.replace(first, status="discard", reason=f"discarded: {why}; its first runs: {first.reason}")


def confirmation(task: config.Task, rule: config.VerdictRule, first: verdict.Verdict, run_dir: Path,
                 best_row: dict | None, earlier: float | None) -> tuple[verdict.Verdict, dict | None]:
    """The verdict once the keep's confirmation (if one was required) is counted, and what that found."""
    c = read_json(run_dir / CONFIRM)
    if c is None or first.status != "keep" or best_row is None:
        return first, None
    if not c.get("done"):
        return not_promoted(first, "its confirmation beside the global best did not finish (the harness was "
                                   "stopped)"), c
    if c["best_id"] != best_row["id"]:
        return not_promoted(first, f"{best_row['id']} became the global best while it was confirmed beside "
                                   f"{c['best_id']}: try it again on the new best"), c
    check, pairs, _ = judgement(task, rule, None, seed_runs(run_dir, "k"), seed_runs(run_dir, "g"), earlier)
    return promoted(first, check, c["best_id"]), {**c, "status": check.status, "reason": check.reason,
                                                  "pairs": pairs}


def earlier_spread(rows: list[dict]) -> float | None:
    """The seed spread pooled over earlier experiments: for a verdict whose sides measure none."""
    return verdict.pooled_spread([verdict.Samples(tuple(r["values"]), tuple(r.get("models") or ()))
                                  for r in rows if r.get("values") and None not in r["values"]])


def decide(repo: Path, run_id: str, program: config.Program) -> dict:
    """Judge the experiment's seeds against the best so far; the decision, as written to verdict.json."""
    task = program.task
    run_dir = repo / RUNS / run_id
    runs, best_runs = seed_runs(run_dir), seed_runs(run_dir, "b")
    checks = seed_runs(run_dir, "k") + seed_runs(run_dir, "g")
    rows = [r for r in ledger.read(repo) if r["id"] != run_id]
    best_row, best = best_samples(rows, task.direction)
    outcome = next((m["outcome"] for m in runs if m["outcome"] != "ok"), "ok") if runs else "crash"
    earlier = earlier_spread(rows)
    v, pairs, counted = judgement(task, program.verdict, best, runs, best_runs, earlier)
    v, checked = confirmation(task, program.verdict, v, run_dir, best_row, earlier)
    fresh = [p["values"][1] for p in pairs if p["comparable"]]  # the best's reruns it was judged against
    values = [m["value"] for m in counted]
    first = runs[0] if runs else {}
    reason = v.reason if runs else "interrupted: the run left no metrics (the harness was stopped mid-run)"
    return {
        "id": run_id,
        "status": v.status,
        "outcome": outcome,
        "metric": task.metric,
        "direction": task.direction,
        "values": values,
        "seeds": [m["seed"] for m in counted] if counted else [m["seed"] for m in runs],
        "models": [m.get("model_sha256") for m in counted],
        "value_cpu_seconds": [compute(m) for m in counted],
        "mean": v.mean,
        "spread": v.spread,
        "delta": v.delta,
        "threshold": v.threshold,
        "reason": reason,
        "rule": program.verdict.rule,
        "best_id": best_row["id"] if best_row else None,
        "best_mean": statistics.fmean(fresh) if fresh else best_row["mean"] if best_row else None,  # judged against
        "paired": bool(pairs),
        "pairs": pairs,
        "best_values": fresh,
        "confirmation": checked,
        "runs": len(runs) + len(best_runs) + len(checks),
        "compute": [compute_of(m) for m in runs + best_runs + checks],
        "hypothesis": first.get("hypothesis", ""),
        "phase": program.current_phase.name,
        "branch": history.branch(repo),  # which worker (./run.sh loop --workers): its branch, its worktree
        "worktree": str(repo.resolve()),
        "peak_memory_mb": first.get("peak_memory_mb"),
        "total_seconds": sum(m.get("total_seconds", 0) for m in runs + best_runs + checks),
        "log_tail": "" if outcome == "ok" else (runs[-1].get("log_tail", "") if runs else ""),
        "applied": False,
    }


def compute_of(m: dict) -> dict:
    """What one trial got, as the verdict, the ledger and the status show it."""
    return {"id": m["id"], "cpu_seconds": m.get("cpu_seconds"), "trained_cpu_seconds": m.get("trained_cpu_seconds"),
            "training_seconds": m.get("training_seconds"),
            "host_other_load": m.get("host_other_load"), "gpu": m.get("gpu"),
            "gpu_busy_seconds": m.get("gpu_busy_seconds"),
            "lease": (m.get("lease") or {}).get("name"),
            "steps": (m.get("reported") or {}).get("steps")}


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
    d["followed"] = follow_best(repo, program.task)
    plot.draw(repo, ledger.read(repo), d["metric"], d["direction"])
    write_report(repo, program)
    d["applied"] = True
    write_json(path, d)
    return d


def follow_best(repo: Path, task: config.Task) -> dict | None:
    """The rule that keeps workers on one best: after each verdict, a branch that does not hold the global
    best (the ledger's latest keep, made on another worker's branch) commits its editable files on top and
    restores them to it, so the next candidate starts from it and is judged against it. What it followed,
    or None."""
    best = ledger.best(ledger.read(repo), task.direction)
    if best is None or not best.get("commit"):
        return None
    sha = history.follow(repo, best["id"], best["commit"], best.get("branch") or "another branch", task.editable)
    return None if sha is None else {"id": best["id"], "branch": best.get("branch"), "commit": sha}


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
    """Finish what a killed harness left: its containers, a torn ledger line, unapplied verdicts. Experiments
    still running (a held lease names them) are left alone. Call it under the serial lock."""
    from sandbox.backends import remove_leftovers  # the sandbox stack: only runs need it

    live = leases.live_runs(repo)
    spare = tuple(str((repo / RUNS / i).resolve()) for i in live)
    for name in remove_leftovers(str((repo / RUNS).resolve()) + "/", spare):
        say(f"removed the container {name} left running by an interrupted experiment")
    ledger.repair(repo)
    for run_id in pending(repo):
        if run_id not in live:
            say(f"[{run_id}] completing the verdict of an interrupted experiment")
            apply_verdict(origin(repo, run_id), run_id)  # in the checkout that ran it: its branch, its train.py


def run_experiment(repo: Path, hypothesis: str, budget: float | None, unsafe: bool, say=print,
                   measure: Measure | None = None, pool: list[Lease] | None = None) -> dict:
    """Run one experiment (extra trials where needed) and apply its verdict.

    measure: how each trial is measured; the sandbox (eval/trial.py) unless a replay serves recordings or a
    Ray cluster runs them (eval/remote.py). pool: the slots it leases one of (leased); a cluster's, with Ray.
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
    with leased(repo, program, say, pool) as (lease, run_id, run_dir, slots):
        rows = ledger.read(repo)
        _, best = best_samples(rows, task.direction)
        sources = {"s": run_dir / "train.py", "k": run_dir / "train.py", "b": run_dir / BEST_SOURCE / "train.py",
                   "g": run_dir / GLOBAL_SOURCE / "train.py"}
        confirm = best is not None and confirms(rule, slots)
        if confirm:  # from the start: a keep whose confirmation never ended is not promoted (recovery included)
            write_json(run_dir / CONFIRM, {"best_id": None, "done": False})

        def trial(arm: str, k: int, seed: int) -> dict:
            """Trial k of the candidate (arm s; k in its confirmation), of the best's rerun (b) or of the global
            best's beside the confirmation (g), measured and summarised."""
            if arm == "s" and k == 1:
                where, source = (run_id, run_dir), repo / task.train_file
                announce(repo, run_id, 1, rule.seeds if best is None and rule.rule == "noise" else None, budget)
            else:
                where, source = trial_dir(run_dir, k, arm), sources[arm]
                where[1].mkdir()
                announce(repo, where[0], k, None, budget)
            if arm == "b" and not source.exists():
                history.write_version(repo, "HEAD", task.editable, source.parent)
            m = measure(repo, program, where, source, hypothesis, budget, seed, unsafe, lease=lease)
            say(summary(m))
            return m

        seeds = verdict.harness_seeds(task.seed, rule.seeds + int(MORE_PAIRS * rule.seeds), run_id)

        def tell(line: str) -> None:
            say(f"[{run_id}] {line}")

        try:
            ran = candidate_runs(rule, task.direction, best, seeds, trial, tell)
        except BaseException:
            with contextlib.suppress(OSError):
                if {p.name for p in run_dir.iterdir()} <= {CONFIRM, ORIGIN}:  # nothing ran (no sandbox, no data):
                    for name in (CONFIRM, ORIGIN):  # there is nothing to judge
                        (run_dir / name).unlink(missing_ok=True)
                    run_dir.rmdir()
            raise
        if confirm and judgement(task, rule, best, ran["s"], ran["b"], earlier_spread(rows))[0].status == "keep":
            confirm_keep(repo, program, run_id, trial, tell)
        (repo / RUNNING).unlink(missing_ok=True)  # a parallel experiment may have ended first
        with serial(repo):
            return apply_verdict(repo, run_id, program)


def confirm_keep(repo: Path, program: config.Program, run_id: str, trial, say) -> None:
    """A provisional keep, run again beside fresh runs of the global best (interleaved pairs, fresh seeds) before
    decide() may promote it; runs/<id>/confirm.json records against which best, and that it ended."""
    task, rule, run_dir = program.task, program.verdict, repo / RUNS / run_id
    best_row = ledger.best(ledger.read(repo), task.direction)
    history.write_version(repo, best_row["commit"], program.task.editable, run_dir / GLOBAL_SOURCE)
    c = {"best_id": best_row["id"], "commit": best_row["commit"], "done": False}
    write_json(run_dir / CONFIRM, c)
    say(f"kept on its first runs; confirmed beside fresh runs of the global best {best_row['id']} before it is "
        "promoted (several candidates are judged at once)")
    seeds = verdict.harness_seeds(task.seed, rule.seeds + int(MORE_PAIRS * rule.seeds), f"{run_id}/confirm")
    pair_rounds(rule, [], seeds, lambda arm, k, seed: trial(CONFIRM_ARMS[arm], k, seed), say)
    write_json(run_dir / CONFIRM, {**c, "done": True})


def candidate_runs(rule: config.VerdictRule, direction: str, best: verdict.Samples | None, seeds: list[int],
                   trial, say=lambda _: None) -> dict[str, list[dict]]:
    """Which trials one candidate gets, run through trial(arm, k, seed) -> metrics: its first; more seeds for
    the baseline and for a promising candidate; fresh runs of the best beside it when needs_pairs. Returns the
    runs by arm ("s" the candidate, "b" the best)."""
    runs = [trial("s", 1, seeds[0])]
    first = runs[0]
    if first["outcome"] != "ok" or rule.rule != "noise":
        return {"s": runs, "b": []}
    screen = best.alike(compute(first), rule.compute_tolerance) if best and rule.paired != "never" \
        else best
    if best is not None and not verdict.promising(direction, rule, screen, first["value"], best.spread):
        return {"s": runs, "b": []}
    if best is None or not needs_pairs(rule, best, runs):
        for k, seed in enumerate(seeds[1:rule.seeds], start=2):
            say(f"{'baseline' if best is None else 'promising'}: seed {k} of {rule.seeds} ({seed})")
            runs.append(trial("s", k, seed))
            if runs[-1]["outcome"] != "ok":
                return {"s": runs, "b": []}
        if best is None or not needs_pairs(rule, best, runs):
            return {"s": runs, "b": []}
    say("promising, but its runs and the best's stored ones got unlike compute (or a GPU): measured beside fresh "
        "runs of the best")
    return pair_rounds(rule, runs, seeds, trial, say)


def needs_pairs(rule: config.VerdictRule, best: verdict.Samples, runs: list[dict]) -> bool:
    """Whether the candidate's runs must be judged beside fresh runs of the best (verdict.paired): always; or,
    on auto, unless every run it made and every stored run of the best got alike compute, on the CPU."""
    if rule.rule != "noise" or rule.paired == "never":
        return False
    if rule.paired == "always" or any(m.get("gpu") for m in runs):  # a GPU's share is not measured
        return True
    cpu = [compute(m) for m in runs]
    if None in cpu:  # a replayed recording: the sandbox always measures it
        return False
    if len(best.cpu_seconds) != best.n or None in best.cpu_seconds:  # a best from before compute was recorded
        return True
    return not all(verdict.comparable(c, b, rule.compute_tolerance) for c in cpu for b in best.cpu_seconds)


def pair_rounds(rule: config.VerdictRule, runs: list[dict], seeds: list[int], trial, say=lambda _: None) -> dict:
    """Rounds of one seed each, in alternating order (b1 beside the first trial, then b2 s2, s3 b3, ...; a
    candidate trial already run keeps its place), until rule.seeds pairs got alike compute (pairs_of) or the
    seeds run out; any run that fails ends it.

    runs: the candidate's trials so far. trial(arm, k, seed) -> metrics runs one: arm "s" the candidate,
    "b" the best. Returns the runs by arm.
    """
    ran: dict[str, list[dict]] = {"s": list(runs), "b": []}
    for k, seed in enumerate(seeds, start=1):
        for arm in ("b", "s") if k % 2 == 0 else ("s", "b"):
            if arm == "s" and len(ran["s"]) >= k:
                continue
            ran[arm].append(trial(arm, k, seed))
            if ran[arm][-1]["outcome"] != "ok":
                return ran
        matched = sum(p["comparable"] for p in pairs_of(ran["s"], ran["b"], rule.compute_tolerance))
        if matched >= rule.seeds:
            return ran
        if matched < k:
            say(f"round {k}: CPU-seconds {compute(ran['s'][k - 1])} vs {compute(ran['b'][-1])}: "
                f"{matched} of {k} rounds got alike compute (within {rule.compute_tolerance:.0%}); the machine "
                "changed, one more round")
    return ran


def task_identity(repo: Path, task: config.Task) -> dict:
    """The task a result belongs to: program.md's metric, direction and evaluator, and the frozen data."""
    manifest = read_json(repo / "data" / "manifest.json") or {}
    return tasks.identity(task.metric, task.direction, task.evaluator, manifest.get("hash"))


def announce(repo: Path, trial_id: str, seed: int, of: int | None, budget: float) -> None:
    """runs/running.json: which trial runs now and since when, for the status line (of: None while unknown).
    A run that dies leaves it behind; the status line ignores it once the process that wrote it is gone."""
    write_json(repo / RUNNING, {"id": trial_id, "seed": seed, "of": of, "started": time.time(),
                                "budget_seconds": budget, "pid": os.getpid()})


def cpu(seconds: float | None) -> str:
    return "unknown" if seconds is None else f"{seconds:.1f}s"


def pair_text(p: dict) -> str:
    if p["comparable"]:
        return f"{p['candidate']} vs {p['best']} (CPU {cpu(p['cpu_seconds'][0])} vs {cpu(p['cpu_seconds'][1])})"
    alone = 0 if p["candidate"] else 1
    return f"{p['candidate'] or p['best']} (CPU {cpu(p['cpu_seconds'][alone])}) unmatched"


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
    if d.get("pairs"):
        lines.append(f"compared beside fresh runs of the best, {d['runs']} runs in all: "
                     + "; ".join(pair_text(p) for p in d["pairs"]))
    elif d.get("compute"):
        lines.append("compute: " + "; ".join(f"{c['id']} CPU {cpu(compute(c))}" for c in d["compute"])
                     + "".join(sorted({f" (device slot {c['lease']})" for c in d["compute"] if c.get("lease")})))
    on_gpu = [c for c in d.get("compute") or () if c.get("gpu")]
    if on_gpu:
        lines.append("GPU: " + "; ".join(f"{c['id']} {c['gpu']}, busy {cpu(c.get('gpu_busy_seconds'))}"
                                         for c in on_gpu))
    if d["status"] == "keep":
        lines.append(f"train.py: committed as {d['commit'][:10]}: this is the new best.")
    elif d["best_id"] is None:
        copy = f"; a copy is {d['diff_ref']}" if d["diff_ref"] else ""
        lines.append(f"train.py: left as it ran: no version is kept yet, so there is none to restore{copy}. "
                     "Fix it and run again: the first kept run is the baseline.")
    else:
        lines.append(f"train.py: restored to the best version ({d['commit'][:10]}); your candidate is kept as "
                     f"{d['diff_ref']} (git diff {d['commit'][:10]} {d['diff_ref']}).")
    if d.get("followed"):
        f = d["followed"]
        lines.append(f"another worker's keep {f['id']} (branch {f['branch']}) is the global best: train.py is now "
                     f"its version, committed on your branch as {f['commit'][:10]}; build on it.")
    if d["log_tail"]:
        lines.append("log tail:\n" + quoted(d["log_tail"]))
    lines.append(f"Now record {d['id']} in scratchpad.md (Experiment log: id | verdict | metric | change | lesson); "
                 f"the next ./run.sh is refused until scratchpad.md mentions {d['id']}.")
    return "\n".join(lines)
