"""One trial: train one snapshot of train.py with one seed in the sandbox, score it in another.

An experiment (eval/experiment.py) is one or more trials of the same train.py with seeds the
harness chooses. Only the harness writes runs/<id>/metrics.json: what train.py prints or
leaves in its output dir is kept for reading, never for the score. The scorer's own output
(it read the validation split) goes to runs/scorer/, which the guard seals; the run dir gets
only what the harness makes of it: score.json, flat fields of the parsed result, the error capped.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import secrets
import shutil
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Protocol

from eval import compute, config, heldout
from eval.clock import START_CAP_S, Clock
from eval.data import ARTIFACTS as ARTIFACTS_DIR  # in data/: what prepare built from the training split
from eval.data import load_manifest
from eval.record import metrics as metrics_file
from eval.record.logsink import LogSink
from eval.record.runs import RUNS, SCORE, atomic_write, new_run_dir, scorer_log, trial_path, write_json
from eval.record.text import quoted
from eval.scoring.score import MARKER
from sandbox.backends import select_backend
from sandbox.gpu import has_gpu
from sandbox.heartbeat import Heartbeat
from sandbox.job import SANDBOX_ENV, Control, Job, Lease, Mask, Mount, Result, SandboxFailed
from sandbox.runtime import python_executable

REPORTED_KEYS = {"steps": int, "tokens": int, "tokens_per_second": float, "peak_vram_mb": float,
                 "training_seconds": float, "final_loss": float}
# train.py's own logs stay in /out (kept as runs/<id>/out/): W&B writes offline there instead of trying the
# network it does not have; TensorBoard's SummaryWriter writes under the working dir, /out, by itself.
OWN_LOGS_ENV = {"WANDB_MODE": "offline", "WANDB_DIR": "/out"}
HARNESS = Path(__file__).resolve().parent.parent  # the repository the harness runs from
FEW_CORES = 4  # up to this many, the scorer starts at the stop signal (its warm-up would compete with training)
LAUNCHER = HARNESS / "sandbox" / "launch.py"  # runs train.py once torch is imported (eval/clock.py)
ERROR_CAP = 1000  # characters of the scorer's error that reach the agent (the reason, score.json)
KEPT_NAME = 64  # the longest key or string of the scorer's result kept in score.json (a metric's name)
KEPT_LIST = 1000  # the longest list of numbers kept (per-fold values)
CODE = "/code"  # where train.py, the other editable files and task.code are, at their relative paths
ARTIFACTS = "/data/artifacts"  # where training and scoring see them, read-only


class Measure(Protocol):
    """How a trial is measured: in the sandbox (run_trial), or from a recording (replay/recorded.py)."""

    def __call__(self, repo: Path, program: config.Program, trial: tuple[str, Path], source: Path,
                 hypothesis: str, budget: float, seed: int, unsafe: bool = False,
                 lease: Lease | None = None) -> dict: ...


def uses_gpu(lease: Lease | None) -> bool:
    """The job gets a GPU: its slot's, or (no lease) any this host has."""
    return has_gpu() if lease is None else bool(lease.gpus)


def training_job(program: config.Program, run_dir: Path, data_dir: Path, budget: float, seed: int,
                 masks: tuple[Mask, ...] | None = None, repo: Path | None = None, lease: Lease | None = None) -> Job:
    """train.py behind the harness's launcher; the clock (eval/clock.py) stops it, timeout_s is the backstop.
    masks: what to hide (heldout.ensure's answer); by default, everything the manifest says is held out.
    repo: where task.code is read from (by default data_dir's parent, the repository).
    lease: the device slot it runs on (eval/leases.py); None: the whole machine."""
    task, repo = program.task, repo or data_dir.parent
    code = code_mounts(repo, task, run_dir)
    manifest = load_manifest(data_dir)
    return Job(
        argv=[python_executable(), "/harness/launch.py", "/code/train.py"],
        mounts=[Mount(run_dir / "train.py", "/code/train.py"), Mount(data_dir / "train.bin", heldout.TRAIN_DATA),
                Mount(LAUNCHER, "/harness/launch.py"), *artifact_mounts(data_dir, manifest), *code[1:]],
        env={**SANDBOX_ENV, **OWN_LOGS_ENV, "AUTORESEARCH_SEED": str(seed), "AUTORESEARCH_BUDGET_S": str(budget),
             "AUTORESEARCH_DATA": heldout.TRAIN_DATA, "AUTORESEARCH_OUT": "/out",
             **({"AUTORESEARCH_ARTIFACTS": ARTIFACTS} if manifest.get("artifacts") else {}),
             **({"AUTORESEARCH_SEQ_LEN": str(task.options["seq_len"])} if "seq_len" in task.options else {}),
             **({"AUTORESEARCH_CPU_BUDGET_S": str(task.cpu_budget_seconds)} if task.cpu_budget_seconds else {})},
        timeout_s=START_CAP_S + budget + task.grace_seconds,
        limits=program.limits,
        out_dir=run_dir / "out",
        workdir="/out",
        gpu=uses_gpu(lease),
        owner=str(run_dir.resolve()),
        masks=heldout.masks(manifest, heldout.shown(project_code(repo, task))) if masks is None else masks,
        lease=lease,
    )


