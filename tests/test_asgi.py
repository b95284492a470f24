"""Daphne (Channels' runserver) served on the console's socket: a real
Channels project, real server children, real HTTP and WebSocket traffic."""

from __future__ import annotations

import base64
import http.client
import os
import shutil
import socket
import struct
from collections.abc import Iterator
from pathlib import Path

import pytest

from devconsole.console.listen import ListenAddress, bind
from devconsole.console.project import Project
from devconsole.console.supervisor import Supervisor
from devconsole.model.state import ConnRow

from .conftest import Events, inotify_watches, serving, wait_for

pytest.importorskip("channels", reason="channels is not installed (test extras: channels, daphne)")
pytest.importorskip("daphne", reason="daphne is not installed (test extras: channels, daphne)")

PROJECT_DIR = Path(__file__).parent / "projects" / "channels_project"


@pytest.fixture
def channels_project() -> Project:
    return Project(PROJECT_DIR / "manage.py")


@pytest.fixture
def daphne(channels_project: Project, events: Events) -> Iterator[Supervisor]:
    with serving(channels_project, events) as supervisor:
        yield supervisor


def _port(server: Supervisor) -> int:
    return server.socket.getsockname()[1]


def _get(port: int, path: str) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.request("GET", path, headers={"Connection": "close"})
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


# a WebSocket client in a few lines of the standard library -------------------
def _recv_exact(sock: socket.socket, n: int) -> bytes:
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        assert chunk, f"connection closed after {data!r}"
        data += chunk
    return data


