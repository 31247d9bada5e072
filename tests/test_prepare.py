"""Data preparation: deterministic, idempotent, and never silently replaced."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from commands import prepare as commands_prepare
from eval import artifacts, data, heldout
from eval.data import (
    HIDDEN_PACKAGES,
    MIN_HELDOUT_BYTES,
    SEPARATOR,
    DataError,
    corpus_files,
    default_corpus,
    load_manifest,
    prepare,
    split_of,
    stdlib_split_of,
    verify,
)
from sandbox.backends import backend
from sandbox.job import Mask, Mount
from tests.conftest import make_corpus


def test_split_is_deterministic_and_file_level(tmp_path, corpus):
    a = prepare(tmp_path / "a", corpus)
    b = prepare(tmp_path / "b", corpus)
    assert a["hash"] == b["hash"]
    for name in ("train", "val", "test"):
        assert (tmp_path / "a" / f"{name}.bin").read_bytes() == (tmp_path / "b" / f"{name}.bin").read_bytes()
    counts = {name: s["files"] for name, s in a["splits"].items()}
    assert sum(counts.values()) == 60 and counts["train"] > counts["val"] > 0 and counts["test"] > 0
    val = (tmp_path / "a" / "val.bin").read_bytes()
    for f in corpus.iterdir():  # every file lives in exactly the split its path hash names
        assert (f.read_bytes() in val) == (split_of(f.name) == "val")


def test_prepare_is_idempotent(tmp_path, corpus):
    first = prepare(tmp_path / "data", corpus)
    mtime = (tmp_path / "data" / "train.bin").stat().st_mtime_ns
    assert prepare(tmp_path / "data", corpus) == first
    assert (tmp_path / "data" / "train.bin").stat().st_mtime_ns == mtime


def test_different_data_is_never_silently_replaced(tmp_path, corpus):
    prepare(tmp_path / "data", corpus)
    other = make_corpus(tmp_path / "other", files=80)
    with pytest.raises(DataError, match="differs"):
        prepare(tmp_path / "data", other)
    assert json.loads((tmp_path / "data" / "manifest.json").read_text())["splits"]["train"]["files"] < 70
    replaced = prepare(tmp_path / "data", other, force=True)
    assert replaced["splits"]["train"]["files"] > 60


def test_tampered_split_is_detected(tmp_path, corpus):
    manifest = prepare(tmp_path / "data", corpus)
    (tmp_path / "data" / "val.bin").write_bytes(b"tampered")
    problems = verify(tmp_path / "data", manifest)
    assert problems == [f"{tmp_path / 'data' / 'val.bin'} does not match its sha256 in the manifest"]
    with pytest.raises(DataError, match="no longer matches its manifest"):
        prepare(tmp_path / "data", corpus)
    prepare(tmp_path / "data", corpus, force=True)
    assert verify(tmp_path / "data", manifest) == []


def test_default_corpus_is_the_stdlib(tmp_path):
    manifest = prepare(tmp_path / "data")
    assert manifest["source"].startswith("python-stdlib")
    assert manifest["splits"]["train"]["bytes"] > 5_000_000


def test_too_small_corpus_is_refused(tmp_path):
    with pytest.raises(DataError, match="too small"):
        prepare(tmp_path / "data", make_corpus(tmp_path / "tiny", files=2))


def test_default_corpus_holds_out_only_the_packages_the_sandbox_hides(tmp_path):
    manifest = prepare(tmp_path / "data")
    root = default_corpus()
    packages = [root / p for p in HIDDEN_PACKAGES if (root / p).is_dir()]
    assert manifest["hidden"] == {"paths": sorted(str(p.resolve()) for p in packages),
                                  "stdlib_packages": list(HIDDEN_PACKAGES)}
    hideable = {f.read_bytes() for p in packages for f in corpus_files(p, "*.py")}
    for name in ("val", "test"):
        docs = (tmp_path / "data" / f"{name}.bin").read_bytes().split(SEPARATOR)
        assert len(docs) == manifest["splits"][name]["files"] and set(docs) <= hideable, name
        assert manifest["splits"][name]["bytes"] >= MIN_HELDOUT_BYTES
    assert stdlib_split_of("json/decoder.py") == "train" and stdlib_split_of("os.py") == "train"


def test_too_little_hideable_text_is_refused_and_names_the_fix(tmp_path, monkeypatch):
    """A Python without its test suite (Debian's, say) cannot hold out enough text: say so, and what to do."""
    stdlib = make_corpus(tmp_path / "lib" / "python3.11", files=30)
    make_corpus(stdlib / "lib2to3", files=20)
    monkeypatch.setattr(data, "default_corpus", lambda: stdlib)
    with pytest.raises(DataError, match=r"too little text in the packages the training sandbox hides.*"
                                        r"here: lib2to3 \d+ KB.*--corpus DIR"):
        prepare(tmp_path / "data")
    assert not (tmp_path / "data").exists()


def test_the_manifest_names_the_corpus_as_the_held_out_source(tmp_path, corpus):
    manifest = prepare(tmp_path / "data", corpus)
    assert manifest["hidden"] == {"paths": [str(corpus.resolve())], "stdlib_packages": []}
    moved = tmp_path / "moved"
    shutil.copytree(corpus, moved)
    mtime = (tmp_path / "data" / "val.bin").stat().st_mtime_ns
    again = prepare(tmp_path / "data", moved)  # the same data from another place: only the account changes
    assert again["hash"] == manifest["hash"] and again["hidden"]["paths"] == [str(moved.resolve())]
    assert load_manifest(tmp_path / "data") == again
    assert (tmp_path / "data" / "val.bin").stat().st_mtime_ns == mtime


def test_prepare_command_freezes_and_checks_the_training_sandbox(tmp_path, corpus, capsys):
    assert commands_prepare.main(["--corpus", str(corpus), "--data-dir", str(tmp_path / "data")]) == 0
    out = capsys.readouterr().out
    assert "frozen in" in out and "held-out check (docker training sandbox" in out and "PASSED" in out
    assert json.loads((tmp_path / "data" / "heldout-check.json").read_text())["passed"]


def wikitext(root: Path) -> Path:
    """A dataset that comes split, the wikitext way: train.txt, valid.txt, test.txt side by side."""
    root.mkdir(parents=True)
    for name, n in (("train", 60), ("valid", 12), ("test", 12)):
        lines = [f" the {name} sentence number {i} about a cat and a dog \n" for i in range(n)]
        (root / f"{name}.txt").write_text(" = Title = \n" + "".join(lines) + (" a rare heldout word \n"
                                                                                 if name == "valid" else ""))
    return root


def test_the_datasets_own_split_is_frozen_as_given_and_its_held_out_files_named(tmp_path):
    corpus = wikitext(tmp_path / "wikitext")
    with pytest.raises(DataError, match="too small.*--split train=P,val=P,test=P"):  # what the issue hit
        prepare(tmp_path / "hashed", corpus)
    own = {"train": corpus / "train.txt", "val": corpus / "valid.txt", "test": corpus / "test.txt"}
    manifest = data.prepare_split(tmp_path / "data", own)
    for name, path in own.items():
        assert (tmp_path / "data" / f"{name}.bin").read_bytes() == path.read_bytes()
    assert manifest["hidden"]["paths"] == sorted(str(p.resolve()) for p in (own["val"], own["test"]))
    mtime = (tmp_path / "data" / "val.bin").stat().st_mtime_ns
    assert data.prepare_split(tmp_path / "data", own)["hash"] == manifest["hash"]  # idempotent
    assert (tmp_path / "data" / "val.bin").stat().st_mtime_ns == mtime
    (corpus / "valid.txt").write_text(" other text \n")
    with pytest.raises(DataError, match="differs"):
        data.prepare_split(tmp_path / "data", own)
    assert data.prepare_split(tmp_path / "data", own, force=True)["hash"] != manifest["hash"]
    assert (tmp_path / "data" / "val.bin").read_text() == " other text \n"


@pytest.mark.parametrize("change, says", [
    (lambda own, root: {**own, "test": own["val"]}, "overlap"),
    (lambda own, root: {**own, "train": root}, "overlap"),  # the folder holds the held-out files
    (lambda own, root: {**own, "val": root / "nothing.txt"}, "no such file"),
    (lambda own, root: {"train": own["train"], "val": own["val"]}, "exactly train=PATH, val=PATH, test=PATH"),
])
def test_an_own_split_that_cannot_be_held_out_is_refused(tmp_path, change, says):
    corpus = wikitext(tmp_path / "wikitext")
    own = {"train": corpus / "train.txt", "val": corpus / "valid.txt", "test": corpus / "test.txt"}
    with pytest.raises(DataError, match=says):
        data.prepare_split(tmp_path / "data", change(own, corpus))
    assert not (tmp_path / "data").exists()


def test_the_command_takes_the_split_as_train_val_test_paths(tmp_path):
    corpus = wikitext(tmp_path / "wikitext")
    split = f"train={corpus / 'train.txt'},val={corpus / 'valid.txt'},test={corpus / 'test.txt'}"
    assert commands_prepare.split_paths(split) == {"train": corpus / "train.txt", "val": corpus / "valid.txt",
                                                   "test": corpus / "test.txt"}
    with pytest.raises(SystemExit):
        commands_prepare.main(["--split", "train=a,dev=b,test=c", "--data-dir", str(tmp_path / "data")])


def test_a_word_vocabulary_is_built_from_the_training_split_alone_and_frozen_with_it(tmp_path):
    corpus = wikitext(tmp_path / "wikitext")
    own = {"train": corpus / "train.txt", "val": corpus / "valid.txt", "test": corpus / "test.txt"}
    plain = data.prepare_split(tmp_path / "plain", own)
    manifest = data.prepare_split(tmp_path / "data", own, build=data.BUILDERS["words"])
    vocab = (tmp_path / "data" / "artifacts" / "vocab.txt").read_text().split("\n")
    assert vocab[:4] == ["=", "Title", "<eos>", "the"] and vocab[-1] == "<unk>"  # first appearance, like Corpus
    assert "rare" not in vocab and "heldout" not in vocab  # only valid.txt holds them
    assert manifest["artifacts"]["vocab.txt"]["built_by"] == "words"
    assert manifest["hash"] != plain["hash"]  # a run is tied to its vocabulary
    (tmp_path / "data" / "artifacts" / "vocab.txt").write_text("tampered")
    assert any("vocab.txt" in p for p in data.verify(tmp_path / "data", manifest))


def test_held_out_files_inside_mounted_project_code_are_masked(tmp_path):
    corpus = wikitext(tmp_path / "project" / "wikitext")
    own = {"train": corpus / "train.txt", "val": corpus / "valid.txt", "test": corpus / "test.txt"}
    manifest = data.prepare_split(tmp_path / "data", own)
    shown = heldout.masks(manifest, [Mount(tmp_path / "project", "/code")])
    assert shown == tuple(Mask(f"/code/wikitext/{name}", directory=False) for name in ("test.txt", "valid.txt"))


BUILD = """import json, os
text = open(os.environ["AUTORESEARCH_DATA"]).read()
hidden = os.path.exists(os.environ["HELD_OUT"]) and os.path.getsize(os.environ["HELD_OUT"])
os.makedirs(os.environ["AUTORESEARCH_OUT"] + "/tokenizer", exist_ok=True)
json.dump({"chars": sorted(set(text)), "held_out_bytes_seen": hidden},
          open(os.environ["AUTORESEARCH_OUT"] + "/tokenizer/chars.json", "w"))
"""


def test_a_projects_own_script_builds_artifacts_from_the_training_split_in_the_sandbox(tmp_path):
    corpus = wikitext(tmp_path / "wikitext")
    script = tmp_path / "build_tokenizer.py"
    script.write_text(BUILD.replace('os.environ["HELD_OUT"]', repr(str(corpus / "valid.txt"))))
    own = {"train": corpus / "train.txt", "val": corpus / "valid.txt", "test": corpus / "test.txt"}
    data_dir = tmp_path / "data"
    manifest = data.prepare_split(data_dir, own, build=artifacts.script_builder(script, backend("docker")))
    built = json.loads((data_dir / "artifacts" / "tokenizer" / "chars.json").read_text())
    assert built["chars"] == sorted(set((corpus / "train.txt").read_text()))  # fitted on the training split
    assert built["held_out_bytes_seen"] is False  # the build sees the training split, not valid.txt
    assert manifest["artifacts"]["tokenizer/chars.json"]["built_by"].startswith("script build_tokenizer.py")
    assert not verify(data_dir, manifest)


def test_a_failing_artifact_script_freezes_nothing_and_says_why(tmp_path):
    corpus = wikitext(tmp_path / "wikitext")
    script = tmp_path / "build.py"
    script.write_text("import urllib.request\nurllib.request.urlopen('http://example.com', timeout=3)\n")
    own = {"train": corpus / "train.txt", "val": corpus / "valid.txt", "test": corpus / "test.txt"}
    with pytest.raises(DataError, match="the build failed in the docker sandbox"):  # no network there
        data.prepare_split(tmp_path / "data", own, build=artifacts.script_builder(script, backend("docker")))
    assert not (tmp_path / "data").exists()