def code_mounts(repo: Path, task: config.Task, run_dir: Path) -> list[Mount]:
    """The code a run sees at /code: the editable files from the run's snapshot (train.py first), then
    task.code read-only from the repository, each at its relative path, so train.py imports them."""
    editable = ["train.py", *(rel for rel in task.editable if rel != "train.py")]
    return [*(Mount(run_dir / rel, f"{CODE}/{rel}") for rel in editable), *project_code(repo, task)]


def project_code(repo: Path, task: config.Task) -> list[Mount]:
    """task.code: the project's own modules and folders, read-only, beside train.py (the agent cannot edit them)."""
    return [Mount(repo / rel, f"{CODE}/{rel}") for rel in task.code]


def artifact_mounts(data_dir: Path, manifest: dict) -> list[Mount]:
    """The frozen artifacts built from the training split (a vocabulary), read-only, when the data has them."""
    return [Mount(data_dir / ARTIFACTS_DIR, ARTIFACTS)] if manifest.get("artifacts") else []


def snapshot(task: config.Task, source_dir: Path, run_dir: Path) -> None:
    """Copy the editable files as they are now into the run dir: what ran is what is kept or discarded."""
    if missing := [rel for rel in task.editable if not (source_dir / rel).is_file()]:
        raise config.ConfigError(f"program.md: task.editable names {', '.join(missing)}, not a file in {source_dir}")
    for rel in task.editable:
        (run_dir / rel).parent.mkdir(parents=True, exist_ok=True)
        if (source_dir / rel).resolve() != (run_dir / rel).resolve():
            shutil.copyfile(source_dir / rel, run_dir / rel)


def check_code(repo: Path, task: config.Task) -> None:
    """program.md's error (ConfigError) when task.code names a path the repository does not hold."""
    if missing := [rel for rel in task.code if not (repo / rel).exists()]:
        raise config.ConfigError(f"program.md: task.code names {', '.join(missing)}, not in {repo}")


def code_sha256(mounts: list[Mount]) -> str:
    """One hash of every file the run saw at /code (path and bytes): says what code a run ran with."""
    digest = hashlib.sha256()
    for m in mounts:
        files = [m.host] if m.host.is_file() else sorted(
            f for f in m.host.rglob("*") if f.is_file() and "__pycache__" not in f.parts)
        for f in files:
            name = m.target if f == m.host else f"{m.target}/{f.relative_to(m.host).as_posix()}"
            digest.update(f"{name}\0{f.stat().st_size}\0".encode())
            digest.update(f.read_bytes())
    return digest.hexdigest()


def score_job(program: config.Program, split: Path, model: Mount, owner: Path, timeout_s: float, token: str,
              extra: tuple[str, ...] = (), artifacts: Path | None = None, lease: Lease | None = None) -> Job:
    """eval/scoring/score.py with the task's evaluator, the exported model at /in/model.pt2 and `split` alone.

    Only eval/scoring/ is mounted: the rest of the harness (and of the repository) stays out. The
    result line starts with `token` (parse_score), a secret of the harness the model cannot print.
    artifacts: what was frozen from the training split (a vocabulary), by default the split's
    data/artifacts/ when it exists; the evaluator finds it at options["artifacts"].
    """
    task = program.task
    secret = f"/data/{secrets.token_hex(16)}/{split.name}"  # a path no exported program can know in advance
    artifacts = artifacts or split.parent / ARTIFACTS_DIR
    shared = [Mount(artifacts, ARTIFACTS)] if artifacts.is_dir() else []
    options = {**task.options, **({"artifacts": ARTIFACTS} if shared else {})}
    return Job(
        argv=[python_executable(), "-m", "eval.scoring.score", "--evaluator", task.evaluator, "--model",
              "/in/model.pt2", "--data", secret, "--options", json.dumps(options),
              "--score-seconds", str(program.limits.score_seconds), "--token", token, *extra],
        mounts=[Mount(HARNESS / "eval" / "scoring", "/harness/eval/scoring"), model, Mount(split, secret), *shared],
        env={**SANDBOX_ENV, "PYTHONPATH": "/harness"},
        timeout_s=timeout_s,
        limits=program.limits,
        workdir="/tmp",
        gpu=uses_gpu(lease),
        owner=str(owner.resolve()),
        lease=lease,
    )


