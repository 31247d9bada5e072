"""The experiment through real containers: what train.py can and cannot do, and how it is scored.

Each test writes its own train.py into a scratch repo and runs ./run.sh's code path
(eval.trial.run_trial) on the real Docker engine, or bubblewrap where named.
"""

from __future__ import annotations

import json
import math
import os
import re
import threading
import time
from pathlib import Path

import docker
import jsonschema
import pytest

from eval.record.metrics import SCHEMA as METRICS_SCHEMA
from eval.scoring.score import MARKER
from eval.trial import ERROR_CAP, kept_result, parse_score, run_trial
from sandbox import heartbeat
from sandbox.backends import backend
from sandbox.docker_backend import LABEL
from sandbox.job import SANDBOX_ENV, Job, Limits, Mask, SandboxUnavailable
from sandbox.runtime import python_executable
from tests.conftest import write_program

PROBE = r"""
import json, os, socket
results = {}
def attempt(name, fn):
    try:
        fn()
        results[name] = "succeeded"
    except Exception as e:
        results[name] = f"failed: {type(e).__name__}"
attempt("network", lambda: socket.create_connection(("1.1.1.1", 53), timeout=3))
attempt("dns", lambda: socket.getaddrinfo("pypi.org", 443))
attempt("write_code", lambda: open("/code/train.py", "a").write("x"))
attempt("write_root", lambda: open("/evil", "w").write("x"))
attempt("write_data", lambda: open("/data/train.bin", "ab").write(b"x"))
attempt("write_python", lambda: open(os.__file__, "a").write("x"))
attempt("read_train", lambda: open("/data/train.bin", "rb").read(10))
for split in ("val", "test"):
    for path in (f"/data/{split}.bin", f"{REPO}/data/{split}.bin"):
        attempt(f"read_{split}:{path}", lambda p=path: open(p, "rb").read(10))
attempt("read_repo", lambda: os.listdir(REPO))
attempt("write_out", lambda: open(os.environ["AUTORESEARCH_OUT"] + "/ok.txt", "w").write("x"))
results["uid"] = os.getuid()
results["cap_eff"] = [l for l in open("/proc/self/status") if l.startswith("CapEff")][0].split()[1]
json.dump(results, open(os.environ["AUTORESEARCH_OUT"] + "/probe.json", "w"))
"""


def run(repo: Path, train_py: str, **kwargs) -> dict:
    (repo / "train.py").write_text(train_py)
    metrics = run_trial(repo, echo=lambda s: None, **kwargs)
    jsonschema.validate(metrics, METRICS_SCHEMA)
    on_disk = json.loads((repo / "runs" / metrics["id"] / "metrics.json").read_text())
    assert on_disk == metrics
    return metrics


def probe(repo: Path) -> dict:
    metrics = run(repo, f"REPO = {str(repo)!r}\n" + PROBE)
    assert metrics["exit_code"] == 0, metrics["log_tail"]
    return json.loads((repo / "runs" / metrics["id"] / "out" / "probe.json").read_text())


def test_default_train_py_end_to_end(repo):
    metrics = run(repo, (repo / "train.py").read_text())
    assert metrics["outcome"] == "ok", metrics["reason"] + metrics["log_tail"]
    assert metrics["backend"] == "docker"
    assert math.isfinite(metrics["value"]) and 0 < metrics["value"] < 16
    assert metrics["parameters"] > 10_000
    assert metrics["reported"]["steps"] >= 1
    assert metrics["peak_memory_mb"] > 50
    assert (repo / "runs" / metrics["id"] / "out" / "model.pt2").is_file()
    assert "step" in (repo / "runs" / metrics["id"] / "train.log").read_text()
    result = json.loads((repo / "runs" / metrics["id"] / "score.json").read_text())  # the parsed result, harness-kept
    assert result["ok"] and result["value"] == metrics["value"] and result["parameters"] == metrics["parameters"]
    assert MARKER in (repo / "runs" / "scorer" / f"{metrics['id']}.log").read_text()  # the raw output, sealed
    assert not (repo / "runs" / metrics["id"] / "score.log").exists()


