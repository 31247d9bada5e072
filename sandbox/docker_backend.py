"""The Docker backend: untrusted code in a locked-down container, driven through the docker SDK.

The container's PID 1 is `sleep` as user nobody; the job is exec'd as an unprivileged
user beside it. Processes inside cannot signal PID 1, so the container, and with it the
size-capped tmpfs /out, outlives the job until the harness has copied /out out.
The wall clock is enforced from here: at the deadline the whole container is killed. A signal
for the job is sent by an exec'd `kill -1` as the job's user, which reaches every process of
the job but not PID 1; its CPU time is the container's cgroup's (cgroup v1 or v2).
"""

from __future__ import annotations

import contextlib
import tarfile
import tempfile
import threading
import time
from pathlib import Path

import docker
import requests
from docker.types import DeviceRequest, LogConfig
from docker.types import Mount as DockerMount

from sandbox.image import ensure_image
from sandbox.job import (
    MAX_OUT_FILES,
    TMP_MB,
    UID,
    Control,
    Job,
    OutputSink,
    Result,
    SandboxFailed,
    SandboxUnavailable,
    Started,
    Usage,
)
from sandbox.runtime import python_executable, runtime_mounts

LABEL = "autoresearch.sandbox"
API_TIMEOUT = 120
COLLECT_SECONDS = 120  # copying /out out of the sandbox may not hang the harness
# cgroup v1 and v2 names: the peak comes first (a bare number), the OOM-kill count after.
CGROUP_FILES = ("memory/memory.max_usage_in_bytes", "memory.peak", "memory/memory.oom_control", "memory.events")
# What the cgroup has used so far, v1 and v2: CPU time (ns; usage_usec), memory and its reclaimable file cache.
USAGE_FILES = ("cpuacct/cpuacct.usage", "cpu.stat", "memory/memory.usage_in_bytes", "memory.current",
               "memory/memory.stat", "memory.stat")
# What a dead or dying engine raises: API errors, and refused or cut connections to its socket.
ENGINE_ERRORS = (docker.errors.DockerException, requests.exceptions.RequestException)
HIDDEN_DIR = "ro,size=4k,mode=0555"  # the tmpfs shown over a masked directory: empty, read-only
TAR_OUT = "import sys, tarfile\nwith tarfile.open(fileobj=sys.stdout.buffer, mode='w|') as t: t.add('/out', 'out')"


def connect(timeout: float = 5.0) -> docker.DockerClient:
    """A client, once the engine answered a ping within `timeout` (a quick no when there is none)."""
    try:
        client = docker.from_env(timeout=timeout)
        client.ping()
    except Exception as e:
        raise SandboxUnavailable(f"no Docker engine reachable ({type(e).__name__}: {e})") from None
    client.api.timeout = API_TIMEOUT  # a busy engine (a large /out streaming, say) may be slow to answer
    return client


def remove_leftovers(owner_prefix: str, spare: tuple[str, ...] = ()) -> list[str]:
    """Remove the containers a killed harness left running for runs under owner_prefix, but for those of the
    owners in `spare` and below them (experiments still running); their names.

    The wall-clock kill lives in the harness process: if it dies (kill -9, a Bash timeout),
    its container would sleep forever. The caller holds the repository's serial lock and spares the
    experiments whose leases are held, so every other container of this repository is a leftover.
    """
    try:
        client = connect()
    except SandboxUnavailable:
        return []
    removed = []
    for container in client.containers.list(all=True, filters={"label": LABEL}):
        owner = container.labels.get(LABEL, "")
        if owner.startswith(owner_prefix) and not any(owner == p or owner.startswith(p + "/") for p in spare):
            with contextlib.suppress(docker.errors.APIError):
                container.remove(force=True)
                removed.append(container.name)
    return removed


def has_nvidia_runtime(client: docker.DockerClient) -> bool:
    return "nvidia" in (client.info().get("Runtimes") or {})


