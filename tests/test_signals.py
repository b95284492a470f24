"""SIGTERM and SIGHUP to the console (``kill``, a closed terminal window), in
a real terminal: the app exits the way ``q`` does, so the terminal is
restored (alternate screen left, mouse tracking off, cursor shown), the
children are stopped, the port is freed, a recording ends with whole lines,
and the exit status is 128 + the signal."""

from __future__ import annotations

import json
import os
import signal
import sys
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

import pytest

from tests import test_tty_smoke
from tests.conftest import alive, demo_copy
from tests.test_tty_smoke import ENTER_ALT_SCREEN, LEAVE_ALT_SCREEN, Terminal, free_port, panels_drawn, port_is_free

# The installed devconsole in a pty, with a user's environment: the smoke
# test's own fixtures.
launch = test_tty_smoke.launch
terminal_env = test_tty_smoke.terminal_env

pytestmark = pytest.mark.tty

MOUSE_ON, MOUSE_OFF = b"\x1b[?1000h", b"\x1b[?1000l"
CURSOR_HIDDEN, CURSOR_SHOWN = b"\x1b[?25l", b"\x1b[?25h"


def descendants(pid: int) -> set[int]:
    """Every process below ``pid`` now (its children, theirs…), read from /proc."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # "pid (comm) state ppid ...": comm may hold spaces and parentheses.
        parents[int(entry.name)] = int(stat.rsplit(")", 1)[1].split()[1])
    found: set[int] = set()
    frontier = {pid}
    while frontier:
        frontier = {child for child, parent in parents.items() if parent in frontier} - found
        found |= frontier
    return found


def wait_exit_status(terminal: Terminal, timeout: float = 60.0) -> int:
    """The exit status once the program ended (a death by signal fails the test)."""
    deadline = time.monotonic() + timeout
    while not terminal.exited:
        assert time.monotonic() < deadline, (
            f"devconsole still running {timeout:.0f}s after the signal\n{terminal.describe()}"
        )
        terminal._pump(0.2)
    assert terminal.child.signalstatus is None, (
        f"devconsole died of signal {terminal.child.signalstatus} instead of exiting\n{terminal.describe()}"
    )
    return int(terminal.child.exitstatus)


def restored_after_last(raw: bytes, enable: bytes, disable: bytes) -> bool:
    """Whether ``disable`` was written after the last ``enable``."""
    last = raw.rfind(enable)
    return last >= 0 and raw.find(disable, last) > last


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP], ids=["SIGTERM", "SIGHUP"])
def test_a_signal_quits_like_q_and_restores_the_terminal(
    launch: Callable[..., Terminal], tmp_path: Path, signum: int
) -> None:
    port = free_port()
    record = tmp_path / "session.jsonl"
    terminal = launch("--demo", f"127.0.0.1:{port}", "--record", str(record))
    terminal.wait_for(panels_drawn, "the dashboard's four panels", timeout=120)
    # The server child (and the fork servers) are up: the port answers.
    children: set[int] = set()

    def serving() -> bool:
        children.update(descendants(terminal.child.pid))
        return not port_is_free(port) and bool(children)

    deadline = time.monotonic() + 60
    while not serving():
        assert time.monotonic() < deadline, f"no child serving 127.0.0.1:{port}\n{terminal.describe()}"
        terminal._pump(0.2)
    # A request, so the recording holds more than its header.
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/?token=abc", timeout=60) as response:
        response.read()
    children.update(descendants(terminal.child.pid))

    os.kill(terminal.child.pid, signum)
    assert wait_exit_status(terminal) == 128 + signum, terminal.describe()

    raw = bytes(terminal.raw)
    assert raw.find(ENTER_ALT_SCREEN) >= 0, "devconsole never entered the alternate screen"
    assert restored_after_last(raw, ENTER_ALT_SCREEN, LEAVE_ALT_SCREEN), (
        f"left in the alternate screen\n{terminal.describe()}"
    )
    assert restored_after_last(raw, MOUSE_ON, MOUSE_OFF), f"mouse tracking left on\n{terminal.describe()}"
    assert restored_after_last(raw, CURSOR_HIDDEN, CURSOR_SHOWN), f"cursor left hidden\n{terminal.describe()}"
    assert b"Traceback" not in raw, terminal.describe()
    assert port_is_free(port), f"127.0.0.1:{port} still taken after the signal"
    left = {pid for pid in children if alive(pid)}
    assert not left, f"children still running after the console exited: {sorted(left)}"

    data = record.read_bytes()
    assert data.endswith(b"\n"), f"the recording ends mid-line: {data[-200:]!r}"
    lines = [json.loads(line) for line in data.splitlines()]
    assert lines[0]["type"] == "recording"
    assert any(event["type"] == "request" for event in lines[1:]), "the request was not recorded"


#: A side process that ignores SIGTERM and starts a grandchild (in its group) that ignores it too; both
#: pids go to ``pids`` once the grandchild runs.
STUBBORN = """
import os, signal, subprocess, sys, time
signal.signal(signal.SIGTERM, signal.SIG_IGN)
child = subprocess.Popen([sys.executable, "-c", "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
                          "open('grandchild', 'w').close(); time.sleep(600)"])
while not os.path.exists("grandchild"):
    time.sleep(0.02)
with open("pids.tmp", "w") as file:
    file.write(f"{os.getpid()} {child.pid}")
os.rename("pids.tmp", "pids")
print("stubborn ready", flush=True)
time.sleep(600)
"""


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP], ids=["SIGTERM", "SIGHUP"])
def test_a_signal_leaves_no_side_process_behind(
    launch: Callable[..., Terminal], terminal_env: dict[str, str], tmp_path: Path, demo_db: Path, signum: int
) -> None:
    root, _ = demo_copy(tmp_path, demo_db)
    terminal_env["DEVCONSOLE_DEMO_DB"] = str(tmp_path / "demo.sqlite3")
    (root / "stubborn.py").write_text(STUBBORN)
    (root / "Procfile.dev").write_text(f"stubborn: exec {sys.executable} stubborn.py\n")
    port = free_port()
    terminal = launch("--project", str(root), f"127.0.0.1:{port}")
    terminal.wait_for(panels_drawn, "the dashboard's four panels", timeout=120)
    pids_file = root / "pids"
    deadline = time.monotonic() + 60
    while not pids_file.exists():
        assert time.monotonic() < deadline, f"the side process never started\n{terminal.describe()}"
        terminal._pump(0.2)
    leader, grandchild = (int(word) for word in pids_file.read_text().split())
    assert alive(leader) and alive(grandchild)

    os.kill(terminal.child.pid, signum)
    assert wait_exit_status(terminal) == 128 + signum, terminal.describe()
    # Both ignore SIGTERM: the stop waits for SIGKILL, and says so once the terminal is back.
    raw = bytes(terminal.raw)
    said = raw.find(b"devconsole: stopping side processes")
    assert said > raw.rfind(LEAVE_ALT_SCREEN) and b"(stubborn)" in raw[said:], terminal.describe()
    assert not alive(leader) and not alive(grandchild), "a side process outlived the console"
    assert port_is_free(port)
