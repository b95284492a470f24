"""One request in full: its exception, its SQL, what was sent and received, timing.

Tabs: Exception (when it raised: the frames, Enter on one shows its source
and locals), SQL (N+1 patterns and duplicates first, with the lines of the
project's code that issued them), Request (request line and when it started,
query, headers, body, connection), Response (status line, headers, body), Timing (SQL vs
the rest). It opens on the exception when there is one, else on SQL when a
query was flagged, else on the request.

Actions: copy as curl (shown too, so it can be selected; the line says what
it cannot reproduce: masked secrets are sent masked), send again (the detail
follows the new row), open in the browser, go to its log line, and a
post-mortem when the exception was kept for one.
"""

from __future__ import annotations

import http.client
import time
import webbrowser
from typing import ClassVar
from urllib.parse import parse_qsl

from rich.style import Style
from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical, VerticalScroll
from textual.content import Content
from textual.screen import ModalScreen
from textual.widgets import Footer, OptionList, Static, TabbedContent, TabPane
from textual.widgets.option_list import Option

from devconsole.model.insight import MAX_KEPT, Insight, curl_command, resend_caveats
from devconsole.model.sanitize import clean
from devconsole.model.secrets import MASK
from devconsole.model.state import RequestRow, ServerState
from devconsole.ui import formatting as fmt
from devconsole.ui.panels.sockets import STATE_LABELS
from devconsole.ui.widgets import request_insight as draw
from devconsole.ui.widgets.theming import component_style

#: Headers that are not sent again (the connection's own business).
_NOT_RESENT = frozenset({"content-length", "connection", "transfer-encoding"})


class RequestDetailView(Static):
    COMPONENT_CLASSES: ClassVar[set[str]] = {
        "detail--heading",
        "detail--label",
        "detail--dim",
        "detail--error",
        "detail--warning",
        "detail--current",
        "detail--bar",
    }


class InsightView(Static):
    """A part of the detail beside the request itself (exception, SQL, response, timing)."""

    COMPONENT_CLASSES: ClassVar[set[str]] = RequestDetailView.COMPONENT_CLASSES


