"""The held-out splits are invisible to training, and proven so before anything trains.

Hiding: the manifest says where its held-out text came from (`hidden`: paths, and for the
default corpus the standard-library packages it was drawn from). Every training job shows
each such path empty (a mask) wherever the runtime's mounts (/usr, the interpreter's prefix,
the venv) make it visible, and each such package in every Python those mounts hold: a second
interpreter under /usr keeps its own copy of the same files.

Proof: fingerprints of val and test (hashes of their long lines that train lacks) are searched
for by eval/scan.py in every readable text file of a sandbox built as a training run's is: same
backend, runtime mounts, training split and masks. The result is stored in data/ under a key of
the data and the sandbox environment (a passed one also in CACHE, for other clones on this machine);
a trial refuses to train until the check for the current key has passed, and runs it the first
time: a scan of the whole filesystem, 1 to 5 minutes on a loaded 2-core machine.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import time
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath

from eval import scan
from eval.data import DataError
from eval.record.runs import read_json, write_json
from sandbox.job import SANDBOX_ENV, Job, Limits, Mask, Mount
from sandbox.runtime import python_executable, runtime_mounts

HELD_OUT = ("val", "test")
MIN_LINE = 32  # characters of a stripped line worth a fingerprint: shorter ones recur by chance
PER_SPLIT = 2048  # fingerprints of each held-out split: its lines of smallest sha256, a fixed uniform sample
MAX_FOUND = 0.02  # share of a split's fingerprints the sandbox may hold by chance (shared boilerplate)
MAX_PER_FILE = 4  # distinct fingerprints in one file that make it a copy, whatever the share
SCAN_SECONDS = 1800
SCAN_LIMITS = Limits(memory_gb=4, pids=64, shm_mb=64, output_mb=1, score_seconds=0)
RESULT = "heldout-check.json"  # in data/: the last check, its key and what it found
FINGERPRINTS = "heldout-fingerprints.json"  # in data/: what the scan looks for (hashes, never text)
PRINTS = "heldout-prints.json"  # in data/ where a split is not sent (a Ray node): the fingerprints, made where it is
SCANNER = Path(__file__).with_name("scan.py")
TRAIN_DATA = "/data/train.bin"  # where every training sandbox shows the training split
STDLIB_DIRS = ("lib*/python3*", "local/lib*/python3*")  # where a mounted prefix keeps a Python's stdlib
PACKAGE_DIRS = ("lib*/python3*/site-packages", "lib*/python3*/dist-packages", "local/lib*/python3*/dist-packages")
SHOWN_FILES = 10  # files named in a refusal
# Passed checks by key, for every clone on this machine: a scan takes minutes, and the key says what it proved.
CACHE = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "autoresearch" / "heldout-checks"


class HeldoutVisible(DataError):
    """Held-out text is readable where training runs; the message names the files and the fix."""


def text_lines(blob: bytes) -> set[bytes]:
    """Stripped lines of at least MIN_LINE characters of UTF-8 text without control bytes (NUL ends a file)."""
    lines = set()
    for line in blob.replace(b"\0", b"\n").split(b"\n"):
        s = line.strip()
        if len(s) >= MIN_LINE and len(s.translate(None, scan.NON_TEXT)) == len(s):
            try:
                s.decode("utf-8")
            except UnicodeDecodeError:
                continue
            lines.add(s)
    return lines


def fingerprints(data_dir: Path, manifest: dict) -> list[tuple[str, int, str]]:
    """(split, crc32, sha256 prefix) of up to PER_SPLIT lines of each held-out split that train does not hold.
    Where a held-out split's file is not here (a Ray node is not sent the test split), the ones write_prints
    made of this data where it was."""
    splits = manifest["splits"]
    if not all((data_dir / splits[name]["file"]).is_file() for name in HELD_OUT):
        shipped = read_json(data_dir / PRINTS)
        if shipped is None or shipped.get("manifest") != manifest["hash"]:
            raise DataError(f"{data_dir} lacks a held-out split ({', '.join(HELD_OUT)}) and {PRINTS} of this data: "
                            "its held-out check cannot know what to look for; run ./run.sh prepare")
        return [(name, crc, sha) for name, crc, sha in shipped["prints"]]
    train = text_lines((data_dir / splits["train"]["file"]).read_bytes())
    chosen: list[tuple[str, int, str]] = []
    taken: set[bytes] = set()
    for name in HELD_OUT:
        lines = text_lines((data_dir / splits[name]["file"]).read_bytes()) - train - taken
        sample = sorted(lines, key=lambda s: hashlib.sha256(s).digest())[:PER_SPLIT]
        taken.update(sample)
        chosen += [(name, *scan.fingerprint(s)) for s in sample]
    return chosen


def write_prints(data_dir: Path, manifest: dict) -> None:
    """data/PRINTS: the fingerprints, for a copy of data/ that is sent no test split (eval/remote.py)."""
    write_json(data_dir / PRINTS, {"manifest": manifest["hash"], "prints": fingerprints(data_dir, manifest)})


def held_out_from(manifest: dict) -> dict:
    """The manifest's `hidden`; a manifest from before it names nothing to mask, and the scan alone decides."""
    return manifest.get("hidden", {"paths": [], "stdlib_packages": []})


