"""The first screen: the four live panels, all visible at 120×36 and larger."""

from __future__ import annotations

from textual import on
from textual.app import ComposeResult
from textual.containers import Grid
from textual.screen import Screen
from textual.widgets import Footer, Header

from devconsole.model.state import ServerState
from devconsole.ui.panels import LoopPanel, ReloadsPanel, RequestsPanel, SocketsPanel
from devconsole.ui.panels.requestlist import RequestList
from devconsole.ui.screens.request_detail import RequestDetailScreen
from devconsole.ui.widgets.statusline import StatusLine


class DashboardScreen(Screen[None]):
    """Requests across the top; Sockets, Select loop and Autoreload below.

    Only the screen on display is refreshed by the app's tick, so a hidden
    dashboard costs nothing; when it comes back it catches up by sequence
    number (at most the last 2,000 requests).
    """

    #: Focused whenever the view is shown, so keys work at once.
    AUTO_FOCUS = "#requests-table"

    def compose(self) -> ComposeResult:
        yield Header()
        yield StatusLine()
        with Grid(id="dashboard"):
            yield RequestsPanel(id="requests")
            yield SocketsPanel(id="sockets")
            yield LoopPanel(id="loop")
            yield ReloadsPanel(id="reloads")
        yield Footer()

    def refresh_from_state(self, state: ServerState) -> None:
        self.query_one(StatusLine).refresh_from_state(state)
        self.query_one(RequestsPanel).refresh_from_state(state)
        self.query_one(SocketsPanel).refresh_from_state(state)
        self.query_one(LoopPanel).refresh_from_state(state)
        self.query_one(ReloadsPanel).refresh_from_state(state)

    @on(RequestList.Selected)
    def _open_request(self, event: RequestList.Selected) -> None:
        state = getattr(self.app, "state", None)
        row = state.request(event.seq) if state is not None else None
        if row is None:
            self.notify("That request is no longer kept (only the last 2,000 are).", severity="warning")
            return
        self.app.push_screen(RequestDetailScreen(row, state))
