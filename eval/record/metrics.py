"""runs/<id>/metrics.json: one trial's measurement, written by the harness only, schema-checked."""

from __future__ import annotations

import json
from pathlib import Path

from eval.record.runs import METRICS, TRIAL_ID, atomic_write
from eval.record.text import visible

SCHEMA = json.loads((Path(__file__).parent / "schemas" / "metrics.schema.json").read_text())
SCHEMA["properties"]["id"]["pattern"] = TRIAL_ID.pattern  # one definition of the id, in runs.py
EMPTY = {  # what a trial that measured nothing reports; a trial fills in what it did measure
    "outcome": "crash", "value": None, "training_seconds": 0.0, "scoring_seconds": None, "total_seconds": 0.0,
    "startup_seconds": None, "after_stop_seconds": None, "after_stop_cpu_seconds": None, "cpu_seconds": None,
    "cpu_budget_seconds": None, "trained_cpu_seconds": None, "host_other_load": None, "gpu": None,
    "gpu_busy_seconds": None, "node": None,
    "lease": None, "model_sha256": None, "peak_memory_mb": None, "parameters": None, "scored_bytes": None,
    "exit_code": None, "reason": "", "log_tail": "", "reported": {}, "code_sha256": None,
}
REASON_CHARS = 500  # a reason is one line: the scorer's error may quote the exported program at length


def record(trial_id: str, task, hypothesis: str, seed: int, budget: float, train_sha: str, manifest_hash: str,
           backend: str, **measured) -> dict:
    """The whole metrics record of one trial (task: eval.config.Task), in the schema's field order.

    The reason and the log tail may quote untrusted output (the scorer's error, train.py's prints):
    they are stored neutralised, the reason on one line, so nothing shown from them acts on a terminal.
    """
    unknown = set(measured) - set(EMPTY)
    if unknown:
        raise ValueError(f"metrics fields not in the schema: {sorted(unknown)}")
    text = {"reason": visible(measured.get("reason", ""), keep="")[:REASON_CHARS],
            "log_tail": visible(measured.get("log_tail", ""))}
    return {"id": trial_id, "metric": task.metric, "direction": task.direction, "hypothesis": hypothesis,
            "seed": seed, "budget_seconds": budget, "train_sha256": train_sha, "data_manifest_hash": manifest_hash,
            "backend": backend, **EMPTY, **measured, **text}


def write(run_dir: Path, metrics: dict) -> None:
    """runs/<id>/metrics.json, schema-checked and written whole (a reader never sees half a file)."""
    import jsonschema

    jsonschema.validate(metrics, SCHEMA)
    atomic_write(run_dir / METRICS, json.dumps(metrics, indent=2) + "\n")
