"""Real-terminal smoke tests: the installed ``devconsole`` binary in a pty.

Why a pty: Python 3.12+ crashed at start (``ScreenStackError``) and Textual's
headless ``run_test`` never showed it; only a real terminal does. So these
tests launch the console script installed beside the running interpreter,
exactly as a user types it, in a pseudo-terminal of 160x48 (pexpect), and
render what it writes with a terminal emulator (pyte) so the assertions wait
on the screen a user would see — never on a fixed sleep.

They import nothing from devconsole: the matrix's ``smoke`` session runs this
file alone (``-m tty``) against a non-editable install of each supported
Python x Django combination.
"""

from __future__ import annotations

import contextlib
import os
import re
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import pexpect
import pyte
import pytest

pytestmark = pytest.mark.tty

COLUMNS, ROWS = 160, 48
DEVCONSOLE = Path(sys.executable).with_name("devconsole")
RECORDING = Path(__file__).parent / "recordings" / "demo.jsonl"
PANEL_TITLES = ("Requests", "Sockets", "Select loop", "Autoreload")
ENTER_ALT_SCREEN = b"\x1b[?1049h"
LEAVE_ALT_SCREEN = b"\x1b[?1049l"


class Terminal:
    """A command running in a pty, its output fed to a pyte screen.

    ``raw`` keeps every byte written, so tests can check escape sequences the
    emulator consumes (the alternate screen) and show the tail on failure.
    """

    def __init__(self, argv: list[str], env: dict[str, str], cwd: Path) -> None:
        self.screen = pyte.Screen(COLUMNS, ROWS)
        self.stream = pyte.ByteStream(self.screen)
        self.raw = bytearray()
        self.exited = False
        self.child = pexpect.spawn(argv[0], argv[1:], env=env, cwd=str(cwd), dimensions=(ROWS, COLUMNS), timeout=None)

    def text(self) -> str:
        """The rendered screen, one line per row."""
        return "\n".join(line.rstrip() for line in self.screen.display)

    def _pump(self, timeout: float) -> None:
        """Read what the program wrote within ``timeout`` seconds; note its exit."""
        if self.exited:
            return
        try:
            data = self.child.read_nonblocking(65536, timeout=timeout)
        except pexpect.TIMEOUT:
            return
        except pexpect.EOF:
            self.exited = True
            self.child.wait()
            return
        self.raw.extend(data)
        self.stream.feed(data)

    def describe(self) -> str:
        """The screen and the last output, for an assertion message."""
        tail = bytes(self.raw[-3000:]).decode("utf-8", "replace")
        return f"--- screen ---\n{self.text()}\n--- last output (raw) ---\n{tail!r}"

    def wait_for(self, predicate: Callable[[pyte.Screen], object], what: str, timeout: float = 60.0) -> None:
        """Read output until ``predicate(screen)`` holds; fail on exit or timeout."""
        deadline = time.monotonic() + timeout
        while not predicate(self.screen):
            if self.exited:
                raise AssertionError(
                    f"devconsole exited (status {self.child.exitstatus}, signal {self.child.signalstatus}) before {what}\n{self.describe()}"
                )
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}\n{self.describe()}")
            self._pump(0.2)

    def wait_exit(self, timeout: float = 30.0) -> int:
        """Read output until the program exits; its exit status."""
        deadline = time.monotonic() + timeout
        while not self.exited:
            if time.monotonic() > deadline:
                raise AssertionError(f"devconsole still running {timeout:.0f}s after quitting\n{self.describe()}")
            self._pump(0.2)
        assert self.child.signalstatus is None, (
            f"devconsole killed by signal {self.child.signalstatus}\n{self.describe()}"
        )
        return int(self.child.exitstatus)

    def close(self) -> None:
        """Stop the program if a failed test left it running (its children follow it)."""
        if self.child.isalive():
            self.child.terminate(force=True)
        self.child.close(force=True)


