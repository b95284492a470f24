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

import pytest

from devconsole.child.instrument import quiet_request_log, request_line_reaches_nobody


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
