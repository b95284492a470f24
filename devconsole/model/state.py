"""What the console knows about the server, built from events.

``ServerState.ingest`` is called from the supervisor's reader threads (or a
replay); the UI reads it on a timer. Everything is bounded: the last
``max_requests`` requests and ``max_log`` log lines are kept, closed
connections linger for ``linger`` seconds, and totals come from the child's
cumulative ``stats`` events, so they stay exact whatever was trimmed.

When a generation exits, its connections still open are closed; each one
that was in a request (``handling``) becomes a request row with no status
and a note (the server child sends a request only when it ends, so the
connection is what the console knows of it), counted in the totals.

Rows carry a sequence number so the UI can ask for "what is new since the
last tick" and touch only what changed.
"""

from __future__ import annotations

import heapq
import itertools
import re
import signal
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from devconsole.model import insight as insight_model
from devconsole.model.insight import Insight, Summary
from devconsole.model.sanitize import clean
from devconsole.model.secrets import mask_header, mask_query, mask_urls
from devconsole.wire import events, protocol
from devconsole.wire.events import (
    ChecksEvent,
    ConnCloseEvent,
    ConnOpenEvent,
    ConnStateEvent,
    DrainingEvent,
    ErrorEvent,
    EventType,
    ExitEvent,
    HelloEvent,
    LiveReloadEvent,
    LiveReloadSkipEvent,
    LogEvent,
    LoopEvent,
    ProcessesEvent,
    ProcessEvent,
    ProcessLogEvent,
    ReloadEvent,
    RequestEvent,
    StatsEvent,
    WatchEvent,
)

#: The HTTP status classes: a row's (anything else is shown as unknown), and
#: what a filter may name (``4xx``) besides a path substring.
STATUS_CLASSES = frozenset({"1xx", "2xx", "3xx", "4xx", "5xx"})


#: The ``phase`` of the ``error`` the console adds when a serving generation
#: dies without being asked to (its message says why, its traceback holds
#: the generation's last stderr lines).
CRASH_PHASE = "server child died"
#: The key the cut requests are counted under in :meth:`ServerState.status_counts`.
CUT = "cut"
#: Connection states in which a request is being handled.
_IN_REQUEST = frozenset({"handling"})

#: The source of the server's (and the console's) log lines; a side process's is its name.
SERVER_SOURCE = "server"

#: Events an idle server sends on every select() timeout.
_HEARTBEAT = frozenset({"loop", "stats"})


@dataclass
class RequestRow:
    seq: int
    id: str
    generation: int
    conn: int | None
    method: str
    path: str
    query: str
    version: str
    status: int | None
    duration_ms: float
    bytes_out: int
    thread: str
    ts: float
    headers: list[list[str]]
    #: Why the row is not a finished request (``cut: server child died``), else empty.
    note: str = ""
    #: What the request did (SQL counts, an exception): see :mod:`.insight`.
    summary: Summary = field(default_factory=Summary)

    @property
    def status_class(self) -> str:
        return f"{self.status // 100}xx" if self.status else "???"

    @property
    def target(self) -> str:
        return f"{self.path}?{self.query}" if self.query else self.path


@dataclass
class ConnRow:
    key: str
    id: int
    generation: int
    peer: str
    state: str
    thread: str
    bytes_in: int
    bytes_out: int
    requests: int
    opened: float
    closed_at: float | None = None
    #: ``"websocket"`` for a WebSocket (ASGI servers), else ``""`` (HTTP).
    kind: str = ""
    #: The request handled (HTTP: the latest), or the WebSocket's path.
    method: str = ""
    path: str = ""
    messages_in: int = 0
    messages_out: int = 0
    #: A live reload stream (state ``livereload``): the path of its page.
    page: str = ""


@dataclass(frozen=True)
class LiveReloadStatus:
    """Live reload as the serving generation last said (``livereload``)."""

    generation: int
    enabled: bool
    debug: bool
    pages: int

    @property
    def text(self) -> str:
        """``live reload · 2 pages``, ``live reload off``, ``live reload off (DEBUG is False)``."""
        if not self.debug:
            return "live reload off (DEBUG is False)"
        if not self.enabled:
            return "live reload off"
        return f"live reload · {self.pages} page{'s' if self.pages != 1 else ''}"


@dataclass
class LogLine:
    seq: int
    stream: str
    text: str
    ts: float
    generation: int
    #: ``server`` (the server child, the console), or the side process's name.
    source: str = SERVER_SOURCE


#: Lines of its own output kept per side process (the merged log keeps its own).
MAX_PROCESS_LOG = 1000


@dataclass
class ProcessRow:
    """A side process as its events tell it (:mod:`devconsole.console.sideprocs`)."""

    name: str
    #: ``stopped`` until its first event; then its manager's word.
    state: str = "stopped"
    pid: int | None = None
    returncode: int | None = None
    restarts: int = 0
    delay: float | None = None
    #: When it entered its state (the event's time).
    since: float = 0.0
    #: When its current run began (running), else None.
    started: float | None = None
    #: Its own output (SGR colour sequences kept), newest last.
    log: deque[LogLine] = field(default_factory=lambda: deque(maxlen=MAX_PROCESS_LOG))

    @property
    def failed(self) -> bool:
        """Ended on its own with an error: a crash, a non-zero exit (also while it waits to restart)."""
        if self.state == "crashed":
            return True
        return self.state in ("exited", "restarting") and self.returncode not in (None, 0)

    def outcome(self) -> str:
        """How its last run ended, with no clock in it: ``exited 3``,
        ``crashed (SIGKILL)``; its state while it runs."""
        if self.returncode is None:
            return "crashed" if self.state == "crashed" else self.state
        if self.returncode < 0:
            return f"crashed ({signal_name(self.returncode)})"
        return f"exited {self.returncode}"

    def describe(self, now: float) -> str:
        """``running``, ``exited 3``, ``crashed (SIGKILL)``, ``restarting in 2.0 s``."""
        if self.state == "exited" and self.returncode is not None:
            return f"exited {self.returncode}"
        if self.state == "crashed":
            return f"crashed ({signal_name(self.returncode)})" if self.returncode is not None else "crashed"
        if self.state == "restarting":
            left = max(0.0, (self.delay or 0.0) - max(0.0, now - self.since))
            return f"restarting in {left:.1f} s"
        return self.state


