"""Small server-rendered SVG charts: stacked bars, lines and a sparkline, no script, no CDN.

Horizontal positions are percentages of the chart's width and vertical ones pixels, so a
chart fills any width (400 px phones included) while its text keeps its size. Colours
come from CSS classes (email_log.css), never inline styles (the console's CSP forbids
them). Every chart is an image with a title and a description for screen readers, and
each column carries a tooltip; the numbers themselves are in the table the page puts
under "Show the numbers".
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from django.utils.html import escape, format_html, format_html_join
from django.utils.safestring import SafeString

HEIGHT = 176
PLOT_TOP = 16
PLOT_BOTTOM = 148  # x labels sit below
GAP = 0.18  # the share of a column left empty between bars
X_LABELS = 6  # about this many labels on the x axis


@dataclass(frozen=True)
class Series:
    """One thing a chart draws: the value's name in each column, its label and CSS class."""

    key: str
    label: str
    css: str


@dataclass(frozen=True)
class Column:
    """One bucket of a chart: its x label, its tooltip and its values by series key."""

    label: str
    tooltip: str
    values: dict[str, float | None]


def nice_ceiling(value: float) -> float:
    """The smallest 1, 2, 4, 6 or 8 times a power of ten at or above ``value`` (at least 1)."""
    if value <= 1:
        return 1
    power = 10 ** math.floor(math.log10(value))
    # Even steps below 10, so the half-way line is a whole number too.
    return next(step * power for step in (1, 2, 4, 6, 8, 10) if step * power >= value)


def duration_text(seconds: float | None) -> str:
    """A delivery time as people say it: 0.4 s, 12 s, 3.5 min, 2.1 h."""
    if seconds is None:
        return "—"
    if seconds < 10:
        return f"{seconds:.1f} s"
    if seconds < 60:
        return f"{seconds:.0f} s"
    if seconds < 3600:
        return f"{seconds / 60:.1f} min".replace(".0 min", " min")
    return f"{seconds / 3600:.1f} h".replace(".0 h", " h")


def _joined(marks: Sequence[str]) -> SafeString:
    """Marks built here from numbers, our class names and escaped text: safe as they are.

    (f-strings, not format_html per mark: a 30-day chart has hundreds of marks.)
    """
    return SafeString("".join(marks))


def _px(value: float) -> str:
    return f"{value:.1f}"


def _percent(value: float) -> str:
    return f"{value:.3f}%"


def _y(value: float, top: float) -> float:
    return PLOT_BOTTOM - (PLOT_BOTTOM - PLOT_TOP) * value / top


def _frame(
    chart_id: str,
    title: str,
    description: str,
    top: float,
    y_text: Callable[[float], str],
    columns: Sequence[Column],
    body: SafeString,
) -> SafeString:
    """The svg element around a chart's marks: its name, grid, y values and x labels."""
    grid = format_html_join(
        "",
        '<line class="chart-grid" x1="0" x2="100%" y1="{0}" y2="{0}"></line>'
        '<text class="chart-axis" x="100%" y="{1}" text-anchor="end">{2}</text>',
        (
            (f"{_y(top * share, top):.1f}", f"{_y(top * share, top) - 3:.1f}", y_text(top * share))
            for share in (0.5, 1)
        ),
    )
    count = len(columns)
    every = max(1, round(count / X_LABELS))
    labels = format_html_join(
        "",
        '<text class="chart-axis" x="{}" y="{}" text-anchor="middle">{}</text>',
        (
            (_percent((index + 0.5) * 100 / count), HEIGHT - 10, column.label)
            for index, column in enumerate(columns)
            if (count - 1 - index) % every == 0
        ),
    )
    # The marks sit in a nested svg narrower by the y values' gutter (charts.css), so
    # percentages inside it are of the plot's width and no mark hides a value.
    return format_html(
        '<svg class="chart" id="{0}" width="100%" height="{1}" role="img" '
        'aria-labelledby="{0}-title {0}-desc" focusable="false">'
        '<title id="{0}-title">{2}</title><desc id="{0}-desc">{3}</desc>'
        '{4}<line class="chart-baseline" x1="0" x2="100%" y1="{5}" y2="{5}"></line>'
        '<svg class="chart-plot" height="{1}" overflow="visible">{6}{7}</svg></svg>',
        chart_id,
        HEIGHT,
        title,
        description,
        grid,
        PLOT_BOTTOM,
        body,
        labels,
    )


