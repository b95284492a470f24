"""Exposure: a server other machines can reach says so, and the startup-error
page (with its traceback) is shown to loopback clients only.

There is no network here, so no real non-loopback client: the page's decision
is tested with the peer addresses the server would see, and a real request
from 127.0.0.1 to a server bound on 0.0.0.0 still gets the traceback.
"""

from __future__ import annotations

import http.client
import socket
from pathlib import Path
from typing import Any

import pytest

from devconsole.child.errorpage import error_app, is_loopback_peer
from devconsole.console.listen import ListenAddress, bind, parse_addrport
from devconsole.console.supervisor import Supervisor
from devconsole.ui.app import DevConsoleApp
from devconsole.ui.screens.logview import LogPane, LogScreen
from devconsole.ui.widgets.statusline import StatusLine
from devconsole.wire.events import ErrorEvent

from .conftest import Events, make_project, until, wait_for


@pytest.mark.parametrize(
    ("addrport", "loopback"),
    [
        ("8000", True),
        ("127.0.0.1:8000", True),
        ("127.1.2.3:8000", True),
        ("localhost:8000", True),
        ("[::1]:8000", True),
        ("0.0.0.0:8000", False),
        ("0:8000", False),
        ("[::]:8000", False),
        ("192.168.1.20:8000", False),
        ("10.0.0.5:8000", False),
        ("[fe80::1]:8000", False),
        ("myhost.example:8000", False),
    ],
)
def test_listen_address_is_loopback(addrport: str, loopback: bool) -> None:
    assert parse_addrport(addrport).is_loopback is loopback


def test_ipv6_default_is_loopback() -> None:
    assert parse_addrport(None, ipv6=True).is_loopback
    assert ListenAddress("::ffff:127.0.0.1", 8000, ipv6=True).is_loopback


ERROR: ErrorEvent = {
    "type": "error",
    "phase": "settings import",
    "message": "ValueError: settings are broken",
    "traceback": 'Traceback (most recent call last):\n  File "/srv/secret/brokensite.py", line 1\nValueError: settings are broken',
}


def _call(app: Any, peer: str) -> tuple[str, bytes]:
    started: list[str] = []
    body = b"".join(app({"REMOTE_ADDR": peer, "PATH_INFO": "/"}, lambda status, headers: started.append(status)))
    return started[0], body


@pytest.mark.parametrize("peer", ["127.0.0.1", "127.0.0.53", "::1", "::ffff:127.0.0.1"])
def test_error_page_shows_the_traceback_to_loopback_peers(peer: str) -> None:
    assert is_loopback_peer(peer)
    status, body = _call(error_app(ERROR), peer)
    assert status.startswith("500")
    assert b"/srv/secret/brokensite.py" in body and b"settings are broken" in body


@pytest.mark.parametrize("peer", ["192.168.1.7", "10.1.2.3", "::ffff:192.168.1.7", "fe80::1%eth0", "2001:db8::5", ""])
def test_error_page_is_a_plain_500_for_other_peers(peer: str) -> None:
    assert not is_loopback_peer(peer)
    status, body = _call(error_app(ERROR), peer)
    assert status.startswith("500")
    assert b"Server Error (500)" in body
    assert b"brokensite" not in body and b"settings are broken" not in body and b"Traceback" not in body


def test_a_server_bound_on_all_interfaces_shows_the_traceback_to_a_local_browser(
    tmp_path: Path, events: Events
) -> None:
    project = make_project(tmp_path, "brokensite", "raise ValueError('settings are broken')\n")
    sock = bind(ListenAddress("0.0.0.0", 0))
    port = sock.getsockname()[1]
    supervisor = Supervisor(project, ListenAddress("0.0.0.0", port), sock, events)
    try:
        supervisor.start()
        wait_for(lambda: events.of("error"))
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        conn.request("GET", "/", headers={"Connection": "close"})
        response = conn.getresponse()
        body = response.read()
        conn.close()
        assert response.status == 500
        assert b"brokensite.py" in body and b"settings are broken" in body
    finally:
        supervisor.close()


def _hello(host: str) -> dict[str, Any]:
    return {"type": "hello", "generation": 1, "pid": 4242, "listen": {"host": host, "port": 8000}}


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "192.168.1.20"])
async def test_status_line_and_log_warn_when_reachable_from_the_network(host: str) -> None:
    app = DevConsoleApp()
    async with app.run_test(size=(160, 30)) as pilot:
        app.state.ingest(_hello(host))
        app.refresh_views()
        status = app.screen.query_one(StatusLine)
        await until(pilot, lambda: f"⚠ reachable from the network ({host})" in str(status.render()))
        await pilot.press("l")
        pane = await until(pilot, lambda: isinstance(app.screen, LogScreen) and app.screen.query_one(LogPane))
        await until(pilot, lambda: any("reachable from the network" in line for line in pane.lines))
        # A new generation (a reload) says hello again: the note stays one line.
        app.state.ingest({**_hello(host), "generation": 2})
        app.state.ingest({"type": "log", "stream": "stdout", "text": "after the reload"})
        await until(pilot, lambda: any("after the reload" in line for line in pane.lines))
        assert sum("reachable from the network" in line for line in pane.lines) == 1


async def test_no_warning_on_loopback() -> None:
    app = DevConsoleApp()
    async with app.run_test(size=(160, 30)) as pilot:
        app.state.ingest(_hello("127.0.0.1"))
        app.state.ingest({"type": "log", "stream": "stdout", "text": "served"})
        app.refresh_views()
        status = app.screen.query_one(StatusLine)
        await until(pilot, lambda: "http://127.0.0.1:8000/" in str(status.render()))
        assert "reachable" not in str(status.render())
        await pilot.press("l")
        pane = await until(pilot, lambda: isinstance(app.screen, LogScreen) and app.screen.query_one(LogPane))
        await until(pilot, lambda: any("served" in line for line in pane.lines))
        assert not any("reachable" in line for line in pane.lines)


def test_bind_on_all_interfaces_is_reachable_on_loopback() -> None:
    """The premise of the real-request test: 127.0.0.1 reaches a 0.0.0.0 bind."""
    sock = bind(ListenAddress("0.0.0.0", 0))
    try:
        with socket.create_connection(("127.0.0.1", sock.getsockname()[1]), timeout=5):
            pass
    finally:
        sock.close()
