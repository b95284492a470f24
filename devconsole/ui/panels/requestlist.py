"""The Requests panel's list: a line-rendered view of the newest requests.

Under a saturated server hundreds of rows arrive every tick and as many old
ones must go: the rows are kept in a deque, trimmed from the left in O(1),
and only the lines on screen are drawn (see :mod:`.linetable`).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Sequence
from typing import Any, ClassVar

from textual.binding import Binding, BindingType
from textual.message import Message

from ...core.state import RequestRow
from .. import format as fmt
from .linetable import Cell, Column, LineTable

STATUS_CLASSES = {"1xx", "2xx", "3xx", "4xx", "5xx"}

COLUMNS: list[Column] = [
    Column("time", "Time", 12),
    Column("method", "Method", 6),
    Column("path", "Path", 0),
    Column("status", "St", 3, right=True),
    Column("duration", "Duration", 8, right=True),
    Column("size", "Size", 6, right=True),
    Column("thread", "Thread", 10),
]


class RequestList(LineTable):
    """Rows of requests with a cursor; Enter (or a click on the cursor row) opens one."""

    COLUMNS = COLUMNS
    PREFIX = "requests"
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

    # -- data -----------------------------------------------------------------
    @property
    def row_count(self) -> int:
        return len(self._rows)

    def row_at(self, index: int) -> RequestRow:
        return self._rows[index]

    def row_cells(self, index: int) -> Sequence[Cell]:
        row = self._rows[index]
        klass = row.status_class if row.status_class in STATUS_CLASSES else "none"
        return (
            (fmt.clock_time(row.ts), "requests--dim"),
            (row.method, ""),
            (row.target, ""),
            (str(row.status) if row.status else "-", f"requests--{klass}"),
            (fmt.duration_ms(row.duration_ms), "requests--slow" if row.duration_ms >= 500 else ""),
            (fmt.size(row.bytes_out), ""),
            (fmt.thread(row.thread), "requests--dim"),
        )

    def open_row(self, index: int) -> None:
        self.post_message(self.Selected(self._rows[index].seq))

    def at_tail(self) -> bool:
        """The cursor is on the newest row (or there is none): keep following."""
        return self._cursor >= len(self._rows) - 1

    def set_rows(self, rows: Iterable[RequestRow], cap: int) -> None:
        """Show exactly ``rows`` (the last ``cap``), cursor on the newest."""
        self._rows = deque(rows)
        while len(self._rows) > cap:
            self._rows.popleft()
        self._cursor = len(self._rows) - 1
        self._follow_rows(follow=True)

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
        self._follow_rows(follow=follow)

    def _follow_rows(self, follow: bool) -> None:
        self._resized_rows()
        if follow:
            # After the new virtual size has been laid out, or the end is the old one.
            self.call_after_refresh(self.scroll_end, animate=False, x_axis=False)

    def on_resize(self, event: Any) -> None:
        self._follow_rows(follow=self.at_tail())
