"""Charts drawn on the server as SVG: no chart library, no script, nothing to download.

``line_chart`` draws cumulative counts over time (competencies started and shown, week by
week). Accessible by construction: ``role="img"`` with a ``<title>`` and a ``<desc>`` that
says what the chart shows in words (its last values), each line told apart by its dash
pattern, its marker shape and a text label at its end as well as its colour; the page
puts the same numbers in a table next to it (a ``details`` element) for screen readers and
for anyone who would rather read. Colours pass WCAG AA against white (3:1 for graphics).
"""

from __future__ import annotations

from dataclasses import dataclass

from markupsafe import Markup, escape

WIDTH, HEIGHT = 480, 240
LEFT, RIGHT, TOP, BOTTOM = 44, 100, 14, 42


@dataclass(frozen=True)
class Series:
    name: str
    values: list[int]
    colour: str
    dash: str = ""
    marker: str = "circle"


#: two lines that differ in colour, dash and marker (blue solid circles, green dashed squares)
STARTED = ("#0b57a4", "", "circle")
SHOWN = ("#1d6b36", "7 4", "square")


def nice_step(top: int) -> int:
    """A tick step giving at most five steps up to ``top``: 1, 2, 5, 10, 20, 50..."""
    base = 1
    while True:
        for f in (1, 2, 5):
            if top <= 5 * base * f:
                return base * f
        base *= 10


def _marker(kind: str, x: float, y: float, colour: str) -> str:
    if kind == "square":
        return f'<rect x="{x - 3.5:.1f}" y="{y - 3.5:.1f}" width="7" height="7" fill="{colour}"/>'
    return f'<circle cx="{x:.1f}" cy="{y:.1f}" r="3.5" fill="#ffffff" stroke="{colour}" stroke-width="2"/>'


def line_chart(chart_id: str, title: str, desc: str, labels: list[str], series: list[Series], y_label: str) -> Markup:
    """An SVG line chart of ``series`` over ``labels`` (the x axis, oldest first)."""
    n = len(labels)
    top = max([1, *(v for s in series for v in s.values)])
    step = nice_step(top)
    y_max = ((top + step - 1) // step) * step
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM

    def x(i: int) -> float:
        return LEFT + (plot_w * i / (n - 1) if n > 1 else plot_w / 2)

    def y(v: float) -> float:
        return TOP + plot_h - plot_h * v / y_max

    out = [f'<svg class="chart" role="img" aria-labelledby="{chart_id}-title {chart_id}-desc" viewBox="0 0 {WIDTH} {HEIGHT}" '
           f'width="{WIDTH}" height="{HEIGHT}" xmlns="http://www.w3.org/2000/svg">',
           f'<title id="{chart_id}-title">{escape(title)}</title>', f'<desc id="{chart_id}-desc">{escape(desc)}</desc>',
           f'<rect x="0" y="0" width="{WIDTH}" height="{HEIGHT}" fill="#ffffff"/>']
    for v in range(0, y_max + 1, step):
        out.append(f'<line x1="{LEFT}" x2="{LEFT + plot_w}" y1="{y(v):.1f}" y2="{y(v):.1f}" stroke="#c9d0d9" stroke-width="1"/>')
        out.append(f'<text x="{LEFT - 6}" y="{y(v) + 4:.1f}" text-anchor="end">{v}</text>')
    out.append(f'<text x="12" y="{TOP + plot_h / 2:.1f}" text-anchor="middle" transform="rotate(-90 12 {TOP + plot_h / 2:.1f})">'
               f'{escape(y_label)}</text>')
    every = max(1, -(-n // 6))
    for i, label in enumerate(labels):
        if (i % every == 0 and n - 1 - i >= every / 2) or i == n - 1:
            out.append(f'<line x1="{x(i):.1f}" x2="{x(i):.1f}" y1="{TOP + plot_h}" y2="{TOP + plot_h + 4}" stroke="#4a5360"/>')
            out.append(f'<text x="{x(i):.1f}" y="{TOP + plot_h + 18}" text-anchor="middle">{escape(label)}</text>')
    out.append(f'<line x1="{LEFT}" x2="{LEFT + plot_w}" y1="{TOP + plot_h}" y2="{TOP + plot_h}" stroke="#4a5360" stroke-width="1.5"/>')
    ends: list[float] = []
    for s in series:
        pts = " ".join(f"{x(i):.1f},{y(v):.1f}" for i, v in enumerate(s.values))
        dash = f' stroke-dasharray="{s.dash}"' if s.dash else ""
        out.append(f'<polyline points="{pts}" fill="none" stroke="{s.colour}" stroke-width="2.5"{dash}/>')
        mark_every = max(1, -(-n // 26))
        out.extend(_marker(s.marker, x(i), y(v), s.colour) for i, v in enumerate(s.values) if i % mark_every == 0 or i == n - 1)
        # the line's name at its end, moved down when it would overlap the one before
        ly = y(s.values[-1]) + 4 if s.values else y(0)
        for other in ends:
            if abs(ly - other) < 14:
                ly = other + 14
        ends.append(ly)
        out.append(f'<text x="{x(n - 1) + 8:.1f}" y="{ly:.1f}">{escape(s.name)}: {s.values[-1] if s.values else 0}</text>')
    out.append("</svg>")
    return Markup("".join(out))


__all__ = ["SHOWN", "STARTED", "Series", "line_chart", "nice_step"]