def test_only_the_tokened_result_line_counts_and_only_its_flat_fields_are_kept():
    """The result is the last line marked with the job's token (a forged line without it, or with another token, is
    ignored, wherever it comes); score.json gets numbers, flags, short names, lists of numbers; the error capped."""
    result = {"ok": False, "error": "E" * 5000, "value": None, "fold_values": [0.5, 0.25], "metric": "recall_at_1",
              "leak": "x" * 65, "nested": {"a": 1}, "texts": ["a", "b"], "k" * 65: 1}
    line = f"{MARKER}t0k {json.dumps(result)}"
    forged = json.dumps({"ok": True, "value": 0.0001, "finite": True})
    log = f"noise\n{MARKER}t0k {{broken\n{line}\n{MARKER}{forged}\n{MARKER}other {forged}\n{MARKER}t0kk {forged}\n"
    assert kept_result(parse_score(log.encode(), "t0k")) == {
        "ok": False, "error": "E" * ERROR_CAP, "value": None, "fold_values": [0.5, 0.25], "metric": "recall_at_1"}
    assert parse_score(f"{MARKER}t [1, 2]\n".encode(), "t") is None
    assert parse_score(f"{MARKER}t {{oops\n".encode(), "t") is None
    assert parse_score(f"{MARKER}{forged}\n".encode(), "t") is None


@pytest.mark.parametrize("backend", ["docker", "bwrap"])
def test_train_py_is_confined(repo, backend, monkeypatch):
    monkeypatch.setenv("AUTORESEARCH_SANDBOX", backend)
    results = probe(repo)
    allowed = {"read_train", "write_out"}
    for name, verdict in results.items():
        if name in ("uid", "cap_eff"):
            continue
        assert verdict.startswith("failed" if name not in allowed else "succeeded"), (name, verdict)
    assert results["uid"] != 0
    assert int(results["cap_eff"], 16) == 0
    assert (repo / "data" / "val.bin").stat().st_size > 0  # untouched


def test_running_past_the_budget_is_killed(repo):
    write_program(repo, budget=1, grace=3)
    t0 = time.monotonic()
    metrics = run(repo, "import time\nwhile True:\n    time.sleep(1)\n")
    elapsed = time.monotonic() - t0
    assert metrics["outcome"] == "timeout"
    assert 4 <= metrics["training_seconds"] < 4 + 3, metrics["training_seconds"]
    assert elapsed < 30 + metrics["startup_seconds"]  # the launcher imports torch before the clock starts
    assert "budget 1s + grace 3s" in metrics["reason"]


def test_fork_bomb_is_contained(repo):
    write_program(repo, budget=1, grace=20)
    bomb = (
        "import os, time\nwhile True:\n    if os.fork() == 0:\n        time.sleep(60)\n        os._exit(0)\n"
    )
    metrics = run(repo, bomb)
    assert metrics["outcome"] == "crash"
    assert (
        "BlockingIOError" in metrics["log_tail"] or "Resource temporarily unavailable" in metrics["log_tail"]
    )


def test_memory_hog_is_contained_and_reported(repo):
    write_program(repo, budget=1, grace=30, memory_gb=0.25)
    hog = "chunks = []\nwhile True:\n    chunks.append(bytearray(32 * 2**20))\n"
    metrics = run(repo, hog)
    assert metrics["outcome"] == "oom", metrics
    assert "out of memory" in metrics["reason"]


def test_output_size_cap_holds(repo):
    write_program(repo, budget=1, grace=20, output_mb=8)
    filler = (
        "import os\nout = os.environ['AUTORESEARCH_OUT']\n"
        "try:\n    with open(out + '/big', 'wb') as f:\n        for _ in range(64):\n"
        "            f.write(b'x' * 2**20)\nexcept OSError as e:\n    print('write failed:', e)\n"
    )
    metrics = run(repo, filler)
    out = repo / "runs" / metrics["id"] / "out"
    assert "No space left on device" in metrics["log_tail"]
    assert sum(f.stat().st_size for f in out.rglob("*")) <= 8 * 2**20


