"""The scoring step, run inside its own sandbox: the only code that sees the validation split.

It starts together with training and warms up (imports torch and the export loader, a few
seconds of one core) while train.py starts, then waits for the harness to hand it the model
(a `go` file beside it; `cancel` when training failed). It imports the task's evaluator
(program.md: task.evaluator, "module:function"; called as score(model_path, data_path,
task.options)), which loads the exported model and returns
{"value": ..., "parameters": ..., ...}. The result is printed as one marked JSON line that
the harness parses. The line starts with a token the harness makes up for this job (--token),
which the exported program cannot know: nothing it makes the process print (an exception's
text, a warning) passes for the result.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import json
import logging
import math
import os
import signal
import sys
import time
import traceback
from pathlib import Path

MARKER = "@@autoresearch-score "
POLL_S = 0.05


def load_evaluator(spec: str):
    module_name, func_name = spec.split(":")
    return getattr(importlib.import_module(module_name), func_name)


def warm_up() -> None:
    """Import what torch.export.load needs (about 2 s), by loading a file that does not exist."""
    import torch

    logger = logging.getLogger("torch.export")
    level = logger.level
    logger.setLevel(logging.CRITICAL)
    with contextlib.suppress(Exception):
        torch.export.load("/nonexistent/warm-up.pt2")
    logger.setLevel(level)


def out_of_time(signum, frame) -> None:
    raise TimeoutError("scoring ran past score_seconds: the exported model is too slow or too large")


def wait_for(go: Path, seconds: float) -> str:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError):
            return go.read_text().strip()
        time.sleep(POLL_S)
    return "cancel"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--evaluator", required=True)
    ap.add_argument("--model", type=Path, required=True)
    ap.add_argument("--data", type=Path, required=True)
    ap.add_argument("--options", default="{}")
    ap.add_argument("--token", required=True, help="this job's secret: it starts the result line, so nothing else can")
    ap.add_argument("--go", type=Path, help="wait for this file: 'go' scores, anything else exits")
    ap.add_argument("--wait-seconds", type=float, default=0)
    ap.add_argument("--score-seconds", type=float, default=0, help="time limit once the model is handed over")
    args = ap.parse_args(argv)
    try:
        evaluator = load_evaluator(args.evaluator)
        warm_up()
        if args.go and wait_for(args.go, args.wait_seconds) != "go":
            print("scoring cancelled: training did not produce a model to score")
            return 0
        t0 = time.time()
        if args.score_seconds:
            signal.signal(signal.SIGALRM, out_of_time)
            signal.setitimer(signal.ITIMER_REAL, args.score_seconds)
        import torch

        torch.set_grad_enabled(False)
        if not args.model.is_file():
            raise FileNotFoundError("train.py did not leave an exported model at $AUTORESEARCH_OUT/model.pt2")
        result = evaluator(args.model, args.data, json.loads(args.options))
        value = float(result["value"])
        result = {**result, "value": value if math.isfinite(value) else None, "finite": math.isfinite(value),
                  "ok": True, "seconds": time.time() - t0}
    except Exception as e:  # the model is untrusted input: every failure is a verdict, not a crash here
        traceback.print_exc()
        result = {"ok": False, "error": f"{type(e).__name__}: {e}"[:2000], "timed_out": isinstance(e, TimeoutError)}
    print(f"{MARKER}{args.token} {json.dumps(result)}", flush=True)
    return 0


if __name__ == "__main__":
    code = main()
    sys.stdout.flush()
    os._exit(code)  # skip torch's slow interpreter teardown: the result is out
