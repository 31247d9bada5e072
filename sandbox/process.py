"""Run a host process with rlimits, stream its output, kill its whole group at the deadline.

Shared by the bubblewrap backend and the explicit unsafe mode. The output dir is a plain
host dir there, so its cap is watched from outside as well as bounded per file. The job's
processes are the process tree under the one started here (bubblewrap's PID namespace keeps
orphans inside it): signals go to each of them, and their CPU time is read from /proc every
WATCH_EVERY_S (bubblewrap's own rusage misses what ran inside its namespace), so the figure at
the exit misses at most the last WATCH_EVERY_S of it. The count is kept as the most ever read: a
read while a process leaves the tree (its parent not yet charged, or bubblewrap's monitor alone
left at the end) reads low, and a CPU-time count never goes down.
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

from sandbox.job import MAX_OUT_FILES, Control, Job, OutputSink, Result, Started, Usage

WATCH_EVERY_S = 0.2
METER_WAIT_S = 5.0  # a job that ended during a count is reaped within this (the streaming thread is behind it)
TICK, PAGE = os.sysconf("SC_CLK_TCK"), os.sysconf("SC_PAGE_SIZE")


def over_cap(path: Path, cap_bytes: int) -> bool:
    """Apparent size (a sparse file counts in full) or entry count past what the output dir may hold. The job
    writes on meanwhile: an entry gone before it is read counts for nothing."""
    entries = size = 0
    for root, dirs, files in os.walk(path):
        entries += len(dirs) + len(files)
        for name in files:
            with contextlib.suppress(FileNotFoundError):
                size += os.lstat(os.path.join(root, name)).st_size
    return entries > MAX_OUT_FILES or size > cap_bytes


def sanitize_out(out_dir: Path) -> None:
    """Keep only regular files and dirs: a link in the output could point anywhere on the host."""
    for root, dirs, files in os.walk(out_dir):
        for name in dirs + files:
            p = Path(root) / name
            if p.is_symlink() or not (p.is_file() or p.is_dir()):
                p.unlink()


def process_table() -> dict[int, tuple[int, float, int]]:
    """pid -> (parent pid, CPU seconds of the process and of the children it reaped, resident pages), from /proc
    (a sandbox's processes are the host's too, in a namespace of their own)."""
    table = {}
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            try:
                with open(f"/proc/{entry.name}/stat", "rb") as f:
                    fields = f.read().rsplit(b")", 1)[1].split()  # the name in parentheses may hold anything
                utime, stime, cutime, cstime = (int(x) for x in fields[11:15])
                table[int(entry.name)] = (int(fields[1]), (utime + stime + cutime + cstime) / TICK, int(fields[21]))
            except (OSError, IndexError, ValueError):
                continue  # gone meanwhile (a read cut short)
    return table


def tree(root: int, table: dict[int, tuple[int, float, int]]) -> list[int]:
    """root and every live descendant of it."""
    children: dict[int, list[int]] = {}
    for pid, (ppid, *_) in table.items():
        children.setdefault(ppid, []).append(pid)
    found, todo = [], [root]
    while todo:
        pid = todo.pop()
        if pid in table:
            found.append(pid)
            todo += children.get(pid, [])
    return found


def tree_usage(root: int) -> Usage:
    """CPU time (each live process once, each reaped one in its parent's account) and resident memory of the tree."""
    table = process_table()
    pids = tree(root, table)
    if not pids:
        return Usage(None, None)
    return Usage(sum(table[p][1] for p in pids), sum(table[p][2] for p in pids) * PAGE / 2**20)


def signal_tree(root: int, sig: int) -> None:
    for pid in tree(root, process_table()):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, sig)


def lease_env(job: Job) -> dict[str, str]:
    """The GPUs of the job's slot, for backends that cannot hide the others (Docker's device request does)."""
    return {} if job.lease is None else {"CUDA_VISIBLE_DEVICES": job.lease.cuda_visible()}


