"""The held-out check (eval/heldout.py, eval/scan.py): fingerprints, masks, the key, the verdict, the scanner.

The attacks on it, through real sandboxes and the default corpus, are at the end of tests/test_attacks.py.
"""

from __future__ import annotations

import gzip
import json
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from eval import config, heldout, scan, trial
from eval.data import DataError, hidden, prepare
from sandbox.backends import backend
from sandbox.job import Mask, Mount
from sandbox.runtime import runtime_mounts

SCANNER = Path(scan.__file__)


def long_corpus(root: Path, files: int = 40) -> Path:
    """Files of long, unique lines, and one line every file shares (boilerplate that train holds too)."""
    root.mkdir(parents=True)
    for i in range(files):
        lines = ["shared_boilerplate_line = 'the same in every file of the corpus'\n"]
        lines += [f"value_{i}_{j} = compute_something_long(argument_{i}, other_{j}) + {i * j}\n" for j in range(30)]
        (root / f"doc_{i:03d}.py").write_text("".join(lines))
    return root


@pytest.fixture(autouse=True)
def own_cache(tmp_path, monkeypatch):
    """Passed checks are kept per machine (heldout.CACHE): each test here starts with none."""
    monkeypatch.setattr(heldout, "CACHE", tmp_path / "cache")


@pytest.fixture
def frozen(tmp_path) -> tuple[Path, dict]:
    data = tmp_path / "data"
    return data, prepare(data, long_corpus(tmp_path / "corpus"))


def test_fingerprints_are_long_held_out_lines_that_train_lacks(frozen):
    data, manifest = frozen
    prints = heldout.fingerprints(data, manifest)
    train = heldout.text_lines((data / "train.bin").read_bytes())
    by_sha = {scan.fingerprint(s): (name, s) for name in heldout.HELD_OUT
              for s in heldout.text_lines((data / f"{name}.bin").read_bytes())}
    assert {name for name, *_ in prints} == {"val", "test"}
    for name, crc, sha in prints:
        split, line = by_sha[(crc, sha)]
        assert split == name and line not in train and len(line) >= heldout.MIN_LINE
    assert b"shared_boilerplate_line = 'the same in every file of the corpus'" in train
    assert heldout.fingerprints(data, manifest) == prints  # a fixed sample
    heldout.write_prints(data, manifest)
    (data / "test.bin").unlink()  # a Ray node's copy: the test split is not sent, its fingerprints are
    assert heldout.fingerprints(data, manifest) == prints
    with pytest.raises(DataError, match="lacks a held-out split"):
        heldout.fingerprints(data, {**manifest, "hash": "another data's"})
    assert heldout.text_lines(b"\x01\x02" * 40 + b"\n" + b"x" * 31 + b"\n\xff\xfe" + b"y" * 40) == set()


def test_the_scanner_reads_text_nul_joined_files_and_archives_not_binaries(tmp_path):
    line = b"held_out_line = 'a line that only the held-out split holds'"
    other = b"another_held_out_line = 'found inside a zip member and a gzip file'"
    tree = tmp_path / "tree"
    (tree / "sub").mkdir(parents=True)
    (tree / "plain.py").write_bytes(b"import os\n    " + line + b"   \n")  # indentation and trailing blanks
    (tree / "joined.bin").write_bytes(b"first file\0" + line + b"\0third file")
    with zipfile.ZipFile(tree / "sub" / "vendored.whl", "w") as z:
        z.writestr("pkg/copy.py", b"x = 1\n" + other + b"\n")
    (tree / "sub" / "copy.py.gz").write_bytes(gzip.compress(other + b"\n"))
    (tree / "binary.so").write_bytes(bytes(range(256)) * 64 + line)  # control bytes everywhere: not text
    (tree / "huge.txt").write_bytes(line + b"\n" + b"x" * scan.MAX_BYTES)
    (tree / "link.py").symlink_to(tree / "plain.py")  # counted once, where it really is
    prints = tmp_path / "fingerprints.json"
    prints.write_text(json.dumps([scan.fingerprint(line), scan.fingerprint(other), scan.fingerprint(b"z" * 40)]))
    out = subprocess.run([sys.executable, str(SCANNER), str(prints), str(tree)], capture_output=True, text=True,
                         check=True).stdout
    result = json.loads(out.split(scan.MARKER, 1)[1])
    assert result["found"] == {str(tree / "plain.py"): [0], str(tree / "joined.bin"): [0],
                               f"{tree / 'sub' / 'vendored.whl'}!pkg/copy.py": [1],
                               f"{tree / 'sub' / 'copy.py.gz'}!": [1]}
    assert result["scanned"]["binary"] == 1 and result["scanned"]["over MAX_BYTES"] == 1
    assert result["scanned"]["files"] == 7


