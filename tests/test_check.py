"""./run.sh check: what a dry run diagnoses, from its parts (the walkthrough runs it whole in Docker)."""

from __future__ import annotations

import re
from pathlib import Path

from commands import check
from eval.clock import Clock
from sandbox.job import Result
from tests.conftest import write_program


def test_a_missing_sibling_module_is_named_with_the_task_code_fix(tmp_path: Path):
    (tmp_path / "data.py").write_text("class Corpus: ...\n")
    (tmp_path / "nets").mkdir()
    log = "Traceback (most recent call last):\nModuleNotFoundError: No module named 'data'\n"
    found = check.missing_module(tmp_path, log)
    assert not found.ok and "add it to task.code in program.md (code: [data.py])" in found.what
    assert "code: [nets]" in check.missing_module(tmp_path, "ModuleNotFoundError: No module named 'nets.lstm'").what
    assert ".venv" in check.missing_module(tmp_path, "ModuleNotFoundError: No module named 'sklearn'").what
    assert check.missing_module(tmp_path, "ImportError: cannot import name 'x'") is None


def measured(startup: float, export: float | None) -> tuple[Clock, Result]:
    """A clock as a finished job leaves it: marker at `startup`, stop at the budget, exit `export` s later."""
    clock = Clock(5, 45)
    clock.t_start, clock.t_marker = 100.0, 100.0 + startup
    clock.t_stop = None if export is None else clock.t_marker + 5
    return clock, Result(0, seconds=startup + 5 + (export or -1))


def test_the_export_is_measured_against_the_grace_and_the_fix_is_named():
    slow = check.timing(*measured(3.0, 19.0), grace=15)
    assert [(f.ok, f.warn) for f in slow] == [(True, False), (False, False)]
    assert "19.0 s from the stop signal" in slow[1].what and "grace_seconds: 38 in program.md" in slow[1].what
    tight = check.timing(*measured(3.0, 9.0), grace=15)[1]
    assert tight.ok and tight.warn and "tight" in tight.what and "grace_seconds: 18" in tight.what
    assert check.timing(*measured(3.0, 2.0), grace=15)[1] == check.Finding(True, "export: 2.0 s from the stop "
                                                                           "signal to the exit, within "
                                                                           "task.grace_seconds 15")
    assert "not measured" in check.timing(*measured(3.0, None), grace=15)[1].what
    assert check.timing(*measured(40.0, 2.0), grace=15)[0].warn  # start-up near its 60 s cap


def test_the_evaluator_sample_is_the_start_of_the_training_split_cut_at_a_line(tmp_path: Path):
    rows = "".join(f"{i},{i * 2},{i % 3}\n" for i in range(20000))
    (tmp_path / "train.bin").write_text("a,b,label\n" + rows)
    blob = check.sample(tmp_path / "train.bin", tmp_path / "sample.bin").read_text()
    assert blob.startswith("a,b,label\n") and blob.endswith("\n") and len(blob) <= check.SAMPLE_BYTES


def test_in_the_sandbox_a_missing_sibling_module_fails_the_check_with_the_fix(repo):
    """The issue's first run: `import data` of a project whose data.py is not mounted."""
    (repo / "data.py").write_text("VOCAB = 10\n")
    (repo / "train.py").write_text("import data\n")
    said: list[str] = []
    assert check.check(repo, budget=2, say=said.append) == 1
    text = "\n".join(said)
    assert "FAIL  imports: train.py imports data, which is data.py in the repository but not in the sandbox: " \
           "add it to task.code in program.md (code: [data.py])" in text
    assert not (repo / "runs" / "ledger.jsonl").exists()


SLOW_EXPORT = """import signal, time
stop = []
signal.signal(signal.SIGURG, lambda *_: stop.append(1))
while not stop:
    time.sleep(0.05)
time.sleep(6)  # an export slower than the grace
"""


def test_in_the_sandbox_an_export_slower_than_the_grace_is_measured_and_the_grace_named(repo):
    write_program(repo, grace=3)
    (repo / "train.py").write_text(SLOW_EXPORT)
    said: list[str] = []
    assert check.check(repo, budget=1, say=said.append) == 1
    export = next(line for line in said if "export:" in line)
    assert "FAIL" in export and "more than task.grace_seconds 3" in export
    assert int(re.search(r"Set grace_seconds: (\d+) in program.md", export).group(1)) >= 12  # twice the 6 s measured
    assert "left no $AUTORESEARCH_OUT/model.pt2" in "\n".join(said)
