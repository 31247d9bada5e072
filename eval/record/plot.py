"""progress.png: the research at a glance, redrawn after every verdict.

x is the experiment's position in the ledger, y the metric. Kept runs are green dots
labelled with what they tried, discarded runs grey rings, runs without a value (crash,
timeout) red crosses on the top edge, and the running best, the latest kept value, a step line.
"""

from __future__ import annotations

import io
from pathlib import Path

from eval.record.ledger import best, describe
from eval.record.runs import atomic_write

PNG = Path("progress.png")
STYLE = {  # status -> scatter style
    "keep": {"color": "#2ca02c", "s": 36, "zorder": 3, "label": "kept"},
    "discard": {"facecolors": "none", "edgecolors": "#999999", "s": 30, "zorder": 2, "label": "discarded"},
}
FAILED = ("crash", "timeout")
LABEL_CHARS = 40


def draw(repo: Path, rows: list[dict], metric: str, direction: str) -> Path:
    """Write progress.png at the repo root, whole (a reader never sees half a PNG)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg  # here, not at the top: matplotlib costs ~0.5 s
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    fig = Figure(figsize=(12, 6), dpi=100, layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    points = list(enumerate(rows, start=1))
    for status, style in STYLE.items():
        shown = [(i, r["mean"]) for i, r in points if r.get("status") == status and r.get("mean") is not None]
        if shown:
            ax.scatter(*zip(*shown, strict=True), **style)
    failed = [i for i, r in points if r.get("status") in FAILED or r.get("mean") is None]
    if failed:
        ax.scatter(failed, [0.97] * len(failed), transform=ax.get_xaxis_transform(), marker="x", color="#d62728",
                   s=36, zorder=4, clip_on=False, label="crash / timeout (no value)")
    kept = [(i, r) for i, r in points if r.get("status") == "keep" and r.get("mean") is not None]
    if kept:
        xs = [i for i, _ in kept] + [len(rows)]
        ax.step(xs, [r["mean"] for _, r in kept] + [kept[-1][1]["mean"]], where="post", color="#2ca02c",
                alpha=0.6, label="running best")
        for i, r in kept:
            ax.annotate(describe(r)[:LABEL_CHARS], (i, r["mean"]), xytext=(4, 6), textcoords="offset points",
                        fontsize=7, rotation=20, color="#1a661a")
    top = best(rows, direction)
    title = f"{metric} ({direction}): {len(rows)} experiments, {len(kept)} kept"
    title += f", best {top['mean']:.6f} ({top['id']})" if top else ""
    ax.set_title(title)
    ax.set_xlabel("experiment #")
    ax.set_ylabel(f"{metric} ({'lower' if direction == 'minimize' else 'higher'} is better)")
    ax.set_xlim(0.5, max(len(rows), 1) + 0.5)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.grid(alpha=0.3)
    if not any(r.get("mean") is not None for r in rows):
        ax.set_yticks([])
        ax.text(0.5, 0.5, "no experiments yet" if not rows else "no run has produced a value yet",
                transform=ax.transAxes, ha="center", va="center", color="#777777")
    if ax.get_legend_handles_labels()[0]:
        ax.legend(loc="best", fontsize=8)
    png = io.BytesIO()
    fig.savefig(png, format="png")
    atomic_write(repo / PNG, png.getvalue())
    return repo / PNG
