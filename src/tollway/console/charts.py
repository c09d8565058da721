"""Stacked daily bar charts drawn as SVG on the server: no script, nothing fetched.

Geometry is integer arithmetic on a fixed view box (the SVG scales to its
box); the figures travel exactly in data attributes and each segment's
`<title>`, never through a float.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from html import escape

from msgspec import Struct

from tollway.console.display import day_text

__all__ = ["PALETTE_SIZE", "Chart", "stacked_bars"]

PALETTE_SIZE = 8
WIDTH = 720
HEIGHT = 260
_LEFT = 84  # room for the axis labels
_RIGHT = 8
_TOP = 12
_BOTTOM = 28


class Chart(Struct, frozen=True, kw_only=True):
    """What to draw: `values[(day, model)]`, a data attribute name, and how to write a figure."""

    svg_id: str
    label: str
    days: Sequence[int]
    models: Sequence[str]
    values: Mapping[tuple[int, str], int]
    attribute: str  # "nanos" or "tokens": rect[data-<attribute>]
    short: Callable[[int], str]  # the axis's rounded figure
    exact: Callable[[int], str]  # the segment title's exact figure


def _attr(value: object) -> str:
    return escape(str(value), quote=True)


def stacked_bars(chart: Chart) -> str:
    """The SVG element: one bar per day, one segment per model with a non-zero value."""
    plot_w = WIDTH - _LEFT - _RIGHT
    plot_h = HEIGHT - _TOP - _BOTTOM
    totals = {day: sum(chart.values.get((day, m), 0) for m in chart.models) for day in chart.days}
    highest = max(totals.values(), default=0)
    peak = highest or 1
    n = max(len(chart.days), 1)
    slot = plot_w * 1000 // n  # thousandths of a unit, so 366 bars still tile the width
    bar = max(slot * 8 // 10, 1000)
    parts = [
        f'<svg id="{_attr(chart.svg_id)}" class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" '
        f'aria-label="{_attr(chart.label)}" preserveAspectRatio="xMidYMid meet">',
        f"<title>{escape(chart.label)}</title>",
        f'<line class="axis" x1="{_LEFT}" y1="{_TOP + plot_h}" x2="{WIDTH - _RIGHT}" y2="{_TOP + plot_h}"/>',
        f'<line class="axis" x1="{_LEFT}" y1="{_TOP}" x2="{_LEFT}" y2="{_TOP + plot_h}"/>',
        f'<text class="tick" x="{_LEFT - 6}" y="{_TOP + 10}" text-anchor="end">'
        f"{escape(chart.short(highest))}</text>",
        f'<text class="tick" x="{_LEFT - 6}" y="{_TOP + plot_h}" text-anchor="end">'
        f"{escape(chart.short(0))}</text>",
    ]
    palette = {model: i % PALETTE_SIZE for i, model in enumerate(chart.models)}
    for index, day in enumerate(chart.days):
        x = _LEFT * 1000 + index * slot + (slot - bar) // 2
        below = 0
        for model in chart.models:
            value = chart.values.get((day, model), 0)
            if value == 0:
                continue
            bottom = _TOP * 1000 + plot_h * 1000 - below * plot_h * 1000 // peak
            below += value
            top = _TOP * 1000 + plot_h * 1000 - below * plot_h * 1000 // peak
            day_s = day_text(day)
            parts.append(
                f'<rect class="s{palette[model]}" x="{_milli(x)}" y="{_milli(top)}" width="{_milli(bar)}" '
                f'height="{_milli(bottom - top)}" data-day="{day_s}" data-model="{_attr(model)}" '
                f'data-{chart.attribute}="{value}"><title>{escape(day_s)} · {escape(model)}: '
                f"{escape(chart.exact(value))}</title></rect>"
            )
    last = len(chart.days) - 1
    for index in sorted({0, last // 2, last}):
        if 0 <= index <= last:
            x = _LEFT * 1000 + index * slot + slot // 2
            # The first label starts at its bar and the last ends at its bar, so neither is clipped.
            anchor = "start" if index == 0 and last > 0 else "end" if index == last and last > 0 else "middle"
            if anchor == "start":
                x = _LEFT * 1000 + index * slot
            elif anchor == "end":
                x = _LEFT * 1000 + (index + 1) * slot
            parts.append(
                f'<text class="tick" x="{_milli(x)}" y="{HEIGHT - 8}" text-anchor="{anchor}">'
                f"{day_text(chart.days[index])}</text>"
            )
    parts.append("</svg>")
    return "".join(parts)


def _milli(value: int) -> str:
    """Thousandths as a decimal string: 12345 -> "12.345" (exact, no float)."""
    whole, frac = divmod(value, 1000)
    return f"{whole}.{frac:03d}".rstrip("0").rstrip(".")