def validation_job(program: config.Program, run_dir: Path, data_dir: Path, budget: float, token: str,
                   lease: Lease | None = None) -> Job:
    """The validation scorer starts with training and waits for runs/<id>/score_in/go (see eval/scoring/score.py)."""
    wait = START_CAP_S + budget + program.task.grace_seconds + 30
    return score_job(program, data_dir / "val.bin", Mount(run_dir / "score_in", "/in"), run_dir,
                     wait + program.limits.score_seconds, token, ("--go", "/in/go", "--wait-seconds", str(wait)),
                     lease=lease)


def parse_score(log: bytes, token: str) -> dict | None:
    """The scorer's result: its last line marked with this job's token, when that holds a JSON object."""
    prefix = f"{MARKER}{token} "
    for line in reversed(log.decode("utf-8", errors="replace").splitlines()):
        if line.startswith(prefix):
            try:
                score = json.loads(line[len(prefix):])
            except ValueError:
                return None
            return score if isinstance(score, dict) else None
    return None


def kept_result(score: dict) -> dict:
    """What of the scorer's result may reach the agent: numbers, flags, short names, lists of numbers, the error capped.

    Only eval/scoring/score.py prints the marked line; this bounds what the run dir (the agent's
    to read) could carry even if something else ever printed one.
    """
    def flat(v) -> bool:
        return v is None or isinstance(v, (bool, int, float)) or isinstance(v, str) and len(v) <= KEPT_NAME

    def numbers(v) -> bool:
        return isinstance(v, list) and len(v) <= KEPT_LIST and all(isinstance(x, (int, float)) for x in v)

    kept = {k: v for k, v in score.items() if len(k) <= KEPT_NAME and (flat(v) or numbers(v))}
    if isinstance(score.get("error"), str):
        kept["error"] = score["error"][:ERROR_CAP]
    return kept


def read_reported(out_dir: Path) -> dict:
    """train.py's own account of itself, reduced to known, finite fields."""
    try:
        raw = json.loads((out_dir / "train_stats.json").read_text()[:100_000])
    except (OSError, ValueError):
        return {}
    reported = {}
    for key, kind in REPORTED_KEYS.items():
        value = raw.get(key) if isinstance(raw, dict) else None
        if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
            reported[key] = kind(value)
    return reported


def training_outcome(result: Result, program: config.Program, budget: float, clock: Clock) -> tuple[str, str]:
    """Classify the training process; ("", "") means go on and score it."""
    outcome, reason = clock.outcome(result)
    if outcome:
        return outcome, reason
    if result.timed_out:
        grace = program.task.grace_seconds
        return "timeout", (f"killed after {clock.training_seconds(result):.0f}s: budget {budget:g}s + grace "
                           f"{grace:g}s (the stop signal came at the budget; the grace is for the export)")
    if result.oom:
        return "oom", f"out of memory (limit {program.limits.memory_gb:g} GB)"
    if result.exit_code != 0:
        return "crash", f"train.py exited with status {result.exit_code}"
    if result.out_error:
        return "crash", result.out_error
    return "", ""


def infrastructure(error: SandboxFailed) -> str:
    return f"not train.py's doing: the sandbox failed ({error}); run it again once the sandbox works"


def hand_over(run_dir: Path, signal: str) -> None:
    """Give the waiting scorer the model ('go') or send it home ('cancel')."""
    model = run_dir / "out" / "model.pt2"
    if signal == "go" and model.is_file():
        shutil.copyfile(model, run_dir / "score_in" / "model.pt2")
    atomic_write(run_dir / "score_in" / "go", signal)


