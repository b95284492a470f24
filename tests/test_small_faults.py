"""Small faults: the Log view in time order, a garbage request line shown as
runserver logs it, and a command that wanted input told where to run it."""

from __future__ import annotations

import http.client
import socket
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from textual.binding import Binding

from devconsole.commands.runner import INPUT_HINT, CommandRunner, RunStatus
from devconsole.console.project import Project
from devconsole.console.supervisor import Supervisor
from devconsole.model.state import ServerState
from devconsole.ui.app import DevConsoleApp
from devconsole.ui.screens.logview import LogPane, LogScreen

from .conftest import Events, make_project, request_event, serving, until, wait_for

SIZE = (160, 30)


def _printing_project(tmp_path: Path) -> Project:
    return make_project(
        tmp_path,
        "printsite",
        "import sys\n"
        "DEBUG = True\nSECRET_KEY = 'k'\nALLOWED_HOSTS = ['*']\nINSTALLED_APPS = []\n"
        "ROOT_URLCONF = 'printsite'\n"
        "from django.http import HttpResponse\nfrom django.urls import path\n"
        "def printing(request):\n"
        "    print('printed by the view', file=sys.stderr, flush=True)\n"
        "    return HttpResponse('ok')\n"
        "urlpatterns = [path('print/', printing), path('ok/', lambda request: HttpResponse('ok'))]\n",
    )


def _get(port: int, path: str) -> int:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    conn.request("GET", path, headers={"Connection": "close"})
    status = conn.getresponse().status
    conn.close()
    return status


async def _log_lines(pilot, app: DevConsoleApp, *wanted: str) -> list[str]:
    """The Log view's lines once every ``wanted`` text is among them."""
    await pilot.press("l")
    pane = await until(pilot, lambda: isinstance(app.screen, LogScreen) and app.screen.query_one(LogPane))
    await until(pilot, lambda: all(any(w in line for line in pane.lines) for w in wanted))
    return list(pane.lines)


def _index(lines: list[str], text: str) -> int:
    return next(i for i, line in enumerate(lines) if text in line)


def _request(path: str, start: float, duration: float) -> dict:
    return request_event(
        path,
        query="",
        version="HTTP/1.1",
        status=500 if path == "/boom/" else 200,
        duration_ms=duration * 1000,
        bytes_out=2,
        ts=start,
    )


async def test_log_view_puts_a_late_request_line_before_later_output() -> None:
    """Request A ends; request B, started after, prints a traceback that the
    console reads at once, while A's event comes later (events are flushed
    every 50 ms): the view shows A's line, the traceback, then B's line."""
    state = ServerState()
    app = DevConsoleApp(state=state)
    async with app.run_test(size=SIZE) as pilot:
        state.ingest({"type": "hello", "generation": 1, "request_log": "events"})
        await _log_lines(pilot, app)
        now = time.time()
        state.ingest({"type": "log", "stream": "stderr", "text": "Traceback of B", "ts": now + 0.005})
        app.refresh_views()  # the view takes the output before the events come
        state.ingest(_request("/a/", now - 0.01, 0.01))
        state.ingest(_request("/boom/", now + 0.002, 0.02))
        assert [line.text for line in state.log_since(0)][0] == "Traceback of B"  # arrival order
        lines = await _log_lines(pilot, app, "Traceback of B", "GET /a/", "GET /boom/")
        assert _index(lines, "GET /a/") < _index(lines, "Traceback of B") < _index(lines, "GET /boom/")


async def test_log_view_puts_output_read_just_after_a_request_before_its_line() -> None:
    """Output the console read a moment after the request ended, with no
    other request running, is that request's own: it goes before its line."""
    state = ServerState()
    app = DevConsoleApp(state=state)
    async with app.run_test(size=SIZE) as pilot:
        state.ingest({"type": "hello", "generation": 1, "request_log": "events"})
        now = time.time()
        state.ingest({"type": "log", "stream": "stderr", "text": "Internal Server Error: /boom/", "ts": now + 0.002})
        state.ingest(_request("/boom/", now - 0.05, 0.05))
        state.ingest({"type": "log", "stream": "stderr", "text": "much later", "ts": now + 0.2})
        lines = await _log_lines(pilot, app, "Internal Server Error", "GET /boom/", "much later")
        assert _index(lines, "Internal Server Error") < _index(lines, "GET /boom/") < _index(lines, "much later")


