"""The report's chart: every experiment's seed values, the running best and its noise band, as inline SVG.

A run without a value (crash, timeout) is marked in a strip of its own below the axis, never
where a score could be. A value far off the rest (a diverged run) sits on the axis edge as a
triangle, so one outlier cannot flatten the other 299. Each mark links to its table row and
names itself on hover. No script, nothing loaded: the page opens from disk.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from html import escape

from eval.record.ledger import describe
from eval.record.text import value

WIDTH, HEIGHT = 960, 400
LEFT, RIGHT, TOP, BOTTOM = 78, 16, 30, 64  # the plot area's margins; the failed strip sits in BOTTOM
STRIP = 18  # height of the failed runs' strip
TICKS = 6
OFF_SCALE_IQR = 6.0  # beyond the quartiles by this many interquartile ranges, a value is off the scale
COLOURS = {"keep": "#2ca02c", "discard": "#8a8a8a", "crash": "#d62728", "timeout": "#d62728"}
BAND = "#2ca02c"
FAILED = ("crash", "timeout")
TITLE_CHARS = 120


def value_range(values: Sequence[float], keep: Sequence[float]) -> tuple[float, float]:
    """The y range: every value in `keep` (the kept runs), and the others unless they are far off the rest."""
    values = [v for v in values if math.isfinite(v)]
    if not values:
        return 0.0, 1.0
    inside = values
    if len(values) >= 4:
        q1, _, q3 = statistics.quantiles(values, n=4)
        reach = OFF_SCALE_IQR * (q3 - q1)
        inside = [v for v in values if q1 - reach <= v <= q3 + reach] or values
    lo, hi = min(inside + list(keep)), max(inside + list(keep))
    pad = (hi - lo) * 0.06 or abs(hi) * 0.05 or 1.0
    return lo - pad, hi + pad


def ticks(lo: float, hi: float, n: int = TICKS) -> list[float]:
    """Round numbers between lo and hi, about n of them (steps of 1, 2 or 5 times a power of ten)."""
    raw = (hi - lo) / n
    power = 10 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 5, 10) if m * power >= raw)
    return [k * step for k in range(math.ceil(lo / step), math.floor(hi / step) + 1)]


def svg(rows: Sequence[dict], spreads: Sequence[float | None], metric: str, direction: str) -> str:
    """The chart of these ledger rows; spreads[i] is row i's own seed spread (None: one draw)."""
    n = max(len(rows), 1)
    kept_values = [v for r in rows if r.get("status") == "keep" for v in (r.get("values") or [r.get("mean")])
                   if v is not None]
    lo, hi = value_range([v for r in rows for v in (r.get("values") or []) if v is not None], kept_values)
    bottom = HEIGHT - BOTTOM

    def x(i: int) -> float:  # experiment i (1-based)
        return LEFT + (i - 0.5) / n * (WIDTH - LEFT - RIGHT)

    def y(v: float) -> float:
        return TOP + (hi - min(max(v, lo), hi)) / (hi - lo) * (bottom - TOP)

    out = [f'<svg id="chart" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" '
           f'aria-label="{escape(metric)} of every experiment">',
           f'<rect x="{LEFT}" y="{TOP}" width="{WIDTH - LEFT - RIGHT}" height="{bottom - TOP}" fill="#fcfcfc" '
           'stroke="#ccc"/>']
    for t in ticks(lo, hi):
        out.append(f'<line x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{y(t):.1f}" y2="{y(t):.1f}" stroke="#eee"/>'
                   f'<text x="{LEFT - 6}" y="{y(t) + 4:.1f}" text-anchor="end" class="tick">{t:.6g}</text>')
    for i in ticks(1, n, 10) if n > 1 else [1]:
        if float(i).is_integer() and 1 <= i <= n:
            out.append(f'<text x="{x(int(i)):.1f}" y="{bottom + STRIP + 16}" text-anchor="middle" '
                       f'class="tick">{int(i)}</text>')
    better = "lower" if direction == "minimize" else "higher"
    out.append(f'<text transform="translate(16 {(TOP + bottom) / 2:.0f}) rotate(-90)" text-anchor="middle" '
               f'class="axis">{escape(metric)} ({better} is better)</text>'
               f'<text x="{(LEFT + WIDTH - RIGHT) / 2:.0f}" y="{HEIGHT - 6}" text-anchor="middle" '
               'class="axis">experiment #</text>'
               f'<text x="{LEFT - 6}" y="{bottom + STRIP - 5}" text-anchor="end" class="tick">no value</text>'
               f'<rect x="{LEFT}" y="{bottom + 4}" width="{WIDTH - LEFT - RIGHT}" height="{STRIP - 4}" '
               'fill="#fdf1f1"/>')
    out += best_line(rows, spreads, x, y, n)
    for i, (r, spread) in enumerate(zip(rows, spreads, strict=True), start=1):
        out.append(marks(i, r, spread, x(i), y, bottom, lo, hi))
    out.append(legend())
    out.append("</svg>")
    return "\n".join(out)