def free_port() -> int:
    """A port nothing listens on right now (the kernel picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def port_is_free(port: int) -> bool:
    """Whether a new listener can take ``port`` (SO_REUSEADDR: our own
    request's TIME_WAIT does not count, a listener still holding it does)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("127.0.0.1", port))
            probe.listen()
        except OSError:
            return False
        return True


def panel(screen: pyte.Screen, title: str) -> list[str] | None:
    """The rows inside the bordered panel titled ``title``, or None while it is
    not drawn. Panels sit side by side, so the box's columns are cut out too."""
    rows = screen.display
    for top, line in enumerate(rows):
        left = line.find(f"╭─ {title} ")
        if left < 0:
            continue
        right = line.find("╮", left)
        if right < 0:
            return None
        inside: list[str] = []
        for row in rows[top + 1 :]:
            if row[left : left + 1] != "│":
                break
            inside.append(row[left + 1 : right])
        return inside
    return None


def panels_drawn(screen: pyte.Screen) -> bool:
    """The dashboard's four panels are on screen, each in its box."""
    return all(panel(screen, title) is not None for title in PANEL_TITLES)


def request_row(status: str = r"\d{3}", path: str = "/") -> Callable[[pyte.Screen], bool]:
    """Whether the Requests panel shows a ``GET path`` row with ``status``."""
    pattern = re.compile(rf"\bGET\s+{re.escape(path)}\s+{status}\b")

    def shown(screen: pyte.Screen) -> bool:
        return any(pattern.search(row) for row in panel(screen, "Requests") or ())

    shown.__name__ = f"a GET / row with status {status} in the Requests panel"
    return shown


def user_terminal_env(tmp_path: Path) -> dict[str, str]:
    """The environment of a user's terminal, with a home and cache of its own
    so the demo database is created fresh in the test's temporary directory."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("DEVCONSOLE_", "TEXTUAL", "PYTEST_")) and k not in ("NO_COLOR", "COLUMNS", "LINES")
    }
    home = tmp_path / "home"
    (home / ".cache").mkdir(parents=True, exist_ok=True)
    env.update(
        HOME=str(home),
        XDG_CACHE_HOME=str(home / ".cache"),
        TERM="xterm-256color",
        COLORTERM="truecolor",
        LANG="C.UTF-8",
        LC_ALL="C.UTF-8",
    )
    # The environment devconsole is installed in is the one the user activated.
    if sys.prefix != sys.base_prefix:
        env["VIRTUAL_ENV"] = sys.prefix
    else:
        env.pop("VIRTUAL_ENV", None)
    return env


@pytest.fixture
def terminal_env(tmp_path: Path) -> dict[str, str]:
    return user_terminal_env(tmp_path)


@pytest.fixture
def launch(tmp_path: Path, terminal_env: dict[str, str]) -> Iterator[Callable[..., Terminal]]:
    """Start the installed devconsole with the arguments given, in a pty."""
    assert DEVCONSOLE.exists(), f"no devconsole installed beside {sys.executable}: pip install . first"
    started: list[Terminal] = []

    def start(*args: str) -> Terminal:
        terminal = Terminal([str(DEVCONSOLE), *args], terminal_env, cwd=tmp_path)
        started.append(terminal)
        return terminal

    yield start
    for terminal in started:
        terminal.close()


def test_demo_starts_serves_and_quits_in_a_real_terminal(launch: Callable[..., Terminal]) -> None:
    port = free_port()
    terminal = launch("--demo", f"127.0.0.1:{port}")
    terminal.wait_for(panels_drawn, "the dashboard's four panels", timeout=120)

    with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=60) as response:
        assert response.status == 200
        response.read()
    terminal.wait_for(request_row("200"), "the GET / row, status 200, in the Requests panel")

    terminal.child.send("q")
    assert terminal.wait_exit() == 0, terminal.describe()
    assert port_is_free(port), f"127.0.0.1:{port} still taken after devconsole quit"
    entered = terminal.raw.find(ENTER_ALT_SCREEN)
    assert entered >= 0, "devconsole never entered the alternate screen"
    assert terminal.raw.find(LEAVE_ALT_SCREEN, entered) > entered, (
        f"the terminal was left in the alternate screen\n{terminal.describe()}"
    )


def test_replay_starts_and_quits_in_a_real_terminal(launch: Callable[..., Terminal]) -> None:
    terminal = launch("replay", str(RECORDING))
    terminal.wait_for(panels_drawn, "the dashboard's four panels")
    # A row the replay leaves on screen: the first one (GET /) scrolls out
    # once the table is full, and a loaded machine may draw it too late.
    terminal.wait_for(request_row("200", "/ping/"), "a recorded GET /ping/ row in the Requests panel")

    terminal.child.send("q")
    assert terminal.wait_exit() == 0, terminal.describe()
    entered = terminal.raw.find(ENTER_ALT_SCREEN)
    assert entered >= 0 and terminal.raw.find(LEAVE_ALT_SCREEN, entered) > entered, (
        f"the terminal was left in the alternate screen\n{terminal.describe()}"
    )


def write_project(root: Path) -> Path:
    """A tiny Django project: one app whose view answers ``v1`` as text/plain,
    its SQLite database in ``root``. Returns the view's file."""
    (root / "manage.py").write_text(
        "import os\nimport sys\n\n"
        "if __name__ == '__main__':\n"
        "    os.environ.setdefault('DJANGO_SETTINGS_MODULE', 'tinysite.settings')\n"
        "    from django.core.management import execute_from_command_line\n\n"
        "    execute_from_command_line(sys.argv)\n"
    )
    site = root / "tinysite"
    site.mkdir()
    (site / "__init__.py").write_text("")
    (site / "settings.py").write_text(
        "from pathlib import Path\n\n"
        "BASE_DIR = Path(__file__).resolve().parent.parent\n"
        "SECRET_KEY = 'smoke-test'\n"
        "DEBUG = True\n"
        "ALLOWED_HOSTS = ['127.0.0.1', 'localhost']\n"
        "INSTALLED_APPS = ['hello']\n"
        "MIDDLEWARE = []\n"
        "ROOT_URLCONF = 'tinysite.urls'\n"
        "DATABASES = {'default': {'ENGINE': 'django.db.backends.sqlite3', 'NAME': BASE_DIR / 'db.sqlite3'}}\n"
        "USE_TZ = True\n"
        "DEFAULT_AUTO_FIELD = 'django.db.models.BigAutoField'\n"
    )
    (site / "urls.py").write_text(
        "from django.urls import path\n\nfrom hello import views\n\nurlpatterns = [path('', views.index)]\n"
    )
    app = root / "hello"
    app.mkdir()
    (app / "__init__.py").write_text("")
    view = app / "views.py"
    view.write_text(view_source("v1"))
    return view


def view_source(answer: str) -> str:
    return f"from django.http import HttpResponse\n\n\ndef index(request):\n    return HttpResponse({answer!r}, content_type='text/plain')\n"


def get(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=60) as response:
        assert response.status == 200
        return str(response.read().decode())


def wait_until(predicate: Callable[[], object], what: str, terminal: Terminal, timeout: float = 60.0) -> None:
    """Keep the screen current and poll ``predicate`` until it holds."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if terminal.exited or time.monotonic() > deadline:
            raise AssertionError(f"no {what} after {timeout:.0f}s\n{terminal.describe()}")
        terminal._pump(0.1)


def inotify_watches(pid: int, path: Path) -> bool:
    """Whether process ``pid`` has the kernel watch ``path`` (an inotify
    watch on its inode, read from /proc). True where /proc cannot tell (not Linux)."""
    fd_dir = Path(f"/proc/{pid}/fd")
    if not fd_dir.is_dir():
        return True
    wanted = f"ino:{os.stat(path).st_ino:x} "
    for fd in os.listdir(fd_dir):
        try:
            if (
                os.readlink(fd_dir / fd) == "anon_inode:inotify"
                and wanted in Path(f"/proc/{pid}/fdinfo/{fd}").read_text()
            ):
                return True
        except OSError:
            continue  # closed meanwhile
    return False


def screen_shows(pattern: str) -> Callable[[pyte.Screen], bool]:
    regex = re.compile(pattern)

    def shown(screen: pyte.Screen) -> bool:
        return any(regex.search(row) for row in screen.display)

    shown.__name__ = f"{pattern!r} on screen"
    return shown


def list_row_background(screen: pyte.Screen, name: str) -> str | None:
    """The background colour of the command list's row for ``name`` (the
    leftmost column's rows below the filter), or None while it is not drawn."""
    for y, row in enumerate(screen.display):
        if row.startswith(f" {name} "):
            return str(screen.buffer[y][1].bg)
    return None


def test_a_project_is_served_reloaded_and_its_commands_run_in_a_real_terminal(
    launch: Callable[..., Terminal], tmp_path: Path
) -> None:
    root = tmp_path / "project"
    root.mkdir()
    view = write_project(root)
    port = free_port()
    terminal = launch("--project", str(root), f"127.0.0.1:{port}")
    terminal.wait_for(panels_drawn, "the dashboard's four panels", timeout=120)
    assert get(port) == "v1"
    terminal.wait_for(request_row("200"), "the GET / row, status 200, in the Requests panel")

    # The reload: the console's watcher sees the saved view (once the kernel
    # watches the app's directory), and a new server answers with the new code.
    wait_until(lambda: inotify_watches(terminal.child.pid, view.parent), "inotify watch on the app", terminal)
    view.write_text(view_source("v2"))
    wait_until(lambda: get(port) == "v2", "'v2' from GET / after the edit", terminal)

    def reload_row(screen: pyte.Screen) -> bool:
        return any("views.py" in row for row in panel(screen, "Autoreload") or ())

    terminal.wait_for(reload_row, "a hello/views.py row in the Autoreload panel")

    # The commands view: the catalogue is listed, Ctrl+R runs the filter's best match.
    terminal.child.send("c")
    terminal.wait_for(screen_shows(r"\d+ commands · Django"), "the catalogue listed in the commands view", timeout=90)
    terminal.child.send("check")
    terminal.wait_for(screen_shows(r"check"), "the filter showing 'check'")
    terminal.child.send("\x12")  # Ctrl+R
    terminal.wait_for(screen_shows("System check identified no issues"), "check's output in the Output tab", timeout=90)

    # Escape: back to the list, whose keys are the app's. It shows it has the
    # focus by drawing its highlighted row (check) in another colour; a "q"
    # sent before Escape is taken alone would make the two one key, Alt+Q.
    unfocused = list_row_background(terminal.screen, "check")
    terminal.child.send("\x1b")
    terminal.wait_for(
        lambda screen: list_row_background(screen, "check") not in (None, unfocused),
        "the command list focused (its highlighted row redrawn)",
    )
    terminal.child.send("q")
    assert terminal.wait_exit() == 0, terminal.describe()
    assert port_is_free(port), f"127.0.0.1:{port} still taken after devconsole quit"


#: The system calls that wait for file descriptors, by machine, and the
#: argument (from 0) holding each one's time-out: a thread waiting in one with a
#: time-out wakes by itself, idle or not. (Not listed: the machine is not checked.)
WAITS_WITH_TIMEOUT = {
    "x86_64": {7: 2, 23: 4, 232: 3, 270: 4, 271: 2, 281: 3},  # poll select epoll_wait pselect6 ppoll epoll_pwait
    "aarch64": {72: 4, 73: 2, 22: 3},  # pselect6 ppoll epoll_pwait
}


def threads_that_wake_by_themselves(pid: int) -> list[str]:
    """The threads of ``pid`` other than its main one that are running or wait
    for input with a time-out (by /proc/PID/task/TID/syscall). The main
    thread runs the event loop, whose timers are its business."""
    waits = WAITS_WITH_TIMEOUT.get(os.uname().machine)
    if waits is None:
        pytest.skip(f"which system calls wait with a time-out is not known here ({os.uname().machine})")
    found: list[str] = []
    for tid in os.listdir(f"/proc/{pid}/task"):
        if int(tid) == pid:
            continue
        try:
            call = Path(f"/proc/{pid}/task/{tid}/syscall").read_text().split()
            state = Path(f"/proc/{pid}/task/{tid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue  # ended meanwhile
        if call[0] == "running" or state == "R":
            found.append(f"thread {tid} running")
        elif call[0].isdigit() and int(call[0]) in waits:
            timeout = int(call[1 + waits[int(call[0])]], 16)
            # select and pselect6: a pointer (0: none); poll and epoll: ms (-1: none).
            if timeout not in (0, 0xFFFFFFFF, 0xFFFFFFFFFFFFFFFF) or (int(call[0]) in (7, 232, 281) and timeout == 0):
                found.append(f"thread {tid} in system call {call[0]} with a time-out")
    return found


def idle_threads_sleep(terminal_pid: int, what: str, read: Callable[[float], None]) -> None:
    """Wait until no thread but the main one of the console wakes by itself
    (a thread seen mid-step is looked at again; one that polls is always seen)."""
    deadline = time.monotonic() + 30
    while found := threads_that_wake_by_themselves(terminal_pid):
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: {found}")
        read(0.2)


def test_an_idle_console_waits_for_a_key_without_waking(launch: Callable[..., Terminal]) -> None:
    port = free_port()
    terminal = launch("--demo", f"127.0.0.1:{port}")
    terminal.wait_for(panels_drawn, "the dashboard's four panels", timeout=120)
    idle_threads_sleep(terminal.child.pid, "threads of an idle console wake by themselves", terminal._pump)
    # A key wakes it (a lone Escape, whose wait has a time-out, is in the
    # project test above).
    terminal.child.send("l")
    terminal.wait_for(screen_shows("search the log"), "the Log view after 'l'")
    terminal.child.send("q")
    assert terminal.wait_exit() == 0, terminal.describe()


#: Makes its stdin (a pty) the controlling terminal of its own new session,
#: then runs the rest of its arguments: a hangup of that pty then signals it.
TAKE_TERMINAL = (
    "import fcntl, os, sys, termios; fcntl.ioctl(0, termios.TIOCSCTTY, 0); os.execv(sys.argv[1], sys.argv[1:])"
)


class DetachedTerminal:
    """devconsole on a pty that is not its controlling terminal (its own
    session, no hangup signal when the pty goes), as a crashed harness or a
    closed multiplexer pane can leave it; stdin the pty or what is given.
    ``controlling``: the pty is its controlling terminal, as a terminal
    window's or a multiplexer pane's is, and its closing is a hangup."""

    def __init__(
        self,
        argv: list[str],
        env: dict[str, str],
        cwd: Path,
        stdin: int | None = None,
        *,
        controlling: bool = False,
    ) -> None:
        import fcntl
        import struct
        import termios

        self.master, slave = os.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", ROWS, COLUMNS, 0, 0))
        self.screen = pyte.Screen(COLUMNS, ROWS)
        self.stream = pyte.ByteStream(self.screen)
        if controlling:
            argv = [sys.executable, "-c", TAKE_TERMINAL, *argv]
        self.proc = subprocess.Popen(
            argv,
            stdin=slave if stdin is None else stdin,
            stdout=slave,
            stderr=slave,
            env=env,
            cwd=cwd,
            start_new_session=True,
        )
        os.close(slave)

    def read(self, timeout: float) -> None:
        import select

        if self.master < 0 or not select.select([self.master], [], [], timeout)[0]:
            return
        try:
            self.stream.feed(os.read(self.master, 65536))
        except OSError:
            pass  # the other side closed

    def wait_for(self, predicate: Callable[[pyte.Screen], object], what: str, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        while not predicate(self.screen):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                screen = "\n".join(line.rstrip() for line in self.screen.display)
                raise AssertionError(f"no {what} (exit status {self.proc.poll()})\n{screen}")
            self.read(0.2)

    def wait_exit(self, timeout: float = 60) -> int:
        """Its exit status, reading what it writes meanwhile (a full pty
        would hold its last writes, the terminal's restoration)."""
        deadline = time.monotonic() + timeout
        while self.proc.poll() is None:
            if time.monotonic() > deadline:
                raise AssertionError(f"devconsole still running {timeout:.0f} s later")
            if self.master < 0:
                with contextlib.suppress(subprocess.TimeoutExpired):
                    self.proc.wait(0.2)
            else:
                self.read(0.2)
        return int(self.proc.returncode)

    def vanish(self) -> None:
        os.close(self.master)
        self.master = -1

    def close(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, 9)
            self.proc.wait()
        if self.master >= 0:
            os.close(self.master)


def test_a_terminal_that_vanishes_without_a_hangup_ends_the_console(
    tmp_path: Path, terminal_env: dict[str, str]
) -> None:
    port = free_port()
    terminal = DetachedTerminal([str(DEVCONSOLE), "--demo", f"127.0.0.1:{port}"], terminal_env, tmp_path)
    try:
        terminal.wait_for(panels_drawn, "the dashboard's four panels")
        terminal.vanish()
        # As a hangup: 128 + SIGHUP, its children stopped, the port free.
        assert terminal.wait_exit() == 129
        assert port_is_free(port), f"127.0.0.1:{port} still taken after the terminal vanished"
    finally:
        terminal.close()


def test_a_terminal_that_hangs_up_ends_the_console(tmp_path: Path, terminal_env: dict[str, str]) -> None:
    """The kernel follows the hangup's SIGHUP with a SIGCONT, which must not
    start the console's terminal mode again (two writers, two input threads,
    an exit that waited forever for the first ones)."""
    port = free_port()
    terminal = DetachedTerminal(
        [str(DEVCONSOLE), "--demo", f"127.0.0.1:{port}"], terminal_env, tmp_path, controlling=True
    )
    try:
        terminal.wait_for(panels_drawn, "the dashboard's four panels")
        assert get(port).strip()  # it serves
        terminal.vanish()
        assert terminal.wait_exit() == 129
        assert port_is_free(port), f"127.0.0.1:{port} still taken after the terminal hung up"
    finally:
        terminal.close()


def test_a_console_whose_stdin_ends_runs_on_without_spinning(tmp_path: Path, terminal_env: dict[str, str]) -> None:
    port = free_port()
    with open(os.devnull, "rb") as nothing:
        terminal = DetachedTerminal(
            [str(DEVCONSOLE), "--demo", f"127.0.0.1:{port}"], terminal_env, tmp_path, stdin=nothing.fileno()
        )
    try:
        terminal.wait_for(panels_drawn, "the dashboard's four panels")
        assert get(port).strip()  # it serves
        terminal.wait_for(request_row("200"), "the GET / row, status 200, in the Requests panel")
        idle_threads_sleep(terminal.proc.pid, "with stdin at its end, threads wake by themselves", terminal.read)
        # SIGTERM ends it as it ends any console: 128 + 15, the port free.
        terminal.proc.terminate()
        assert terminal.wait_exit() == 143
        assert port_is_free(port)
    finally:
        terminal.close()


def test_a_breakpoint_takes_the_terminal_and_gives_it_back(launch: Callable[..., Terminal], tmp_path: Path) -> None:
    """The debugger's terminal suspends the console (its input thread stops)
    and resumes it after (a new one reads the keys), twice in a row."""
    root = tmp_path / "project"
    root.mkdir()
    view = write_project(root)
    view.write_text(
        "from django.http import HttpResponse\n\n\ndef index(request):\n"
        "    answer = 'stopped'\n    breakpoint()\n"
        "    return HttpResponse(answer, content_type='text/plain')\n"
    )
    port = free_port()
    terminal = launch("--project", str(root), f"127.0.0.1:{port}")
    terminal.wait_for(panels_drawn, "the dashboard's four panels", timeout=120)
    for turn in range(1, 3):
        answers: list[str] = []
        threading.Thread(target=lambda answers=answers: answers.append(get(port)), daemon=True).start()
        # Read from the raw output (the emulator keeps the dashboard drawn
        # under the debugger's lines): this turn's banner, then pdb's prompt.
        wait_until(lambda turn=turn: debugger_turn(terminal.raw, turn) is not None, f"the debugger ({turn})", terminal)
        terminal.child.send("answer = 'went on'\r")
        terminal.child.send("c\r")
        wait_until(lambda answers=answers: answers, f"the answer to request {turn}", terminal)
        assert answers == ["went on"], terminal.describe()
        # The console takes the terminal back (the alternate screen again).
        wait_until(
            lambda turn=turn: terminal.raw.find(ENTER_ALT_SCREEN, debugger_turn(terminal.raw, turn) or 0) > 0,
            f"the console back after the debugger ({turn})",
            terminal,
        )
    terminal.child.send("q")
    assert terminal.wait_exit() == 0, terminal.describe()


def debugger_turn(raw: bytearray, turn: int) -> int | None:
    """Where the ``turn``-th debugging session's prompt is in ``raw`` (after
    its banner), or None before it shows."""
    at = -1
    for _ in range(turn):
        at = raw.find(b"Ctrl+] to detach", at + 1)
        if at < 0:
            return None
    prompt = raw.find(b"(Pdb) ", at)
    return prompt if prompt >= 0 else None
