"""The Requests panel's list: a line-rendered view of the newest requests.

Why not a ``DataTable``: under a saturated server hundreds of rows arrive
every tick and as many old ones must go. ``DataTable`` measures every cell of
every new row and rebuilds its row index on each ``remove_row`` (measured:
seconds of UI time per second of load). This view keeps the rows in a
deque, trims from the left in O(1), and renders only the lines on screen,
from cached styles, on demand — like Textual's own ``Log``.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from typing import Any, ClassVar

from rich.cells import cell_len, set_cell_size
from rich.segment import Segment
from rich.style import Style
from textual import events
from textual.binding import Binding, BindingType
from textual.geometry import Size
from textual.message import Message
from textual.scroll_view import ScrollView
from textual.strip import Strip

from ...core.state import RequestRow
from .. import format as fmt

STATUS_CLASSES = {"1xx", "2xx", "3xx", "4xx", "5xx"}

#: ``(key, label, width, right-aligned)``; the path takes what is left.
COLUMNS: list[tuple[str, str, int, bool]] = [
    ("time", "Time", 12, False),
    ("method", "Method", 6, False),
    ("path", "Path", 0, False),
    ("status", "St", 3, True),
    ("duration", "Duration", 8, True),
    ("size", "Size", 6, True),
    ("thread", "Thread", 10, False),
]
PATH_MIN = 12


def fit(text: str, width: int, right: bool = False) -> str:
    """``text`` in exactly ``width`` cells: padded, or cut with an ellipsis."""
    if width <= 0:
        return ""
    length = cell_len(text)
    if length > width:
        return set_cell_size(text, width - 1) + "…"
    pad = " " * (width - length)
    return pad + text if right else text + pad


class RequestList(ScrollView, can_focus=True):
    """Rows of requests with a cursor; Enter (or a click on the cursor row) opens one."""

    COMPONENT_CLASSES: ClassVar[set[str]] = {
        "requests--header", "requests--cursor",
        "requests--1xx", "requests--2xx", "requests--3xx", "requests--4xx",
        "requests--5xx", "requests--none", "requests--dim", "requests--slow",
    }

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("enter", "open", "Open", id="requests.open", tooltip="Everything about the selected request"),
        Binding("up", "cursor(-1)", "Up", show=False, id="requests.up"),
        Binding("down", "cursor(1)", "Down", show=False, id="requests.down"),
        Binding("pageup", "page(-1)", "Page up", show=False, id="requests.page-up"),
        Binding("pagedown", "page(1)", "Page down", show=False, id="requests.page-down"),
        Binding("home", "first", "First", show=False, id="requests.first"),
        Binding("end", "last", "Newest", show=False, id="requests.last", tooltip="Back to the newest request, following the tail"),
    ]

    class Selected(Message):
        """Open the detail of request ``seq``."""

        def __init__(self, seq: int) -> None:
            super().__init__()
            self.seq = seq

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self._rows: deque[RequestRow] = deque()
        self._cursor = -1
        self._style_cache: dict[str, Style] = {}

    # -- data -----------------------------------------------------------------
    @property
    def row_count(self) -> int:
        return len(self._rows)

    @property
    def cursor_row(self) -> int:
        return self._cursor

    def row_at(self, index: int) -> RequestRow:
        return self._rows[index]

    def at_tail(self) -> bool:
        """The cursor is on the newest row (or there is none): keep following."""
        return self._cursor >= len(self._rows) - 1

    def set_rows(self, rows: Iterable[RequestRow], cap: int) -> None:
        """Show exactly ``rows`` (the last ``cap``), cursor on the newest."""
        self._rows = deque(rows)
        while len(self._rows) > cap:
            self._rows.popleft()
        self._cursor = len(self._rows) - 1
        self._resized_rows(follow=True)

    def append_rows(self, rows: list[RequestRow], cap: int) -> None:
        """Add ``rows`` at the end, drop the oldest beyond ``cap``; O(new rows)."""
        follow = self.at_tail()
        self._rows.extend(rows)
        dropped = 0
        while len(self._rows) > cap:
            self._rows.popleft()
            dropped += 1
        if follow:
            self._cursor = len(self._rows) - 1
        else:
            self._cursor = max(self._cursor - dropped, 0)
            if dropped:
                # Keep the rows the user is looking at under their eyes.
                self.scroll_to(y=max(self.scroll_offset.y - dropped, 0), animate=False, immediate=True)
        self._resized_rows(follow=follow)

    def _resized_rows(self, follow: bool) -> None:
        # Width 0: lines are cut to the view, there is nothing to scroll sideways.
        self.virtual_size = Size(0, len(self._rows) + 1)
        if follow:
            # After the new virtual size has been laid out, or the end is the old one.
            self.call_after_refresh(self.scroll_end, animate=False, x_axis=False)
        self.refresh()

    # -- cursor ---------------------------------------------------------------
    def move_cursor(self, row: int) -> None:
        if not self._rows:
            return
        self._cursor = min(max(row, 0), len(self._rows) - 1)
        visible = max(self.scrollable_content_region.height - 1, 1)
        top = int(self.scroll_offset.y)
        if self._cursor < top:
            self.scroll_to(y=self._cursor, animate=False, immediate=True)
        elif self._cursor >= top + visible:
            self.scroll_to(y=self._cursor - visible + 1, animate=False, immediate=True)
        self.refresh()

    def action_cursor(self, delta: int) -> None:
        self.move_cursor(self._cursor + delta)

    def action_page(self, direction: int) -> None:
        self.move_cursor(self._cursor + direction * max(self.scrollable_content_region.height - 2, 1))

    def action_first(self) -> None:
        self.move_cursor(0)

    def action_last(self) -> None:
        self.move_cursor(len(self._rows) - 1)

    def action_open(self) -> None:
        if 0 <= self._cursor < len(self._rows):
            self.post_message(self.Selected(self._rows[self._cursor].seq))

    def on_click(self, event: events.Click) -> None:
        """A click selects a row; a click on the selected row (or a double click) opens it."""
        if event.y < 1:
            return
        index = int(self.scroll_offset.y) + event.y - 1
        if not 0 <= index < len(self._rows):
            return
        event.stop()
        if index == self._cursor or event.chain >= 2:
            self.move_cursor(index)
            self.action_open()
        else:
            self.move_cursor(index)

    # -- rendering --------------------------------------------------------------
    def forget_styles(self) -> None:
        """After a theme change: resolve the component styles again."""
        self._style_cache.clear()
        self.refresh()

    def style(self, name: str) -> Style:
        style = self._style_cache.get(name)
        if style is None:
            style = self._style_cache[name] = self.get_component_rich_style(name, partial=True)
        return style

    def _widths(self, width: int) -> list[int]:
        fixed = sum(w + 2 for key, _, w, _ in COLUMNS if key != "path")
        return [w if key != "path" else max(width - fixed - 2, PATH_MIN) for key, _, w, _ in COLUMNS]

    def render_line(self, y: int) -> Strip:
        width = self.scrollable_content_region.width
        base = self.rich_style
        widths = self._widths(width)
        if y == 0:
            header = self.style("requests--header")
            text = "".join(" " + fit(label, w, right) + " " for (_, label, _, right), w in zip(COLUMNS, widths))
            return Strip([Segment(text, base + header)]).crop_extend(0, width, base + header)
        index = int(self.scroll_offset.y) + y - 1
        if not 0 <= index < len(self._rows):
            return Strip.blank(width, base)
        row = self._rows[index]
        klass = row.status_class if row.status_class in STATUS_CLASSES else "none"
        dim = self.style("requests--dim")
        cells: list[tuple[str, Style]] = [
            (fmt.clock_time(row.ts), dim),
            (row.method, Style()),
            (row.target, Style()),
            (str(row.status) if row.status else "-", self.style(f"requests--{klass}")),
            (fmt.duration_ms(row.duration_ms), self.style("requests--slow") if row.duration_ms >= 500 else Style()),
            (fmt.size(row.bytes_out), Style()),
            (fmt.thread(row.thread), dim),
        ]
        line_style = base + self.style("requests--cursor") if index == self._cursor else base
        segments = [
            Segment(" " + fit(text, w, right) + " ", line_style + style)
            for (text, style), w, (_, _, _, right) in zip(cells, widths, COLUMNS)
        ]
        return Strip(segments).crop_extend(0, width, line_style)

    def on_resize(self, event: Any) -> None:
        self._resized_rows(follow=self.at_tail())
