"""The scoring step, run inside its own sandbox: the only code that sees the validation split.

It imports the task's evaluator (program.md: task.evaluator, "module:function"), which
loads the exported model and returns {"value": ..., "parameters": ..., ...}. The result
is printed as one marked JSON line that the harness parses; an exported program has no
Python of the agent's in it, so nothing else can print that line.
"""

from __future__ import annotations

import argparse
import importlib
import json
import math
import sys
import time
import traceback
from pathlib import Path

MARKER = "@@autoresearch-score "


def load_evaluator(spec: str):
    module_name, func_name = spec.split(":")
    return getattr(importlib.import_module(module_name), func_name)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--evaluator", required=True)
    ap.add_argument("--model", type=Path, required=True)
    ap.add_argument("--data", type=Path, required=True)
    ap.add_argument("--seq-len", type=int, required=True)
    ap.add_argument("--eval-bytes", type=int, required=True)
    ap.add_argument("--options", default="{}")
    args = ap.parse_args(argv)
    t0 = time.time()
    try:
        import torch

        torch.set_grad_enabled(False)
        if not args.model.is_file():
            raise FileNotFoundError("train.py did not leave an exported model at $AUTORESEARCH_OUT/model.pt2")
        result = load_evaluator(args.evaluator)(args.model, args.data, args.seq_len, args.eval_bytes,
                                                json.loads(args.options))
        value = float(result["value"])
        result = {**result, "value": value if math.isfinite(value) else None, "finite": math.isfinite(value),
                  "ok": True}
    except Exception as e:  # the model is untrusted input: every failure is a verdict, not a crash here
        traceback.print_exc()
        result = {"ok": False, "error": f"{type(e).__name__}: {e}"[:2000]}
    result["seconds"] = time.time() - t0
    print(MARKER + json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
