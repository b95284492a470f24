"""The debugger: ``breakpoint()`` and ``input()`` in a view get the real
terminal; post-mortem on a kept failure; a reload leaves a session intact.

The console is the installed binary in a pty (the smoke test's terminal);
the project is ``tests/projects/debugproj`` (copied: the reload test edits it).
pdb's dialogue is read from the raw bytes the console wrote after a mark, so
text left on the screen by an earlier session never satisfies a wait.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import termios
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from textual.widgets import Label

from devconsole.console.debugger import DebugBroker, DebugSessionInfo
from devconsole.console.project import Project
from devconsole.model.state import ServerState
from devconsole.ui.app import DevConsoleApp
from devconsole.ui.screens.help import QuitScreen
from devconsole.ui.widgets.statusline import StatusLine
from devconsole.wire import debugger as wire
from tests import test_signals, test_tty_smoke
from tests.conftest import Events, serving, until, wait_for
from tests.test_tty_smoke import Terminal, free_port, inotify_watches, panel, panels_drawn, wait_until

launch = test_tty_smoke.launch
terminal_env = test_tty_smoke.terminal_env

PROJECT = Path(__file__).parent / "projects" / "debugproj"


def project_copy(tmp_path: Path) -> Path:
    root = tmp_path / "debugproj"
    shutil.copytree(PROJECT, root, ignore=shutil.ignore_patterns("__pycache__"))
    return root


class Client:
    """One request in a background thread (the view blocks until we answer)."""

    def __init__(self, url: str) -> None:
        self.status: int | None = None
        self.body = ""
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._get, args=(url,), daemon=True)
        self.thread.start()

    def _get(self, url: str) -> None:
        try:
            with urllib.request.urlopen(url, timeout=120) as response:
                self.status, self.body = response.status, response.read().decode()
        except urllib.error.HTTPError as exc:
            self.status, self.body = exc.code, exc.read().decode()
        except BaseException as exc:
            self.error = exc

    def result(self, terminal: Terminal) -> tuple[int | None, str]:
        wait_until(lambda: not self.thread.is_alive(), "the client's response", terminal)
        assert self.error is None, self.error
        return self.status, self.body


def written_since(terminal: Terminal, mark: int, pattern: str, what: str, timeout: float = 60.0) -> None:
    """Wait until the console has written ``pattern`` (a regex) after byte ``mark``."""
    regex = re.compile(pattern.encode())
    wait_until(lambda: regex.search(bytes(terminal.raw[mark:])), what, terminal, timeout)


def row_shown(path: str, status: str) -> Callable[[Any], bool]:
    # The path may be followed by what the request did (``✖ KeyError``).
    pattern = re.compile(rf"\bGET\s+{re.escape(path)}\s.*\s{status}\s")

    def shown(screen: Any) -> bool:
        return any(pattern.search(row) for row in panel(screen, "Requests") or ())

    shown.__name__ = f"GET {path} {status} in the Requests panel"
    return shown


def start_console(launch: Callable[..., Terminal], root: Path) -> tuple[Terminal, int]:
    port = free_port()
    terminal = launch("--project", str(root), f"127.0.0.1:{port}")
    terminal.wait_for(panels_drawn, "the dashboard's four panels", timeout=120)
    return terminal, port


def paused_at_breakpoint(launch: Callable[..., Terminal], tmp_path: Path) -> tuple[Terminal, int, Client, int]:
    """A console on a copy of the project, a request to ``/bp/`` paused at
    pdb's prompt in the terminal: ``(terminal, port, client, mark)``."""
    terminal, port = start_console(launch, project_copy(tmp_path))
    mark = len(terminal.raw)
    client = Client(f"http://127.0.0.1:{port}/bp/")
    written_since(terminal, mark, r"\(Pdb\) ", "pdb's prompt")
    return terminal, port, client, mark


