"""The research state as terminal tables: the ledger's rows, the best, the counts; the morning summary.

The text cells are shown neutralised (eval/record/text.py): a row the harness did not write
(an edited ledger, a metrics.json of another version) cannot move the cursor or hide a word.
"""

from __future__ import annotations

import json
from pathlib import Path

from eval.record import ledger
from eval.record.morning import Morning
from eval.record.plot import PNG
from eval.record.text import visible

ROWS = 15
DESCRIPTION_CHARS = 60
COLUMNS = (  # header, alignment and width, cell; the description comes last, unaligned
    ("id", "<7", lambda r: r["id"]),
    ("status", "<8", lambda r: r.get("status") or "?"),
    ("{metric}", ">12", lambda r: number(r.get("mean"), "{:.6f}")),
    ("delta", ">10", lambda r: number(r.get("delta"), "{:+.6f}")),
    ("spread", ">9", lambda r: number(r.get("spread"), "{:.6f}")),
    ("mem_gb", ">6", lambda r: number(r.get("peak_memory_mb"), "{:.1f}", 1 / 1024)),
    ("runs", ">4", lambda r: str(r.get("runs") or len(r.get("values") or ()) or "-")),
    ("cpu_s", ">7", lambda r: number(candidate_cpu(r), "{:.1f}")),
    ("load", ">5", lambda r: number(max_load(r), "{:.1f}")),
    ("gpu_s", ">7", lambda r: number(candidate_gpu(r), "{:.1f}")),
    ("slot", "<5", lambda r: slot(r)),
)
COUNTED = (("keep", "kept"), ("discard", "discarded"), ("crash", "crashed"), ("timeout", "timed out"))


def own_runs(row: dict) -> list[dict]:
    """The compute of the candidate's own runs, not the best's reruns beside it (-b) or a confirmation's (-g)."""
    return [c for c in row.get("compute") or () if "-b" not in c["id"] and "-g" not in c["id"]]


def candidate_cpu(row: dict) -> float | None:
    """Mean CPU-seconds its budget bought (from the start marker to the stop; else all) of the candidate's own
    runs: the compute it got."""
    cpu = [x for c in own_runs(row) if (x := c.get("trained_cpu_seconds") or c.get("cpu_seconds"))]
    return sum(cpu) / len(cpu) if cpu else None


def candidate_gpu(row: dict) -> float | None:
    """Mean GPU busy seconds of the candidate's own runs (eval/compute.py GpuBusy); None on the CPU."""
    busy = [x for c in own_runs(row) if (x := c.get("gpu_busy_seconds")) is not None]
    return sum(busy) / len(busy) if busy else None


def max_load(row: dict) -> float | None:
    """The most cores the rest of the host kept busy during any of the experiment's runs."""
    load = [c["host_other_load"] for c in row.get("compute") or () if c.get("host_other_load") is not None]
    return max(load) if load else None


def slot(row: dict) -> str:
    """The device slot its runs were leased (eval/leases.py): one per experiment; - before slots were recorded."""
    names = {c.get("lease") for c in row.get("compute") or ()} - {None}
    return visible(",".join(sorted(names)), keep="") or "-"


def number(value: float | None, fmt: str, scale: float = 1.0) -> str:
    return "-" if value is None else fmt.format(value * scale)


def table(rows: list[dict], metric: str) -> str:
    """Fixed-width columns, the description last and cut to fit a terminal."""
    lines = [" ".join(f"{name.format(metric=metric):{spec}}" for name, spec, _ in COLUMNS) + "  description"]
    for r in rows:
        cells = " ".join(f"{cell(r):{spec}}" for _, spec, cell in COLUMNS)
        lines.append(cells + "  " + visible(ledger.describe(r), keep="")[:DESCRIPTION_CHARS])
    return "\n".join(lines)


def report(repo: Path, rows: list[dict], metric: str, direction: str, n: int) -> str:
    counts = ", ".join(f"{sum(r.get('status') == s for r in rows)} {word}" for s, word in COUNTED)
    top = ledger.best(rows, direction)
    shown = "none yet" if top is None else f"{top['mean']:.6f} ({top['id']}, commit {top['commit'][:7]})"
    png = repo / PNG
    return "\n".join([
        table(ledger.last(rows, n), metric),
        "",
        f"best {metric} ({direction}): {shown}",
        f"{len(rows)} experiments: {counts}",
        f"progress plot: {png}" if png.exists() else "progress plot: not drawn yet (the first verdict draws it)",
    ])