def test_fake_metrics_do_not_change_the_score(repo):
    forged = (repo / "train.py").read_text() + (
        "\nprint('val_bpb: 0.000100')\n"
        "print('@@autoresearch-score {\"ok\": true, \"value\": 0.0001, \"finite\": true}')\n"
        "fake = {'val_bpb': 0.0001, 'value': 0.0001, 'outcome': 'ok'}\n"
        "json.dump(fake, open(os.path.join(OUT, 'metrics.json'), 'w'))\n"
    )
    metrics = run(repo, forged)
    assert metrics["outcome"] == "ok"
    assert metrics["value"] > 1.0  # the harness's own bits per byte, not the forged 0.0001
    run_dir = repo / "runs" / metrics["id"]
    assert json.loads((run_dir / "metrics.json").read_text())["id"] == metrics["id"]
    assert (
        json.loads((run_dir / "out" / "metrics.json").read_text())["val_bpb"] == 0.0001
    )  # kept aside, unused


def test_crash_is_classified(repo):
    metrics = run(repo, "print('starting')\nraise RuntimeError('boom in train.py')\n")
    assert metrics["outcome"] == "crash"
    assert metrics["exit_code"] == 1
    assert "boom in train.py" in metrics["log_tail"]
    # the scorer that warmed up beside training was sent home, and no container is left behind
    assert "scoring cancelled" in (repo / "runs" / "scorer" / f"{metrics['id']}.log").read_text()
    assert not (repo / "runs" / metrics["id"] / "score.json").exists()  # nothing was scored
    assert not (repo / "runs" / metrics["id"] / "score_in" / "model.pt2").exists()
    owner = str(repo / "runs" / metrics["id"])
    assert docker.from_env().containers.list(all=True, filters={"label": f"{LABEL}={owner}"}) == []


NAN_MODEL = """
import os, torch
class M(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.emb = torch.nn.Embedding(256, 256)
        torch.nn.init.constant_(self.emb.weight, float("nan"))
    def forward(self, idx):
        return self.emb(idx)
seq = int(os.environ["AUTORESEARCH_SEQ_LEN"])
batch = torch.export.Dim("batch", min=1, max=4096)
program = torch.export.export(M(), (torch.zeros(2, seq, dtype=torch.long),), dynamic_shapes=({0: batch},))
torch.export.save(program, os.environ["AUTORESEARCH_OUT"] + "/model.pt2")
"""


def test_nan_is_classified(repo):
    metrics = run(repo, NAN_MODEL)
    assert metrics["outcome"] == "nan", metrics["reason"] + metrics["log_tail"]
    assert metrics["value"] is None


def test_non_causal_model_is_rejected(repo):
    peeking = NAN_MODEL.replace('torch.nn.init.constant_(self.emb.weight, float("nan"))', "").replace(
        "return self.emb(idx)", "return self.emb(idx.flip(1))"
    )
    metrics = run(repo, peeking)
    assert metrics["outcome"] == "crash"
    assert "not causal" in metrics["reason"]


TINY_BIGRAM = """
import os, time, torch
torch.manual_seed(int(os.environ["AUTORESEARCH_SEED"]))
data = torch.frombuffer(bytearray(open(os.environ["AUTORESEARCH_DATA"], "rb").read()), dtype=torch.uint8).long()
table = torch.nn.Embedding(256, 256)
opt = torch.optim.Adam(table.parameters(), lr=0.1)
t0 = time.time()
while time.time() - t0 < float(os.environ["AUTORESEARCH_BUDGET_S"]):
    ix = torch.randint(len(data) - 1, (512,))
    loss = torch.nn.functional.cross_entropy(table(data[ix]), data[ix + 1])
    opt.zero_grad(); loss.backward(); opt.step()
seq = int(os.environ["AUTORESEARCH_SEQ_LEN"])
batch = torch.export.Dim("batch", min=1, max=4096)
program = torch.export.export(table, (torch.zeros(2, seq, dtype=torch.long),), dynamic_shapes=({0: batch},))
torch.export.save(program, os.environ["AUTORESEARCH_OUT"] + "/model.pt2")
"""


