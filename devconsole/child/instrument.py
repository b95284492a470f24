"""Observe Django's development server from inside, without copying it.

``basehttp.run()`` builds ``type("WSGIServer", (ThreadingMixIn, server_cls),
{})`` around the ``server_cls`` of the runserver command. We hand it a subclass
of that class which only overrides hooks ``serve_forever`` already calls:

* ``service_actions`` — once per loop iteration (ready or timed out);
* ``get_request`` — once per ready select, before ``accept()``;
* ``shutdown_request`` — when a connection is done;
* ``server_bind`` / ``server_activate`` — adopt the socket the console bound.

The request handler class is swapped for a subclass that marks the
connection's states and counts bytes; ``log_request`` gives status and size.
Beneath that, :func:`transport_handler` sends each response in one piece
(same bytes, one ``sendall``) and skips building a request line nobody reads.
``ThreadingMixIn`` comes first in the MRO, so ``process_request`` is never
overridden here: it would be silently ignored.
"""

from __future__ import annotations

import contextlib
import io
import itertools
import logging
import os
import selectors
import socket
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from typing import Any, Literal, cast

from devconsole.child.handover import ConnectionHandover
from devconsole.child.livereload import is_events, is_reserved, page_of
from devconsole.wire.events import (
    ConnCloseEvent,
    ConnOpenEvent,
    ConnStateEvent,
    Event,
    LoopEvent,
    RequestEvent,
    StatsEvent,
)

ConnEvent = ConnOpenEvent | ConnStateEvent | ConnCloseEvent

#: Request events kept between two flushes; beyond that they are counted, not sent.
MAX_PENDING_REQUESTS = 5000
#: Header lines and bytes per value kept for the request detail view.
MAX_HEADERS = 64
MAX_HEADER_VALUE = 1024
#: A request line that failed to parse is kept up to this many characters.
MAX_RAW_REQUEST_LINE = 200
#: Pieces of a response are joined into one send up to this many bytes.
JOIN_LIMIT = 64 * 1024


class Connection:
    """What the console shows about one accepted socket."""

    __slots__ = (
        "id",
        "peer",
        "state",
        "thread",
        "bytes_in",
        "bytes_out",
        "requests",
        "opened",
        "method",
        "path",
        "handed_over",
        "page",
    )

    def __init__(self, conn_id: int, peer: str) -> None:
        self.id = conn_id
        self.peer = peer
        self.state = "reading"
        self.thread = ""
        self.bytes_in = 0
        self.bytes_out = 0
        self.requests = 0
        self.opened = time.time()
        #: The request being handled (or the last one): what a quit waits for.
        self.method = ""
        self.path = ""
        #: Closed here because it moved to the next generation (see :mod:`.handover`).
        self.handed_over = False
        #: The page whose live reload stream this is (state ``livereload``).
        self.page = ""

    def as_event(self, kind: Literal["conn_open", "conn_state", "conn_close"]) -> ConnEvent:
        event = {
            "type": kind,
            "id": self.id,
            "peer": self.peer,
            "state": self.state,
            "thread": self.thread,
            "bytes_in": self.bytes_in,
            "bytes_out": self.bytes_out,
            "requests": self.requests,
            "ts": self.opened,
        }
        if self.path:
            event["method"] = self.method
            event["path"] = self.path
        if self.handed_over:
            event["handover"] = True
        if self.page:
            event["page"] = self.page
        return cast(ConnEvent, event)


def _seed(conn: Connection, header: dict[str, Any]) -> None:
    """Carry an adopted connection's history over from its handover header
    (ignoring a field of the wrong type)."""
    for key in ("requests", "bytes_in", "bytes_out"):
        value = header.get(key)
        if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
            setattr(conn, key, value)
    opened = header.get("opened")
    if isinstance(opened, (int, float)) and not isinstance(opened, bool) and 0 < opened <= conn.opened:
        conn.opened = float(opened)


def _nothing() -> None:
    pass


class _WakingSet(set["Connection"]):
    """The observer's set of changed connections: adding one wakes the flusher."""

    def __init__(self, observer: ServerObserver) -> None:
        super().__init__()
        self._observer = observer

    def add(self, conn: Connection) -> None:
        set.add(self, conn)
        self._observer.wake()


