"""Run a host process with rlimits, stream its output, kill its whole group at the deadline.

Shared by the bubblewrap backend and the explicit unsafe mode. The output dir is a plain
host dir there, so its cap is watched from outside as well as bounded per file.
"""

from __future__ import annotations

import contextlib
import os
import resource
import shutil
import signal
import subprocess
import threading
import time
from pathlib import Path

from sandbox.job import MAX_OUT_FILES, Job, OutputSink, Result, Started, Usage

WATCH_EVERY_S = 0.2


def over_cap(path: Path, cap_bytes: int) -> bool:
    """Apparent size (a sparse file counts in full) or entry count past what the output dir may hold."""
    entries = list(path.rglob("*"))
    return len(entries) > MAX_OUT_FILES or sum(f.lstat().st_size for f in entries if not f.is_dir()) > cap_bytes


def sanitize_out(out_dir: Path) -> None:
    """Keep only regular files and dirs: a link in the output could point anywhere on the host."""
    for root, dirs, files in os.walk(out_dir):
        for name in dirs + files:
            p = Path(root) / name
            if p.is_symlink() or not (p.is_file() or p.is_dir()):
                p.unlink()


def limits_preexec(job: Job, memory_limit: bool):
    cap = job.limits.output_mb * 2**20
    memory = int(job.limits.memory_gb * 2**30)

    def apply() -> None:
        os.setsid()
        resource.setrlimit(resource.RLIMIT_FSIZE, (cap, cap))
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
        if memory_limit:
            resource.setrlimit(resource.RLIMIT_AS, (memory, memory))

    return apply


def tree_usage(root: int) -> Usage:
    """CPU time and resident memory of a process and every descendant, from /proc (a sandbox's
    processes are the host's too, in a namespace of their own)."""
    parents, used = {}, {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry.name}/stat").read_text()
        except OSError:  # ended meanwhile
            continue
        fields = stat[stat.rindex(")") + 2 :].split()  # after "pid (comm) ": state, ppid, ...
        pid = int(entry.name)
        parents[pid] = int(fields[1])
        used[pid] = (sum(int(f) for f in fields[11:15]), int(fields[21]))  # utime stime cutime cstime; rss pages
    tree, frontier = set(), [root] if root in used else []
    while frontier:
        tree.update(frontier)
        frontier = [pid for pid, parent in parents.items() if parent in frontier and pid not in tree]
    ticks, pages = sum(used[p][0] for p in tree), sum(used[p][1] for p in tree)
    return Usage(ticks / os.sysconf("SC_CLK_TCK"), pages * os.sysconf("SC_PAGE_SIZE") / 2**20) if tree else Usage(
        None, None)


def run_process(argv: list[str], env: dict[str, str], cwd: Path, job: Job, sink: OutputSink,
                started: Started | None = None) -> Result:
    out_dir = job.out_dir
    if out_dir is not None:
        shutil.rmtree(out_dir, ignore_errors=True)
        out_dir.mkdir(parents=True)
    proc = subprocess.Popen(argv, env=env, cwd=cwd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, preexec_fn=limits_preexec(job, memory_limit=not job.gpu))
    killed, too_big = threading.Event(), threading.Event()

    def kill() -> None:
        killed.set()
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)

    def watch() -> None:
        while proc.poll() is None and out_dir is not None:
            if over_cap(out_dir, job.limits.output_mb * 2**20):
                too_big.set()
                kill()
            time.sleep(WATCH_EVERY_S)

    t0 = time.monotonic()
    timer = threading.Timer(job.timeout_s, kill)
    timer.start()
    threading.Thread(target=watch, daemon=True).start()
    if started:
        started(lambda: tree_usage(proc.pid))
    try:
        for chunk in iter(lambda: proc.stdout.read1(65536), b""):
            sink(chunk)
        proc.wait()
    finally:
        timer.cancel()
        if proc.poll() is None:  # an exception while streaming: leave nothing running
            kill()
    result = Result(exit_code=proc.returncode, timed_out=killed.is_set() and not too_big.is_set(),
                    seconds=time.monotonic() - t0)
    if out_dir is not None:
        sanitize_out(out_dir)
        if too_big.is_set() or over_cap(out_dir, job.limits.output_mb * 2**20):
            result.out_error = f"the output dir is over its cap of {job.limits.output_mb} MB or {MAX_OUT_FILES} entries"
    if result.exit_code != 0 and not result.timed_out:
        result.oom = proc.returncode == -signal.SIGKILL and not killed.is_set()
    return result
