"""A server child that dies (kill -9, ``os._exit`` in a view) on a copy of
the demo project: real processes, real signals, real requests on a loopback
socket. The death is explained, the next generation serves on the same
socket, a request in flight is a row marked cut, and repeated deaths back off."""

from __future__ import annotations

import contextlib
import http.client
import os
import signal
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from devconsole.console import reloader as reloader_module
from devconsole.console.listen import ListenAddress, bind
from devconsole.console.project import Project
from devconsole.console.reloader import backoff_delay
from devconsole.console.supervisor import describe_exit
from devconsole.model.state import CRASH_PHASE, CUT, ServerState

from .conftest import Events, LiveConsole, http_get, live_console, wait_for

pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="signals and the fork server need POSIX")

#: A view added to the copy of the demo: says something on stderr, then dies
#: the way a C extension's abort or a stray os._exit does (no cleanup at all).
DIE_VIEW = """

def die(request):
    import pathlib, sys
    sys.stderr.write("die view: about to call os._exit(3)\\n")
    sys.stderr.flush()
    # In flight until the test saw it so (it creates this file), then gone.
    go = pathlib.Path(__file__).resolve().parent.parent / "die-go"
    deadline = time.monotonic() + 60
    while not go.exists() and time.monotonic() < deadline:
        time.sleep(0.01)
    os._exit(3)
"""


class TimedEvents(Events):
    """Events, each with the monotonic time it reached the sink."""

    def __init__(self) -> None:
        super().__init__()
        self.arrived: dict[int, float] = {}

    def __call__(self, event: dict[str, Any]) -> None:
        self.arrived[id(event)] = time.monotonic()
        super().__call__(event)

    def hello(self, generation: int) -> dict[str, Any] | None:
        found = [h for h in self.of("hello") if h.get("generation") == generation]
        return found[0] if found else None

    def crashes(self) -> list[dict[str, Any]]:
        return [e for e in self.of("error") if e.get("phase") == CRASH_PHASE]


@dataclass
class Console(LiveConsole):
    events: TimedEvents

    def serving_pid(self, generation: int) -> int:
        hello = wait_for(lambda: self.events.hello(generation), timeout=30)
        return int(hello["pid"])

    def kill(self, generation: int) -> None:
        os.kill(self.serving_pid(generation), signal.SIGKILL)


def get(port: int, path: str = "/ping/", timeout: float = 20.0) -> tuple[int, bytes]:
    return http_get(port, path, timeout=timeout)


def _add_die_view(root: Path) -> None:
    views = root / "shop" / "views.py"
    views.write_text("import os\n" + views.read_text() + DIE_VIEW)
    urls = root / "demosite" / "urls.py"
    urls.write_text(
        urls.read_text().replace(
            'path("ping/", shop_views.ping, name="ping"),',
            'path("ping/", shop_views.ping, name="ping"),\n    path("die/", shop_views.die),',
        )
    )


@contextlib.contextmanager
def start_console(tmp_path: Path, demo_db: Path, *, reload: bool) -> Iterator[Console]:
    """A console on a copy of the demo (with a view that dies), serving."""
    events = TimedEvents()
    with live_console(
        tmp_path, demo_db, reload=reload, events=events, prepare=_add_die_view, console_class=Console
    ) as console:
        assert get(console.port) == (200, b"pong")
        yield console


@pytest.fixture(params=["fork", "spawn"])
def console(request: pytest.FixtureRequest, tmp_path: Path, demo_db: Path) -> Iterator[Console]:
    """Its generations forked from fork servers or spawned (``--noreload``)."""
    with start_console(tmp_path, demo_db, reload=request.param == "fork") as console:
        yield console


@pytest.fixture
def forked(tmp_path: Path, demo_db: Path) -> Iterator[Console]:
    with start_console(tmp_path, demo_db, reload=True) as console:
        yield console


