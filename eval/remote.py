"""A trial on a Ray cluster: the same sandbox (eval/trial.py run_trial), on a node's own slot.

Why: one machine runs as many experiments at once as it has slots; a cluster runs as many as its nodes
offer. What runs where:
  this machine   git, the ledger, the agents, the verdicts; it snapshots the candidate into runs/<id>/ first
                 (a node that dies leaves it there, kept under its ref like any failed run), ships the
                 snapshot, task.code and the frozen data/ (not its test split: hashes of it instead) to a
                 node, and writes back what the trial made;
  a node         the Ray task node_trial: the frozen data cached once per manifest hash, a lease of its own
                 (eval/leases.py on the node's disk), run_trial in a scratch repository, its files returned.
An experiment's trials after its first run on the first one's node: the candidate and the best's reruns
beside it are measured on one machine. Slots: each node offers SLOT resources (`ray start --resources
'{"autoresearch_slot": N}'`), one per experiment it may run at once; its cores are split among them
(sandbox/devices.py), a GPU comes from Ray (num_gpus=1) when program.md's devices ask for one and the
cluster has any. A node that dies, or a task Ray cannot finish or schedule in time: the trial is recorded
as an infrastructure crash (never retried elsewhere: another node would measure other compute). What
refuses a run locally refuses it on a node too (REFUSALS: no sandbox there, another harness version).
The nodes import this harness (the same commit) from their own Python path: Ray ships no code here. ray is
imported where it is used: an experiment without a cluster does not pay for its import (a second).
"""

from __future__ import annotations

import hashlib
import io
import os
import shutil
import tarfile
import tempfile
import uuid
from pathlib import Path

from eval import config, heldout, leases
from eval.clock import START_CAP_S
from eval.data import DataError, load_manifest
from eval.record import metrics as metrics_file
from eval.record.runs import scorer_log
from eval.trial import HARNESS, check_code, infrastructure, run_trial, snapshot
from sandbox import devices
from sandbox.backends import remove_leftovers
from sandbox.job import Lease, SandboxFailed, SandboxUnavailable

ENV = "AUTORESEARCH_RAY"  # the cluster's address (ray.init's): set by ./run.sh loop --ray, or by a human
NODE_DIR_ENV = "AUTORESEARCH_RAY_NODE_DIR"  # where a node keeps its data cache, leases and scratch trials
SLOT = "autoresearch_slot"  # the custom resource a node offers: one per experiment it may run at once
DISPATCH_MARGIN_S = 600  # beyond a trial's own timeouts: shipping, queueing, a fresh node's held-out check
REFUSALS = (config.ConfigError, DataError, SandboxUnavailable)  # what refuses a run locally (./run.sh exit 2): on
# a node too (no sandbox there, another harness version, held-out text visible), not a crash of the candidate
VERSIONED = ("eval", "sandbox")  # the harness code a node must share with this machine to measure alike


def harness_version(root: Path = HARNESS) -> str:
    """One hash of the harness's measuring code: a node running another version would measure differently."""
    digest = hashlib.sha256()
    for f in sorted(p for name in VERSIONED for p in (root / name).rglob("*.py")):
        digest.update(f"{f.relative_to(root).as_posix()}\0".encode())
        digest.update(f.read_bytes())
    return digest.hexdigest()


def pack(root: Path, rels: list[str]) -> bytes:
    """The files and folders at these relative paths under root, as one tar (the trial's baggage)."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for rel in rels:
            tar.add(root / rel, arcname=rel, filter=lambda t: None if "__pycache__" in t.name else t)
    return buf.getvalue()


def unpack(blob: bytes, root: Path) -> None:
    with tarfile.open(fileobj=io.BytesIO(blob)) as tar:
        tar.extractall(root, filter="data")


def files_under(root: Path) -> list[str]:
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())


def shipped_data(data_dir: Path, manifest: dict) -> list[str]:
    """What a node is sent of data/: all but the test split (only confirm scores it, and on this machine) and this
    machine's held-out check (a node proves its own sandbox), with the fingerprints its check needs instead."""
    heldout.write_prints(data_dir, manifest)
    withheld = {manifest["splits"]["test"]["file"], heldout.RESULT, heldout.FINGERPRINTS}
    return [f for f in files_under(data_dir) if f not in withheld]


