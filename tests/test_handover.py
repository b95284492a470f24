"""Idle keep-alive connections move to the next generation on a reload:
real server children (forked and spawned) of a copy of the demo project,
real keep-alive clients (http.client, wrk) on a loopback socket."""

from __future__ import annotations

import contextlib
import http.client
import os
import re
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from devconsole.console.listen import ListenAddress, bind
from devconsole.console.supervisor import MAX_DRAINING

from .conftest import Events, LiveConsole, live_console, wait_for

pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="the fork server needs POSIX")

VIEWS = """
import time

from django.http import HttpResponse, StreamingHttpResponse

VERSION = "v0"


def version(request):
    return HttpResponse(VERSION)


def events(request):
    count = int(request.GET.get("count", "5"))

    def stream():
        for i in range(count):
            yield f"data: {VERSION} {i}\\n\\n".encode()
            time.sleep(0.2)

    return StreamingHttpResponse(stream(), content_type="text/event-stream")
"""

URLS = """
from demosite import ho_views

urlpatterns += [
    path("ho/version/", ho_views.version),
    path("ho/events/", ho_views.events),
]
"""


@dataclass
class Console(LiveConsole):
    saves: list[str] = field(default_factory=list)

    def save(self, version: str) -> None:
        """Save the views with a new VERSION once the serving generation
        watches them; returns when the next generation serves."""
        # Under wrk the console may read its event pipe seconds behind (the
        # watch event queues behind thousands of request events); the
        # backlog is bounded by the load's duration.
        generation = self.save_version("demosite/ho_views.py", version, timeout=90)
        self.saves.append(version)
        wait_for(lambda: self.events.state.generation > generation, timeout=60)

    def request_total(self) -> int:
        return self.events.state.total_requests

    def old_generations_exited(self) -> bool:
        """Whether every generation that served before the serving one has
        exited: a request one of them cut is counted by then."""
        serving = self.events.state.generation
        served = {e["generation"] for e in self.events.of("hello") if e["generation"] < serving}
        return served <= {e["generation"] for e in self.events.of("exit")}


def _add_views(root: Path) -> None:
    (root / "demosite" / "ho_views.py").write_text(VIEWS)
    with (root / "demosite" / "urls.py").open("a") as urls:
        urls.write(URLS)


@pytest.fixture(params=["forked", "spawned"])
def console(request: pytest.FixtureRequest, tmp_path: Path, demo_db: Path) -> Iterator[Console]:
    with _console(tmp_path, demo_db, spawned=request.param == "spawned") as console:
        yield console


def _console(tmp_path: Path, demo_db: Path, *, spawned: bool, events: Events | None = None) -> Any:
    return live_console(tmp_path, demo_db, spawned=spawned, events=events, prepare=_add_views, console_class=Console)


def _get(conn: http.client.HTTPConnection, path: str) -> tuple[int, bytes]:
    conn.request("GET", path)
    response = conn.getresponse()
    return response.status, response.read()


def test_the_same_keep_alive_connection_is_served_by_the_new_code(console: Console) -> None:
    _same_connection_through_a_reload(console)


def _same_connection_through_a_reload(console: Console) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", console.port, timeout=30)
    try:
        assert _get(conn, "/ho/version/") == (200, b"v0")
        sock = conn.sock
        assert sock is not None, "the response closed the connection: no keep-alive to test"
        console.save("v1")
        # The old generation exits (its idle connection moved, not closed).
        wait_for(lambda: [e for e in console.events.of("exit") if e["generation"] == 1], timeout=30)
        assert _get(conn, "/ho/version/") == (200, b"v1")
        assert conn.sock is sock, "http.client reconnected: the connection was closed"
    finally:
        conn.close()
    closes = [e for e in console.events.of("conn_close") if e["generation"] == 1 and e.get("handover")]
    assert len(closes) == 1, console.events.of("conn_close")
    wait_for(lambda: len([e for e in console.events.of("request") if e["path"] == "/ho/version/"]) == 2)
    second = [e for e in console.events.of("request") if e["path"] == "/ho/version/"]
    assert [e["generation"] for e in second] == [1, 2]
    assert console.supervisor.handovers_forwarded == 1
    # One TCP connection, counted once across both generations; its row
    # carries on (requests served, when it opened), not a new connection.
    wait_for(lambda: console.events.state.total_connections == 1)
    first = [e for e in console.events.of("conn_open") if e["generation"] == 1][0]
    # Its first event in generation 2 (a conn_close alone if it closed before a flush).
    adopted = wait_for(
        lambda: [e for e in console.events.of("conn_open") + console.events.of("conn_close") if e["generation"] == 2]
    )[0]
    assert adopted["ts"] == first["ts"] and adopted["requests"] >= 1, (first, adopted)