def test_a_second_task_with_another_metric_and_direction(repo):
    write_program(repo, metric="val_acc", direction="maximize", evaluator="eval.scoring.accuracy:score", budget=2)
    metrics = run(repo, TINY_BIGRAM)
    assert metrics["outcome"] == "ok", metrics["reason"] + metrics["log_tail"]
    assert (metrics["metric"], metrics["direction"]) == ("val_acc", "maximize")
    assert 0.2 < metrics["value"] <= 1.0  # a trained bigram table predicts this code well above chance
    assert metrics["parameters"] == 256 * 256


def test_no_sandbox_refuses_unless_unsafe(repo, monkeypatch):
    from sandbox.backends import select_backend
    from sandbox.job import SandboxUnavailable

    monkeypatch.setenv("DOCKER_HOST", "unix:///nonexistent/docker.sock")
    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(SandboxUnavailable, match="--unsafe-no-sandbox"):
        select_backend()
    assert select_backend(unsafe=True).name == "unsafe"
    metrics = run(repo, TINY_BIGRAM.replace("< float(", "< 0 * float("), unsafe=True)
    assert metrics["backend"] == "unsafe"
    assert metrics["outcome"] == "ok", metrics["reason"] + metrics["log_tail"]


QUIET = """
import time
held = [0] * 5_000_000  # 40 MB the heartbeat's memory figure must see
start = time.time()
while time.time() - start < 7:
    pass
print("done, quietly")
"""
BEAT = re.compile(r"^\[r0001\] \[harness\] no output for \d+ s; \d+:\d\d elapsed, \d+:\d\d of the 20 s budget left; "
                  r"CPU \d+\.\d cores, memory (\d+) MB$")


@pytest.mark.parametrize("backend", ["docker", "bwrap"])
def test_a_quiet_train_py_gets_a_harness_heartbeat(repo, backend, monkeypatch):
    """Nothing printed: the harness says the run is alive (elapsed, budget left, the sandbox's CPU and memory)
    in the run's output, and never in train.log, which is train.py's own."""
    monkeypatch.setenv("AUTORESEARCH_SANDBOX", backend)
    monkeypatch.setattr(heartbeat, "QUIET_S", 2.0)
    write_program(repo, budget=20, grace=20)
    (repo / "train.py").write_text(QUIET)
    said: list[str] = []
    metrics = run_trial(repo, echo=said.append)
    beats = [line for line in said if "[harness] no output" in line]
    assert len(beats) >= 2, said
    for line in beats:
        match = BEAT.match(line)
        assert match, line
        assert int(match.group(1)) >= 30
    log = (repo / "runs" / metrics["id"] / "train.log").read_text()
    assert "done, quietly" in log and "[harness]" not in log


def test_a_silent_train_py_is_waited_for(repo):
    """No output for longer than any client timeout: the harness waits for the budget, not the chatter."""
    write_program(repo, budget=1, grace=20)
    metrics = run(repo, "import time\ntime.sleep(12)\nprint('awake')\n")
    assert metrics["exit_code"] == 0 and "awake" in metrics["log_tail"]


@pytest.mark.parametrize("backend, script", [("docker", "default"), ("bwrap", "tiny bigram")])
def test_the_harness_stops_training_at_the_budget_and_measures_it(repo, backend, script, monkeypatch):
    """The default train.py stops at SIGURG (here with its own clock at ten times the budget), TINY_BIGRAM at
    its own clock: both ok, stopped at the launcher's marker + budget, their compute after the stop within the
    allowance, the figures in metrics.json."""
    from eval.clock import EXPORT_CPU_S, OVERSHOOT

    monkeypatch.setenv("AUTORESEARCH_SANDBOX", backend)
    write_program(repo, budget=3)
    default = (repo / "train.py").read_text().replace("BUDGET_S = float(", "BUDGET_S = 10 * float(")
    metrics = run(repo, default if script == "default" else TINY_BIGRAM)
    assert metrics["outcome"] == "ok", metrics["reason"] + metrics["log_tail"]
    assert metrics["backend"] == backend and metrics["startup_seconds"] > 0
    stop_after_marker = metrics["training_seconds"] - metrics["after_stop_seconds"]
    assert abs(stop_after_marker - 3) < 1.5, metrics
    after, total = metrics["after_stop_cpu_seconds"], metrics["cpu_seconds"]
    assert 0 < after <= OVERSHOOT * (total - after) + EXPORT_CPU_S and total > after + 1, metrics  # torch's import
    if script == "default":
        assert 0 < metrics["reported"]["training_seconds"] < 3 + 2  # the signal stopped it, within a step


