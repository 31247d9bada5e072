"""program.md's front matter: what the harness accepts, and how it names what is wrong."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from eval import config

REPO = Path(__file__).resolve().parent.parent
GOOD = (REPO / "program.md").read_text()


def test_shipped_program_md_is_valid():
    program = config.load(REPO / "program.md")
    assert (program.task.metric, program.task.direction) == ("val_bpb", "minimize")
    assert [p.name for p in program.phases] == ["hyperparameters", "architecture", "moonshot"]
    assert program.current_phase.name == "hyperparameters"
    moonshot = program.phases[2]
    assert moonshot.web and "arxiv.org" in moonshot.domains


@pytest.mark.parametrize(
    "edit, named",
    [
        (("direction: minimize", "direction: lower"), "task.direction"),
        (("budget_seconds: 300", "budget_seconds: -5"), "task.budget_seconds"),
        (("budget_seconds: 300", "budget_seconds: five minutes"), "task.budget_seconds"),
        (("evaluator: eval.scoring.bpb:score", "evaluator: eval/bpb.py"), "task.evaluator"),
        (("  metric: val_bpb ", "  metrik: val_bpb "), "task"),
        (("current_phase: hyperparameters", "current_phase: tuning"), "current_phase"),
        (("memory_gb: 8", "memory_gb: lots"), "sandbox.memory_gb"),
        (("    web: true", "    web: sometimes"), "phases.2.web"),
        (("seed: 1337", "seed: 1.5"), "task.seed"),
        (("cpu_slots: 1", "cpu_slots: 0"), "devices.cpu_slots"),
        (("gpus: all", "gpus: some"), "devices.gpus"),
        (("gpus: all", "gpus: [0, 0]"), "devices.gpus"),
    ],
)
def test_errors_name_the_bad_field(edit, named):
    old, new = edit
    assert old in GOOD
    with pytest.raises(config.ConfigError) as err:
        config.parse(GOOD.replace(old, new, 1))
    assert named in str(err.value)


@pytest.mark.parametrize(
    "text, says",
    [
        ("# no front matter\n", "must start with a '---' line"),
        ("---\ntask: {metric: x\n---\n", "not valid YAML"),
        ("---\ntask: [1, 2]\n", "not closed"),
        ("---\n- a list\n---\n", "must be a mapping"),
        (GOOD.replace("  - name: architecture", "  - name: hyperparameters"), "names must be unique"),
    ],
)
def test_malformed_files_get_a_clear_error(text, says):
    with pytest.raises(config.ConfigError, match=says):
        config.parse(text)


def test_defaults_fill_optional_fields():
    minimal = "---\ntask: {metric: acc, direction: maximize, evaluator: 'eval.scoring.accuracy:score',\n" \
              "  budget_seconds: 5}\n" \
              "phases: [{name: only, instructions: go}]\ncurrent_phase: only\n---\nbody\n"
    program = config.parse(minimal)
    assert program.task.seed == config.TASK_DEFAULTS["seed"]
    assert program.limits.memory_gb == config.SANDBOX_DEFAULTS["memory_gb"]
    assert program.devices == config.Devices("all", 1)  # one slot: one experiment at a time, as ever
    assert program.body == "body\n"


def test_unreadable_file_is_a_config_error(tmp_path):
    with pytest.raises(config.ConfigError, match="cannot read"):
        config.load(tmp_path / "missing.md")


def test_cached_front_matter_follows_every_edit(tmp_path, monkeypatch):
    monkeypatch.setattr(config, "CACHE_FILE", tmp_path / "cache" / "program.json")
    path = tmp_path / "program.md"
    path.write_text(GOOD)
    assert config.load(path).current_phase.name == "hyperparameters"
    assert config.CACHE_FILE.exists()
    path.write_text(GOOD.replace("current_phase: hyperparameters", "current_phase: moonshot"))
    assert config.load(path).current_phase.name == "moonshot"  # an edit is seen at once
    path.write_text(GOOD.replace("direction: minimize", "direction: sideways"))
    with pytest.raises(config.ConfigError, match="task.direction"):
        config.load(path)
    config.CACHE_FILE.write_text("{not json")
    path.write_text(GOOD)
    assert config.load(path).task.direction == "minimize"  # a damaged cache is rebuilt


def with_files(files: str) -> str:
    return GOOD.replace("  seed: 1337\n", f"  seed: 1337\n{files}", 1)


def test_code_and_editable_default_to_train_py_alone_and_take_project_paths():
    assert (config.parse(GOOD).task.code, config.parse(GOOD).task.editable) == ((), ("train.py",))
    task = config.parse(with_files("  code: [data.py, lib/utils]\n  editable: [train.py, model.py]\n")).task
    assert task.code == ("data.py", "lib/utils") and task.editable == ("train.py", "model.py")


@pytest.mark.parametrize("files, says", [
    ("  editable: [model.py]\n", "must include train.py"),
    ("  code: [eval/scoring]\n", "the harness's"),
    ("  code: [data]\n", "the harness's"),  # the frozen splits
    ("  editable: [train.py, program.md]\n", "the harness's"),
    ("  code: ['../elsewhere']\n", "plain relative path"),
    ("  code: [/etc]\n", "plain relative path"),
    ("  code: ['.']\n", "plain relative path"),
    ("  code: [.git]\n", "the harness's or hidden"),
    ("  editable: [train.py, out/model.py]\n", "clashes with a name in runs/<id>/"),
    ("  editable: [train.py, s2]\n", "clashes with a name in runs/<id>/"),
    ("  code: [lib]\n  editable: [train.py, lib/model.py]\n", "lies inside task.code 'lib'"),
])
def test_code_and_editable_refuse_what_is_not_the_projects_own(files, says):
    with pytest.raises(config.ConfigError, match=re.escape(says)):
        config.parse(with_files(files))
