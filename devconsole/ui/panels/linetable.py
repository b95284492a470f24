"""A table drawn line by line: the base of the Requests list and the Sockets table.

Why not a ``DataTable``: the dashboard's tables change on every tick under
load. ``DataTable`` measures every cell of every new row, rebuilds its row
index on each ``remove_row``, and renders every visible cell again through
Rich whenever any cell changes (measured: ~20 ms per frame for the nine rows
of a saturated Sockets panel, seconds of UI time per second for Requests).
A line table keeps its rows as plain data and renders only the lines on
screen, from cached styles, on demand — like Textual's own ``Log``.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Sequence
from typing import Any, ClassVar, NamedTuple

from rich.cells import cell_len, set_cell_size
from rich.segment import Segment
from rich.style import Style
from textual import events
from textual.binding import Binding, BindingType
from textual.geometry import Region, Size
from textual.scroll_view import ScrollView
from textual.strip import Strip

from devconsole.ui.widgets.theming import component_style


class Column(NamedTuple):
    key: str
    label: str
    #: Cells; 0 for the one column that takes what the others leave.
    width: int
    right: bool = False


#: A cell: its (already sanitized) text and the component class it is drawn
#: with ("" for none). Never parsed as markup.
Cell = tuple[str, str]


def fit(text: str, width: int, right: bool = False) -> str:
    """``text`` in exactly ``width`` cells: padded, or cut with an ellipsis."""
    if width <= 0:
        return ""
    length = cell_len(text)
    if length > width:
        return set_cell_size(text, width - 1) + "…"
    pad = " " * (width - length)
    return pad + text if right else text + pad


class LineTable(ScrollView, can_focus=True):
    """A header line, then one line per row, with a cursor row.

    Rows are kept as plain data in a deque: :meth:`append_rows` adds at the
    end and drops the oldest beyond a cap in O(new rows), following the tail
    while the cursor is on the last row. Subclasses set ``COLUMNS`` and
    ``PREFIX`` (their component classes are ``PREFIX--header``,
    ``PREFIX--cursor`` and ``PREFIX--cursor-focused``, plus whatever their
    cells name) and implement
    :meth:`row_cells`, which turns a row into what is drawn.
    """

    COLUMNS: ClassVar[list[Column]] = []
    PREFIX: ClassVar[str] = "table"
    #: The flexible column never gets fewer cells than this.
    FLEX_MIN: ClassVar[int] = 12
    #: Rows come at the end and the view follows them (not so for a table
    #: whose rows are replaced in place, like Sockets).
    FOLLOWS_TAIL: ClassVar[bool] = True

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("up", "cursor(-1)", "Up", show=False),
        Binding("down", "cursor(1)", "Down", show=False),
        Binding("pageup", "page(-1)", "Page up", show=False),
        Binding("pagedown", "page(1)", "Page down", show=False),
        Binding("home", "first", "First", show=False),
        Binding("end", "last", "Last", show=False),
    ]

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self._rows: deque[Any] = deque()
        self._cursor = -1
        self._style_cache: dict[str, Style] = {}
        self._frame: tuple[int, Style, list[int], str] | None = None

    # -- data -------------------------------------------------------------------
    @property
    def row_count(self) -> int:
        return len(self._rows)

    def row_at(self, index: int) -> Any:
        return self._rows[index]

    def row_cells(self, index: int) -> Sequence[Cell]:
        """The cells of row ``index``, one per column (subclasses)."""
        raise NotImplementedError

    def at_tail(self) -> bool:
        """The cursor is on the newest row (or there is none): keep following."""
        return self._cursor >= len(self._rows) - 1

    def set_rows(self, rows: Iterable[Any], cap: int) -> None:
        """Show exactly ``rows`` (the last ``cap``), cursor on the newest."""
        self._rows = deque(rows)
        while len(self._rows) > cap:
            self._rows.popleft()
        self._cursor = len(self._rows) - 1
        self._follow_rows(follow=True)

    def append_rows(self, rows: list[Any], cap: int) -> None:
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
        self._follow_rows(follow=follow)

    def _follow_rows(self, follow: bool) -> None:
        self._resized_rows()
        if follow:
            # After the new virtual size has been laid out, or the end is the old one.
            self.call_after_refresh(self.scroll_end, animate=False, x_axis=False)

    def open_row(self, index: int) -> None:
        """Enter, or a click on the cursor row: nothing unless a subclass says."""

    # -- cursor ---------------------------------------------------------------
    @property
    def cursor_row(self) -> int:
        return self._cursor

    def row_texts(self, index: int) -> list[str]:
        """Row ``index`` as the texts of its cells (for tests and copying)."""
        return [text for text, _ in self.row_cells(index)]

    def move_cursor(self, row: int) -> None:
        count = self.row_count
        if not count:
            return
        self._cursor = min(max(row, 0), count - 1)
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
        self.move_cursor(self.row_count - 1)

    def action_open(self) -> None:
        if 0 <= self._cursor < self.row_count:
            self.open_row(self._cursor)

    def on_click(self, event: events.Click) -> None:
        """A click selects a row; a click on the selected row (or a double click) opens it."""
        if event.y < 1:
            return
        index = int(self.scroll_offset.y) + event.y - 1
        if not 0 <= index < self.row_count:
            return
        event.stop()
        opening = index == self._cursor or event.chain >= 2
        self.move_cursor(index)
        if opening:
            self.action_open()

    def _resized_rows(self) -> None:
        """After rows came or went: the scrollable height (width 0: lines are
        cut to the view, there is nothing to scroll sideways), then a repaint."""
        size = Size(0, self.row_count + 1)
        if self.virtual_size != size:
            self.virtual_size = size
        self.refresh()

    # -- rendering --------------------------------------------------------------
    def notify_style_update(self) -> None:
        # A theme change: its colours are resolved again.
        super().notify_style_update()
        self._style_cache.clear()
        self.refresh()  # the lines on screen were drawn with the old ones

    # The cursor's colours follow focus as it is when a line is drawn (a
    # ``:focus`` rule would depend on when the restyle lands).
    def on_focus(self) -> None:
        self.refresh()

    def on_blur(self) -> None:
        self.refresh()

    def style(self, name: str) -> Style:
        """The rich style of component class ``name`` ("" for none), cached:
        resolving one costs far more than drawing a line."""
        style = self._style_cache.get(name)
        if style is None:
            style = self._style_cache[name] = component_style(self, name) if name else Style()
        return style

    def _widths(self, width: int) -> list[int]:
        fixed = sum(column.width + 2 for column in self.COLUMNS if column.width)
        return [column.width or max(width - fixed - 2, self.FLEX_MIN) for column in self.COLUMNS]

    def _cursor_component(self) -> str:
        return f"{self.PREFIX}--cursor-focused" if self.has_focus else f"{self.PREFIX}--cursor"

    def render_lines(self, crop: Region) -> list[Strip]:
        # What every line of this frame shares, resolved once, not per line
        # (the widget's rich_style walks its ancestors' styles).
        width = self.scrollable_content_region.width
        self._frame = (width, self.rich_style, self._widths(width), self._cursor_component())
        try:
            return super().render_lines(crop)
        finally:
            self._frame = None

    def render_line(self, y: int) -> Strip:
        if self._frame is not None:
            width, base, widths, cursor = self._frame
        else:
            width = self.scrollable_content_region.width
            base, widths, cursor = self.rich_style, self._widths(width), self._cursor_component()
        if y == 0:
            header = base + self.style(f"{self.PREFIX}--header")
            text = "".join(
                " " + fit(column.label, w, column.right) + " " for column, w in zip(self.COLUMNS, widths, strict=False)
            )
            return Strip([Segment(text, header)]).crop_extend(0, width, header)
        index = int(self.scroll_offset.y) + y - 1
        if not 0 <= index < self.row_count:
            return Strip.blank(width, base)
        line_style = base + self.style(cursor) if index == self._cursor else base
        # Cells drawn alike are one segment: every segment costs again in
        # each step of the compositor that follows (filters, division).
        segments: list[Segment] = []
        texts: list[str] = []
        drawn_as = None
        for (text, component), w, column in zip(self.row_cells(index), widths, self.COLUMNS, strict=False):
            if component != drawn_as and texts:
                segments.append(Segment("".join(texts), line_style + self.style(drawn_as or "")))
                texts = []
            drawn_as = component
            texts.append(" " + fit(text, w, column.right) + " ")
        if texts:
            segments.append(Segment("".join(texts), line_style + self.style(drawn_as or "")))
        if sum(w + 2 for w in widths) == width:  # cells fill the line exactly: one strip, not two
            return Strip(segments, width)
        return Strip(segments).crop_extend(0, width, line_style)

    def on_resize(self, event: Any) -> None:
        # (Textual calls this for every class in the MRO that defines it:
        # subclasses say FOLLOWS_TAIL instead of handling it again.)
        self._follow_rows(follow=self.FOLLOWS_TAIL and self.at_tail())
