"""The console's control channel is not the server child's stdin: a view that
reads stdin (``input()``, ``sys.stdin.read()``) gets end-of-file, and the
generation still obeys ``stop`` and reloads afterwards. Real server children
(forked and spawned) of a copy of the demo project, real requests."""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from .conftest import LiveConsole, http_get, live_console, wait_for

pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="the fork server needs POSIX")

VIEWS = """
import sys

from django.http import HttpResponse

VERSION = "one"


def ask(request):
    try:
        answer = input("name? ")
    except EOFError as exc:
        return HttpResponse(f"EOFError {exc}")
    return HttpResponse(f"read {answer!r}")


def ask_uncaught(request):
    return HttpResponse(input())


def slurp(request):
    return HttpResponse(f"stdin gave {len(sys.stdin.read())} characters")


def version(request):
    return HttpResponse(VERSION)
"""

URLS = """
from demosite import ctl_views

urlpatterns += [
    path("ctl/ask/", ctl_views.ask),
    path("ctl/ask-uncaught/", ctl_views.ask_uncaught),
    path("ctl/slurp/", ctl_views.slurp),
    path("ctl/version/", ctl_views.version),
]
"""


def _add_views(root: Path) -> None:
    (root / "demosite" / "ctl_views.py").write_text(VIEWS)
    with (root / "demosite" / "urls.py").open("a") as urls:
        urls.write(URLS)


@pytest.fixture(params=["forked", "spawned"])
def console(request: pytest.FixtureRequest, tmp_path: Path, demo_db: Path) -> Iterator[LiveConsole]:
    with live_console(tmp_path, demo_db, spawned=request.param == "spawned", prepare=_add_views) as console:
        yield console


def get(port: int, path: str) -> tuple[int, bytes]:
    return http_get(port, path, timeout=30, close=False)


def _reloaded_to(console: LiveConsole, version: str) -> None:
    console.save_version("demosite/ctl_views.py", version)
    wait_for(lambda: get(console.port, "/ctl/version/") == (200, version.encode()), timeout=60)


def test_input_in_a_view_gets_eof_and_the_generation_still_obeys(console: LiveConsole) -> None:
    assert get(console.port, "/ctl/ask/") == (200, b"EOFError EOF when reading a line")
    status, _ = get(console.port, "/ctl/ask-uncaught/")
    assert status == 500
    wait_for(lambda: any("EOFError" in line.text for line in list(console.events.state.log)))
    # The console's next message still reaches the generation: a reload
    # (stop to the old one, a new one serving the new code).
    generation = console.events.state.generation
    _reloaded_to(console, "two")
    wait_for(lambda: console.events.state.generation > generation)
    exits = wait_for(lambda: [e for e in console.events.of("exit") if e["generation"] == generation])
    assert exits[0]["returncode"] == 0, exits  # it stopped when told, not killed


def test_reading_all_of_stdin_cannot_take_a_control_message(console: LiveConsole) -> None:
    assert get(console.port, "/ctl/slurp/") == (200, b"stdin gave 0 characters")
    # Twice: a second read of /dev/null is at its end again, nothing blocks.
    assert get(console.port, "/ctl/slurp/") == (200, b"stdin gave 0 characters")
    before = console.events.state.generation
    _reloaded_to(console, "three")
    assert get(console.port, "/ctl/slurp/") == (200, b"stdin gave 0 characters")
    # Every request is a row: none was cut by the reload (said, if it were,
    # when the old generation exits).
    wait_for(lambda: [e for e in console.events.of("exit") if e["generation"] == before])
    assert console.events.state.cut_requests == 0
    # ...and the last generation stops when told, with exit status 0.
    last = console.events.state.generation
    console.supervisor.stop()
    exits = wait_for(lambda: [e for e in console.events.of("exit") if e["generation"] == last])
    assert exits[0]["returncode"] == 0, exits


def test_the_console_going_away_ends_the_generation(console: LiveConsole) -> None:
    child = console.supervisor.child
    assert child is not None
    generation = child.generation
    # No stop message: the end of the control channel alone (what a console
    # killed with SIGKILL leaves behind).
    child._control.shutdown(socket.SHUT_RDWR)
    exits = wait_for(lambda: [e for e in console.events.of("exit") if e["generation"] == generation], timeout=30)
    assert exits[0]["returncode"] == 0, exits


def test_a_received_socket_is_not_inherited_by_a_process_the_receiver_starts() -> None:
    from devconsole.wire import control

    ours, theirs = control.pair()
    left, right = socket.socketpair()
    try:
        control.send_header(ours, "handover", {"conn": 1}, left.fileno())
        message = control.receive(theirs)
        assert message is not None
        word, _arg, fds = message
        assert word == "handover" and len(fds) == 1
        try:
            assert not os.get_inheritable(fds[0])
        finally:
            os.close(fds[0])
    finally:
        for sock in (ours, theirs, left, right):
            sock.close()


def test_a_spare_s_hints_are_cut_to_what_one_packet_carries() -> None:
    """A fork server's message is one packet of a Unix socket, which its send
    buffer bounds: a spare's hints that would not fit are left out, the
    least worth first, and the rest goes through."""
    from devconsole.wire import forkserver as wire

    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    with ours, theirs:
        big = {
            "op": "serve",
            "args": ["--generation", "0"],
            "normalized": "x" * 1_500_000,
            "sources": [f"/p/app{n}/views.py" for n in range(8000)],
            "patterns": "y" * 20_000,
            "preload": ["django.contrib.admin"],
        }
        try:
            wire.send(ours, dict(big))
        except OSError:
            pass  # too long for one packet here: what fit() is for
        else:
            raise AssertionError("the whole message went through: the test needs a larger one")
        fitted = wire.fit(dict(big), (("normalized", ""), ("sources", []), ("patterns", ""), ("preload", [])))
        assert fitted["normalized"] == "" and fitted["sources"] == []
        assert fitted["patterns"] == big["patterns"] and fitted["preload"] == big["preload"]
        wire.send(ours, fitted)
        message, fds, gone = wire.receive(theirs)
        assert message == fitted and fds == [] and not gone
        small = {"op": "serve", "normalized": "z", "sources": ["/p/a.py"]}
        assert wire.fit(dict(small), (("normalized", ""),)) == small  # left whole when it fits
