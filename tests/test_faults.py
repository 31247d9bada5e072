"""Faults a long unattended run meets, each injected for real, and what must hold after each.

A Docker daemon killed mid-run (a private dockerd, never the system's), kill -9 of each hook
at each stage, the sandbox's output dir full, a corrupt and concurrently appended ledger, two
./run.sh at once, program.md broken mid-loop. After every fault `holds()` checks the same
invariants: the attempt is recorded as what it is, train.py is the best version, the ledger
and git agree, no experiment's diff is lost.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import git
import pytest

from eval import experiment
from eval.record import ledger
from eval.record.runs import EXPERIMENT_ID
from tests.conftest import REPO, TEST_FRONT_MATTER, build_repo
from tests.test_sandbox import TINY_BIGRAM

# The test program: one seed per run (a fault test judges one run), short budgets, an 8 MB output dir.
PROGRAM = TEST_FRONT_MATTER.format(metric="val_bpb", direction="minimize", evaluator="eval.scoring.bpb:score", budget=1,
                                   grace=90, memory_gb=2, output_mb=8, seeds=1)
BASELINE = [2.0, 2.01, 1.99]
STARTED = "import time\nprint('started', flush=True)\n"
SLEEPER = STARTED + "time.sleep(300)\n"


# ---------------------------------------------------------------------- the repo and the invariants


@pytest.fixture
def repo(tmp_path: Path, corpus: Path) -> Path:
    """A scratch harness repo whose baseline r0001 is kept (its seeds' metrics written by hand)."""
    root = build_repo(tmp_path / "repo", corpus, program=PROGRAM)
    run_dir = root / "runs" / "r0001"
    run_dir.mkdir(parents=True)
    shutil.copyfile(root / "train.py", run_dir / "train.py")
    for k, value in enumerate(BASELINE, start=1):
        d = run_dir if k == 1 else run_dir / f"s{k}"
        d.mkdir(exist_ok=True)
        (d / "metrics.json").write_text(json.dumps({"id": "r0001", "outcome": "ok", "value": value, "seed": k,
                                                    "hypothesis": "baseline", "total_seconds": 1.0}))
    assert experiment.apply_verdict(root, "r0001")["status"] == "keep"
    (root / "scratchpad.md").write_text("# Scratchpad\n")
    return root


def holds(repo: Path, direction: str = "minimize") -> list[dict]:
    """The invariants every fault must leave intact; returns the ledger rows.

    No verdict pending; the ledger's best is HEAD and train.py is HEAD's; every row's train.py
    is in git (a keep as its commit on the branch, anything else under its discarded ref) and
    equals the snapshot that ran; every run dir has its row; results.tsv is what the ledger says.
    """
    assert experiment.pending(repo) == []
    with warnings.catch_warnings():
        warnings.simplefilter("error", ledger.TornLedger)
        rows = ledger.read(repo)
    r = git.Repo(repo)
    head = r.head.commit
    best = ledger.best(rows, direction)
    assert best is not None and best["commit"] == head.hexsha, "the ledger's best is not HEAD"
    assert (repo / "train.py").read_bytes() == head.tree["train.py"].data_stream.read(), "train.py is not the best"
    assert not r.is_dirty(path="train.py")
    ids = [row["id"] for row in rows]
    assert len(ids) == len(set(ids)), f"a row is in the ledger twice: {ids}"
    for row in rows:
        keeper = row["commit"] if row["status"] == "keep" else row["diff_ref"]
        if row["status"] == "keep":
            assert r.is_ancestor(row["commit"], head), f"{row['id']}: its commit is not on the branch"
        else:
            r.commit(row["commit"])  # the best it was judged against exists
        snapshot = repo / "runs" / row["id"] / "train.py"
        if keeper is None:  # killed before its snapshot: nothing ran
            assert not snapshot.exists(), f"{row['id']}: ran but its diff has no ref"
            continue
        assert r.commit(keeper).tree["train.py"].data_stream.read() == snapshot.read_bytes(), f"{row['id']} lost"
    runs = sorted(p.name for p in (repo / "runs").iterdir() if EXPERIMENT_ID.match(p.name))
    assert runs == ids, f"run dirs without a ledger row: {sorted(set(runs) - set(ids))}"
    assert (repo / "results.tsv").read_bytes() == ledger.render_tsv(rows), "results.tsv disagrees with the ledger"
    return rows


def run_sh(repo: Path, *args: str, env: dict | None = None, timeout: float = 240) -> subprocess.CompletedProcess:
    return subprocess.run(["./run.sh", *args], cwd=repo, capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, **(env or {})})