def test_a_busy_connection_finishes_its_request_then_moves(console: Console) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", console.port, timeout=30)
    try:
        assert _get(conn, "/ho/version/") == (200, b"v0")
        sock = conn.sock
        assert sock is not None
        conn.request("GET", "/slow/?sleep=2")
        wait_for(lambda: any(row.generation == 1 for row in console.events.state.in_flight()))
        console.save("v1")  # returns once generation 2 serves; the slow one still runs on 1
        response = conn.getresponse()
        assert (response.status, response.read()) == (200, b"slept 2 s\n")
        assert _get(conn, "/ho/version/") == (200, b"v1")
        assert conn.sock is sock
    finally:
        conn.close()
    rows = wait_for(lambda: [e for e in console.events.of("request") if e["path"] in ("/slow/", "/ho/version/")][2:])
    done = [(e["path"], e["generation"]) for e in console.events.of("request") if e["path"] != "/favicon.ico"]
    assert done == [("/ho/version/", 1), ("/slow/", 1), ("/ho/version/", 2)], (done, rows)
    assert console.events.state.cut_requests == 0


def test_a_request_sent_after_the_reload_never_reaches_the_old_code(console: Console) -> None:
    """The old generation obeys ``stop`` on a thread of its own, which a
    loaded machine may run late: the next generation must not serve before
    it said it reads nothing more, or a request sent then reaches old code."""
    conn = http.client.HTTPConnection("127.0.0.1", console.port, timeout=30)
    try:
        assert _get(conn, "/ho/version/") == (200, b"v0")
        sock = conn.sock
        old = console.supervisor.child
        assert old is not None
        wait_for(lambda: [e for e in console.events.of("watch") if e["generation"] == old.generation], timeout=30)
        # Frozen, it cannot obey the stop: the machine's stand-in for a
        # scheduler that runs it late (thawed from another thread meanwhile).
        os.kill(old.pid, signal.SIGSTOP)
        thaw = threading.Timer(1.5, os.kill, (old.pid, signal.SIGCONT))
        thaw.start()
        try:
            console.save("v1")
        finally:
            thaw.join()
        assert _get(conn, "/ho/version/") == (200, b"v1")
        assert conn.sock is sock
    finally:
        conn.close()
    served = wait_for(lambda: [e for e in console.events.of("request") if e["path"] == "/ho/version/"][1:])
    assert served[0]["generation"] == old.generation + 1


class Client(threading.Thread):
    """Keep-alive GETs on one connection until told to stop; counts them."""

    def __init__(self, port: int) -> None:
        super().__init__(daemon=True)
        self.port = port
        self.done = 0
        self.failures: list[str] = []
        self.reconnects = 0
        self.stop = threading.Event()
        self.start()

    def run(self) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        sock = None
        while not self.stop.is_set():
            try:
                status, _ = _get(conn, "/ho/version/")
            except (OSError, http.client.HTTPException) as exc:
                self.failures.append(f"{type(exc).__name__}: {exc}")
                conn.close()
                continue
            if sock is not None and conn.sock is not sock:
                self.reconnects += 1
            sock = conn.sock
            if status == 200:
                self.done += 1
            else:
                self.failures.append(f"status {status}")
        conn.close()


