"""The server child on the demo project: real process, real sockets, real requests."""

from __future__ import annotations

import http.client
import os
import socket
import threading
from types import SimpleNamespace

import pytest

from devconsole.child.instrument import Connection, ServerObserver
from devconsole.console.project import Project
from devconsole.console.supervisor import Supervisor

from .conftest import Events, make_project, new_supervisor, serving, wait_for


def _port(server: Supervisor) -> int:
    return server.socket.getsockname()[1]


def _get(port: int, path: str, *, close: bool = False) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    conn.request("GET", path, headers={"Connection": "close"} if close else {})
    response = conn.getresponse()
    body = response.read()
    conn.close()
    return response.status, body


def test_hello_describes_the_runserver_that_won(server: Supervisor, events: Events) -> None:
    hello = events.of("hello")[0]
    runserver = hello["runserver"]
    # staticfiles' runserver shadows core's, exactly as manage.py resolves it.
    assert runserver["app"] == "django.contrib.staticfiles"
    assert runserver["class"] == "django.contrib.staticfiles.management.commands.runserver.Command"
    assert "django.core.management.commands.runserver.Command" in runserver["mro"]
    assert runserver["shadows"] == ["django.core"]
    assert hello["settings"] == "demosite.settings"
    assert hello["listen"]["port"] == _port(server)
    names = [phase["name"] for phase in hello["phases"]]
    assert names[:4] == ["manage.py", "settings import", "django.setup()", 'fetch_command("runserver")']
    assert all(phase["ms"] >= 0 for phase in hello["phases"])
    # The server class is the one basehttp.run builds: ThreadingMixIn first.
    assert hello["server"][1] == "socketserver.ThreadingMixIn"
    # The handler named is the one runserver serves with, not devconsole's subclass.
    assert hello["handler"] == "django.core.servers.basehttp.WSGIRequestHandler"
    assert hello["pid"] != os.getpid()


def test_keep_alive_requests_share_one_connection(server: Supervisor, events: Events) -> None:
    port = _port(server)
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    for _ in range(3):
        conn.request("GET", "/ping/?n=1")
        response = conn.getresponse()
        assert response.read() == b"pong"
    # While the client holds the connection, it is idle between requests.
    wait_for(lambda: [c for c in events.state.connections() if c.requests == 3 and c.state == "idle"])
    conn.close()
    wait_for(lambda: events.of("conn_close"))
    requests = wait_for(lambda: len(events.of("request")) == 3 and events.of("request"))
    assert {r["conn"] for r in requests} == {events.of("conn_open")[0]["id"]}
    assert [r["id"] for r in requests] == [f"{requests[0]['conn']}.{n}" for n in (1, 2, 3)]
    assert all(r["method"] == "GET" and r["path"] == "/ping/" and r["query"] == "n=1" for r in requests)
    assert all(r["status"] == 200 and r["bytes_out"] == 4 for r in requests)
    closed = events.of("conn_close")
    assert len(closed) == 1 and closed[0]["requests"] == 3
    assert closed[0]["bytes_out"] > 3 * 4  # headers and bodies
    assert closed[0]["bytes_in"] == sum(
        len(f"GET /ping/?n=1 HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nAccept-Encoding: identity\r\n\r\n") for _ in range(3)
    )


