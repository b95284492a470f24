"""Long requests through a reload, a cut and a quit: real server children of
the demo project, real requests on a loopback socket."""

from __future__ import annotations

import http.client
import os
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from devconsole.console.listen import ListenAddress, bind
from devconsole.console.project import Project
from devconsole.console.reloader import Reloader
from devconsole.console.session import wire
from devconsole.console.supervisor import Supervisor
from devconsole.ui.app import DevConsoleApp

from .conftest import Events, until, wait_for

pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="the fork server needs POSIX")


@dataclass
class Console:
    port: int
    supervisor: Supervisor
    reloader: Reloader
    events: Events


@pytest.fixture
def console(demo_project: Project) -> Iterator[Console]:
    sock = bind(ListenAddress("127.0.0.1", 0))
    port = sock.getsockname()[1]
    events = Events()
    supervisor, reloader = wire(demo_project, ListenAddress("127.0.0.1", port), sock, events)
    reloader.start()
    try:
        wait_for(lambda: events.state.hello is not None, timeout=60)
        yield Console(port, supervisor, reloader, events)
    finally:
        reloader.stop()
        supervisor.close()


class Request(threading.Thread):
    """A GET in the background; its status and body (or the error) once done."""

    def __init__(self, port: int, path: str) -> None:
        super().__init__(daemon=True)
        self.port, self.path = port, path
        self.result: tuple[int, bytes] | None = None
        self.error: BaseException | None = None
        self.start()

    def run(self) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        try:
            conn.request("GET", self.path, headers={"Connection": "close"})
            response = conn.getresponse()
            self.result = (response.status, response.read())
        except (OSError, http.client.HTTPException) as exc:
            self.error = exc
        finally:
            conn.close()


def get(port: int, path: str) -> tuple[int, bytes]:
    request = Request(port, path)
    request.join(30)
    assert request.result is not None, request.error
    return request.result


def _in_flight_on(events: Events, generation: int) -> bool:
    return any(row.generation == generation for row in events.state.in_flight())


def _log_texts(events: Events) -> list[str]:
    return [line.text for line in list(events.state.log)]


def test_a_reload_drains_a_long_request_while_the_new_generation_serves(console: Console) -> None:
    events = console.events
    slow = Request(console.port, "/slow/?sleep=8")
    wait_for(lambda: _in_flight_on(events, 1))
    console.reloader.restart()
    # Generation 1 says it drains, and generation 2 serves meanwhile.
    wait_for(lambda: events.state.draining == {1: 1}, timeout=30)
    wait_for(lambda: events.state.generation == 2 and events.state.hello is not None, timeout=30)
    assert get(console.port, "/ping/") == (200, b"pong")
    ping = wait_for(lambda: [e for e in events.of("request") if e["path"] == "/ping/"])
    assert ping[0]["generation"] == 2
    assert slow.is_alive(), "the long request ended before the check"
    assert 1 in events.state.draining
    slow.join(30)
    assert slow.result == (200, b"slept 8 s\n"), slow.error
    wait_for(lambda: events.state.draining == {})
    texts = _log_texts(events)
    assert any("generation 1 draining: 1 request" in text for text in texts)
    wait_for(lambda: any("generation 1 drained" in text for text in _log_texts(events)))
    done = [e for e in events.of("request") if e["path"] == "/slow/"]
    assert [(e["generation"], e["status"]) for e in done] == [(1, 200)]
    assert not [row for row in events.state.requests if row.note]
    assert events.state.cut_requests == 0


def test_the_cut_key_ends_a_draining_request_as_a_row_saying_so(console: Console) -> None:
    events = console.events
    slow = Request(console.port, "/slow/?sleep=10")
    wait_for(lambda: _in_flight_on(events, 1))
    console.reloader.restart()
    wait_for(lambda: events.state.draining == {1: 1}, timeout=30)
    assert console.supervisor.cut_draining("by you") == 1
    slow.join(15)
    assert not slow.is_alive()
    assert slow.result is None and slow.error is not None  # the client sees the connection end
    cut = wait_for(lambda: [row for row in events.state.requests_since(0) if row.note == "cut: by you"])
    assert cut[0].generation == 1 and cut[0].status is None
    assert events.state.cut_requests == 1
    assert any("cut: by you (generation 1)" in text for text in _log_texts(events))
    assert events.state.draining == {}
    # Generation 2 was not touched.
    assert get(console.port, "/ping/") == (200, b"pong")


