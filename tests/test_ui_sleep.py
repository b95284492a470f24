"""The console's sleep and wake: with nothing happening its TICK timer is
paused (and the once-a-second refresh stops once nothing ages); events from
other threads, view changes, command runs and debugging sessions wake it."""

from __future__ import annotations

import contextlib
import sys
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from textual.timer import Timer

import devconsole.ui.app as app_module
from devconsole.console.debugger import DebugSessionInfo
from devconsole.console.project import Project
from devconsole.demo import DEMO_MANAGE_PY, demo_env
from devconsole.model.state import ServerState
from devconsole.ui.app import DevConsoleApp
from devconsole.ui.panels.requestlist import RequestList
from devconsole.ui.screens.commands import CommandsScreen

from .conftest import request_event, until
from .test_ui_commands import output_lines

SIZE = (120, 36)


def running(timer: Timer | None) -> bool:
    assert timer is not None
    return timer._active.is_set()


def table_paths(app: DevConsoleApp) -> list[str]:
    table = app.screen.query_one(RequestList)
    return [table.row_at(i).target for i in range(table.row_count)]


def asleep(app: DevConsoleApp) -> bool:
    return app._asleep and not running(app._ticker)


async def test_an_idle_console_sleeps_and_an_event_from_a_thread_wakes_it(monkeypatch: pytest.MonkeyPatch) -> None:
    state = ServerState()
    app = DevConsoleApp(state=state)
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: asleep(app), timeout=10)
        # Only the last minute's sparkline slides: the 2 s refresh runs, not the 1 s one.
        assert running(app._slider) and not running(app._ager)
        woken: list[bool] = []
        real_wake = app._wake

        def wake() -> None:
            woken.append(True)
            real_wake()

        app._wake = wake  # type: ignore[method-assign]
        reader = threading.Thread(target=state.ingest, args=(request_event("/woken/"),))
        reader.start()
        reader.join()
        await until(pilot, lambda: "/woken/" in table_paths(app), timeout=10)
        assert woken  # the TICK timer was resumed for it...
        await until(pilot, lambda: asleep(app), timeout=10)  # ...and paused again once idle
        # An open connection's age moves in seconds: the 1 s refresh, not the 2 s one.
        opened = {"type": "conn_open", "id": 1, "peer": "127.0.0.1:5000", "state": "idle", "generation": 1}
        state.ingest({**opened, "ts": time.time()})
        await until(pilot, lambda: asleep(app) and running(app._ager) and not running(app._slider), timeout=10)
        state.ingest({"type": "conn_close", "id": 1, "generation": 1})
        # Once nothing ages any more, both stop: no timer at all.
        monkeypatch.setattr(app_module, "AGEING", 0.0)
        monkeypatch.setattr(state, "linger", 0.0)
        await until(pilot, lambda: asleep(app) and not running(app._ager) and not running(app._slider), timeout=10)
        # A view change wakes it (the new view catches up at once).
        woken.clear()
        await pilot.press("l")
        await until(pilot, lambda: app.current_mode == "log" and woken, timeout=10)
        await until(pilot, lambda: asleep(app), timeout=10)


@contextlib.contextmanager
def no_suspend() -> Iterator[None]:
    yield


class LateSession:
    """A debug broker whose session arrives (and asks for a wake-up) while
    the console is awake, in the tick that then finds it idle and would
    sleep: just after it looked for a session (a real child's next waiting
    thread beginning its session as the previous one ends)."""

    def __init__(self, app: DevConsoleApp) -> None:
        self.app = app
        self.on_change: Any = None
        self.info = DebugSessionInfo(1, 1, "breakpoint", "Thread-1", "GET /", "views.py:1")
        self.arrived = False
        self.queue: list[DebugSessionInfo] = []
        self.bridged: list[DebugSessionInfo] = []

    def next_session(self) -> DebugSessionInfo | None:
        if self.queue:
            info = self.queue.pop()
            self.bridged.append(info)
            return info
        idle_for = time.monotonic() - self.app._activity_seen[1]
        if not self.arrived and not self.app._asleep and idle_for >= app_module.IDLE_REFRESH:
            self.arrived = True
            self.queue.append(self.info)
            self.on_change()
        return None

    def notices(self) -> list[str]:
        return []

    def detached(self) -> list[DebugSessionInfo]:
        return []

    def waiting(self) -> list[DebugSessionInfo]:
        return []

    def sessions(self) -> list[DebugSessionInfo]:
        return [info for info in (self.info,) if not info.ended.is_set()]

    def finish(self, info: DebugSessionInfo) -> None:
        info.ended.set()

    def detach(self, info: DebugSessionInfo) -> None:
        info.ended.set()

    def abort_all(self) -> None:
        pass


async def test_a_debugging_session_that_arrives_as_the_console_dozes_off_is_bridged(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(app_module, "AGEING", 0.0)  # no 1 s refresh to pick it up late
    monkeypatch.setattr(app_module, "bridge", lambda *args: "ended")
    app = DevConsoleApp(state=ServerState())
    broker = LateSession(app)
    app.debug_broker = broker  # type: ignore[assignment]
    monkeypatch.setattr(app, "suspend", no_suspend)
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: broker.arrived, timeout=10)
        await until(pilot, lambda: broker.bridged == [broker.info], timeout=10)


async def test_the_commands_view_sleeps_unless_a_run_goes() -> None:
    app = DevConsoleApp(project=Project(DEMO_MANAGE_PY, python=sys.executable, env=tuple(demo_env().items())))
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("c")
        await until(pilot, lambda: isinstance(app.screen, CommandsScreen))
        screen = app.screen
        assert isinstance(screen, CommandsScreen)
        await until(pilot, lambda: screen.catalogue is not None, timeout=60)
        await until(pilot, lambda: asleep(app), timeout=10)
        runner = screen.runner
        assert runner is not None
        screen.select_run(runner.start("shell", ["-c", "import time; time.sleep(0.5); print('slept')"]))
        assert not app._asleep and screen.REFRESH_EVERY_TICK
        await until(pilot, lambda: not runner.running(), timeout=60)
        # The last lines and the end are shown, then it sleeps again.
        await until(pilot, lambda: asleep(app), timeout=10)
        assert any("slept" in line for line in output_lines(screen))
        assert not screen.REFRESH_EVERY_TICK
        status = str(screen.query_one("#run-status").render())
        assert "succeeded" in status