def limits_preexec(job: Job, memory_limit: bool):
    cap = job.limits.output_mb * 2**20
    memory = int(job.limits.memory_gb * 2**30)

    def apply() -> None:
        os.setsid()
        if job.lease is not None:  # its slot's cores alone, inherited by every process it starts
            os.sched_setaffinity(0, job.lease.cpus)
        resource.setrlimit(resource.RLIMIT_FSIZE, (cap, cap))
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
        if memory_limit:
            resource.setrlimit(resource.RLIMIT_AS, (memory, memory))

    return apply


def run_process(argv: list[str], env: dict[str, str], cwd: Path, job: Job, sink: OutputSink,
                started: Started | None = None) -> Result:
    out_dir = job.out_dir
    if out_dir is not None:
        shutil.rmtree(out_dir, ignore_errors=True)
        out_dir.mkdir(parents=True)
    proc = subprocess.Popen(argv, env=env, cwd=cwd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, preexec_fn=limits_preexec(job, memory_limit=not job.gpu))
    killed, too_big, reaped = threading.Event(), threading.Event(), threading.Event()
    cpu_seen = [0.0]  # the most the tree's count has read (see above): at the kill, by the watch, by the meter
    cpu_at_exit = [0.0]
    lock = threading.Lock()  # a kill and the reaping of the process exclude each other: its pid is not reused

    def count() -> Usage:
        """The tree's usage now, its CPU time never below an earlier count (called under the lock)."""
        usage = tree_usage(proc.pid)
        if usage.cpu_seconds is not None:
            cpu_seen[0] = max(cpu_seen[0], usage.cpu_seconds)
            usage = Usage(cpu_seen[0], usage.memory_mb)
        return usage

    def kill() -> None:
        with lock:
            if reaped.is_set():
                return
            killed.set()
            count()  # the group's kill below ends the count
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)

    def send(sig: int) -> None:
        with lock:
            if not reaped.is_set():
                signal_tree(proc.pid, sig)

    def meter() -> Usage:
        with lock:
            if reaped.is_set():
                return Usage(cpu_at_exit[0], None)
            usage = count()
        if usage.cpu_seconds is None:  # the job ended during the count: wait4 below reaped it, its figure comes
            reaped.wait(METER_WAIT_S)
            with lock:
                if reaped.is_set():
                    return Usage(cpu_at_exit[0], None)
        return usage

    def watch() -> None:
        while not reaped.is_set():
            with lock:
                if not reaped.is_set() and not killed.is_set():
                    count()
            if out_dir is not None and over_cap(out_dir, job.limits.output_mb * 2**20):
                too_big.set()
                kill()
            time.sleep(WATCH_EVERY_S)

    t0 = time.monotonic()
    timer = threading.Timer(job.timeout_s, kill)
    timer.start()
    threading.Thread(target=watch, daemon=True).start()
    if started is not None:
        started(Control(meter=meter, signal=send, kill=kill))
    try:
        for chunk in iter(lambda: proc.stdout.read1(65536), b""):
            sink(chunk)
        _, status, usage = os.wait4(proc.pid, 0)  # its rusage: the descendants it reaped, not bubblewrap's inside
        with lock:
            cpu_at_exit[0] = max(usage.ru_utime + usage.ru_stime, cpu_seen[0])
            reaped.set()
            proc.returncode = os.waitstatus_to_exitcode(status)
    finally:
        timer.cancel()
        if not reaped.is_set():  # an exception while streaming: leave nothing running
            kill()
            proc.wait()
            reaped.set()
    seconds = time.monotonic() - t0
    result = Result(exit_code=proc.returncode, timed_out=killed.is_set() and not too_big.is_set(),
                    seconds=seconds, cpu_seconds=cpu_at_exit[0])
    if out_dir is not None:
        sanitize_out(out_dir)
        if too_big.is_set() or over_cap(out_dir, job.limits.output_mb * 2**20):
            result.out_error = f"the output dir is over its cap of {job.limits.output_mb} MB or {MAX_OUT_FILES} entries"
    if result.exit_code != 0 and not result.timed_out:
        result.oom = proc.returncode == -signal.SIGKILL and not killed.is_set()
    return result