class Background:
    """./run.sh running beside the test; what it printed so far in .out (train.py's output is in train.log)."""

    def __init__(self, repo: Path, *args: str, env: dict | None = None):
        self.proc = subprocess.Popen(["./run.sh", *args], cwd=repo, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                     text=True, env={**os.environ, **(env or {})})
        self.out = ""
        self.reader = threading.Thread(target=self.read, daemon=True)
        self.reader.start()

    def read(self) -> None:
        for line in self.proc.stdout:
            self.out += line

    def wait(self, timeout: float = 120) -> int:
        code = self.proc.wait(timeout=timeout)
        self.reader.join(timeout=10)
        return code


def wait_for(what: Callable[[], object], timeout: float = 60, message: str = "") -> object:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if value := what():
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout}s waiting for {message or what}")


def training(repo: Path, run_id: str = "r0002") -> bool:
    """Whether train.py of run_id has started (it prints 'started'): its log is written as it runs."""
    log = repo / "runs" / run_id / "train.log"
    return log.exists() and "started" in log.read_text()


def verdict_of(repo: Path, run_id: str) -> dict:
    return json.loads((repo / "runs" / run_id / experiment.VERDICT).read_text())


# ---------------------------------------------------------------------- the Docker daemon dies mid-run


class PrivateDocker:
    """A second dockerd of our own (its socket, pid file, data and exec roots in a temp dir, so its
    containerd's socket, state and pid file too): ours to kill.

    The system's daemon serves other users of this machine and is never touched. Short paths:
    a unix socket path holds at most 107 bytes.

    Starting it again after a kill -9 needs care. The killed dockerd's containerd dies with it
    (its parent-death signal) but lingers as a zombie until whatever reaps orphans here gets to
    it (PID 1 here takes about 2 s, a CI container's PID 1 may never), and its pid file stays. A
    new dockerd that finds that pid alive "adopts" the dead containerd instead of starting one,
    waits on a socket nobody serves and exits after its fixed 15 s: "timeout waiting for
    containerd to start". So start() first makes sure no containerd of ours is left and removes
    the pid files and sockets the dead ones left, and a dockerd that exits before it answers
    (under load its 15 s for containerd can run out) is cleaned up after and started again.
    """

    START_SECONDS = 120  # until it answers, all attempts together: enough on a loaded 2-core CI machine
    ATTEMPTS = 3

    def __init__(self) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="faultd-", dir="/tmp"))
        self.url = f"unix://{self.root}/docker.sock"
        self.containerd_state = self.root / "x" / "containerd"  # dockerd's default for its containerd
        self.proc: subprocess.Popen | None = None

    def start(self) -> float:
        """Start it and wait until it answers; the seconds that took."""
        import docker

        def answers() -> bool:
            with contextlib.suppress(Exception):
                return docker.DockerClient(base_url=self.url, timeout=2).ping()
            return False

        t0 = time.monotonic()
        deadline = t0 + self.START_SECONDS
        for attempt in range(1, self.ATTEMPTS + 1):
            self.clear_leftovers()
            with open(self.root / "log", "ab") as log:
                log.write(f"--- the test starts dockerd (attempt {attempt})\n".encode())
                log.flush()
                self.proc = subprocess.Popen(
                    ["dockerd", "--host", self.url, "--data-root", f"{self.root}/data", "--exec-root",
                     f"{self.root}/x", "--pidfile", f"{self.root}/pid", "--iptables=false", "--ip-masq=false",
                     "--bridge=none", "--shutdown-timeout=2"],
                    stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
            while time.monotonic() < deadline and self.proc.poll() is None:
                if answers():
                    return time.monotonic() - t0
                time.sleep(0.2)
            if self.proc.poll() is None or time.monotonic() >= deadline:
                break  # still starting at the deadline: not worth another try
        self.kill()
        log = (self.root / "log").read_text(errors="replace").splitlines()
        tail = "\n".join(log[-15:])
        raise AssertionError(f"the private dockerd did not answer within {self.START_SECONDS}s "
                             f"({attempt} attempt(s), {self.root / 'log'}):\n{tail}")

    def kill(self) -> None:
        """kill -9 the daemon, as a crash would, and wait until its containerd is dead too.

        dockerd runs in a session of its own; its containerd, in another, gets SIGKILL when dockerd
        dies, and the kill here makes sure of it. Its shims and their containers live on, as after
        a real crash: the restarted daemon reaps them.
        """
        if self.proc is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait()
        self.kill_and_wait([pid for pid, argv in self.processes().items() if Path(argv[0]).name == "containerd"])

    def clear_leftovers(self) -> None:
        """No containerd of ours left, nor the pid files and sockets dead daemons left behind."""
        self.kill_and_wait([pid for pid, argv in self.processes().items() if Path(argv[0]).name == "containerd"])
        stale = [self.root / "pid", self.root / "docker.sock"]
        stale += [self.containerd_state / name for name in
                  ("containerd.pid", "containerd.sock", "containerd.sock.ttrpc", "containerd-debug.sock")]
        for path in stale:
            path.unlink(missing_ok=True)

    def processes(self) -> dict[int, list[str]]:
        """The live processes started for this daemon (dockerd, containerd, shims): pid -> argv."""
        found = {}
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            with contextlib.suppress(OSError):  # gone meanwhile
                argv = (entry / "cmdline").read_bytes().decode(errors="replace").split("\0")
                if any(f"{self.root}/" in arg for arg in argv):  # a zombie's cmdline is empty
                    found[int(entry.name)] = argv
        return found

    @staticmethod
    def kill_and_wait(pids: list[int], timeout: float = 60) -> None:
        """SIGKILL each of pids and their descendants; wait until all are dead (gone, or a zombie)."""
        children: dict[int, list[int]] = {}
        for stat in Path("/proc").glob("[0-9]*/stat"):
            with contextlib.suppress(OSError, ValueError, IndexError):
                children.setdefault(int(stat.read_text().rsplit(")", 1)[1].split()[1]), []).append(
                    int(stat.parent.name))
        doomed, todo = set(), list(pids)
        while todo:
            pid = todo.pop()
            if pid not in doomed:
                doomed.add(pid)
                todo.extend(children.get(pid, []))
        for pid in doomed:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)

        def dead(pid: int) -> bool:
            try:
                return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
            except (OSError, IndexError):
                return True

        wait_for(lambda: all(dead(pid) for pid in doomed), timeout=timeout, message=f"{sorted(doomed)} to die")

    def close(self) -> None:
        """Stop it cleanly (it stops its containers, its containerd and unmounts), then remove its files.

        A daemon killed -9 left its containers running under their shims: started again, it
        reaps them first, as a restarted system daemon would. A shim it does not reap (a
        container created but not yet started when the daemon died) is killed here.
        """
        with contextlib.suppress(Exception):
            if self.proc and self.proc.poll() is not None:
                self.start()
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.kill()
        with contextlib.suppress(AssertionError):
            self.kill_and_wait(list(self.processes()))
        mounts = [line.split()[1] for line in Path("/proc/mounts").read_text().splitlines()]
        for mount in sorted((m for m in mounts if m.startswith(str(self.root))), reverse=True):
            subprocess.run(["umount", "-l", mount], capture_output=True)
        shutil.rmtree(self.root, ignore_errors=True)


