"""`./run.sh check`: a dry run of seconds, outside the ledger, that says what a real run would trip over.

A real run costs the budget and its verdict goes into the ledger; a missing module, an export
slower than the grace or a model the evaluator refuses should cost seconds instead. The check
trains the editable files as a run would (the same sandbox, mounts, masks and launcher) for a
few seconds, measures the start-up and the export against the time a run allows, and hands the
exported program to the task's evaluator on a sample of the TRAINING split, never the held-out
ones. It prints no metric: the agent may call it, and it learns only whether the run would work.
Its files are in runs/check/ (no experiment id: recovery, the ledger and git never see it).
"""

from __future__ import annotations

import argparse
import math
import re
import secrets
import shutil
import sys
from dataclasses import dataclass, replace
from pathlib import Path

from eval import config, heldout
from eval.clock import START_CAP_S, Clock
from eval.data import ARTIFACTS, DataError, load_manifest
from eval.record.logsink import LogSink
from eval.record.runs import RUNS
from eval.record.text import quoted, visible
from eval.trial import (
    kept_result,
    parse_score,
    project_code,
    read_reported,
    score_job,
    snapshot,
    training_job,
)
from sandbox.job import Mount

CHECK_DIR = RUNS / "check"
BUDGET_S = 5.0  # a few steps: long enough to reach the training loop, short enough to call often
SAMPLE_BYTES = 16 * 1024  # of the training split, for the evaluator (cut at a line end: CSV rows stay whole)
TIGHT = 0.5  # an export using more than this share of the grace is flagged: a loaded machine is slower
MISSING = re.compile(r"ModuleNotFoundError: No module named '([\w.]+)'")


@dataclass(frozen=True)
class Finding:
    ok: bool  # False: a real run would fail here
    what: str  # one line; a failed or warned finding names its fix
    warn: bool = False  # it works here, with little room (a loaded machine is slower)


def sample(train: Path, out: Path) -> Path:
    """The first SAMPLE_BYTES of the training split, ending at a line end when it has one."""
    blob = train.read_bytes()[:SAMPLE_BYTES]
    if len(blob) == SAMPLE_BYTES and b"\n" in blob:
        blob = blob[: blob.rindex(b"\n") + 1]
    out.write_bytes(blob)
    return out


def missing_module(repo: Path, log: str) -> Finding | None:
    """A module train.py imports that the sandbox lacks: the project's own (declare it in task.code) or a package."""
    found = MISSING.search(log)
    if not found:
        return None
    top = found.group(1).split(".")[0]
    own = [p for p in (f"{top}.py", top) if (repo / p).exists()]
    if own:
        return Finding(False, f"imports: train.py imports {top}, which is {own[0]} in the repository but not in the "
                              f"sandbox: add it to task.code in program.md (code: [{own[0]}])")
    return Finding(False, f"imports: train.py imports {top}, which the sandbox's Python lacks: install it into "
                          ".venv (the sandbox mounts it read-only) or drop the import")


def timing(clock: Clock, result, grace: float) -> list[Finding]:
    """The start-up against its cap, and the export (stop signal to exit) against task.grace_seconds."""
    found = []
    startup = clock.startup_seconds()
    if startup is not None:
        slow = startup >= TIGHT * START_CAP_S
        loaded = ": the machine is loaded; runs may fail to start" if slow else ""
        found.append(Finding(True, f"start-up: torch imported in {startup:.1f} s (the cap is {START_CAP_S:g} s; not "
                                   f"in the budget){loaded}", warn=slow))
    export = clock.after_stop_seconds(result)
    if export is None:
        found.append(Finding(True, f"export: train.py ended before the stop signal at {clock.budget:g} s, so the "
                                   "export time is not measured (a run's stop comes at the budget)"))
        return found
    need = math.ceil(export / TIGHT)
    if export > grace:
        found.append(Finding(False, f"export: {export:.1f} s from the stop signal to the exit, more than "
                                    f"task.grace_seconds {grace:g}: a run would be killed before its model is saved. "
                                    f"Set grace_seconds: {need} in program.md, or export a smaller model"))
    else:
        tight = export > TIGHT * grace
        found.append(Finding(True, f"export: {export:.1f} s from the stop signal to the exit, within "
                                   f"task.grace_seconds {grace:g}" + (f", but tight: a loaded machine is slower; "
                                   f"grace_seconds: {need} in program.md leaves room" if tight else ""), warn=tight))
    return found


