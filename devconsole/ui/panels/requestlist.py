"""The Requests panel's list: a line-rendered view of the newest requests.

Under a saturated server hundreds of rows arrive every tick and as many old
ones must go: :class:`~.linetable.LineTable` keeps them in a deque, trims
from the left in O(1), and draws only the lines on screen.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

from textual.binding import Binding, BindingType
from textual.message import Message

from devconsole.model.state import STATUS_CLASSES, RequestRow
from devconsole.ui import formatting as fmt
from devconsole.ui.panels.linetable import Cell, Column, LineTable

COLUMNS: list[Column] = [
    Column("time", "Time", 12),
    Column("method", "Method", 6),
    Column("path", "Path", 0),
    Column("exception", "", 1),
    Column("status", "St", 3, right=True),
    Column("duration", "Duration", 8, right=True),
    Column("size", "Size", 6, right=True),
    Column("sql", "SQL", 18, right=True),
    Column("thread", "Thread", 10),
]


class RequestList(LineTable):
    """Rows of requests with a cursor; Enter (or a click on the cursor row) opens one."""

    COLUMNS = COLUMNS
    PREFIX = "requests"
    COMPONENT_CLASSES: ClassVar[set[str]] = {
        "requests--header",
        "requests--cursor",
        "requests--cursor-focused",
        "requests--1xx",
        "requests--2xx",
        "requests--3xx",
        "requests--4xx",
        "requests--5xx",
        "requests--none",
        "requests--dim",
        "requests--slow",
        "requests--sql-flag",
        "requests--exception",
    }

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("enter", "open", "Open", id="requests.open", tooltip="Everything about the selected request"),
        Binding("up", "cursor(-1)", "Up", show=False, id="requests.up"),
        Binding("down", "cursor(1)", "Down", show=False, id="requests.down"),
        Binding("pageup", "page(-1)", "Page up", show=False, id="requests.page-up"),
        Binding("pagedown", "page(1)", "Page down", show=False, id="requests.page-down"),
        Binding("home", "first", "First", show=False, id="requests.first"),
        Binding(
            "end",
            "last",
            "Newest",
            show=False,
            id="requests.last",
            tooltip="Back to the newest request, following the tail",
        ),
    ]

    class Selected(Message):
        """Open the detail of request ``seq``."""

        def __init__(self, seq: int) -> None:
            super().__init__()
            self.seq = seq

    def row_cells(self, index: int) -> Sequence[Cell]:
        row: RequestRow = self._rows[index]
        klass = row.status_class if row.status_class in STATUS_CLASSES else "none"
        summary = row.summary
        flagged = summary.n_plus_one or summary.duplicates
        # The marker has its own column: a long path cuts the exception's
        # name at the end of its cell, never the marker.
        target = f"{row.target}  {summary.exception}" if summary.exception else row.target
        return (
            (fmt.clock_time(row.ts), "requests--dim"),
            (row.method, ""),
            (target, "requests--exception" if summary.exception else ""),
            ("✖" if summary.exception else "", "requests--exception"),
            (str(row.status) if row.status else "-", f"requests--{klass}"),
            (fmt.duration_ms(row.duration_ms), "requests--slow" if row.duration_ms >= 500 else ""),
            (fmt.size(row.bytes_out), ""),
            (fmt.sql_cell(summary), "requests--sql-flag" if flagged else "requests--dim"),
            (fmt.thread(row.thread), "requests--dim"),
        )

    def open_row(self, index: int) -> None:
        self.post_message(self.Selected(self._rows[index].seq))