def sources(manifest: dict, mounts: list[Mount]) -> list[Path]:
    """The real paths of held-out text: the manifest's, and its stdlib packages in every mounted Python."""
    hidden = held_out_from(manifest)
    found = [Path(p) for p in hidden["paths"]]
    for m in mounts:
        for pattern in STDLIB_DIRS:
            found += [lib / name for lib in Path(m.host).glob(pattern) for name in hidden["stdlib_packages"]]
    return sorted({Path(os.path.realpath(p)) for p in found if p.exists()})


def masks(manifest: dict, mounts: list[Mount] | None = None) -> tuple[Mask, ...]:
    """Where each held-out source appears inside the sandbox, through each mount that holds it."""
    mounts = runtime_mounts() if mounts is None else mounts
    out: dict[str, Mask] = {}
    for source in sources(manifest, mounts):
        for m in mounts:
            host = Path(os.path.realpath(m.host))
            if host.is_relative_to(source):
                raise DataError(f"{source} holds held-out text and the sandbox's runtime {m.host}: hiding it would "
                                "hide the interpreter. Give the corpus a directory of its own and prepare again")
            if source.is_relative_to(host):
                target = str(PurePosixPath(m.target) / source.relative_to(host))
                out[target] = Mask(target, directory=source.is_dir())
    return tuple(out[t] for t in sorted(out))


def shown(code: list[Mount] = ()) -> list[Mount]:
    """What a training sandbox shows of the host besides its own files: the runtime, and the project's task.code."""
    return [*runtime_mounts(), *code]


def environment(manifest: dict, backend: str, code: list[Mount] = ()) -> dict:
    """What the sandbox shows: the backend, the runtime mounts and task.code, the masks, and when each package dir
    last changed (installing a package changes it: a vendored copy of held-out text could come with it)."""
    mounts = shown(code)
    packages = sorted({str(p) for m in mounts for pattern in PACKAGE_DIRS for p in Path(m.host).glob(pattern)})
    return {"backend": backend, "mounts": [[str(m.host), m.target] for m in mounts],
            "masks": [[m.target, m.directory] for m in masks(manifest, mounts)],
            "package_dirs": {p: os.stat(p).st_mtime_ns for p in packages}}


def check_key(manifest: dict, env: dict) -> str:
    """What a scan's verdict depends on: the data (its fingerprints), what the sandbox shows, the scan's rules."""
    rules = [MIN_LINE, PER_SPLIT, MAX_FOUND, MAX_PER_FILE, hashlib.sha256(SCANNER.read_bytes()).hexdigest()]
    return hashlib.sha256(json.dumps([manifest["hash"], env, rules]).encode()).hexdigest()


def scan_job(data_dir: Path, job_masks: tuple[Mask, ...], code: list[Mount] = ()) -> Job:
    """eval/scan.py in a training sandbox: the runtime mounts, the training split, task.code and the masks of a
    training job."""
    return Job(
        argv=[python_executable(), "/harness/scan.py", "/harness/fingerprints.json"],
        mounts=[Mount(data_dir / "train.bin", TRAIN_DATA), Mount(SCANNER, "/harness/scan.py"),
                Mount(data_dir / FINGERPRINTS, "/harness/fingerprints.json"), *code],
        env=SANDBOX_ENV,
        timeout_s=SCAN_SECONDS,
        limits=SCAN_LIMITS,
        masks=job_masks,
        owner=str(data_dir.resolve().parent / "runs" / "heldout-check"),  # recovery removes a leftover under runs/
    )


def parse(output: bytes) -> dict | None:
    for line in reversed(output.decode("utf-8", errors="replace").splitlines()):
        if line.startswith(scan.MARKER):
            return json.loads(line[len(scan.MARKER):])
    return None


def judge(prints: list[tuple[str, int, str]], found: dict[str, list[int]]) -> dict:
    """How many of each split's fingerprints the sandbox holds, which files hold them, and whether that passes."""
    by_split = {name: set() for name in HELD_OUT}
    for hits in found.values():
        for i in hits:
            by_split[prints[i][0]].add(i)
    total = {name: sum(1 for p in prints if p[0] == name) for name in HELD_OUT}
    files = sorted(([path, len(hits)] for path, hits in found.items()), key=lambda f: (-f[1], f[0]))
    share = {name: len(by_split[name]) / total[name] if total[name] else 0.0 for name in HELD_OUT}
    passed = all(s <= MAX_FOUND for s in share.values()) and all(n < MAX_PER_FILE for _, n in files)
    return {"passed": passed, "fingerprints": total, "found": {n: len(s) for n, s in by_split.items()},
            "files": files}


