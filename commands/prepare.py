"""`./run.sh prepare`: build and freeze the data once (eval/data.py holds the split rule), then prove
that no training sandbox can read its held-out splits (eval/heldout.py)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from eval import heldout
from eval.data import DataError, prepare


def main(argv: list[str] | None = None) -> int:
    from sandbox.backends import select_backend
    from sandbox.job import SandboxUnavailable

    ap = argparse.ArgumentParser(prog="./run.sh prepare", description="Build and freeze the data once (idempotent)")
    ap.add_argument("--corpus", type=Path, help="a directory of your own text files (default: Python's stdlib)")
    ap.add_argument("--pattern", default="*", help="file glob inside --corpus (default: every file)")
    ap.add_argument("--data-dir", type=Path, default=Path("data"))
    ap.add_argument("--force", action="store_true", help="replace frozen data that differs")
    args = ap.parse_args(argv)
    try:
        m = prepare(args.data_dir, args.corpus, args.pattern, args.force)
    except DataError as e:
        print(f"prepare: {e}", file=sys.stderr)
        return 1
    for name, s in m["splits"].items():
        print(f"{name:>5}: {s['files']:5d} files {s['bytes'] / 1e6:8.2f} MB  sha256 {s['sha256'][:12]}")
    print(f"frozen in {args.data_dir}/ ({m['source']}), manifest hash {m['hash'][:12]}")
    try:
        backend = select_backend()
    except SandboxUnavailable as e:
        print(f"prepare: the held-out check needs a sandbox and found none ({e}); ./run.sh runs it before "
              "it trains", file=sys.stderr)
        return 0
    print(f"checking that no held-out text is readable in the {backend.name} training sandbox "
          "(a scan of its whole filesystem: minutes)", flush=True)
    try:
        result = heldout.run_check(args.data_dir, m, backend)
    except DataError as e:
        print(f"prepare: {e}", file=sys.stderr)
        return 1
    if not result["passed"]:
        print(f"prepare: {heldout.refusal(result, args.data_dir)}", file=sys.stderr)
        return 1
    print(heldout.summary(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
