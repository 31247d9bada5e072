"""The morning report of a real night (trained, scored, judged, refused, confirmed), rendered by headless Chromium.

The night: a baseline (kept, three seeds), a candidate that cannot learn (discarded after one seed;
its hypothesis and its diff try to inject HTML, it writes a TensorBoard file), one that crashes
after writing a W&B offline file, two refusals by the real guard, and a real confirm on the test
split. Then `./run.sh report`. The checks read what Chromium made of the page (its DOM, a
screenshot, its network log), not the HTML text.
"""

from __future__ import annotations

import json
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import pytest

from commands.confirm import confirm
from eval import config, experiment
from eval.record import ledger, page
from eval.record.text import value
from hooks.guard import policy
from tests.conftest import build_repo, write_program
from tests.night import CHROMIUM, INJECTION, build_night_repo, synthetic_night

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
CANNOT_LEARN = ("LEARNING_RATE = 2e-3", "LEARNING_RATE = 2e-9  # </pre><script>document.title='pwned'</script>")
TENSORBOARD = """
tb = os.path.join(OUT, "tb", "run1")
os.makedirs(tb, exist_ok=True)
open(os.path.join(tb, "events.out.tfevents.1764547200.sandbox"), "wb").write(b"scalars")
"""
CRASH = """import os
run = os.path.join(os.environ["AUTORESEARCH_OUT"], "wandb", "offline-run-20261201_010000-abc123")
os.makedirs(run, exist_ok=True)
open(os.path.join(run, "run-abc123.wandb"), "wb").write(b"history")
raise SystemExit("boom: this train.py fails on purpose")
"""
REFUSED = [("Bash", {"command": "pip install numpy"}), ("Edit", {"file_path": "{repo}/eval/verdict.py",
                                                                 "old_string": "k", "new_string": "K"})]


@pytest.fixture(scope="module")
def night(tmp_path_factory, corpus) -> Path:
    repo = build_repo(tmp_path_factory.mktemp("night") / "repo", corpus)
    write_program(repo, grace=150, seeds=2)  # grace: a timeout on a loaded machine would not be the test's
    quiet = {"say": lambda s: None}
    experiment.run_experiment(repo, "baseline", None, False, **quiet)
    baseline = (repo / "train.py").read_text()
    (repo / "scratchpad.md").write_text("r0001 baseline kept\n")
    candidate = baseline.replace(*CANNOT_LEARN)
    candidate = candidate.replace("\nprint(f\"device", TENSORBOARD + "\nprint(f\"device", 1)
    (repo / "train.py").write_text(candidate)
    experiment.run_experiment(repo, INJECTION, None, False, **quiet)
    (repo / "train.py").write_text(CRASH)
    experiment.run_experiment(repo, "crash on purpose", None, False, **quiet)
    for tool, tool_input in REFUSED:
        event = {"tool_name": tool, "tool_input": {k: v.format(repo=repo) for k, v in tool_input.items()},
                 "cwd": str(repo), "hook_event_name": "PreToolUse"}
        subprocess.run([str(repo / "hooks" / "launch"), "pre_tool_use"], input=json.dumps(event), text=True,
                       capture_output=True, check=True, timeout=60)
    assert confirm(repo, say=lambda s: None, rescore=True) == 0
    return repo


class Dom(HTMLParser):
    """What the rendered page holds: elements by tag, the experiments table's rows, the text."""

    def __init__(self, html: str):
        super().__init__()
        self.tags: list[tuple[str, dict]] = []
        self.text: list[str] = []
        self.rows: list[str] = []
        self.in_table = False
        self.feed(html)

    def handle_starttag(self, tag: str, attrs: list) -> None:
        a = dict(attrs)
        self.tags.append((tag, a))
        if tag == "table":
            self.in_table = a.get("id") == "experiments"
        if tag == "tr" and self.in_table and a.get("id"):
            self.rows.append(a["id"])

    def handle_data(self, data: str) -> None:
        self.text.append(data)

    def find(self, tag: str, **attrs) -> list[dict]:
        return [a for t, a in self.tags if t == tag and all(a.get(k) == v for k, v in attrs.items())]

    @property
    def all_text(self) -> str:
        return "".join(self.text)


def chromium(html: Path, tmp: Path) -> tuple[Dom, bytes, list[str]]:
    """(the DOM after load, a screenshot, the URLs the page itself requested) from headless Chromium."""
    if CHROMIUM is None:
        pytest.fail("headless Chromium is needed: apt-get install chromium (.ci/run installs it)")
    flags = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", f"--user-data-dir={tmp / 'profile'}",
             "--window-size=1280,2200", f"--log-net-log={tmp / 'net.json'}"]
    dom = subprocess.run([*flags, "--dump-dom", html.as_uri()], capture_output=True, text=True, timeout=180,
                         check=True).stdout
    requested = page_requests(tmp / "net.json")
    subprocess.run([*flags, f"--screenshot={tmp / 'page.png'}", html.as_uri()], capture_output=True, timeout=180,
                   check=True)
    return Dom(dom), (tmp / "page.png").read_bytes(), requested