class ServerObserver:
    """Counters and queues filled by the server's threads, drained by the flusher.

    Loop counters are only written by the ``serve_forever`` thread and only
    grow, so the flusher reads deltas without a lock. Connection records are
    written by their own thread; the flusher sends the latest state of each
    connection that changed (coalesced), and every request as its own event
    up to :data:`MAX_PENDING_REQUESTS` per flush (totals stay exact).
    """

    def __init__(self, poll_interval: float = 0.5) -> None:
        self.poll_interval = poll_interval
        self.server: Any = None
        self.serving = threading.Event()
        #: Set when the console asked this generation to stop: accept nothing more.
        self.stopping = False
        #: Set when the first request is done (background work waits for it).
        self.first_request = threading.Event()
        # serve_forever thread only
        self.iterations = 0
        self.ready = 0
        self.blocked_s = 0.0
        self._since = time.perf_counter()
        self._ready_at: float | None = None
        # connection threads
        self._ids = itertools.count(1)
        self.conns: dict[socket.socket, Connection] = {}
        self.opened: deque[Connection] = deque()
        #: Called when something is recorded for the flusher (set by the
        #: emitter): it sleeps until then.
        self.wake: Callable[[], None] = _nothing
        self.dirty: set[Connection] = _WakingSet(self)
        self.closed: deque[Connection] = deque()
        self.requests: deque[RequestEvent] = deque()
        self.requests_total = 0
        self.connections_total = 0
        self.dropped = 0
        self.status_classes: dict[str, int] = {}
        #: Set once the per-request log line would reach no handler at all
        #: (see :func:`quiet_request_log`): then it is not even built.
        self.skip_request_line = False
        #: Called in the request's own thread as each request finishes, before
        #: its event is queued: what else the child learnt about the request
        #: (see :mod:`.insight`) is added to the event there.
        self.finishers: list[Callable[[RequestEvent], None]] = []
        #: Set by the server process for a WSGI server: idle connections wait
        #: for their next request there, and move to the next generation on
        #: a stop (see :mod:`.handover`).
        self.handover: ConnectionHandover | None = None
        #: Work the server's loop does a step at a time while no connection
        #: waits and no request is in flight (a new generation's warm-up,
        #: see :mod:`.warmup`); None once done.
        self.idle_work: Iterator[None] | None = None
        self._lock = threading.Lock()

    # serve_forever thread --------------------------------------------------
    def idle_step(self) -> None:
        """One step of :attr:`idle_work` (dropped once it ends or fails)."""
        work = self.idle_work
        if work is None:
            return
        try:
            next(work)
        except BaseException:  # StopIteration, or a failure: the request that needs it shows it
            with self._lock:
                if self.idle_work is work:  # not work given meanwhile by another thread
                    self.idle_work = None

    def give_idle_work(self, work: Iterator[None]) -> None:
        """Set :attr:`idle_work` from any thread (:meth:`idle_step` never
        drops work given while the previous work ended)."""
        with self._lock:
            self.idle_work = work

    def on_iteration(self) -> None:
        now = time.perf_counter()
        self.iterations += 1
        if self._ready_at is None:
            self.blocked_s += now - self._since
        else:
            self.blocked_s += self._ready_at - self._since
            self._ready_at = None
        self._since = now
        if not self.serving.is_set():
            self.serving.set()

    def on_ready(self) -> None:
        self.ready += 1
        self._ready_at = time.perf_counter()

    def on_accept(
        self, sock: socket.socket, address: Any, *, adopted: bool = False, header: dict[str, Any] | None = None
    ) -> None:
        """A connection to report: accepted, or ``adopted`` from an older
        generation (open here, but not counted again in the total; what the
        old generation's ``header`` says of it carries on: requests served,
        bytes, when it opened)."""
        if isinstance(address, tuple) and len(address) >= 2:
            host = address[0]
            peer = f"[{host}]:{address[1]}" if ":" in str(host) else f"{host}:{address[1]}"
        else:
            peer = str(address)
        conn = Connection(next(self._ids), peer)
        if header:
            _seed(conn, header)
        self.conns[sock] = conn
        if not adopted:
            self.connections_total += 1
        self.opened.append(conn)
        self.wake()

    # connection threads ----------------------------------------------------
    def on_close(self, sock: socket.socket) -> None:
        conn = self.conns.pop(sock, None)
        if conn is not None:
            conn.state = "closed"
            self.closed.append(conn)
            self.wake()

    def on_request(self, event: RequestEvent) -> None:
        status = event.get("status")
        if type(status) is int and 100 <= status <= 999:
            key = f"{status // 100}xx"
        else:
            text = str(status or "")
            key = f"{text[0]}xx" if text[:1].isdigit() else "other"
        with self._lock:
            self.requests_total += 1
            self.status_classes[key] = self.status_classes.get(key, 0) + 1
            full = len(self.requests) >= MAX_PENDING_REQUESTS
            if full:
                self.dropped += 1
        if not full:
            self.requests.append(event)
        self.wake()
        if not self.first_request.is_set():  # set() takes a lock every time
            self.first_request.set()

    def handling(self) -> int:
        """Connections in the middle of a request (not those waiting for one)."""
        return sum(1 for conn in list(self.conns.values()) if conn.state == "handling")

    def busy(self) -> int:
        """Connections in the middle of a request, or accepted and not yet
        past their first request line: a stop waits for both (exiting with
        an accepted connection unread would reset it)."""
        return sum(1 for conn in list(self.conns.values()) if conn.state in ("handling", "reading"))

    # flusher -------------------------------------------------------------
    def drain(self, last: dict[str, float]) -> list[Event]:
        """Events describing everything since the previous call."""
        out: list[Event] = []
        while self.opened:
            conn = self.opened.popleft()
            self.dirty.discard(conn)
            if conn.state != "closed":
                out.append(conn.as_event("conn_open"))
            # else: opened and closed since the last flush (one request,
            # Connection: close); its conn_close says all, one event not two.
        for conn in list(self.dirty):
            self.dirty.discard(conn)
            if conn.state != "closed":
                out.append(conn.as_event("conn_state"))
        while self.requests:
            out.append(self.requests.popleft())
        while self.closed:
            conn = self.closed.popleft()
            self.dirty.discard(conn)
            out.append(conn.as_event("conn_close"))
        now = time.perf_counter()
        iterations, ready, blocked = self.iterations, self.ready, self.blocked_s
        d_iter = iterations - int(last.get("iterations", 0))
        d_ready = ready - int(last.get("ready", 0))
        if d_iter or out:
            loop: LoopEvent = {
                "type": "loop",
                "iterations": d_iter,
                "ready": d_ready,
                "timeouts": max(d_iter - d_ready, 0),
                "blocked_s": round(blocked - last.get("blocked_s", 0.0), 6),
                "elapsed_s": round(now - last.get("at", now), 6),
                "accepts": d_ready,
                "poll_interval": self.poll_interval,
            }
            stats: StatsEvent = {
                "type": "stats",
                "requests": self.requests_total,
                "connections": self.connections_total,
                "dropped": self.dropped,
                "status": dict(self.status_classes),
                "open": len(self.conns),
            }
            out += (loop, stats)
        last.update(iterations=iterations, ready=ready, blocked_s=blocked, at=now)
        return out


