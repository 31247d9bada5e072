"""`./run.sh prepare`: build and freeze the data once (eval/data.py holds the split rule, or takes the
dataset's own split), then prove that no training sandbox can read its held-out splits (eval/heldout.py).

    ./run.sh prepare                                   the default corpus (Python's standard library)
    ./run.sh prepare --corpus DIR [--pattern GLOB]     your files, split 90/5/5 by a hash of their paths
    ./run.sh prepare --split train=P,val=P,test=P      your dataset's own split (files or folders), as it is
    ... --vocab words                                  also freeze a word vocabulary built from the training split
    ... --artifacts SCRIPT                             or what your script builds from it (eval/artifacts.py)
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from eval import heldout
from eval.data import BUILDERS, SPLITS, DataError, prepare, prepare_split


def split_paths(text: str) -> dict[str, Path]:
    """train=PATH,val=PATH,test=PATH as {split: path}."""
    pairs = [part.partition("=") for part in text.split(",")]
    if any(not sep or name not in SPLITS for name, sep, _ in pairs):
        raise argparse.ArgumentTypeError(f"expected {','.join(f'{n}=PATH' for n in SPLITS)}, got {text!r}")
    return {name: Path(path) for name, _, path in pairs}


def script_builder(script: Path):
    """--artifacts SCRIPT: it runs in the training sandbox, so it needs one now."""
    from eval.artifacts import script_builder as builder
    from sandbox.backends import select_backend

    return builder(script, select_backend())


def code_mounts(repo: Path) -> list:
    """program.md's task.code as training jobs mount it (the scan must see what training sees); none if broken."""
    from eval import config
    from eval.trial import project_code

    try:
        return project_code(repo, config.load(repo / "program.md").task)
    except config.ConfigError:
        return []


def main(argv: list[str] | None = None) -> int:
    from sandbox.backends import select_backend
    from sandbox.job import SandboxUnavailable

    ap = argparse.ArgumentParser(prog="./run.sh prepare", description="Build and freeze the data once (idempotent)")
    ap.add_argument("--corpus", type=Path, help="a directory of your own text files (default: Python's stdlib)")
    ap.add_argument("--pattern", default="*", help="file glob inside --corpus (default: every file)")
    ap.add_argument("--split", type=split_paths, metavar="train=P,val=P,test=P",
                    help="the dataset's own split: a file or folder each, frozen as given (val and test held out)")
    built = ap.add_mutually_exclusive_group()
    built.add_argument("--vocab", choices=sorted(BUILDERS),
                       help="build this from the training split and freeze it in data/artifacts/ (words: vocab.txt)")
    built.add_argument("--artifacts", type=Path, metavar="SCRIPT",
                       help="run SCRIPT once in a training sandbox on the training split; freeze what it writes "
                            "under $AUTORESEARCH_OUT in data/artifacts/")
    ap.add_argument("--data-dir", type=Path, default=Path("data"))
    ap.add_argument("--force", action="store_true", help="replace frozen data that differs")
    args = ap.parse_args(argv)
    if args.split and args.corpus:
        ap.error("--split and --corpus are two ways to give the data: pass one")
    try:
        build = BUILDERS[args.vocab] if args.vocab else script_builder(args.artifacts) if args.artifacts else None
        m = (prepare_split(args.data_dir, args.split, args.force, build) if args.split else
             prepare(args.data_dir, args.corpus, args.pattern, args.force, build))
    except (DataError, OSError, SandboxUnavailable) as e:
        print(f"prepare: {e}", file=sys.stderr)
        return 1
    for name, s in m["splits"].items():
        print(f"{name:>5}: {s['files']:5d} files {s['bytes'] / 1e6:8.2f} MB  sha256 {s['sha256'][:12]}")
    for name, a in m.get("artifacts", {}).items():
        print(f"artifact {name}: {a['bytes']:,} bytes, built by {a['built_by']} from the training split, "
              f"sha256 {a['sha256'][:12]}")
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
        result = heldout.run_check(args.data_dir, m, backend, code=code_mounts(args.data_dir.resolve().parent))
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
