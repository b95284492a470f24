"""Shared fixtures: the demo project with a private database, free ports, a
running console server, and waiting for events."""

from __future__ import annotations

import contextlib
import http.client
import os
import shutil
import threading
import time

# Times on screen are local: pin the zone so snapshots match on every machine.
os.environ["TZ"] = "UTC"
time.tzset()
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from devconsole.console.listen import ListenAddress, bind
from devconsole.console.project import Project
from devconsole.console.reloader import Reloader
from devconsole.console.session import wire
from devconsole.console.supervisor import Supervisor
from devconsole.demo import DEMO_MANAGE_PY, demo_env, ensure_demo_database
from devconsole.model.state import ServerState

#: Test modules of plain functions and objects (real files at most); every
#: other module starts processes or opens sockets.
UNIT_MODULES = frozenset(
    {"test_instrument", "test_procfile", "test_protocol", "test_sanitize", "test_state", "test_watcher"}
)


def kind_of(module: str) -> str:
    """The marker a test module's tests get: ui, bench, integration or unit."""
    if module.startswith("test_ui_") or module == "test_console_live":
        return "ui"
    if module.startswith("test_bench"):
        return "bench"
    # A new module starts real processes or sockets unless it is listed here.
    return "unit" if module in UNIT_MODULES else "integration"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark every test unit, integration, ui or bench by its module (``-m unit``
    runs the fast ones; ``-m "not bench"`` skips the benchmarks)."""
    for item in items:
        module = item.path.stem if item.path is not None else ""
        item.add_marker(getattr(pytest.mark, kind_of(module)))


def app_summary(app: Any) -> str:
    """What a console app shows and knows, in a line: for a wait's failure message."""
    try:
        state = app.state
        log = [line.text for line in list(state.log)[-5:]]
        errors = [error.message for error in list(state.errors)[-3:]]
        return (
            f"screen {type(app.screen).__name__}; server {state.status}, generation {state.generation}; "
            f"errors {errors}; last log lines {log}"
        )
    except Exception as exc:  # a failure message must not fail
        return f"(the app could not be read: {exc!r})"


async def until(pilot: Any, predicate: Callable[[], Any], timeout: float = 60.0) -> Any:
    """Let the app run until ``predicate`` returns something truthy; fail on
    timeout, saying what the app showed then (generous by default, as
    :func:`wait_for`: a catalogue or a command run starts a process)."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        assert time.monotonic() < deadline, (
            f"timed out after {timeout}s waiting for {getattr(predicate, '__name__', predicate)}: "
            f"{app_summary(pilot.app)}"
        )
        await pilot.pause(0.05)


def alive(pid: int) -> bool:
    """Whether ``pid`` is a live process (a zombie is not), from /proc."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as file:
            data = file.read().decode("ascii", "replace")
    except OSError:
        return False
    return data[data.rfind(")") + 2 :].split()[0] != "Z"