class RequestDetailScreen(ModalScreen[None]):
    """Everything the server reported about one request (Esc closes)."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "dismiss", "Close", id="detail.close"),
        Binding("c", "copy_curl", "Copy as curl", id="detail.curl", tooltip="Copy a curl command that sends it again"),
        Binding("e", "resend", "Send again", id="detail.resend", tooltip="Send it to the server again and follow"),
        Binding("o", "browser", "Browser", id="detail.browser", tooltip="Open its URL in the web browser"),
        Binding("p", "post_mortem", "Post-mortem", id="detail.post-mortem", tooltip="Debug the exception (pdb)"),
        Binding("g", "to_log", "Log", id="detail.log", tooltip="Its lines in the Log view"),
    ]

    def __init__(self, row: RequestRow, state: ServerState | None, *, notice: str = "") -> None:
        super().__init__()
        self.row = row
        self._first_notice = notice
        self._state = state
        self._shown: object = None
        self.insight: Insight | None = state.insight(row.seq) if state is not None else None
        #: After "send again": follow the first row of this method and path past this seq.
        self._follow_after: int | None = None
        #: The project's root (manage.py's directory): its files are named from there.
        self.root: str | None = None

    # -- layout ---------------------------------------------------------------
    def _first_tab(self) -> str:
        """The exception's tab, else the SQL's when a query was flagged, else
        the request's: only tabs that exist (an older row keeps its summary,
        not its detail)."""
        insight = self.insight
        if insight is not None and insight.exception is not None:
            return "tab-exception"
        summary = self.row.summary
        if insight is not None and insight.sql is not None and (summary.n_plus_one or summary.duplicates):
            return "tab-sql"
        return "tab-request"

    def _lost_detail(self) -> bool:
        """The row says it did something (SQL, an exception) whose detail is no longer kept."""
        summary = self.row.summary
        return self.insight is None and (summary.sql_count is not None or bool(summary.exception))

    def compose(self) -> ComposeResult:
        insight = self.insight
        project = getattr(self.app, "project", None)
        hello = self._state.hello if self._state is not None else None
        known = str(project.root) if project is not None else hello.root if hello is not None else None
        self.root = draw.project_root(insight, known)
        with Vertical(id="detail-box") as box:
            box.border_title = Content(f"Request {self.row.id}")  # literal: the id comes from the event stream
            box.border_subtitle = Content(f"{self.row.method} {self.row.target}")
            with TabbedContent(initial=self._first_tab(), id="detail-tabs"):
                if insight is not None and insight.exception is not None:
                    with TabPane("Exception", id="tab-exception"), VerticalScroll():
                        yield InsightView(id="exception-heading")
                        yield OptionList(id="frames")
                        yield InsightView(id="frame-detail")
                if insight is not None and insight.sql is not None:
                    count = insight.sql.get("count", 0)
                    with TabPane(f"SQL ({count})", id="tab-sql"), VerticalScroll():
                        yield InsightView(id="sql")
                with TabPane("Request", id="tab-request"), VerticalScroll():
                    yield RequestDetailView(id="detail")
                with TabPane("Response", id="tab-response"), VerticalScroll():
                    yield InsightView(id="response")
                with TabPane("Timing", id="tab-timing"), VerticalScroll():
                    yield InsightView(id="timing")
            yield Static(id="detail-notice", markup=False)
        yield Footer()

    def on_mount(self) -> None:
        self._fill()
        notice = self._first_notice
        if self._lost_detail():
            lost = f"Details no longer kept (only the newest {MAX_KEPT} requests keep them)."
            notice = f"{notice}\n{lost}" if notice else lost
        if notice:
            self._notice(notice)
        self.refresh_from_state(self._state)

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "post_mortem":
            return bool(self.insight and self.insight.exception and self.insight.exception.get("pm"))
        return True

    def _fill(self) -> None:
        """The parts that never change for a row (all but the connection)."""
        view = self.query_one("#detail", RequestDetailView)

        def style(name: str) -> Style:
            return component_style(view, name)

        row, insight = self.row, self.insight
        if insight is not None and insight.exception is not None:
            self.query_one("#exception-heading", InsightView).update(draw.exception_heading(insight, style))
            frames = list(insight.exception.get("frames") or [])
            options = self.query_one("#frames", OptionList)
            options.clear_options()
            options.add_options(
                [Option(draw.frame_label(frame, self.root), id=f"frame-{i}") for i, frame in enumerate(frames)]
            )
            # The innermost frame of the project's own code first: where it went wrong.
            chosen = next((i for i in range(len(frames) - 1, -1, -1) if frames[i].get("project")), len(frames) - 1)
            if frames:
                options.highlighted = chosen
                self._show_frame(chosen)
        if insight is not None and insight.sql is not None:
            self.query_one("#sql", InsightView).update(draw.sql_text(insight, style, self.root))
        self.query_one("#response", InsightView).update(draw.response_text(row, insight, style))
        self.query_one("#timing", InsightView).update(draw.timing_text(row, insight, style))

    def _show_frame(self, index: int) -> None:
        if self.insight is None or self.insight.exception is None:
            return
        frames = self.insight.exception.get("frames") or []
        if 0 <= index < len(frames):
            view = self.query_one("#frame-detail", InsightView)
            view.update(draw.frame_text(frames[index], lambda name: component_style(view, name)))

    @on(OptionList.OptionSelected, "#frames")
    def _frame_selected(self, event: OptionList.OptionSelected) -> None:
        self._show_frame(event.option_index)

    @on(OptionList.OptionHighlighted, "#frames")
    def _frame_highlighted(self, event: OptionList.OptionHighlighted) -> None:
        self._show_frame(event.option_index)

    # -- live part ------------------------------------------------------------
    def refresh_from_state(self, state: ServerState | None) -> None:
        """Rebuilt when what it shows moved: the connection the request came
        on (its state and counters), or the theme; after "send again", the
        detail follows the new request as soon as its row arrives."""
        if state is not None and self._follow_after is not None:
            follow = self._follow_after
            found = next(
                (
                    row
                    for row in state.requests_since(follow)
                    if row.method == self.row.method and row.target == self.row.target
                ),
                None,
            )
            if found is not None:
                self._follow_after = None
                notice = f"This is the request sent again (the first was {self.row.id})."
                masked = list(self.insight.masked) if self.insight is not None else []
                body = self.insight.request_body if self.insight is not None else None
                masked += resend_caveats(self.row.method, self.row.target, self.row.headers, body)
                if masked:
                    notice += f" Sent masked, as shown: {'; '.join(masked)}."
                self.app.switch_screen(RequestDetailScreen(found, state, notice=notice))
                return
        row = self.row
        conn = state.connection(row.generation, row.conn) if state is not None else None
        key = (
            self.app.theme,
            None if conn is None else (conn.id, conn.state, conn.requests, conn.bytes_in, conn.bytes_out),
        )
        if key == self._shown:
            return
        self._shown = key
        view = self.query_one("#detail", RequestDetailView)
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

        # The response and the timing have their own tabs: only when it came here.
        text.append(f"{row.method} {row.target} {row.version}\n", heading)
        day = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(row.ts)) if row.ts else "-"
        field("started", f"{day}.{int(row.ts * 1000) % 1000:03d} {time.strftime('%Z', time.localtime(row.ts))}")
        # One line of the answer here too: the first thing asked of a request.
        status = str(row.status) if row.status else "no response"
        field("answered", f"{status} in {fmt.duration_ms(row.duration_ms)}, {row.bytes_out} bytes")
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
        if self.insight is not None and self.insight.request_body is not None:
            section("Body")
            draw.body_text(self.insight.request_body, text, lambda name: component_style(view, name))
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

    # -- actions --------------------------------------------------------------
    def _notice(self, text: str) -> None:
        self.query_one("#detail-notice", Static).update(Text(text))

    def _base_url(self) -> str | None:
        hello = self._state.hello if self._state is not None else None
        listen = hello.listen if hello is not None else None
        if listen is None:
            return None
        host = listen.host if listen.host not in ("0.0.0.0", "::", "") else "127.0.0.1"
        host = f"[{host}]" if ":" in host else host
        return f"http://{host}:{listen.port}"

    def curl_line(self) -> tuple[str, list[str]]:
        base = self._base_url() or "http://127.0.0.1:8000"
        body = self.insight.request_body if self.insight is not None else None
        return curl_command(self.row.method, base + self.row.target, self.row.headers, body)

    def action_copy_curl(self) -> None:
        command, notes = self.curl_line()
        self.app.copy_to_clipboard(command)
        said = "Copied (terminal clipboard)" + (f"; note: {'; '.join(notes)}" if notes else "")
        self._notice(f"{said}\n{command}")

    def action_browser(self) -> None:
        base = self._base_url()
        if base is None:
            self._notice("No server address known (a replay?): nothing to open.")
            return
        url = base + self.row.target
        try:
            opened = webbrowser.open(url)
        except Exception:  # a broken browser setting must not end the console
            opened = False
        self._notice(f"Opened {url}" if opened else f"No web browser to open {url} with.")

    def action_post_mortem(self) -> None:
        exception = self.insight.exception if self.insight is not None else None
        token = str(exception.get("pm") or "") if exception is not None else ""
        post_mortem = getattr(self.app, "post_mortem", None)
        if not token or post_mortem is None:
            self._notice("No post-mortem is available for this exception.")
            return
        post_mortem(self.row.generation, token)

    def action_to_log(self) -> None:
        state = self._state
        seq = state.log_line_for_request(self.row) if state is not None else None
        if seq is None:
            self._notice("No log line of this request is kept.")
            return
        app = self.app
        self.dismiss()
        app.action_view("log")  # type: ignore[attr-defined]

        def reveal() -> None:
            from devconsole.ui.screens.logview import LogScreen

            if isinstance(app.screen, LogScreen):
                app.screen.reveal(seq)

        app.call_after_refresh(reveal)

    def action_resend(self) -> None:
        base = self._base_url()
        if base is None or self._state is None:
            self._notice("No live server to send it to (a replay?).")
            return
        self._follow_after = self._state.request_seq
        self._notice(f"Sending {self.row.method} {self.row.target} again…")
        self._send(base)

    @work(thread=True, exclusive=True, group="resend", description="send a request again", exit_on_error=False)
    def _send(self, base: str) -> None:
        host, _, port = base.removeprefix("http://").rpartition(":")
        headers = {}
        dropped = []
        for pair in self.row.headers:
            if len(pair) != 2:
                continue
            name, value = pair
            if name.lower() in _NOT_RESENT:
                continue
            if value == MASK:
                dropped.append(name)
                continue
            headers[name] = value
        body_preview = self.insight.request_body if self.insight is not None else None
        raw = body_preview.get("raw") if body_preview is not None else None
        body = raw.encode() if isinstance(raw, str) else None
        try:
            conn = http.client.HTTPConnection(host.strip("[]"), int(port), timeout=30)
            conn.request(self.row.method, self.row.target, body=body, headers=headers)
            status = conn.getresponse().status
            conn.close()
        except (OSError, http.client.HTTPException, ValueError) as exc:
            self.app.call_from_thread(self._notice, f"Sending it again failed: {exc}")
            self.app.call_from_thread(setattr, self, "_follow_after", None)
            return
        notes = [f"masked headers left out: {', '.join(dropped)}"] if dropped else []
        notes += resend_caveats(self.row.method, self.row.target, self.row.headers, body_preview)
        note = f"; note: {'; '.join(notes)}" if notes else ""
        self.app.call_from_thread(self._notice, f"Sent again: {status}{note}")