def test_keep_alive_clients_through_reloads_lose_nothing(console: Console) -> None:
    clients = [Client(console.port) for _ in range(4)]
    try:
        wait_for(lambda: all(c.done > 10 for c in clients))
        for n in range(1, 6):
            before = [c.done for c in clients]
            console.save(f"v{n}")
            # Each client goes on after the reload (on the new generation).
            wait_for(lambda before=before: all(c.done > done + 10 for c, done in zip(clients, before, strict=True)))
    finally:
        for client in clients:
            client.stop.set()
        for client in clients:
            client.join(30)
    assert [c.failures for c in clients] == [[], [], [], []]
    assert [c.reconnects for c in clients] == [0, 0, 0, 0]
    sent = sum(c.done for c in clients)
    wait_for(lambda: console.request_total() == sent, timeout=30)
    wait_for(console.old_generations_exited)
    assert console.events.state.cut_requests == 0


COUNT_LUA = Path(__file__).resolve().parent.parent / "bench" / "count.lua"


def _wrk(port: int, load_s: int) -> subprocess.Popen[str]:
    """wrk -c50 that sends for ``load_s`` and then only reads (bench/count.lua
    counts what it sent: every request sent reaches the server when nothing
    fails, so the console's total must equal it)."""
    # --timeout 30s: wrk counts an answer that took longer as a socket error
    # ("timeout"). Under this saturation the 50 connections an old
    # generation hands over are adopted one thread start at a time, each
    # waiting its turn for the GIL behind the requests already running: 2–3 s
    # for the last one here, and over 10 s once on a slower CI machine. A
    # request that fails (connect, read, write, non-2xx) is what is counted.
    return subprocess.Popen(
        ["wrk", "-t2", "-c50", f"-d{load_s + 60}s", "--timeout", "30s", "-s", str(COUNT_LUA)]
        + [f"http://127.0.0.1:{port}/ho/version/", "--", "0", str(load_s)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def parse_wrk(output: str) -> tuple[int, int, int]:
    """``(requests sent, socket errors, non-2xx)`` from wrk's report."""
    sent = re.search(r"devconsole-bench sent=(\d+) received=(\d+)", output)
    assert sent is not None, output
    errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output)
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    socket_errors = sum(int(g) for g in errors.groups()) if errors else 0
    return int(sent.group(1)), socket_errors, int(non2xx.group(1)) if non2xx else 0


@pytest.mark.skipif(shutil.which("wrk") is None, reason="wrk is not installed (apt-get install wrk)")
def test_wrk_through_ten_reloads_has_no_socket_errors(console: Console) -> None:
    before = console.request_total()
    wrk = _wrk(console.port, 25)
    sending_until = time.monotonic() + 25
    try:
        wait_for(lambda: console.request_total() > before + 100, timeout=30)
        for n in range(1, 11):
            console.save(f"w{n}")
        # Once wrk has stopped sending and everything sent is answered, it
        # is interrupted (it prints its report then).
        quiet = {"total": -1, "since": time.monotonic()}

        def settled() -> bool:
            total = console.request_total()
            if total != quiet["total"]:
                quiet["total"], quiet["since"] = total, time.monotonic()
            # Not a pause while a reload waits for its new generation: wrk
            # must be done sending.
            return time.monotonic() > sending_until and time.monotonic() - quiet["since"] > 1.5

        wait_for(settled, timeout=90, interval=0.1)
        wrk.send_signal(signal.SIGINT)
        output, _ = wrk.communicate(timeout=30)
    finally:
        if wrk.poll() is None:
            wrk.kill()
            wrk.wait()
    sent, socket_errors, non2xx = parse_wrk(output)
    reloads = [(e.get("new_generation"), e.get("duration_ms"), e.get("phases")) for e in console.events.of("reload")]
    assert (socket_errors, non2xx) == (0, 0), (output, reloads)
    with contextlib.suppress(AssertionError):
        wait_for(lambda: console.request_total() - before == sent, timeout=10)
    exits = [(e["generation"], e["returncode"], e.get("cut")) for e in console.events.of("exit")]
    last_stats = {e["generation"]: e["requests"] for e in console.events.of("stats")}
    assert console.request_total() - before == sent, (output, exits, last_stats, before)
    wait_for(console.old_generations_exited)
    assert console.events.state.cut_requests == 0


def test_a_stream_through_a_reload_finishes_on_the_old_generation(console: Console) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", console.port, timeout=30)
    try:
        conn.request("GET", "/ho/events/?count=25")
        response = conn.getresponse()
        first = response.fp.readline()
        assert first == b"data: v0 0\n"
        console.save("v1")
        body = first + response.read()
    finally:
        conn.close()
    assert body.count(b"data: v0 ") == 25, body  # to its end, old code throughout
    rows = wait_for(lambda: [e for e in console.events.of("request") if e["path"] == "/ho/events/"], timeout=30)
    assert [(e["generation"], e["status"]) for e in rows] == [(1, 200)]
    assert console.events.state.cut_requests == 0


class GatedEvents(Events):
    """Events whose reading stalls for the generations in ``gated`` until
    ``gate`` opens: a console whose readers lag behind old generations.
    An ``exit`` is not held: the supervisor must not send it before the
    generation's last events."""

    def __init__(self) -> None:
        super().__init__()
        self.gated: set[int] = set()
        self.gate = threading.Event()

    def __call__(self, event: dict[str, Any]) -> None:
        if event.get("generation") in self.gated and event["type"] != "exit":
            self.gate.wait(120)
        super().__call__(event)


def test_old_generations_a_lagging_console_still_reads_are_not_cut(tmp_path: Path, demo_db: Path) -> None:
    """More than MAX_DRAINING old generations stay alive only to write what
    they counted to a console that reads slowly: none is cut, nothing is lost."""
    events = GatedEvents()
    sent = 0
    with _console(tmp_path, demo_db, spawned=False, events=events) as console:
        try:
            conn = http.client.HTTPConnection("127.0.0.1", console.port, timeout=30)
            for n in range(1, MAX_DRAINING + 3):
                # Enough request events to fill the event pipe (64 KiB):
                # the generation cannot exit until the console reads them.
                for _ in range(400):
                    assert _get(conn, "/ho/version/")[0] == 200
                    sent += 1
                generation = console.events.state.generation
                wait_for(lambda g=generation: [e for e in events.of("watch") if e["generation"] == g], timeout=30)
                events.gated.add(generation)
                console.save(f"g{n}")
            conn.close()
            draining = list(console.supervisor.draining)
            assert len(draining) > MAX_DRAINING
            assert all(handle.alive for handle in draining[:2])
        finally:
            events.gate.set()
        wait_for(lambda: console.request_total() == sent, timeout=60)
        wait_for(lambda: not console.supervisor.draining, timeout=60)
        assert [e.get("cut") for e in events.of("exit")] == [None] * len(events.of("exit"))
        assert console.events.state.cut_requests == 0
        # Each generation's exit came after all its events.
        with events._lock:
            items = list(events.items)
        for generation in events.gated:
            mine = [e["type"] for e in items if e.get("generation") == generation and e["type"] != "log"]
            assert mine[-1] == "exit", (generation, mine[-5:])


class _KeepAliveHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, like Django's handler

    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, format: str, *args: Any) -> None:
        pass