def signal_name(returncode: int | None) -> str:
    """``SIGKILL`` for -9 (a negative exit status is the signal that ended a process)."""
    if returncode is None or returncode >= 0:
        return f"status {returncode}"
    try:
        return signal.Signals(-returncode).name
    except ValueError:
        return f"signal {-returncode}"


@dataclass
class LoopStats:
    """The select loop over the last few seconds, and accepts per second for a minute."""

    poll_interval: float = 0.5
    iterations_per_s: float = 0.0
    ready_share: float = 0.0
    blocked_share: float = 0.0
    iterations_total: int = 0
    ready_total: int = 0
    timeouts_total: int = 0
    #: ``(t, iterations, ready, timeouts, blocked_s, elapsed_s)`` samples, a few seconds' worth.
    window: deque[tuple[float, int, int, int, float, float]] = field(default_factory=lambda: deque(maxlen=200))
    #: Accepts per whole second, oldest first: ``(second, count)``.
    accepts: deque[list[float]] = field(default_factory=lambda: deque(maxlen=60))


@dataclass
class ReloadRow:
    seq: int
    ts: float
    files: list[str]
    decision: str
    duration_ms: float | None
    phases: dict[str, float]
    error: str | None
    generation: int | None
    #: Where the time went, in order (see the ``reload`` event's ``steps``).
    steps: tuple[Phase, ...] = ()

    @property
    def slowest(self) -> Phase | None:
        """The step that took the most of the reload's time (the first of equals)."""
        return max(self.steps, key=lambda step: step.ms, default=None)


@dataclass(frozen=True)
class RunserverCommand:
    """The runserver command that won (``hello``'s ``runserver``)."""

    class_path: str = "?"
    app: str = "?"
    mro: tuple[str, ...] = ()
    shadows: tuple[str, ...] = ()


@dataclass(frozen=True)
class ListenAt:
    host: str
    port: int


@dataclass(frozen=True)
class Phase:
    name: str
    ms: float


@dataclass(frozen=True)
class Hello:
    """A generation serving, as its ``hello`` said. Fields a (hand-made or
    older) event left out are ``None`` or empty."""

    generation: int
    pid: int | None = None
    python: str | None = None
    django: str | None = None
    settings: str | None = None
    runserver: RunserverCommand = RunserverCommand()
    server: tuple[str, ...] = ()
    handler: str | None = None
    listen: ListenAt | None = None
    threading: bool | None = None
    poll_interval: float | None = None
    phases: tuple[Phase, ...] = ()
    #: How many of ``phases`` a spare did before the change that made this generation.
    ahead: int = 0
    urlconf_error: str | None = None
    request_log: str = "stderr"
    server_kind: str = "wsgi"
    #: The directory of manage.py (from a recording too): the project's files are named from there.
    root: str | None = None

    @classmethod
    def from_event(cls, event: HelloEvent, generation: int) -> Hello:
        runserver = event.get("runserver")
        listen = event.get("listen")
        return cls(
            generation=generation,
            pid=event.get("pid"),
            python=event.get("python"),
            django=event.get("django"),
            settings=event.get("settings"),
            runserver=RunserverCommand(
                class_path=runserver.get("class", "?"),
                app=runserver.get("app", "?"),
                mro=tuple(runserver.get("mro") or ()),
                shadows=tuple(runserver.get("shadows") or ()),
            )
            if runserver is not None
            else RunserverCommand(),
            server=tuple(event.get("server") or ()),
            handler=event.get("handler"),
            listen=ListenAt(listen.get("host", ""), listen.get("port", 0)) if listen else None,
            threading=event.get("threading"),
            poll_interval=event.get("poll_interval"),
            phases=tuple(Phase(p.get("name", ""), float(p.get("ms") or 0.0)) for p in event.get("phases") or ()),
            ahead=max(int(event.get("ahead") or 0), 0),
            urlconf_error=event.get("urlconf_error"),
            request_log=event.get("request_log", "stderr"),
            server_kind="asgi" if event.get("server_kind") == "asgi" else "wsgi",
            root=event.get("root"),
        )


@dataclass(frozen=True)
class CheckResult:
    """One system-check message."""

    level: str = ""
    id: str = ""
    msg: str = ""
    obj: str = ""
    hint: str = ""


@dataclass(frozen=True)
class Checks:
    """The system checks and the migrations check, run after serving."""

    messages: tuple[CheckResult, ...] = ()
    #: Unapplied migrations, or ``None`` when unknown.
    migrations: int | None = None
    error: str | None = None
    ms: float | None = None


@dataclass(frozen=True)
class ServerError:
    """A failure a generation reported (``error``)."""

    phase: str
    message: str
    traceback: str
    generation: int | None

    @property
    def fatal(self) -> bool:
        return self.phase not in protocol.NON_FATAL_PHASES


@dataclass(frozen=True)
class WatchScope:
    """What the watcher covers, as the server child reported it."""

    roots: tuple[str, ...] = ()
    globs: tuple[str, ...] = ()
    files_total: int = 0


@dataclass
class IgnoredEvents:
    """Events the state could not apply: counted, the first one named."""

    count: int = 0
    first: str = ""