@pytest.fixture
def private_docker():
    daemon = PrivateDocker()
    try:
        seconds = daemon.start()
        print(f"private dockerd up in {seconds:.2f}s")
        yield daemon
    finally:
        daemon.close()


def containers_of(daemon: PrivateDocker, repo: Path) -> list[str]:
    import docker

    from sandbox.docker_backend import LABEL

    client = docker.DockerClient(base_url=daemon.url, timeout=10)
    owner = str((repo / "runs").resolve())
    return [c.name for c in client.containers.list(all=True, filters={"label": LABEL})
            if c.labels[LABEL].startswith(owner)]


def test_docker_daemon_killed_mid_run(repo, private_docker):
    env = {"DOCKER_HOST": private_docker.url, "AUTORESEARCH_SANDBOX": "docker"}
    (repo / "train.py").write_text(SLEEPER)
    run = Background(repo, "-m", "sleep through a daemon crash", env=env)
    wait_for(lambda: training(repo), message="training to start")
    private_docker.kill()
    t0 = time.monotonic()
    # A clear crash of the infrastructure, applied as a verdict at once: no score, the candidate under its ref.
    assert run.wait() == 3, run.out
    assert time.monotonic() - t0 < 60, "the harness waited for a dead engine (the kill comes at 91 s)"
    assert "[r0002] VERDICT: CRASH" in run.out and "the Docker engine failed" in run.out, run.out
    assert "not train.py's doing" in run.out  # the agent is told the candidate itself did not fail
    v = verdict_of(repo, "r0002")
    assert (v["status"], v["values"], v["diff_ref"]) == ("crash", [], "refs/autoresearch/discarded/r0002")
    holds(repo)
    # The daemon still down: the forced backend refuses clearly, and nothing is started or lost.
    down = run_sh(repo, env=env)
    assert down.returncode == 2 and "no Docker engine reachable" in down.stderr, down.stderr
    assert not (repo / "runs" / "r0003").exists()
    holds(repo)
    # Back up: the next run works, and the container the killed daemon left behind is gone.
    private_docker.start()
    (repo / "train.py").write_text(TINY_BIGRAM)
    done = run_sh(repo, "-m", "after the daemon came back", env=env)
    assert done.returncode == 0, done.stdout + done.stderr
    assert verdict_of(repo, "r0003")["outcome"] == "ok"
    holds(repo)
    assert containers_of(private_docker, repo) == []


