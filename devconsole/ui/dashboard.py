"""The first screen: what the server is doing right now."""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.screen import Screen
from textual.widgets import Footer, Header, RichLog, Static

from ..core.state import ServerState


class DashboardScreen(Screen[None]):
    def compose(self) -> ComposeResult:
        yield Header()
        yield Static(id="status")
        yield RichLog(id="events", max_lines=2000, markup=False, highlight=False)
        yield Footer()

    def on_mount(self) -> None:
        self._seq = 0
        self._log_seq = 0

    def refresh_from_state(self, state: ServerState) -> None:
        hello = state.hello or {}
        listen = hello.get("listen") or {}
        status = Text()
        status.append(f"{state.status}  ", style="bold")
        if listen:
            status.append(f"http://{listen.get('host')}:{listen.get('port')}/  ")
        status.append(f"requests {state.total_requests}  connections {state.total_connections}  loop {state.loop.iterations_total}")
        self.query_one("#status", Static).update(status)
        log = self.query_one("#events", RichLog)
        for line in state.log_since(self._log_seq):
            log.write(Text(f"[{line.stream}] {line.text}"))
            self._log_seq = line.seq
        for row in state.requests_since(self._seq):
            log.write(Text(f"{row.method} {row.target} {row.status} {row.duration_ms:.1f} ms"))
            self._seq = row.seq
