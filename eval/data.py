"""The frozen data: a deterministic file-level train/val/test split, its manifest and its checks.

The default corpus is the Python standard library's own sources, which exist offline on
every machine with Python. Each file goes to one split by a hash of its relative path,
so the split does not depend on file order, dates or the machine. The splits are written
as raw bytes (files joined by a NUL byte, which never occurs in text) next to a manifest
whose hash every metrics.json records. Frozen data is never replaced silently.
"""

from __future__ import annotations

import hashlib
import json
import sys
import sysconfig
from pathlib import Path

from eval.record.runs import atomic_write

SPLITS = {"train": 900, "val": 950, "test": 1000}  # cumulative per-mille of files, by path hash
SEPARATOR = b"\x00"
SKIP_PARTS = {"site-packages", "__pycache__", ".git"}
MANIFEST = "manifest.json"


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


def split_of(relpath: str) -> str:
    bucket = int.from_bytes(hashlib.sha256(relpath.encode()).digest()[:4], "big") % 1000
    return next(name for name, upper in SPLITS.items() if bucket < upper)


def build_splits(root: Path, pattern: str) -> dict[str, list[tuple[str, bytes]]]:
    splits: dict[str, list[tuple[str, bytes]]] = {name: [] for name in SPLITS}
    for f in corpus_files(root, pattern):
        content = f.read_bytes()
        if SEPARATOR in content:  # binary file: not text
            continue
        rel = f.relative_to(root).as_posix()
        splits[split_of(rel)].append((rel, content))
    empty = [name for name, docs in splits.items() if not docs]
    if empty:
        raise DataError(f"corpus {root} is too small: no files landed in split(s) {empty}; give more files")
    return splits


def manifest_for(splits: dict[str, list[tuple[str, bytes]]], source: str, blobs: dict[str, bytes]) -> dict:
    entries = {
        name: {
            "file": f"{name}.bin",
            "files": len(docs),
            "bytes": len(blobs[name]),
            "sha256": hashlib.sha256(blobs[name]).hexdigest(),
        }
        for name, docs in splits.items()
    }
    digest = hashlib.sha256(json.dumps(entries, sort_keys=True).encode()).hexdigest()
    return {"source": source, "separator": "NUL", "splits": entries, "hash": digest}


def prepare(data_dir: Path, corpus: Path | None = None, pattern: str = "*", force: bool = False) -> dict:
    """Freeze the corpus under data_dir; return the manifest. Idempotent for the same corpus."""
    root = corpus or default_corpus()
    if not root.is_dir():
        raise DataError(f"corpus directory {root} does not exist")
    pattern = "*.py" if corpus is None else pattern
    splits = build_splits(root, pattern)
    blobs = {name: SEPARATOR.join(content for _, content in docs) for name, docs in splits.items()}
    source = f"python-stdlib {sys.version.split()[0]}" if corpus is None else f"corpus {root.resolve()}"
    return freeze(data_dir, blobs, manifest_for(splits, source, blobs), force)


def freeze(data_dir: Path, blobs: dict[str, bytes], manifest: dict, force: bool = False) -> dict:
    """Write the split files, then their manifest; keep what is frozen already, refuse to replace it silently."""
    source = manifest["source"]
    existing_path = data_dir / MANIFEST
    if existing_path.exists() and not force:
        existing = json.loads(existing_path.read_text())
        if existing.get("hash") == manifest["hash"]:
            problems = verify(data_dir, existing)
            if not problems:
                return existing
            raise DataError(f"the frozen data no longer matches its manifest: {'; '.join(problems)}."
                            " Restore it, or pass --force to rebuild it from the corpus.")
        raise DataError(
            f"{data_dir} already holds frozen data ({existing.get('source')}, hash {existing.get('hash', '?')[:12]})"
            f" that differs from {source} (hash {manifest['hash'][:12]}). Results are only comparable on"
            " the same data: keep it, or move data/ away (or pass --force) to replace it."
        )
    data_dir.mkdir(parents=True, exist_ok=True)
    for name, blob in blobs.items():
        atomic_write(data_dir / f"{name}.bin", blob)
    atomic_write(existing_path, json.dumps(manifest, indent=2) + "\n")  # last: a manifest means the splits are complete
    return manifest


def verify(data_dir: Path, manifest: dict) -> list[str]:
    """Return the problems found when checking the frozen files against the manifest."""
    problems = []
    for _name, entry in manifest["splits"].items():
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