class _ReceivedCounter(io.RawIOBase):
    """The socket under an ``rfile``'s buffer, counting the bytes it
    received from the kernel (see :meth:`_CountingReader.surely_empty`)."""

    def __init__(self, raw: Any) -> None:
        self._sockio = raw
        self.received = 0

    def readinto(self, buffer: Any) -> int | None:
        n = self._sockio.readinto(buffer)
        if n:
            self.received += n
        return n

    def readable(self) -> bool:
        return True

    def tell(self) -> int:
        # What BufferedReader.tell() subtracts its buffer from: the bytes
        # the handler consumed, known without a call per read.
        return self.received

    def fileno(self) -> int:
        return int(self._sockio.fileno())

    def close(self) -> None:
        super().close()
        self._sockio.close()


class _CountingReader:
    """``rfile`` that adds the bytes read to its connection."""

    def __init__(self, raw: Any, conn: Connection) -> None:
        self._counter: _ReceivedCounter | None = None
        if type(raw) is io.BufferedReader and isinstance(raw.raw, socket.SocketIO):
            # Same buffer size, one counter under it: whether the buffer holds
            # anything is then known without a system call.
            self._counter = _ReceivedCounter(raw.raw)
            # The original is kept: collected, it would close the socket's file.
            self._original = raw
            raw = io.BufferedReader(self._counter, io.DEFAULT_BUFFER_SIZE)
        self._raw = raw
        self._conn = conn
        #: Bytes the handler took from this reader (the buffer holds the rest of ``received``).
        self.consumed = 0

    def surely_empty(self) -> bool:
        """True when the buffer surely holds nothing read from the kernel and
        not yet used (False: maybe; ask ``peek``)."""
        counter = self._counter
        return counter is not None and counter.received == self.consumed

    def read(self, *args: Any) -> bytes:
        data = self._raw.read(*args)
        self._conn.bytes_in += len(data)
        self.consumed += len(data)
        return data

    def read1(self, *args: Any) -> bytes:
        data = self._raw.read1(*args)
        self._conn.bytes_in += len(data)
        self.consumed += len(data)
        return data

    def readline(self, *args: Any) -> bytes:
        data = self._raw.readline(*args)
        self._conn.bytes_in += len(data)
        self.consumed += len(data)
        return data

    def readinto(self, buffer: Any) -> int:
        n = self._raw.readinto(buffer)
        self._conn.bytes_in += n or 0
        self.consumed += n or 0
        return n

    def __iter__(self) -> Any:
        return iter(self.readline, b"")

    def __getattr__(self, name: str) -> Any:
        return getattr(self._raw, name)


