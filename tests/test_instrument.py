"""Which ``django.server`` request lines the server child may skip building.

Real loggers, configured with ``logging.config.dictConfig`` under names of
their own, so the test process's logging is left as it was.
"""

from __future__ import annotations

import io
import logging
import logging.config
import sys

import pytest

from devconsole.core.instrument import quiet_request_log, request_line_reaches_nobody


def _configure(name: str, handlers: dict, logger_handlers: list[str], **logger: object) -> logging.Logger:
    logging.config.dictConfig(
        {
            "version": 1,
            "disable_existing_loggers": False,
            "handlers": handlers,
            "loggers": {name: {"handlers": logger_handlers, "level": "INFO", **logger}},
        }
    )
    return logging.getLogger(name)


STDERR = {"class": "logging.StreamHandler", "stream": "ext://sys.stderr"}


@pytest.fixture
def quieted(monkeypatch: pytest.MonkeyPatch):
    """``quiet_request_log`` applied to a logger of the test's choosing."""

    def apply(logger: logging.Logger) -> bool:
        monkeypatch.setattr(logging, "getLogger", lambda name=None, _real=logging.getLogger: logger if name == "django.server" else _real(name))
        return quiet_request_log()

    return apply


def test_only_quieted_stream_handlers_means_nobody_reads_it(quieted) -> None:
    logger = _configure("dc.test.stream", {"s": STDERR}, ["s"], propagate=False)
    assert quieted(logger) is True
    assert request_line_reaches_nobody(logger) is True


def test_a_file_handler_still_reads_it(quieted, tmp_path) -> None:
    file = {"class": "logging.FileHandler", "filename": str(tmp_path / "x.log")}
    logger = _configure("dc.test.file", {"s": STDERR, "f": file}, ["s", "f"], propagate=False)
    assert quieted(logger) is True
    assert request_line_reaches_nobody(logger) is False
    for handler in logger.handlers:
        handler.close()


def test_a_propagating_logger_reaches_its_parents_handlers(quieted) -> None:
    parent = _configure("dc.test.parent", {"p": {"class": "logging.StreamHandler", "stream": "ext://sys.stdout"}}, ["p"], propagate=False)
    child = logging.getLogger("dc.test.parent.server")
    child.addHandler(logging.StreamHandler(sys.stderr))
    child.propagate = True
    assert quieted(child) is True
    assert request_line_reaches_nobody(child) is False  # the parent's handler was not quieted
    assert parent.handlers


def test_a_filter_on_the_logger_or_no_handler_keeps_the_line(quieted) -> None:
    logger = _configure("dc.test.filtered", {"s": STDERR}, ["s"], propagate=False, filters=[])
    logger.addFilter(lambda record: True)
    assert quieted(logger) is True
    assert request_line_reaches_nobody(logger) is False
    bare = logging.getLogger("dc.test.nohandler")
    bare.propagate = False
    assert quieted(bare) is False
    assert request_line_reaches_nobody(bare) is False  # logging.lastResort would print warnings


def test_a_stream_of_its_own_is_not_quieted(quieted) -> None:
    logger = logging.getLogger("dc.test.own")
    logger.propagate = False
    logger.addHandler(logging.StreamHandler(io.StringIO()))
    assert quieted(logger) is False
    assert request_line_reaches_nobody(logger) is False


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
    from devconsole.core.instrument import JOIN_LIMIT, Connection, _CountingWriter

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