def detach(terminal: Terminal, mark: int) -> None:
    """Ctrl+] then ``d``: the session left paused, the console back."""
    terminal.child.send("\x1d")
    written_since(terminal, mark, r"\[y/N\] or d: detach", "the question, with detach")
    terminal.child.send("d")


def quit_console(terminal: Terminal) -> None:
    terminal.wait_for(panels_drawn, "the dashboard back")
    terminal.child.send("q")
    assert terminal.wait_exit() == 0, terminal.describe()


def test_breakpoint_in_a_view_gets_the_terminal(launch: Callable[..., Terminal], tmp_path: Path) -> None:
    terminal, port = start_console(launch, project_copy(tmp_path))
    mark = len(terminal.raw)
    client = Client(f"http://127.0.0.1:{port}/bp/")
    written_since(terminal, mark, r"GET /bp/ paused at views\.py:8", "the console's line naming the paused request")
    # Python 3.13's pdb stops on the breakpoint() line itself, older ones on the next.
    written_since(terminal, mark, r"views\.py\((8|9)\)bp\(\)[\s\S]*\(Pdb\) ", "pdb's prompt at the view's line")
    mark = len(terminal.raw)
    terminal.child.send("p x\r")
    written_since(terminal, mark, r"\r\n42\r\n", "the local's value")
    # Another request's output goes to the Log, not into the debugger's terminal.
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/shout/?n=7", timeout=30) as response:
        assert response.read() == b"shouted"
    terminal.child.send("c\r")
    assert client.result(terminal) == (200, "bp 42 v1")
    assert b"SHOUTED-7" not in terminal.raw[mark:], "another thread's print reached the debugger's terminal"
    terminal.wait_for(panels_drawn, "the dashboard back after the debugger let go")
    terminal.wait_for(row_shown("/bp/", "200"), "the /bp/ row")
    terminal.child.send("l")
    terminal.wait_for(test_tty_smoke.screen_shows("SHOUTED-7"), "the other request's print in the Log view")
    terminal.child.send("d")
    quit_console(terminal)


def test_input_in_a_view_reads_the_terminal(launch: Callable[..., Terminal], tmp_path: Path) -> None:
    terminal, port = start_console(launch, project_copy(tmp_path))
    mark = len(terminal.raw)
    client = Client(f"http://127.0.0.1:{port}/ask/")
    written_since(terminal, mark, r"your name\? ", "the view's prompt")
    terminal.child.send("Ada\r")
    assert client.result(terminal) == (200, "hello Ada")
    terminal.wait_for(panels_drawn, "the dashboard back after input()")
    terminal.wait_for(row_shown("/ask/", "200"), "the /ask/ row")
    quit_console(terminal)


def test_a_reload_leaves_the_session_intact(launch: Callable[..., Terminal], tmp_path: Path) -> None:
    root = project_copy(tmp_path)
    view = root / "pauses" / "views.py"
    terminal, port = start_console(launch, root)
    # The server says what it imported just before its checks run: only then
    # is a save of the view known to need a new generation.
    terminal.wait_for(test_tty_smoke.screen_shows("checks: ok"), "the checks done (the server's files known)")
    wait_until(lambda: inotify_watches(terminal.child.pid, view.parent), "inotify watch on the app", terminal)
    mark = len(terminal.raw)
    client = Client(f"http://127.0.0.1:{port}/bp/")
    written_since(terminal, mark, r"\(Pdb\) ", "pdb's prompt")

    view.write_text(view.read_text().replace('VERSION = "v1"', 'VERSION = "v2"'))

    def served_v2() -> bool:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/version/", timeout=5) as response:
                return bool(response.read() == b"v2")
        except OSError:
            return False

    wait_until(served_v2, "'v2' from /version/ served by the new generation", terminal)
    mark = len(terminal.raw)
    terminal.child.send("p x\r")
    written_since(terminal, mark, r"\r\n42\r\n", "the paused session still answering")
    terminal.child.send("c\r")
    assert client.result(terminal) == (200, "bp 42 v1")  # the old generation's code finishes it
    terminal.wait_for(panels_drawn, "the dashboard back")
    quit_console(terminal)