def run_check(data_dir: Path, manifest: dict, backend, job: Job | None = None, code: list[Mount] = ()) -> dict:
    """Scan a training sandbox of this backend for the held-out splits; store and return the result.

    job: the scan job, by default scan_job() of this data (a test widens it to show more).
    code: the mounts of program.md's task.code, which training jobs show too.
    """
    t0 = time.monotonic()
    env = environment(manifest, backend.name, code)
    prints = fingerprints(data_dir, manifest)
    result = {"key": check_key(manifest, env), "time": datetime.now(UTC).isoformat(timespec="seconds"),
              "manifest": manifest["hash"], "environment": env}
    if not prints:  # no long text lines (a table of short rows, binary data): the masks are all there is
        result.update(judge(prints, {}), scanned={}, note="the held-out splits hold no text line of "
                      f"{MIN_LINE}+ characters to fingerprint: nothing to search for; the masks still apply")
    else:
        (data_dir / FINGERPRINTS).write_text(json.dumps([[crc, sha] for _, crc, sha in prints]))
        output = bytearray()
        job = job or scan_job(data_dir, masks(manifest, shown(code)), code)
        outcome = backend.run(job, lambda chunk: output.extend(chunk[:2**20]))
        parsed = parse(bytes(output))
        if parsed is None:
            why = "timed out" if outcome.timed_out else f"exit status {outcome.exit_code}"
            raise DataError(f"the held-out scan could not run in the {backend.name} training sandbox ({why}): "
                            f"{bytes(output[-800:]).decode(errors='replace')}")
        result.update(judge(prints, parsed["found"]), scanned=parsed["scanned"])
    result["seconds"] = round(time.monotonic() - t0, 1)
    write_json(data_dir / RESULT, result)
    if result["passed"]:
        with contextlib.suppress(OSError):  # a read-only home just scans again in the next clone
            CACHE.mkdir(parents=True, exist_ok=True)
            write_json(CACHE / f"{result['key']}.json", result)
    return result


def summary(result: dict) -> str:
    counts = ", ".join(f"{result['found'][n]} of {result['fingerprints'][n]} {n}" for n in HELD_OUT)
    scanned = result["scanned"]
    where = (f"in {scanned.get('text files', 0):,} text files ({scanned.get('text bytes', 0) / 1e6:,.0f} MB) of "
             f"{scanned.get('files', 0):,} files" if scanned else "(no scan)")
    lines = [f"held-out check ({result['environment']['backend']} training sandbox, {result['seconds']:.0f} s): "
             f"{'PASSED' if result['passed'] else 'FAILED'}: {counts} fingerprints found {where}"]
    if result.get("note"):
        lines.append(f"  note: {result['note']}")
    lines += [f"  {n:4d}  {path}" for path, n in result["files"][:SHOWN_FILES]]
    return "\n".join(lines)


def refusal(result: dict, data_dir: Path) -> str:
    return (summary(result) + f"\nrefusing to train: held-out text of {data_dir}/val.bin or test.bin is readable "
            f"inside the training sandbox (above: the files holding it, with their count of the {PER_SPLIT} "
            "fingerprints per split). Remove those copies or move them out of what the sandbox mounts (the "
            "system dirs, the Python prefix, the venv), or prepare other data (./run.sh prepare --corpus DIR); "
            "then run ./run.sh prepare to check again.")


def ensure(data_dir: Path, manifest: dict, backend, say=print, code: list[Mount] = ()) -> tuple[Mask, ...]:
    """The masks of a training job, once this sandbox environment (the runtime, task.code's mounts) is proven
    to show no held-out text.

    The unsafe backend hides nothing: it is said plainly, and training goes on unmasked.
    """
    if backend.name == "unsafe":
        say("[harness] --unsafe-no-sandbox: train.py runs unconfined and can read whatever this user can, the "
            f"held-out splits in {data_dir} and their sources {held_out_from(manifest)['paths']} included: "
            "nothing is hidden, and the score is no evidence of held-out performance")
        return ()
    key = check_key(manifest, environment(manifest, backend.name, code))
    stored = read_json(data_dir / RESULT)
    if (stored is None or stored.get("key") != key) and (passed := read_json(CACHE / f"{key}.json")):
        say(f"[harness] held-out check: passed on {passed['time']} on this machine for the same data and sandbox "
            f"(kept in {CACHE}); ./run.sh prepare scans again")
        write_json(data_dir / RESULT, passed)
        stored = passed
    if stored is None or stored.get("key") != key:
        say(f"[harness] checking that no held-out text is readable in the {backend.name} training sandbox: "
            "a scan of its whole filesystem, once for this data and sandbox (minutes)")
        stored = run_check(data_dir, manifest, backend, code=code)
        say(summary(stored))
    if not stored["passed"]:
        raise HeldoutVisible(refusal(stored, data_dir))
    return masks(manifest, shown(code))
