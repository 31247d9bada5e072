"""PreToolUse hook latency, as Claude Code pays it: one hooks/launch process per tool call.

Runs the hook 200 times over a mix of tool calls in a scratch copy of the harness (so the
real runs/audit.jsonl stays clean), interleaved with `python -c pass` on the same venv
python as the floor, and prints p50/p95 of both and their ratio. Also prints what the
hook's two big imports cost on their own, to show where the time goes.

    .venv/bin/python benchmarks/bench_hook.py [--calls 200]
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TARGET_P95_MS = 100.0

CALLS = [
    ("Bash", {"command": "grep -n lr train.py | head -5"}),
    ("Bash", {"command": './run.sh -m "halve the learning rate"'}),
    ("Bash", {"command": "pip install numpy"}),
    ("Bash", {"command": "git log --oneline -n 5 && git status"}),
    ("Bash", {"command": "cat data/val.bin"}),
    ("Bash", {"command": "find . -name '*.py' -not -path './.venv/*'"}),
    ("Read", {"file_path": "{repo}/train.py"}),
    ("Edit", {"file_path": "{repo}/train.py", "old_string": "a", "new_string": "b"}),
    ("Write", {"file_path": "{repo}/program.md", "content": "x"}),
    ("WebFetch", {"url": "https://arxiv.org/abs/1706.03762", "prompt": "summary"}),
]


def scratch_repo(into: Path) -> Path:
    repo = into / "repo"
    for folder in ("hooks", "eval"):
        shutil.copytree(ROOT / folder, repo / folder)
    for name in ("program.md", "train.py", "scratchpad.md"):
        if (ROOT / name).exists():
            shutil.copy(ROOT / name, repo / name)
    (repo / ".venv").symlink_to(ROOT / ".venv")
    return repo


def timed(argv: list[str], stdin: str = "") -> float:
    start = time.perf_counter()
    subprocess.run(argv, input=stdin, capture_output=True, text=True, check=True)
    return (time.perf_counter() - start) * 1000


def percentiles(ms: list[float]) -> tuple[float, float]:
    cuts = statistics.quantiles(ms, n=100, method="inclusive")
    return cuts[49], cuts[94]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=200)
    args = parser.parse_args()
    python = str(ROOT / ".venv" / "bin" / "python")
    with tempfile.TemporaryDirectory() as tmp:
        repo = scratch_repo(Path(tmp))
        launch = [str(repo / "hooks" / "launch"), "pre_tool_use"]
        events = []
        for tool, tool_input in CALLS:
            filled = {k: v.replace("{repo}", str(repo)) for k, v in tool_input.items()}
            events.append(json.dumps({"tool_name": tool, "tool_input": filled, "cwd": str(repo)}))
        for event in events:  # warm up: bytecode and the bashlex table cache
            timed(launch, event)
        hook, floor = [], []
        for i in range(args.calls):
            hook.append(timed(launch, events[i % len(events)]))
            floor.append(timed([python, "-c", "pass"]))
        imports = {m: [timed([python, "-E", "-c", f"import {m}"]) for _ in range(20)]
                   for m in ("hooks.guard.policy", "eval.config")}
    hook_p50, hook_p95 = percentiles(hook)
    floor_p50, floor_p95 = percentiles(floor)
    print(f"PreToolUse hook via hooks/launch, {args.calls} calls over {len(CALLS)} tool inputs")
    print(f"  hook              p50 {hook_p50:7.1f} ms   p95 {hook_p95:7.1f} ms")
    print(f"  python -c pass    p50 {floor_p50:7.1f} ms   p95 {floor_p95:7.1f} ms")
    print(f"  ratio             p50 {hook_p50 / floor_p50:7.1f} x    p95 {hook_p95 / floor_p95:7.1f} x")
    for module, ms in imports.items():
        print(f"  import {module:<12} p50 {statistics.median(ms) - floor_p50:7.1f} ms above the floor")
    verdict = "meets" if hook_p95 <= TARGET_P95_MS else "misses"
    print(f"  p95 {verdict} the {TARGET_P95_MS:.0f} ms target")


if __name__ == "__main__":
    sys.exit(main())