def test_kill_9_is_explained_and_the_next_generation_serves_the_request_sent_right_after(console: Console) -> None:
    console.kill(1)
    # Sent at once: it waits in the backlog for generation 2, neither refused nor hung.
    assert get(console.port) == (200, b"pong")
    crash = wait_for(console.events.crashes)[0]
    assert crash["generation"] == 1
    assert "killed by SIGKILL" in crash["message"] and "restarting now" in crash["message"]
    wait_for(lambda: console.events.hello(2))  # the answer came from it; its hello may still be on the pipe
    reload = wait_for(lambda: [r for r in console.events.of("reload") if r["new_generation"] == 2])[0]
    assert reload["decision"] == "restarted" and reload["files"] == []
    # Through the normal start path: a fork when fork servers run, else a spawn.
    assert reload["level"] == ("fork" if console.reloader.use_fork else "spawn")
    log = [line.text for line in console.state.log]
    assert any("server child died: generation 1" in text and "SIGKILL" in text for text in log), log[-10:]
    wait_for(lambda: console.state.status == "serving")
    # A stop the console asks for is no crash: nothing is explained or restarted.
    console.reloader.stop()
    wait_for(lambda: [e for e in console.events.of("exit") if e["generation"] == 2])
    assert len(console.events.crashes()) == 1
    assert console.events.hello(3) is None


def test_os_exit_in_a_view_is_its_exit_status_and_last_lines(forked: Console) -> None:
    failures: list[BaseException] = []

    def die() -> None:
        try:
            get(forked.port, "/die/")
        except (http.client.RemoteDisconnected, ConnectionError) as exc:
            failures.append(exc)

    client = threading.Thread(target=die)
    client.start()
    # The console saw the request in flight (its connection "handling") before the view dies.
    state = forked.state
    wait_for(lambda: [c for c in state.connections() if c.generation == 1 and c.state == "handling"], timeout=30)
    (forked.root / "die-go").touch()
    client.join(timeout=30)
    assert not client.is_alive() and failures, "the /die/ request should have been cut"
    crash = wait_for(forked.events.crashes)[0]
    assert "exited with status 3" in crash["message"]
    assert crash["traceback"].splitlines()[-1] == "die view: about to call os._exit(3)"
    assert get(forked.port) == (200, b"pong")
    wait_for(lambda: forked.events.hello(2))  # the answer came from it; its hello may still be on the pipe
    log = [line.text for line in forked.state.log]
    assert "  | die view: about to call os._exit(3)" in log
    # The /die/ request was in flight: a row says it was cut.
    cut = wait_for(lambda: [row for row in forked.state.requests_since(0) if row.note])
    assert [(row.generation, row.status, row.note) for row in cut] == [(1, None, "cut: server child died")]


def test_a_request_in_flight_when_the_child_is_killed_is_a_cut_row_counted_in_the_totals(forked: Console) -> None:
    state = forked.state
    for _ in range(3):
        assert get(forked.port) == (200, b"pong")
    # Every finished request counted, by the child's stats and as a row.
    wait_for(lambda: state.total_requests == 4 and len(state.requests) == 4)
    failures: list[BaseException] = []

    answers: list[tuple[int, bytes]] = []

    def slow() -> None:
        try:
            answers.append(get(forked.port, "/slow/?sleep=10", timeout=60))
        except (OSError, http.client.HTTPException) as exc:
            failures.append(exc)

    client = threading.Thread(target=slow)
    client.start()
    # The console knows it is in flight: its connection is "handling" it (a
    # /ping/ connection may still show "handling" until its close is reported).
    wait_for(
        lambda: [
            c
            for c in state.connections()
            if c.generation == 1 and c.state == "handling" and c.path == "/slow/" and c.closed_at is None
        ]
    )
    forked.kill(1)
    client.join(timeout=60)
    assert not client.is_alive() and not answers, "the slow request should have been cut"
    # Cut by the death (the connection closed or reset), not by a time-out.
    assert failures and not isinstance(failures[0], TimeoutError), failures
    rows = wait_for(lambda: [row for row in state.requests_since(0) if row.note])
    assert len(rows) == 1
    row = rows[0]
    # The row names the request the connection was handling.
    assert (row.generation, row.status, row.method, row.path, row.note) == (
        1,
        None,
        "GET",
        "/slow/",
        "cut: server child died",
    )
    assert state.total_requests == 5 == len(state.requests)
    assert state.status_counts()[CUT] == 1 and state.cut_requests == 1
    assert get(forked.port) == (200, b"pong")
    wait_for(lambda: state.total_requests == 6 and len(state.requests) == 6)
    # Its connection is closed, not left open.
    assert not [c for c in state.connections() if c.generation == 1 and c.closed_at is None]


