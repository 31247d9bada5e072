"""Recorded measurements in place of training, for `./run.sh replay --runs recorded`.

CI has neither the model nor the time to train. A replay hands the harness, through the
AUTORESEARCH_RECORDED_RUNS variable (a JSON file: seed run id such as r0001 or r0001-s2 ->
outcome, value, reason, log tail), what each seed of the recorded session measured. Only
the measurement is replaced: the verdict engine, git keep/discard, the ledger and the plot
run for real, so a changed verdict rule shows up as a divergence.

Why an agent cannot use it to forge a result: the variable is read from the environment of
the harness process, which the agent does not control. The guard allows `./run.sh` only in
its fixed forms, with no environment assignment, and refuses `env`, `export`, nested shells
and every command that writes a file; .claude/settings.json (whose `env` reaches every
command) is out of the agent's reach. The metrics say `backend: replayed`.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path

from eval import config

ENV = "AUTORESEARCH_RECORDED_RUNS"
BACKEND = "replayed"


def recording() -> Path | None:
    """The recorded-runs file this process was started with, if any."""
    value = os.environ.get(ENV)
    return Path(value) if value else None


def run(path: Path, repo: Path, hypothesis: str, budget: float | None, seed: int | None,
        run: tuple[str, Path] | None, source: Path | None) -> dict:
    """Stand-in for eval.experiment.run_experiment: snapshot train.py, write the recorded metrics."""
    from eval.experiment import new_run_dir, write_metrics

    program = config.load(repo / "program.md")
    task = program.task
    recorded = json.loads(path.read_text())
    run_id, run_dir = run or new_run_dir(repo / "runs")
    shutil.copyfile(source or repo / task.train_file, run_dir / "train.py")
    entry = recorded.get(run_id) or {
        "outcome": "crash", "value": None, "log_tail": "",
        "reason": f"replay: the recording has no result for {run_id} (the recorded session did not run it)",
    }
    print(f"[{run_id}] replaying the recorded result (no training): {entry['outcome']}", flush=True)
    metrics = {
        "id": run_id, "outcome": entry["outcome"], "metric": task.metric, "direction": task.direction,
        "value": entry["value"] if entry["outcome"] == "ok" else None, "hypothesis": hypothesis,
        "seed": task.seed if seed is None else seed,
        "budget_seconds": task.budget_seconds if budget is None else budget,
        "training_seconds": 0.0, "scoring_seconds": None, "total_seconds": 0.0, "peak_memory_mb": None,
        "parameters": None, "scored_bytes": None,
        "train_sha256": hashlib.sha256((run_dir / "train.py").read_bytes()).hexdigest(),
        "data_manifest_hash": "0" * 64, "backend": BACKEND, "exit_code": None,
        "reason": entry["reason"], "log_tail": entry["log_tail"], "reported": {},
    }
    write_metrics(run_dir, metrics)
    return metrics
