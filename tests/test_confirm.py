"""./run.sh confirm reads the test split, and nothing else can.

confirm scores the exported models of the baseline and the best (every seed, runs/<id>/s2...)
on data/test.bin in the scoring sandbox. The models here are exported on the host from
tiny torch models with known quality, so the test split's numbers can be checked exactly;
the training and scoring jobs of an experiment are checked for their mounts, and a real
train.py tries to open the test split from inside its sandbox.
"""

from __future__ import annotations

import json
import shutil
import zipfile
from pathlib import Path

import pytest
import torch

from commands import confirm
from eval import config, trial
from eval.data import freeze
from eval.record import ledger
from eval.scoring import tabular
from hooks.guard import policy
from tests.conftest import TEST_FRONT_MATTER, build_repo
from tests.test_adopt import blobs_csv
from tests.test_attacks import ARCHIVE_ATTACKS, SPLIT_THIEF

OPTIONS = {"metric": "accuracy", "target": "label"}
PROBE = '''import json, os, sys
tries = {}
for path in ["/data/test.bin", "/data/val.bin", "{host_test}", "{host_data}/val.bin", "../data/test.bin",
             "/data/../data/test.bin", "/proc/self/root/data/test.bin"]:
    try:
        open(path, "rb").close()
        tries[path] = "opened"
    except OSError as e:
        tries[path] = type(e).__name__
skip = ("/proc", "/sys", "/usr", "/dev", sys.prefix, sys.base_prefix)
found = []
for d, dirs, files in os.walk("/"):
    dirs[:] = [x for x in dirs if not os.path.join(d, x).startswith(skip)]
    found += [os.path.join(d, f) for f in files if f in ("test.bin", "val.bin")]
json.dump({"tries": tries, "found": found, "data": os.listdir("/data")}, open("/out/probe.json", "w"))
'''