def ws_connect(port: int, path: str) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=30)
    key = base64.b64encode(os.urandom(16)).decode()
    sock.sendall(
        f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\nOrigin: http://127.0.0.1:{port}\r\n\r\n".encode()
    )
    head = b""
    while b"\r\n\r\n" not in head:
        chunk = sock.recv(1)
        assert chunk, f"closed during the handshake: {head!r}"
        head += chunk
    assert head.startswith(b"HTTP/1.1 101"), head
    import hashlib

    accept = base64.b64encode(hashlib.sha1((key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11").encode()).digest())
    assert b"Sec-WebSocket-Accept: " + accept in head, head
    return sock


def ws_send(sock: socket.socket, opcode: int, payload: bytes) -> None:
    """One final, masked frame (clients must mask)."""
    mask = os.urandom(4)
    length = len(payload)
    header = bytes([0x80 | opcode])
    if length < 126:
        header += bytes([0x80 | length])
    else:
        header += bytes([0x80 | 126]) + struct.pack("!H", length)
    sock.sendall(header + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload)))


def ws_recv(sock: socket.socket) -> tuple[int, bytes]:
    first, second = _recv_exact(sock, 2)
    length = second & 0x7F
    if length == 126:
        length = struct.unpack("!H", _recv_exact(sock, 2))[0]
    elif length == 127:
        length = struct.unpack("!Q", _recv_exact(sock, 8))[0]
    return first & 0x0F, _recv_exact(sock, length)


# tests ------------------------------------------------------------------------
def test_http_is_served_by_daphne_and_reported_as_requests(daphne: Supervisor, events: Events) -> None:
    hello = events.of("hello")[0]
    assert hello["server_kind"] == "asgi"
    assert hello["runserver"]["class"] == "daphne.management.commands.runserver.Command"
    assert hello["listen"]["port"] == _port(daphne)
    assert hello["handler"].endswith("ASGIStaticFilesHandler")  # what Daphne's get_application serves
    assert events.state.server_kind == "asgi"  # the Loop panel says it has no select loop
    assert _get(_port(daphne), "/hello/?n=7") == (200, b"hello from daphne 7")
    assert _get(_port(daphne), "/missing/")[0] == 404
    wait_for(lambda: events.state.total_requests == 2)
    first, second = events.of("request")
    assert (first["method"], first["path"], first["query"], first["status"]) == ("GET", "/hello/", "n=7", 200)
    assert first["bytes_out"] == len(b"hello from daphne 7") and first["duration_ms"] > 0
    assert first["thread"] and first["ts"] > 0 and ["host", f"127.0.0.1:{_port(daphne)}"] in first["headers"]
    assert (second["path"], second["status"]) == ("/missing/", 404)
    assert events.state.status_counts() == {"2xx": 1, "4xx": 1}
    # Each came on its own connection, seen from accept to close.
    closed = wait_for(lambda: len(events.of("conn_close")) == 2 and events.of("conn_close"))
    assert {e["id"] for e in closed} == {first["conn"], second["conn"]}
    assert all(e["requests"] == 1 and e["bytes_in"] > 0 and e["bytes_out"] > 0 for e in closed)
    assert not events.of("error")


def test_websocket_echo_and_its_connection_row(daphne: Supervisor, events: Events) -> None:
    sock = ws_connect(_port(daphne), "/ws/echo/")
    try:
        ws_send(sock, 0x1, b"hi [/bar]")
        assert ws_recv(sock) == (0x1, b"echo: hi [/bar]")
        ws_send(sock, 0x1, b"again")
        assert ws_recv(sock) == (0x1, b"echo: again")

        def open_ws() -> list[ConnRow]:
            return [
                c
                for c in events.state.connections()
                if c.kind == "websocket" and c.state == "websocket" and c.messages_out == 2
            ]

        row = wait_for(open_ws)[0]
        assert (row.path, row.messages_in, row.messages_out) == ("/ws/echo/", 2, 2)
        from devconsole.ui.panels.sockets import state_cell

        assert state_cell(row) == ("websocket 2↓2↑", "sockets--handling")
        ws_send(sock, 0x8, struct.pack("!H", 1000))
        opcode, _ = ws_recv(sock)
        assert opcode == 0x8  # the server closes too
    finally:
        sock.close()
    closed = wait_for(lambda: [e for e in events.of("conn_close") if e.get("kind") == "websocket"])[0]
    assert (closed["messages_in"], closed["messages_out"], closed["path"]) == (2, 2, "/ws/echo/")
    assert closed["bytes_out"] > 0
    # No HTTP request row for the handshake: a WebSocket is a connection.
    assert not events.of("request")


def test_restart_keeps_the_socket_and_a_request_meanwhile_is_served(daphne: Supervisor, events: Events) -> None:
    port = _port(daphne)
    old = daphne.child
    daphne.restart()
    # Sent while generation 2 starts: waits in the backlog, then is served.
    assert _get(port, "/hello/") == (200, b"hello from daphne")
    wait_for(lambda: len(events.of("hello")) == 2)
    assert [e["generation"] for e in events.of("hello")] == [1, 2]
    assert old is not None and wait_for(lambda: old.process.returncode == 0)  # it drained, then exited
    wait_for(lambda: events.state.total_requests == 1)
    # restart() returned once the old one stopped listening: only the new
    # one can answer, and the request is counted once.
    (request,) = events.of("request")
    assert request["status"] == 200 and request["generation"] == 2


def test_stop_finishes_the_request_in_flight(channels_project: Project, events: Events) -> None:
    with serving(channels_project, events) as supervisor:
        port = _port(supervisor)
        child = supervisor.child
        slow = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        slow.request("GET", "/slow/?sleep=0.5")
        wait_for(lambda: [c for c in events.state.connections() if c.state == "handling"])
        supervisor.close()
    response = slow.getresponse()
    assert (response.status, response.read()) == (200, b"slow done")
    assert child.process.returncode == 0
    assert events.of("bye")[0]["in_flight"] == 0


def test_a_reload_forks_from_level_0_and_serves_the_edit(tmp_path: Path, events: Events) -> None:
    """A process with Daphne's reactor cannot be forked safely (its epoll and
    wake-up pipe would be shared): level 1 says so and the reload forks
    from level 0, whose child installs a reactor of its own."""
    if not hasattr(os, "fork"):
        pytest.skip("the fork server needs POSIX")
    from devconsole.console.session import wire

    root = tmp_path / "channels_project"
    shutil.copytree(PROJECT_DIR, root, ignore=shutil.ignore_patterns("__pycache__"))
    project = Project(root / "manage.py")
    sock = bind(ListenAddress("127.0.0.1", 0))
    port = sock.getsockname()[1]
    supervisor, reloader = wire(project, ListenAddress("127.0.0.1", port), sock, events)
    reloader.start()
    try:
        assert wait_for(lambda: _get(port, "/hello/")[0] == 200, timeout=30)
        # What the server imported (views included) is known before the edit.
        wait_for(lambda: any(str(root / "chatsite" / "views.py") in e["files"] for e in events.of("watch")), timeout=60)
        wait_for(lambda: reloader.watcher is not None and str(root / "chatsite") in reloader.watcher.roots, timeout=60)
        # ...and the kernel reports changes there (the watch renewed for those roots).
        wait_for(lambda: inotify_watches([root / "chatsite"]), timeout=60)
        views = root / "chatsite" / "views.py"
        views.write_text(views.read_text().replace("hello from daphne", "edited daphne"))
        wait_for(lambda: _get(port, "/hello/")[1] == b"edited daphne", timeout=30)
        reload = wait_for(lambda: events.of("reload") and events.of("reload")[-1])
        assert reload["decision"] == "restarted" and reload["error"] is None
        assert reload["via"] in ("level 0", "spawn")
        if reloader.level1 is not None and reloader.level1.ready:
            assert reloader.level1.ready["forkable"] is False and reloader.level1.ready["reactor"] is True
        # The WebSocket works in the new generation too.
        ws = ws_connect(port, "/ws/echo/")
        try:
            ws_send(ws, 0x1, b"after reload")
            assert ws_recv(ws) == (0x1, b"echo: after reload")
        finally:
            ws.close()
    finally:
        reloader.stop()
        supervisor.close()