class _CountingWriter:
    """``wfile`` that adds the bytes written to its connection (if any) and sends what
    was written between two flushes as one ``sendall``.

    wsgiref writes a response in up to five pieces (status line, ``Date``,
    ``Server``, headers, body) and flushes after the body; with
    ``TCP_NODELAY`` each piece would be a system call and a TCP segment of
    its own. The bytes on the wire are the same. Held at most until the next
    flush: wsgiref's after each write, the handler's after ``parse_request``
    (``100 Continue``) and at the end of each request (a HEAD).
    """

    def __init__(self, raw: Any, conn: Connection | None) -> None:
        self._raw = raw
        self._conn = conn
        self.pending: list[bytes] = []

    def write(self, data: Any) -> int:
        if type(data) is not bytes:
            data = bytes(data)  # a caller may reuse its buffer once write returns
        self.pending.append(data)
        return len(data)

    def flush(self) -> None:
        pending = self.pending
        if pending:
            self.pending = []
            if len(pending) > 1 and sum(map(len, pending)) > JOIN_LIMIT:
                # A large body is not copied: the head in one send, the body in another.
                pending = [b"".join(pending[:-1]), pending[-1]]
            elif len(pending) > 1:
                pending = [b"".join(pending)]
            for data in pending:
                self._raw.write(data)
                if self._conn is not None:
                    self._conn.bytes_out += len(data)
        self._raw.flush()

    def close(self) -> None:
        try:
            self.flush()
        finally:
            self._raw.close()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._raw, name)