def export(model: torch.nn.Module, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    batch = torch.export.Dim("batch", min=1, max=4096)
    program = torch.export.export(model.eval(), (torch.zeros(2, 4),), dynamic_shapes=({0: batch},))
    torch.export.save(program, str(path))
    return path


def fitted(data: Path, seed: int, steps: int) -> torch.nn.Module:
    """A linear classifier trained on the training split for `steps` steps (0: its random init)."""
    torch.manual_seed(seed)
    model = torch.nn.Linear(4, 3)
    x, y = tabular.load_split(data / "train.bin", "label")
    opt = torch.optim.Adam(model.parameters(), lr=0.1)
    for _ in range(steps):
        opt.zero_grad()
        torch.nn.functional.cross_entropy(model(x), y.long()).backward()
        opt.step()
    return model


@pytest.fixture
def history(tmp_path: Path, corpus: Path) -> Path:
    """A tabular research repo: r0001 baseline (kept, 2 seeds), r0002 discarded, r0003 best (kept, 1 seed)."""
    program = TEST_FRONT_MATTER.format(metric="val_acc", direction="maximize", evaluator="eval.scoring.tabular:score",
                                       budget=2, grace=40, memory_gb=2, output_mb=64, seeds=2)
    program = program.replace("  options: {seq_len: 64, eval_bytes: 16384}\n", f"  options: {json.dumps(OPTIONS)}\n")
    repo = build_repo(tmp_path / "repo", corpus, program=program)
    shutil.rmtree(repo / "data")
    header, rows, column = tabular.read_table(blobs_csv(tmp_path / "blobs.csv").read_text(), "blobs.csv")
    manifest = freeze(repo / "data", *tabular.split_table(header, rows, column, "blobs.csv"))
    seeds = {"r0001": [(11, 0), (12, 0)], "r0002": [(13, 0)], "r0003": [(14, 60)]}  # (seed, training steps)
    statuses = {"r0001": "keep", "r0002": "discard", "r0003": "keep"}
    for run_id, runs in seeds.items():
        values = []
        for k, (seed, steps) in enumerate(runs, start=1):
            d = repo / "runs" / run_id / ("" if k == 1 else f"s{k}")
            model = export(fitted(repo / "data", seed, steps), d / "out" / "model.pt2")
            value = tabular.score(model, repo / "data" / "val.bin", OPTIONS)["value"]
            values.append(value)
            (d / "metrics.json").write_text(json.dumps({"id": run_id, "outcome": "ok", "value": value, "seed": seed,
                                                        "data_manifest_hash": manifest["hash"]}))
        ledger.append(repo, {"id": run_id, "status": statuses[run_id], "outcome": "ok", "metric": "val_acc",
                             "direction": "maximize", "mean": sum(values) / len(values), "values": values,
                             "hypothesis": run_id, "commit": "0" * 40})
    return repo


def test_confirm_scores_baseline_and_best_on_the_test_split_in_the_sandbox(history, monkeypatch, capsys):
    jobs = []
    real_job = confirm.test_job
    monkeypatch.setattr(confirm, "test_job", lambda *a: jobs.append(real_job(*a)) or jobs[-1])
    assert confirm.confirm(history, rescore=True) == 0
    out = capsys.readouterr().out
    assert "test val_acc" in out and "HOLDS" in out

    record = json.loads((history / "runs" / "confirm" / "log.jsonl").read_text())
    assert record["runs"]["baseline"]["seeds"] == [11, 12] and record["runs"]["best"]["seeds"] == [14]
    for label, dirs in (("baseline", ["r0001", "r0001/s2"]), ("best", ["r0003"])):
        models = [history / "runs" / d / "out" / "model.pt2" for d in dirs]
        test = [tabular.score(m, history / "data" / "test.bin", OPTIONS)["value"] for m in models]
        val = [json.loads((m.parent.parent / "metrics.json").read_text())["value"] for m in models]
        assert record["runs"][label]["test"] == pytest.approx(test, abs=1e-6)
        assert record["runs"][label]["val"] == val
    assert record["judgement"]["holds"] and record["judgement"]["delta_test"] > 0.3

    assert len(jobs) == 3  # one sandboxed scorer per model; the discarded r0002 is not scored
    for job in jobs:
        data = [m for m in job.mounts if m.host.parent == history / "data"]
        assert [m.host.name for m in data] == ["test.bin"] and data[0].target.endswith("/test.bin")
        assert data[0].target != "/data/test.bin" and not any(m.writable for m in job.mounts)


def test_no_job_of_an_experiment_mounts_the_test_split(history):
    program = config.load(history / "program.md")
    run_dir, data = history / "runs" / "r0009", history / "data"
    jobs = {"training": trial.training_job(program, run_dir, data, 2, 1),
            "scoring": trial.validation_job(program, run_dir, data, 2, "t"),
            "confirm": confirm.test_job(program, run_dir / "out" / "model.pt2", data, "t")}
    splits = {name: [m.host.name for m in job.mounts if data in (m.host, *m.host.parents)]
              for name, job in jobs.items()}
    assert splits == {"training": ["train.bin"], "scoring": ["val.bin"], "confirm": ["test.bin"]}


def test_train_py_cannot_open_the_test_split_from_its_sandbox(history):
    data = history / "data"
    (history / "train.py").write_text(PROBE.replace("{host_test}", str(data / "test.bin"))
                                      .replace("{host_data}", str(data)))
    m = trial.run_trial(history, hypothesis="probe", budget=1, echo=lambda s: None)
    assert m["outcome"] == "crash"  # it exported no model; what matters is what it could see
    probe = json.loads((history / "runs" / "r0004" / "out" / "probe.json").read_text())
    assert probe["data"] == ["train.bin"] and probe["found"] == []
    assert set(probe["tries"].values()) <= {"FileNotFoundError", "PermissionError", "NotADirectoryError"}, probe


def test_missing_models_are_named_and_never_retrained(history):
    (history / "runs" / "r0001" / "s2" / "out" / "model.pt2").unlink()
    with pytest.raises(confirm.ConfirmError, match=r"runs/r0001/s2/out/model.pt2 are missing.*never retrains"):
        confirm.confirm(history, rescore=True)
    assert not (history / "runs" / "confirm" / "log.jsonl").exists()  # refused before scoring anything


def test_models_trained_on_other_data_are_refused(history):
    path = history / "runs" / "r0003" / "metrics.json"
    path.write_text(json.dumps({**json.loads(path.read_text()), "data_manifest_hash": "f" * 64}))
    with pytest.raises(confirm.ConfirmError, match="r0003 was trained on other data"):
        confirm.confirm(history, rescore=True)


def test_a_pickle_laden_archive_is_refused_on_the_test_split_too(history, tmp_path):
    """The best's model swapped for an archive whose weights ask for a pickle that forges the score line and copies
    the split: confirm's scorer refuses it before loading anything, and nothing forged comes back."""
    model = history / "runs" / "r0003" / "out" / "model.pt2"
    with zipfile.ZipFile(model) as z:
        records = {n.partition("/")[2]: z.read(n) for n in z.namelist()}
    build, _ = ARCHIVE_ATTACKS["pickle asked for by the weights config"]
    shutil.copyfile(build(tmp_path, records, SPLIT_THIEF), model)
    with pytest.raises(confirm.ConfirmError, match="r0003/out/model.pt2: .*refused before loading.*use_pickle"):
        confirm.confirm(history, rescore=True)
    log = (history / "runs" / "confirm" / "r0003-seed14.log").read_bytes()
    assert b"0.0001" not in log and (history / "data" / "test.bin").read_bytes()[:64] not in log
    assert not (history / "runs" / "confirm" / "log.jsonl").exists()  # no judgement recorded


def test_nothing_kept_is_refused(history):
    (history / "runs" / "ledger.jsonl").unlink()
    with pytest.raises(confirm.ConfirmError, match="no kept experiment"):
        confirm.confirm(history, rescore=True)


RULE = config.VerdictRule("noise", 2.2, 3, 0.0)


@pytest.mark.parametrize("direction, base, best, status", [
    ("maximize", [0.5, 0.52, 0.48], [0.9, 0.91, 0.89], "holds"),
    ("maximize", [0.5, 0.6, 0.4], [0.55, 0.65, 0.45], "within noise"),
    ("maximize", [0.5, 0.52, 0.48], [0.4, 0.42, 0.38], "does not hold"),
    ("minimize", [2.0, 2.1, 1.9], [1.0, 1.1, 0.9], "holds"),
    ("minimize", [1.0, 1.1, 0.9], [2.0, 2.1, 1.9], "does not hold"),
])
def test_judge_is_direction_aware_and_noise_aware(direction, base, best, status):
    j = confirm.judge(direction, RULE, confirm.Scored("r0001", [1, 2, 3], base, base),
                      confirm.Scored("r0005", [4, 5, 6], best, best))
    assert j["status"] == status and j["holds"] == (status == "holds")
    assert (j["delta_test"] > 0) == (status != "does not hold")


@pytest.mark.parametrize("command", ["./run.sh confirm", "./run.sh adopt x.py --metric acc --direction maximize"])
def test_the_agent_may_run_neither_confirm_nor_adopt(history, command):
    decision = policy.decide("Bash", {"command": command}, history, config.load(history / "program.md"))
    assert decision.decision == "deny"