def best_line(rows: Sequence[dict], spreads: Sequence[float | None], x, y, n: int) -> list[str]:
    """The running best as a step line, and around it the best's mean ± its seed spread."""
    kept = [(i, r, s) for i, (r, s) in enumerate(zip(rows, spreads, strict=True), start=1)
            if r.get("status") == "keep" and r.get("mean") is not None]
    out, path = [], []
    for k, (i, r, spread) in enumerate(kept):
        end = x(kept[k + 1][0]) if k + 1 < len(kept) else x(n) + 6
        spread = spread if spread is not None else r.get("spread")
        if spread:
            top, low = y(r["mean"] + spread), y(r["mean"] - spread)
            out.append(f'<rect x="{x(i):.1f}" y="{min(top, low):.1f}" width="{end - x(i):.1f}" '
                       f'height="{abs(low - top):.1f}" fill="{BAND}" fill-opacity="0.12"/>')
        path.append(f"M{x(i):.1f} {y(r['mean']):.1f}" if k == 0 else f"H{x(i):.1f} V{y(r['mean']):.1f}")
    if kept:
        path.append(f"H{x(n) + 6:.1f}")
        out.append(f'<path id="running-best" d="{" ".join(path)}" fill="none" stroke="{BAND}" stroke-width="1.6"/>')
    return out


def marks(i: int, r: dict, spread: float | None, cx: float, y, bottom: float, lo: float, hi: float) -> str:
    """One experiment: a dot per seed value (a triangle when off the scale), a cross in the strip when it failed."""
    status = r.get("status") or "?"
    colour = COLOURS.get(status, "#555")
    fill = colour if status == "keep" else "none"
    title = (f"{r['id']} {status}: {r.get('metric', '')} {value(r.get('mean'))}"
             f"{f' ± {value(spread)}' if spread else ''} | {describe(r)[:TITLE_CHARS]}")
    shapes = []
    for v in r.get("values") or []:
        if v is None:
            continue
        if lo <= v <= hi:
            shapes.append(f'<circle cx="{cx:.1f}" cy="{y(v):.1f}" r="{3.2 if status == "keep" else 2.6}" '
                          f'fill="{fill}" stroke="{colour}" stroke-width="1.2"/>')
        else:  # off the scale: a triangle on the edge, pointing the way the value lies
            edge, d = (y(hi), -6) if v > hi else (y(lo), 6)
            shapes.append(f'<path d="M{cx:.1f} {edge + d:.1f} l-4 {-d:.0f} h8 z" fill="none" stroke="{colour}"/>')
    if status in FAILED:
        my = bottom + 4 + (STRIP - 4) / 2
        shapes.append(f'<path class="failed" d="M{cx - 4:.1f} {my - 4:.1f} l8 8 m0 -8 l-8 8" stroke="{colour}" '
                      'stroke-width="1.6"/>')
    return (f'<a href="#{escape(r["id"])}"><g class="exp"><title>{escape(title)}</title>'
            + "".join(shapes) + "</g></a>")


def legend() -> str:
    items = [(f'<circle cx="0" cy="-4" r="3.2" fill="{COLOURS["keep"]}"/>', "kept (one dot per seed)"),
             (f'<circle cx="0" cy="-4" r="2.6" fill="none" stroke="{COLOURS["discard"]}"/>', "discarded"),
             (f'<path d="M-4 -8 l8 8 m0 -8 l-8 8" stroke="{COLOURS["crash"]}" stroke-width="1.6"/>',
              "crash / timeout (no value)"),
             (f'<rect x="-5" y="-9" width="10" height="10" fill="{BAND}" fill-opacity="0.25"/>',
              "running best ± its seed spread")]
    out, at = [], LEFT
    for shape, label in items:
        out.append(f'<g transform="translate({at} 18)">{shape}<text x="9" y="0" class="tick">{label}</text></g>')
        at += 24 + 6.4 * len(label)
    return "".join(out)