class RayMeasure:
    """The Measure that runs each trial on a node of the Ray cluster at `address` (eval/experiment.py): one per
    experiment (./run.sh's process), whose trials after the first run on the first one's node, so that the
    candidate and the best's reruns beside it are measured on one machine, as locally on one slot."""

    def __init__(self, address: str) -> None:
        import ray

        self.address = address
        try:
            ray.init(address=address, logging_level="ERROR", log_to_driver=False)
        except (ConnectionError, RuntimeError) as e:
            raise SandboxUnavailable(f"cannot reach the Ray cluster at {address} ({ENV}): {e}") from e
        self.data: dict[str, ray.ObjectRef] = {}  # manifest hash -> data/ in the object store, put once
        self.node_trial = ray.remote(max_retries=0, num_cpus=0, resources={SLOT: 1})(node_trial)
        self.node: str | None = None  # the node of the first trial that ran
        self.version = harness_version()  # what every node must run too, hashed once

    def slots(self) -> list[Lease]:
        """This machine's side of the cluster's slots: as many experiments at once as the nodes offer SLOTs
        (names only; the cores are chosen on the node). Refused while the cluster offers none."""
        import ray

        n = int(ray.cluster_resources().get(SLOT, 0))
        if n == 0:
            raise SandboxUnavailable(f"the Ray cluster at {self.address} offers no {SLOT}: start its nodes with "
                                     f"ray start ... --resources '{{\"{SLOT}\": N}}' (N experiments at once each)")
        return [Lease(f"ray{i}", ()) for i in range(n)]

    def __call__(self, repo: Path, program: config.Program, trial: tuple[str, Path], source: Path,
                 hypothesis: str, budget: float, seed: int, unsafe: bool = False,
                 lease: Lease | None = None) -> dict:
        import ray
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        task = program.task
        run_id, run_dir = trial
        check_code(repo, task)
        snapshot(task, source.parent, run_dir)  # here first: a node that dies leaves the candidate to keep
        manifest = load_manifest(repo / "data")
        if manifest["hash"] not in self.data:
            self.data[manifest["hash"]] = ray.put(pack(repo / "data", shipped_data(repo / "data", manifest)))
        gpu = bool(program.devices.gpus) and ray.cluster_resources().get("GPU", 0) > 0  # gpus: [] asks for none
        wait = START_CAP_S + budget + task.grace_seconds + 30 + program.limits.score_seconds + DISPATCH_MARGIN_S
        where = NodeAffinitySchedulingStrategy(self.node, soft=False) if self.node else "DEFAULT"
        ref = self.node_trial.options(num_gpus=1 if gpu else 0, scheduling_strategy=where).remote(
            self.version, program, run_id, run_dir.relative_to(repo).as_posix(),
            pack(run_dir, task.editable), pack(repo, task.code), manifest["hash"], [self.data[manifest["hash"]]],
            hypothesis, budget, seed, unsafe)
        try:
            back = ray.get(ref, timeout=wait)
        except ray.exceptions.GetTimeoutError:
            ray.cancel(ref, force=True)
            return lost(repo, program, trial, hypothesis, budget, seed, manifest["hash"],
                        f"the Ray cluster did not finish the trial within {wait:.0f}s")
        except ray.exceptions.RayError as e:  # the node or its worker died, or the task failed on the node
            if isinstance(cause := getattr(e, "cause", None), REFUSALS):
                for top in {Path(rel).parts[0] for rel in task.editable}:  # as locally, nothing ran
                    (shutil.rmtree if (run_dir / top).is_dir() else Path.unlink)(run_dir / top)
                raise cause from None
            return lost(repo, program, trial, hypothesis, budget, seed, manifest["hash"], one_line(e))
        self.node = self.node or back["node"]
        unpack(back["run"], run_dir)
        scorer_log(repo, run_id).write_bytes(back["scorer"])
        metrics = {**back["metrics"], "node": back["node"]}
        metrics_file.write(run_dir, metrics)
        return metrics


def one_line(e: Exception) -> str:
    """A Ray error's first sentence: the exception a task raised on its node (RayTaskError.cause), else Ray's
    own (NodeDiedError: the node it was running on is dead)."""
    cause = getattr(e, "cause", None) or e
    first = (str(cause).strip().splitlines() or [""])[0].split(". ")[0]
    return f"{type(cause).__name__}: {first}"


def probe(address: str) -> int:
    """How many experiments the cluster at address runs at once (its SLOTs); SandboxUnavailable if none."""
    import ray

    try:
        return len(RayMeasure(address).slots())
    finally:
        ray.shutdown()


