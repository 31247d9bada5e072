"""Data preparation: deterministic, idempotent, and never silently replaced."""

from __future__ import annotations

import json

import pytest

from eval.data import DataError, prepare, split_of, verify
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
