"""``python manage.py devconsole``: the console started from the project's own
manage.py (devconsole in INSTALLED_APPS), on a real pseudo-terminal, serving
real HTTP on 127.0.0.1 until Ctrl+Q."""

from __future__ import annotations

import os
import pty
import select
import socket
import subprocess
import sys
import threading
import urllib.error
import urllib.request
from pathlib import Path

from devconsole.management.commands.devconsole import console_argv

from .conftest import wait_for

FIXTURE = Path(__file__).parent / "fixtures" / "catproject"
SETTINGS = "catproject.settings_console"


def manage(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "manage.py", *args, "--settings", SETTINGS],
        cwd=FIXTURE,
        capture_output=True,
        text=True,
        timeout=60,
    )


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def home_status(port: int) -> int | None:
    """The status of ``/`` on ``port``, or None while nothing accepts there yet."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return exc.code
    except OSError:
        return None


def test_options_become_devconsole_arguments() -> None:
    options = {
        "addrport": "8123",
        "noreload": True,
        "nothreading": False,
        "ipv6": False,
        "record": None,
        "settings": "a.b",
        "pythonpath": None,
    }
    assert console_argv(options, str(FIXTURE / "manage.py")) == [
        "8123",
        "--noreload",
        "--project",
        str(FIXTURE.resolve()),
        "--settings",
        "a.b",
    ]
    assert console_argv({}, None) == []


def test_help_lists_the_runserver_options() -> None:
    proc = manage("help", "devconsole")
    assert proc.returncode == 0, proc.stderr
    for option in ("addrport", "--noreload", "--nothreading", "--ipv6", "--record"):
        assert option in proc.stdout


def test_bad_address_is_one_line_from_the_cli() -> None:
    proc = manage("devconsole", "127.0.0.1:99999")
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        'devconsole: error: "127.0.0.1:99999": port 99999 is out of range (1-65535)'
    ]


def test_manage_py_devconsole_serves_until_ctrl_q() -> None:
    port = free_port()
    master, slave = pty.openpty()
    env = {**os.environ, "TERM": "xterm-256color", "COLUMNS": "120", "LINES": "40"}
    proc = subprocess.Popen(
        [sys.executable, "manage.py", "devconsole", f"127.0.0.1:{port}", "--noreload", "--settings", SETTINGS],
        cwd=FIXTURE,
        stdin=slave,
        stdout=slave,
        stderr=slave,
        env=env,
        start_new_session=True,
    )
    os.close(slave)
    screen = bytearray()
    done = threading.Event()

    def drain() -> None:  # a full pty would block the console
        while not done.is_set():
            ready, _, _ = select.select([master], [], [], 0.1)
            if ready:
                try:
                    chunk = os.read(master, 65536)
                except OSError:
                    return
                if not chunk:
                    return
                screen.extend(chunk[-200_000:])

    reader = threading.Thread(target=drain, daemon=True)
    reader.start()
    try:
        try:
            status = wait_for(lambda: home_status(port), timeout=60, interval=0.2)
        except AssertionError:  # never served: what the console showed says why
            raise AssertionError(bytes(screen[-2000:]).decode("utf-8", "replace")) from None
        # No URLs and DEBUG: Django's "The install worked" page.
        assert status == 200, bytes(screen[-2000:]).decode("utf-8", "replace")
        # The server starts before the UI: the screen may come a moment later.
        wait_for(lambda: b"devconsole" in screen, timeout=60)
        os.write(master, b"\x11")  # Ctrl+Q
        assert proc.wait(30) == 0
    finally:
        done.set()
        if proc.poll() is None:
            os.killpg(proc.pid, 9)
            proc.wait()
        reader.join(5)
        os.close(master)
    with socket.socket() as sock:  # the port was released
        # SO_REUSEADDR: the TIME_WAIT of a request the server closed first
        # does not count; a listener still holding the port does.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", port))
        sock.listen()
