"""./run.sh adopt: a foreign training script, written as legacy code is, brought under the harness.

The script below was not written for the harness: it loads its own CSV by a path of its
own, takes argparse options with a fixed seed, trains a fixed number of epochs, prints its
own accuracy and saves a checkpoint dict. Adopted, it runs through the real sandbox and the
verdict engine: the baseline, one kept and one discarded experiment, then confirm.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from commands import adopt, confirm
from eval import config, experiment
from eval.record import ledger
from eval.scoring import tabular
from tests.conftest import TEST_FRONT_MATTER, build_repo

LEGACY = '''"""Old research code: a small MLP on the blobs table. Reports its own test accuracy."""
from __future__ import annotations

import argparse

import numpy as np
import torch
import torch.nn as nn


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--data", default="datasets/blobs.csv")
    p.add_argument("--epochs", type=int, default=40)
    p.add_argument("--lr", type=float, default=0.001)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    torch.manual_seed(args.seed)
    raw = np.loadtxt(args.data, delimiter=",", skiprows=1)
    X = torch.tensor(raw[:, :-1], dtype=torch.float32)
    y = torch.tensor(raw[:, -1], dtype=torch.long)
    n = int(0.8 * len(X))
    model = nn.Sequential(nn.Linear(X.shape[1], 32), nn.ReLU(), nn.Linear(32, 3))
    opt = torch.optim.SGD(model.parameters(), lr=args.lr)
    for epoch in range(args.epochs):
        opt.zero_grad()
        loss = nn.functional.cross_entropy(model(X[:n]), y[:n])
        loss.backward()
        opt.step()
    acc = (model(X[n:]).argmax(1) == y[n:]).float().mean().item()
    print(f"epoch {epoch} loss {loss.item():.3f} my test accuracy {acc:.3f}")
    torch.save({"model": model.state_dict(), "epoch": epoch}, "checkpoint.pt")


if __name__ == "__main__":
    main()
'''
NO_BUDGET = "import time\nimport torch\nwhile True:\n    time.sleep(0.5)\n"


def blobs_csv(path: Path, rows: int = 600) -> Path:
    """Three Gaussian blobs in 4-D: a table any legacy classifier script could have used."""
    rng = np.random.default_rng(0)
    centers = rng.normal(0, 3, (3, 4))
    lines = ["x1,x2,x3,x4,label"]
    for i in range(rows):
        lines.append(",".join(f"{v:.4f}" for v in centers[i % 3] + rng.normal(0, 1.0, 4)) + f",{i % 3}")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture
def clone(tmp_path: Path, corpus: Path) -> Path:
    """A fresh harness clone: committed, no data frozen yet; one seed per version keeps the test short
    (the seed layout runs/<id>/s2 is confirm's test's). The grace is wide: on a loaded 2-core machine,
    importing torch in the sandbox alone took 22 s."""
    program = TEST_FRONT_MATTER.format(metric="val_bpb", direction="minimize", evaluator="eval.scoring.bpb:score",
                                       budget=3, grace=120, memory_gb=2, output_mb=64, seeds=1)
    repo = build_repo(tmp_path / "repo", corpus, program=program)
    shutil.rmtree(repo / "data")  # ignored by git, as in a clone
    return repo


@pytest.fixture
def legacy(tmp_path: Path) -> tuple[Path, Path]:
    project = tmp_path / "legacy"
    data = blobs_csv(project / "datasets" / "blobs.csv")
    script = project / "train_mlp.py"
    script.write_text(LEGACY)
    return script, data


def set_lr(repo: Path, old: str, new: str) -> None:
    text = (repo / "train.py").read_text()
    assert f"default={old})" in text
    (repo / "train.py").write_text(text.replace(f"default={old})", f"default={new})"))


def test_adopting_a_foreign_script_runs_baseline_keep_discard_and_confirm(clone, legacy, capsys):
    script, data = legacy
    original = hashlib.sha256(script.read_bytes()).hexdigest()
    assert adopt.adopt(clone, script, "val_acc", "maximize", data, say=lambda s: None) == 0

    assert hashlib.sha256(script.read_bytes()).hexdigest() == original  # the user's script is untouched
    train = (clone / "train.py").read_text()
    assert "default=AUTORESEARCH_DATA)" in train and "default=AUTORESEARCH_SEED)" in train
    assert "if autoresearch_time_left() <= 0:" in train
    assert train.index("from __future__ import annotations") < train.index("import atexit as _ar_atexit")
    manifest = json.loads((clone / "data" / "manifest.json").read_text())
    assert manifest["format"] == "csv" and manifest["target"] == "label"
    assert sum(s["rows"] for s in manifest["splits"].values()) == 600
    program = (clone / "program.md").read_text()
    assert "metric: val_acc" in program and "evaluator: eval.scoring.tabular:score" in program and "seeds: 1" in program
    log = subprocess.run(["git", "log", "--format=%an|%s"], cwd=clone, capture_output=True, text=True).stdout
    assert "autoresearch harness|adopt train_mlp.py: val_acc (maximize) on blobs.csv" in log
    assert subprocess.run(["git", "status", "--porcelain"], cwd=clone, capture_output=True,
                          text=True).stdout == ""

    base = ledger.read(clone)[0]
    assert (base["id"], base["status"]) == ("r0001", "keep")
    assert base["mean"] < 0.85  # lr 0.001 for 40 epochs: barely trained
    out = clone / "runs" / "r0001" / "out"
    assert (out / "model.pt2").is_file() and (out / "checkpoint.pt").is_file()  # the shim's export, the script's own

    set_lr(clone, "0.001", "0.5")
    kept = experiment.run_experiment(clone, "lr 0.5", None, False, say=lambda s: None)
    assert kept["status"] == "keep" and kept["mean"] > 0.9, kept
    set_lr(clone, "0.5", "0.00001")
    discarded = experiment.run_experiment(clone, "lr 1e-5", None, False, say=lambda s: None)
    assert discarded["status"] == "discard", discarded
    assert "default=0.5)" in (clone / "train.py").read_text()  # restored to the best

    capsys.readouterr()
    assert confirm.confirm(clone) == 0
    out = capsys.readouterr().out
    assert "HOLDS" in out and "test val_acc" in out
    record = json.loads((clone / "runs" / "confirm" / "log.jsonl").read_text())
    assert record["mode"] == "retrain" and "mode: retrain" in out  # the baseline and the best trained again
    assert record["trials"] == {"baseline": ["r0001-c1"], "best": ["r0002-c1"]}
    for label, run_id in (("baseline", "r0001"), ("best", "r0002")):
        model = clone / "runs" / run_id / "c1" / "out" / "model.pt2"
        test = tabular.score(model, clone / "data" / "test.bin", {"metric": "accuracy", "target": "label"})
        assert record["runs"][label]["test"] == pytest.approx([test["value"]], abs=1e-6)


def test_a_script_that_ignores_the_budget_is_run_once_and_diagnosed(clone, legacy, tmp_path):
    _, data = legacy
    script = tmp_path / "other.py"
    script.write_text(NO_BUDGET)
    program = (clone / "program.md").read_text().replace("grace_seconds: 120", "grace_seconds: 5")
    (clone / "program.md").write_text(program)
    subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@e", "commit", "-qam", "short grace"], cwd=clone,
                   check=True)
    said: list[str] = []
    assert adopt.adopt(clone, script, "accuracy", "maximize", data, budget=1, say=said.append) == 3
    text = "\n".join(said)
    assert "the baseline failed (timeout): it ran past the budget + grace" in text
    assert "still to do by hand" in text and "stop training at the budget" in text  # the static check saw it coming
    assert (clone / "train.py").read_text().endswith(NO_BUDGET)  # committed, ready for the fix
    assert ledger.read(clone)[0]["status"] == "timeout"


TRAIN_LOG = "autoresearch: the script saved no model with torch.save, so none was exported\n"
SCORER = "the exported model was rejected: FileNotFoundError: train.py did not leave an exported model at x"


@pytest.mark.parametrize("outcome, reason, log, advice", [
    ("crash", SCORER, TRAIN_LOG, "saved no model"),
    ("crash", "train.py exited with status 1", "FileNotFoundError: datasets/b.csv not found.\n" + TRAIN_LOG,
     "read the rows from AUTORESEARCH_DATA"),
    ("crash", "train.py exited with status 2", "error: the following arguments are required: --data",
     "give every argument a default"),
    ("crash", "train.py exited with status 1", "ModuleNotFoundError: No module named 'sklearn'", "pyproject.toml"),
    ("crash", "train.py exited with status 1", "OSError: [Errno 30] Read-only file system: '/ckpt'",
     "writes outside its output dir"),
    ("oom", "out of memory (limit 2 GB)", "", "lower the batch size"),
])
def test_diagnose_reads_the_failed_baseline(outcome, reason, log, advice):
    assert advice in adopt.diagnose({"outcome": outcome, "reason": reason, "log_tail": log})


@pytest.mark.parametrize("change, message", [
    ({"metric": "f1"}, "the table evaluator knows accuracy (maximize)"),
    ({"direction": "minimize"}, "pass --direction maximize"),
    ({"csv": "x1,label\n1,a\n"}, "line 2, column 'label': 'a' is not a number"),
    ({"csv": "x1,label\n" + "".join(f"{i},{i % 2}.5\n" for i in range(100))}, "classes must be 0, 1, ..., C-1"),
    ({"csv": "x1,label\n1,0\n2,1\n"}, "too few rows"),
    ({"target": "nope"}, "no column named 'nope'"),
    ({"script": "import numpy\nprint('numpy only')\n"}, "does not use torch"),
    ({"script": "def broken(:\n"}, "not valid Python"),
    ({"dirty": True}, "uncommitted changes to train.py"),
    ({"ledger": True}, "already holds 1 experiment(s)"),
    ({"script_is_train_py": True}, "pass your script from another path"),
])
def test_refusals_name_the_fix_and_write_nothing(clone, legacy, change, message):
    script, data = legacy
    if "csv" in change:
        data.write_text(change["csv"])
    if "script" in change:
        script.write_text(change["script"])
    if change.get("dirty"):
        (clone / "train.py").write_text("# my edits\n")
    if change.get("ledger"):
        ledger.append(clone, {"id": "r0001", "status": "crash", "outcome": "crash", "metric": "val_bpb",
                              "direction": "minimize", "mean": None, "hypothesis": "", "commit": "0" * 40})
    if change.get("script_is_train_py"):
        script = clone / "train.py"
    before = {p: (clone / p).read_bytes() for p in ("train.py", "program.md")}
    with pytest.raises((adopt.AdoptError, tabular.TableError)) as e:
        adopt.adopt(clone, script, change.get("metric", "accuracy"), change.get("direction", "maximize"), data,
                    target=change.get("target"), say=lambda s: None)
    assert message in str(e.value)
    assert before == {p: (clone / p).read_bytes() for p in ("train.py", "program.md")}
    assert not (clone / "data").exists()


def test_adapt_edits_what_it_can_and_lists_the_rest():
    a = adopt.adapt(LEGACY, Path("datasets/blobs.csv"), 4)
    assert len(a.edits) == 3 and not a.manual
    compile(a.text, "train.py", "exec")
    bare = adopt.adapt("import torch\nwhile True:\n    pass\n", Path("d.csv"), 2)
    assert not bare.edits
    assert [m.split(":")[0] for m in bare.manual] == ["read the data from AUTORESEARCH_DATA",
                                                       "stop training at the budget", "save the trained model"]


SAVES = """import torch
import torch.nn as nn


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(nn.Linear(4, 8), nn.ReLU())
        self.head = nn.Linear(8, 3)

    def forward(self, x):
        return self.head(self.body(x))