async def test_log_view_lists_a_views_print_before_its_request_line(tmp_path: Path, events: Events) -> None:
    with serving(_printing_project(tmp_path), events) as supervisor:
        port = supervisor.socket.getsockname()[1]
        app = DevConsoleApp(state=events.state)
        async with app.run_test(size=SIZE) as pilot:
            await _log_lines(pilot, app)
            assert _get(port, "/print/") == 200
            lines = await _log_lines(pilot, app, "printed by the view", "GET /print/")
            assert _index(lines, "printed by the view") < _index(lines, "GET /print/")


def _send_raw(port: int, data: bytes) -> bytes:
    """``data`` on a fresh connection, the write side then closed (a request
    line without its end is read to the end); the whole answer."""
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        sock.sendall(data)
        sock.shutdown(socket.SHUT_WR)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


@pytest.mark.parametrize(
    ("data", "shown"),
    [
        (b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", "\\x16\\x03\\x01\\x02\\x00\\x01\\x00\\x01ü\\x03\\x03"),
        (b"GARBAGE\r\n\r\n", "GARBAGE"),
        (b"GET / HTTP/9.x\x1b[31m\r\n\r\n", "GET / HTTP/9.x\\x1b[31m"),
        (b"X" * 5000 + b"\r\n\r\n", "X" * 200),
    ],
    ids=["tls-handshake", "garbage", "bad-version", "long"],
)
def test_a_garbage_request_line_is_shown_escaped_as_received(
    server: Supervisor, events: Events, data: bytes, shown: str
) -> None:
    # No status line: http.server answers a line it could not read as HTTP/0.9.
    answer = _send_raw(server.socket.getsockname()[1], data)
    assert b"Error code: 400" in answer
    row = wait_for(lambda: events.state.requests and events.state.requests[-1])
    assert row.status == 400
    assert row.path == shown and row.method == "-" and row.version == "" and row.query == ""
    request = events.of("request")[-1]
    assert request["path"] == shown and request["status"] == 400
    assert "HTTP/0.9" not in row.version
    # The request line the console writes for it reads as runserver's: "GARBAGE" 400 0.
    wait_for(lambda: any(f'"{shown}" 400 ' in line.text for line in events.state.log))


#: A manage.py without Django (it starts in milliseconds): ``ask`` wants a
#: line of input, ``fail`` fails without wanting any.
ASKING = """
import sys
args = [a for a in sys.argv[1:] if a != "--force-color"]
if args[0] == "ask":
    name = input("Name: ")
    print("hello", name)
elif args[0] == "fail":
    print("no EOF here", flush=True)
    sys.exit(3)
"""


@pytest.fixture
def asking(tmp_path: Path) -> Iterator[CommandRunner]:
    (tmp_path / "manage.py").write_text(ASKING)
    runner = CommandRunner(Project(tmp_path / "manage.py", python=sys.executable))
    yield runner
    runner.close()


def test_a_command_that_wanted_input_gets_the_hint_to_run_it_in_the_terminal(asking: CommandRunner) -> None:
    run = asking.start("ask")
    assert asking.wait(run, 30)
    assert run.status is RunStatus.FAILED and run.returncode == 1
    assert "EOFError" in run.output_text()
    assert run.hint == INPUT_HINT
    assert run.status_line().startswith("failed (exit 1) · ")
    assert run.status_line().endswith(" · it wanted input: press Ctrl+T to run it in the terminal")


def test_a_failure_without_eoferror_gets_no_hint(asking: CommandRunner) -> None:
    run = asking.start("fail")
    assert asking.wait(run, 30)
    assert run.status is RunStatus.FAILED and run.returncode == 3
    assert run.hint == "" and "Ctrl+T" not in run.status_line()


def test_the_hint_names_the_commands_views_run_in_terminal_key() -> None:
    from devconsole.ui.screens.commands import CommandsScreen

    keys = {binding.action: binding.key for binding in CommandsScreen.BINDINGS if isinstance(binding, Binding)}
    assert keys["run_in_terminal"] == "ctrl+t"