def test_pythonbreakpoint_0_does_not_pause(
    launch: Callable[..., Terminal], terminal_env: dict[str, str], tmp_path: Path
) -> None:
    terminal_env["PYTHONBREAKPOINT"] = "0"
    terminal, port = start_console(launch, project_copy(tmp_path))
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/bp/", timeout=60) as response:
        assert (response.status, response.read()) == (200, b"bp 42 v1")
    terminal.wait_for(row_shown("/bp/", "200"), "the /bp/ row")
    quit_console(terminal)


def test_another_breakpoint_hook_runs_in_the_terminal(
    launch: Callable[..., Terminal], terminal_env: dict[str, str], tmp_path: Path
) -> None:
    terminal_env["PYTHONBREAKPOINT"] = "pauses.views.custom_hook"
    terminal, port = start_console(launch, project_copy(tmp_path))
    mark = len(terminal.raw)
    client = Client(f"http://127.0.0.1:{port}/bp/")
    written_since(terminal, mark, r"custom hook\r\nnew version\? ", "the hook's output and prompt")
    terminal.child.send("v9\r")
    assert client.result(terminal) == (200, "bp 42 v9")
    # The session lasted until the request finished, then the console came back.
    terminal.wait_for(row_shown("/bp/", "200"), "the /bp/ row")
    quit_console(terminal)


def test_ctrl_bracket_then_y_ends_the_session_and_quits(launch: Callable[..., Terminal], tmp_path: Path) -> None:
    terminal, port, client, mark = paused_at_breakpoint(launch, tmp_path)
    terminal.child.send("\x1d")
    written_since(terminal, mark, r"quit devconsole", "the question")
    terminal.child.send("y")
    assert terminal.wait_exit() == 0, terminal.describe()
    status, _body = client.result(terminal)
    assert status == 500  # pdb saw the terminal close: the request quit (BdbQuit)


def test_post_mortem_from_a_500s_detail(launch: Callable[..., Terminal], tmp_path: Path) -> None:
    terminal, port = start_console(launch, project_copy(tmp_path))
    client = Client(f"http://127.0.0.1:{port}/crash/")
    assert client.result(terminal)[0] == 500
    terminal.wait_for(row_shown("/crash/", "500"), "the /crash/ row")
    terminal.child.send("\r")
    terminal.wait_for(test_tty_smoke.screen_shows(r"KeyError: 42"), "the 500's detail with its exception")
    mark = len(terminal.raw)
    terminal.child.send("p")
    written_since(terminal, mark, r"GET /crash/ post-mortem at views\.py:34", "the console's line naming the failure")
    written_since(terminal, mark, r"views\.py\(34\)crash\(\)[\s\S]*\(Pdb\) ", "pdb at the failing frame")
    mark = len(terminal.raw)
    terminal.child.send("p failing_local\r")
    written_since(terminal, mark, r"\{'answer': 42\}", "the failing frame's local as it was")
    terminal.child.send("q\r")
    terminal.wait_for(test_tty_smoke.screen_shows(r"KeyError: 42"), "the console back on the detail")
    terminal.child.send("\x1b")
    quit_console(terminal)