def test_four_quick_deaths_back_off_and_the_delay_is_honoured(forked: Console, monkeypatch: pytest.MonkeyPatch) -> None:
    # Quick on a loaded machine too: each next generation may take seconds to say hello.
    monkeypatch.setattr(reloader_module, "CRASH_WINDOW", 120.0)
    events = forked.events
    for generation in range(1, 5):
        forked.kill(generation)
        wait_for(lambda n=generation: len(events.crashes()) == n)
    messages = [crash["message"] for crash in events.crashes()]
    assert "restarting now" in messages[0] and "restarting now" in messages[1]
    assert "server child died 3 times in" in messages[2] and "next start in 1 s" in messages[2]
    assert "server child died 4 times in" in messages[3] and "next start in 2 s" in messages[3]
    hello5 = wait_for(lambda: events.hello(5), timeout=30)
    # Measured from the fourth death's explanation to the new generation's
    # start (its hello is later still): never sooner than the delay.
    fourth = events.crashes()[3]
    reload = wait_for(lambda: [r for r in events.of("reload") if r["new_generation"] == 5])[0]
    assert events.arrived[id(hello5)] - events.arrived[id(fourth)] >= 2.0
    assert reload["decision"] == "restarted"
    hello4 = events.hello(4)
    assert hello4 is not None
    third = events.crashes()[2]
    assert events.arrived[id(hello4)] - events.arrived[id(third)] >= 1.0
    assert get(forked.port) == (200, b"pong")
    assert forked.state.status == "serving"