# ---------------------------------------------------------------------- kill -9 of each hook at each stage


def pending_candidate(repo: Path) -> None:
    """r0002 ran (one seed, clearly better than the baseline) and ./run.sh died before its verdict."""
    run_dir = repo / "runs" / "r0002"
    run_dir.mkdir()
    (run_dir / "train.py").write_text("LR = 'the candidate'\n")
    (repo / "train.py").write_text("LR = 'the candidate'\n")
    (run_dir / "metrics.json").write_text(json.dumps({"id": "r0002", "outcome": "ok", "value": 1.5, "seed": 7,
                                                      "hypothesis": "a better LR", "total_seconds": 1.0}))
    (repo / "scratchpad.md").write_text("# Scratchpad\nr0001 | keep | 2.0 | baseline | -\n")  # runs are allowed


def hook_input(repo: Path, event: str) -> dict:
    common = {"session_id": "s", "transcript_path": str(repo / "transcript.jsonl"), "cwd": str(repo)}
    return common | {
        "pre_tool_use": {"hook_event_name": "PreToolUse", "tool_name": "Bash", "tool_use_id": "t1",
                         "tool_input": {"command": "./run.sh -m 'a better LR'"}},
        "post_tool_use": {"hook_event_name": "PostToolUse", "tool_name": "Bash", "tool_use_id": "t1",
                          "tool_input": {"command": "./run.sh -m 'a better LR'"},
                          "tool_response": {"stdout": "[r0002] training train.py", "stderr": "", "interrupted": True}},
        "stop": {"hook_event_name": "Stop", "stop_hook_active": False},
        "session_start": {"hook_event_name": "SessionStart", "source": "startup"},
        "session_end": {"hook_event_name": "SessionEnd", "reason": "other"},
    }[event]


