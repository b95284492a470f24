"""The Log view: the project's stdout/stderr and the django.server log, searchable.

A ``Log`` widget, not a ``RichLog``: a saturated server logs a line per
request, and ``Log`` renders only the lines on screen (``RichLog`` renders
every line as it is written: seconds of UI time per second of load,
measured). Lines are plain text, already sanitized where they were ingested.

Lines are shown in time order. Output the server prints reaches the state
as it is read; the request line is written from the request event, which
comes up to 25 ms later (the flush interval; more under load) with an earlier time (the request's end). So each
line waits :data:`REORDER_WINDOW` before it is shown, and the waiting lines
go out sorted by time: a traceback printed after a request ended comes after
that request's line, the print of a view before its own request's line.

The two clocks are not alike: a request line has the request's end as the
server child measured it, output the time the console read it, a little
late (the reader thread waits for the GIL). Output read just after a request
ended, while no other request was running, is that request's own (its
traceback, say) and goes before its line, as runserver prints them
(:class:`RecentRequests`).
"""

from __future__ import annotations

import itertools
import time
from bisect import bisect_right
from collections import deque
from collections.abc import Iterable
from typing import Any, ClassVar

from rich.segment import Segment
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.screen import Screen
from textual.strip import Strip
from textual.widgets import Footer, Header, Input, Log
from typing_extensions import Self

from devconsole.model.sanitize import strip_sgr
from devconsole.model.state import SERVER_SOURCE, LogLine, RequestRow, ServerState
from devconsole.ui import formatting as fmt
from devconsole.ui.widgets.borders import set_border_subtitle
from devconsole.ui.widgets.statusline import StatusLine, exposed_host

MAX_LINES = 5000
#: Characters of the source column (shown once side processes run): at least
#: this, as wide as the longest name up to SOURCE_MAX (a longer one ends in …).
SOURCE_WIDTH = 10
SOURCE_MAX = 20


def source_cell(source: str, width: int) -> str:
    """``source`` in a column ``width`` wide: padded, or cut with ``…`` (a
    name cut short never reads as another, shorter, name)."""
    if len(source) > width:
        return source[: width - 1] + "…"
    return f"{source:<{width}}"


#: Seconds a line waits before it is shown, so that a line arriving late with
#: an earlier time (the request line: events are flushed every 25 ms) is
#: shown before it. Every line is shown at most this long after it arrived.
REORDER_WINDOW = 0.25
#: Output read at most this long after a request ended may be that request's
#: own: the console's reader thread waits for the GIL (a switch interval, 5 ms,
#: on an idle console; tens of ms measured on a loaded machine).
OWN_OUTPUT_SLACK = 0.05
#: Requests remembered to place output among them.
MAX_SPANS = 2000
#: Requests that ended after one are looked at, at most, to tell whether
#: output read just after it may be another's.
MAX_OVERLAP_SCAN = 64


class RecentRequests:
    """The last requests' (end, start) times, sorted by end, to place output
    lines among request lines (see the module's docstring)."""

    def __init__(self) -> None:
        self._seq = 0
        self._ends: list[float] = []
        self._starts: list[float] = []
        self._order: deque[float] = deque()

    def add(self, rows: list[RequestRow]) -> None:
        for row in rows:
            if row.status is None:
                continue
            end = row.ts + row.duration_ms / 1000
            at = bisect_right(self._ends, end)
            self._ends.insert(at, end)
            self._starts.insert(at, row.ts)
            self._order.append(end)
            if len(self._order) > MAX_SPANS:
                gone = self._order.popleft()
                index = bisect_right(self._ends, gone) - 1
                del self._ends[index], self._starts[index]
        if rows:
            self._seq = rows[-1].seq

    def catch_up(self, state: ServerState) -> None:
        self.add(state.requests_since(self._seq))

    def key(self, line: LogLine) -> float:
        """Where ``line`` goes in time: its own time, or just before the line
        of the request whose output it is."""
        ts = line.ts
        index = bisect_right(self._ends, ts) - 1
        # A request's own line (its time is the end), or output too long after.
        if index < 0 or ts == self._ends[index] or ts - self._ends[index] > OWN_OUTPUT_SLACK:
            return ts
        # Another request still running when this one ended, and started
        # before the line was read, may have printed it: keep its own time.
        # The few that ended next are enough: under concurrent load one of
        # them overlaps at once, and the scan stays short per line.
        for later in range(index + 1, min(len(self._ends), index + 1 + MAX_OVERLAP_SCAN)):
            if self._starts[later] <= ts:
                return ts
        return self._ends[index] - 1e-6


