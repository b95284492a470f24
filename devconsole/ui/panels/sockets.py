"""Sockets: the listening socket and every connection the server accepted.

Under an ASGI server (Daphne) a WebSocket is its connection's row, its state
``websocket`` followed by the messages received (↓) and sent (↑). A page
following the code (live reload) is ``live reload``, its page beside the peer.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from typing import Any, ClassVar

from textual.app import ComposeResult
from textual.containers import Vertical

from devconsole.model.state import ConnRow, ServerState
from devconsole.ui import formatting as fmt
from devconsole.ui.panels.linetable import Cell, Column, LineTable
from devconsole.ui.widgets.borders import set_border_subtitle

#: Connections shown at most (open ones first, newest first); the subtitle
#: counts them all.
MAX_ROWS = 64

#: What the connection states read as in the panel.
STATE_LABELS = {
    "reading": "reading",
    "handling": "handling",
    "idle": "keep-alive idle",
    "closed": "closed",
    "listening": "listening",
    "livereload": "live reload",
}


def state_cell(conn: ConnRow) -> Cell:
    """The State cell: its label and component class.

    A WebSocket says so, with the messages received (↓) and sent (↑)."""
    state = conn.state if conn.state in STATE_LABELS else "reading"
    if conn.state == "livereload":
        state = "idle"  # a page waiting for the next change: no request in flight
    label = STATE_LABELS.get(conn.state, conn.state)
    if conn.kind == "websocket":
        if conn.state == "websocket":
            state = "handling"
        name = "websocket" if conn.state in ("websocket", "closed") else f"ws {conn.state}"
        label = f"{name} {conn.messages_in}↓{conn.messages_out}↑"
    return (label, f"sockets--{state}")


def debugger_threads(app: Any) -> dict[tuple[int, str], tuple[str, str]]:
    """``(generation, thread name) → (state, where)`` for every request thread
    in a debugging session (``debugger``) or waiting for one
    (``debug waiting``), from the app's debug broker (none in a replay)."""
    broker = getattr(app, "debug_broker", None)
    if broker is None:
        return {}
    found: dict[tuple[int, str], tuple[str, str]] = {}
    for info in broker.waiting():
        found[(info.generation, info.thread)] = ("debug waiting", info.where)
    for info in broker.sessions():
        found[(info.generation, info.thread)] = ("debugger", info.where)
    return found


def debugger_cells(peer: Cell, debugging: tuple[str, str]) -> tuple[Cell, Cell]:
    """The Peer and State cells of a connection whose thread is in the
    debugger: the state says so, the peer where it is paused (the State
    column is too narrow for both)."""
    label, where = debugging
    return (f"{peer[0]} · at {where}" if where else peer[0], peer[1]), (label, "sockets--handling")


class SocketsTable(LineTable):
    """One line per socket; the rows are replaced whole on each tick (a few
    dozen at most), and repainted only when something in them changed."""

    COLUMNS: ClassVar[list[Column]] = [
        Column("peer", "Peer", 0),
        Column("state", "State", 15),
        Column("age", "Age", 5, right=True),
        Column("requests", "Req", 4, right=True),
        Column("in", "In", 5, right=True),
        Column("out", "Out", 5, right=True),
        Column("thread", "Thread", 12),
    ]
    PREFIX = "sockets"
    FOLLOWS_TAIL = False
    FLEX_MIN = 15
    COMPONENT_CLASSES: ClassVar[set[str]] = {
        "sockets--header",
        "sockets--cursor",
        "sockets--cursor-focused",
        "sockets--listening",
        "sockets--reading",
        "sockets--handling",
        "sockets--idle",
        "sockets--closed",
    }

    def row_cells(self, index: int) -> Sequence[Cell]:
        return self._rows[index][1]

    def keys(self) -> list[str]:
        return [key for key, _ in self._rows]

    def show_rows(self, rows: list[tuple[str, tuple[Cell, ...]]]) -> None:
        """Show ``rows`` (``(key, cells)``) in place of the last ones; the
        cursor stays on its key (no tail to follow here)."""
        if rows == list(self._rows):
            return
        selected = self._rows[self._cursor][0] if 0 <= self._cursor < len(self._rows) else None
        self._rows = deque(rows)
        keys = [key for key, _ in rows]
        self._cursor = keys.index(selected) if selected in keys else min(max(self._cursor, 0), len(rows) - 1)
        self._resized_rows()


class SocketsPanel(Vertical):
    """Peer, state, age, requests served, bytes in/out, thread.

    Closed connections stay (dimmed) for the state's ``linger`` seconds, then go.
    """

    LISTEN_KEY = "listen"

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.border_title = "Sockets"

    def compose(self) -> ComposeResult:
        yield SocketsTable(id="sockets-table")

    @property
    def table(self) -> SocketsTable:
        return self.query_one(SocketsTable)

    def _cells(
        self, conn: ConnRow, now: float, debugging: dict[tuple[int, str], tuple[str, str]] | None = None
    ) -> tuple[Cell, ...]:
        end = conn.closed_at if conn.closed_at is not None else now
        peer: Cell = (conn.peer, "")
        if conn.state == "livereload":
            peer = (f"{conn.peer} · live reload page {conn.page or '/'}", "")
        state = state_cell(conn)
        paused = debugging.get((conn.generation, conn.thread)) if debugging and conn.closed_at is None else None
        if paused is not None:
            peer, state = debugger_cells(peer, paused)
        return (
            peer,
            state,
            (fmt.age(end - conn.opened), ""),
            (str(conn.requests), ""),
            (fmt.size(conn.bytes_in), ""),
            (fmt.size(conn.bytes_out), ""),
            (fmt.thread(conn.thread), ""),
        )

    def refresh_from_state(self, state: ServerState) -> None:
        now = state.clock()
        conns = state.connections()
        listen = state.hello.listen if state.hello is not None else None
        open_count = sum(1 for conn in conns if conn.closed_at is None)
        rows: list[tuple[str, tuple[Cell, ...]]] = []
        if listen is not None:
            address = fmt.listen_address(listen)
            rows.append(
                (
                    self.LISTEN_KEY,
                    (
                        (address, ""),
                        ("listening", "sockets--listening"),
                        ("", ""),
                        (str(state.total_requests), ""),
                        ("", ""),
                        ("", ""),
                        ("django-main-thread", ""),
                    ),
                )
            )
        # Open connections first, newest on top; closed ones after, until they go.
        ordered = sorted(conns, key=lambda c: (c.closed_at is not None, -c.opened, -c.id))[:MAX_ROWS]
        debugging = debugger_threads(self.app)
        rows += [(conn.key, self._cells(conn, now, debugging)) for conn in ordered]
        self.table.show_rows(rows)
        shown = f" · showing {MAX_ROWS}" if len(conns) > MAX_ROWS else ""
        set_border_subtitle(self, f"{open_count} open · {state.total_connections} accepted{shown}")
