"""A live session recorded with ``record=`` (``devconsole --record FILE``)
replays into the UI as it was seen: same requests, same totals."""

from __future__ import annotations

import http.client
from pathlib import Path

from devconsole.console.listen import ListenAddress, bind
from devconsole.console.project import Project
from devconsole.model.recording import load_recording
from devconsole.ui.app import DevConsoleApp
from devconsole.ui.panels.requestlist import RequestList

from .conftest import until


def _paths(app: DevConsoleApp) -> list[str]:
    table = app.screen.query_one(RequestList)
    return [table.row_at(i).target for i in range(table.row_count)]


async def test_a_recorded_session_replays_into_the_ui(demo_project: Project, tmp_path: Path) -> None:
    path = tmp_path / "session.jsonl"
    sock = bind(ListenAddress("127.0.0.1", 0))
    port = sock.getsockname()[1]
    with path.open("w", encoding="utf-8") as record:
        live = DevConsoleApp(project=demo_project, address=ListenAddress("127.0.0.1", port), sock=sock, record=record)
        async with live.run_test(size=(120, 36)) as pilot:
            await until(pilot, lambda: live.state.hello is not None)
            for target in ("/ping/", "/nope/?q=[b]", "/api/products/"):
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
                conn.request("GET", target)
                conn.getresponse().read()
                conn.close()
            await until(pilot, lambda: live.state.total_requests == 3)
            await until(pilot, lambda: live.screen.query_one(RequestList).row_count == 3)
            seen = _paths(live)
            counts = live.state.status_counts()
        live.shutdown()

    replay = DevConsoleApp(recording=load_recording(path))
    async with replay.run_test(size=(120, 36)) as pilot:
        await pilot.pause()
        replay.refresh_views()
        await pilot.pause()
        assert _paths(replay) == seen == ["/ping/", "/nope/?q=[b]", "/api/products/"]
        assert replay.state.total_requests == 3
        assert replay.state.status_counts() == counts == {"2xx": 2, "4xx": 1}
        assert (
            replay.state.hello is not None
            and replay.state.hello.listen is not None
            and replay.state.hello.listen.port == port
        )