@dataclass
class _Served:
    """An instrumented server in this process, with a handover whose
    console end is ``console``."""

    address: tuple[str, int]
    observer: Any
    handover: Any
    console: Any


@contextlib.contextmanager
def _instrumented(handler: type[BaseHTTPRequestHandler]) -> Iterator[_Served]:
    import socket

    from devconsole.child.handover import ConnectionHandover
    from devconsole.child.instrument import ServerObserver, instrument_server

    listen = bind(ListenAddress("127.0.0.1", 0))
    observer = ServerObserver()
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    observer.handover = ConnectionHandover(ours)
    server = instrument_server(ThreadingHTTPServer, listen.fileno(), observer)(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield _Served(listen.getsockname(), observer, observer.handover, theirs)
    finally:
        server.shutdown()
        thread.join(10)
        server.server_close()
        listen.close()
        ours.close()
        theirs.close()


def _read_responses(client: Any, count: int) -> bytes:
    received = b""
    while received.count(b"\r\n\r\nok") < count:
        chunk = client.recv(65536)
        assert chunk, received
        received += chunk
    return received


def test_a_pipelined_request_already_read_into_the_buffer_is_served_at_once() -> None:
    """Two requests in one packet: the second sits in the handler's buffer,
    not in the kernel, and the wait for it must see that (a poll alone would
    wait forever)."""
    import socket

    with _instrumented(_KeepAliveHandler) as served:
        client = socket.create_connection(served.address, timeout=10)
        with client:
            for _ in range(3):  # the buffer check holds request after request
                client.sendall(b"GET /a HTTP/1.1\r\nHost: x\r\n\r\nGET /b HTTP/1.1\r\nHost: x\r\n\r\n")
                _read_responses(client, 2)
        wait_for(lambda: served.observer.requests_total == 6, timeout=10)


def test_bytes_waiting_in_the_kernel_are_seen_without_reading_them() -> None:
    """A kept-alive connection's next request, already in the kernel, lets
    the handler read it without a poll first; looking reads nothing."""
    import socket

    from devconsole.child.handover import _KernelQueue

    listen = bind(ListenAddress("127.0.0.1", 0))
    try:
        client = socket.create_connection(listen.getsockname(), timeout=10)
        served, _ = listen.accept()
        with client, served:
            served.settimeout(10)
            queue = _KernelQueue(served.fileno())
            assert not queue.has_bytes()
            client.sendall(b"GET / HTTP/1.1\r\n\r\n")
            wait_for(queue.has_bytes, timeout=10)
            assert served.recv(100) == b"GET / HTTP/1.1\r\n\r\n"
            assert not queue.has_bytes()
            client.close()  # end of stream: nothing to read, the poll says so
            assert served.recv(100) == b""
            assert not queue.has_bytes()
    finally:
        listen.close()


def test_requests_one_after_the_other_are_read_whole_after_the_poll() -> None:
    """Each next request arrives while its thread waits (in the poll, or
    about to: the kernel holds nothing yet) and is read whole, on the same
    connection, counted once."""
    import socket

    with _instrumented(_KeepAliveHandler) as served:
        client = socket.create_connection(served.address, timeout=10)
        with client:
            for n in range(1, 6):
                # Sent once the thread is back waiting (the response is out,
                # the connection idle): the bytes come after the poll began.
                wait_for(lambda n=n: served.observer.requests_total == n - 1, timeout=10)
                client.sendall(b"GET /" + b"x" * 5000 + b" HTTP/1.1\r\nHost: x\r\n\r\n")
                _read_responses(client, 1)
        wait_for(lambda: served.observer.requests_total == 5, timeout=10)
        paths = [event["path"] for event in served.observer.requests]
        assert paths == ["/" + "x" * 5000] * 5


def test_a_stop_moves_a_connection_whose_next_request_already_waits_in_the_kernel() -> None:
    """The stop wins over a request already sent: the connection moves with
    its bytes unread, for the next generation to serve with the new code."""
    import socket

    from devconsole.wire import control

    release = threading.Event()
    entered = threading.Event()

    class Handler(_KeepAliveHandler):
        def do_GET(self) -> None:
            if self.path == "/slow":
                entered.set()
                release.wait(10)
            super().do_GET()

    moved: socket.socket | None = None
    with _instrumented(Handler) as served:
        try:
            client = socket.create_connection(served.address, timeout=10)
            with client:
                client.sendall(b"GET /slow HTTP/1.1\r\nHost: x\r\n\r\n")
                assert entered.wait(10)
                client.sendall(b"GET /next HTTP/1.1\r\nHost: x\r\n\r\n")  # waits in the kernel
                served.handover.stop()
                release.set()
                _read_responses(client, 1)
                served.console.settimeout(10)
                message = control.receive(served.console)
                assert message is not None and message[0] == "handover" and len(message[2]) == 1, message
                moved = socket.socket(fileno=message[2][0])
                moved.settimeout(10)
                assert moved.recv(100) == b"GET /next HTTP/1.1\r\nHost: x\r\n\r\n"
            wait_for(lambda: served.observer.requests_total == 1, timeout=10)
            wait_for(lambda: served.handover.handed_over == 1, timeout=10)  # counted after the send
        finally:
            release.set()
            if moved is not None:
                moved.close()
