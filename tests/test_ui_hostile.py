"""Hostile request text through the real server, into the real console.

Anyone who can reach the port controls request paths and headers, and the
server's log repeats them. Markup in them must stay text (``[/bar]`` would
crash a markup-parsing widget, ``[@click=app.quit]`` would become a live
action) and escape sequences must never reach the terminal raw: they are
shown visibly escaped (``\\x1b``).
"""

from __future__ import annotations

import html
import http.client
import re
import socket

from devconsole.console.listen import ListenAddress, bind
from devconsole.console.project import Project
from devconsole.ui.app import DevConsoleApp
from devconsole.ui.panels.requestlist import RequestList
from devconsole.ui.screens.logview import LogPane, LogScreen
from devconsole.ui.screens.request_detail import RequestDetailScreen, RequestDetailView

from .conftest import until

#: Raw requests no well-behaved client would send: ESC and a lone C1 CSI byte
#: (0x9b) in the path and in headers.
RAW = [
    b"GET /esc\x1b[31mred HTTP/1.0\r\nX-Evil: \x1b]0;pwned\x07\r\nUser-Agent: \x9bcurl\r\n\r\n",
    b"GET /csi\x9b2J HTTP/1.0\r\nX-Markup: [bold]x[/bold] [@click=app.quit]\r\n\r\n",
]
#: What each request's path must look like in the Requests panel.
EXPECTED_PATHS = ["/[/bar]", "/[@click=app.quit]x", "/%1b]0;title%07", "/esc\\x1b[31mred", "/csi\\x9b2J"]


def _screen_text(app: DevConsoleApp) -> str:
    return html.unescape(re.sub(r"<[^>]+>", "", app.export_screenshot())).replace("\xa0", " ")


def _raw_request(port: int, payload: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        sock.sendall(payload)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


def _assert_nothing_raw(app: DevConsoleApp) -> None:
    """No control character from a request reached the rendered screen."""
    svg = app.export_screenshot()
    assert not re.search("[\x00-\x08\x0b-\x1f\x7f-\x9f]", svg), "a raw control character reached the screen"


async def test_hostile_requests_show_literally_and_never_act(demo_project: Project) -> None:
    sock = bind(ListenAddress("127.0.0.1", 0))
    port = sock.getsockname()[1]
    app = DevConsoleApp(project=demo_project, address=ListenAddress("127.0.0.1", port), sock=sock)
    async with app.run_test(size=(160, 48)) as pilot:
        await until(pilot, lambda: app.state.hello is not None)
        for path in ("/[/bar]", "/[@click=app.quit]x", "/%1b]0;title%07"):
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
            conn.request("GET", path, headers={"X-Title": "[@click=app.quit]quit[/]"})
            assert conn.getresponse().status == 404
            conn.close()
        for payload in RAW:
            assert _raw_request(port, payload).startswith(b"HTTP/1.")
        await until(pilot, lambda: app.state.total_requests >= 5)
        await until(pilot, lambda: app.screen.query_one(RequestList).row_count >= 5)
        await pilot.pause()  # every message the rows caused is handled (a markup action would have run)
        assert app.is_running

        table = app.screen.query_one(RequestList)
        paths = [table.row_at(i).target for i in range(table.row_count)]
        # Rows come in the order requests finished: a request's event is made
        # after its response leaves, so the next one may finish first.
        assert sorted(paths) == sorted(EXPECTED_PATHS)
        text = _screen_text(app)
        for path in EXPECTED_PATHS:
            assert path in text
        _assert_nothing_raw(app)

        # Clicking the row whose path is a click action selects it; nothing else.
        await pilot.click(RequestList, offset=(40, 3))
        await pilot.pause()  # the click and whatever it caused are handled
        assert app.is_running

        # The raw request's headers, in the detail view.
        # Found by its path: rows come in the order requests finished (above).
        raw_row = paths.index("/esc\\x1b[31mred")
        table.focus()
        table.move_cursor(row=raw_row)
        await pilot.press("enter")
        await until(pilot, lambda: isinstance(app.screen, RequestDetailScreen))
        await until(pilot, lambda: "HTTP/1.0" in str(app.screen.query_one(RequestDetailView).render()))
        detail = str(app.screen.query_one(RequestDetailView).render())
        assert "GET /esc\\x1b[31mred HTTP/1.0" in detail
        assert "\\x1b]0;pwned\\x07" in detail and "\\x9bcurl" in detail
        _assert_nothing_raw(app)
        await pilot.press("escape")
        await until(pilot, lambda: not isinstance(app.screen, RequestDetailScreen))

        # The server's own log repeats the paths (Django unquotes %1b to ESC).
        await pilot.press("l")
        await until(pilot, lambda: isinstance(app.screen, LogScreen))
        app.refresh_views()
        # Each request's thread logs it after its response went out: the last
        # request's line may come before an earlier one's.
        expected = ("Not Found: /\\x1b]0;title\\x07", '"GET /[@click=app.quit]x HTTP/1.1" 404', "/csi\\x9b2J")

        def logged() -> bool:
            log_text = "\n".join(app.screen.query_one(LogPane).lines)
            return all(text in log_text for text in expected)

        await until(pilot, logged)
        _assert_nothing_raw(app)
        assert app.is_running
        child = app.supervisor.child
    app.shutdown()
    assert child.process.poll() is not None
