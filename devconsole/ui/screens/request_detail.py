"""One request in full: request line, headers, query, status, timing, connection."""

from __future__ import annotations

import time
from typing import ClassVar
from urllib.parse import parse_qsl

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.content import Content
from textual.screen import ModalScreen
from textual.widgets import Footer, Static

from devconsole.model.sanitize import clean
from devconsole.model.state import RequestRow, ServerState
from devconsole.ui import formatting as fmt
from devconsole.ui.panels.sockets import STATE_LABELS
from devconsole.ui.widgets.theming import component_style


class RequestDetailView(Static):
    COMPONENT_CLASSES: ClassVar[set[str]] = {"detail--heading", "detail--label", "detail--dim"}


class RequestDetailScreen(ModalScreen[None]):
    """Everything the server reported about one request (Esc closes)."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "dismiss", "Close", id="detail.close"),
        Binding("enter", "dismiss", "Close", show=False, id="detail.close-enter"),
    ]

    def __init__(self, row: RequestRow, state: ServerState | None) -> None:
        super().__init__()
        self.row = row
        self._state = state
        self._shown: object = None

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="detail-box") as box:
            box.border_title = Content(f"Request {self.row.id}")  # literal: the id comes from the event stream
            yield RequestDetailView(id="detail")
        yield Footer()

    def on_mount(self) -> None:
        self.refresh_from_state(self._state)

    def refresh_from_state(self, state: ServerState | None) -> None:
        """Rebuilt when what it shows moved: the connection the request came
        on (its state and counters), or the theme."""
        row = self.row
        conn = state.connection(row.generation, row.conn) if state is not None else None
        key = (
            self.app.theme,
            None if conn is None else (conn.id, conn.state, conn.requests, conn.bytes_in, conn.bytes_out),
        )
        if key == self._shown:
            return
        self._shown = key
        view = self.query_one(RequestDetailView)
        view.update(self.render_detail(view, state))

    def render_detail(self, view: RequestDetailView, state: ServerState | None) -> Text:
        row = self.row
        heading = component_style(view, "detail--heading")
        label = component_style(view, "detail--label")
        dim = component_style(view, "detail--dim")
        text = Text()

        def section(title: str) -> None:
            text.append(f"\n{title}\n", heading)

        def field(name: str, value: str) -> None:
            text.append(f"  {name:<16}", label)
            text.append(f"{value}\n")

        text.append(f"{row.method} {row.target} {row.version}\n", heading)
        section("Response")
        field("status", str(row.status) if row.status else "- (no response)")
        field("size", f"{row.bytes_out} bytes")
        section("Timing")
        day = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(row.ts)) if row.ts else "-"
        field("started", f"{day}.{int(row.ts * 1000) % 1000:03d} {time.strftime('%Z', time.localtime(row.ts))}")
        field("duration", fmt.duration_ms(row.duration_ms))
        section("Query")
        pairs = parse_qsl(row.query, keep_blank_values=True) if row.query else []
        if pairs:
            for name, value in pairs:
                # parse_qsl decodes %1b into a real ESC: clean again.
                field(clean(name, 200), clean(value, 1000))
        else:
            text.append("  (none)\n", dim)
        section(f"Headers received ({len(row.headers)})")
        if row.headers:
            for pair in row.headers:
                name, value = (list(pair) + ["", ""])[:2]
                field(f"{name}:", value)
        else:
            text.append("  (none)\n", dim)
        section("Connection and thread")
        field("thread", row.thread or "-")
        field("server", f"generation {row.generation}")
        conn = state.connection(row.generation, row.conn) if state is not None else None
        if row.conn is None:
            field("connection", "-")
        elif conn is None:
            field("connection", f"#{row.conn} (closed)")
        else:
            field("connection", f"#{conn.id} from {conn.peer}")
            field("state", STATE_LABELS.get(conn.state, conn.state))
            field("requests served", str(conn.requests))
            field("bytes in / out", f"{conn.bytes_in} / {conn.bytes_out}")
        return text
