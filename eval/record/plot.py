"""progress.png: the research at a glance, redrawn after every verdict.

x is the experiment's position in the ledger, y the metric. Kept runs are green dots, discarded
runs grey rings, and the running best (the latest kept value) a step line inside its seed
spread. A run without a value (crash, timeout) is a red cross in a strip of its own under the
axis: never where a score would be, whichever way the metric improves. A value far off the rest
sits on the axis edge as a triangle. The baseline and the keeps that gained most say what they tried.
"""

from __future__ import annotations

import io
from pathlib import Path

from eval.record.chart import value_range
from eval.record.ledger import best, describe, seed_spread
from eval.record.runs import atomic_write

PNG = Path("progress.png")
STYLE = {  # status -> scatter style
    "keep": {"color": "#2ca02c", "s": 40, "zorder": 3, "label": "kept"},
    "discard": {"facecolors": "none", "edgecolors": "#8a8a8a", "s": 32, "zorder": 2, "label": "discarded"},
}
FAILED = ("crash", "timeout")
GREEN, RED = "#2ca02c", "#d62728"
MAX_LABELS = 8  # the baseline and the keeps that gained most; more would overlap (runs/report.html names all)
LABEL_CHARS = 30


def labelled(kept: list[tuple[int, dict]]) -> list[tuple[int, dict]]:
    """The baseline and the largest gains, in experiment order."""
    gains = sorted(kept[1:], key=lambda p: -(p[1].get("delta") or 0.0))[: MAX_LABELS - 1]
    return sorted(kept[:1] + gains, key=lambda p: p[0])


def draw(repo: Path, rows: list[dict], metric: str, direction: str) -> Path:
    """Write progress.png at the repo root, whole (a reader never sees half a PNG)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg  # here, not at the top: matplotlib costs ~0.5 s
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    fig = Figure(figsize=(12, 6.5), dpi=100, layout="constrained")
    FigureCanvasAgg(fig)
    ax, strip = fig.subplots(2, 1, sharex=True, gridspec_kw={"height_ratios": [14, 1]})
    points = [(i, r) for i, r in enumerate(rows, start=1)]
    valued = [(i, r) for i, r in points if r.get("mean") is not None]
    kept = [(i, r) for i, r in valued if r.get("status") == "keep"]
    lo, hi = value_range([r["mean"] for _, r in valued], [r["mean"] for _, r in kept])
    for status, style in STYLE.items():
        shown = [(i, min(max(r["mean"], lo), hi)) for i, r in valued if r.get("status") == status]
        if shown:
            ax.scatter(*zip(*shown, strict=True), **style)
    off = [(i, hi if r["mean"] > hi else lo, "^" if r["mean"] > hi else "v") for i, r in valued
           if not lo <= r["mean"] <= hi]
    for i, y, marker in off:
        ax.scatter([i], [y], marker=marker, facecolors="none", edgecolors="#555555", s=40, zorder=2, clip_on=False)
    if kept:
        ends = [i for i, _ in kept[1:]] + [len(rows) + 0.5]
        for (i, r), end in zip(kept, ends, strict=True):
            spread = seed_spread(r) or r.get("spread")
            if spread:
                ax.fill_between([i, end], r["mean"] - spread, r["mean"] + spread, color=GREEN, alpha=0.12, lw=0)
        ax.step([i for i, _ in kept] + [len(rows) + 0.5], [r["mean"] for _, r in kept] + [kept[-1][1]["mean"]],
                where="post", color=GREEN, alpha=0.7, label="running best (band: its seed spread)")
        for n, (i, r) in enumerate(labelled(kept)):
            right = i > 0.6 * len(rows)  # late keeps are labelled leftwards, inside the axes
            ax.annotate(f"{r['id']} {describe(r)[:LABEL_CHARS]}", (i, r["mean"]), ha="right" if right else "left",
                        xytext=(-6 if right else 6, 10 if n % 2 else -16), textcoords="offset points", fontsize=8,
                        color="#145214", bbox={"boxstyle": "round,pad=0.2", "fc": "white", "ec": "none", "alpha": 0.8})
    failed = [i for i, r in points if r.get("status") in FAILED or r.get("mean") is None]
    if failed:
        strip.scatter(failed, [0] * len(failed), marker="x", color=RED, s=40, label="crash / timeout (no value)")
    top = best(rows, direction)
    title = f"{metric} ({direction}): {len(rows)} experiments, {len(kept)} kept, {len(failed)} without a value"
    title += f"; best {top['mean']:.6f} ({top['id']})" if top else ""
    ax.set_title(title, fontsize=12)
    ax.set_ylabel(f"{metric} ({'lower' if direction == 'minimize' else 'higher'} is better)", fontsize=11)
    ax.set_ylim(lo, hi)
    ax.grid(alpha=0.3)
    strip.set_xlabel("experiment #", fontsize=11)
    strip.set_xlim(0.5, max(len(rows), 1) + 0.5)
    strip.set_ylim(-1, 1)
    strip.set_yticks([0], ["no value"], fontsize=9)
    strip.set_facecolor("#fdf1f1")
    strip.xaxis.set_major_locator(MaxNLocator(integer=True))
    if not valued:
        ax.set_yticks([])
        ax.text(0.5, 0.5, "no experiments yet" if not rows else "no run has produced a value yet",
                transform=ax.transAxes, ha="center", va="center", color="#777777")
    handles = [h for a in (ax, strip) for h in a.get_legend_handles_labels()[0]]
    if handles:
        ax.legend(handles=handles, loc="best", fontsize=9)
    png = io.BytesIO()
    fig.savefig(png, format="png")
    atomic_write(repo / PNG, png.getvalue())
    return repo / PNG