class DockerBackend:
    name = "docker"

    def __init__(self, client: docker.DockerClient | None = None):
        self.client = client or connect()
        self.image = ensure_image(self.client)

    def container_config(self, job: Job) -> dict:
        mounts = runtime_mounts() + job.mounts
        volumes = {str(m.host): {"bind": m.target, "mode": "rw" if m.writable else "ro"} for m in mounts}
        # Masks lie inside those mounts; the engine mounts parents before children.
        hidden_dirs = {m.target: HIDDEN_DIR for m in job.masks if m.directory}
        hidden_files = [DockerMount(m.target, "/dev/null", type="bind", read_only=True)
                        for m in job.masks if not m.directory]
        limits = job.limits
        memory = f"{int(limits.memory_gb * 1024)}m"
        config = dict(
            image=self.image,
            command=["/usr/bin/sleep", "infinity"],
            user="65534:65534",
            network_mode="none",
            read_only=True,
            cap_drop=["ALL"],
            security_opt=["no-new-privileges"],
            mem_limit=memory,
            memswap_limit=memory,
            pids_limit=limits.pids,
            shm_size=f"{limits.shm_mb}m",
            tmpfs={
                "/out": f"size={limits.output_mb}m,uid={UID},gid={UID},mode=0700",
                "/tmp": f"size={TMP_MB}m,uid={UID},gid={UID},mode=0700",
                **hidden_dirs,
            },
            volumes=volumes,
            mounts=hidden_files,
            ipc_mode="private",
            log_config=LogConfig(type="json-file", config={"max-size": "1m", "max-file": "1"}),
            labels={LABEL: job.owner},
            detach=True,
        )
        if job.lease is not None:  # its slot's cores alone (sandbox/devices.py)
            config["cpuset_cpus"] = ",".join(map(str, job.lease.cpus))
        if job.gpu and has_nvidia_runtime(self.client):
            config["device_requests"] = [DeviceRequest(count=-1, capabilities=[["gpu"]]) if job.lease is None else
                                         DeviceRequest(device_ids=[str(g) for g in job.lease.gpus],
                                                       capabilities=[["gpu"]])]
        return config

    def run(self, job: Job, sink: OutputSink, started: Started | None = None) -> Result:
        """Run the job; SandboxFailed when the engine fails under it (the job's fate is then unknown)."""
        try:
            return self.run_container(job, sink, started)
        except ENGINE_ERRORS as e:
            raise SandboxFailed(f"the Docker engine failed during the run ({type(e).__name__}: {e})") from None

    def run_container(self, job: Job, sink: OutputSink, started: Started | None) -> Result:
        container = self.client.containers.create(**self.container_config(job))
        killed, ended, lock = threading.Event(), threading.Event(), threading.Lock()
        cpu_at_kill: list[float | None] = [None]

        def kill() -> None:
            with lock:  # a job that has ended is not killed: its output is still to be collected
                if ended.is_set() or killed.is_set():
                    return
                killed.set()
            cpu_at_kill[0] = self.usage(container).cpu_seconds  # the cgroup goes with the container
            kill_quietly(container)

        def send(sig: int) -> None:
            with contextlib.suppress(*ENGINE_ERRORS):  # the job ended meanwhile: nothing to stop
                self.exec_output(container, ["/usr/bin/kill", f"-{int(sig)}", "-1"])  # procps: -N, then the pid

        try:
            container.start()
            api = self.client.api
            exec_id = api.exec_create(container.id, job.argv, user=f"{UID}:{UID}", environment=job.env,
                                      workdir=job.workdir)["Id"]
            t0 = time.monotonic()
            timer = threading.Timer(job.timeout_s, kill)
            timer.start()
            try:
                stream = api.exec_start(exec_id, stream=True)
                if started is not None:
                    started(Control(meter=lambda: self.usage(container), signal=send, kill=kill))
                for chunk in stream:
                    sink(chunk)
            except (docker.errors.APIError, OSError):
                if not killed.is_set():
                    raise
            finally:
                timer.cancel()
                with lock:
                    ended.set()
            seconds = time.monotonic() - t0
            exit_code = api.exec_inspect(exec_id).get("ExitCode")
            result = Result(exit_code=exit_code, timed_out=killed.is_set(), seconds=seconds,
                            cpu_seconds=cpu_at_kill[0])
            if not killed.is_set():
                self.exec_output(container, ["/usr/bin/kill", "-9", "-1"])  # what the job left running
                result.peak_memory_mb, result.oom = self.memory_report(container, exit_code)
                result.cpu_seconds = self.usage(container).cpu_seconds
                if job.out_dir is not None:  # after a crash too: its own logs tell what happened
                    result.out_error = self.collect_out(container, job.out_dir, job.limits.output_mb)
            return result
        finally:
            with contextlib.suppress(*ENGINE_ERRORS):  # a dead engine: recover() removes it later
                container.remove(force=True)

    def exec_output(self, container, argv: list[str]) -> bytes:
        api = self.client.api
        exec_id = api.exec_create(container.id, argv, user=f"{UID}:{UID}", stderr=False)["Id"]
        return api.exec_start(exec_id)

    def usage(self, container) -> Usage:
        """CPU time and memory (less the reclaimable file cache, as `docker stats` counts it) of the container's
        cgroup: the job, and the harness's few execs. Read by an exec, 0.06 s (the stats API takes a second)."""
        files = [f"/sys/fs/cgroup/{f}" for f in USAGE_FILES]
        try:
            raw = self.exec_output(container, ["/usr/bin/grep", "-Hs", "", *files])  # each line after its file
        except ENGINE_ERRORS:
            return Usage(None, None)
        found = {}  # "file" or "file:key" -> number
        for line in raw.decode(errors="replace").splitlines():
            path, _, text = line.partition(":")
            words = text.split()
            if words and words[-1].isdigit() and len(words) <= 2:
                found[":".join([path.removeprefix("/sys/fs/cgroup/"), *words[:-1]])] = int(words[-1])
        ns, usec = found.get("cpuacct/cpuacct.usage"), found.get("cpu.stat:usage_usec")
        cpu = ns / 1e9 if ns is not None else None if usec is None else usec / 1e6
        used = found.get("memory/memory.usage_in_bytes", found.get("memory.current"))
        cache = found.get("memory/memory.stat:total_inactive_file", found.get("memory.stat:inactive_file", 0))
        return Usage(cpu, None if used is None else (used - cache) / 2**20)

    def memory_report(self, container, exit_code: int | None) -> tuple[float | None, bool]:
        """Peak memory of the container's cgroup, and whether the kernel OOM-killed in it.

        Read from the container's own read-only cgroup files (the stats API takes a second).
        Docker's OOMKilled flag only covers PID 1; the job is an exec beside it.
        """
        files = [f"/sys/fs/cgroup/{name}" for name in CGROUP_FILES]
        raw = self.exec_output(container, ["/usr/bin/cat", *files]).decode(errors="replace")
        numbers = dict(line.split()[:2] for line in raw.splitlines() if len(line.split()) == 2)
        peak = next((int(line) for line in raw.splitlines() if line.strip().isdigit()), None)
        oom = exit_code == 137 and int(numbers.get("oom_kill", "0")) > 0
        return (peak / 2**20 if peak else None), oom

    def collect_out(self, container, out_dir: Path, cap_mb: int) -> str | None:
        """Copy the container's /out to out_dir: regular files and dirs only, within the cap.

        docker cp cannot see a tmpfs, so /out is streamed out as a tar by the sandbox's own
        interpreter, once nothing of the job runs any more.
        """
        api = self.client.api
        tar_id = api.exec_create(container.id, [python_executable(), "-c", TAR_OUT], user=f"{UID}:{UID}",
                                 stderr=False)["Id"]
        stream = api.exec_start(tar_id, stream=True)
        out_dir.mkdir(parents=True, exist_ok=True)
        # A sparse file holds no tmpfs blocks but streams at its full size: count what arrives.
        limit, received = cap_mb * 2**20 + MAX_OUT_FILES * tarfile.BLOCKSIZE, 0
        deadline = threading.Timer(COLLECT_SECONDS, kill_quietly, args=(container,))
        deadline.start()
        try:
            with tempfile.TemporaryFile() as archive:
                for chunk in stream:
                    received += len(chunk)
                    if received > limit:
                        return f"the output dir is over its cap of {cap_mb} MB"
                    archive.write(chunk)
                archive.seek(0)
                try:
                    return extract_files(archive, out_dir, cap_mb)
                except tarfile.TarError as e:
                    return f"the output dir could not be read: {e}"
        finally:
            deadline.cancel()


def kill_quietly(container) -> None:
    with contextlib.suppress(*ENGINE_ERRORS):  # already gone, or the engine with it
        container.kill()


def extract_files(archive, out_dir: Path, cap_mb: int) -> str | None:
    """Extract regular files under the archive's top dir; refuse what is over the cap."""
    total = 0
    with tarfile.open(fileobj=archive) as tar:
        for count, member in enumerate(tar.getmembers()):
            if count > MAX_OUT_FILES:
                return f"the output dir holds more than {MAX_OUT_FILES} entries"
            parts = Path(member.name).parts
            if not member.isfile() or len(parts) < 2:
                continue  # links, devices and the top dir itself are dropped
            total += member.size
            if total > cap_mb * 2**20:
                return f"the output dir is over its cap of {cap_mb} MB"
            member.name = str(Path(*parts[1:]))
            tar.extract(member, out_dir, filter="data")
    return None