#: Generations whose stats are kept apart (older ones are folded together).
_GENERATIONS_KEPT = 8
#: Folded generations whose last totals are remembered (see ServerState._fold).
_FOLDED_REMEMBERED = 64


def _since(rows: deque[Any], seq: int) -> list[Any]:
    """The rows of ``rows`` (in ``seq`` order) after ``seq``: found by
    arithmetic when their numbers have no gap (they are numbered as they are
    appended), so a view that polls it pays for the new rows only."""
    if not rows or rows[-1].seq <= seq:
        return []
    first = rows[0].seq
    if rows[-1].seq - first == len(rows) - 1:
        return list(itertools.islice(rows, max(0, seq - first + 1), None))
    return [row for row in rows if row.seq > seq]


class ServerState:
    def __init__(
        self,
        *,
        max_requests: int = 2000,
        max_log: int = 5000,
        linger: float = 3.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.clock = clock
        self.linger = linger
        self._lock = threading.RLock()
        #: Whether the server child left runserver's request lines to us (see _on_request).
        self._request_log_from_events = False
        #: Moved by every event but the loop/stats heartbeat an idle server
        #: sends every poll interval: what a view must show at once.
        self.activity = 0
        #: Called from the ingesting thread when ``activity`` moves and no
        #: call is pending since the last :meth:`woken`: the UI refreshes on
        #: what arrives instead of waiting for its next tick. Once per batch
        #: of events, not once per event.
        self.on_activity: Callable[[], None] | None = None
        self._wake_pending = False
        #: Called (from the ingesting thread) after every event applied or
        #: ignored, heartbeats too: a console asleep (no timer) wakes on it.
        self.on_change: Callable[[], None] | None = None
        self.requests: deque[RequestRow] = deque(maxlen=max_requests)
        #: The full insight of the newest requests, by seq (rows keep a summary):
        #: the sanitized event until :meth:`insight` first masks it.
        self._insights: dict[int, Insight | dict[str, Any]] = {}
        self.request_seq = 0
        self.conns: dict[str, ConnRow] = {}
        #: Closed connections by when they closed (``closed_at``, a tie-breaker,
        #: key, row): pruning takes those past ``linger`` off the top instead of
        #: looking at every row (thousands linger under ``Connection: close``).
        self._closing: list[tuple[float, int, str, ConnRow]] = []
        self._closings = itertools.count()
        #: The server's (and the console's) lines; each side process keeps its own (ProcessRow.log).
        self.log: deque[LogLine] = deque(maxlen=max_log)
        self.log_seq = 0
        self.loop = LoopStats()
        self.hello: Hello | None = None
        self.checks: Checks | None = None
        self.errors: deque[ServerError] = deque(maxlen=50)
        #: Errors ever received: moves when a new one comes, even with ``errors`` full.
        self.error_seq = 0
        self.reloads: deque[ReloadRow] = deque(maxlen=500)
        self.reload_seq = 0
        self.watch: WatchScope | None = None
        #: Events of a type this console does not know, and events whose
        #: fields do not match their definition: ignored, never silently.
        self.unknown_events = IgnoredEvents()
        self.invalid_events = IgnoredEvents()
        self.generation = 0
        self.status = "starting"
        #: From the latest ``hello``: ``wsgi`` (a select loop to show) or ``asgi`` (Daphne).
        self.server_kind = "wsgi"
        # Totals: each generation's latest cumulative stats, by generation (a
        # generation that drains after the next one said hello still sends
        # its own), plus those of long-finished generations folded together.
        self._gen_stats: dict[int, dict[str, Any]] = {}
        self._folded: dict[str, Any] = {"requests": 0, "connections": 0, "dropped": 0, "status": {}}
        #: The last stats of the latest folded generations: a total that
        #: comes after its generation was folded adds only what it adds.
        self._folded_last: dict[int, dict[str, Any]] = {}
        #: Generations up to this one were folded and forgotten: their late totals are ignored.
        self._folded_floor = -1
        self._rate: deque[tuple[float, int]] = deque(maxlen=256)
        #: Requests cut when their generation exited (no child counted them).
        self.cut_requests = 0
        #: Generations (the latest few) that died without being asked to.
        self._crashed: deque[int] = deque(maxlen=_GENERATIONS_KEPT)
        #: Generations asked to stop that still finish requests: in-flight
        #: count by generation (bounded: the console cuts beyond a few).
        self.draining: dict[int, int] = {}
        #: The side processes, in declaration order (:mod:`devconsole.console.sideprocs`).
        self.processes: dict[str, ProcessRow] = {}
        #: What is wrong with the declaration (a malformed Procfile.dev line), one line.
        self.process_error: str | None = None
        #: Moves with every side-process event.
        self.process_seq = 0
        #: Live reload in the serving generation (None until one says).
        self.live_reload: LiveReloadStatus | None = None

    # ------------------------------------------------------------------ ingest
    def ingest(self, event: dict[str, Any]) -> None:
        """Apply one event (from the supervisor, the reloader or a replay).

        Its fields are checked against its definition (:mod:`devconsole.wire.events`)
        first: an event of an unknown type, or one that does not match, is
        counted and named (status line, Log view), never applied."""
        kind = event.get("type")
        if kind not in _HANDLERS:
            self._ignore(self.unknown_events, clean(str(kind), 40), "of unknown type")
            return
        handler = _HANDLERS[kind]
        if handler is None:
            return  # known, and nothing to show (the reloader acts on it)
        problem = events.problem(event)
        if problem is not None:
            self._ignore(self.invalid_events, clean(problem, 120), "malformed")
            return
        with self._lock:
            handler(self, event)
            wake = False
            if kind not in _HEARTBEAT:
                self.activity += 1
                wake, self._wake_pending = not self._wake_pending, True
        if self.on_change is not None:
            self.on_change()
        if wake and self.on_activity is not None:
            self.on_activity()

    def woken(self) -> None:
        """The UI has looked at the state: the next activity calls ``on_activity`` again."""
        self._wake_pending = False

    def _ignore(self, ignored: IgnoredEvents, what: str, why: str) -> None:
        with self._lock:
            ignored.count += 1
            self.activity += 1
            if ignored.count == 1:
                ignored.first = what
                self.log_seq += 1
                text = f"devconsole: an event {why} was ignored ({what}); further ones are counted"
                self.log.append(LogLine(self.log_seq, "stderr", text, self.clock(), self.generation))
        if self.on_change is not None:
            self.on_change()

    def _now(self, event: Mapping[str, object]) -> float:
        """When ``event`` arrived: its ``at`` stamp (replays set it from the
        recording) or the clock. Keeps replays deterministic: every rate,
        sparkline and linger decision derives from the recording's own times."""
        at = event.get("at")
        return float(at) if isinstance(at, (int, float)) else self.clock()

    def _roll_generation(self, generation: int) -> None:
        self.generation = max(self.generation, generation)

    def _on_hello(self, event: HelloEvent) -> None:
        self._roll_generation(event.get("generation", self.generation + 1))
        hello = self.hello = Hello.from_event(event, self.generation)
        if "poll_interval" in event:
            self.loop.poll_interval = event["poll_interval"]  # type: ignore[assignment]  # None for Daphne
        self.status = "serving"
        self._request_log_from_events = hello.request_log == "events"
        self.server_kind = hello.server_kind

    def _on_request(self, event: RequestEvent) -> None:
        self.request_seq += 1
        self.requests.append(
            RequestRow(
                seq=self.request_seq,
                id=str(event.get("id", "")),
                generation=event.get("generation", self.generation),
                conn=event.get("conn"),
                method=event.get("method") or "-",
                path=event.get("path") or "",
                query=mask_query(event.get("query") or ""),
                version=event.get("version") or "",
                status=event.get("status"),
                duration_ms=float(event.get("duration_ms") or 0.0),
                bytes_out=int(event.get("bytes_out") or 0),
                thread=event.get("thread") or "",
                ts=float(event.get("ts") or 0.0),
                headers=[mask_header(pair) for pair in event.get("headers") or ()],
                summary=insight_model.summarize(event),  # type: ignore[arg-type]
            )
        )
        row = self.requests[-1]
        if insight_model.has_insight(event):  # type: ignore[arg-type]
            # Masked and shaped when a view asks for it (see insight()):
            # most rows are never opened, and at a server's full rate the
            # work would be paid for every one of them.
            self._insights[row.seq] = event  # type: ignore[assignment]
            if len(self._insights) > insight_model.MAX_KEPT:
                del self._insights[next(iter(self._insights))]
        if self._request_log_from_events and row.status is not None:
            # The line runserver would have logged (the server child no
            # longer writes it: see instrument.quiet_request_log).
            end = row.ts + row.duration_ms / 1000
            when = time.strftime("%d/%b/%Y %H:%M:%S", time.localtime(end))
            # A request line that did not parse has no method or version:
            # shown as received, like runserver's "GARBAGE" 400.
            line = " ".join(part for part in (event.get("method") or "", row.target, row.version) if part)
            text = f'[{when}] "{line}" {row.status} {row.bytes_out}'
            self.log_seq += 1
            self.log.append(LogLine(self.log_seq, "stderr", text, end, row.generation))

    def _conn_key(self, event: ConnOpenEvent | ConnStateEvent | ConnCloseEvent) -> str:
        return f"{event.get('generation', self.generation)}.{event.get('id')}"

    def _on_conn_open(self, event: ConnOpenEvent | ConnStateEvent | ConnCloseEvent) -> None:
        key = self._conn_key(event)
        self.conns[key] = ConnRow(
            key=key,
            id=int(event.get("id") or 0),
            generation=event.get("generation", self.generation),
            peer=event.get("peer", ""),
            state=event.get("state", "reading"),
            thread=event.get("thread", ""),
            bytes_in=int(event.get("bytes_in") or 0),
            bytes_out=int(event.get("bytes_out") or 0),
            requests=int(event.get("requests") or 0),
            opened=float(event.get("ts") or self.clock()),
        )
        if "path" in event:
            self._request_of(self.conns[key], event)
        if event.get("kind") == "websocket":
            self._websocket(self.conns[key], event)
        if event.get("state") == "closed":
            self._close(key, self.conns[key], self._now(event))

    def _on_conn_state(self, event: ConnStateEvent | ConnCloseEvent) -> None:
        row = self.conns.get(self._conn_key(event))
        if row is None:
            self._on_conn_open(event)
            return
        row.state = event.get("state", row.state)
        row.thread = event.get("thread") or row.thread
        row.bytes_in = int(event.get("bytes_in") or row.bytes_in)
        row.bytes_out = int(event.get("bytes_out") or row.bytes_out)
        row.requests = int(event.get("requests") or row.requests)
        if "path" in event:
            self._request_of(row, event)
        if event.get("kind") == "websocket":
            self._websocket(row, event)

    @staticmethod
    def _request_of(row: ConnRow, event: ConnOpenEvent | ConnStateEvent | ConnCloseEvent) -> None:
        row.method = str(event.get("method") or "")
        row.path = str(event.get("path") or "")
        row.page = str(event.get("page") or "")

    @staticmethod
    def _websocket(row: ConnRow, event: ConnOpenEvent | ConnStateEvent | ConnCloseEvent) -> None:
        row.kind = "websocket"
        row.path = str(event.get("path") or row.path)
        row.messages_in = int(event.get("messages_in") or row.messages_in)
        row.messages_out = int(event.get("messages_out") or row.messages_out)

    def _on_conn_close(self, event: ConnCloseEvent) -> None:
        self._on_conn_state(event)
        key = self._conn_key(event)
        row = self.conns.get(key)
        if row is not None:
            row.state = "closed"
            self._close(key, row, self._now(event))

    def _on_loop(self, event: LoopEvent) -> None:
        loop = self.loop
        now = self._now(event)
        iterations = int(event.get("iterations") or 0)
        ready = int(event.get("ready") or 0)
        timeouts = int(event.get("timeouts") or 0)
        loop.iterations_total += iterations
        loop.ready_total += ready
        loop.timeouts_total += timeouts
        loop.poll_interval = event.get("poll_interval", loop.poll_interval)
        loop.window.append(
            (
                now,
                iterations,
                ready,
                timeouts,
                float(event.get("blocked_s") or 0.0),
                float(event.get("elapsed_s") or 0.0),
            )
        )
        while loop.window and now - loop.window[0][0] > 5.0:
            loop.window.popleft()
        # The time the window covers: from just before its oldest sample to
        # now. Summing elapsed_s alone would undercount when the child skips
        # flushes with nothing to say (an idle loop reports twice a second).
        first = loop.window[0]
        span = max(sum(sample[5] for sample in loop.window), now - first[0] + first[5]) or 1.0
        total_iter = sum(sample[1] for sample in loop.window)
        loop.iterations_per_s = total_iter / span
        loop.ready_share = sum(sample[2] for sample in loop.window) / total_iter if total_iter else 0.0
        loop.blocked_share = min(sum(sample[4] for sample in loop.window) / span, 1.0)
        second = float(int(now))
        accepts = int(event.get("accepts") or 0)
        if loop.accepts and loop.accepts[-1][0] == second:
            loop.accepts[-1][1] += accepts
        else:
            if loop.accepts:
                # Seconds with no loop event had no accepts.
                last = loop.accepts[-1][0]
                for gap in range(int(min(second - last - 1, 60))):
                    loop.accepts.append([last + gap + 1, 0])
            loop.accepts.append([second, accepts])

    def _on_stats(self, event: StatsEvent) -> None:
        generation = event.get("generation", self.generation)
        self._roll_generation(generation)
        stats = {
            "requests": int(event.get("requests") or 0),
            "connections": int(event.get("connections") or 0),
            "dropped": int(event.get("dropped") or 0),
            "status": dict(event.get("status") or {}),
        }
        if generation in self._folded_last:
            # Folded already (its exit came, or it fell behind): only what is new.
            self._add_folded(stats, self._folded_last[generation])
            self._folded_last[generation] = stats
        elif generation > self._folded_floor:
            self._gen_stats[generation] = stats
        # Generations this far behind that never exited: folded (bounded), their last total remembered.
        for old in [g for g in self._gen_stats if g < self.generation - _GENERATIONS_KEPT]:
            self._fold(old)
        self._rate.append((self._now(event), self.total_requests))
        # Closed connections go after ``linger`` even when no view asks for
        # them (another view on screen, or no screen at all).
        self._prune_conns(self._now(event))

    def _fold(self, generation: int) -> None:
        """Add ``generation``'s totals to the folded ones (once: its later
        totals add only their difference, see :attr:`_folded_last`)."""
        stats = self._gen_stats.pop(generation, None)
        if stats is None:
            return
        self._add_folded(stats, None)
        self._folded_last[generation] = stats
        while len(self._folded_last) > _FOLDED_REMEMBERED:
            oldest = min(self._folded_last)
            del self._folded_last[oldest]
            self._folded_floor = max(self._folded_floor, oldest)

    def _add_folded(self, stats: dict[str, Any], before: dict[str, Any] | None) -> None:
        for key in ("requests", "connections", "dropped"):
            self._folded[key] += max(0, stats[key] - (before[key] if before else 0))
        status = self._folded["status"]
        for key, count in stats["status"].items():
            grown = count - (before["status"].get(key, 0) if before else 0)
            if grown > 0:
                status[key] = status.get(key, 0) + grown

    def _total(self, key: str) -> int:
        with self._lock:  # read from the UI thread while the reader ingests
            cut = self.cut_requests if key == "requests" else 0
            return self._folded[key] + sum(stats[key] for stats in self._gen_stats.values()) + cut

    def _on_log(self, event: LogEvent) -> None:
        self.log_seq += 1
        self.log.append(
            LogLine(
                self.log_seq,
                event.get("stream", "stdout"),
                mask_urls(event.get("text", "")),
                float(event.get("ts") or self._now(event)),
                event.get("generation", self.generation),
            )
        )

    # -------------------------------------------------------- side processes
    def _process(self, name: str) -> ProcessRow:
        row = self.processes.get(name)
        if row is None:
            if len(self.processes) >= _MAX_PROCESSES or name == SERVER_SOURCE:
                raise _TooMany
            row = self.processes[name] = ProcessRow(clean(name, 64))
        return row

    def _on_processes(self, event: ProcessesEvent) -> None:
        self.process_seq += 1
        self.process_error = event.get("error")
        for name in event.get("names", [])[:_MAX_PROCESSES]:
            try:
                self._process(name)
            except _TooMany:
                break
        if self.process_error:
            self.log_seq += 1
            self.log.append(
                LogLine(
                    self.log_seq,
                    "stderr",
                    f"devconsole: {self.process_error}",
                    float(event.get("ts") or self._now(event)),
                    self.generation,
                )
            )

    def _on_process(self, event: ProcessEvent) -> None:
        try:
            row = self._process(event["name"])
        except (_TooMany, KeyError):
            return
        self.process_seq += 1
        state = event.get("state", row.state)
        now = float(event.get("ts") or self._now(event))
        if state != row.state:
            row.since = now
        if state == "running" and row.state != "running":
            row.started = now
        elif state != "running":
            row.started = None
        row.state = state
        row.pid = event.get("pid", row.pid)
        row.returncode = event.get("returncode")
        row.restarts = event.get("restarts", row.restarts)
        row.delay = event.get("delay")

    def _on_process_log(self, event: ProcessLogEvent) -> None:
        try:
            row = self._process(event["name"])
        except (_TooMany, KeyError):
            return
        self.log_seq += 1
        line = LogLine(
            self.log_seq,
            event.get("stream", "stdout"),
            mask_urls(event.get("text", "")),
            float(event.get("ts") or self._now(event)),
            self.generation,
            row.name,
        )
        # Only in its own bounded buffer: a chatty process cannot push the
        # server's lines out of theirs (log_since merges them).
        row.log.append(line)

    def process_summary(self) -> tuple[str, bool]:
        """``procs 3/3`` or ``procs 2/3 · worker crashed`` (running / declared,
        then what went wrong), and whether something did; ``("", False)``
        with no side process."""
        with self._lock:
            if self.process_error:
                return f"procs: {self.process_error}", True
            rows = list(self.processes.values())
        if not rows:
            return "", False
        running = sum(1 for row in rows if row.state == "running")
        text = f"procs {running}/{len(rows)}"
        failed = [row for row in rows if row.failed]
        if failed:
            text += " · " + ", ".join(f"{row.name} {row.outcome()}" for row in failed[:3])
            if len(failed) > 3:
                text += f" +{len(failed) - 3}"
        return text, bool(failed)

    def _on_checks(self, event: ChecksEvent) -> None:
        self.checks = Checks(
            messages=tuple(
                CheckResult(
                    level=m.get("level", ""),
                    id=m.get("id", ""),
                    msg=m.get("msg", ""),
                    obj=m.get("obj", ""),
                    hint=m.get("hint", ""),
                )
                for m in event.get("messages") or ()
            ),
            migrations=event.get("migrations"),
            error=event.get("error"),
            ms=event.get("ms"),
        )

    def _on_error(self, event: ErrorEvent) -> None:
        error = ServerError(
            phase=event.get("phase", "error"),
            message=event.get("message", ""),
            traceback=event.get("traceback", ""),
            generation=event.get("generation"),
        )
        self.errors.append(error)
        self.error_seq += 1
        if error.phase == CRASH_PHASE:
            if error.generation is not None:
                self._crashed.append(error.generation)
            if (error.generation if error.generation is not None else self.generation) >= self.generation:
                self.status = "crashed"
        elif error.fatal:
            self.status = "error"

    def _on_draining(self, event: DrainingEvent) -> None:
        generation = event.get("generation", self.generation)
        count = int(event.get("in_flight") or 0)
        before = self.draining.get(generation)
        if count > 0:
            if before is None and len(self.draining) >= _GENERATIONS_KEPT:
                return  # more than the console lets drain: it cuts them
            self.draining[generation] = count
        else:
            self.draining.pop(generation, None)
        if before is None and count > 0:
            text = f"devconsole: {draining_text(generation, count)}; it accepts nothing more (x: cut)"
        elif before is not None and count == 0:
            text = f"devconsole: generation {generation} drained: its requests finished"
        else:
            return
        self.log_seq += 1
        self.log.append(LogLine(self.log_seq, "stderr", text, self._now(event), generation))

    def _on_livereload(self, event: LiveReloadEvent) -> None:
        generation = event.get("generation", self.generation)
        if generation < self.generation:
            return  # an old generation ending its streams: the new one counts
        self.live_reload = LiveReloadStatus(
            generation=generation,
            enabled=bool(event.get("enabled")),
            debug=bool(event.get("debug")),
            pages=int(event.get("pages") or 0),
        )

    def _on_livereload_skip(self, event: LiveReloadSkipEvent) -> None:
        text = f"devconsole: live reload: {event.get('path', '')} does not follow the code: {event.get('reason', '')}"
        self.log_seq += 1
        self.log.append(
            LogLine(self.log_seq, "stderr", text, self._now(event), event.get("generation", self.generation))
        )

    def in_flight(self) -> list[ConnRow]:
        """Connections in the middle of a request now, any generation."""
        with self._lock:
            return [row for row in self.conns.values() if row.closed_at is None and row.state in _IN_REQUEST]

    def _on_exit(self, event: ExitEvent) -> None:
        generation = event.get("generation", self.generation)
        self.draining.pop(generation, None)
        # Its exit comes after its last events: its totals are final.
        self._fold(generation)
        crashed = generation in self._crashed
        if generation >= self.generation and (crashed or self.status != "error"):
            self.status = "stopped" if event.get("returncode") == 0 and not crashed else "crashed"
        # Connections of a generation that exited are gone; a request in
        # flight on one was cut, and becomes a row saying so.
        now = self._now(event)
        why = event.get("cut")
        note = f"cut: {why}" if why else "cut: server child died" if crashed else "cut: server child stopped"
        cut = 0
        for key, row in self.conns.items():
            if row.generation == generation and row.closed_at is None:
                if row.state in _IN_REQUEST:
                    self._cut_request(row, note, now)
                    cut += 1
                row.state = "closed"
                self._close(key, row, now)
        if cut:
            self.log_seq += 1
            text = f"devconsole: {cut} request{'s' if cut != 1 else ''} in flight {note} (generation {generation})"
            self.log.append(LogLine(self.log_seq, "stderr", text, now, generation))

    def _cut_request(self, conn: ConnRow, note: str, now: float) -> None:
        """A row for the request ``conn`` was handling when its generation exited."""
        self.cut_requests += 1
        self.request_seq += 1
        self.requests.append(
            RequestRow(
                seq=self.request_seq,
                id=f"{conn.id}.{conn.requests + 1}",
                generation=conn.generation,
                conn=conn.id,
                method=conn.method or "-",
                path=conn.path,
                query="",
                version="",
                status=None,
                duration_ms=0.0,
                bytes_out=0,
                thread=conn.thread,
                ts=now,
                headers=[],
                note=note,
            )
        )

    def _on_reload(self, event: ReloadEvent) -> None:
        self.reload_seq += 1
        self.reloads.append(
            ReloadRow(
                seq=self.reload_seq,
                ts=float(event.get("ts") or self._now(event)),
                files=list(event.get("files") or []),
                decision=event.get("decision", ""),
                duration_ms=event.get("duration_ms"),
                phases=dict(event.get("phases") or {}),
                error=event.get("error"),
                generation=event.get("new_generation"),
                steps=tuple(Phase(step["name"], float(step["ms"])) for step in event.get("steps") or ()),
            )
        )

    def _on_watch(self, event: WatchEvent) -> None:
        self.watch = WatchScope(
            roots=tuple(event.get("roots") or ()),
            globs=tuple(event.get("globs") or ()),
            files_total=event.get("files_total", 0),
        )

    # ------------------------------------------------------------------ read
    @property
    def total_requests(self) -> int:
        return self._total("requests")

    @property
    def total_connections(self) -> int:
        return self._total("connections")

    @property
    def dropped(self) -> int:
        return self._total("dropped")

    def status_counts(self) -> dict[str, int]:
        with self._lock:
            counts = dict(self._folded["status"])
            for stats in self._gen_stats.values():
                for key, count in stats["status"].items():
                    counts[key] = counts.get(key, 0) + count
            if self.cut_requests:
                counts[CUT] = self.cut_requests
            return counts

    def requests_per_second(self, window: float = 3.0) -> float:
        """Requests finished per second over the last ``window`` seconds.

        Measured from the exact cumulative totals, so trimmed rows and
        dropped events do not skew it; 0 once the server has been quiet for
        longer than the window."""
        with self._lock:
            if not self._rate:
                return 0.0
            now = max(self.clock(), self._rate[-1][0])
            _, last_total = self._rate[-1]
            start: tuple[float, int] | None = None
            for sample in self._rate:
                if now - sample[0] <= window:
                    break
                start = sample
            if start is None:
                start = self._rate[0]
                if len(self._rate) < 2:
                    return 0.0
            # At least a second (or the window): one request 30 ms after the
            # first sample is not 33 requests a second.
            span = max(now - start[0], min(window, 1.0))
            return (last_total - start[1]) / span

    def requests_since(self, seq: int) -> list[RequestRow]:
        with self._lock:
            return _since(self.requests, seq)

    def log_since(self, seq: int) -> list[LogLine]:
        """The log lines after ``seq``, the server's (:attr:`log`) and each
        side process's (their own buffers) merged in order."""
        with self._lock:
            parts = [
                part
                for lines in (self.log, *(row.log for row in self.processes.values()))
                if (part := _since(lines, seq))
            ]
        if len(parts) <= 1:
            return parts[0] if parts else []
        return list(heapq.merge(*parts, key=lambda line: line.seq))

    def reloads_since(self, seq: int) -> list[ReloadRow]:
        with self._lock:
            return [row for row in self.reloads if row.seq > seq]

    def connections(self) -> list[ConnRow]:
        """Live connections and those closed less than ``linger`` seconds ago."""
        with self._lock:
            self._prune_conns(self.clock())
            return list(self.conns.values())

    def _close(self, key: str, row: ConnRow, at: float) -> None:
        row.closed_at = at
        heapq.heappush(self._closing, (at, next(self._closings), key, row))

    def _prune_conns(self, now: float) -> None:
        closing, conns = self._closing, self.conns
        while closing and now - closing[0][0] > self.linger:
            at, _, key, row = heapq.heappop(closing)
            if conns.get(key) is row and row.closed_at == at:  # not closed again later
                del conns[key]

    def request(self, seq: int) -> RequestRow | None:
        """The request row with sequence number ``seq``, if it is still kept."""
        with self._lock:
            if not self.requests or seq < self.requests[0].seq:
                return None
            index = seq - self.requests[0].seq
            if index < len(self.requests) and self.requests[index].seq == seq:
                return self.requests[index]
            return next((row for row in self.requests if row.seq == seq), None)

    def insight(self, seq: int) -> Insight | None:
        """What request ``seq`` did, while it is among the newest kept in full."""
        with self._lock:
            found = self._insights.get(seq)
            if found is None or isinstance(found, Insight):
                return found
            insight = insight_model.from_event(found)
            if insight is not None:
                self._insights[seq] = insight
            return insight

    def request_for_log_line(self, seq: int) -> RequestRow | None:
        """The request of the traceback nearest above log line ``seq``: the
        ``Internal Server Error: PATH`` (or ``Bad Request``/``Not Found``)
        line directly followed, in its stream, by ``Traceback (most recent
        call last):`` (a bare 404 warning has none), matched to the request
        of that generation and path whose end is nearest in time. One pass
        over the log, newest first."""
        with self._lock:
            #: The line read after each (generation, stream)'s current line.
            after: dict[tuple[int, str], LogLine] = {}
            found: LogLine | None = None
            for line in reversed(self.log):
                key = (line.generation, line.stream)
                following = after.get(key)
                after[key] = line
                if line.seq > seq or following is None:
                    continue
                if following.text.startswith("Traceback (most recent call last):"):
                    name, _, path = line.text.partition(": ")
                    if name in _LOGGED_FAILURES and path.strip():
                        found = line
                        break
            if found is None:
                return None
            path = found.text.partition(": ")[2].strip()
            best: RequestRow | None = None
            for row in self.requests:
                if row.generation == found.generation and row.path == path and row.status:
                    if best is None or abs(row.ts + row.duration_ms / 1000 - found.ts) < abs(
                        best.ts + best.duration_ms / 1000 - found.ts
                    ):
                        best = row
            return best

    def log_line_for_request(self, row: RequestRow) -> int | None:
        """The log seq of the line that starts ``row``'s traceback (or its
        request line), the way back from the detail to the Log view."""
        end = row.ts + row.duration_ms / 1000
        with self._lock:
            best: tuple[float, int] | None = None
            for line in self.log:
                if line.generation != row.generation:
                    continue
                text = line.text
                if text.endswith(f": {row.path}") and text.partition(": ")[0] in _LOGGED_FAILURES:
                    score = abs(line.ts - end)
                elif f'"{row.method} {row.target} ' in text:
                    score = abs(line.ts - end) + 60.0  # the request line: second choice
                else:
                    continue
                if best is None or score < best[0]:
                    best = (score, line.seq)
            return None if best is None else best[1]

    def connection(self, generation: int, conn_id: int | None) -> ConnRow | None:
        """The connection a request came on, while it is still shown."""
        if conn_id is None:
            return None
        with self._lock:
            return self.conns.get(f"{generation}.{conn_id}")

    def accepts_per_second(self, seconds: int = 60) -> list[float]:
        """Accepts in each of the last ``seconds`` whole seconds, oldest first.

        Seconds with no loop event count as zero, up to the state's "now"
        (the last loop event's second when the clock is behind it)."""
        with self._lock:
            samples = {int(second): count for second, count in self.loop.accepts}
            if not samples:
                return [0.0] * seconds
            end = max(int(self.clock()), max(samples))
            return [float(samples.get(second, 0)) for second in range(end - seconds + 1, end + 1)]


#: How each event type is applied; ``None``: known, nothing to show. Every
#: type in :data:`devconsole.wire.events.DEFINITIONS` has its entry (a test
#: checks), and a misspelt one is a type error.
_HANDLERS: dict[EventType, Callable[[ServerState, Any], None] | None] = {
    "hello": ServerState._on_hello,
    "loop": ServerState._on_loop,
    "stats": ServerState._on_stats,
    "conn_open": ServerState._on_conn_open,
    "conn_state": ServerState._on_conn_state,
    "conn_close": ServerState._on_conn_close,
    "request": ServerState._on_request,
    "checks": ServerState._on_checks,
    "error": ServerState._on_error,
    "watch": ServerState._on_watch,
    "log": ServerState._on_log,
    "exit": ServerState._on_exit,
    "reload": ServerState._on_reload,
    "processes": ServerState._on_processes,
    "process": ServerState._on_process,
    "process_log": ServerState._on_process_log,
    # The reloader acts on these; the screen has nothing to show for them.
    "file_changed": None,
    "draining": ServerState._on_draining,
    "bye": None,
    "livereload": ServerState._on_livereload,
    "livereload_skip": ServerState._on_livereload_skip,
    "spare_ready": None,
    "spare_ahead": None,
    "spare_failed": None,
}


#: Side processes the state follows at most (a declaration is a handful).
_MAX_PROCESSES = 64


class _TooMany(Exception):
    """More side processes than :data:`_MAX_PROCESSES` (or one named like the
    server's source): the rest are not followed."""


def draining_text(generation: int, count: int) -> str:
    """``generation 1 draining: 1 request``."""
    return f"generation {generation} draining: {count} request{'s' if count != 1 else ''}"


#: What Django logs before the traceback of a request that failed.
_LOGGED_FAILURES = frozenset({"Internal Server Error", "Bad Request", "Not Found"})

_SQL_COMPARISON = re.compile(r"^sql(>=|<=|>|<|=)(\d+)$")


def _insight_test(lowered: str) -> Callable[[RequestRow], bool] | None:
    """``sql>20``, ``sql<5``, ``sql=0``, ``dup``, ``n+1``, ``exc`` — or None."""
    if lowered == "dup":
        return lambda row: row.summary.duplicates > 0
    if lowered in ("n+1", "n1"):
        return lambda row: row.summary.n_plus_one > 0
    if lowered == "exc":
        return lambda row: bool(row.summary.exception)
    found = _SQL_COMPARISON.match(lowered)
    if found is None:
        return None
    op, number = found.group(1), int(found.group(2))
    compare: dict[str, Callable[[int], bool]] = {
        ">": lambda n: n > number,
        "<": lambda n: n < number,
        ">=": lambda n: n >= number,
        "<=": lambda n: n <= number,
        "=": lambda n: n == number,
    }
    test = compare[op]
    return lambda row: row.summary.sql_count is not None and test(row.summary.sql_count)


def _word_test(word: str) -> Callable[[RequestRow], bool]:
    lowered = word.lower()
    insight = _insight_test(lowered)
    if insight is not None:
        return insight
    if lowered in STATUS_CLASSES:
        return lambda row: row.status_class == lowered
    if word.isdigit() and len(word) == 3:
        number = int(word)
        return lambda row: row.status == number
    if word.isalpha() and word.isupper():
        return lambda row: row.method == word
    return lambda row: lowered in row.target.lower()


def request_filter(text: str) -> Callable[[RequestRow], bool]:
    """A predicate for the Requests filter: words all have to match.

    A word is a status class (``4xx``), a status (``404``), a method
    (``POST``, upper case), what the request did (``sql>20``, ``sql<5``,
    ``dup``: a duplicated query, ``n+1``, ``exc``: an exception) or a
    substring of the path and query; ``!word`` negates it. An empty filter keeps everything."""
    tests: list[tuple[bool, Callable[[RequestRow], bool]]] = []
    for word in text.split():
        negate = word.startswith("!") and len(word) > 1
        if negate:
            word = word[1:]
        tests.append((negate, _word_test(word)))
    if not tests:
        return lambda row: True
    return lambda row: all(test(row) != negate for negate, test in tests)
