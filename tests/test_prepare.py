"""Data preparation: deterministic, idempotent, and never silently replaced."""

from __future__ import annotations

import json
import shutil

import pytest

from commands import prepare as commands_prepare
from eval import data
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
