"""The frozen data: a deterministic file-level train/val/test split, its manifest and its checks.

The default corpus is the Python standard library's own sources, which exist offline on
every machine with Python. Each file goes to one split by a hash of its relative path,
so the split does not depend on file order, dates or the machine. The splits are written
as raw bytes (files joined by a NUL byte, which never occurs in text) next to a manifest
whose hash every metrics.json records. Frozen data is never replaced silently.

Python needs its standard library to run, so the training sandbox mounts it: a train.py that
reran this split rule there would rebuild val and test. So the default corpus draws its
held-out files only from packages no training run imports (HIDDEN_PACKAGES), which every
training sandbox shows empty; all other files train. Every manifest says where its held-out
text came from (`hidden`), and eval/heldout.py hides that and proves it hidden.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import sys
import sysconfig
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from eval.record.runs import atomic_write
from eval.scoring import tokens

SPLITS = {"train": 900, "val": 950, "test": 1000}  # --corpus: cumulative per-mille of files, by path hash
# The default corpus: the stdlib packages its held-out files come from, hidden from training
# (none is imported by torch or a training run), and how their files split; every other file trains.
HIDDEN_PACKAGES = ("test", "idlelib", "tkinter", "turtledemo", "lib2to3")
HIDDEN_SPLITS = {"train": 600, "val": 800, "test": 1000}
MIN_HELDOUT_BYTES = 256 * 1024  # per held-out split of the default corpus: 4x what the default evaluator scores
SEPARATOR = b"\x00"
SKIP_PARTS = {"site-packages", "__pycache__", ".git"}
MANIFEST = "manifest.json"
ARTIFACTS = "artifacts"  # data/artifacts/: what was built from the training split alone, frozen with the splits


@dataclass(frozen=True)
class Builder:
    """What builds the frozen artifacts from the training split alone: (train bytes, the manifest's hidden)
    -> {file name: bytes}. The name goes into the manifest (built_by)."""

    name: str
    build: Callable[[bytes, dict], dict[str, bytes]]


def word_vocabulary(train: bytes, _hidden: dict) -> dict[str, bytes]:
    return {tokens.VOCAB: "\n".join(tokens.build_vocab(train.decode("utf-8", "replace"))).encode()}


BUILDERS = {"words": Builder("words", word_vocabulary)}  # prepare --vocab NAME; --artifacts SCRIPT: eval/artifacts.py


class DataError(RuntimeError):
    """The data cannot be prepared, or differs from what is frozen."""


def default_corpus() -> Path:
    return Path(sysconfig.get_paths()["stdlib"])


def corpus_files(root: Path, pattern: str) -> list[Path]:
    files = [
        f for f in root.rglob(pattern)
        if f.is_file() and not f.is_symlink() and not SKIP_PARTS.intersection(f.relative_to(root).parts)
    ]
    return sorted(files, key=lambda f: f.relative_to(root).as_posix())


def split_of(relpath: str, splits: dict[str, int] = SPLITS) -> str:
    bucket = int.from_bytes(hashlib.sha256(relpath.encode()).digest()[:4], "big") % 1000
    return next(name for name, upper in splits.items() if bucket < upper)


def stdlib_split_of(relpath: str) -> str:
    """The default corpus: only the hidden packages' files may be held out."""
    return split_of(relpath, HIDDEN_SPLITS) if relpath.split("/")[0] in HIDDEN_PACKAGES else "train"


def hidden(paths: list[Path] | tuple[Path, ...] = (), stdlib_packages: tuple[str, ...] = ()) -> dict:
    """The manifest's account of where the held-out text came from: what training must not see.

    paths: files or directories (resolved); stdlib_packages: package names hidden in every Python
    the sandbox mounts (a second interpreter under /usr holds its own copy of the same files).
    """
    return {"paths": sorted(str(Path(p).resolve()) for p in paths), "stdlib_packages": list(stdlib_packages)}


def build_splits(root: Path, pattern: str, rule=split_of) -> dict[str, list[tuple[str, bytes]]]:
    splits: dict[str, list[tuple[str, bytes]]] = {name: [] for name in SPLITS}
    for f in corpus_files(root, pattern):
        content = f.read_bytes()
        if SEPARATOR in content:  # binary file: not text
            continue
        rel = f.relative_to(root).as_posix()
        splits[rule(rel)].append((rel, content))
    empty = [name for name, docs in splits.items() if not docs]
    if empty:
        raise DataError(f"corpus {root} is too small: no files landed in split(s) {empty}; give more files, or "
                        "freeze a dataset that comes split as it is: ./run.sh prepare --split train=P,val=P,test=P")
    return splits


def manifest_for(splits: dict[str, list[tuple[str, bytes]]], source: str, blobs: dict[str, bytes],
                 held_out_from: dict, artifacts: dict[str, bytes] | None = None, builder: str = "") -> dict:
    """The splits' account (and the artifacts', which the hash covers too: a run is tied to its vocabulary)."""
    entries = {
        name: {
            "file": f"{name}.bin",
            "files": len(docs),
            "bytes": len(blobs[name]),
            "sha256": hashlib.sha256(blobs[name]).hexdigest(),
        }
        for name, docs in splits.items()
    }
    built = {name: {"file": f"{ARTIFACTS}/{name}", "bytes": len(blob), "sha256": hashlib.sha256(blob).hexdigest(),
                    "built_by": builder} for name, blob in (artifacts or {}).items()}
    hashed = {**entries, ARTIFACTS: built} if built else entries  # data frozen before artifacts keeps its hash
    digest = hashlib.sha256(json.dumps(hashed, sort_keys=True).encode()).hexdigest()
    manifest = {"source": source, "separator": "NUL", "splits": entries, "hash": digest, "hidden": held_out_from}
    return {**manifest, "artifacts": built} if built else manifest


def prepare(data_dir: Path, corpus: Path | None = None, pattern: str = "*", force: bool = False,
            build: Builder | None = None) -> dict:
    """Freeze the corpus under data_dir; return the manifest. Idempotent for the same corpus.
    build: what builds artifacts from the training split (a vocabulary), frozen with the splits."""
    root = corpus or default_corpus()
    if not root.is_dir():
        raise DataError(f"corpus directory {root} does not exist")
    if corpus is None:
        packages = [root / p for p in HIDDEN_PACKAGES if (root / p).is_dir()]
        splits, held_out_from = build_splits(root, "*.py", stdlib_split_of), hidden(packages, HIDDEN_PACKAGES)
        check_hideable(root, packages, splits)
        source = f"python-stdlib {sys.version.split()[0]}"
    else:
        splits, held_out_from, source = build_splits(root, pattern), hidden([root]), f"corpus {root.resolve()}"
    return freeze_splits(data_dir, splits, source, held_out_from, force, build)


def freeze_splits(data_dir: Path, splits: dict[str, list[tuple[str, bytes]]], source: str, held_out_from: dict,
                  force: bool, build: Builder | None) -> dict:
    blobs = {name: SEPARATOR.join(content for _, content in docs) for name, docs in splits.items()}
    artifacts = build.build(blobs["train"], held_out_from) if build else {}
    manifest = manifest_for(splits, source, blobs, held_out_from, artifacts, build.name if build else "")
    return freeze(data_dir, {**blobs, **{f"{ARTIFACTS}/{n}": b for n, b in artifacts.items()}}, manifest, force)


def split_files(root: Path) -> list[tuple[str, bytes]]:
    """One split of the dataset's own: a file as it is, or a folder's text files (by path; binary ones skipped)."""
    if root.is_file():
        return [(root.name, root.read_bytes())]
    docs = [(f.relative_to(root).as_posix(), f.read_bytes()) for f in corpus_files(root, "*")]
    return [(rel, content) for rel, content in docs if SEPARATOR not in content]


def prepare_split(data_dir: Path, paths: dict[str, Path], force: bool = False, build: Builder | None = None) -> dict:
    """Freeze the dataset's own split (train=, val=, test=: files or folders) as it is; val and test are
    the held-out sources the training sandbox hides. Idempotent for the same files."""
    if sorted(paths) != sorted(SPLITS):
        raise DataError(f"--split needs exactly {', '.join(f'{n}=PATH' for n in SPLITS)}; got {', '.join(paths)}")
    real = {name: Path(p).resolve() for name, p in paths.items()}
    for name, path in real.items():
        if not path.exists():
            raise DataError(f"--split {name}={paths[name]}: no such file or folder")
    for (a, pa), (b, pb) in itertools.combinations(real.items(), 2):
        if pa == pb or pa.is_relative_to(pb) or pb.is_relative_to(pa):
            raise DataError(f"--split: {a}={paths[a]} and {b}={paths[b]} overlap: each split needs files of its own")
    splits = {name: split_files(real[name]) for name in SPLITS}
    empty = [name for name, docs in splits.items() if not any(content for _, content in docs)]
    if empty:
        raise DataError(f"--split: no text in {', '.join(f'{n}={paths[n]}' for n in empty)}")
    source = "split " + ",".join(f"{name}={real[name]}" for name in SPLITS)
    return freeze_splits(data_dir, splits, source, hidden([real["val"], real["test"]]), force, build)


def check_hideable(root: Path, packages: list[Path], splits: dict[str, list[tuple[str, bytes]]]) -> None:
    """Enough held-out text in the packages the sandbox hides, or say what to install or pass instead."""
    sizes = {name: sum(len(content) for _, content in splits[name]) for name in ("val", "test")}
    small = {name: size for name, size in sizes.items() if size < MIN_HELDOUT_BYTES}
    if small:
        v = f"{sys.version_info.major}.{sys.version_info.minor}"
        found = ", ".join(f"{p.name} {sum(f.stat().st_size for f in p.rglob('*.py')) // 1024} KB"
                          for p in packages) or "none of them is installed"
        raise DataError(
            f"the standard library at {root} holds too little text in the packages the training sandbox hides "
            f"({', '.join(HIDDEN_PACKAGES)}; here: {found}): "
            + ", ".join(f"{n} would get {b // 1024} KB" for n, b in small.items())
            + f", and a held-out split needs {MIN_HELDOUT_BYTES // 1024} KB. Install them (Debian: "
            f"libpython{v}-testsuite, idle-python{v}, python3-tk) or prepare your own text: "
            "./run.sh prepare --corpus DIR")


def freeze(data_dir: Path, blobs: dict[str, bytes], manifest: dict, force: bool = False) -> dict:
    """Write the split files, then their manifest; keep what is frozen already, refuse to replace it silently."""
    source = manifest["source"]
    existing_path = data_dir / MANIFEST
    if existing_path.exists() and not force:
        existing = json.loads(existing_path.read_text())
        if existing.get("hash") == manifest["hash"]:
            problems = verify(data_dir, existing)
            if not problems:
                if existing != manifest:  # the same data, from another place: only its account changes
                    write_manifest(data_dir, manifest)
                return manifest
            raise DataError(f"the frozen data no longer matches its manifest: {'; '.join(problems)}."
                            " Restore it, or pass --force to rebuild it from the corpus.")
        raise DataError(
            f"{data_dir} already holds frozen data ({existing.get('source')}, hash {existing.get('hash', '?')[:12]})"
            f" that differs from {source} (hash {manifest['hash'][:12]}). Results are only comparable on"
            " the same data: keep it, or move data/ away (or pass --force) to replace it."
        )
    data_dir.mkdir(parents=True, exist_ok=True)
    for name, blob in blobs.items():  # a split as <name>.bin, an artifact at its path under artifacts/
        (data_dir / name).parent.mkdir(parents=True, exist_ok=True)
        atomic_write(data_dir / (name if name.startswith(f"{ARTIFACTS}/") else f"{name}.bin"), blob)
    write_manifest(data_dir, manifest)  # last: a manifest means the splits are complete
    return manifest


def write_manifest(data_dir: Path, manifest: dict) -> None:
    atomic_write(data_dir / MANIFEST, json.dumps(manifest, indent=2) + "\n")


def verify(data_dir: Path, manifest: dict) -> list[str]:
    """Return the problems found when checking the frozen files against the manifest."""
    problems = []
    for entry in [*manifest["splits"].values(), *manifest.get("artifacts", {}).values()]:
        path = data_dir / entry["file"]
        if not path.exists():
            problems.append(f"{path} is missing")
        elif hashlib.sha256(path.read_bytes()).hexdigest() != entry["sha256"]:
            problems.append(f"{path} does not match its sha256 in the manifest")
    return problems


def load_manifest(data_dir: Path) -> dict:
    path = data_dir / MANIFEST
    if not path.exists():
        raise DataError(f"no frozen data in {data_dir}: run ./run.sh prepare first")
    return json.loads(path.read_text())
