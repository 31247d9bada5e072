"""The final check, `./run.sh confirm`: do the kept improvements hold on the test split?

Every verdict of the loop was taken on the validation split, so after many experiments the
best version is partly fitted to it (the case study kept a held-out test set for this). The
test split is read here and nowhere else: training mounts only train.bin, scoring only
val.bin, and the agent's tools may read neither.

By default confirm retrains: the baseline (the first kept run) and the best (the latest keep,
which under either verdict rule also has the best mean) are trained again from their commits,
with fresh harness seeds, interleaved (baseline, best, best, baseline, ...: a drift in the
machine falls on both), as runs/<id>/c1, c2, ...; then their exported models are scored on the
test split. A confound of the original runs (a baseline trained on a busy machine, a lucky
seed) is not carried into the answer. `--rescore` (when time is short) scores the models the
verdicts were taken on instead, every seed, and never retrains a missing one (a retrained model
is a new draw): missing files are an error that names them. Either way the models are
untrusted programs, scored in the scoring sandbox where the split is mounted at a random path
and nothing else is, and the output says which mode was used.

It prints val vs test for both, the direction-aware deltas (positive = better) and whether
the improvement holds on test beyond the seed noise (the verdict rule's threshold). Exit 0
when it holds (or nothing was kept after the baseline), 1 when it does not, 2 when it cannot
run. Each confirm is logged in runs/confirm/: reading the test split often turns it into a
second validation split, and the log shows how often it was read. The morning report with
the result is runs/confirm/report.html, sealed from the agent like the rest of that folder.
"""

from __future__ import annotations

import argparse
import json
import secrets
import statistics
import sys
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from eval import config, experiment, verdict
from eval.data import DataError, load_manifest, verify
from eval.record import history, ledger, page
from eval.record.logsink import LogSink
from eval.record.runs import CONFIRM, RUNS, seed_dirs, trial_dir
from eval.trial import parse_score, run_trial, score_job
from sandbox.job import Job, Mount

TEST = "test.bin"
START_S = 60  # the scorer's start-up (torch import) before score_seconds applies


class ConfirmError(RuntimeError):
    """confirm cannot give an answer; the message says what is missing."""


@dataclass(frozen=True)
class Scored:
    id: str
    seeds: list[int]
    val: list[float]
    test: list[float]


def test_job(program: config.Program, model: Path, data_dir: Path, token: str) -> Job:
    """The scoring sandbox of eval/trial.py, with the test split instead of val."""
    return score_job(program, data_dir / TEST, Mount(model, "/in/model.pt2"), model.parent,
                     START_S + program.limits.score_seconds, token)


def models_of(repo: Path, run_id: str, manifest_hash: str) -> list[tuple[dict, Path]]:
    """(metrics, model file) of each ok seed of a run; a ConfirmError naming what is missing or stale."""
    out, missing = [], []
    for d in seed_dirs(repo / "runs" / run_id):
        try:
            m = json.loads((d / "metrics.json").read_text())
        except (OSError, ValueError):
            continue
        if m.get("outcome") != "ok":
            continue
        if m.get("data_manifest_hash") != manifest_hash:
            raise ConfirmError(f"{d.relative_to(repo)} was trained on other data (manifest "
                               f"{str(m.get('data_manifest_hash'))[:12]}, now {manifest_hash[:12]}): its test "
                               "score would mean nothing")
        model = d / "out" / "model.pt2"
        (out if model.is_file() else missing).append((m, model))
    if missing or not out:
        names = ", ".join(str(p.relative_to(repo)) for _, p in missing) or f"runs/{run_id}/**/model.pt2"
        raise ConfirmError(f"{run_id}: the exported model(s) {names} are missing. confirm scores the models the "
                           "verdicts were taken on and never retrains one (a retrained model is a new draw): restore "
                           "runs/ from a backup, or check out that version's train.py and run it again (a new "
                           "experiment) before confirming")
    return out