def descendants(pid: int) -> list[int]:
    children = Path(f"/proc/{pid}/task/{pid}/children")
    with contextlib.suppress(OSError):
        found = [int(c) for c in children.read_text().split()]
        return found + [d for c in found for d in descendants(c)]
    return []


def hook_python(launcher: subprocess.Popen) -> int:
    """The pid of the `python -m hooks EVENT` that hooks/launch started."""

    def find() -> int | None:
        for pid in descendants(launcher.pid):
            with contextlib.suppress(OSError):
                argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
                if Path(argv[0].decode()).name.startswith("python") and argv[-4:-2] == [b"-m", b"hooks"]:
                    return pid  # the interpreter itself, not the `timeout` wrapped around it
        return None

    return wait_for(find, timeout=20, message="the hook's python")


def waits_for_a_lock(pid: int) -> bool:
    """Whether pid is blocked on a file lock (/proc/locks lists waiters as `N: -> FLOCK ... PID ...`)."""
    return any(f[1] == "->" and f[5] == str(pid) for f in map(str.split, Path("/proc/locks").read_text().splitlines()))


@contextlib.contextmanager
def ledger_held(repo: Path):
    """Hold the ledger's lock, as an append in progress does: every hook that reads the ledger waits."""
    path = repo / ledger.LEDGER
    with open(path, "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        yield


def launch(repo: Path, event: str) -> subprocess.Popen:
    return subprocess.Popen([str(repo / "hooks" / "launch"), event], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, cwd="/")


def kill_hook(launcher: subprocess.Popen, pid: int) -> tuple[int, str, str]:
    os.kill(pid, signal.SIGKILL)
    with contextlib.suppress(BrokenPipeError):
        launcher.stdin.close()
    code = launcher.wait(timeout=20)
    return code, launcher.stdout.read(), launcher.stderr.read()


def verdict_stage(repo: Path) -> str:
    """How far r0002's verdict got: the first step not done yet (read without locks: the test may hold one)."""
    if not (repo / "runs" / "r0002" / experiment.VERDICT).exists():
        return "decide"
    if not any("Autoresearch-Experiment: r0002" in c.message for c in git.Repo(repo).iter_commits()):
        return "git"
    if b'"id": "r0002"' not in (repo / ledger.LEDGER).read_bytes():
        return "ledger"
    return "done" if verdict_of(repo, "r0002")["applied"] else "plot"


def send(launcher: subprocess.Popen, event: dict) -> None:
    launcher.stdin.write(json.dumps(event))
    launcher.stdin.close()


# Each stage holds the hook where it is and yields its pid; the kill comes before the hold ends.
@contextlib.contextmanager
def at_input(repo: Path, launcher: subprocess.Popen, event: str):
    """Before its input arrived: it has decided nothing yet."""
    yield hook_python(launcher)


@contextlib.contextmanager
def at_ledger(repo: Path, launcher: subprocess.Popen, event: str):
    """While it waits for the ledger (reading the budget or the best, or repairing it)."""
    with ledger_held(repo):
        send(launcher, hook_input(repo, event))
        pid = hook_python(launcher)
        wait_for(lambda: waits_for_a_lock(pid), timeout=20, message="the hook to wait for the ledger")
        yield pid


@contextlib.contextmanager
def mid_verdict(repo: Path, launcher: subprocess.Popen, event: str):
    """PostToolUse between the verdict's git step and its ledger row. No race with a fast hook: git
    waits on a held branch lock (core.filesRefLockTimeout) until the test holds the ledger."""
    r = git.Repo(repo)
    r.git.config("core.filesRefLockTimeout", "60000")
    branch_lock = repo / ".git" / "refs" / "heads" / f"{r.active_branch.name}.lock"
    branch_lock.touch()
    try:
        send(launcher, hook_input(repo, event))
        pid = hook_python(launcher)
        wait_for(lambda: (repo / "runs" / "r0002" / experiment.VERDICT).exists(), timeout=30, message="the decision")
        with ledger_held(repo):
            branch_lock.unlink()
            wait_for(lambda: waits_for_a_lock(pid), timeout=30, message="the hook to reach the ledger step")
            yield pid
    finally:
        branch_lock.unlink(missing_ok=True)


@contextlib.contextmanager
def at_answer(repo: Path, launcher: subprocess.Popen, event: str):
    """PreToolUse decided (allow) and is logging it, not answered yet: the audit log is a FIFO nobody reads."""
    audit = repo / "runs" / "audit.jsonl"
    os.mkfifo(audit)
    try:
        send(launcher, hook_input(repo, event))
        pid = hook_python(launcher)
        wchan = Path(f"/proc/{pid}/wchan")
        wait_for(lambda: text_of(wchan) in ("wait_for_partner", "fifo_open"), timeout=20, message="the audit write")
        yield pid
    finally:
        audit.unlink()


def text_of(path: Path) -> str:
    try:
        return path.read_text()
    except OSError:
        return ""


STAGES = {"at_input": at_input, "at_ledger": at_ledger, "mid_verdict": mid_verdict, "at_answer": at_answer}
# event -> the stages it has: every hook can be killed before its input; those that read the ledger
# can be held there; PostToolUse also between the steps of the verdict it completes, PreToolUse
# between its decision and its answer.
HOOK_STAGES = [(event, stage) for event, stages in {
    "pre_tool_use": ("at_input", "at_ledger", "at_answer"),
    "post_tool_use": ("at_input", "at_ledger", "mid_verdict"),
    "stop": ("at_input", "at_ledger"),
    "session_start": ("at_input", "at_ledger"),
    "session_end": ("at_input",),
}.items() for stage in stages]


@pytest.mark.parametrize(("event", "stage"), HOOK_STAGES)
def test_hook_killed_fails_closed_and_recovery_completes(repo, event, stage):
    pending_candidate(repo)
    (repo / "transcript.jsonl").write_text('{"type": "user"}\n')
    launcher = launch(repo, event)
    with STAGES[stage](repo, launcher, event) as pid:
        reached = verdict_stage(repo)
        code, out, err = kill_hook(launcher, pid)
    # hooks/launch turns the kill into exit 2, the one answer Claude Code treats as blocking: nothing fails open.
    assert code == 2, (code, out, err)
    assert f"hook {event} exited 137" in err and '"allow"' not in out, (out, err)
    assert not (repo / "sessions").exists() or not list((repo / "sessions").glob("*.jsonl"))
    assert reached == ("ledger" if stage == "mid_verdict" else "decide"), f"killed at the {reached} step"
    if stage == "at_answer":  # what the killed hook had decided, and never said: allow
        assert pre_tool_use(repo, "Bash", hook_input(repo, event)["tool_input"])["permissionDecision"] == "allow"
    experiment.recover(repo, say=lambda s: None)  # what the next ./run.sh (or PostToolUse) does first
    rows = holds(repo)
    assert [r["id"] for r in rows] == ["r0001", "r0002"] and rows[-1]["status"] == "keep"
    commits = [c for c in git.Repo(repo).iter_commits() if "Autoresearch-Experiment: r0002" in c.message]
    assert len(commits) == 1, "the keep was committed twice"


# ---------------------------------------------------------------------- the output dir full

FILLER = STARTED + """import os
with open(os.environ["AUTORESEARCH_OUT"] + "/checkpoint.bin", "wb") as f:
    for _ in range(64):  # 64 MB into an 8 MB output dir
        f.write(b"\\0" * 2**20)
        f.flush()
"""


def test_output_dir_full_is_a_crash_with_its_log_and_the_loop_goes_on(repo):
    (repo / "train.py").write_text(FILLER)
    d = experiment.run_experiment(repo, "save a big checkpoint", budget=None, unsafe=False, say=lambda s: None)
    assert (d["status"], d["outcome"], d["values"]) == ("crash", "crash", [])
    assert "No space left on device" in d["log_tail"], d["log_tail"]
    assert "No space left on device" in experiment.verdict_text(d)  # the agent reads why
    assert d["diff_ref"] == "refs/autoresearch/discarded/r0002"
    holds(repo)
    with experiment.exclusive(repo):  # nothing holds the repository: the next ./run.sh may start
        pass


# ---------------------------------------------------------------------- a corrupt ledger, appended concurrently

APPENDER = """
import sys
from pathlib import Path
from eval.record import ledger
repo, first, count = Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
for i in range(first, first + count):
    ledger.append(repo, {"id": f"r{i:04d}", "status": "discard", "outcome": "ok", "metric": "val_bpb",
                         "direction": "minimize", "mean": 2 + i / 1000, "hypothesis": f"try {i}", "commit": "0" * 40})
"""
TEARER = """
import fcntl, os, signal, sys
from pathlib import Path
fd = os.open(Path(sys.argv[1]) / "runs" / "ledger.jsonl", os.O_WRONLY | os.O_APPEND)
fcntl.flock(fd, fcntl.LOCK_EX)  # an append that dies halfway through its line
os.write(fd, b'{"id": "r9999", "status": "keep", "outcome": "ok", "metric": "val_')
os.kill(os.getpid(), signal.SIGKILL)
"""
READER = """
import sys, warnings
from pathlib import Path
from eval.record import ledger
warnings.simplefilter("ignore")
seen = []
for _ in range(int(sys.argv[2])):
    ids = [r["id"] for r in ledger.read(Path(sys.argv[1]))]
    assert len(ids) == len(set(ids)), ids
    assert set(seen) <= set(ids), sorted(set(seen) - set(ids))  # a row once read never disappears
    seen = ids
"""


def python(script: str, *args: object) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", script, *map(str, args)], cwd=REPO, stderr=subprocess.PIPE,
                            text=True, env={**os.environ, "PYTHONPATH": str(REPO)})