def mounted(tmp_path: Path) -> tuple[list[Mount], Path, Path]:
    """Two prefixes as a sandbox would mount them: one with the corpus, one with a second Python's stdlib."""
    prefix, system = tmp_path / "prefix", tmp_path / "system"
    for d in (prefix / "share" / "corpus", *(system / "lib" / "python3.9" / p for p in ("lib2to3", "json"))):
        d.mkdir(parents=True)
    (prefix / "share" / "notes.csv").write_text("a,b\n")
    return [Mount(prefix, "/opt/prefix"), Mount(system, "/sys-python")], prefix, system


def test_masks_follow_every_mount_that_shows_a_held_out_source(tmp_path):
    mounts, prefix, system = mounted(tmp_path)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    manifest = {"hidden": hidden([prefix / "share" / "corpus", prefix / "share" / "notes.csv", elsewhere],
                                 ("lib2to3", "idlelib"))}
    assert heldout.masks(manifest, mounts) == (
        Mask("/opt/prefix/share/corpus", directory=True),
        Mask("/opt/prefix/share/notes.csv", directory=False),
        Mask("/sys-python/lib/python3.9/lib2to3", directory=True),  # the package in another mounted Python
    )  # `elsewhere` is not visible: nothing to hide; json is no hidden package; idlelib does not exist there


def test_hiding_what_holds_the_runtime_is_refused_with_the_fix(tmp_path):
    mounts, prefix, _ = mounted(tmp_path)
    with pytest.raises(DataError, match="would hide the interpreter.*directory of its own"):
        heldout.masks({"hidden": hidden([tmp_path])}, mounts)


def test_an_older_manifest_masks_nothing_and_leaves_the_verdict_to_the_scan(frozen):
    data, manifest = frozen
    del manifest["hidden"]
    assert heldout.masks(manifest) == ()
    assert heldout.fingerprints(data, manifest)  # what the scan then looks for everywhere, the corpus included


def test_every_training_job_hides_the_default_corpus_packages_in_every_mounted_python(tmp_path, repo):
    manifest = prepare(tmp_path / "data")
    job = trial.training_job(config.load(repo / "program.md"), repo / "runs" / "r0001", tmp_path / "data", 2, 1)
    targets = {m.target for m in job.masks}
    assert all(m.directory for m in job.masks)
    assert set(manifest["hidden"]["paths"]) <= targets  # the interpreter's own packages
    for lib in Path("/usr/lib").glob("python3*"):  # and a system Python's copies, where this host has one
        assert {str(lib / p) for p in manifest["hidden"]["stdlib_packages"] if (lib / p).is_dir()} <= targets
    assert job.masks == heldout.masks(manifest) and job.mounts[1].target == heldout.TRAIN_DATA


