"""A sparkline drawn line by line from cached strips.

Textual's :class:`~textual.widgets.Sparkline` renders a Rich renderable on
every change: one styled segment per bar through Rich's console, then cut
into strips. The Select loop panel's accepts move every second for a minute
after a request, and that render was most of what an idle console cost. This
one looks the same (the same bars, the same colours blended from the same
component classes, the same buckets) and draws its strips directly, once per
change of data, size or theme.
"""

from __future__ import annotations

from collections.abc import Sequence

from rich.color import Color as RichColor
from rich.color import blend_rgb
from rich.segment import Segment
from rich.style import Style
from textual.strip import Strip
from textual.widgets import Sparkline

BARS = "▁▂▃▄▅▆▇█"


def _blend(low: RichColor, high: RichColor, ratio: float) -> RichColor:
    """The colour ``ratio`` of the way from ``low`` to ``high`` (RGB)."""
    if low.triplet is None or high.triplet is None:
        return high
    return RichColor.from_triplet(blend_rgb(low.triplet, high.triplet, ratio))


def _buckets(data: Sequence[float], count: int) -> list[Sequence[float]]:
    """``data`` cut into ``count`` runs of (nearly) equal length; empty runs
    left out (as Textual's sparkline cuts them, whose own is private)."""
    size = len(data)  # cut at floor(size * number / count), exactly, in integers
    runs = (data[size * number // count : size * (number + 1) // count] for number in range(count))
    return [run for run in runs if run]


def sparkline_rows(
    data: Sequence[float], width: int, height: int, low: RichColor, high: RichColor, base: Style
) -> list[list[Segment]]:
    """The sparkline's rows, top first: one segment per column, each bar
    coloured by how high it reaches between ``low`` and ``high``."""
    if width <= 0 or height <= 0:
        return []
    if not data:
        return [[] for _ in range(height - 1)] + [[Segment("▁" * width, base + Style(color=low))]]
    if len(data) == 1:
        return [[Segment("█" * width, base + Style(color=high))] for _ in range(height)]
    per_line = len(BARS)
    levels = per_line * height - 1
    minimum, maximum = min(data), max(data)
    extent = maximum - minimum or 1
    buckets = _buckets(list(data), width)
    step = len(buckets) / width
    columns: list[tuple[int, Style]] = []  # (level reached, style) per column
    styles: dict[float, Style] = {}
    position = 0.0
    for _ in range(width):
        ratio = (max(buckets[int(position)]) - minimum) / extent
        style = styles.get(ratio)
        if style is None:
            style = styles[ratio] = base + Style(color=_blend(low, high, ratio))
        columns.append((int(ratio * levels), style))
        position += step
    rows: list[list[Segment]] = []
    for line in reversed(range(height)):
        floor, ceiling = line * per_line, (line + 1) * per_line
        row: list[Segment] = []
        for level, style in columns:
            if level < floor:
                row.append(Segment(" ", base))
            elif level >= ceiling:
                row.append(Segment("█", style))
            else:
                row.append(Segment(BARS[level % per_line], style))
        rows.append(row)
    return rows


class CachedSparkline(Sparkline):
    """:class:`~textual.widgets.Sparkline`'s look (its CSS and component
    classes) through the line API, with the rows kept until something changes.
    Uses the maximum of each bucket, as the default sparkline does."""

    def __init__(self, data: Sequence[float] | None = None, *, id: str | None = None) -> None:
        super().__init__(data, id=id)
        self._rows: tuple[object, list[Strip]] | None = None

    def render_line(self, y: int) -> Strip:
        width, height = self.size
        base = self.visual_style.rich_style
        _, background = self.background_colors
        low = (background + self.get_component_styles("sparkline--min-color").color).rich_color
        high = (background + self.get_component_styles("sparkline--max-color").color).rich_color
        data = tuple(self.data or ())
        key = (data, width, height, low, high, base)
        if self._rows is None or self._rows[0] != key:
            strips = [Strip(row) for row in sparkline_rows(data, width, height, low, high, base)]
            self._rows = (key, strips)
        strips = self._rows[1]
        return strips[y] if 0 <= y < len(strips) else Strip.blank(width, base)