def transport_handler(base: type, skip_request_line: bool = False) -> type:
    """A subclass of the server's request handler that sends each response in
    one piece (see :class:`_CountingWriter`) and, when ``skip_request_line``
    (nobody reads it: :func:`request_line_reaches_nobody`), does not build
    the ``django.server`` line of a 1xx-3xx response.

    What it changes is how bytes leave, not which: the bench's ``tuned``
    server is this alone, and :func:`instrument_handler` adds the observation.
    """

    # The request line may be skipped only where it is the stock one: a
    # project's handler that logs requests its own way keeps doing so.
    skip = skip_request_line and _stock_request_log(base)

    class TransportHandler(base):
        _dc_conn: Connection | None = None
        _dc_counter: _ReceivedCounter | None = None
        _dc_in0 = 0
        # Set by socketserver's StreamRequestHandler.setup().
        rfile: Any
        wfile: Any

        def _dc_connection(self) -> Connection | None:
            """The connection record the byte counts go to, if any."""
            return None

        def setup(self) -> None:
            super().setup()
            conn = self._dc_conn = self._dc_connection()
            self.wfile = _CountingWriter(self.wfile, conn)
            if conn is None:
                return
            raw = self.rfile
            if type(raw) is io.BufferedReader and isinstance(raw.raw, socket.SocketIO):
                # The same buffer over a counter of what the kernel gave:
                # what the handler consumed is then ``tell()`` (the received
                # bytes less the buffer), with no Python call per line read.
                self._dc_counter = _ReceivedCounter(raw.raw)
                self._dc_rfile0 = raw  # collected, it would close the socket's file
                self._dc_in0 = conn.bytes_in  # what an adopted connection brought along
                self.rfile = io.BufferedReader(self._dc_counter, io.DEFAULT_BUFFER_SIZE)
            else:
                self.rfile = _CountingReader(raw, conn)

        def dc_count_in(self) -> None:
            """Bring the connection's ``bytes_in`` up to what the handler consumed."""
            counter, conn = self._dc_counter, self._dc_conn
            if counter is not None and conn is not None:
                try:
                    conn.bytes_in = self._dc_in0 + self.rfile.tell()
                except (OSError, ValueError):  # closed
                    pass

        def dc_surely_empty(self) -> bool:
            """True when the reader surely holds nothing read from the kernel
            and not yet used (False: maybe; ask ``peek``)."""
            counter = self._dc_counter
            if counter is None:
                surely_empty = getattr(self.rfile, "surely_empty", None)
                return bool(surely_empty is not None and surely_empty())
            try:
                return bool(counter.received == self.rfile.tell())
            except (OSError, ValueError):
                return False

        def parse_request(self) -> bool:
            ok = super().parse_request()
            if self.wfile.pending:
                self.wfile.flush()  # "100 Continue" (or an error) goes out now, as runserver sends it
            return ok

        def log_request(self, code: Any = "-", size: Any = "-") -> None:
            # 4xx and 5xx take the stock path: Django logs more than the line
            # for some of them (the hint about HTTPS on a plain-HTTP port).
            if not (skip and str(getattr(code, "value", code))[:1] in ("1", "2", "3")):
                super().log_request(code, size)

        def handle_one_request(self) -> None:
            super().handle_one_request()
            try:
                # A response with no body (a HEAD) is not flushed by wsgiref.
                self.wfile.flush()
            except (BrokenPipeError, ConnectionResetError, ConnectionAbortedError):
                self.close_connection = True  # the client left; wsgiref ignores it too

    return TransportHandler


