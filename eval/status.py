"""`./run.sh status`: the latest runs and the best result, read from runs/<id>/metrics.json."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from eval import config

ROWS = 15


def load_runs(runs: Path) -> list[dict]:
    found = []
    for path in sorted(runs.glob("r[0-9]*/metrics.json")):
        try:
            found.append(json.loads(path.read_text()))
        except (OSError, ValueError):
            found.append({"id": path.parent.name, "outcome": "unreadable", "value": None, "hypothesis": ""})
    return found


def best_of(runs: list[dict], direction: str) -> dict | None:
    ok = [r for r in runs if r.get("outcome") == "ok" and r.get("value") is not None]
    if not ok:
        return None
    return (min if direction == "minimize" else max)(ok, key=lambda r: r["value"])


def table(runs: list[dict], metric: str) -> str:
    lines = [f"{'id':<7} {'outcome':<10} {metric:>12}  hypothesis"]
    for r in runs[-ROWS:]:
        value = "-" if r.get("value") is None else f"{r['value']:.6f}"
        lines.append(f"{r['id']:<7} {r.get('outcome', '?'):<10} {value:>12}  {r.get('hypothesis', '')[:60]}")
    return "\n".join(lines)


def main() -> int:
    repo = Path.cwd()
    try:
        task = config.load(repo / "program.md").task
    except config.ConfigError as e:
        print(f"status: {e}", file=sys.stderr)
        return 2
    runs = load_runs(repo / "runs")
    if not runs:
        print("no experiments yet: run ./run.sh")
        return 0
    print(table(runs, task.metric))
    best = best_of(runs, task.direction)
    shown = "none yet" if best is None else f"{best['value']:.6f} ({best['id']})"
    print(f"\nbest {task.metric} ({task.direction}): {shown}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
