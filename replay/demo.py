"""`./run.sh demo`: the whole research loop in a few minutes, with no API key and no model.

The showcase session (tests/sessions/showcase.jsonl: a baseline, a kept learning-rate fix, a
discarded step too far, the scratchpad kept up to date) is replayed by replay/replay.py with
real, short training: the real Claude Code CLI runs the recorded model turns under today's
guard, the sandbox trains each train.py for a few seconds, the harness scores and judges it,
commits or discards it. Then the steps, the verdicts, the status table and the plot are shown.
The scratch clone stays, so everything can be looked at afterwards.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

from replay import replay, transcript

SHOWCASE = replay.REPO / "tests" / "sessions" / "showcase.jsonl"


def steps(today: transcript.Transcript) -> list[str]:
    """One line per tool call and what the harness decided, with each verdict under its run."""
    lines, runs = [], today.runs
    for n, call in enumerate(today.calls.values(), start=1):
        lines.append(f"{n:3}. {replay.describe(call).split(' ', 1)[1]:<70} {call.decision}")
        if call in runs:
            lines += [f"       {line}" for line in call.output.splitlines() if transcript.VERDICT.match(line)]
    return lines


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="./run.sh demo", description=__doc__.splitlines()[0])
    ap.add_argument("--session", type=Path, default=SHOWCASE, help="the recorded session to replay (the showcase)")
    ap.add_argument("--budget", type=float, default=replay.REAL_BUDGET_S, help="training seconds per run, at most")
    ap.add_argument("--workdir", type=Path, help="where the scratch clone goes (default: a new temporary directory)")
    args = ap.parse_args(argv)
    if not (replay.REPO / "data" / "manifest.json").is_file():
        print("demo: preparing the data first (./run.sh prepare)", flush=True)
        subprocess.run([sys.executable, "-m", "commands.prepare"], cwd=replay.REPO, check=True)
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="autoresearch-demo-"))
    print(f"demo: replaying {args.session.name} with real training ({args.budget:g}s per run at most; a few "
          f"minutes on a CPU) in {workdir}", flush=True)
    try:
        result = replay.replay(args.session, "real", replay.REPO, args.budget, workdir)
    except replay.ReplayError as e:
        print(f"demo: {e}", file=sys.stderr)
        return 2
    from eval import config
    from eval.record import ledger, report

    print("\nWhat the agent did, and what the harness decided:")
    print("\n".join(steps(result.today) if result.today else ["  (the CLI left no transcript)"]))
    print("\n" + result.report())
    if result.divergences:
        print("(real training: the numbers differ from the recording's, so a verdict may differ too)")
    task = config.load(result.clone / "program.md").task
    print("\n" + report.report(result.clone, ledger.read(result.clone), task.metric, task.direction, report.ROWS))
    print(f"\nThe research repository: {result.clone} (git log, runs/, results.tsv, scratchpad.md)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
