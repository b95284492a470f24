"""Sockets: the listening socket and every connection the server accepted."""

from __future__ import annotations

from typing import ClassVar

from textual.app import ComposeResult
from textual.containers import Vertical

from ...core.state import ConnRow, ServerState
from .. import format as fmt
from ..borders import set_border_subtitle
from ..theming import FollowsTheme
from .table import LiveTable, cell

#: Connections shown at most (open ones first, newest first); the subtitle
#: counts them all. Under connection-per-request load the set changes every
#: tick and the table is rebuilt: kept small, that costs a few milliseconds.
MAX_ROWS = 64

#: What the connection states read as in the panel.
STATE_LABELS = {
    "reading": "reading",
    "handling": "handling",
    "idle": "keep-alive idle",
    "closed": "closed",
    "listening": "listening",
}


class SocketsTable(LiveTable):
    COMPONENT_CLASSES: ClassVar[set[str]] = {
        "sockets--listening", "sockets--reading", "sockets--handling",
        "sockets--idle", "sockets--closed",
    }


class SocketsPanel(FollowsTheme, Vertical):
    """Peer, state, age, requests served, bytes in/out, thread.

    Closed connections stay (dimmed) for the state's ``linger`` seconds, then go.
    """

    LISTEN_KEY = "listen"

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.border_title = "Sockets"

    def compose(self) -> ComposeResult:
        table = SocketsTable(id="sockets-table")
        table.add_keyed_columns(
            [
                ("peer", "Peer", 21),
                ("state", "State", 15),
                ("age", "Age", 5),
                ("requests", "Req", 4),
                ("in", "In", 5),
                ("out", "Out", 5),
                ("thread", "Thread", 12),
            ]
        )
        yield table

    def on_mount(self) -> None:
        self._subscribe_theme()

    def on_resize(self) -> None:
        self.call_after_refresh(self.table.fit_column, "peer", 15)

    @property
    def table(self) -> SocketsTable:
        return self.query_one(SocketsTable)

    def _style(self, state: str) -> object:
        return self.table.style(f"sockets--{state}")

    def _cells(self, conn: ConnRow, now: float) -> tuple[object, ...]:
        end = conn.closed_at if conn.closed_at is not None else now
        style = self._style(conn.state if conn.state in STATE_LABELS else "reading")
        return (
            cell(conn.peer),
            cell(STATE_LABELS.get(conn.state, conn.state), style),
            cell(fmt.age(end - conn.opened), "", "right"),
            cell(str(conn.requests), "", "right"),
            cell(fmt.size(conn.bytes_in), "", "right"),
            cell(fmt.size(conn.bytes_out), "", "right"),
            cell(fmt.thread(conn.thread)),
        )

    def refresh_from_state(self, state: ServerState) -> None:
        if self.take_theme_stale():
            self.table.forget_styles()
            self.table.clear_rows()  # rebuilt below with the new theme's styles
        now = state.clock()
        conns = state.connections()
        hello = state.hello or {}
        listen = hello.get("listen") or {}
        open_count = sum(1 for conn in conns if conn.closed_at is None)
        rows: list[tuple[str, tuple[object, ...]]] = []
        if listen:
            host = str(listen.get("host", ""))
            address = f"[{host}]:{listen.get('port')}" if ":" in host else f"{host}:{listen.get('port')}"
            rows.append(
                (
                    self.LISTEN_KEY,
                    (
                        cell(address),
                        cell("listening", self._style("listening")),
                        cell(""),
                        cell(str(state.total_requests), "", "right"),
                        cell(""),
                        cell(""),
                        cell("django-main-thread"),
                    ),
                )
            )
        # Open connections first, newest on top; closed ones after, until they go.
        ordered = sorted(conns, key=lambda c: (c.closed_at is not None, -c.opened, -c.id))[:MAX_ROWS]
        rows += [(conn.key, self._cells(conn, now)) for conn in ordered]
        table = self.table
        with self.app.batch_update():
            if [key for key, _ in rows] == table.keys():
                for key, cells in rows:
                    table.sync_row(key, cells)
            else:
                # Membership or order changed: a small table, rebuilt whole.
                selected = table.keys()[table.cursor_row] if 0 <= table.cursor_row < table.row_count else None
                table.clear_rows()
                table.add_rows_keyed(rows)
                if selected in table.keys():
                    table.move_cursor(row=table.keys().index(selected), animate=False)
        shown = f" · showing {MAX_ROWS}" if len(conns) > MAX_ROWS else ""
        set_border_subtitle(self, f"{open_count} open · {state.total_connections} accepted{shown}")
