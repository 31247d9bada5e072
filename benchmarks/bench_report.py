"""The morning report's cost on a long night: the verdict step that rewrites runs/report.html, and the page in a
browser.

Builds a synthetic night of N experiments (tests/night.py: kept commits, discarded refs, ledger rows,
refusals), then times, interleaved, the report step (eval/experiment.write_report: gather from the ledger,
git, runs/ and the audit log; render; write) against the step before it in every verdict, progress.png
(eval/record/plot.draw), and headless Chromium loading the page against loading an empty page.

    .venv/bin/python benchmarks/bench_report.py [--experiments 300] [--repeat 5]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from eval import config, experiment  # noqa: E402
from eval.record import ledger, page, plot  # noqa: E402
from tests.night import CHROMIUM, build_night_repo, synthetic_night  # noqa: E402


def seconds(fn, *args) -> float:
    t0 = time.perf_counter()
    fn(*args)
    return time.perf_counter() - t0


def browser(html: Path, profile: Path) -> None:
    subprocess.run([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", f"--user-data-dir={profile}",
                    "--dump-dom", html.as_uri()], capture_output=True, check=True, timeout=300)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--experiments", type=int, default=300)
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    program = config.load(REPO / "program.md")
    with tempfile.TemporaryDirectory() as tmp:
        repo = build_night_repo(Path(tmp) / "repo")
        build = seconds(synthetic_night, repo, args.experiments)
        rows = ledger.read(repo)
        print(f"synthetic night: {len(rows)} experiments built in {build:.0f} s", flush=True)
        report, png = [], []
        for _ in range(args.repeat):
            report.append(seconds(experiment.write_report, repo, program))
            png.append(seconds(plot.draw, repo, ledger.read(repo), "val_bpb", "minimize"))
        size = (repo / page.REPORT).stat().st_size
        r, p = statistics.median(report), statistics.median(png)
        print(f"report step (gather + render + write, {size / 1e6:.2f} MB): median {r * 1000:.0f} ms; "
              f"progress.png: {p * 1000:.0f} ms; ratio {r / p:.2f}")
        if CHROMIUM is None:
            print("no Chromium here: the browser figure is skipped")
            return 0
        empty = Path(tmp) / "empty.html"
        empty.write_text("<!DOCTYPE html><html><body></body></html>")
        profile, full_s, empty_s = Path(tmp) / "profile", [], []
        for _ in range(args.repeat):
            full_s.append(seconds(browser, repo / page.REPORT, profile))
            empty_s.append(seconds(browser, empty, profile))
        f, e = statistics.median(full_s), statistics.median(empty_s)
        print(f"headless Chromium, load and dump the DOM: the page {f:.2f} s, an empty page {e:.2f} s; "
              f"ratio {f / e:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