def retrain(repo: Path, program: config.Program, chosen: dict[str, dict], unsafe: bool,
            say) -> dict[str, list[tuple[dict, Path]]]:
    """Train each chosen version (ledger rows) again from its commit, verdict.seeds times with fresh harness
    seeds, interleaved; (metrics, model file) of each retrain, by label."""
    n = program.verdict.seeds
    seeds = verdict.harness_seeds(program.task.seed, n, f"confirm/{datetime.now(UTC).isoformat()}")
    out: dict[str, list[tuple[dict, Path]]] = {label: [] for label in chosen}
    for i, seed in enumerate(seeds, start=1):
        for label in list(chosen) if i % 2 else list(reversed(chosen)):
            row = chosen[label]
            run_dir = repo / RUNS / row["id"]
            k = 1 + max((int(d.name[1:]) for d in run_dir.glob("c[0-9]*") if d.name[1:].isdigit()), default=0)
            trial = trial_dir(run_dir, k, "c")
            trial[1].mkdir(parents=True)
            say(f"[confirm] retraining the {label} {row['id']} ({row['commit'][:10]}), {i} of {n}, seed {seed}")
            with tempfile.TemporaryDirectory() as tmp:
                source = history.write_version(repo, row["commit"], program.task.editable, Path(tmp))
                m = run_trial(repo, program, trial, source, f"confirm: retrain of {row['id']}", seed=seed,
                              unsafe=unsafe, echo=lambda _: None)
            if m["outcome"] != "ok":
                raise ConfirmError(f"the retrain {m['id']} of the {label} ended {m['outcome']}: {m['reason']} "
                                   f"(runs/{row['id']}/c{k}/train.log); confirm --rescore scores the original models")
            out[label].append((m, trial[1] / "out" / "model.pt2"))
    return out


def score_run(repo: Path, run_id: str, models: list[tuple[dict, Path]], program: config.Program, backend,
              say) -> Scored:
    seeds, val, test = [], [], []
    for m, model in models:
        log = repo / CONFIRM / f"{run_id}-seed{m['seed']}.log"
        say(f"[confirm] scoring {model.relative_to(repo)} on the test split ({backend.name} sandbox)")
        sink, token = LogSink(log), secrets.token_hex(16)
        try:
            result = backend.run(test_job(program, model, repo / "data", token), sink)
        finally:
            sink.close()
        score = parse_score(log.read_bytes(), token)
        if not score or not score.get("ok") or not score.get("finite"):
            why = (score or {}).get("error") or f"no result (exit status {result.exit_code})"
            raise ConfirmError(f"{model.relative_to(repo)}: scoring on the test split failed: {why} "
                               f"(log: {log.relative_to(repo)})")
        seeds.append(m["seed"])
        val.append(m["value"])
        test.append(score["value"])
    return Scored(run_id, seeds, val, test)


def judge(direction: str, rule: config.VerdictRule, base: Scored, best: Scored) -> dict:
    """Direction-aware deltas on val and test, and whether test confirms val beyond the seed noise."""
    s = verdict.SIGN[direction]
    delta_val = s * (statistics.fmean(best.val) - statistics.fmean(base.val))
    delta_test = s * (statistics.fmean(best.test) - statistics.fmean(base.test))
    spread, threshold = verdict.margin(rule, verdict.Samples(tuple(base.test)), best.test)
    holds = delta_test > threshold
    status = "holds" if holds else ("within noise" if delta_test > 0 else "does not hold")
    return {"delta_val": delta_val, "delta_test": delta_test, "spread_test": spread, "threshold": threshold,
            "status": status, "holds": holds}