def score_outcome(result: Result, score: dict | None, direction: str) -> tuple[str, str]:
    if result.timed_out or (score or {}).get("timed_out"):
        return "crash", "scoring timed out: the exported model is too slow or too large"
    if result.oom:
        return "oom", "out of memory while scoring the exported model"
    if score is None:
        return "crash", f"the scorer produced no result (exit status {result.exit_code})"
    if not score.get("ok"):
        return "crash", f"the exported model was rejected: {score.get('error')}"
    if not score.get("finite"):
        return "nan", "the metric is not finite (the model's outputs hold NaN or inf)"
    if score.get("direction", direction) != direction:  # an evaluator may say which way its metric improves
        return "crash", (f"not train.py's doing: the evaluator's metric improves when {score['direction']}d, "
                         f"but program.md says task.direction: {direction}; fix program.md")
    return "ok", ""


def run_trial(repo: Path, program: config.Program | None = None, trial: tuple[str, Path] | None = None,
              source: Path | None = None, hypothesis: str = "", budget: float | None = None, seed: int | None = None,
              unsafe: bool = False, echo: Callable[[str], None] | None = None, lease: Lease | None = None) -> dict:
    """Train `source` once in the sandbox with this seed, score it, and write the trial's metrics.json.

    Left out: program.md as it is now, the next experiment dir, the task's train.py, budget and seed.
    echo: where the harness's progress lines go (print). train.py's output goes to train.log only.
    lease: the device slot both its jobs run on (eval/leases.py); None: the whole machine.
    """
    t0 = time.monotonic()
    program = program or config.load(repo / "program.md")
    data_dir = repo / "data"
    manifest = load_manifest(data_dir)
    backend = select_backend(unsafe)
    say = echo or (lambda s: print(s, flush=True))
    task = program.task
    check_code(repo, task)
    masks = heldout.ensure(data_dir, manifest, backend, say, project_code(repo, task))
    budget = task.budget_seconds if budget is None else budget
    seed = task.seed if seed is None else seed
    run_id, run_dir = trial or new_run_dir(repo / RUNS)
    snapshot(task, (source or repo / task.train_file).parent, run_dir)
    train_sha = hashlib.sha256((run_dir / "train.py").read_bytes()).hexdigest()
    code = code_mounts(repo, task, run_dir)
    say(f"[{run_id}] training {task.train_file} ({backend.name} sandbox, budget {budget:g}s, seed {seed}); "
        f"its output goes to {trial_path(run_id)}/train.log")

    (run_dir / "score_in").mkdir()
    sink = LogSink(run_dir / "train.log")
    score_log, token = scorer_log(repo, run_id), secrets.token_hex(16)
    score_sink = LogSink(score_log)
    with ThreadPoolExecutor(max_workers=1) as pool:
        scorer: list[Future] = []
        starting = threading.Lock()

        def start_scoring() -> Future:
            """The scorer's job, started once (from the clock's thread at the stop, or here)."""
            with starting:
                if not scorer:
                    scorer.append(pool.submit(backend.run, validation_job(program, run_dir, data_dir, budget, token,
                                                                          lease), score_sink))
                return scorer[0]

        # The scorer's warm-up (importing torch) beside training would take CPU from it on a small machine:
        # there it starts at the stop signal, beside the export.
        cores = len(lease.cpus) if lease else os.cpu_count() or 1
        if cores > FEW_CORES:
            start_scoring()
        signal, t_train = "cancel", time.monotonic()
        clock = Clock(budget, task.grace_seconds, task.cpu_budget_seconds, at_stop=start_scoring)
        host = compute.HostCpu.now()
        gpus = tuple(lease.gpus) if lease else ()
        gpu_busy = compute.GpuBusy(gpus, begin=clock.marked) if uses_gpu(lease) else None
        try:
            with Heartbeat(say, budget, f"[{run_id}] ") as beat, gpu_busy or contextlib.nullcontext():

                def started(control: Control) -> None:  # the heartbeat reads the job's meter, the clock drives it
                    beat.started(control.meter)
                    clock.started(control)

                try:
                    train = backend.run(training_job(program, run_dir, data_dir, budget, seed, masks, repo, lease),
                                        beat.sink(clock.watch(sink)), started)
                finally:
                    clock.finish()
            other_load = compute.other_load(host, compute.HostCpu.now(), train.cpu_seconds)
            outcome, reason = training_outcome(train, program, budget, clock)
            signal = "cancel" if outcome else "go"
            if signal == "go":
                say(f"[{run_id}] scoring the exported model on the validation split ({task.evaluator})")
        except SandboxFailed as e:  # a crash of the infrastructure, recorded as one: no score, the diff kept
            train, outcome, reason = Result(None, seconds=time.monotonic() - t_train), "crash", infrastructure(e)
            other_load = None
            sink(f"\n[harness] {reason}\n".encode())
        finally:
            weights = compute.weights_digest(run_dir / "out" / "model.pt2") if signal == "go" else None
            scoring = start_scoring()
            hand_over(run_dir, signal)
            sink.close()
        try:
            scored = scoring.result()
        except SandboxFailed as e:
            scored = None
            if not outcome:
                outcome, reason = "crash", infrastructure(e)
                score_sink(f"\n[harness] {reason}\n".encode())
    score_sink.close()
    log_tail = sink.tail_text()
    score, scoring_seconds = None, None
    if not outcome:
        score = parse_score(score_log.read_bytes(), token)
        if score is not None:
            score = kept_result(score)
            write_json(run_dir / SCORE, score)
        scoring_seconds = score.get("seconds") if score else scored.seconds
        outcome, reason = score_outcome(scored, score, task.direction)
    ok = outcome == "ok"
    metrics = metrics_file.record(
        run_id, task, hypothesis, seed, budget, train_sha, manifest["hash"], backend.name,
        outcome=outcome,
        value=score["value"] if ok else None,
        training_seconds=round(clock.training_seconds(train), 3),
        startup_seconds=rounded(clock.startup_seconds()),
        after_stop_seconds=rounded(clock.after_stop_seconds(train)),
        after_stop_cpu_seconds=rounded(clock.after_stop_cpu(train)),
        cpu_seconds=rounded(train.cpu_seconds),
        cpu_budget_seconds=task.cpu_budget_seconds,
        trained_cpu_seconds=rounded(clock.trained_cpu()),
        host_other_load=other_load,
        gpu=compute.gpu_name(gpus) if gpu_busy else None,
        gpu_busy_seconds=gpu_busy.seconds() if gpu_busy else None,
        lease=lease.record() if lease else None,
        model_sha256=weights,
        scoring_seconds=None if scoring_seconds is None else round(scoring_seconds, 3),
        total_seconds=round(time.monotonic() - t0, 3),
        peak_memory_mb=None if train.peak_memory_mb is None else round(train.peak_memory_mb, 1),
        parameters=score.get("parameters") if score else None,
        scored_bytes=score.get("scored_bytes") if score else None,
        exit_code=train.exit_code,
        reason=reason,
        log_tail=log_tail,
        reported=read_reported(run_dir / "out"),
        code_sha256=code_sha256(code),
    )
    metrics_file.write(run_dir, metrics)
    return metrics


