"""Requests: the server's requests as they finish, following the tail."""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from typing import ClassVar

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.message import Message
from textual.widgets import Input

from devconsole.model.state import RequestRow, ServerState, request_filter
from devconsole.ui.panels.requestlist import RequestList
from devconsole.ui.widgets.borders import set_border_subtitle

#: Rows kept in the list; the totals above it stay exact.
MAX_ROWS = 2000


def row_lag_hook(lags: deque[float] | list[float]) -> Callable[[Message], None]:
    """A ``run_test(message_hook=...)`` that adds to ``lags`` the seconds each
    request took from its end (in the server child) to its row (here)."""

    def hook(message: Message) -> None:
        if isinstance(message, RequestsPanel.RowsApplied):
            lags.extend(message.lags())

    return hook


class RequestsPanel(Vertical):
    """Time, method, path, status, duration, size, thread; Enter opens a request."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding(
            "slash",
            "filter",
            "Filter",
            id="requests.filter",
            tooltip="Filter by path, status (404, 4xx), method, SQL (sql>20, dup, n+1) or exception (exc); !word negates",
        ),
        Binding("escape", "clear_filter", "Clear filter", show=False, id="requests.clear-filter"),
    ]

    class RowsApplied(Message, bubble=False):
        """Requests just handed to the list, and when (wall clock): what a
        benchmark or a test watches (``run_test(message_hook=...)``) to
        measure how long a finished request takes to reach the screen."""

        def __init__(self, rows: list[RequestRow], at: float) -> None:
            super().__init__()
            self.rows = rows
            self.at = at

        def lags(self) -> list[float]:
            """Seconds from each request's end to this moment."""
            return [self.at - (row.ts + row.duration_ms / 1000) for row in self.rows]

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.border_title = "Requests"
        self._seq = 0
        self._filter = ""
        self._keep = request_filter("")
        self._state: ServerState | None = None

    def compose(self) -> ComposeResult:
        yield Input(
            placeholder="filter: path text, 404, 4xx, POST, sql>20, dup, n+1, exc, !static — applied as you type, Esc clears",
            id="requests-filter",
            classes="-hidden",
        )
        yield RequestList(id="requests-table")

    @property
    def table(self) -> RequestList:
        return self.query_one(RequestList)

    def refresh_from_state(self, state: ServerState) -> None:
        """Append what finished since the last tick (trimmed to MAX_ROWS), update the title."""
        self._state = state
        rows = state.requests_since(self._seq)
        if rows:
            self._seq = rows[-1].seq
            self._apply(rows)
        self._update_title(state)

    def _apply(self, rows: list[RequestRow]) -> None:
        self.post_message(self.RowsApplied(rows, time.time()))
        shown = [row for row in rows if self._keep(row)]
        if shown:
            self.table.append_rows(shown, MAX_ROWS)

    def _update_title(self, state: ServerState) -> None:
        counts = state.status_counts()
        parts = [f"{state.total_requests} total", f"{state.requests_per_second():.1f}/s"]
        parts += [f"{key} {counts[key]}" for key in sorted(counts) if counts[key]]
        if state.dropped:
            parts.append(f"{state.dropped} not shown")
        if self._filter:
            parts.append(f"filter: {self._filter}")
        set_border_subtitle(self, " · ".join(parts))

    # -- filter ----------------------------------------------------------------
    def action_filter(self) -> None:
        box = self.query_one("#requests-filter", Input)
        box.remove_class("-hidden")
        # Synchronously (Widget.focus defers): keys typed right after "/" go to the box.
        self.screen.set_focus(box)

    def action_clear_filter(self) -> None:
        box = self.query_one("#requests-filter", Input)
        box.value = ""
        self.apply_filter("")
        box.add_class("-hidden")
        self.table.focus()

    @on(Input.Changed, "#requests-filter")
    def _filter_changed(self, event: Input.Changed) -> None:
        self.apply_filter(event.value)

    @on(Input.Submitted, "#requests-filter")
    def _filter_submitted(self, event: Input.Submitted) -> None:
        if not event.value.strip():
            event.input.add_class("-hidden")
        self.table.focus()

    def apply_filter(self, text: str) -> None:
        """Show only the kept requests ``text`` selects."""
        text = text.strip()
        if text == self._filter:
            return
        self._filter = text
        self._keep = request_filter(text)
        state = self._state
        if state is None:
            return
        # Everything kept, filtered anew; the next tick goes on from here.
        rows = state.requests_since(0)
        self._seq = rows[-1].seq if rows else self._seq
        self.table.set_rows([row for row in rows if self._keep(row)], MAX_ROWS)
        self._update_title(state)