def test_corrupt_ledger_lines_under_concurrent_appends_lose_nothing(tmp_path):
    repo = tmp_path
    for i in (1, 2, 3):
        ledger.append(repo, {"id": f"r{i:04d}", "status": "keep", "outcome": "ok", "metric": "val_bpb",
                             "direction": "minimize", "mean": 3 - i / 10, "hypothesis": f"keep {i}",
                             "commit": "1" * 40})
    path = repo / ledger.LEDGER
    lines = path.read_bytes().splitlines(keepends=True)
    path.write_bytes(lines[0] + b"\x00\x00 garbage from a bad disk \xff\n" + b"".join(lines[1:]) + b'{"id": "r00')
    with pytest.warns(ledger.TornLedger):
        assert [r["id"] for r in ledger.read(repo)] == ["r0001", "r0002", "r0003"]
    workers = [python(APPENDER, repo, 100 + 50 * k, 20) for k in range(4)]
    workers += [python(READER, repo, 40) for _ in range(2)]
    tearers = [python(TEARER, repo) for _ in range(6)]
    for p in workers:
        assert p.wait(timeout=120) == 0, p.stderr.read()
    for p in tearers:
        assert p.wait(timeout=60) == -signal.SIGKILL, p.stderr.read()
    ledger.repair(repo)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        rows = ledger.read(repo)
    ids = [r["id"] for r in rows]
    expected = ["r0001", "r0002", "r0003"] + [f"r{100 + 50 * k + i:04d}" for k in range(4) for i in range(20)]
    assert sorted(ids) == sorted(expected), "a row was lost or doubled"
    assert [str(w.message) for w in caught] == [f"{path}: skipped 1 invalid line(s) before the last row"]
    assert path.read_bytes().endswith(b"}\n")  # no torn tail left
    assert (repo / ledger.TSV).read_bytes() == ledger.render_tsv(rows)