def check(repo: Path, budget: float = BUDGET_S, say=print) -> int:
    """Run the dry run; 0 when a real run would get as far as a score, 1 otherwise (2: cannot check)."""
    from eval.experiment import exclusive  # the run lock: a check beside a run would take its CPU
    from sandbox.backends import select_backend

    program = config.load(repo / "program.md")
    task, data_dir = program.task, repo / "data"
    manifest = load_manifest(data_dir)
    backend = select_backend()
    masks = heldout.ensure(data_dir, manifest, backend, say, project_code(repo, task))
    with exclusive(repo):
        run_dir = repo / CHECK_DIR
        shutil.rmtree(run_dir, ignore_errors=True)
        run_dir.mkdir(parents=True)
        snapshot(task, repo, run_dir)
        say(f"[check] training {', '.join(task.editable)} for {budget:g} s in the {backend.name} sandbox "
            f"(outside the ledger; output in {CHECK_DIR}/train.log)")
        # the kill comes late, so that an export slower than the grace is measured, not cut
        clock, sink = Clock(budget, max(3 * task.grace_seconds, 60)), LogSink(run_dir / "train.log")
        job = replace(training_job(program, run_dir, data_dir, budget, task.seed, masks, repo),
                      timeout_s=START_CAP_S + budget + clock.grace)
        try:
            result = backend.run(job, clock.watch(sink), clock.started)
        finally:
            clock.finish()
            sink.close()
        log = sink.tail_text()
        findings = training_findings(repo, clock, result, log, task.grace_seconds, run_dir)
        if result.exit_code == 0 and (run_dir / "out" / "model.pt2").is_file():
            findings.append(evaluate(program, data_dir, run_dir, backend, say))
    for f in findings:
        say(f"  {'FAIL' if not f.ok else 'WARN' if f.warn else 'ok  '}  {f.what}")
    failed = [f for f in findings if not f.ok]
    if failed and not any(f.what.startswith("imports") for f in failed) and result.exit_code != 0:
        say("log tail:\n" + quoted(log))
    say("[check] " + ("passed: a run would train, export and be scored" if not failed else
                      f"{len(failed)} problem(s): fix them before ./run.sh"))
    return 1 if failed else 0


def training_findings(repo: Path, clock: Clock, result, log: str, grace: float, run_dir: Path) -> list[Finding]:
    if clock.startup_seconds() is None:
        return [Finding(False, "start-up: the harness's launcher did not start train.py (importing torch failed)")]
    if (missing := missing_module(repo, log)) is not None:
        return [missing]
    found = [Finding(True, "imports: train.py and its modules import in the sandbox")] if result.exit_code == 0 \
        else [Finding(False, f"training: train.py exited with status {result.exit_code} (log tail below)")]
    steps = read_reported(run_dir / "out").get("steps")
    if result.exit_code == 0:
        found.append(Finding(True, f"training: ran {clock.training_seconds(result):.1f} s"
                                   + (f", {steps} steps (reported)" if steps is not None else "")))
    found += timing(clock, result, grace)
    if result.exit_code == 0 and not (run_dir / "out" / "model.pt2").is_file():
        found.append(Finding(False, "export: train.py left no $AUTORESEARCH_OUT/model.pt2 (torch.export.save)"))
    return found


def evaluate(program: config.Program, data_dir: Path, run_dir: Path, backend, say) -> Finding:
    """The task's evaluator on the exported program and a sample of the training split; only ok or why not."""
    say(f"[check] scoring the exported model on a {SAMPLE_BYTES // 1024} KB sample of the training split "
        f"({program.task.evaluator}; no figure is shown)")
    token = secrets.token_hex(16)
    split = sample(data_dir / "train.bin", run_dir / "train-sample.bin")
    output = bytearray()
    job = score_job(program, split, Mount(run_dir / "out" / "model.pt2", "/in/model.pt2"), run_dir,
                    program.limits.score_seconds + 60, token, artifacts=data_dir / ARTIFACTS)
    backend.run(job, output.extend)
    score = parse_score(bytes(output), token)
    if score is None:
        tail = visible(bytes(output[-300:]).decode("utf-8", "replace"), keep="")
        return Finding(False, f"evaluator: the scorer gave no result: ...{tail}")
    score = kept_result(score)
    if not score.get("ok"):
        return Finding(False, f"evaluator: the exported model was rejected: {score.get('error')}")
    params = score.get("parameters")
    return Finding(bool(score.get("finite")), "evaluator: accepted the exported model" +
                   (f" ({params:,} parameters)" if isinstance(params, int) else "") +
                   ("" if score.get("finite") else ", but its outputs hold NaN or inf"))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="./run.sh check", description=__doc__.splitlines()[0])
    ap.add_argument("--budget", type=float, default=BUDGET_S, help=f"seconds of training (default {BUDGET_S:g})")
    args = ap.parse_args(argv)
    from eval.experiment import Busy
    from sandbox.job import SandboxUnavailable

    try:
        return check(Path.cwd(), args.budget)
    except (config.ConfigError, DataError, Busy, SandboxUnavailable) as e:
        print(f"check: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