def lost(repo: Path, program: config.Program, trial: tuple[str, Path], hypothesis: str, budget: float, seed: int,
         manifest_hash: str, why: str) -> dict:
    """The metrics of a trial the cluster lost: an infrastructure crash, no score; the snapshot stays in the
    run dir, so the verdict keeps the candidate under its ref."""
    run_id, run_dir = trial
    reason = infrastructure(SandboxFailed(f"Ray: {why}"))
    (run_dir / "train.log").write_text(f"[harness] {reason}\n")
    train_sha = hashlib.sha256((run_dir / "train.py").read_bytes()).hexdigest()
    metrics = metrics_file.record(run_id, program.task, hypothesis, seed, budget, train_sha, manifest_hash,
                                  "ray", outcome="crash", reason=reason, log_tail=reason)
    metrics_file.write(run_dir, metrics)
    return metrics


def node_dir() -> Path:
    return Path(os.environ.get(NODE_DIR_ENV) or Path(tempfile.gettempdir()) / "autoresearch-ray")


def cached_data(root: Path, manifest_hash: str, data: list) -> Path:
    """The frozen data on this node: fetched (data[0], an ObjectRef Ray does not fetch unless asked) once per
    manifest hash."""
    import ray

    cache = root / "data" / manifest_hash
    if not cache.is_dir():
        part = root / "data" / f".{uuid.uuid4().hex}"
        unpack(ray.get(data[0]), part)
        try:
            part.rename(cache)
        except OSError:  # another trial on this node got there first
            shutil.rmtree(part)
    return cache


def node_lease(root: Path) -> leases.Held:
    """A slot of this node of its own: Ray counts the SLOTs, the flock says which cores. Taken under the node's
    serial lock, which also removes the containers that trials no lease names left behind (a dead driver's)."""
    import ray

    from eval.experiment import serial

    node = ray.get_runtime_context().get_node_id()
    offered = next(n["Resources"] for n in ray.nodes() if n["NodeID"] == node).get(SLOT, 0)
    pool = devices.slots([], int(offered))
    with serial(root):
        held = leases.take(root, pool)
        if held is None:
            raise SandboxFailed(f"every one of this node's {len(pool)} slots is leased, yet Ray started a trial")
        spare = tuple(str(scratch_dir(root, name).resolve()) for name in leases.live_runs(root))
        remove_leftovers(str((root / "trials").resolve()) + "/", spare)
        leases.claim(held, held.lease.name, scratch_dir(root, held.lease.name))
        return held


def scratch_dir(root: Path, slot: str) -> Path:
    """A slot's scratch repository, the same for each of its trials: the held-out check's key holds the paths of
    task.code's mounts, so a fresh path per trial would scan again each time."""
    return root / "trials" / slot


def node_trial(version: str, program: config.Program, run_id: str, run_rel: str, editable: bytes, code: bytes,
               manifest_hash: str, data: list, hypothesis: str, budget: float, seed: int, unsafe: bool) -> dict:
    """On a node, as a Ray task of one SLOT (RayMeasure): run_trial in the scratch repository of a slot of this
    node; what the trial wrote, returned."""
    import ray

    if version != harness_version():
        raise SandboxUnavailable("this node runs another version of the harness's eval/ and sandbox/; "
                                 "give every node the repository's commit")
    root = node_dir() / ray.get_runtime_context().get_node_id()[:16]
    root.mkdir(parents=True, exist_ok=True)
    held = node_lease(root)
    try:
        scratch = scratch_dir(root, held.lease.name)
        shutil.rmtree(scratch, ignore_errors=True)  # the slot's last trial (its files stay until the next one)
        run_dir, source = scratch / run_rel, scratch / ".candidate"
        for d in (run_dir, source):
            d.mkdir(parents=True)
        unpack(editable, source)
        unpack(code, scratch)
        (scratch / "data").symlink_to(cached_data(root, manifest_hash, data))
        lease = held.lease
        if gpus := ray.get_gpu_ids():  # Ray's GPU for this task, with the slot's cores
            lease = Lease(f"gpu{gpus[0]}", lease.cpus, tuple(int(g) for g in gpus))
        metrics = run_trial(scratch, program, (run_id, run_dir), source / "train.py", hypothesis, budget, seed,
                            unsafe, echo=lambda _: None, lease=lease)
        (run_dir / "metrics.json").unlink()  # written again on the repository's machine, with the node
        return {"metrics": metrics, "run": pack(run_dir, [p.name for p in run_dir.iterdir()]),
                "scorer": scorer_log(scratch, run_id).read_bytes(), "node": ray.get_runtime_context().get_node_id()}
    finally:
        leases.release(held)