def page_requests(net_log: Path) -> list[str]:
    """URLs the page asked the network for (Chromium's own service traffic has no origin; a file page's is 'null')."""
    log = json.loads(net_log.read_text())
    start = log["constants"]["logEventTypes"]["URL_REQUEST_START_JOB"]
    return [p["url"] for e in log["events"] if e["type"] == start and (p := e.get("params") or {}).get("url")
            and p.get("initiator") != "not an origin" and not p["url"].startswith(("file:", "data:"))]


def test_the_page_of_a_real_night(night, tmp_path):
    rows = ledger.read(night)
    assert [r["status"] for r in rows] == ["keep", "discard", "crash"]
    dom, png, requested = chromium(night / "runs" / "report.html", tmp_path)
    assert dom.rows == ["r0001", "r0002", "r0003"]
    assert dom.find("svg", id="chart") and len(dom.find("circle")) >= 4  # 3 baseline seeds + the discard (+ legend)
    assert dom.find("path", id="running-best") and len(dom.find("path", **{"class": "failed"})) == 1
    for run_id in ("r0001", "r0002", "r0003"):
        assert dom.find("details", id=f"diff-{run_id}")
    text = dom.all_text
    assert "-LEARNING_RATE = 2e-3" in text and "+LEARNING_RATE = 2e-9" in text  # the discarded candidate's diff
    assert "boom: this train.py fails on purpose" in text  # the crash, with its log tail
    assert "installing packages is not allowed" in text and "is not editable" in text  # the guard, by kind
    assert "r0001 baseline kept" in text  # the scratchpad
    hrefs = {a.get("href") for a in dom.find("a")}
    assert {"r0001/train.log", "r0001/metrics.json", "r0001/s2/train.log", "r0003/verdict.json"} <= hrefs
    own = {"r0002/out/tb/run1/", "r0003/out/wandb/offline-run-20261201_010000-abc123/"}
    assert own <= hrefs and all((night / "runs" / h).is_dir() for h in own)  # kept with the run, crash included
    assert not dom.find("script") and not dom.find("img")  # the injections stayed text
    assert INJECTION in text and "<script>document.title='pwned'</script>" in text
    assert [t for t in dom.text if "pwned" in t] and "autoresearch: val_bpb" in text
    assert png.startswith(PNG_MAGIC) and len(png) > 10_000
    assert requested == []


def test_the_network_check_sees_a_page_that_fetches(tmp_path):
    """The negative control: a page with a remote image is caught by page_requests."""
    fetching = tmp_path / "fetching.html"
    fetching.write_text('<html><body><img src="http://example.invalid/pixel.png"></body></html>')
    _, _, requested = chromium(fetching, tmp_path)
    assert requested == ["http://example.invalid/pixel.png"]


def test_test_split_numbers_stay_off_the_page_the_agent_can_read(night):
    record = json.loads((night / "runs" / "confirm" / "log.jsonl").read_text().splitlines()[-1])
    tests = [value(v) for v in record["runs"]["baseline"]["test"]]
    tests.append(value(sum(record["runs"]["baseline"]["test"]) / len(record["runs"]["baseline"]["test"])))
    readable, sealed = (night / page.REPORT).read_text(), (night / page.SEALED).read_text()
    assert not [t for t in tests if t in readable]
    assert tests[-1] in sealed and "read 1 time(s)" in sealed
    program = config.load(night / "program.md")
    read = {p: policy.decide("Read", {"file_path": str(night / p)}, night, program, str(night)).decision
            for p in (page.REPORT, page.SEALED)}
    assert read == {page.REPORT: "allow", page.SEALED: "deny"}


def test_run_sh_report_prints_the_summary_and_the_page(night):
    done = subprocess.run(["./run.sh", "report"], cwd=night, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert "morning report: val_bpb (minimize), 3 experiments: 1 kept, 1 discarded, 1 crashed, 0 timed out" in out
    assert "kept (1)" in out and "crashes and timeouts: 1" in out and "guard refusals: 2" in out
    assert "test      confirm of" in out  # the human's terminal has the test split
    assert f"page: {(night / page.REPORT).resolve()}" in out and str((night / page.SEALED).resolve()) in out


def test_three_hundred_experiments(tmp_path):
    """A long night still renders whole: a row per experiment, every diff, the chart, the injections as text."""
    repo = build_night_repo(tmp_path / "repo")
    rows = synthetic_night(repo, 300)
    program = config.load(Path(__file__).resolve().parent.parent / "program.md")
    experiment.write_report(repo, program)
    dom, png, requested = chromium(repo / page.REPORT, tmp_path)
    assert dom.rows == [r["id"] for r in rows] and len(rows) == 300
    assert len(dom.find("details")) == 300 and dom.find("svg", id="chart")
    failed = sum(r["status"] in ("crash", "timeout") for r in rows)
    assert len(dom.find("path", **{"class": "failed"})) == failed > 0
    assert not dom.find("script") and not dom.find("img") and dom.all_text.count(INJECTION) >= 2 * (300 // 9)
    assert png.startswith(PNG_MAGIC) and requested == []