def workers_table(workers: list[dict], rows: list[dict], held: dict[str, dict]) -> str:
    """./run.sh loop --workers: each worker's branch, the slot it holds and the experiment running there, and
    its last verdict (the ledger's rows carry the worktree that made them)."""
    lines = [f"{'worker':<7} {'branch':<24} {'slot':<6} {'running':<8} last verdict"]
    for w in workers:
        slot, lease = next(((n, h) for n, h in held.items() if h.get("worktree") == w["worktree"]), ("-", {}))
        last = next((r for r in reversed(rows) if r.get("worktree") == w["worktree"]), None)
        verdict = "-" if last is None else f"{last['id']} {last.get('status')} {number(last.get('mean'), '{:.6f}')}"
        lines.append(f"{visible(w['name'], keep=''):<7} {visible(w['branch'], keep=''):<24} {slot:<6} "
                     f"{lease.get('run', '-'):<8} {verdict}" + (f"  (stopped: {w['stop']})" if w.get("stop") else ""))
    return "\n".join(lines)


def load_runs(runs: Path) -> list[dict]:
    """Before the first verdict: the runs' own metrics.json files."""
    found = []
    for path in sorted(runs.glob("r[0-9]*/metrics.json")):
        try:
            found.append(json.loads(path.read_text()))
        except (OSError, ValueError):
            found.append({"id": path.parent.name, "outcome": "unreadable", "value": None, "hypothesis": ""})
    return found


def best_of(runs: list[dict], direction: str) -> dict | None:
    ok = [r for r in runs if r.get("outcome") == "ok" and r.get("value") is not None]
    if not ok:
        return None
    return (min if direction == "minimize" else max)(ok, key=lambda r: r["value"])


def runs_table(runs: list[dict], metric: str) -> str:
    lines = [f"{'id':<7} {'outcome':<10} {metric:>12}  hypothesis"]
    for r in runs:
        value = "-" if r.get("value") is None else f"{r['value']:.6f}"
        hypothesis = visible(str(r.get("hypothesis", "")), keep="")[:DESCRIPTION_CHARS]
        lines.append(f"{r['id']:<7} {r.get('outcome', '?'):<10} {value:>12}  {hypothesis}")
    return "\n".join(lines)



def headline(m: Morning) -> list[str]:
    counts = ", ".join(f"{m.count(s)} {word}" for s, word in COUNTED)
    lines = [f"morning report: {m.metric} ({m.direction}), {len(m.experiments)} experiments: {counts}"]
    best, baseline = m.find(m.best), m.find(m.baseline)
    if best and baseline:
        lines.append(f"best      {best.measured:<40} {best.row['id']}, commit {best.row['commit'][:7]}")
        lines.append(f"baseline  {baseline.measured:<40} {baseline.row['id']}")
    if m.gain:
        gain, fraction = m.gain
        lines.append(f"gain      {gain:+.6f}" + ("" if fraction is None else f" ({100 * fraction:+.1f}%)"))
    b, loop = m.budget, m.loop or {}
    used = "the clock starts with the first verdict" if b.hours_used is None else f"{b.hours_used:.1f} of {b.hours:g} h"
    lines.append(f"budget    {used}; {len(m.experiments)} of {b.experiments} experiments")
    cost = loop.get("cost_usd")
    lines.append("cost      not recorded (./run.sh loop records it)" if cost is None else
                 f"cost      ${cost:.2f} (./run.sh loop, updated {loop.get('updated', '?')})")
    return lines + [f"{'test' if i == 0 else '':<10}{line}" for i, line in enumerate(m.test_result)]


def kept_table(m: Morning) -> list[str]:
    """Every keep with the delta it had against the margin it needed: how sure each one is."""
    kept = [e for e in m.experiments if e.row.get("status") == "keep"]
    lines = [f"kept ({len(kept)}): the delta against the required margin",
             f"{'id':<7} {m.metric + ' (mean ± sd, seeds)':<40} {'delta':>10} {'required':>10} {'margin':>7}  "
             "description"]
    for e in kept:
        delta, required = number(e.row.get("delta"), "{:+.6f}"), number(e.row.get("threshold"), "{:.6f}")
        lines.append(f"{e.row['id']:<7} {e.measured:<40} {delta:>10} {required:>10} {e.margin:>7}  "
                     f"{ledger.describe(e.row)[:DESCRIPTION_CHARS]}")
    return lines


def failures(m: Morning) -> list[str]:
    failed = [e for e in m.experiments if e.row.get("status") in ("crash", "timeout")]
    lines = [f"crashes and timeouts: {len(failed)}" + (f", the last {min(len(failed), ROWS)}" if failed else "")]
    return lines + [f"{e.row['id']:<7} {e.row['status']:<8} {' '.join(str(e.row.get('reason') or '').split())[:100]}"
                    for e in failed[-ROWS:]]


def morning(m: Morning, n: int) -> str:
    """./run.sh report: the page's summary as terminal tables (test-split numbers included: a human runs it)."""
    r = m.refusals
    refused = [f"guard refusals: {r.total}" + (" (runs/audit.jsonl), by kind" if r.total else "")]
    refused += [f"{count:>6}  {kind}" for kind, count in r.kinds[:ROWS]]
    rows = [e.row for e in m.experiments]
    last = [f"the last {min(n, len(rows))} experiments", table(ledger.last(rows, n), m.metric)]
    return "\n\n".join("\n".join(part) for part in (headline(m), kept_table(m), failures(m), refused, last))