def wait_for(
    predicate: Callable[[], Any],
    timeout: float = 60.0,
    interval: float = 0.01,
    describe: Callable[[], str] | None = None,
) -> Any:
    """Poll ``predicate`` until it returns something truthy; fail on timeout
    (saying what ``describe`` returns then). Generous by default: a loaded
    machine (CI runs at a load of 3 to 8 on two cores) starts a server child
    in seconds, and a wait costs only as long as what it waits for."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            seen = f": {describe()}" if describe is not None else ""
            raise AssertionError(
                f"timed out after {timeout}s waiting for {getattr(predicate, '__name__', predicate)}{seen}"
            )
        time.sleep(interval)


def inotify_watched_inodes(pid: int | str = "self") -> list[set[tuple[int, int]]] | None:
    """The ``(device, inode)`` pairs each inotify instance of process ``pid``
    watches, one set per instance (read from ``/proc/PID/fdinfo``); None where
    there is no such file (not Linux)."""
    fd_dir = Path(f"/proc/{pid}/fd")
    if not fd_dir.is_dir():
        return None
    instances: list[set[tuple[int, int]]] = []
    for fd in os.listdir(fd_dir):
        try:
            if os.readlink(fd_dir / fd) != "anon_inode:inotify":
                continue
            info = Path(f"/proc/{pid}/fdinfo/{fd}").read_text()
        except OSError:
            continue  # closed meanwhile
        watched = set()
        for line in info.splitlines():
            if line.startswith("inotify "):
                fields = dict(part.split(":", 1) for part in line.split()[1:] if ":" in part)
                # sdev is the kernel's (major << 20 | minor); st_dev is the C library's encoding.
                sdev = int(fields["sdev"], 16)
                watched.add((os.makedev(sdev >> 20, sdev & 0xFFFFF), int(fields["ino"], 16)))
        instances.append(watched)
    return instances


def inotify_watches(paths: Iterable[str | Path], pid: int | str = "self") -> bool:
    """Whether one inotify instance of process ``pid`` watches every path in
    ``paths``: the kernel reports changes there from now on. An instance being
    replaced may still hold some of them; the one holding all of the current
    paths is the live one. Always True where this cannot be read (not Linux)."""
    instances = inotify_watched_inodes(pid)
    if instances is None:
        return True
    wanted = set()
    for path in paths:
        st = os.stat(path)
        wanted.add((st.st_dev, st.st_ino))
    return any(wanted <= watched for watched in instances)


def make_project(directory: Path, settings_module: str, settings_source: str) -> Project:
    """A one-file project in ``directory``: a standard manage.py and the settings given."""
    (directory / "manage.py").write_text(
        "import os, sys\n"
        f"os.environ.setdefault('DJANGO_SETTINGS_MODULE', {settings_module!r})\n"
        "from django.core.management import execute_from_command_line\n"
        "execute_from_command_line(sys.argv)\n"
    )
    (directory / f"{settings_module}.py").write_text(settings_source)
    return Project(directory / "manage.py")


def demo_copy(tmp_path: Path, demo_db: Path) -> tuple[Path, Project]:
    """A private copy of the demo project (its files and its database) to edit
    and break: its root and the Project for it."""
    root = tmp_path / "demo"
    shutil.copytree(DEMO_MANAGE_PY.parent, root, ignore=shutil.ignore_patterns("__pycache__"))
    database = tmp_path / "demo.sqlite3"
    shutil.copy(demo_db, database)
    env = (("DEVCONSOLE_DEMO_DB", str(database)), ("DJANGO_SETTINGS_MODULE", "demosite.settings"))
    return root, Project(root / "manage.py", env=env)


@pytest.fixture(scope="session")
def demo_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A migrated demo database private to this test session."""
    path = tmp_path_factory.mktemp("demo-db") / "demo.sqlite3"
    previous = os.environ.get("DEVCONSOLE_DEMO_DB")
    os.environ["DEVCONSOLE_DEMO_DB"] = str(path)
    ensure_demo_database()
    yield path
    if previous is None:
        os.environ.pop("DEVCONSOLE_DEMO_DB", None)
    else:
        os.environ["DEVCONSOLE_DEMO_DB"] = previous


@pytest.fixture(scope="session")
def demo_project(demo_db: Path) -> Project:
    return Project(DEMO_MANAGE_PY, env=tuple(demo_env().items()))


class Events:
    """Every event a supervisor emits, kept in order, plus a ServerState."""

    def __init__(self) -> None:
        self.items: list[dict[str, Any]] = []
        self.state = ServerState()
        self._lock = threading.Lock()
        # By type, so a test polling for one kind under load (wrk makes
        # hundreds of thousands of request events) does not scan them all
        # while holding the lock the console's reader needs.
        self._by_type: dict[str, list[dict[str, Any]]] = {}

    def __call__(self, event: dict[str, Any]) -> None:
        # Applied to the state under the same lock: a test that saw an event
        # in :meth:`of` sees what it did to the state too (each generation's
        # reader thread calls this, and a thread may be preempted between the
        # two), and one that saw it in the state finds it among the events.
        with self._lock:
            self.items.append(event)
            self._by_type.setdefault(event["type"], []).append(event)
            self.state.ingest(event)

    def of(self, kind: str) -> list[dict[str, Any]]:
        with self._lock:
            return list(self._by_type.get(kind, ()))

    def describe(self, generation: int) -> str:
        """What generation ``generation`` sent, by type, and its errors: for a
        failure message."""
        with self._lock:
            mine = [e for e in self.items[-200000:] if e.get("generation") == generation]
        counts: dict[str, int] = {}
        for event in mine:
            counts[event["type"]] = counts.get(event["type"], 0) + 1
        errors = [(e.get("phase"), e.get("message")) for e in mine if e["type"] == "error"]
        return f"generation {generation} sent {counts}; errors {errors}; {len(self.items)} events in all"


@pytest.fixture
def events() -> Events:
    return Events()