def test_r_during_the_backoff_starts_the_server_at_once(forked: Console, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(reloader_module, "BACKOFF_FIRST", 30.0)
    monkeypatch.setattr(reloader_module, "CRASH_WINDOW", 120.0)  # quick however loaded the machine
    events = forked.events
    for generation in range(1, 4):
        forked.kill(generation)
        wait_for(lambda n=generation: len(events.crashes()) == n)
    assert "next start in 30 s" in events.crashes()[2]["message"]
    assert forked.state.status == "crashed"
    forked.reloader.restart()  # r
    wait_for(lambda: events.hello(4), timeout=20)  # well before the 30 s
    assert get(forked.port) == (200, b"pong")
    # The delayed start was called off: the manual one replaced it.
    assert forked.reloader._crash_timer is None


def test_backoff_delays_double_up_to_the_cap() -> None:
    assert [backoff_delay(n) for n in range(1, 11)] == [0, 0, 1, 2, 4, 8, 16, 30, 30, 30]


def test_exit_descriptions() -> None:
    assert describe_exit(-signal.SIGKILL) == "killed by SIGKILL"
    assert describe_exit(-signal.SIGSEGV) == "killed by SIGSEGV"
    assert describe_exit(3) == "exited with status 3"
    assert describe_exit(None) == "exited (status unknown)"


def _conn(kind: str, conn_id: int, state: str, generation: int = 1) -> dict[str, Any]:
    return {
        "type": kind,
        "id": conn_id,
        "peer": "127.0.0.1:5000",
        "state": state,
        "thread": "t",
        "bytes_in": 0,
        "bytes_out": 0,
        "requests": 0,
        "ts": 1.0,
        "generation": generation,
    }


def test_state_a_stop_cuts_requests_as_stopped_a_crash_as_died() -> None:
    state = ServerState()
    state.ingest(
        {"type": "stats", "requests": 2, "connections": 3, "dropped": 0, "status": {"2xx": 2}, "generation": 1}
    )
    state.ingest(_conn("conn_open", 1, "handling"))
    state.ingest(_conn("conn_open", 2, "idle"))
    state.ingest(_conn("conn_open", 3, "reading"))
    state.ingest(
        {"type": "error", "phase": CRASH_PHASE, "message": "generation 1 (pid 9) killed by SIGKILL", "traceback": ""}
        | {"generation": 1}
    )
    assert state.status == "crashed"
    state.ingest({"type": "exit", "returncode": -9, "ts": 2.0, "generation": 1})
    assert state.status == "crashed"
    assert [(r.conn, r.note) for r in state.requests] == [(1, "cut: server child died")]
    assert state.total_requests == 3 and state.status_counts() == {"2xx": 2, CUT: 1}
    assert all(c.closed_at is not None for c in state.conns.values())
    # A generation stopped by the console (killed after its stop timeout):
    # its request in flight is cut too, but not by a crash.
    state.ingest({"type": "hello", "generation": 2})
    state.ingest(_conn("conn_open", 1, "handling", generation=2))
    state.ingest({"type": "exit", "returncode": -15, "ts": 3.0, "generation": 2})
    assert state.requests[-1].note == "cut: server child stopped" and state.total_requests == 4


async def test_the_status_line_says_why_it_died_and_its_last_words(tmp_path: Path) -> None:
    from devconsole.ui.app import DevConsoleApp
    from devconsole.ui.widgets.statusline import StatusLine

    app = DevConsoleApp(project=Project(tmp_path / "manage.py"))
    async with app.run_test(size=(240, 40)) as pilot:
        state = app.state
        state.ingest({"type": "hello", "generation": 3, "pid": 77})
        message = (
            "generation 3 (pid 77) killed by SIGSEGV; server child died 3 times in 2 s: next start in 1 s (r: now)"
        )
        # The last line is the child's: markup in it stays text.
        tail = "Fatal Python error: Segmentation fault\n[bold]in _speedups.c[/bold]"
        state.ingest({"type": "error", "phase": CRASH_PHASE, "message": message, "traceback": tail, "generation": 3})
        status = app.screen.query_one(StatusLine)
        status.refresh_from_state(state)
        await pilot.pause()
        shown = str(status.render())
        assert shown.startswith(" crashed ")
        assert f"server child died: {message} · last words: [bold]in _speedups.c[/bold]" in shown
        # Once the next generation serves, the explanation is history.
        state.ingest({"type": "hello", "generation": 4, "pid": 78})
        status.refresh_from_state(state)
        await pilot.pause()
        assert "killed by SIGSEGV" not in str(status.render()) and str(status.render()).startswith(" serving ")


class FailingOnce(Events):
    """A sink that raises on the first request event it is given (a bug in
    whatever applies events); everything else is kept as usual."""

    def __init__(self) -> None:
        super().__init__()
        self.raised = False

    def __call__(self, event: dict[str, Any]) -> None:
        if event["type"] == "request" and not self.raised:
            self.raised = True
            raise RuntimeError("a bug applying this event")
        super().__call__(event)


def test_an_event_that_cannot_be_applied_is_logged_and_counting_goes_on(demo_project: Project) -> None:
    from .conftest import serving

    events = FailingOnce()
    with serving(demo_project, events) as supervisor:
        port = supervisor.socket.getsockname()[1]
        for _ in range(3):
            assert get(port)[0] == 200
        wait_for(lambda: events.state.total_requests == 3, timeout=20)
        wait_for(lambda: len(events.of("request")) == 2, timeout=20)
        texts = [e["text"] for e in events.of("log")]
        assert any("could not be applied: RuntimeError: a bug applying this event" in t for t in texts), texts


def test_a_finisher_that_raises_still_counts_its_request() -> None:
    import urllib.request
    from wsgiref.simple_server import WSGIRequestHandler, WSGIServer

    from devconsole.child.instrument import ServerObserver, instrument_server

    listen = bind(ListenAddress("127.0.0.1", 0))
    observer = ServerObserver()

    def broken(request: Any) -> None:
        raise RuntimeError("a finisher's bug")

    observer.finishers.append(broken)
    server = instrument_server(WSGIServer, listen.fileno(), observer)(("127.0.0.1", 0), WSGIRequestHandler)
    server.set_app(lambda environ, start_response: (start_response("200 OK", []), [b"ok"])[1])
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        port = listen.getsockname()[1]
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=10) as response:
            assert response.read() == b"ok"
        wait_for(lambda: observer.requests_total == 1, timeout=10)
    finally:
        server.shutdown()
        thread.join(10)
        server.server_close()
        listen.close()