def table(program: config.Program, runs: list[tuple[str, Scored]], j: dict | None, mode: str,
          trials: dict[str, list[str]]) -> str:
    metric, direction = program.task.metric, program.task.direction
    how = ("retrained with fresh seeds, interleaved" if mode == "retrain" else
           "the models the verdicts were taken on, rescored (--rescore)")
    lines = [f"confirm: {metric} ({direction}) of the baseline and the best, on the test split no experiment read",
             f"mode: {mode}: {how}; runs " + "; ".join(f"{label} {', '.join(ids)}" for label, ids in trials.items()),
             f"{'':10}{'run':8}{'seeds':>6}  {'val ' + metric:>18}  {'test ' + metric:>18}"]
    for label, r in runs:
        lines.append(f"{label:10}{r.id:8}{len(r.seeds):>6}  {statistics.fmean(r.val):>18.6f}  "
                     f"{statistics.fmean(r.test):>18.6f}")
    if j is None:
        lines.append("nothing was kept after the baseline: no improvement to confirm")
        return "\n".join(lines)
    lines.append(f"{'delta (better > 0)':26}{j['delta_val']:>+18.6f}  {j['delta_test']:>+18.6f}")
    lines.append(f"test: the improvement {j['status'].upper()} (delta {j['delta_test']:+.6f}, noise threshold "
                 f"{j['threshold']:.6f} = {program.verdict.rule} rule on the test values' seed spread)")
    return "\n".join(lines)


def confirm(repo: Path, unsafe: bool = False, say=print, rescore: bool = False) -> int:
    from sandbox.backends import select_backend

    program = config.load(repo / "program.md")
    manifest = load_manifest(repo / "data")
    if TEST not in {e["file"] for e in manifest["splits"].values()}:
        raise ConfirmError("the frozen data has no test split: prepare it again (./run.sh prepare, or adopt)")
    problems = verify(repo / "data", manifest)
    if problems:
        raise ConfirmError(f"the frozen data does not match its manifest: {'; '.join(problems)}")
    rows = ledger.read(repo)
    kept = [r for r in rows if r["status"] == "keep" and r["direction"] == program.task.direction]
    if not kept:
        raise ConfirmError("no kept experiment in runs/ledger.jsonl: run the baseline first (./run.sh)")
    rows_of = {"baseline": kept[0], "best": ledger.best(rows, program.task.direction)}
    if rows_of["best"]["id"] == rows_of["baseline"]["id"]:
        del rows_of["best"]
    chosen = {label: row["id"] for label, row in rows_of.items()}
    backend = select_backend(unsafe)
    if rescore:
        models = {label: models_of(repo, run_id, manifest["hash"]) for label, run_id in chosen.items()}  # all, first
    else:
        models = retrain(repo, program, rows_of, unsafe, say)
    mode = "rescore" if rescore else "retrain"
    (repo / CONFIRM).mkdir(parents=True, exist_ok=True)
    runs = [(label, score_run(repo, chosen[label], models[label], program, backend, say)) for label in chosen]
    j = judge(program.task.direction, program.verdict, runs[0][1], runs[1][1]) if len(runs) == 2 else None
    record = {"time": datetime.now(UTC).isoformat(timespec="seconds"), "mode": mode,
              "trials": {label: [m["id"] for m, _ in models[label]] for label in chosen},
              "metric": program.task.metric,
              "direction": program.task.direction, "manifest": manifest["hash"],
              "runs": {label: vars(r) for label, r in runs}, "judgement": j}
    with open(repo / CONFIRM / "log.jsonl", "a") as f:
        f.write(json.dumps(record) + "\n")
    reads = len((repo / CONFIRM / "log.jsonl").read_text().splitlines())
    say(table(program, runs, j, mode, record["trials"]))
    say(f"(the test split has now been read by {reads} confirm(s); each read makes it a little less held-out)")
    experiment.write_report(repo, program)
    say(f"the report with this result: {(repo / page.SEALED).resolve()} (sealed from the agent, like runs/confirm/)")
    return 0 if j is None or j["holds"] else 1


def main(argv: list[str] | None = None) -> int:
    from sandbox.job import SandboxUnavailable

    ap = argparse.ArgumentParser(prog="./run.sh confirm", description=__doc__.splitlines()[0])
    ap.add_argument("--unsafe-no-sandbox", action="store_true", help="score unconfined if no sandbox exists")
    ap.add_argument("--rescore", action="store_true",
                    help="score the models the verdicts were taken on instead of retraining them (faster; keeps "
                         "their runs' confounds)")
    args = ap.parse_args(argv)
    try:
        return confirm(Path.cwd(), args.unsafe_no_sandbox, rescore=args.rescore)
    except (ConfirmError, config.ConfigError, DataError, SandboxUnavailable) as e:
        print(f"confirm: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