def instrument_handler(base: type, observer: ServerObserver) -> type:
    """A subclass of the server's request handler that reports to ``observer``
    (on top of :func:`transport_handler`)."""

    # The server (and so this class) is built after the WSGI handler, which
    # is when the agent decides whether the request line is read at all.
    class InstrumentedHandler(transport_handler(base, observer.skip_request_line)):  # type: ignore[misc]
        _dc_request: RequestEvent | None = None
        _dc_t0 = 0.0
        #: The handler class runserver would have served with.
        dc_base = base

        def _dc_connection(self) -> Connection | None:
            return observer.conns.get(self.request)

        def setup(self) -> None:
            super().setup()
            conn = self._dc_conn
            if conn is not None:
                conn.thread = threading.current_thread().name
                observer.dirty.add(conn)

        def parse_request(self) -> bool:
            started = time.time()
            ok = super().parse_request()
            if ok:
                # A request that fails to parse is begun by log_request, if an
                # error is sent; an empty line (client gone) is no request.
                self._dc_begin(started)
            return ok

        def _dc_begin(self, started: float) -> RequestEvent:
            raw_path = getattr(self, "path", "") or ""
            path, _, query = raw_path.partition("?")
            headers = getattr(self, "headers", None)
            # The parsed lines as received: Message.items() would run each
            # through the email policy, and the console sanitizes them anyway.
            raw = getattr(headers, "_headers", None)
            items = (
                raw[:MAX_HEADERS]
                if isinstance(raw, list)
                else list(headers.items())[:MAX_HEADERS]
                if headers is not None
                else []
            )
            conn = self._dc_conn
            request: RequestEvent = {
                "type": "request",
                "id": "",
                "conn": conn.id if conn else None,
                "method": getattr(self, "command", None) or "",
                "path": path,
                "query": query,
                "version": getattr(self, "request_version", "") or "",
                "status": None,
                "bytes_out": 0,
                "thread": conn.thread if conn is not None else threading.current_thread().name,
                "ts": started,
                "headers": [[k, v[:MAX_HEADER_VALUE]] for k, v in items],
                "duration_ms": 0.0,
            }
            self._dc_t0 = time.perf_counter()
            self._dc_request = request
            if conn is not None:
                self.dc_count_in()
                conn.state = "handling"
                conn.method, conn.path = request["method"], path
                if is_events(path):
                    # A page following the code (live reload): open as long
                    # as the page is, which is no request being handled.
                    conn.state = "livereload"
                    conn.page = page_of(query)
                observer.dirty.add(conn)
            return request

        def _dc_unparsed(self, started: float) -> RequestEvent:
            """A request that failed to parse (sent an error): when its request
            line is what failed (garbage, a TLS handshake, too long), the row
            carries that line as received, bounded, as runserver logs it, not
            http.server's defaults (no method, ``HTTP/0.9``). The console
            escapes it."""
            request = self._dc_begin(started)
            if not getattr(self, "command", None):
                request["method"] = ""
                request["path"] = (getattr(self, "requestline", "") or "")[:MAX_RAW_REQUEST_LINE]
                request["query"] = ""
                request["version"] = ""
            return request

        def log_request(self, code: Any = "-", size: Any = "-") -> None:
            request = self._dc_request or self._dc_unparsed(time.time())
            status = str(getattr(code, "value", code))  # send_error passes HTTPStatus members
            request["status"] = int(status) if status.isdigit() else None
            request["bytes_out"] = int(size) if str(size).isdigit() else 0
            super().log_request(code, size)

        def handle_one_request(self) -> None:
            handover = observer.handover
            if handover is not None and not handover.await_request(self):
                return  # moved to the next generation: close_connection is set
            try:
                super().handle_one_request()
            finally:
                self._dc_finish()

        def handle(self) -> None:
            # wsgiref's own handler serves one request from handle() directly.
            try:
                super().handle()
            finally:
                self._dc_finish()

        def _dc_finish(self) -> None:
            # A next request that fails to parse (or is too long to) must not
            # show this one's path and headers: http.server leaves them set.
            self.path, self.headers = "", None
            request, self._dc_request = self._dc_request, None
            conn = self._dc_conn
            self.dc_count_in()
            if request is not None and is_reserved(request["path"]):
                # devconsole's own (live reload): no row, not in the totals.
                request = None
            if request is not None:
                request["duration_ms"] = round((time.perf_counter() - self._dc_t0) * 1000, 3)
                if conn is not None:
                    conn.requests += 1
                    request["id"] = f"{conn.id}.{conn.requests}"
                else:
                    request["id"] = f"-.{observer.requests_total + 1}"
                try:
                    for finisher in observer.finishers:
                        try:
                            finisher(request)
                        except Exception:  # a finisher's bug never loses the request
                            pass
                finally:
                    observer.on_request(request)
            if conn is not None and not getattr(self, "close_connection", True):
                conn.state = "idle"
                observer.dirty.add(conn)

    InstrumentedHandler.__name__ = base.__name__
    InstrumentedHandler.__qualname__ = base.__qualname__
    return InstrumentedHandler


