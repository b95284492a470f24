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

import os
import re
import socket
import sys
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


def request_row(status: str = r"\d{3}") -> Callable[[pyte.Screen], bool]:
    """Whether the Requests panel shows a ``GET /`` row with ``status``."""
    pattern = re.compile(rf"\bGET\s+/\s+{status}\b")

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
    terminal.wait_for(request_row(), "a recorded GET / row in the Requests panel")

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