def _hit_area(index: int, count: int, tooltip: str) -> str:
    """A column's whole height, so hovering anywhere in it shows its tooltip."""
    return (
        f'<rect class="chart-hit" x="{_percent(index * 100 / count)}" y="{PLOT_TOP}" '
        f'width="{_percent(100 / count)}" height="{PLOT_BOTTOM - PLOT_TOP}">'
        f"<title>{escape(tooltip)}</title></rect>"
    )


def stacked_bars(
    chart_id: str,
    title: str,
    description: str,
    columns: Sequence[Column],
    series: Sequence[Series],
) -> SafeString:
    """One bar per column, its series stacked from the bottom in the order given."""
    count = len(columns)
    top = nice_ceiling(max((sum(v or 0 for v in c.values.values()) for c in columns), default=0))
    width = 100 / count
    marks = []
    for index, column in enumerate(columns):
        stacked = 0.0
        for line in series:
            value = column.values.get(line.key) or 0
            if not value:
                continue
            y_top, y_bottom = _y(stacked + value, top), _y(stacked, top)
            marks.append(
                f'<rect class="{escape(line.css)}" x="{_percent((index + GAP / 2) * width)}" '
                f'y="{_px(y_top)}" width="{_percent(width * (1 - GAP))}" '
                f'height="{_px(max(y_bottom - y_top, 1))}"></rect>'
            )
            stacked += value
        marks.append(_hit_area(index, count, column.tooltip))
    return _frame(chart_id, title, description, top, _count_text, columns, _joined(marks))


def line_chart(
    chart_id: str,
    title: str,
    description: str,
    columns: Sequence[Column],
    series: Sequence[Series],
    y_text: Callable[[float], str] = duration_text,
) -> SafeString:
    """One line per series through the columns' centres, broken where a value is missing."""
    count = len(columns)
    top = nice_ceiling(
        max((v for c in columns for v in c.values.values() if v is not None), default=0)
    )
    marks = []
    for line in series:
        previous: tuple[str, str] | None = None
        for index, column in enumerate(columns):
            value = column.values.get(line.key)
            if value is None:
                previous = None
                continue
            point = (_percent((index + 0.5) * 100 / count), _px(_y(value, top)))
            if previous is not None:
                marks.append(
                    f'<line class="{escape(line.css)}" x1="{previous[0]}" y1="{previous[1]}" '
                    f'x2="{point[0]}" y2="{point[1]}"></line>'
                )
            marks.append(
                f'<circle class="{escape(line.css)}" cx="{point[0]}" cy="{point[1]}" r="3"></circle>'
            )
            previous = point
    marks.extend(_hit_area(index, count, column.tooltip) for index, column in enumerate(columns))
    return _frame(chart_id, title, description, top, y_text, columns, _joined(marks))


def sparkline(
    label: str, columns: Sequence[Column], series: Sequence[Series], width: int = 120
) -> SafeString:
    """A word-sized stacked bar chart for a line of text, named by ``label``."""
    height = 20
    count = len(columns) or 1
    top = max((sum(v or 0 for v in c.values.values()) for c in columns), default=0) or 1
    step = width / count
    marks = []
    for index, column in enumerate(columns):
        stacked = 0.0
        for line in series:
            value = column.values.get(line.key) or 0
            if not value:
                continue
            bar = max(height * value / top, 1.5)
            marks.append(
                format_html(
                    '<rect class="{}" x="{}" y="{}" width="{}" height="{}"></rect>',
                    line.css,
                    _px(index * step + step * GAP / 2),
                    _px(height - stacked - bar),
                    _px(step * (1 - GAP)),
                    _px(bar),
                )
            )
            stacked += bar
    return format_html(
        '<svg class="sparkline" width="{0}" height="{1}" viewBox="0 0 {0} {1}" role="img" '
        'aria-label="{2}"><title>{2}</title>'
        '<line class="chart-baseline" x1="0" x2="{0}" y1="{1}" y2="{1}"></line>{3}</svg>',
        width,
        height,
        label,
        _joined(marks),
    )


def _count_text(value: float) -> str:
    return f"{value:,.0f}" if value == int(value) else f"{value:,.1f}"