def instrument_server(base: type, listen_fd: int, observer: ServerObserver) -> type:
    """A subclass of runserver's ``server_cls`` that adopts ``listen_fd`` and
    reports its loop, connections and requests to ``observer``."""

    class InstrumentedServer(base):
        socket: Any
        dc_observer = observer
        # socketserver.BaseServer's own (name-mangled) shutdown flags.
        _BaseServer__shutdown_request: bool
        _BaseServer__is_shut_down: threading.Event

        def __init__(self, server_address: Any, handler_class: type, *args: Any, **kwargs: Any) -> None:
            super().__init__(server_address, instrument_handler(handler_class, observer), *args, **kwargs)
            observer.server = self

        def server_bind(self) -> None:
            self.socket.close()
            self.socket = socket.socket(fileno=os.dup(listen_fd))
            # Two generations may select on the shared socket during a reload:
            # the one that loses the race must get EAGAIN from accept(), not
            # block in it (and later accept a request for the old code).
            self.socket.setblocking(False)
            self.address_family = self.socket.family
            self.server_address = self.socket.getsockname()
            host, port = self.server_address[:2]
            # HTTPServer.server_bind would call getfqdn(), a DNS lookup: skip it.
            self.server_name = host
            self.server_port = port
            setup = getattr(self, "setup_environ", None)
            if setup is not None:
                setup()

        def server_activate(self) -> None:
            """The console's socket is already listening."""

        def dc_adopt(self, fd: int, header: dict[str, Any]) -> None:
            """Serve connection ``fd``, handed over by an older generation."""
            if observer.handover is None:
                os.close(fd)
                return
            observer.handover.adopt(self, fd, header)

        def get_request(self) -> Any:
            observer.on_ready()
            if observer.stopping:
                # Leave the connection in the backlog for the next generation;
                # _handle_request_noblock ignores OSError from here.
                raise OSError("stopping: not accepting")
            sock, address = super().get_request()
            if sock.family in (socket.AF_INET, socket.AF_INET6):
                # A body over JOIN_LIMIT and a streamed response leave in
                # several sends: without this a keep-alive client would wait
                # for a delayed ACK on them.
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            observer.on_accept(sock, address)
            return sock, address

        def serve_forever(self, poll_interval: float = 0.5) -> None:
            # Serving starts here, not after the first select returns (which
            # takes a whole poll interval on an idle socket): connections
            # already wait in the backlog and the loop picks them up at once.
            observer.poll_interval = poll_interval
            observer._since = time.perf_counter()
            observer.serving.set()
            if not hasattr(self, "_BaseServer__shutdown_request"):  # pragma: no cover - another socketserver
                super().serve_forever(poll_interval)
                return
            self._dc_serve()

        def _dc_serve(self) -> None:
            """socketserver's loop, but idle without waking: the select waits
            for a connection or for a byte on a wake-up pipe (:meth:`shutdown`'s,
            or, while idle work waits, a connection's change), never for a poll interval (runserver's 0.5 s would wake an idle
            server twice a second and delay every stop by up to that much)."""
            # Kept open for the process's life (a server child serves once):
            # a shutdown() racing the loop's end never writes to a closed fd.
            wake_r, wake_w = os.pipe()
            os.set_blocking(wake_r, False)
            os.set_blocking(wake_w, False)
            self._dc_wake = wake_w
            wake_flusher = observer.wake

            #: Set while the loop sleeps until the requests in flight end (idle
            #: work waits): the change that ends the last one wakes it, once.
            waiting_for_idle = [False]

            def wake_both() -> None:
                wake_flusher()
                if waiting_for_idle[0] and not observer.busy():
                    waiting_for_idle[0] = False
                    with contextlib.suppress(OSError):  # full: the loop is awake anyway
                        os.write(wake_w, b"x")

            self._BaseServer__is_shut_down.clear()
            try:
                with selectors.DefaultSelector() as selector:
                    selector.register(self, selectors.EVENT_READ)
                    selector.register(wake_r, selectors.EVENT_READ)
                    while not self._BaseServer__shutdown_request:
                        timeout = None
                        if observer.idle_work is not None:
                            # A step when nothing waits, none while a request
                            # runs: the change that ends the last one wakes the
                            # loop (set before looking, so none is missed; under
                            # load no change writes to the pipe).
                            observer.wake = wake_both
                            waiting_for_idle[0] = True
                            timeout = None if observer.busy() else 0.0
                            if timeout is not None:
                                waiting_for_idle[0] = False
                        elif observer.wake is wake_both:
                            observer.wake = wake_flusher
                        ready = selector.select(timeout)
                        if self._BaseServer__shutdown_request:
                            break
                        if any(key.fileobj == wake_r for key, _ in ready):
                            with contextlib.suppress(OSError):
                                os.read(wake_r, 4096)
                            ready = [item for item in ready if item[0].fileobj is self]
                        if not ready:
                            if observer.idle_work is not None and not observer.busy():
                                observer.idle_step()
                            continue
                        if any(key.fileobj is self for key, _ in ready):
                            self._handle_request_noblock()
                        self.service_actions()
            finally:
                observer.wake = wake_flusher
                self._BaseServer__shutdown_request = False
                self._BaseServer__is_shut_down.set()

        def dc_poke(self) -> None:
            """Wake the loop (it looks at :attr:`ServerObserver.idle_work` again)."""
            wake = getattr(self, "_dc_wake", -1)
            if wake >= 0:
                with contextlib.suppress(OSError):  # full: the loop is awake anyway
                    os.write(wake, b"x")

        def shutdown(self) -> None:
            wake = getattr(self, "_dc_wake", -1)
            if wake < 0:
                super().shutdown()
                return
            self._BaseServer__shutdown_request = True
            self.dc_poke()
            self._BaseServer__is_shut_down.wait()

        def service_actions(self) -> None:
            observer.on_iteration()
            super().service_actions()

        def shutdown_request(self, request: Any) -> None:
            observer.on_close(request)
            super().shutdown_request(request)

    InstrumentedServer.__name__ = base.__name__
    InstrumentedServer.__qualname__ = base.__qualname__
    InstrumentedServer.__module__ = base.__module__
    return InstrumentedServer


