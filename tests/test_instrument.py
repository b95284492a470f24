"""Which ``django.server`` request lines the server child may skip building.

Real loggers and handlers, made as ``logging.Logger`` objects of the test's
own: they are not registered with the logging module, so the test process's
logging is left exactly as it was.
"""

from __future__ import annotations

import io
import logging
import sys
from collections.abc import Iterator
from typing import Any

import pytest

from devconsole.child.instrument import ServerObserver, quiet_request_log, request_line_reaches_nobody


@pytest.fixture
def handlers() -> Iterator[list[logging.Handler]]:
    """Handlers a test makes; closed afterwards."""
    made: list[logging.Handler] = []
    yield made
    for handler in made:
        handler.close()


def logger(*handlers: logging.Handler, propagate: bool = False, parent: logging.Logger | None = None) -> logging.Logger:
    made = logging.Logger("django.server")
    for handler in handlers:
        made.addHandler(handler)
    made.propagate = propagate
    made.parent = parent  # type: ignore[assignment]
    return made


def test_only_quieted_stream_handlers_means_nobody_reads_it() -> None:
    server = logger(logging.StreamHandler(sys.stderr))
    assert quiet_request_log(server) is True
    assert request_line_reaches_nobody(server) is True


def test_a_file_handler_still_reads_it(handlers: list[logging.Handler], tmp_path) -> None:
    handlers.append(logging.FileHandler(tmp_path / "x.log"))
    server = logger(logging.StreamHandler(sys.stderr), handlers[0])
    assert quiet_request_log(server) is True
    assert request_line_reaches_nobody(server) is False


def test_a_propagating_logger_reaches_its_parents_handlers() -> None:
    parent = logger(logging.StreamHandler(sys.stdout))
    server = logger(logging.StreamHandler(sys.stderr), propagate=True, parent=parent)
    assert quiet_request_log(server) is True
    assert request_line_reaches_nobody(server) is False  # the parent's handler was not quieted
    quiet_request_log(parent)
    assert request_line_reaches_nobody(server) is True  # now every handler on the way drops it


def test_a_filter_on_the_logger_or_no_handler_keeps_the_line() -> None:
    server = logger(logging.StreamHandler(sys.stderr))
    server.addFilter(lambda record: True)
    assert quiet_request_log(server) is True
    assert request_line_reaches_nobody(server) is False
    bare = logger()
    assert quiet_request_log(bare) is False
    assert request_line_reaches_nobody(bare) is False  # logging.lastResort would print warnings


def test_a_stream_of_its_own_is_not_quieted() -> None:
    server = logger(logging.StreamHandler(io.StringIO()))
    assert quiet_request_log(server) is False
    assert request_line_reaches_nobody(server) is False


class _Wire:
    """A connection's raw wfile: records each send."""

    def __init__(self) -> None:
        self.sends: list[bytes] = []
        self.flushes = 0

    def write(self, data: bytes) -> int:
        self.sends.append(bytes(data))
        return len(data)

    def flush(self) -> None:
        self.flushes += 1


def test_a_response_is_one_send_and_a_large_body_is_not_copied() -> None:
    from devconsole.child.instrument import JOIN_LIMIT, Connection, _CountingWriter

    conn = Connection(1, "127.0.0.1:1")
    wire = _Wire()
    out = _CountingWriter(wire, conn)
    head = [b"HTTP/1.1 200 OK\r\n", b"Date: x\r\n", b"Server: y\r\n", b"Content-Length: 4\r\n\r\n"]
    for piece in head:
        out.write(piece)
    out.write(bytearray(b"pong"))  # a buffer the caller may reuse
    assert wire.sends == []  # nothing leaves before the flush
    out.flush()
    assert wire.sends == [b"".join(head) + b"pong"]
    body = b"x" * (JOIN_LIMIT + 1)
    out.write(b"HTTP/1.1 200 OK\r\n")
    out.write(b"Content-Length: %d\r\n\r\n" % len(body))
    out.write(body)
    out.flush()
    assert wire.sends[1] == b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(body)
    assert wire.sends[2] is body
    assert conn.bytes_out == sum(map(len, wire.sends))
    out.flush()  # nothing pending: no empty send
    assert len(wire.sends) == 3 and wire.flushes == 3


def test_idle_work_runs_only_while_no_request_is_in_flight() -> None:
    """A new generation's warm-up (``idle_work``) never runs in front of a
    request: its steps run once nothing waits and nothing is being handled."""
    import http.client
    import socket
    import threading
    from socketserver import ThreadingMixIn
    from wsgiref.simple_server import WSGIRequestHandler, WSGIServer

    from devconsole.child.instrument import ServerObserver, instrument_server
    from tests.conftest import wait_for

    release = threading.Event()
    slow_done = threading.Event()

    def app(environ: dict, start_response: Any) -> list[bytes]:
        if environ["PATH_INFO"] == "/slow/":
            release.wait(60)
            slow_done.set()
        start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "2")])
        return [b"ok"]

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    port = listener.getsockname()[1]
    observer = ServerObserver()
    steps: list[tuple[int, bool]] = []

    def work() -> Iterator[None]:
        for _ in range(3):
            steps.append((observer.busy(), slow_done.is_set()))
            yield

    class Quiet(WSGIRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

    class Threaded(ThreadingMixIn, WSGIServer):
        daemon_threads = True

    server_cls = instrument_server(Threaded, listener.fileno(), observer)
    server = server_cls(("127.0.0.1", port), Quiet)
    server.set_app(app)
    observer.idle_work = work()
    # The slow request waits in the backlog before the loop starts, as a
    # page's request does when a reloaded generation is let in.
    slow = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    slow.request("GET", "/slow/")
    loop = threading.Thread(target=server.serve_forever, daemon=True)
    loop.start()
    try:
        wait_for(lambda: observer.busy() == 1, describe=lambda: f"busy {observer.busy()}")
        fast = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        fast.request("GET", "/fast/")  # the loop accepts and serves it meanwhile
        assert fast.getresponse().read() == b"ok"
        fast.close()
        assert steps == []  # the loop went round while a request was in flight: no step
        release.set()
        assert slow.getresponse().read() == b"ok"
        slow.close()
        wait_for(lambda: observer.idle_work is None, describe=lambda: f"steps {steps}")
        assert steps == [(0, True)] * 3
    finally:
        release.set()
        server.shutdown()
        server.server_close()
        listener.close()


def test_idle_work_given_while_the_last_one_ends_is_kept() -> None:
    """Another thread (a late ``accept``) gives work in the instant the
    loop's work ends: the loop does not drop it with the old."""
    from devconsole.child.instrument import ServerObserver

    observer = ServerObserver()
    given: list[int] = []

    def later() -> Iterator[None]:
        given.append(1)
        yield

    following = later()

    def ending() -> Iterator[None]:
        observer.give_idle_work(following)  # as the other thread would, just before the end
        return
        yield

    observer.give_idle_work(ending())
    observer.idle_step()  # the old work ends
    assert observer.idle_work is following
    observer.idle_step()
    assert given == [1]
    observer.idle_step()
    assert observer.idle_work is None


def test_statuses_are_counted_by_class_exactly() -> None:
    observer = ServerObserver()
    for status in (200, 404, 200, None, 503, 302, 200, 101):
        observer.on_request({"type": "request", "status": status})  # type: ignore[typeddict-item]
    assert observer.requests_total == 8
    assert observer.status_classes == {"2xx": 3, "4xx": 1, "other": 1, "5xx": 1, "3xx": 1, "1xx": 1}
    assert len(observer.requests) == 8
