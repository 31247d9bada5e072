"""A synthetic night for the report's tests and benchmark: many experiments recorded the way the harness
records them (kept commits, discarded refs, ledger rows, verdict files, guard refusals), without training;
and the browser that renders its page.

    synthetic_night(build_night_repo(path), 300)
"""

from __future__ import annotations

import json
import random
import shutil
import subprocess
from pathlib import Path

from eval.record import history, ledger
from eval.record.runs import AUDIT, RUNS, VERDICT, write_json

CHROMIUM = next((p for name in ("chromium", "chromium-browser", "google-chrome") if (p := shutil.which(name))), None)
INJECTION = '<script>document.title="pwned"</script><img src=x onerror=alert(1)>'
STATUSES = ("keep",) + ("discard",) * 6 + ("crash", "timeout")
REFUSALS = (("Bash", "pip install numpy", "`pip`: installing packages is not allowed: the environment is fixed"),
            ("Edit", "eval/verdict.py", "`eval/verdict.py` is not editable: the agent changes only train.py"),
            ("Bash", "cat data/val.bin", "`data/val.bin`: data/ holds the held-out validation and test splits"))


def synthetic_night(repo: Path, n: int, seed: int = 0) -> list[dict]:
    """n experiments in repo (minimize val_bpb), every ninth hypothesis an injection attempt; the ledger rows."""
    rng = random.Random(seed)
    best, best_id = 3.0, None
    for i in range(1, n + 1):
        run_id = f"r{i:04d}"
        status = "keep" if i == 1 else rng.choice(STATUSES)
        hypothesis = f"idea {i}: learning rate {rng.random():.4f}" + (f" {INJECTION}" if i % 9 == 0 else "")
        run_dir = repo / RUNS / run_id
        run_dir.mkdir(parents=True)
        candidate = run_dir / "train.py"
        candidate.write_text(f"LEARNING_RATE = {rng.random():.6f}  # {hypothesis}\nSTEPS = {i}\n")
        (run_dir / "train.log").write_text(f"step 1 loss 3.0\n{'Traceback: boom' if status == 'crash' else ''}\n")
        delta = threshold = None
        if status == "keep":
            gain = rng.random() * 0.03
            mean, delta, threshold = best - gain, (gain if best_id else None), (gain / 2 if best_id else None)
            values = [mean - 0.01, mean, mean + 0.012]
            commit, ref = history.keep(repo, run_id, candidate, f"{run_id} keep", hypothesis), None
        else:
            values = [best + rng.random() * 0.1] if status == "discard" else []
            mean = values[0] if values else None
            delta, threshold = (best - mean, 0.02) if values else (None, None)
            ref, commit = history.discard(repo, run_id, candidate, f"{run_id} {status}"), history.head(repo)
        row = {"id": run_id, "status": status, "outcome": "ok" if values else status, "metric": "val_bpb",
               "direction": "minimize", "mean": mean, "values": values, "seeds": [i] * max(len(values), 1),
               "spread": 0.011, "delta": delta, "threshold": threshold, "best_id": best_id, "hypothesis": hypothesis,
               "commit": commit, "diff_ref": ref, "reason": None if values else f"{status}: the run failed",
               "total_seconds": 300.0 + i, "peak_memory_mb": 400.0}
        ledger.append(repo, row)
        write_json(run_dir / VERDICT, {**row, "applied": True, "log_tail": "Traceback: boom" if not values else ""})
        if status == "keep":
            best, best_id = mean, run_id
    with open(repo / AUDIT, "a") as f:
        for k in range(n):
            tool, command, reason = REFUSALS[k % len(REFUSALS)]
            f.write(json.dumps({"time": f"2026-12-01T01:{k % 60:02d}:00+0000", "tool": tool, "input": command,
                                "decision": "deny", "reason": reason}) + "\n")
    return ledger.read(repo)


def build_night_repo(root: Path) -> Path:
    """A git repository with the harness's train.py and scratchpad, for a synthetic night."""
    root.mkdir(parents=True)
    source = Path(__file__).resolve().parent.parent
    for name in ("train.py", "scratchpad.md"):
        shutil.copy2(source / name, root / name)
    (root / ".gitignore").write_text("runs/\nresults.tsv\n")
    for args in (["init", "-q", "-b", "research"], ["add", "-A"],
                 ["-c", "user.name=test", "-c", "user.email=test@example.com", "commit", "-q", "-m", "start"]):
        subprocess.run(["git", *args], cwd=root, check=True)
    return root