#: The format ``BaseHTTPRequestHandler.log_request`` logs each request with.
REQUEST_LINE_FORMAT = '"%s" %s %s'


class _RequestLineFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return record.msg != REQUEST_LINE_FORMAT


def quiet_request_log(logger: logging.Logger | None = None) -> bool:
    """Stop the ``django.server`` logger writing runserver's per-request line
    to stdout/stderr; the request event carries the same facts, and the
    console writes the line into its log from it.

    Formatting, writing and reading that line back cost more CPU per request
    than everything else the instrumentation does. Only handlers that write
    to the process's stdout/stderr are filtered: a handler the project points
    at a file still gets every line. Returns whether any was filtered.
    """
    streams = {id(s) for s in (sys.stdout, sys.stderr, sys.__stdout__, sys.__stderr__) if s is not None}
    quieted = False
    for handler in (logger or logging.getLogger("django.server")).handlers:
        if isinstance(handler, logging.StreamHandler) and id(getattr(handler, "stream", None)) in streams:
            handler.addFilter(_RequestLineFilter())
            quieted = True
    return quieted


def request_line_reaches_nobody(logger: logging.Logger | None = None) -> bool:
    """Whether every handler a ``django.server`` request line would reach
    drops it (because :func:`quiet_request_log` filtered them all).

    Then the line need not be built at all: the log record, its caller
    lookup and its timestamp cost about a sixth of a request's CPU. False
    whenever anything could still see the record: a filter on the logger
    itself, a handler that is not quieted (a project's file handler, say),
    or no handler at all (``logging.lastResort`` prints warnings).
    """
    logger = logger or logging.getLogger("django.server")
    if logger.filters:
        return False
    reached: list[logging.Handler] = []
    current: logging.Logger | None = logger
    while current is not None:
        reached.extend(current.handlers)
        if not current.propagate:
            break
        current = current.parent
    return bool(reached) and all(any(isinstance(f, _RequestLineFilter) for f in h.filters) for h in reached)


def _stock_request_log(handler_cls: type) -> bool:
    """Whether ``handler_cls`` logs each request exactly as Django's
    ``WSGIRequestHandler`` does (``log_request`` → ``log_message`` → the
    ``django.server`` logger), with nothing of its own on the way."""
    from http.server import BaseHTTPRequestHandler

    try:
        from django.core.servers.basehttp import WSGIRequestHandler
    except ImportError:  # pragma: no cover - the server child always has Django
        return False
    return (
        getattr(handler_cls, "log_request", None) is BaseHTTPRequestHandler.log_request
        and getattr(handler_cls, "log_message", None) is WSGIRequestHandler.log_message
    )
