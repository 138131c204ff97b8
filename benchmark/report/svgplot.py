"""Trade-off figures as plain SVG text: deterministic (the same points give the same bytes), self-contained, readable.

Why not matplotlib's SVG backend: it writes dates and random clip-path ids, so a regenerated page would differ byte by
byte. Each family gets one colour, each provenance one marker (filled circle: real weights; hollow square: scratch;
triangle: external or hybrid); labels are placed at the first of four positions around their point that collides with
no other label or point, and left out (counted under the figure) when none is free - every number is in the table.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from html import escape

FAMILY_COLOURS = {"BM25": "#4e79a7", "dense": "#f28e2b", "SPLADE": "#59a14f", "PROSPER": "#e15759",
                  "DeepCT": "#b07aa1", "Doc2Query": "#9c755f", "hybrid": "#76b7b2", "external": "#7f7f7f",
                  # index-bench engines
                  "ours": "#e15759", "Lucene": "#4e79a7", "Pisa": "#59a14f", "Seismic": "#f28e2b", "Bmp": "#b07aa1"}
WIDTH, HEIGHT = 620, 380
LEFT, RIGHT, TOP, BOTTOM = 58, 16, 30, 48
CHAR_WIDTH, FONT = 6.0, 11  # an estimate of a label's width: monospace-ish, good enough to avoid collisions


@dataclass(frozen=True)
class Point:
    x: float | None  # None: no value on this axis (a dense row on the FLOPS axis: drawn as a line)
    y: float
    label: str
    family: str
    marker: str  # "real" | "scratch" | "other"


def _fmt_tick(value: float) -> str:
    if value >= 1000:
        return f"{value / 1000:g}k"
    return f"{value:g}"


def _scale(lo: float, hi: float, log: bool):
    if log:
        lo, hi = math.log10(lo), math.log10(hi)
    span = (hi - lo) or 1.0

    def to_px(v: float, size: float) -> float:
        v = math.log10(v) if log else v
        return (v - lo) / span * size

    return to_px


def scatter(points: list[Point], title: str, x_label: str, y_label: str = "MRR@10 (%)", log_x: bool = True) -> str:
    """One figure as an ``<svg>`` element (a string)."""
    plotted = [p for p in points if p.x is not None and (p.x > 0 or not log_x)]
    lines = [p for p in points if p.x is None]
    ys = [p.y for p in points] or [0.0, 1.0]
    y_lo, y_hi = math.floor(min(ys) / 5) * 5, math.ceil(max(ys) / 5) * 5 + (5 if max(ys) % 5 == 0 else 0)
    xs = [p.x for p in plotted] or [1.0, 10.0]
    if log_x:
        x_lo, x_hi = 10 ** math.floor(math.log10(min(xs))), 10 ** math.ceil(math.log10(max(xs)))
        x_hi = x_hi if x_hi > x_lo else x_lo * 10
    else:
        x_lo, x_hi = 0.0, max(xs) * 1.1 or 1.0
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    fx, fy = _scale(x_lo, x_hi, log_x), _scale(y_lo, y_hi, False)

    def px(p: Point) -> tuple[float, float]:
        return LEFT + fx(p.x, plot_w), TOP + plot_h - fy(p.y, plot_h)

    out = [f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {HEIGHT}" width="{WIDTH}" height="{HEIGHT}" '
           f'role="img" aria-label="{escape(title)}" font-family="sans-serif" font-size="{FONT}">',
           f'<text x="{WIDTH / 2:.1f}" y="18" text-anchor="middle" font-size="13">{escape(title)}</text>',
           f'<rect x="{LEFT}" y="{TOP}" width="{plot_w}" height="{plot_h}" fill="none" stroke="#999"/>']
    for value in range(int(y_lo), int(y_hi) + 1, 5):  # y grid
        y = TOP + plot_h - fy(value, plot_h)
        out.append(f'<line x1="{LEFT}" y1="{y:.1f}" x2="{LEFT + plot_w}" y2="{y:.1f}" stroke="#eee"/>')
        out.append(f'<text x="{LEFT - 6}" y="{y + 4:.1f}" text-anchor="end">{value}</text>')
    ticks = [10 ** e for e in range(int(math.log10(x_lo)), int(math.log10(x_hi)) + 1)] if log_x else \
        [x_lo + (x_hi - x_lo) * i / 5 for i in range(6)]
    for value in ticks:
        x = LEFT + fx(value, plot_w)
        out.append(f'<line x1="{x:.1f}" y1="{TOP}" x2="{x:.1f}" y2="{TOP + plot_h}" stroke="#eee"/>')
        out.append(f'<text x="{x:.1f}" y="{TOP + plot_h + 16}" text-anchor="middle">{_fmt_tick(value)}</text>')
    out.append(f'<text x="{LEFT + plot_w / 2:.1f}" y="{HEIGHT - 8}" text-anchor="middle">{escape(x_label)}</text>')
    out.append(f'<text transform="translate(14 {TOP + plot_h / 2:.1f}) rotate(-90)" text-anchor="middle">'
               f'{escape(y_label)}</text>')
    taken: list[tuple[float, float, float, float]] = []
    for p in lines:  # rows with no value on this axis: a dashed line at their score
        y = TOP + plot_h - fy(p.y, plot_h)
        colour = FAMILY_COLOURS.get(p.family, "#333")
        out.append(f'<line x1="{LEFT}" y1="{y:.1f}" x2="{LEFT + plot_w}" y2="{y:.1f}" stroke="{colour}" '
                   f'stroke-dasharray="5 4" stroke-width="1"/>')
        taken.append((LEFT + 4, y - FONT - 2, LEFT + 8 + CHAR_WIDTH * (len(p.label) + 8), y))
        out.append(f'<text x="{LEFT + 4}" y="{y - 3:.1f}" fill="{colour}">{escape(p.label)} (no FLOPS)</text>')
    for p in plotted:  # markers first, so labels avoid every point
        x, y = px(p)
        taken.append((x - 4, y - 4, x + 4, y + 4))
        out.append(_marker(x, y, p))
    hidden = 0
    for p in sorted(plotted, key=lambda q: (-q.y, q.label)):
        x, y = px(p)
        width = CHAR_WIDTH * len(p.label)
        for dx, dy, anchor in ((7, 4, "start"), (-7, 4, "end"), (7, -8, "start"), (7, 15, "start")):
            x0 = x + dx if anchor == "start" else x + dx - width
            box = (x0, y + dy - FONT, x0 + width, y + dy + 2)
            inside = LEFT <= box[0] and box[2] <= LEFT + plot_w and TOP <= box[1] and box[3] <= TOP + plot_h
            if inside and not any(_overlap(box, other) for other in taken):
                taken.append(box)
                out.append(f'<text x="{x + dx:.1f}" y="{y + dy:.1f}" text-anchor="{anchor}">{escape(p.label)}</text>')
                break
        else:
            hidden += 1
    legend_y = TOP + 12
    for family in sorted({p.family for p in points}):
        colour = FAMILY_COLOURS.get(family, "#333")
        out.append(f'<circle cx="{LEFT + plot_w - 92}" cy="{legend_y - 4}" r="4" fill="{colour}"/>'
                   f'<text x="{LEFT + plot_w - 84}" y="{legend_y}">{escape(family)}</text>')
        legend_y += 14
    if hidden:
        out.append(f'<text x="{LEFT + plot_w}" y="{HEIGHT - 22}" text-anchor="end" fill="#777" font-size="10">'
                   f'{hidden} overlapping label(s) left out: see the table</text>')
    out.append("</svg>")
    return "\n".join(out)


def _marker(x: float, y: float, p: Point) -> str:
    colour = FAMILY_COLOURS.get(p.family, "#333")
    title = f"<title>{escape(p.label)}: {p.y:.2f}</title>"
    if p.marker == "real":
        return f'<circle cx="{x:.1f}" cy="{y:.1f}" r="4.5" fill="{colour}">{title}</circle>'
    if p.marker == "scratch":
        return (f'<rect x="{x - 4:.1f}" y="{y - 4:.1f}" width="8" height="8" fill="white" stroke="{colour}" '
                f'stroke-width="1.6">{title}</rect>')
    return (f'<path d="M{x:.1f} {y - 5:.1f} L{x + 5:.1f} {y + 4:.1f} L{x - 5:.1f} {y + 4:.1f} Z" fill="{colour}">'
            f'{title}</path>')


def _overlap(a: tuple[float, float, float, float], b: tuple[float, float, float, float]) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]