# ---------------------------------------------------------------------- two ./run.sh at once

QUICK_CRASH = STARTED + "time.sleep(3)\nraise SystemExit('a quick crash')\n"


def test_second_run_sh_is_refused_and_the_first_completes(repo):
    (repo / "train.py").write_text(QUICK_CRASH)
    first = Background(repo, "-m", "first")
    wait_for(lambda: training(repo), message="the first run to train")
    second = run_sh(repo, "-m", "second")
    assert second.returncode == 2, second.stdout + second.stderr
    assert "another experiment is running in this repository" in second.stderr
    # Its PostToolUse must not judge the first run, still training, as one cut short.
    event = hook_input(repo, "post_tool_use") | {"tool_response": {"stdout": "", "stderr": second.stderr}}
    told = subprocess.run([str(repo / "hooks" / "launch"), "post_tool_use"], input=json.dumps(event),
                          capture_output=True, text=True, timeout=60)
    assert "do not start another run" in json.loads(told.stdout)["hookSpecificOutput"]["additionalContext"]
    assert not (repo / "runs" / "r0002" / experiment.VERDICT).exists()
    assert first.wait() == 3 and "[r0002] VERDICT: CRASH" in first.out, first.out
    assert not (repo / "runs" / "r0003").exists()
    holds(repo)