def new_supervisor(project: Project, events: Events) -> Supervisor:
    """A supervisor for ``project`` on a free loopback port, not started yet."""
    sock = bind(ListenAddress("127.0.0.1", 0))
    return Supervisor(project, ListenAddress("127.0.0.1", sock.getsockname()[1]), sock, events)


@contextlib.contextmanager
def serving(project: Project, events: Events) -> Iterator[Supervisor]:
    """``project`` served by a real child on a free loopback port, stopped
    (port freed) on the way out, whatever happened."""
    supervisor = new_supervisor(project, events)
    try:
        assert supervisor.start().hello.wait(30), "the server child never said hello"
        assert events.of("hello"), f"server child failed: {events.of('error') or events.of('log')[-20:]}"
        yield supervisor
    finally:
        supervisor.close()


@pytest.fixture
def server(demo_project: Project, events: Events) -> Iterator[Supervisor]:
    """The demo project served by a real child process on a free loopback port."""
    with serving(demo_project, events) as supervisor:
        yield supervisor


def request_event(path: str, **fields: Any) -> dict[str, Any]:
    """A finished ``GET path`` (200) as a server child reports it, with ``fields`` changed."""
    return {
        "type": "request",
        "id": "1.1",
        "conn": 1,
        "method": "GET",
        "path": path,
        "status": 200,
        "duration_ms": 1.0,
        "bytes_out": 4,
        "thread": "Thread-1",
        "ts": time.time(),
        "headers": [],
        **fields,
    }


def http_get(port: int, path: str = "/ping/", *, timeout: float = 20.0, close: bool = True) -> tuple[int, bytes]:
    """One request on a new loopback connection: ``(status, body)``."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("GET", path, headers={"Connection": "close"} if close else {})
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


@dataclass
class LiveConsole:
    """The console without its UI (supervisor → reloader → :class:`Events`)
    serving a private copy of the demo on a free loopback port."""

    root: Path
    port: int
    supervisor: Supervisor
    reloader: Reloader
    events: Events

    @property
    def state(self) -> ServerState:
        return self.events.state

    def edit(self, relative: str, old: str, new: str) -> None:
        """Replace the first ``old`` in the project file ``relative``."""
        path = self.root / relative
        text = path.read_text()
        assert old in text, f"{old!r} not in {relative}"
        path.write_text(text.replace(old, new, 1))

    def save_version(self, relative: str, version: str, *, timeout: float = 30.0) -> int:
        """Rewrite the module's ``VERSION = …`` line once the serving
        generation watches the project's files (a save before it said what
        it imported is not its concern); returns that generation."""

        # The serving generation when the watch list arrives, re-read each
        # time: one save may be seen as two changes (a truncate, then the
        # write), and a generation may be replaced before it ever reports.
        def watching() -> int | None:
            generation = self.state.generation
            watched = any(e["generation"] == generation for e in self.events.of("watch"))
            return generation if watched else None

        try:
            generation = wait_for(watching, timeout=timeout)
        except AssertionError as exc:
            raise AssertionError(f"{exc}: {self.events.describe(self.state.generation)}") from None
        path = self.root / relative
        source = path.read_text()
        current = source.split("VERSION = ")[1].split("\n")[0]
        path.write_text(source.replace(f"VERSION = {current}", f"VERSION = {version!r}"))
        return generation


@contextlib.contextmanager
def live_console(
    tmp_path: Path,
    demo_db: Path,
    *,
    reload: bool = True,
    spawned: bool = False,
    events: Events | None = None,
    prepare: Callable[[Path], None] | None = None,
    console_class: type[LiveConsole] = LiveConsole,
) -> Iterator[Any]:
    """A :class:`LiveConsole` (or ``console_class``) on a copy of the demo,
    ``prepare``\\ d first (views added…); its generations forked from fork
    servers, or ``spawned``; stopped, every child with it, on the way out.
    Yields once the first generation said hello."""
    root, project = demo_copy(tmp_path, demo_db)
    if prepare is not None:
        prepare(root)
    sock = bind(ListenAddress("127.0.0.1", 0))
    port = sock.getsockname()[1]
    events = events if events is not None else Events()
    supervisor, reloader = wire(project, ListenAddress("127.0.0.1", port), sock, events, reload=reload)
    if spawned:
        reloader.use_fork = False
    reloader.start()
    try:
        wait_for(lambda: events.state.hello is not None, timeout=60)
        yield console_class(root, port, supervisor, reloader, events)
    finally:
        reloader.stop()
        supervisor.close()