def test_the_key_changes_with_the_data_the_backend_and_the_environment(frozen):
    data, manifest = frozen
    env = heldout.environment(manifest, "docker")
    key = heldout.check_key(manifest, env)
    assert key == heldout.check_key(manifest, heldout.environment(manifest, "docker"))
    assert key != heldout.check_key(manifest, heldout.environment(manifest, "bwrap"))
    assert key != heldout.check_key({**manifest, "hash": "0" * 64}, env)
    assert key != heldout.check_key(manifest, {**env, "mounts": [*env["mounts"], ["/opt/more", "/opt/more"]]})
    assert env["mounts"] == [[str(m.host), m.target] for m in runtime_mounts()]
    assert env["package_dirs"]  # the venv's site-packages at least: installing a package changes the key


PRINTS = [("val", 0, f"{i:016x}") for i in range(100)] + [("test", 0, f"{i + 100:016x}") for i in range(100)]


@pytest.mark.parametrize("found, passed", [
    ({}, True),
    ({f"/usr/lib/meta{i}/METADATA": [i] for i in range(2)}, True),  # boilerplate: one line here and there
    ({"/opt/vendored/copy.py": [1, 2, 3, 4]}, False),  # a copy: several held-out lines in one file
    ({f"/usr/share/f{i}.py": [100 + i] for i in range(3)}, False),  # 3 of 100 test lines: over the 2% share
])
def test_the_verdict_tolerates_scattered_boilerplate_not_copies(found, passed):
    verdict = heldout.judge(PRINTS, found)
    assert verdict["passed"] is passed
    assert verdict["fingerprints"] == {"val": 100, "test": 100}
    assert sum(verdict["found"].values()) == len({i for hits in found.values() for i in hits})


def test_data_without_long_text_lines_passes_with_a_note_and_no_scan(tmp_path, corpus):
    manifest = prepare(tmp_path / "data", corpus)  # conftest's corpus: every line is under MIN_LINE characters
    result = heldout.run_check(tmp_path / "data", manifest, backend("docker"))
    assert result["passed"] and result["scanned"] == {} and "nothing to search for" in result["note"]
    assert json.loads((tmp_path / "data" / heldout.RESULT).read_text())["key"] == result["key"]
    assert "(no scan)" in heldout.summary(result)


def test_a_trial_runs_the_check_the_first_time_then_keeps_it(repo, tmp_path):
    docker, manifest, said = backend("docker"), json.loads((repo / "data" / "manifest.json").read_text()), []
    assert heldout.ensure(repo / "data", manifest, docker, said.append) == heldout.masks(manifest)
    assert "checking that no held-out text is readable in the docker training sandbox" in said[0]
    assert "PASSED" in said[1] and (repo / "data" / heldout.RESULT).is_file()
    said.clear()
    heldout.ensure(repo / "data", manifest, docker, said.append)
    assert said == []  # kept for this key
    other = tmp_path / "clone-data"  # another clone of the same data: the machine's cache answers
    other.mkdir()
    for name in ("train.bin", "val.bin", "test.bin", "manifest.json"):
        (other / name).write_bytes((repo / "data" / name).read_bytes())
    heldout.ensure(other, manifest, docker, said.append)
    assert len(said) == 1 and "passed on" in said[0] and (other / heldout.RESULT).is_file()


def test_a_failed_check_refuses_until_the_environment_changes_and_is_never_cached(repo, tmp_path):
    docker, manifest = backend("docker"), json.loads((repo / "data" / "manifest.json").read_text())
    result = heldout.run_check(repo / "data", manifest, docker)
    failed = {**result, **heldout.judge(PRINTS, {"/opt/copy.py": [1, 2, 3, 4]})}
    (repo / "data" / heldout.RESULT).write_text(json.dumps(failed))
    with pytest.raises(heldout.HeldoutVisible, match=r"(?s)FAILED.*/opt/copy.py.*refusing to train.*--corpus DIR"):
        heldout.ensure(repo / "data", manifest, docker, lambda s: None)
    assert list((tmp_path / "cache").glob("*.json")) == [tmp_path / "cache" / f"{result['key']}.json"]  # the pass
    assert heldout.ensure(repo / "data", manifest, backend("bwrap"), lambda s: None) == heldout.masks(manifest)