def test_the_clock_finds_its_marker_split_over_chunks_and_only_the_first():
    from eval.clock import Clock
    from sandbox.launch import MARKER

    seen, clock = [], Clock(budget=1, grace=1)
    sink = clock.watch(seen.append)
    head, tail = MARKER.encode()[:5], MARKER.encode()[5:]
    for chunk in (b"a warning from torch\n", head):
        sink(chunk)
        assert clock.t_marker is None
    sink(tail + b" (torch imported)\n")
    first = clock.t_marker
    sink(MARKER.encode() + b"\n")  # train.py printing the marker itself
    assert first is not None and clock.t_marker == first
    mark = MARKER.encode()
    assert b"".join(seen) == b"a warning from torch\n" + mark + b" (torch imported)\n" + mark + b"\n"  # all passed on



@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")
def test_the_scorer_starts_at_the_stop_signal_and_a_failed_start_still_ends_the_job():
    """Clock.at_stop (where a small machine starts the scorer, beside the export) runs once, after the first
    stop signal; when it raises, the job is still signalled and, at the grace, killed."""
    import subprocess
    import sys
    import threading
    import time
    import types

    from eval.clock import Clock
    from sandbox.job import Control
    from sandbox.launch import MARKER, STOP_SIGNAL

    code = (f"import signal, time; signal.signal({int(STOP_SIGNAL)}, lambda *_: print('heard', flush=True)); "
            f"print({MARKER!r}, flush=True); time.sleep(60)")
    job = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE)
    events = []

    def at_stop():
        events.append("at_stop")
        raise RuntimeError("the scorer could not start")

    clock = Clock(budget=0.5, grace=2.0, at_stop=at_stop)
    sink = clock.watch(lambda chunk: events.append(chunk.decode().strip()))
    clock.started(Control(meter=lambda: types.SimpleNamespace(cpu_seconds=0.0),
                          signal=lambda s: (events.append("signal"), job.send_signal(s)),
                          kill=lambda: (events.append("kill"), job.kill())))
    reader = threading.Thread(target=lambda: [sink(line) for line in job.stdout], daemon=True)
    reader.start()
    t0 = time.monotonic()
    job.wait(timeout=30)
    clock.finish()
    reader.join(5)
    assert events[0] == MARKER and events[1:3] == ["signal", "at_stop"] and events.count("at_stop") == 1, events
    assert events[-1] == "kill" and events.count("signal") >= 2 and "heard" in events, events  # resent, then killed
    assert time.monotonic() - t0 < 0.5 + 2.0 + 5


MASK_PROBE = """
import json, os, sys
stdlib = os.path.dirname(os.__file__)
seen = {"masked_dir": os.listdir(os.path.join(stdlib, "idlelib")),
        "masked_file": open(os.path.join(stdlib, "this.py")).read(),
        "beside": os.path.isfile(os.path.join(stdlib, "json", "__init__.py"))}
for name, fn in (("write_dir", lambda: open(os.path.join(stdlib, "idlelib", "x.py"), "w")),
                 ("import", lambda: __import__("idlelib.pyshell"))):
    try:
        fn()
        seen[name] = "succeeded"
    except Exception as e:
        seen[name] = type(e).__name__
print(json.dumps(seen))
"""


