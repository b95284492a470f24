"""The Log view: the project's stdout/stderr and the django.server log, searchable.

A ``Log`` widget, not a ``RichLog``: a saturated server logs a line per
request, and ``Log`` renders only the lines on screen (``RichLog`` renders
every line as it is written: seconds of UI time per second of load,
measured). Lines are plain text, already sanitized where they were ingested.
"""

from __future__ import annotations

from typing import ClassVar

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.screen import Screen
from textual.widgets import Footer, Header, Input, Log

from devconsole.model.state import LogLine, ServerState
from devconsole.ui import formatting as fmt
from devconsole.ui.widgets.borders import set_border_subtitle
from devconsole.ui.widgets.statusline import StatusLine

MAX_LINES = 5000


class LogPane(Log):
    """The log lines, newest last, capped at MAX_LINES."""


class LogScreen(Screen[None]):
    """Every line the server child printed, newest last (``!`` marks stderr); ``/`` searches."""

    #: Focused whenever the view is shown, so keys work at once.
    AUTO_FOCUS = "#log"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("slash", "search", "Search", id="log.search", tooltip="Show only lines containing some text"),
        Binding("escape", "clear_search", "Clear search", show=False, id="log.clear-search"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self._seq = 0
        self._search = ""
        self._state: ServerState | None = None

    def compose(self) -> ComposeResult:
        yield Header()
        yield StatusLine()
        yield Input(placeholder="search the log (case-insensitive) — Esc clears", id="log-search")
        log = LogPane(id="log", max_lines=MAX_LINES, highlight=False, auto_scroll=True)
        log.border_title = "Log"
        yield log
        yield Footer()

    @staticmethod
    def _line(line: LogLine) -> str:
        marker = "!" if line.stream == "stderr" else " "
        return f"{fmt.clock_time(line.ts)} {marker} {line.text}"

    def _matches(self, line: LogLine) -> bool:
        return not self._search or self._search.lower() in line.text.lower()

    def refresh_from_state(self, state: ServerState) -> None:
        self._state = state
        self.query_one(StatusLine).refresh_from_state(state)
        lines = state.log_since(self._seq)
        if not lines:
            return
        self._seq = lines[-1].seq
        self.query_one(LogPane).write_lines([self._line(line) for line in lines if self._matches(line)])
        self._update_title(state)

    def _update_title(self, state: ServerState) -> None:
        pane = self.query_one(LogPane)
        set_border_subtitle(pane, f"{state.log_seq} lines" + (f" · search: {self._search}" if self._search else ""))

    def action_search(self) -> None:
        # Synchronously (Widget.focus defers): keys typed right after "/" go to the box.
        self.set_focus(self.query_one("#log-search", Input))

    def action_clear_search(self) -> None:
        box = self.query_one("#log-search", Input)
        box.value = ""
        self.search("")
        self.query_one(LogPane).focus()

    @on(Input.Changed, "#log-search")
    def _search_changed(self, event: Input.Changed) -> None:
        self.search(event.value)

    @on(Input.Submitted, "#log-search")
    def _search_submitted(self) -> None:
        self.query_one(LogPane).focus()

    def search(self, text: str) -> None:
        """Show only the kept lines containing ``text`` (all of them when empty)."""
        if text == self._search:
            return
        self._search = text
        self._refill()

    def _refill(self) -> None:
        """Rewrite the kept lines that match the search."""
        pane = self.query_one(LogPane)
        pane.clear()
        state = self._state
        if state is None:
            return
        lines = state.log_since(0)
        pane.write_lines([self._line(line) for line in lines if self._matches(line)])
        if lines:
            self._seq = lines[-1].seq
        self._update_title(state)