def test_statuses_static_files_and_connection_lifecycle(server: Supervisor, events: Events) -> None:
    port = _port(server)
    assert _get(port, "/", close=True)[0] == 200
    status, body = _get(port, "/static/shop/site.css", close=True)
    assert status == 200 and body  # served by staticfiles' handler
    assert _get(port, "/no-such-page/", close=True)[0] == 404
    assert _get(port, "/boom/", close=True)[0] == 500
    wait_for(lambda: events.state.total_requests == 4)
    wait_for(lambda: len(events.of("conn_close")) == 4)
    by_path = {r["path"]: r for r in events.of("request")}
    assert {p: r["status"] for p, r in by_path.items()} == {
        "/": 200,
        "/static/shop/site.css": 200,
        "/no-such-page/": 404,
        "/boom/": 500,
    }
    assert all(r["duration_ms"] > 0 and r["thread"].startswith("Thread-") for r in by_path.values())
    assert events.state.status_counts() == {"2xx": 2, "4xx": 1, "5xx": 1}
    # One connection per request, each closed after one request (one opened
    # and closed between two flushes is reported by its conn_close alone).
    closed = {e["id"]: e for e in events.of("conn_close")}
    assert len(closed) == 4 and {e["id"] for e in events.of("conn_open")} <= set(closed)
    assert all(e["requests"] == 1 and e["bytes_out"] > 0 for e in closed.values())
    # The select loop accepted exactly those connections.
    wait_for(lambda: events.state.loop.ready_total >= 4)
    loop = events.of("loop")
    assert sum(e["accepts"] for e in loop) == 4
    assert sum(e["iterations"] for e in loop) >= sum(e["ready"] for e in loop)
    assert all(e["poll_interval"] == 0.5 for e in loop)
    # What the project logs reaches the console as log events.
    # runserver's request line is in the console's log, written from the
    # request event: the child no longer formats, writes and pipes it.
    wait_for(lambda: any('"GET /boom/ HTTP/1.1" 500' in line.text for line in events.state.log))
    assert not any('"GET /boom/ HTTP/1.1"' in e["text"] for e in events.of("log"))
    assert events.of("hello")[0]["request_log"] == "events"
    assert any("RuntimeError" in e["text"] for e in events.of("log") if e["stream"] == "stderr")


def _wakeups(pid: int) -> int:
    """Context switches of every thread of ``pid`` so far: each is a wake-up."""
    total = 0
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{tid}/status") as handle:
                total += sum(int(line.split()[1]) for line in handle if "ctxt_switches:" in line)
        except OSError:
            pass  # a thread that ended meanwhile
    return total


@pytest.mark.skipif(not os.path.isdir("/proc/self/task"), reason="reads wake-ups from /proc (Linux)")
def test_an_idle_server_child_sleeps_until_a_connection(server: Supervisor, events: Events) -> None:
    """runserver's ``serve_forever`` wakes every poll interval (0.5 s) and the
    flusher used to every 50 ms; the child's loop and its flusher sleep until
    something happens."""
    port = _port(server)
    assert _get(port, "/ping/", close=True)[0] == 200
    wait_for(lambda: events.of("checks") and events.of("watch") and events.of("conn_close"))
    pid = server.child.process.pid
    loops, before = len(events.of("loop")), _wakeups(pid)
    # Observed for a second (not a wait for something): the old loop timed
    # out twice in that time, and each time sent a loop event.
    threading.Event().wait(1.0)
    assert len(events.of("loop")) == loops
    assert _wakeups(pid) - before <= 2
    assert _get(port, "/ping/", close=True)[0] == 200
    loop = wait_for(lambda: events.of("loop")[loops:])
    assert sum(e["ready"] for e in loop) == 1 and sum(e["timeouts"] for e in loop) == 0


def test_checks_run_after_serving(server: Supervisor, events: Events) -> None:
    checks = wait_for(lambda: events.of("checks"))[0]
    assert checks["error"] is None
    assert checks["messages"] == []
    assert checks["migrations"] == 0


def test_stop_leaves_no_process_and_frees_the_port(demo_project: Project, events: Events) -> None:
    with serving(demo_project, events) as supervisor:
        port = _port(supervisor)
        child = supervisor.child
        pid = child.process.pid
        # A request in flight when the stop comes is finished, not cut off.
        slow = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        slow.request("GET", "/slow/?sleep=0.5")
        wait_for(lambda: [c for c in events.state.connections() if c.state == "handling"])
        supervisor.close()
    response = slow.getresponse()
    assert response.status == 200
    assert child.process.returncode == 0
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        pass
    else:
        raise AssertionError(f"server child {pid} still exists")
    with socket.socket() as probe:
        # Nothing listens there any more (SO_REUSEADDR, as runserver binds,
        # still fails while a socket is listening on the port).
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        probe.bind(("127.0.0.1", port))
        probe.listen()
    assert events.of("bye") and events.of("exit")[-1]["returncode"] == 0


