"""runs/report.html: the morning report, one static page, rewritten after every verdict.

It opens from disk: inline CSS and SVG, no script, nothing fetched (its Content-Security-Policy
tells the browser so as well). Everything the agent wrote (hypotheses, diffs, logs, file names,
the scratchpad, refused commands) is escaped. The agent may read runs/, so this page never holds
a test-split number: runs/confirm/report.html, the same page with confirm's result, lives in the
folder the guard seals (hooks/guard/paths.py), for the human alone.
"""

from __future__ import annotations

from html import escape
from pathlib import Path
from urllib.parse import quote

from eval.record.chart import svg
from eval.record.ledger import describe
from eval.record.morning import Experiment, Morning
from eval.record.runs import CONFIRM, RUNS, atomic_write
from eval.record.text import value

REPORT = RUNS / "report.html"
SEALED = CONFIRM / "report.html"
CSP = "default-src 'none'; style-src 'unsafe-inline'"  # no script, nothing fetched
COUNTED = (("keep", "kept"), ("discard", "discarded"), ("crash", "crashed"), ("timeout", "timed out"))
STYLE = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",sans-serif;margin:0 auto;max-width:1280px;padding:16px 24px;
color:#222}
h1{font-size:22px;margin:4px 0}h2{font-size:17px;margin:28px 0 8px;border-bottom:1px solid #ddd}
.muted{color:#777}.head{display:grid;grid-template-columns:repeat(auto-fit,minmax(280px,1fr));gap:10px}
.card{border:1px solid #ddd;border-radius:6px;padding:8px 12px;background:#fafafa}.card b{font-size:16px}
.scroll{max-height:70vh;overflow:auto;border:1px solid #ddd}
table{border-collapse:collapse;width:100%;font-size:13px}th,td{padding:3px 7px;border-bottom:1px solid #eee;
text-align:left;vertical-align:top}th{position:sticky;top:0;background:#f3f3f3;z-index:1}
td.num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}td.hyp{max-width:420px}
.keep{color:#1a7f1a;font-weight:600}.discard{color:#666}.crash,.timeout{color:#c62828;font-weight:600}
tr:target{background:#fff6d5}details{margin:4px 0}summary{cursor:pointer}
pre{background:#f7f7f7;border:1px solid #e5e5e5;padding:8px;overflow:auto;max-height:60vh;font-size:12px}
.add{color:#116611;background:#eaffea}.del{color:#a11;background:#ffecec}.hunk{color:#555;background:#eef}
#chart{width:100%;height:auto}#chart .tick{font-size:11px;fill:#555}#chart .axis{font-size:12px;fill:#333}
#chart a:hover circle{stroke-width:3}a{color:#0b57d0}
"""


def link(base: str, path: str, label: str) -> str:
    return f'<a href="{escape(base + quote(path))}">{escape(label)}</a>'


def headline(m: Morning, base: str, sealed: bool) -> str:
    best, baseline = m.find(m.best), m.find(m.baseline)
    if best is None or baseline is None:
        result = "<b>no kept experiment yet</b>"
    elif m.gain is None:
        result = f"<b>baseline {escape(best.measured)}</b> ({link_row(best)}); nothing kept beyond it yet"
    else:
        gain, fraction = m.gain
        rel = "" if fraction is None else f", {100 * fraction:.1f}%"
        result = (f"<b>best {escape(best.measured)}</b> ({link_row(best)})<br>against baseline "
                  f"{escape(baseline.measured)} ({link_row(baseline)}): <b>{value(gain)} better{rel}</b>")
    counts = ", ".join(f"{m.count(s)} {word}" for s, word in COUNTED)
    cards = [f"{result}", f"<b>{len(m.experiments)} experiments</b>: {counts}", budget(m), test_split(m, base, sealed)]
    return (f"<h1>Morning report: {escape(m.metric)} ({escape(m.direction)})</h1>"
            f'<div class="muted">written {escape(m.generated)} after the latest verdict; '
            f'{link(base, "../progress.png", "progress.png")}, {link(base, "../results.tsv", "results.tsv")}, '
            f'{link(base, "ledger.jsonl", "ledger.jsonl")}</div>'
            '<div class="head">' + "".join(f'<div class="card">{c}</div>' for c in cards) + "</div>")


def link_row(e: Experiment) -> str:
    return f'<a href="#{escape(e.row["id"])}">{escape(e.row["id"])}</a>'


def budget(m: Morning) -> str:
    b = m.budget
    hours = ("the clock starts with the first verdict" if b.hours_used is None else
             f"{b.hours_used:.1f} of {b.hours:g} h used, {max(b.hours - b.hours_used, 0):.1f} h left")
    lines = [f"<b>budget</b> (program.md): {hours}; {len(m.experiments)} of {b.experiments} experiments, "
             f"{max(b.experiments - len(m.experiments), 0)} left"]
    loop = m.loop
    if loop:
        cap = (loop.get("caps") or {}).get("max_usd")
        left = f" of the ${cap:g} cap, ${max(cap - loop.get('cost_usd', 0), 0):.2f} left" if cap else ""
        stopped = f"; stopped: {loop['stop']}" if loop.get("stop") else " (running, or killed)"
        lines.append(f"API cost ${loop.get('cost_usd', 0):.2f}{left}: the last ./run.sh loop, started "
                     f"{loop.get('started', '?')}, updated {loop.get('updated', '?')}{stopped}")
    else:
        lines.append("API cost: not recorded (./run.sh loop records it; an interactive session shows it in Claude "
                     "Code)")
    return "<br>".join(escape(line) if i else line for i, line in enumerate(lines))


def test_split(m: Morning, base: str, sealed: bool) -> str:
    if not sealed:
        return ("<b>test split</b>: not on this page, which the agent can read. After <code>./run.sh confirm</code>, "
                f"{link(base, 'confirm/report.html', 'confirm/report.html')} (sealed from the agent) has its result.")
    first, *rest = m.test_result  # the last line is the answer: does the gain hold on the test split?
    return (f"<b>test split</b>: {escape(first)}" + "".join(f"<br>{escape(line)}" for line in rest[:-1])
            + "".join(f"<br><b>{escape(line)}</b>" for line in rest[-1:]))


def table(m: Morning, base: str) -> str:
    head = ("<tr><th>#</th><th>id</th><th>verdict</th><th>" + escape(m.metric) + " (mean ± seed sd)</th>"
            "<th>delta</th><th>required</th><th>margin</th><th>time s</th><th>mem MB</th><th>hypothesis</th>"
            "<th>files</th></tr>")
    body = []
    for i, e in enumerate(m.experiments, start=1):
        r = e.row
        status = escape(str(r.get("status")))
        files = [link(base, f, f.split("/", 1)[1].replace("/", " ").replace(".json", "").replace(".log", " log"))
                 for f in e.files]
        files += [link(base, folder + "/", kind) for kind, folder in e.own_logs]
        files.append(f'<a href="#diff-{escape(r["id"])}">diff</a>')
        mem = r.get("peak_memory_mb")
        body.append(
            f'<tr id="{escape(r["id"])}"><td class="num">{i}</td><td>{escape(r["id"])}</td>'
            f'<td class="{status}">{status}</td><td class="num">{escape(e.measured)}</td>'
            f'<td class="num">{value(r.get("delta"))}</td><td class="num">{value(r.get("threshold"))}</td>'
            f'<td class="num">{e.margin}</td><td class="num">{number(r.get("total_seconds"), "{:.0f}")}</td>'
            f'<td class="num">{number(mem, "{:.0f}")}</td><td class="hyp">{escape(describe(r))}</td>'
            f'<td>{" ".join(files)}</td></tr>')
    return (f'<div class="scroll"><table id="experiments"><thead>{head}</thead><tbody>' + "\n".join(body)
            + "</tbody></table></div>")


def number(x: float | None, fmt: str) -> str:
    return "-" if x is None else fmt.format(x)


def diff_html(diff: str) -> str:
    """The diff, escaped, a span per changed line."""
    out = []
    for line in diff.splitlines():
        kind = ("add" if line.startswith("+") and not line.startswith("+++") else
                "del" if line.startswith("-") and not line.startswith("---") else
                "hunk" if line.startswith("@@") else "")
        out.append(f'<span class="{kind}">{escape(line)}</span>' if kind else escape(line))
    return "\n".join(out)


def change(e: Experiment) -> str:
    r = e.row
    summary = (f'{escape(r["id"])} <span class="{escape(str(r.get("status")))}">{escape(str(r.get("status")))}</span> '
               f"{escape(e.measured)}, delta {value(r.get('delta'))} (required {value(r.get('threshold'))}): "
               f"{escape(describe(r))}")
    parts = []
    if r.get("status") not in ("keep", "discard"):
        parts.append(f"<p>why: {escape(str(r.get('reason') or ''))}</p>")
        if e.log_tail:
            parts.append(f"<p>log tail:</p><pre>{escape(e.log_tail)}</pre>")
    if e.git_diff is None:
        parts.append("<p class='muted'>the candidate is not in git (stopped before its train.py was saved, or the "
                     "history was rewritten)</p>")
    elif not e.diff:
        parts.append(f"<p class='muted'>train.py unchanged ({escape(e.git_diff)})</p>")
    else:
        cut = f"<p class='muted'>{e.diff_cut} characters more: {escape(e.git_diff)}</p>" if e.diff_cut else ""
        parts.append(f'<pre class="diff">{diff_html(e.diff)}</pre>{cut}'
                     f"<p class='muted'>{escape(e.git_diff)}</p>")
    return f'<details id="diff-{escape(r["id"])}"><summary>{summary}</summary>{"".join(parts)}</details>'


def changes(m: Morning) -> str:
    groups = (("Kept changes", ("keep",), "each kept train.py against the best before it"),
              ("Discarded attempts", ("discard",), "refs/autoresearch/discarded/&lt;id&gt; against the best it was "
                                                   "tried on"),
              ("Crashes and timeouts", ("crash", "timeout"), "why, the end of the log, and the candidate"))
    out = []
    for title, statuses, what in groups:
        shown = [change(e) for e in m.experiments if e.row.get("status") in statuses]
        out.append(f'<h2 id="{title.split()[0].lower()}">{title} ({len(shown)})</h2><p class="muted">{what}</p>'
                   + ("".join(shown) or "<p class='muted'>none</p>"))
    return "".join(out)


def refusals(m: Morning) -> str:
    r = m.refusals
    if not r.total:
        return "<h2 id='guard'>Guard refusals (0)</h2><p class='muted'>nothing refused (runs/audit.jsonl)</p>"
    kinds = "".join(f'<tr><td class="num">{n}</td><td>{escape(kind)}</td></tr>' for kind, n in r.kinds)
    last = "".join(f"<tr><td>{escape(str(e.get('time', '')))}</td><td>{escape(str(e.get('tool', '')))}</td>"
                   f"<td><code>{escape(str(e.get('input', '')))}</code></td><td>{escape(str(e.get('reason', '')))}</td>"
                   "</tr>" for e in r.last)
    return (f"<h2 id='guard'>Guard refusals ({r.total})</h2><table><tr><th>count</th><th>kind</th></tr>{kinds}</table>"
            f"<p>the last {len(r.last)}:</p><table><tr><th>time</th><th>tool</th><th>input</th><th>reason</th></tr>"
            f"{last}</table>")


def own_logs(m: Morning, base: str) -> str:
    found = [(e.row["id"], kind, folder) for e in m.experiments for kind, folder in e.own_logs]
    items = "".join(f"<li>{escape(i)} {escape(kind)}: {link(base, folder + '/', folder)}</li>" for i, kind, folder
                    in found)
    return ("<h2 id='logs'>train.py's own logs</h2><p class='muted'>TensorBoard and W&amp;B (offline) files train.py "
            "wrote under $AUTORESEARCH_OUT, kept in runs/&lt;id&gt;/out/: <code>tensorboard --logdir runs</code> "
            "shows them; <code>wandb sync FOLDER</code> uploads one, if you choose to.</p>"
            + (f"<ul>{items}</ul>" if items else "<p class='muted'>none written</p>"))


def render(m: Morning, sealed: bool = False) -> str:
    """The whole page; sealed adds the test-split result and is written where the agent cannot read."""
    base = "../" if sealed else ""
    rows = [e.row for e in m.experiments]
    body = [headline(m, base, sealed),
            "<h2 id='progress'>Progress</h2>", svg(rows, [e.spread for e in m.experiments], m.metric, m.direction),
            f"<h2 id='table'>Experiments ({len(rows)})</h2>", table(m, base), changes(m), refusals(m),
            f"<h2 id='scratchpad'>scratchpad.md</h2><pre>{escape(m.scratchpad)}</pre>", own_logs(m, base)]
    return ("<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'>"
            f'<meta http-equiv="Content-Security-Policy" content="{CSP}">'
            f"<title>autoresearch: {escape(m.metric)}</title><style>{STYLE}</style></head><body>"
            + "\n".join(body) + "</body></html>\n")


def write(repo: Path, m: Morning) -> list[Path]:
    """runs/report.html, and runs/confirm/report.html once confirm has run; each written whole."""
    atomic_write(repo / REPORT, render(m))
    if not m.confirm:
        return [repo / REPORT]
    atomic_write(repo / SEALED, render(m, sealed=True))
    return [repo / REPORT, repo / SEALED]


def write_failure(repo: Path, error: str) -> None:
    """The page when the report could not be made: what went wrong, and where the records are."""
    atomic_write(repo / REPORT, f"<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'>"
                 f'<meta http-equiv="Content-Security-Policy" content="{CSP}"><title>autoresearch</title></head><body>'
                 f"<h1>The morning report could not be written</h1><pre>{escape(error)}</pre><p>The verdicts are "
                 "unaffected: runs/ledger.jsonl, results.tsv and <code>./run.sh status</code> hold them.</p>"
                 "</body></html>\n")