@pytest.mark.parametrize("name", ["docker", "bwrap"])
def test_masked_paths_show_empty_and_read_only(name):
    """Job.masks: a directory inside a runtime mount is an empty read-only one, a file an empty file."""
    stdlib = Path(os.__file__).resolve().parent
    job = Job(argv=[python_executable(), "-c", MASK_PROBE], mounts=[], env=SANDBOX_ENV, timeout_s=60,
              limits=Limits(1, 64, 64, 8, 10),
              masks=(Mask(str(stdlib / "idlelib")), Mask(str(stdlib / "this.py"), directory=False)))
    output = bytearray()
    result = backend(name).run(job, output.extend)
    assert result.exit_code == 0, output.decode()
    seen = json.loads(output.decode().strip().splitlines()[-1])
    assert (stdlib / "idlelib" / "pyshell.py").is_file() and (stdlib / "this.py").stat().st_size > 0  # on the host
    assert seen == {"masked_dir": [], "masked_file": "", "beside": True, "write_dir": "OSError",
                    "import": "ModuleNotFoundError"}


def test_the_unsafe_backend_refuses_to_pretend_it_hides_anything(tmp_path):
    job = Job(argv=["true"], mounts=[], env={}, timeout_s=10, limits=Limits(1, 64, 64, 8, 10),
              masks=(Mask(str(tmp_path)),))
    with pytest.raises(SandboxUnavailable, match="cannot hide"):
        backend("unsafe").run(job, lambda chunk: None)


LEAVER = r"""
import os, sys, time
pid_file = sys.argv[1]
read, write = os.pipe()
if os.fork() == 0:  # M: starts C, waits until C has burned its CPU, then ends without waiting for it
    if os.fork() == 0:  # C: burns 1.5 CPU-seconds, then lets go of the output and idles outside the tree
        t = time.process_time()
        while time.process_time() - t < 1.5:
            pass
        open(pid_file, "w").write(str(os.getpid()))
        for fd in (0, 1, 2):
            os.close(fd)
        os.write(write, b"x")
        time.sleep(30)
        os._exit(0)
    os.read(read, 1)
    time.sleep(1.0)  # the watch counts C's CPU meanwhile
    os._exit(0)  # C is orphaned: adopted outside the job's tree, its CPU in no account the job can read
os.wait()
time.sleep(1.0)  # the watch reads the tree without C
"""


def test_cpu_a_process_used_before_it_left_the_tree_stays_counted(tmp_path):
    """A CPU-time count never goes down: a process that left the job's tree (orphaned without being waited for,
    or bubblewrap's monitor left alone at the end) took its time out of every later read of the tree."""
    pid_file = tmp_path / "c.pid"
    job = Job(argv=[python_executable(), "-c", LEAVER, str(pid_file)], mounts=[], env={}, timeout_s=60,
              limits=Limits(1, 64, 64, 8, 10))
    output = bytearray()
    try:
        result = backend("unsafe").run(job, output.extend)
    finally:
        if pid_file.exists():
            os.kill(int(pid_file.read_text()), 9)
    assert result.exit_code == 0, output.decode()
    assert result.cpu_seconds >= 1.4, result


def test_the_meter_read_as_the_job_is_reaped_gives_its_exit_figure(monkeypatch):
    """Between wait4 reaping the job and the backend marking it reaped, /proc has no such process: a meter read
    there (the clock's at the stop) gave no CPU time, and the run was a crash for compute it could not measure."""
    reap = os.wait4

    def slow_reap(pid: int, options: int):
        done = reap(pid, options)
        time.sleep(0.5)  # the reaping thread held up: every read now falls in that window
        return done

    monkeypatch.setattr(os, "wait4", slow_reap)
    job = Job(argv=[python_executable(), "-c", "import time\nt = time.process_time()\n"
                    "while time.process_time() - t < 0.3:\n    pass\n"],
              mounts=[], env={}, timeout_s=60, limits=Limits(1, 64, 64, 8, 10))
    reads: list[float | None] = []
    stop, pollers = threading.Event(), []

    def started(control) -> None:
        def poll() -> None:
            while not stop.is_set():
                reads.append(control.meter().cpu_seconds)
                time.sleep(0.01)
        pollers.append(threading.Thread(target=poll, daemon=True))
        pollers[0].start()

    try:
        result = backend("unsafe").run(job, lambda chunk: None, started)
    finally:
        stop.set()
        pollers[0].join()
    assert result.exit_code == 0 and result.cpu_seconds >= 0.25
    assert reads and None not in reads, reads
    assert result.cpu_seconds in reads  # a read in the window waited for the figure at the exit