def test_a_second_breakpoint_waits_its_turn(launch: Callable[..., Terminal], tmp_path: Path) -> None:
    terminal, port = start_console(launch, project_copy(tmp_path))
    mark = len(terminal.raw)
    first = Client(f"http://127.0.0.1:{port}/bp/")
    written_since(terminal, mark, r"\(Pdb\) ", "the first request's pdb")
    second = Client(f"http://127.0.0.1:{port}/bp/")
    # Detached (Ctrl+] d), the console shows the second request waiting...
    terminal.child.send("\x1d")
    written_since(terminal, mark, r"d: detach", "the question")
    terminal.child.send("d")
    terminal.wait_for(
        test_tty_smoke.screen_shows(r"debugger: GET /bp/ paused at views\.py:8 \+1 waiting \(b: back to it\)"),
        "the status line: the paused request, one more waiting",
    )
    terminal.wait_for(sockets_row(r"debug waiting\b"), "the waiting request's Sockets row")
    # ... and back in the debugger (b), the bridge's first line counts it.
    mark = len(terminal.raw)
    terminal.child.send("b")
    written_since(
        terminal, mark, r"paused at views\.py:8 \(\+1 waiting\)[\s\S]*\(Pdb\) ", "the bridge's line, then pdb's prompt"
    )
    mark = len(terminal.raw)
    terminal.child.send("c\r")
    assert first.result(terminal) == (200, "bp 42 v1")
    written_since(
        terminal, mark, r"GET /bp/ paused at views\.py:\d+[\s\S]*\(Pdb\) ", "the second request's pdb, its turn come"
    )
    terminal.child.send("c\r")
    assert second.result(terminal) == (200, "bp 42 v1")
    quit_console(terminal)


def sockets_row(pattern: str) -> Callable[[Any], bool]:
    regex = re.compile(pattern)

    def shown(screen: Any) -> bool:
        return any(regex.search(row) for row in panel(screen, "Sockets") or ())

    shown.__name__ = f"{pattern!r} in the Sockets panel"
    return shown


def test_detach_shows_the_paused_request_and_b_goes_back(launch: Callable[..., Terminal], tmp_path: Path) -> None:
    terminal, port, client, mark = paused_at_breakpoint(launch, tmp_path)
    detach(terminal, mark)
    terminal.wait_for(panels_drawn, "the console back, the request still paused")
    terminal.wait_for(sockets_row(r"· at views\.py:8 .*\bdebugger\b"), "the paused request's Sockets row")
    terminal.wait_for(
        test_tty_smoke.screen_shows(r"debugger: GET /bp/ paused at views\.py:8 \(b: back to it\)"),
        "the status line naming the paused request",
    )
    assert client.thread.is_alive(), "the request did not stay paused"
    mark = len(terminal.raw)
    terminal.child.send("b")
    written_since(terminal, mark, r"GET /bp/ paused at views\.py:8[\s\S]*\(Pdb\) ", "back in pdb, its prompt again")
    mark = len(terminal.raw)
    terminal.child.send("p x\r")
    written_since(terminal, mark, r"\r\n42\r\n", "the session still answering")
    terminal.child.send("c\r")
    assert client.result(terminal) == (200, "bp 42 v1")
    terminal.wait_for(panels_drawn, "the dashboard back")
    terminal.wait_for(row_shown("/bp/", "200"), "the /bp/ row")
    quit_console(terminal)


def test_sigterm_while_debugging_restores_the_terminal(launch: Callable[..., Terminal], tmp_path: Path) -> None:
    terminal, port, client, mark = paused_at_breakpoint(launch, tmp_path)
    os.kill(terminal.child.pid, signal.SIGTERM)
    assert terminal.wait_exit() == 128 + signal.SIGTERM, terminal.describe()
    lflag = termios.tcgetattr(terminal.child.child_fd)[3]
    assert lflag & termios.ICANON and lflag & termios.ECHO, "the terminal was left in raw mode"
    assert client.result(terminal)[0] == 500  # the debugger saw its terminal close


