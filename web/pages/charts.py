"""Inline SVG bar and line charts drawn on the server (no JavaScript chart library).

Each chart has a title, axes with tick labels, and an accessible ``<title>``/``<desc>``
that lists the data, so screen readers get the numbers the picture shows.  Colours come
from CSS classes (``.chart-bar``, ``.chart-line`` ...) defined in static/css/app.css.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass

from markupsafe import Markup, escape

_ids = itertools.count(1)

# A narrow drawing keeps the text legible when the SVG is scaled into a half-width card on a
# desktop or a phone's full width (app.css also enlarges chart text on small screens).
WIDTH = 440
HEIGHT = 260
MARGIN_LEFT = 60
MARGIN_RIGHT = 16
MARGIN_TOP = 38
MARGIN_BOTTOM = 58
MIN_LABEL_GAP = 64  # horizontal room one x tick label needs, in SVG units


def nice_ticks(maximum: float, count: int = 5, *, integer: bool = False) -> list[float]:
    """Round tick values from 0 to at least ``maximum`` (1, 2, 2.5 or 5 times a power of 10).

    ``integer`` keeps steps whole (counts of people or sessions have no fractions).
    """
    if maximum <= 0 or not math.isfinite(maximum):
        return [0.0, 1.0]
    raw_step = maximum / count
    magnitude = 10 ** math.floor(math.log10(raw_step))
    step = magnitude
    for mult in (1, 2, 2.5, 5, 10):
        step = mult * magnitude
        if step >= raw_step and not (integer and step != int(step)):
            break
    if integer:
        step = max(1.0, float(math.ceil(step)))
    ticks: list[float] = []
    value = 0.0
    while value < maximum + step * 0.5 and len(ticks) <= count + 1:
        ticks.append(round(value, 10))
        value += step
    if ticks[-1] < maximum:
        ticks.append(round(value, 10))
    return ticks


def _fmt(value: float) -> str:
    if value == int(value):
        return f"{int(value):,}"
    return f"{value:,.2f}".rstrip("0").rstrip(".")


@dataclass
class _Plot:
    """A chart being drawn: the SVG so far and its plot area (``top_value`` at the top)."""

    parts: list[str]
    left: float
    top: float
    width: float
    height: float
    top_value: float

    def slot_middle(self, i: int, count: int) -> float:
        """The x of the ``i``-th of ``count`` equal slots' middle (bars and points alike, so
        the first and last x labels never hang over the edges of the drawing)."""
        slot = self.width / max(1, count)
        return self.left + slot * i + slot / 2

    def close(self, labels: Sequence[str], xs: Sequence[float]) -> Markup:
        """The x labels under the marks at ``xs``, and the finished SVG."""
        self.parts.extend(_x_labels(labels, xs, self.top + self.height, self.width))
        self.parts.append("</svg>")
        return Markup("".join(self.parts))


def _frame(
    kind: str,
    title: str,
    labels: Sequence[str],
    values: Sequence[float],
    x_label: str,
    y_label: str,
    width: int,
    height: int,
) -> _Plot:
    """Opening of the SVG with title/desc, grid, y axis, and the geometry for the marks."""
    n = next(_ids)
    title_id, desc_id = f"chart-{n}-title", f"chart-{n}-desc"
    data = "; ".join(f"{lab}: {_fmt(v)}" for lab, v in zip(labels, values, strict=False))
    desc = f"{kind} chart. {y_label} by {x_label}. " + (data or "No data yet.")
    left, top = MARGIN_LEFT, MARGIN_TOP
    plot_w = width - MARGIN_LEFT - MARGIN_RIGHT
    plot_h = height - MARGIN_TOP - MARGIN_BOTTOM
    ticks = nice_ticks(max(values, default=0), integer=all(v == int(v) for v in values))
    top_value = ticks[-1] or 1.0
    parts = [
        f'<svg class="chart" viewBox="0 0 {width} {height}" role="img" '
        f'aria-labelledby="{title_id} {desc_id}" preserveAspectRatio="xMidYMid meet">',
        f'<title id="{title_id}">{escape(title)}</title>',
        f'<desc id="{desc_id}">{escape(desc)}</desc>',
        f'<text class="chart-title" x="{width / 2:.1f}" y="20" text-anchor="middle">'
        f"{escape(title)}</text>",
    ]
    for tick in ticks:
        y = top + plot_h - tick / top_value * plot_h
        parts.append(
            f'<line class="chart-grid" x1="{left}" x2="{left + plot_w}" y1="{y:.1f}" '
            f'y2="{y:.1f}"/>'
            f'<text class="chart-tick" x="{left - 6}" y="{y + 4:.1f}" text-anchor="end">'
            f"{_fmt(tick)}</text>"
        )
    parts.append(
        f'<line class="chart-axis" x1="{left}" x2="{left}" y1="{top}" y2="{top + plot_h}"/>'
        f'<line class="chart-axis" x1="{left}" x2="{left + plot_w}" y1="{top + plot_h}" '
        f'y2="{top + plot_h}"/>'
        f'<text class="chart-axis-label" x="{left + plot_w / 2:.1f}" y="{height - 6}" '
        f'text-anchor="middle">{escape(x_label)}</text>'
        f'<text class="chart-axis-label" transform="rotate(-90)" x="{-(top + plot_h / 2):.1f}" '
        f'y="14" text-anchor="middle">{escape(y_label)}</text>'
    )
    if not values:
        parts.append(
            f'<text class="chart-empty" x="{left + plot_w / 2:.1f}" y="{top + plot_h / 2:.1f}" '
            'text-anchor="middle">No data yet</text>'
        )
    return _Plot(parts, left, top, plot_w, plot_h, top_value)


def _x_labels(
    labels: Sequence[str], xs: Sequence[float], baseline: float, plot_w: float
) -> list[str]:
    # Thin the labels out so they never overlap on a crowded axis.
    every = max(1, math.ceil(len(labels) * MIN_LABEL_GAP / plot_w))
    out = []
    for i, (label, x) in enumerate(zip(labels, xs, strict=False)):
        if i % every:
            continue
        out.append(
            f'<text class="chart-tick" x="{x:.1f}" y="{baseline + 18:.1f}" '
            f'text-anchor="middle">{escape(label)}</text>'
        )
    return out


def bar_chart(
    labels: Sequence[str],
    values: Sequence[float],
    *,
    title: str,
    x_label: str = "",
    y_label: str = "",
    width: int = WIDTH,
    height: int = HEIGHT,
) -> Markup:
    """A vertical bar chart; each bar also carries a <title> tooltip with its value."""
    values = [float(v) for v in values]
    plot = _frame("Bar", title, labels, values, x_label, y_label, width, height)
    bar_w = max(2.0, plot.width / max(1, len(values)) * 0.6)
    xs = []
    for i, (label, value) in enumerate(zip(labels, values, strict=False)):
        x_mid = plot.slot_middle(i, len(values))
        xs.append(x_mid)
        h = value / plot.top_value * plot.height
        plot.parts.append(
            f'<rect class="chart-bar" x="{x_mid - bar_w / 2:.1f}" '
            f'y="{plot.top + plot.height - h:.1f}" width="{bar_w:.1f}" height="{h:.1f}">'
            f"<title>{escape(label)}: {_fmt(value)}</title></rect>"
        )
    return plot.close(labels, xs)


def line_chart(
    labels: Sequence[str],
    values: Sequence[float],
    *,
    title: str,
    x_label: str = "",
    y_label: str = "",
    width: int = WIDTH,
    height: int = HEIGHT,
) -> Markup:
    """A line chart with a point per value (a single value is drawn as one point)."""
    values = [float(v) for v in values]
    plot = _frame("Line", title, labels, values, x_label, y_label, width, height)
    points = [
        (
            plot.slot_middle(i, len(values)),
            plot.top + plot.height - value / plot.top_value * plot.height,
        )
        for i, value in enumerate(values)
    ]
    if len(points) > 1:
        path = " ".join(f"{x:.1f},{y:.1f}" for x, y in points)
        plot.parts.append(f'<polyline class="chart-line" fill="none" points="{path}"/>')
    for (x, y), label, value in zip(points, labels, values, strict=False):
        plot.parts.append(
            f'<circle class="chart-point" cx="{x:.1f}" cy="{y:.1f}" r="4">'
            f"<title>{escape(label)}: {_fmt(value)}</title></circle>"
        )
    return plot.close(labels, [x for x, _ in points])