# ---------------------------------------------------------------------- program.md broken mid-loop


def pre_tool_use(repo: Path, tool: str, tool_input: dict) -> dict:
    event = {"session_id": "s", "hook_event_name": "PreToolUse", "cwd": str(repo), "tool_name": tool,
             "tool_input": tool_input, "tool_use_id": "t1"}
    done = subprocess.run([str(repo / "hooks" / "launch"), "pre_tool_use"], input=json.dumps(event),
                          capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)["hookSpecificOutput"]


def test_program_md_broken_mid_loop_stops_runs_loses_nothing_and_the_fix_resumes(repo):
    good = (repo / "program.md").read_text()
    broken = good.replace("  direction: minimize\n", "  direction: [minimize\n")
    (repo / "train.py").write_text(QUICK_CRASH)
    run = Background(repo, "-m", "running while the human edits")
    wait_for(lambda: training(repo), message="the run to train")
    (repo / "program.md").write_text(broken)  # the human saves a broken edit mid-run
    assert run.wait() == 3 and "[r0002] VERDICT: CRASH" in run.out, run.out  # judged under what it ran with
    holds(repo)
    (repo / "scratchpad.md").write_text("# Scratchpad\nr0002 | crash | - | quick crash | -\n")
    # The guard refuses the next run and says what is wrong, where, and who fixes it; editing goes on.
    answer = pre_tool_use(repo, "Bash", {"command": "./run.sh -m next"})
    reason = answer["permissionDecisionReason"]
    assert answer["permissionDecision"] == "deny"
    assert "program.md is invalid" in reason and "not valid YAML" in reason and "line" in reason, reason
    assert "ask the human" in reason
    edit = {"file_path": str(repo / "train.py"), "old_string": "a", "new_string": "b"}
    assert pre_tool_use(repo, "Edit", edit)["permissionDecision"] == "allow"
    # ./run.sh refuses with the line, and nothing is started or changed.
    before = (repo / "train.py").read_bytes()
    done = run_sh(repo, "-m", "next")
    assert done.returncode == 2 and "not valid YAML" in done.stderr and "line" in done.stderr, done.stderr
    assert not (repo / "runs" / "r0003").exists() and (repo / "train.py").read_bytes() == before
    holds(repo)
    # The human fixes it: the guard lets the run through and the loop goes on.
    (repo / "program.md").write_text(good)
    (repo / "train.py").write_text("raise SystemExit('at once')\n")
    assert pre_tool_use(repo, "Bash", {"command": "./run.sh -m next"})["permissionDecision"] == "allow"
    done = run_sh(repo, "-m", "next")
    assert done.returncode == 3 and "[r0003] VERDICT: CRASH" in done.stdout, done.stdout + done.stderr
    holds(repo)