def _notes(app: DevConsoleApp) -> list[Any]:
    return [row for row in list(app.state.requests) if row.note]


async def test_q_with_a_request_in_flight_waits_then_a_second_q_quits_now(demo_project: Project) -> None:
    sock = bind(ListenAddress("127.0.0.1", 0))
    port = sock.getsockname()[1]
    app = DevConsoleApp(project=demo_project, address=ListenAddress("127.0.0.1", port), sock=sock)
    async with app.run_test(size=(160, 48)) as pilot:
        await until(pilot, lambda: app.state.hello is not None, timeout=60)
        slow = Request(port, "/slow/?sleep=10")
        # In flight, and the console knows which request (the connection's update).
        await until(pilot, lambda: [row for row in app.state.in_flight() if row.path])
        await pilot.press("q")
        await pilot.pause()
        assert app.is_running
        assert app.quit_waiting is not None
        assert app.quit_waiting.startswith("waiting for 1 request to finish: GET /slow/ — ")
        assert app.quit_waiting.endswith(" — q again to quit now")
        assert any(app.quit_waiting in str(n.message) for n in app._notifications)
        await pilot.press("q")
        await until(pilot, lambda: not app.is_running, timeout=10)
    slow.join(15)
    assert slow.result is None and slow.error is not None
    cut = [row for row in _notes(app) if row.note == "cut: quit"]
    assert len(cut) == 1 and cut[0].generation == 1
    assert any("cut: quit" in line.text for line in list(app.state.log))


async def test_q_waits_for_the_request_and_then_quits_by_itself(demo_project: Project) -> None:
    sock = bind(ListenAddress("127.0.0.1", 0))
    port = sock.getsockname()[1]
    app = DevConsoleApp(project=demo_project, address=ListenAddress("127.0.0.1", port), sock=sock)
    async with app.run_test(size=(160, 48)) as pilot:
        await until(pilot, lambda: app.state.hello is not None, timeout=60)
        slow = Request(port, "/slow/?sleep=2")
        await until(pilot, lambda: app.state.in_flight())
        await pilot.press("q")
        await pilot.pause()
        assert app.is_running and app.quit_waiting is not None
        await until(pilot, lambda: not app.is_running, timeout=15)
    slow.join(15)
    assert slow.result == (200, b"slept 2 s\n")
    assert not _notes(app)


async def test_the_cut_key_shows_only_while_a_generation_drains(demo_project: Project) -> None:
    sock = bind(ListenAddress("127.0.0.1", 0))
    port = sock.getsockname()[1]
    app = DevConsoleApp(project=demo_project, address=ListenAddress("127.0.0.1", port), sock=sock)
    async with app.run_test(size=(160, 48)) as pilot:
        await until(pilot, lambda: app.state.hello is not None, timeout=60)

        def cut_key_shown() -> bool:
            return any(description == "Cut draining" for _, description, _ in app.active_keys())

        assert not cut_key_shown()
        slow = Request(port, "/slow/?sleep=10")
        await until(pilot, lambda: app.state.in_flight())
        assert app.reloader is not None
        app.reloader.restart()
        await until(pilot, lambda: app.state.draining, timeout=30)
        await until(pilot, cut_key_shown)
        await until(pilot, lambda: "generation 1 draining: 1 request" in str(app.screen.query_one("#status").render()))
        await pilot.press("x")
        await until(pilot, lambda: any(row.note == "cut: by you" for row in _notes(app)), timeout=10)
        await until(pilot, lambda: not cut_key_shown())
        slow.join(15)
        assert slow.result is None
