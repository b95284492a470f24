"""The Log view: the project's stdout/stderr and the django.server log, searchable."""

from __future__ import annotations

from typing import ClassVar

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.screen import Screen
from textual.widgets import Footer, Header, Input, RichLog

from ..core.state import LogLine, ServerState
from . import format as fmt
from .statusline import StatusLine
from .theming import FollowsTheme

MAX_LINES = 5000


class LogPane(RichLog):
    COMPONENT_CLASSES: ClassVar[set[str]] = {"log--time", "log--stderr", "log--match"}


class LogScreen(FollowsTheme, Screen[None]):
    """Every line the server child printed, newest last; ``/`` searches."""

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
        log = LogPane(id="log", max_lines=MAX_LINES, markup=False, highlight=False, wrap=False, auto_scroll=True)
        log.border_title = "Log"
        yield log
        yield Footer()

    def on_mount(self) -> None:
        self._subscribe_theme()
        self.query_one(LogPane).focus()

    def _line(self, pane: LogPane, line: LogLine) -> Text:
        text = Text(no_wrap=True)
        text.append(fmt.clock_time(line.ts) + " ", pane.get_component_rich_style("log--time", partial=True))
        body = Text(line.text, style=pane.get_component_rich_style("log--stderr", partial=True) if line.stream == "stderr" else "")
        if self._search:
            body.highlight_words([self._search], pane.get_component_rich_style("log--match", partial=True), case_sensitive=False)
        text.append_text(body)
        return text

    def _matches(self, line: LogLine) -> bool:
        return not self._search or self._search.lower() in line.text.lower()

    def refresh_from_state(self, state: ServerState) -> None:
        self._state = state
        self.query_one(StatusLine).refresh_from_state(state)
        if self.take_theme_stale():
            self._refill()
        lines = state.log_since(self._seq)
        if not lines:
            return
        self._seq = lines[-1].seq
        pane = self.query_one(LogPane)
        for line in lines:
            if self._matches(line):
                pane.write(self._line(pane, line))
        self._update_title(state)

    def _update_title(self, state: ServerState) -> None:
        pane = self.query_one(LogPane)
        pane.border_subtitle = f"{state.log_seq} lines" + (f" · search: {self._search}" if self._search else "")

    def action_search(self) -> None:
        self.query_one("#log-search", Input).focus()

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
        """Rewrite the kept lines that match (a new search, a new theme)."""
        pane = self.query_one(LogPane)
        pane.clear()
        state = self._state
        if state is None:
            return
        lines = state.log_since(0)
        for line in lines:
            if self._matches(line):
                pane.write(self._line(pane, line))
        if lines:
            self._seq = lines[-1].seq
        self._update_title(state)
