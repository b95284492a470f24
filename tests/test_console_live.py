"""The whole console, headless, on a real server child: it comes up, shows
traffic, survives a project that cannot start, and leaves nothing behind."""

from __future__ import annotations

import http.client
import os
from pathlib import Path

from devconsole.console.listen import ListenAddress, bind
from devconsole.console.project import Project
from devconsole.ui.app import DevConsoleApp

from .conftest import make_project, until, wait_for


def _screen_text(app: DevConsoleApp) -> str:
    return app.export_screenshot()


async def test_console_serves_and_quits_cleanly(demo_project: Project) -> None:
    sock = bind(ListenAddress("127.0.0.1", 0))
    port = sock.getsockname()[1]
    app = DevConsoleApp(project=demo_project, address=ListenAddress("127.0.0.1", port), sock=sock)
    async with app.run_test(size=(120, 36)) as pilot:
        await until(pilot, lambda: app.state.hello is not None)
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        conn.request("GET", "/ping/")
        assert conn.getresponse().read() == b"pong"
        conn.close()
        await until(pilot, lambda: app.state.total_requests == 1)
        await until(pilot, lambda: "/ping/" in _screen_text(app))  # the row is drawn
        child = app.supervisor.child
        await pilot.press("q")
    app.shutdown()
    wait_for(lambda: child.process.poll() is not None)
    assert child.process.returncode == 0
    try:
        os.kill(child.process.pid, 0)
    except ProcessLookupError:
        pass
    else:
        raise AssertionError("the server child outlived the console")


async def test_broken_settings_keep_the_console_up_and_show_the_traceback(tmp_path: Path) -> None:
    project = make_project(tmp_path, "brokensite", "import no_such_module_for_devconsole\n")
    sock = bind(ListenAddress("127.0.0.1", 0))
    port = sock.getsockname()[1]
    app = DevConsoleApp(project=project, address=ListenAddress("127.0.0.1", port), sock=sock)
    async with app.run_test(size=(120, 36)) as pilot:
        await until(pilot, lambda: app.state.errors)
        await until(pilot, lambda: "no_such_module_for_devconsole" in _screen_text(app))  # the traceback is drawn
        assert app.is_running
        assert app.state.errors[-1].message == "ModuleNotFoundError: No module named 'no_such_module_for_devconsole'"
    app.shutdown()