class LogPane(Log):
    """The log lines, newest last, capped at MAX_LINES; one line may be
    marked (the line ``g`` in a request's detail went to)."""

    COMPONENT_CLASSES: ClassVar[set[str]] = {"log--revealed"}
    DEFAULT_CSS = """
    LogPane > .log--revealed {
        background: $accent 40%;
        text-style: bold;
    }
    """

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        #: Lines written since the last clear, and the marked one's number among them.
        self._written = 0
        self._marked: int | None = None

    def write_lines(self, lines: Iterable[str], scroll_end: bool | None = None) -> Self:
        lines = list(lines)
        self._written += len(lines)
        return super().write_lines(lines, scroll_end)

    def clear(self) -> Self:
        self._written = 0
        self._marked = None
        return super().clear()

    def mark(self, index: int) -> None:
        """Mark the line at ``index`` (0: the oldest kept)."""
        self._marked = self._written - self.line_count + index
        self.refresh()

    @property
    def marked_index(self) -> int | None:
        """The marked line's index now (None when none is, or it was dropped)."""
        if self._marked is None:
            return None
        index = self._marked - (self._written - self.line_count)
        return index if index >= 0 else None

    def render_line(self, y: int) -> Strip:
        strip = super().render_line(y)
        if self._marked is not None and self.marked_index == self.scroll_offset.y + y:
            # Over the line's own style (its background included).
            strip = Strip(
                Segment.apply_style(list(strip), post_style=self.get_component_rich_style("log--revealed")),
                strip.cell_length,
            )
        return strip


