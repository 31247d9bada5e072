"""Recorded measurements in place of training, for `./run.sh replay --runs recorded`.

CI has neither the model nor the time to train. A replay hands the harness, through the
AUTORESEARCH_RECORDED_RUNS variable (a JSON file: trial id such as r0001 or r0001-s2 ->
outcome, value, reason, log tail), what each trial of the recorded session measured. Only
the measurement is replaced (this is an eval.trial.Measure): the verdict engine, git
keep/discard, the ledger and the plot run for real, so a changed verdict rule shows up as
a divergence.

Why an agent cannot use it to forge a result: the variable is read from the environment of
the harness process, which the agent does not control. The guard allows `./run.sh` only in
its fixed forms, with no environment assignment, and refuses `env`, `export`, nested shells
and every command that writes a file; .claude/settings.json (whose `env` reaches every
command) is out of the agent's reach. The metrics say `backend: replayed`.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from eval import config
from eval.record import metrics as metrics_file
from eval.trial import Measure, snapshot
from sandbox.job import Lease

ENV = "AUTORESEARCH_RECORDED_RUNS"
BACKEND = "replayed"


def measure(path: Path) -> Measure:
    """A Measure that snapshots train.py and writes the metrics recorded for each trial id."""
    recorded = json.loads(path.read_text())

    def replayed(repo: Path, program: config.Program, trial: tuple[str, Path], source: Path, hypothesis: str,
                 budget: float, seed: int, unsafe: bool = False, lease: Lease | None = None) -> dict:
        run_id, run_dir = trial
        snapshot(program.task, source.parent, run_dir)
        entry = recorded.get(run_id) or {
            "outcome": "crash", "value": None, "log_tail": "",
            "reason": f"replay: the recording has no result for {run_id} (the recorded session did not run it)",
        }
        print(f"[{run_id}] replaying the recorded result (no training): {entry['outcome']}", flush=True)
        metrics = metrics_file.record(
            run_id, program.task, hypothesis, seed, budget,
            hashlib.sha256((run_dir / "train.py").read_bytes()).hexdigest(), "0" * 64, BACKEND,
            outcome=entry["outcome"], value=entry["value"] if entry["outcome"] == "ok" else None,
            reason=entry["reason"], log_tail=entry["log_tail"], lease=lease.record() if lease else None,
        )
        metrics_file.write(run_dir, metrics)
        return metrics

    return replayed