def test_sighup_while_a_request_waits_detached_leaves_nothing(launch: Callable[..., Terminal], tmp_path: Path) -> None:
    """The terminal window closed while a request is paused in the debugger
    (detached, the dashboard shown): the console exits like on q, the
    terminal restored, the paused request answered, no child left."""
    terminal, port, client, mark = paused_at_breakpoint(launch, tmp_path)
    detach(terminal, mark)
    terminal.wait_for(sockets_row(r"· at views\.py:8 .*\bdebugger\b"), "the paused request's Sockets row")
    children = set(test_signals.descendants(terminal.child.pid))
    assert children, "no server child under the console"
    os.kill(terminal.child.pid, signal.SIGHUP)
    assert terminal.wait_exit() == 128 + signal.SIGHUP, terminal.describe()
    lflag = termios.tcgetattr(terminal.child.child_fd)[3]
    assert lflag & termios.ICANON and lflag & termios.ECHO, "the terminal was left in raw mode"
    raw = bytes(terminal.raw)
    assert test_signals.restored_after_last(raw, test_tty_smoke.ENTER_ALT_SCREEN, test_tty_smoke.LEAVE_ALT_SCREEN), (
        f"left in the alternate screen\n{terminal.describe()}"
    )
    assert client.result(terminal)[0] == 500  # the debugger saw its terminal go
    wait_until(lambda: test_tty_smoke.port_is_free(port), f"127.0.0.1:{port} freed", terminal)
    wait_until(
        lambda: not {pid for pid in children if test_signals.alive(pid)}, "every child of the console ended", terminal
    )


# -- post-mortem: the broker and a real server child, no UI ----------------------------


def read_until(fd: int, pattern: bytes, timeout: float = 30.0) -> bytes:
    """What the debugger writes on the pty's master until ``pattern`` appears."""
    seen = b""
    deadline = time.monotonic() + timeout
    os.set_blocking(fd, False)
    while pattern not in seen:
        assert time.monotonic() < deadline, f"no {pattern!r} in {seen!r}"
        try:
            seen += os.read(fd, 4096)
        except BlockingIOError:
            time.sleep(0.01)
    return seen


def test_post_mortem_on_a_kept_failure(tmp_path: Path) -> None:
    root = project_copy(tmp_path)
    broker = DebugBroker()
    broker.start()
    project = Project(root / "manage.py", env=tuple(broker.env.items()))
    events = Events()
    try:
        with serving(project, events) as supervisor:
            url = f"http://127.0.0.1:{supervisor.address.port}/boom/?n=3"
            with pytest.raises(urllib.error.HTTPError) as failed:
                urllib.request.urlopen(url, timeout=30)
            token = failed.value.read().decode().removeprefix("pm=")
            assert failed.value.code == 500 and token

            assert broker.post_mortem(1, "pm-unknown") is None
            assert wait_for(lambda: broker.notices(), timeout=30) == [
                "post-mortem: that failure is no longer kept (only the last 5 are)"
            ]

            assert broker.post_mortem(1, token) is None
            info: DebugSessionInfo = wait_for(broker.next_session, timeout=30)
            assert not os.get_inheritable(info.master), "a received pty master would leak into children"
            assert (info.kind, info.where) == ("post-mortem", "views.py:20")
            read_until(info.master, b"(Pdb) ")
            os.write(info.master, b"p secret_local\n")
            assert b"'kept-3'" in read_until(info.master, b"(Pdb) ")
            os.write(info.master, b"q\n")
            assert info.ended.wait(30), "the session never ended"
            broker.finish(info)
            assert broker.post_mortem(99, token) == "generation 99 has exited: its failures are gone"
    finally:
        broker.close()
    assert not os.path.exists(broker.directory)


async def test_quit_while_a_request_waits_for_the_debugger_asks_first() -> None:
    """``q`` with a request waiting for the terminal: the status line says so,
    the quit asks, ``y`` quits (a child's waiting thread, played by a socket)."""
    broker = DebugBroker()
    broker.start()
    child = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    child.connect(broker.path)
    child.send(wire.encode({"op": "hello", "generation": 3, "pid": 1}))
    waiting = {"session": 1, "thread": "Thread-1", "request": "GET /bp/", "where": "views.py:8", "kind": "breakpoint"}
    child.send(wire.encode({"op": "waiting", **waiting}))
    app = DevConsoleApp(state=ServerState(), debug_broker=broker)
    try:
        async with app.run_test(size=(160, 48)) as pilot:
            await until(pilot, broker.waiting)
            expected = "debugger: GET /bp/ paused at views.py:8, waiting for the terminal"
            assert app.debugger_text() == expected
            await until(pilot, lambda: expected in str(app.screen.query_one(StatusLine).render()))
            await pilot.press("q")
            screen = await until(pilot, lambda: app.screen if isinstance(app.screen, QuitScreen) else None)
            assert expected in str(screen.query_one("#quit-question", Label).render())
            await pilot.press("y")
            await until(pilot, lambda: not app.is_running)
    finally:
        child.close()
        broker.close()