def train():
    net = Net()
    for epoch in range(3):
        torch.save(net.state_dict(), f"net{epoch}.pt")
        torch.save(net.body.state_dict(), "body.pt")
    torch.save({"net": net.state_dict(), "epoch": 3, "opt": [torch.zeros(2)]}, "final.pt")


train()
"""


def test_the_shim_exports_the_module_behind_the_last_torch_save(tmp_path):
    """The model is a local of train(), saved as a state_dict inside a checkpoint dict, after a submodule."""
    (tmp_path / "train.py").write_text(adopt.adapt(SAVES, Path("x.csv"), 4).text)
    subprocess.run([sys.executable, "train.py"], cwd=tmp_path, check=True, capture_output=True,
                   env={**os.environ, "AUTORESEARCH_OUT": str(tmp_path / "out")})
    program = torch.export.load(str(tmp_path / "out" / "model.pt2"))
    assert tuple(program.module()(torch.zeros(5, 4)).shape) == (5, 3)


def test_cli_refuses_with_status_2(clone, legacy, capsys, monkeypatch):
    script, data = legacy
    monkeypatch.chdir(clone)
    assert adopt.main([str(script), "--metric", "accuracy", "--direction", "minimize", "--data", str(data)]) == 2
    assert "adopt: --direction minimize: accuracy (accuracy) is better when it is higher" in capsys.readouterr().err


SCALED = '''import numpy as np
import torch
from sklearn.preprocessing import StandardScaler

import helpers
from nets.mlp import make_model

raw = np.loadtxt("blobs.csv", delimiter=",", skiprows=1)
X = StandardScaler().fit_transform(raw[:, :-1])
mu, sd = raw[:, :-1].mean(axis=0), raw[:, :-1].std(0)


class Wrapped(torch.nn.Module):
    def forward(self, x):
        return (x - x.mean(0)) / x.std(0)  # inside the model: what the scorer applies too


loss = torch.zeros(3).mean()  # a plain reduction, no constant fitted on the data
'''


def test_sibling_modules_join_task_code_and_preprocessing_outside_the_model_is_flagged(clone, tmp_path):
    project = tmp_path / "scaled"
    (project / "nets").mkdir(parents=True)
    (project / "nets" / "__init__.py").write_text("")
    (project / "nets" / "mlp.py").write_text("import layers\n\ndef make_model(): ...\n")
    (project / "layers.py").write_text("WIDTH = 8\n")  # imported by a sibling, not by the script
    (project / "helpers.py").write_text("import numpy\n")
    (project / "unused.py").write_text("")
    script = project / "train_scaled.py"
    script.write_text(SCALED)
    assert adopt.sibling_code(script) == ["helpers.py", "layers.py", "nets"]
    flagged = adopt.adapt(SCALED, Path("blobs.csv"), 4).manual
    fitted = [m for m in flagged if "fits preprocessing outside the model" in m]
    assert [m.split(":")[0] for m in fitted] == ["line 9", "line 9", "line 10", "line 10"], fitted
    assert "register the fitted constants as buffers" in fitted[0]

    data = blobs_csv(project / "blobs.csv")
    assert adopt.adopt(clone, script, "val_acc", "maximize", data, baseline=False, say=lambda s: None) == 0
    task = config.load(clone / "program.md").task
    assert task.code == ("helpers.py", "layers.py", "nets") and (clone / "nets" / "mlp.py").is_file()
    assert subprocess.run(["git", "status", "--porcelain"], cwd=clone, capture_output=True, text=True).stdout == ""


def test_a_sibling_that_would_replace_a_file_of_the_repository_is_refused(clone, tmp_path):
    project = tmp_path / "clash"
    project.mkdir()
    (project / "helpers.py").write_text("")
    (project / "nets").mkdir()
    script = project / "train_x.py"
    script.write_text("import torch\nimport helpers\n")
    (clone / "helpers.py").write_text("# the human's own\n")
    with pytest.raises(adopt.AdoptError, match="already holds helpers.py"):
        adopt.adopt(clone, script, "val_acc", "maximize", blobs_csv(project / "b.csv"), say=lambda s: None)
    assert (clone / "helpers.py").read_text() == "# the human's own\n"
