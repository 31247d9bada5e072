"""Experiments per hour at N = 1 and N = 2 CPU slots, here and through a local Ray cluster, in one run.

Here: N streams of trials at once, each on one of this machine's N slots (sandbox/devices.py's split of
the cores, the lease given to eval/trial.py run_trial), as `./run.sh loop --workers N` runs them with
`devices: {cpu_slots: N}`. Through Ray, for each N: a head and a worker node on this machine
(ray.cluster_utils: a GCS and a raylet per node, as `ray start` gives), the worker offering N
autoresearch_slot resources; this process is the driver, as ./run.sh's is. Each trial is a full
experiment of one seed (through eval/remote.py on Ray: the candidate shipped, trained and scored in the
node's sandbox on its own slot, its files written back here); the verdict step, the same as a local
run's, is left out, and so is a first, untimed trial per N (the first held-out check of fresh data; on
Ray, the node fetches the data). Target: N = 2 at >= 0.95 x 2 of N = 1.
Run it on an idle machine, from the repo root after ./run.sh prepare:

    .venv/bin/python benchmarks/bench_ray.py [--budget 10] [--per-slot 4] [--where here|ray|both]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from eval import config, remote  # noqa: E402
from eval.data import prepare  # noqa: E402
from eval.trial import run_trial  # noqa: E402
from sandbox import devices  # noqa: E402
from sandbox.backends import remove_leftovers  # noqa: E402

NODE = {"num_cpus": 1, "include_dashboard": False, "object_store_memory": 200_000_000}
COPIED = ("eval", "sandbox", "program.md", "train.py")  # what a trial needs of the repository here


def scratch_repo(root: Path, data: Path) -> Path:
    """The harness's measuring code, program.md, train.py and the frozen data (linked) in a scratch dir."""
    for name in COPIED:
        src = REPO / name
        (shutil.copytree if src.is_dir() else shutil.copy2)(src, root / name)
    (root / "data").symlink_to(data)
    subprocess.run(["git", "init", "-q"], cwd=root, check=True)
    return root


PHASES = {"start-up": "startup_seconds", "after the stop": "after_stop_seconds", "scoring": "scoring_seconds",
          "whole": "total_seconds"}  # where an experiment's wall clock goes, beside its budget (metrics.json)


def streams(measure, repo: Path, slots: int, budget: float, per_slot: int) -> tuple[list[dict], float]:
    """(the timed experiments' metrics, wall seconds): `slots` streams of `per_slot` trials
    at once through measure(repo, program, trial, source, hypothesis, budget, seed, slot), after an untimed one
    (the first held-out check of fresh data; through Ray, the node fetches the data)."""
    program = config.load(repo / "program.md")
    ran: list[dict] = []

    def stream(s: int) -> None:
        for k in range(per_slot):
            run_id = f"r{s * per_slot + k + 1:04d}"
            run_dir = repo / "runs" / run_id
            run_dir.mkdir(parents=True)
            m = measure(repo, program, (run_id, run_dir), repo / "train.py", "bench", budget, 1337 + k, s)
            ran.append(m)
            if m["outcome"] != "ok":
                print(f"  {run_id}: {m['outcome']}: {m['reason']}", flush=True)

    warm = repo / "runs" / "r0000"
    warm.mkdir(parents=True)
    measure(repo, program, ("r0000", warm), repo / "train.py", "warm-up", budget, 1337, 0)
    t0 = time.monotonic()
    threads = [threading.Thread(target=stream, args=(s,)) for s in range(slots)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.monotonic() - t0
    return ran, wall


def phases(ok: list[dict]) -> str:
    """The mean seconds of each phase over these experiments (those that ended ok)."""
    return ", ".join(f"{name} {statistics.fmean(m[key] for m in ok):.1f}s" for name, key in PHASES.items()) \
        if ok else "none ended ok"


def local_rate(repo: Path, slots: int, budget: float, per_slot: int) -> tuple[list[dict], float]:
    """The streams on this machine's slots, no cluster."""
    leases = devices.slots([], slots)

    def measure(repo, program, trial, source, hypothesis, budget, seed, s):
        return run_trial(repo, program, trial, source, hypothesis, budget, seed, echo=lambda _: None,
                         lease=leases[s])

    return streams(measure, repo, slots, budget, per_slot)


def rate(repo: Path, slots: int, budget: float, per_slot: int, nodes: Path) -> tuple[list[dict], float]:
    """The streams through a local Ray cluster whose worker node offers `slots` slots."""
    import ray
    from ray.cluster_utils import Cluster

    os.environ[remote.NODE_DIR_ENV] = str(nodes)
    os.environ["PYTHONPATH"] = str(REPO)
    cluster = Cluster(initialize_head=True, head_node_args=NODE)
    try:
        cluster.add_node(**NODE, resources={remote.SLOT: slots})
        cluster.wait_for_nodes()
        ray_measure = remote.RayMeasure(cluster.address)

        def measure(repo, program, trial, source, hypothesis, budget, seed, s):
            return ray_measure(repo, program, trial, source, hypothesis, budget, seed)

        return streams(measure, repo, slots, budget, per_slot)
    finally:
        ray.shutdown()
        cluster.shutdown()
        remove_leftovers(str(nodes.resolve()) + "/")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--budget", type=float, default=10.0, help="training budget of each experiment, seconds")
    ap.add_argument("--per-slot", type=int, default=4, help="experiments each slot runs, one after another")
    ap.add_argument("--where", choices=("here", "ray", "both"), default="both",
                    help="this machine's slots, the local Ray cluster, or both")
    args = ap.parse_args()
    print(f"budget {args.budget:g}s, {args.per_slot} experiments per slot, {os.cpu_count()} cores, "
          f"load {os.getloadavg()[0]:.1f}")
    with tempfile.TemporaryDirectory() as frozen:
        data = Path(frozen) / "data"
        prepare(data)  # today's default data (the held-out sources in its manifest), as ./run.sh prepare
        for where in ("here", "ray") if args.where == "both" else (args.where,):
            base = None
            for n in (1, 2):
                with tempfile.TemporaryDirectory() as tmp:
                    repo = scratch_repo(Path(tmp) / "repo", data)
                    ran, wall = (local_rate(repo, n, args.budget, args.per_slot) if where == "here" else
                                 rate(repo, n, args.budget, args.per_slot, Path(tmp) / "nodes"))
                ok = [m for m in ran if m["outcome"] == "ok"]
                per_hour = 3600 * len(ok) / wall
                base = base or per_hour
                print(f"{where:>4} N={n}: {per_hour:.1f} experiments/hour ({len(ok)} of {n * args.per_slot} ok, "
                      f"{wall:.1f}s); {per_hour / base:.2f} x N=1 (target >= {0.95 * n:.2f})", flush=True)
                print(f"       per experiment: {phases(ok)}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
