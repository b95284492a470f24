"""Requests: the server's requests as they finish, following the tail."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, ClassVar

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.message import Message
from textual.widgets import DataTable, Input

from ...core.state import RequestRow, ServerState, request_filter
from .. import format as fmt
from ..theming import FollowsTheme
from .table import LiveTable, cell

if TYPE_CHECKING:
    from ..app import DevConsoleApp

#: Rows kept in the table; totals above it stay exact.
MAX_ROWS = 2000
#: Above this many rows to trim at once, rebuilding the table is cheaper than
#: removing them one by one (DataTable.remove_row is O(rows)).
REBUILD_ABOVE = 200
STATUS_CLASSES = {"1xx", "2xx", "3xx", "4xx", "5xx"}


class RequestsTable(LiveTable):
    COMPONENT_CLASSES: ClassVar[set[str]] = {
        "requests--1xx", "requests--2xx", "requests--3xx", "requests--4xx",
        "requests--5xx", "requests--none", "requests--dim", "requests--slow",
    }


class RequestsPanel(FollowsTheme, Vertical):
    """Time, method, path, status, duration, size, thread; Enter opens a request."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("slash", "filter", "Filter", id="requests.filter", tooltip="Filter by path, status (404, 4xx) or method"),
        Binding("escape", "clear_filter", "Clear filter", show=False, id="requests.clear-filter"),
        Binding("end", "follow", "Follow", show=False, id="requests.follow", tooltip="Jump to the newest request and follow"),
    ]

    class Selected(Message):
        """The user asked for the detail of a request."""

        def __init__(self, seq: int) -> None:
            super().__init__()
            self.seq = seq

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.border_title = "Requests"
        self._seq = 0
        self._filter = ""
        self._keep = request_filter("")
        self._state: ServerState | None = None

    def compose(self) -> ComposeResult:
        yield Input(placeholder="filter: path text, 404, 4xx, POST, !static — Enter to apply, Esc to clear", id="requests-filter", classes="-hidden")
        table = RequestsTable(id="requests-table")
        table.add_keyed_columns(
            [
                ("time", "Time (UTC)", 12),
                ("method", "Method", 6),
                ("path", "Path", None),
                ("status", "St", 3),
                ("duration", "Duration", 8),
                ("size", "Size", 6),
                ("thread", "Thread", 10),
            ]
        )
        yield table

    def on_mount(self) -> None:
        self._subscribe_theme()

    def on_resize(self) -> None:
        self.call_after_refresh(self.table.fit_column, "path", 16)

    @property
    def table(self) -> RequestsTable:
        return self.query_one(RequestsTable)

    # -- rendering -----------------------------------------------------------
    def _cells(self, row: RequestRow) -> tuple[object, ...]:
        table = self.table
        klass = row.status_class if row.status_class in STATUS_CLASSES else "none"
        status_style = table.get_component_rich_style(f"requests--{klass}", partial=True)
        dim = table.get_component_rich_style("requests--dim", partial=True)
        slow = table.get_component_rich_style("requests--slow", partial=True) if row.duration_ms >= 500 else ""
        return (
            cell(fmt.clock_time(row.ts), dim),
            cell(row.method),
            cell(row.target),
            cell(str(row.status) if row.status else "-", status_style, "right"),
            cell(fmt.duration_ms(row.duration_ms), slow, "right"),
            cell(fmt.size(row.bytes_out), "", "right"),
            cell(fmt.thread(row.thread), dim),
        )

    def refresh_from_state(self, state: ServerState) -> None:
        """Append what finished since the last tick, trim to MAX_ROWS, update the title."""
        self._state = state
        if self.take_theme_stale():
            with self.app.batch_update():
                self._rebuild(state.matching_requests(self._filter)[-MAX_ROWS:])
        rows = state.requests_since(self._seq)
        if rows:
            self._seq = rows[-1].seq
            self._apply(rows)
        self._update_title(state)

    def _apply(self, rows: list[RequestRow]) -> None:
        table = self.table
        app: DevConsoleApp = self.app  # type: ignore[assignment]
        now = time.time()
        lag = getattr(app, "row_lag", None)
        if lag is not None:
            for row in rows:
                lag.append(now - (row.ts + row.duration_ms / 1000))
        shown = [row for row in rows if self._keep(row)]
        if not shown:
            return
        follow = table.at_tail()
        overflow = table.row_count + len(shown) - MAX_ROWS
        with app.batch_update():
            if overflow > REBUILD_ABOVE:
                self._rebuild(shown[-MAX_ROWS:], keep_existing=max(MAX_ROWS - len(shown), 0))
            else:
                table.add_rows_keyed((str(row.seq), self._cells(row)) for row in shown)
                if overflow > 0:
                    for key in table.keys()[:overflow]:
                        table.drop_row(key)
            if follow:
                table.move_cursor(row=table.row_count - 1, animate=False)

    def _rebuild(self, new: list[RequestRow], keep_existing: int = 0) -> None:
        """Refill the table: the last ``keep_existing`` kept rows, then ``new``."""
        state = self._state
        table = self.table
        old: list[RequestRow] = []
        if keep_existing and state is not None:
            for key in table.keys()[-keep_existing:]:
                row = state.request(int(key))
                if row is not None:
                    old.append(row)
        table.clear_rows()
        table.add_rows_keyed((str(row.seq), self._cells(row)) for row in old + new)

    def _update_title(self, state: ServerState) -> None:
        counts = state.status_counts()
        parts = [f"{state.total_requests} total", f"{state.requests_per_second():.1f}/s"]
        parts += [f"{key} {counts[key]}" for key in sorted(counts) if counts[key]]
        if state.dropped:
            parts.append(f"{state.dropped} not shown")
        if self._filter:
            parts.append(f"filter: {self._filter}")
        self.border_subtitle = " · ".join(parts)

    # -- filter ----------------------------------------------------------------
    def action_filter(self) -> None:
        box = self.query_one("#requests-filter", Input)
        box.remove_class("-hidden")
        box.focus()

    def action_clear_filter(self) -> None:
        box = self.query_one("#requests-filter", Input)
        box.value = ""
        self.apply_filter("")
        box.add_class("-hidden")
        self.table.focus()

    def action_follow(self) -> None:
        table = self.table
        if table.row_count:
            table.move_cursor(row=table.row_count - 1)

    @on(Input.Changed, "#requests-filter")
    def _filter_changed(self, event: Input.Changed) -> None:
        self.apply_filter(event.value)

    @on(Input.Submitted, "#requests-filter")
    def _filter_submitted(self, event: Input.Submitted) -> None:
        if not event.value.strip():
            event.input.add_class("-hidden")
        self.table.focus()

    def apply_filter(self, text: str) -> None:
        """Show only the kept requests ``text`` selects (rebuilds the table once)."""
        text = text.strip()
        if text == self._filter:
            return
        self._filter = text
        self._keep = request_filter(text)
        state = self._state
        if state is None:
            return
        rows = state.matching_requests(text)[-MAX_ROWS:]
        with self.app.batch_update():
            self._rebuild(rows)
            if self.table.row_count:
                self.table.move_cursor(row=self.table.row_count - 1, animate=False)
        self._update_title(state)

    @on(DataTable.RowSelected, "#requests-table")
    def _row_selected(self, event: DataTable.RowSelected) -> None:
        event.stop()
        if event.row_key.value is not None:
            self.post_message(self.Selected(int(event.row_key.value)))