def rounded(x: float | None) -> float | None:
    return None if x is None else round(x, 3)


def summary(m: dict) -> str:
    value = "-" if m["value"] is None else f"{m['value']:.6f}"
    rep = m["reported"]
    where = trial_path(m["id"])
    lines = [
        "-" * 60,
        f"experiment   {m['id']}    outcome {m['outcome'].upper()}",
        f"{m['metric']:<12} {value}   ({m['direction']})",
    ]
    if m["reason"]:
        lines.append(f"reason       {m['reason']}")
    lines += [
        f"time         train {m['training_seconds']:.1f}s  score {m['scoring_seconds'] or 0:.1f}s  "
        f"total {m['total_seconds']:.1f}s  (budget {m['budget_seconds']:g}s)",
        "stop         " + ("ended before the budget's stop signal" if m.get("after_stop_seconds") is None else
                           f"{m['after_stop_seconds']:.1f}s and {m['after_stop_cpu_seconds'] or 0:.1f} CPU-s from "
                           f"the stop signal to the exit") + f"   CPU {m.get('cpu_seconds') or 0:.1f}s in all",
        f"model        {m['parameters'] or 0:,} parameters   peak memory "
        + ("-" if m["peak_memory_mb"] is None else f"{m['peak_memory_mb']:.0f} MB"),
        f"train.py     steps {rep.get('steps', '-')}   {rep.get('tokens_per_second', 0):,.0f} bytes/s (reported)",
        f"files        {where}/train.log  {where}/metrics.json",
        "-" * 60,
    ]
    if m["outcome"] != "ok":
        lines.insert(-1, "log tail:\n" + quoted(m["log_tail"]))
    return "\n".join(lines)
