"""Search a whole sandbox for held-out text: run inside it by eval/heldout.py, standard library only.

    python scan.py FINGERPRINTS.json [ROOT ...]      (ROOT: / by default)

The fingerprints are [crc32, sha256 prefix] pairs of stripped lines of the held-out splits; the
text itself never enters the sandbox. Every regular file that looks like text (and every text
member of a zip or gzip file) is read, each stripped line looked up: crc32 for all (the lookup
runs in C, a set intersection), sha256 only on a crc hit. Skipped and counted: /proc, /sys and
/dev, symlinks, files over MAX_BYTES, binaries, what cannot be read. Forks one worker per CPU.
Prints one line: MARKER and JSON {"found": {path: [fingerprint index, ...]}, "scanned": {...}}.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import stat
import sys
import zipfile
import zlib
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

MARKER = "@@autoresearch-scan "
SKIP = ("/proc", "/sys", "/dev")
MAX_BYTES = 32 * 2**20  # larger files are counted as skipped: source text is far smaller
HEAD = 65536  # the first bytes decide text or binary
NON_TEXT = bytes([*range(0, 8), *range(14, 27), *range(28, 32), 127])  # control bytes text does not hold
MAX_NON_TEXT = 0.05  # share of NON_TEXT bytes in the head above which a file is binary
ARCHIVES = {b"PK\x03\x04": "zip", b"\x1f\x8b": "gzip"}
SHA_HEX = 16  # hex digits of sha256 kept per fingerprint


def fingerprint(line: bytes) -> tuple[int, str]:
    """What the harness computes of a stripped held-out line, and the scan of every line it reads."""
    return zlib.crc32(line), hashlib.sha256(line).hexdigest()[:SHA_HEX]


def is_text(data: bytes) -> bool:
    head = data[:HEAD]
    return len(head) - len(head.translate(None, NON_TEXT)) <= MAX_NON_TEXT * len(head)


def search(data: bytes, crcs: set[int], shas: dict[str, int]) -> set[int]:
    """Indices of the fingerprints whose line occurs in data (lines end at a newline or a NUL)."""
    lines = (data.replace(b"\0", b"\n") if b"\0" in data else data).split(b"\n")
    hits = crcs.intersection(map(zlib.crc32, map(bytes.strip, lines)))
    if not hits:
        return set()
    found = (fingerprint(s) for line in lines if zlib.crc32(s := line.strip()) in hits)
    return {shas[sha] for _, sha in found if sha in shas}


def contents(path: str, data: bytes) -> Iterator[tuple[str, bytes]]:
    """The file itself, or the members of the zip or gzip file it is (one level deep, each capped)."""
    kind = next((k for magic, k in ARCHIVES.items() if data.startswith(magic)), None)
    if kind == "zip":
        with zipfile.ZipFile(io.BytesIO(data)) as z:
            for member in z.infolist():
                if not member.is_dir():
                    with z.open(member) as f:
                        yield f"{path}!{member.filename}", f.read(MAX_BYTES)
    elif kind == "gzip":
        yield f"{path}!", zlib.decompressobj(wbits=31).decompress(data, MAX_BYTES)
    else:
        yield path, data


def files(roots: list[str], counts: Counter) -> Iterator[str]:
    """Every regular file under roots, /proc, /sys and /dev left out; symlinks are not followed."""
    for root in roots:
        for top, dirs, names in os.walk(root, onerror=lambda e: counts.update(["unreadable dirs"])):
            dirs[:] = [d for d in dirs if os.path.join(top, d) not in SKIP]
            for name in names:
                yield os.path.join(top, name)


def scan(paths: list[str], crcs: set[int], shas: dict[str, int]) -> tuple[dict[str, list[int]], Counter]:
    found: dict[str, list[int]] = {}
    counts: Counter = Counter()
    for path in paths:
        try:
            st = os.lstat(path)
            if not stat.S_ISREG(st.st_mode):
                continue
            if st.st_size > MAX_BYTES:
                counts["over MAX_BYTES"] += 1
                continue
            with open(path, "rb") as f:
                data = f.read(MAX_BYTES)
        except OSError:
            counts["unreadable"] += 1
            continue
        try:
            for name, text in contents(path, data):
                if not is_text(text):
                    counts["binary"] += 1
                    continue
                counts["text files"] += 1
                counts["text bytes"] += len(text)
                if hits := search(text, crcs, shas):
                    found[name] = sorted(hits)
        except (zipfile.BadZipFile, zlib.error, OSError, EOFError, RuntimeError, ValueError):
            counts["unreadable archives"] += 1
    return found, counts


def parallel(paths: list[str], crcs: set[int], shas: dict[str, int]) -> tuple[dict[str, list[int]], Counter]:
    """scan() split over one forked worker per CPU, each answering through a pipe."""
    workers = max(1, min(os.cpu_count() or 1, 8))
    children = []
    for k in range(workers):
        r, w = os.pipe()
        pid = os.fork()
        if pid == 0:  # a worker that fails writes nothing: the parent's read fails, and so does the scan
            status = 1
            try:
                os.close(r)
                result = scan(paths[k::workers], crcs, shas)
                with os.fdopen(w, "w") as out:
                    json.dump(result, out)
                status = 0
            finally:
                os._exit(status)
        os.close(w)
        children.append((pid, r))
    found: dict[str, list[int]] = {}
    counts: Counter = Counter()
    for pid, r in children:
        with os.fdopen(r) as f:
            part, part_counts = json.load(f)
        if os.waitpid(pid, 0)[1] != 0:
            raise RuntimeError(f"scan worker {pid} failed")
        found.update(part)
        counts.update(part_counts)
    return found, counts


def main(argv: list[str]) -> int:
    fingerprints = json.loads(Path(argv[0]).read_text())
    crcs = {crc for crc, _ in fingerprints}
    shas = {sha: i for i, (_, sha) in enumerate(fingerprints)}
    counts: Counter = Counter()
    paths = list(files(argv[1:] or ["/"], counts))
    found, scanned = parallel(paths, crcs, shas) if shas else ({}, Counter())
    scanned.update(counts)
    scanned["files"] = len(paths)
    print(MARKER + json.dumps({"found": found, "scanned": dict(scanned)}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
