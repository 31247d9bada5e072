"""`./run.sh [-m "hypothesis"]`: one experiment on train.py, judged, then the verdict printed.

This is the form the agent calls. What it prints stays short whatever train.py prints (a few KB,
far below Claude Code's cut of a tool's output): the harness's progress lines, each trial's
summary (a failed one with the last lines of its log, neutralised and quoted), the verdict last.
train.py's output itself is in runs/<id>/train.log. A replay (`./run.sh replay`) starts it with
AUTORESEARCH_RECORDED_RUNS set, so that each trial serves its recorded measurement
instead of training (replay/recorded.py explains why the agent cannot set it). With AUTORESEARCH_RAY
set (`./run.sh loop --ray ADDRESS` sets it for its sessions), each trial runs on a node of that Ray
cluster (eval/remote.py); the agent cannot set it either, for the same reasons.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from eval import config, experiment
from eval.data import DataError
from eval.record import history


def main(argv: list[str] | None = None) -> int:
    from eval import remote
    from replay import recorded
    from sandbox.job import SandboxUnavailable

    ap = argparse.ArgumentParser(prog="./run.sh", description="Run one experiment on train.py and judge it")
    ap.add_argument("-m", "--message", default="", help="the hypothesis this experiment tests, one line")
    ap.add_argument("--budget", type=float, help="override the training budget in seconds (humans and tests)")
    ap.add_argument("--unsafe-no-sandbox", action="store_true", help="run train.py unconfined if no sandbox exists")
    args = ap.parse_args(argv)
    recording, cluster = os.environ.get(recorded.ENV), os.environ.get(remote.ENV)
    measure, pool = recorded.measure(Path(recording)) if recording else None, None
    try:
        if cluster and not recording:
            measure = remote.RayMeasure(cluster)
            pool = measure.slots()
        d = experiment.run_experiment(Path.cwd(), args.message, args.budget, args.unsafe_no_sandbox, measure=measure,
                                      pool=pool)
    except (config.ConfigError, DataError, SandboxUnavailable, experiment.Busy, experiment.BadHypothesis,
            history.NotAResearchRepo) as e:
        print(f"run.sh: {e}", file=sys.stderr)
        return 2
    print(experiment.verdict_text(d))
    return 0 if d["outcome"] == "ok" else 3


if __name__ == "__main__":
    sys.exit(main())