def test_restart_keeps_the_socket_and_refuses_nothing(server: Supervisor, events: Events) -> None:
    port = _port(server)
    server.restart()
    # Requests sent while the next child starts wait in the backlog.
    assert _get(port, "/ping/", close=True) == (200, b"pong")
    wait_for(lambda: len(events.of("hello")) == 2)
    assert [e["generation"] for e in events.of("hello")] == [1, 2]
    wait_for(lambda: events.state.total_requests == 1)


def test_broken_settings_serve_an_error_page(tmp_path, events: Events) -> None:
    project = make_project(tmp_path, "brokensite", "raise ValueError('settings are broken [/bar]')\n")
    supervisor = new_supervisor(project, events)
    port = _port(supervisor)
    try:
        supervisor.start()
        status, body = _get(port, "/", close=True)
        assert status == 500
        assert b"settings are broken [/bar]" in body and b"brokensite.py" in body
        error = wait_for(lambda: events.of("error"))[0]
        assert error["phase"] == "settings import"
        assert error["message"] == "ValueError: settings are broken [/bar]"
        assert events.state.status == "error"
        # The error page's requests are still observed.
        wait_for(lambda: events.state.total_requests == 1)
    finally:
        supervisor.close()


def test_output_without_newlines_is_read_in_bounded_pieces(tmp_path, events: Events) -> None:
    project = make_project(
        tmp_path,
        "chatty",
        "import sys\n"
        "sys.stdout.write('x' * 3_000_000)\n"  # three megabytes, no newline
        "DEBUG = True\nSECRET_KEY = 'k'\nROOT_URLCONF = 'chatty'\nALLOWED_HOSTS = ['*']\n"
        "INSTALLED_APPS = []\nurlpatterns = []\n",
    )
    supervisor = new_supervisor(project, events)
    try:
        child = supervisor.start()
        assert child.hello.wait(30)
        from devconsole.console.supervisor import MAX_LOG_LINE

        def pieces() -> list[dict]:
            return [e for e in events.of("log") if e["text"].startswith("x")]

        wait_for(lambda: len(pieces()) >= 3_000_000 // MAX_LOG_LINE)
        assert all(len(e["text"]) <= 4097 for e in pieces())  # each piece cut for display too
    finally:
        supervisor.close()


def _logging_project(tmp_path, name: str, logging_source: str) -> Project:
    return make_project(
        tmp_path,
        name,
        "DEBUG = True\nSECRET_KEY = 'k'\nALLOWED_HOSTS = ['*']\nINSTALLED_APPS = []\n"
        f"ROOT_URLCONF = {name!r}\n"
        "from django.http import HttpResponse\nfrom django.urls import path\n"
        "urlpatterns = [path('ok/', lambda request: HttpResponse('ok'))]\n" + logging_source,
    )


def test_a_project_log_file_still_gets_every_request_line(tmp_path, events: Events) -> None:
    """The console writes runserver's request line itself; a handler of the
    project's own (here a file) keeps receiving it from the server."""
    log_file = tmp_path / "server.log"
    project = _logging_project(
        tmp_path,
        "filelog",
        "LOGGING = {'version': 1, 'disable_existing_loggers': False,\n"
        " 'formatters': {'plain': {'format': '{levelname} {message}', 'style': '{'}},\n"
        f" 'handlers': {{'file': {{'class': 'logging.FileHandler', 'filename': {str(log_file)!r}, 'formatter': 'plain'}}}},\n"
        " 'loggers': {'django.server': {'handlers': ['file'], 'level': 'INFO', 'propagate': False}}}\n",
    )
    with serving(project, events) as supervisor:
        port = _port(supervisor)
        assert _get(port, "/ok/", close=True) == (200, b"ok")
        assert _get(port, "/missing/", close=True)[0] == 404
        wait_for(lambda: events.state.total_requests == 2)
        supervisor.close()
        lines = log_file.read_text().splitlines()
        assert [line.split('"')[1] for line in lines] == ["GET /ok/ HTTP/1.1", "GET /missing/ HTTP/1.1"]
        assert lines[0].startswith("INFO ") and lines[0].endswith(" 200 2")
        assert lines[1].startswith("WARNING ") and " 404 " in lines[1]
        # Like runserver's terminal, the console's log shows what this
        # LOGGING writes to the streams: no request line.
        assert not [line.text for line in events.state.log if '"GET /' in line.text]


def test_the_default_request_line_is_shown_once(server: Supervisor, events: Events) -> None:
    assert _get(_port(server), "/ping/", close=True) == (200, b"pong")
    wait_for(lambda: events.state.total_requests == 1)
    # A second request whose handler writes to the child's stderr (Django's
    # "Not Found" warning) after the first one was answered: the console reads
    # stderr in order, so once that line is in, any line the first request
    # wrote there is in too.
    assert _get(_port(server), "/no-such-page/", close=True)[0] == 404
    wait_for(lambda: [line for line in events.state.log if "Not Found: /no-such-page/" in line.text])
    shown = [line.text for line in events.state.log if "/ping/" in line.text]
    assert len(shown) == 1 and shown[0].endswith('"GET /ping/ HTTP/1.1" 200 4'), shown


def _read_response(sock: socket.socket) -> bytes:
    """One whole response (headers and a Content-Length body) from ``sock``."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        assert chunk, f"connection closed mid-response: {data!r}"
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = next(
        (int(line.split(b":")[1]) for line in head.split(b"\r\n") if line.lower().startswith(b"content-length:")), 0
    )
    while len(body) < length:
        chunk = sock.recv(65536)
        assert chunk, f"connection closed mid-body: {body!r}"
        body += chunk
    return head + b"\r\n\r\n" + body


def test_a_response_leaves_in_one_piece_and_nothing_waits(server: Supervisor, events: Events) -> None:
    """Each response is one send (status line, headers and body together),
    and a response with no body, a HEAD, is not held back on a keep-alive
    connection."""
    with socket.create_connection(("127.0.0.1", _port(server)), timeout=30) as sock:
        sock.sendall(b"GET /ping/ HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        first = sock.recv(65536)  # woken by the first segment that arrives
        assert first.startswith(b"HTTP/1.1 200 OK\r\n") and first.endswith(b"\r\n\r\npong"), first
        sock.sendall(b"HEAD /ping/ HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        head = sock.recv(65536)
        assert head.startswith(b"HTTP/1.1 200 OK\r\n") and head.endswith(b"\r\n\r\n"), head
        sock.sendall(b"GET /ping/ HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        assert _read_response(sock).endswith(b"pong")
    wait_for(lambda: events.state.total_requests == 3)
    assert [(r.method, r.status) for r in events.state.requests] == [("GET", 200), ("HEAD", 200), ("GET", 200)]
    # Byte counts are those of what was sent.
    wait_for(
        lambda: events.state.connections() and events.state.connections()[0].bytes_out == len(first) * 2 + len(head)
    )


def test_100_continue_is_sent_before_the_body_is_read(server: Supervisor, events: Events) -> None:
    with socket.create_connection(("127.0.0.1", _port(server)), timeout=30) as sock:
        sock.sendall(
            b"POST /ping/ HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/x-www-form-urlencoded\r\n"
            b"Content-Length: 7\r\nExpect: 100-continue\r\n\r\n"
        )
        assert sock.recv(65536) == b"HTTP/1.1 100 Continue\r\n\r\n"  # not after a wait for the body
        sock.sendall(b"a=1&b=2")
        final = _read_response(sock)
        assert final.split(b"\r\n")[0] == b"HTTP/1.1 403 Forbidden"  # the CSRF check read the form
    wait_for(lambda: events.state.total_requests == 1)
    assert events.state.requests[0].status == 403


def test_a_bad_request_line_is_its_own_row_and_the_https_hint_is_logged(server: Supervisor, events: Events) -> None:
    with socket.create_connection(("127.0.0.1", _port(server)), timeout=30) as sock:
        sock.sendall(b"GET /ping/ HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        assert _read_response(sock).endswith(b"pong")
        sock.sendall(b"GET /x HTTP/9.9\r\n\r\n")
        answer = b""
        while chunk := sock.recv(65536):  # http.server answers a bad version as HTTP/0.9: body, then close
            answer += chunk
        assert b"Error code: 505" in answer
    # A TLS hello on the plain-HTTP port: Django explains it in the log.
    with socket.create_connection(("127.0.0.1", _port(server)), timeout=30) as sock:
        sock.sendall(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03 x\r\n\r\n")
        sock.recv(65536)
    wait_for(lambda: events.state.total_requests == 3)
    rows = list(events.state.requests)
    assert (rows[0].path, rows[0].status) == ("/ping/", 200)
    assert rows[1].status == 505 and rows[1].path == "GET /x HTTP/9.9" and rows[1].headers == []  # as received
    wait_for(lambda: any("accessing the development server over HTTPS" in line.text for line in events.state.log))


class _Traffic(ServerObserver):
    """A generation's observer, saying when the checks' wait looked at it:
    one connection waits for its next request (a page's keep-alive one),
    another is in the middle of a request."""

    def __init__(self) -> None:
        super().__init__()
        self.looked = threading.Semaphore(0)
        for number, state in ((1, "reading"), (2, "handling")):
            conn = self.conns[number] = Connection(number, f"127.0.0.1:{40000 + number}")
            conn.state = state

    def handling(self) -> int:
        self.looked.release()
        return super().handling()


def test_the_checks_wait_for_a_request_under_way_to_end() -> None:
    """After a reload the pages fetch their stylesheets: the checks, which
    would take the interpreter's lock from them, wait for a quiet moment
    (a connection only waiting for its next request is quiet)."""
    import time

    from devconsole.child import server as child_server

    traffic = _Traffic()
    process = SimpleNamespace(observer=traffic)
    waiter = threading.Thread(target=child_server.ServerProcess._wait_quiet, args=(process, time.monotonic() + 60))
    waiter.start()
    for _ in range(2):  # it looked twice and still waits: a request is under way
        assert traffic.looked.acquire(timeout=30)
    assert waiter.is_alive()
    traffic.conns[2].state = "idle"  # answered: the other one still waits for a request
    waiter.join(30)
    assert not waiter.is_alive()


def test_the_checks_run_on_a_server_that_is_never_quiet() -> None:
    import time

    from devconsole.child import server as child_server

    traffic = _Traffic()  # a request under way for ever
    started = time.monotonic()
    child_server.ServerProcess._wait_quiet(SimpleNamespace(observer=traffic), started + 0.2)
    assert traffic.handling() == 1 and time.monotonic() >= started + 0.2


def test_the_reports_after_the_first_response_wait_for_a_request_under_way_to_end(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The reports a generation makes once it answered (the ``watch`` event
    and the modules the next spare imports ahead) list every imported
    module: like the checks, they wait for the page's other requests."""
    import sys

    from devconsole.child import server as child_server

    monkeypatch.setattr(child_server, "CHECKS_QUIET_MAX_S", 60.0)  # no deadline to race on a loaded machine
    traffic = _Traffic()
    traffic.first_request.set()
    sent: list[dict[str, object]] = []
    reported = threading.Event()
    process = SimpleNamespace(
        observer=traffic,
        _switch_interval=sys.getswitchinterval(),
        _to_reap=[],
        args=SimpleNamespace(runserver_arg=["--skip-checks"], manage="/nonexistent/manage.py"),
        emitter=SimpleNamespace(send=sent.append),
        _report_modules=reported.set,
    )
    process._wait_quiet = lambda deadline: child_server.ServerProcess._wait_quiet(process, deadline)
    after = threading.Thread(target=child_server.ServerProcess._after_serving, args=(process,), daemon=True)
    after.start()
    for _ in range(2):  # it looked twice and still waits: a request is under way
        assert traffic.looked.acquire(timeout=30)
    assert not sent and not reported.is_set()
    traffic.conns[2].state = "idle"
    after.join(30)
    assert not after.is_alive()
    assert reported.is_set() and len(sent) == 1  # the watch event (or the error that stood for it)