async def test_many_sessions_one_after_another_do_not_nest() -> None:
    """A breakpoint() in a loop, continued each time: every session is
    bridged from its own tick, never from inside the last bridge (which
    nested a few frames per session until RecursionError). A child played by
    a socket; headless, each bridge gives up at once (no terminal to hand)."""
    broker = DebugBroker()
    broker.start()
    child = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    child.connect(broker.path)
    child.send(wire.encode({"op": "hello", "generation": 1, "pid": 1}))
    count = 400
    for number in range(1, count + 1):
        read, write = os.pipe()
        header = {"session": number, "thread": "Thread-1", "request": "GET /loop/", "where": "views.py:3"}
        socket.send_fds(child, [wire.encode({"op": "begin", "kind": "breakpoint", **header})], [read])
        os.close(read)
        os.close(write)
    wait_for(lambda: len(broker.sessions()) == count, timeout=30)  # all queued before the app looks
    app = DevConsoleApp(state=ServerState(), debug_broker=broker)
    try:
        async with app.run_test(size=(160, 48)) as pilot:
            await until(pilot, lambda: not broker.sessions(), timeout=120)
            assert app.is_running
    finally:
        child.close()
        broker.close()
    assert app.return_code in (None, 0)


def test_request_finished_never_raises() -> None:
    """A session whose fds cannot be restored still lets go of the terminal
    (the next thread's turn), and the finisher does not raise."""
    from devconsole.child import debugger as child_debugger

    assert child_debugger._turn.acquire(blocking=False)
    session = child_debugger.DebugSession(1, "breakpoint", "views.py:8")
    bad = 1_000_000  # never open: dup2 from it fails
    session._saved = (bad, bad)
    child_debugger._active = session
    try:
        child_debugger.request_finished(None)
        assert child_debugger._active is None
        assert child_debugger._turn.acquire(blocking=False), "the terminal's turn was never given back"
        child_debugger._turn.release()
    finally:
        child_debugger._active = None
        if child_debugger._turn.locked():
            child_debugger._turn.release()


def test_a_closed_session_leaves_nothing_for_its_saved_stdout_fd() -> None:
    """Another thread that picked the session's ``others_out`` just before
    the session closed cannot write into the fd's number once it is reused
    (a client's socket, the event pipe): the wrapper is closed with it."""
    from devconsole.child import debugger as child_debugger

    read, write = os.pipe()
    session = child_debugger.DebugSession(1, "breakpoint", "views.py:8")
    session.owner = -1  # another thread's session
    session.others_out = open(write, "w", closefd=False, encoding="utf-8")
    default = open(os.devnull, "w", encoding="utf-8")
    routed = child_debugger._Routed(default, 1)
    child_debugger._active = session
    try:
        routed.write("before\n")
        stale = session.others_out  # picked, not yet written to
        session.close()
        os.close(write)
        reused_read, reused_write = os.pipe()  # may take the closed number
        try:
            with pytest.raises(ValueError):
                stale.write("stray\n")
            routed.write("after\n")  # the session is closed: where stdout was before
            del stale
            import gc

            gc.collect()
            os.set_blocking(reused_read, False)
            with pytest.raises(BlockingIOError):
                os.read(reused_read, 100)
        finally:
            os.close(reused_read)
            os.close(reused_write)
        assert os.read(read, 100) == b"before\n"
    finally:
        child_debugger._active = None
        default.close()
        os.close(read)