class LogScreen(Screen[None]):
    """Every line the server child printed, newest last (``!`` marks stderr); ``/`` searches."""

    #: Focused whenever the view is shown, so keys work at once.
    AUTO_FOCUS = "#log"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("slash", "search", "Search", id="log.search", tooltip="Show only lines containing some text"),
        Binding("escape", "clear_search", "Clear search", show=False, id="log.clear-search"),
        Binding(
            "s",
            "next_source",
            "Source",
            id="log.source",
            tooltip="Show one source's lines: the server's, then each side process's, then all again",
        ),
        Binding(
            "o",
            "open_request",
            "Open request",
            id="log.open-request",
            tooltip="The request of the last traceback on screen: its exception, SQL, bodies",
        ),
    ]

    #: Set while lines wait in the reorder window: each tick may release some.
    REFRESH_EVERY_TICK = False

    def __init__(self) -> None:
        super().__init__()
        self._seq = 0
        self._search = ""
        self._state: ServerState | None = None
        #: Lines not shown yet, with when they arrived here.
        self._pending: list[tuple[float, LogLine]] = []
        self._requests = RecentRequests()
        #: The console's own line saying the server is reachable from the network.
        self._exposure: LogLine | None = None
        #: The lines on the pane, in its order (it drops the oldest as this does).
        self._shown: deque[LogLine] = deque(maxlen=MAX_LINES)
        #: A log line to scroll to once it is on the pane (from a request's detail).
        self._reveal: int | None = None
        #: With side processes, each line names its source (``server`` or the process).
        self._sources: tuple[str, ...] = ()
        #: Only this source's lines (None: all).
        self._source: str | None = None

    def compose(self) -> ComposeResult:
        yield Header()
        yield StatusLine()
        yield Input(placeholder="search the log (case-insensitive) — Esc clears", id="log-search")
        log = LogPane(id="log", max_lines=MAX_LINES, highlight=False, auto_scroll=True)
        log.border_title = "Log"
        yield log
        yield Footer()

    def _line(self, line: LogLine) -> str:
        marker = "!" if line.stream == "stderr" else " "
        if not self._sources:
            return f"{fmt.clock_time(line.ts)} {marker} {line.text}"
        # The Log widget shows plain text: a side process's colours stay in its own view.
        width = min(SOURCE_MAX, max(SOURCE_WIDTH, *(len(source) for source in self._sources)))
        return f"{fmt.clock_time(line.ts)} {marker} {source_cell(line.source, width)} {strip_sgr(line.text)}"

    def _matches(self, line: LogLine) -> bool:
        if self._source is not None and line.source != self._source:
            return False
        if not self._search:
            return True
        text = strip_sgr(line.text) if line.source != SERVER_SOURCE else line.text
        return self._search.lower() in text.lower()

    def refresh_from_state(self, state: ServerState) -> None:
        self._state = state
        self.query_one(StatusLine).refresh_from_state(state)
        if state.processes and len(state.processes) + 1 != len(self._sources):
            # Side processes: a source column, and the lines already shown get theirs.
            self._sources = (SERVER_SOURCE, *state.processes)
            self.refresh_bindings()
            self._refill()
            return
        now = time.time()
        self._note_exposure(state, now)
        lines = state.log_since(self._seq)
        if lines:
            self._seq = lines[-1].seq
            self._pending.extend((now, line) for line in lines)
        if self._pending:
            self._requests.catch_up(state)
        ready = self._take_ready(now)
        self.REFRESH_EVERY_TICK = bool(self._pending)
        if not ready:
            return
        self._write([line for line in ready if self._matches(line)])
        self._update_title(state)

    def _write(self, lines: list[LogLine]) -> None:
        self._shown.extend(lines)
        self.query_one(LogPane).write_lines([self._line(line) for line in lines])
        if self._reveal is not None:
            self.reveal(self._reveal)

    def reveal(self, seq: int) -> None:
        """Scroll to log line ``seq`` (a request's traceback), now or once it is shown."""
        index = next((i for i, line in enumerate(self._shown) if line.seq == seq), None)
        if index is None:
            self._reveal = seq
            return
        self._reveal = None
        pane = self.query_one(LogPane)
        # Scrolled up, the pane stops following until it is back at the end
        # (Log follows only from the end): nothing to switch off.
        pane.mark(index)
        pane.scroll_to(y=max(0, index - 1), animate=False)

    def action_open_request(self) -> None:
        """Open the request whose traceback is lowest on screen."""
        state = self._state
        pane = self.query_one(LogPane)
        if state is None or not self._shown:
            return
        bottom = min(len(self._shown) - 1, int(pane.scroll_offset.y) + pane.scrollable_content_region.height - 1)
        # The newest line at or above the bottom one (lines are shown in time order, not seq's).
        seq = max(line.seq for line in itertools.islice(self._shown, max(0, bottom - 50), bottom + 1))
        row = state.request_for_log_line(seq)
        if row is None:
            self.notify("No request's traceback on screen.", severity="warning")
            return
        from devconsole.ui.screens.request_detail import RequestDetailScreen

        self.app.push_screen(RequestDetailScreen(row, state))

    def _take_ready(self, now: float) -> list[LogLine]:
        """The waiting lines whose window has passed, in time order; a line
        is held no longer than the window after it arrived, whatever its time."""
        if not self._pending:
            return []
        key = self._requests.key
        self._pending.sort(key=lambda item: (key(item[1]), item[1].seq))
        cutoff = now - REORDER_WINDOW
        count = 0
        for arrived, line in self._pending:
            if min(arrived, line.ts) > cutoff:
                break
            count += 1
        ready = [line for _, line in self._pending[:count]]
        del self._pending[:count]
        return ready

    def _note_exposure(self, state: ServerState, now: float) -> None:
        """Once: a line saying the server can be reached from other machines."""
        hello = state.hello
        if self._exposure is not None or hello is None or hello.listen is None:
            return
        host = exposed_host(hello.listen)
        if host is None:
            return
        text = (
            f"devconsole: ⚠ the server is reachable from the network ({fmt.listen_address(hello.listen)}): "
            "anyone who can reach this machine can use it; bind 127.0.0.1 to keep it local"
        )
        self._exposure = LogLine(0, "stderr", text, now, hello.generation)
        self._pending.append((now, self._exposure))

    def _update_title(self, state: ServerState) -> None:
        pane = self.query_one(LogPane)
        subtitle = f"{state.log_seq} lines"
        if self._source is not None:
            subtitle += f" · source: {self._source}"
        if self._search:
            subtitle += f" · search: {self._search}"
        set_border_subtitle(pane, subtitle)

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "next_source":
            # Shown (footer, help) once side processes run: before, every line is the server's.
            return bool(self._sources)
        return True

    def action_next_source(self) -> None:
        """Show the next source's lines only: server, each side process, then all."""
        if not self._sources:
            return
        order: list[str | None] = [*self._sources, None]
        self._source = order[(order.index(self._source) + 1) % len(order)] if self._source in order else None
        self._refill()

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
        """Rewrite the kept lines that match the search, in time order."""
        pane = self.query_one(LogPane)
        pane.clear()
        self._shown.clear()
        state = self._state
        if state is None:
            return
        lines = state.log_since(0)
        if lines:
            self._seq = lines[-1].seq
        now = time.time()
        # Lines still in their window wait there again, with their first arrival.
        arrived = {id(line): when for when, line in self._pending}
        self._pending = [(arrived.get(id(line), now), line) for line in lines]
        if self._exposure is not None:
            self._pending.append((arrived.get(id(self._exposure), now), self._exposure))
        self._requests.catch_up(state)
        self._write([line for line in self._take_ready(now) if self._matches(line)])
        self.REFRESH_EVERY_TICK = bool(self._pending)
        self._update_title(state)
