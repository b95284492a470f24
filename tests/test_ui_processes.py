"""Side processes in the console: a real Session runs a Procfile.dev's
processes next to the demo server, the Processes view shows and controls
them, a save restarts a restart-on-change worker with the server, quitting
leaves nothing running (checked in /proc), and a recording replays them."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from devconsole import cli
from devconsole.console import procfile
from devconsole.console.listen import ListenAddress, bind
from devconsole.console.session import Session
from devconsole.model.recording import load_recording, parse_recording
from devconsole.model.state import ServerState
from devconsole.ui.app import DevConsoleApp
from devconsole.ui.screens.logview import LogPane, LogScreen, source_cell
from devconsole.ui.screens.processes import REPLAY_NOTE, ProcessesScreen

from .conftest import alive, demo_copy, until, wait_for

SIZE = (140, 40)

PROCFILE = """\
# the issue's three: chatty, failing, stubborn
ticker: while true; do echo "tick $$"; sleep 0.1; done
failer: sleep 1; echo "giving up" >&2; exit 3
stubborn: trap '' TERM; sleep 1000 & echo "grandchild $!"; while true; do sleep 0.2; done
web: python manage.py runserver $PORT
"""


def session_for(root: Path, project, record=None, **kwargs) -> Session:
    sock = bind(ListenAddress("127.0.0.1", 0))
    address = ListenAddress("127.0.0.1", sock.getsockname()[1])
    return Session(
        project, address, sock, processes=procfile.load(root), process_stop_timeout=1.0, record=record, **kwargs
    )


class ProcessEventsState(ServerState):
    """The state, keeping every ``process`` event it applies (in order)."""

    def __init__(self) -> None:
        super().__init__()
        self.process_events: list[dict[str, object]] = []

    def ingest(self, event: dict[str, object]) -> None:
        if event.get("type") == "process":
            self.process_events.append(dict(event))
        super().ingest(event)


def status_text(app: DevConsoleApp) -> str:
    app.refresh_views()
    return str(app.screen.query_one("#status").render())


def log_text(app: DevConsoleApp) -> str:
    return "\n".join(app.screen.query_one(LogPane).lines)


def cells(app: DevConsoleApp, name: str) -> tuple[str, ...] | None:
    screen = app.screen
    return screen._cells.get(name) if isinstance(screen, ProcessesScreen) else None


async def test_three_processes_shown_controlled_and_gone_after_quit(tmp_path: Path, demo_db: Path) -> None:
    root, project = demo_copy(tmp_path, demo_db)
    (root / "Procfile.dev").write_text(PROCFILE)
    record_path = tmp_path / "session.jsonl"
    record = record_path.open("w")
    state = ProcessEventsState()
    session = session_for(root, project, record=record, state=state)
    app = DevConsoleApp(session=session)

    def failer_backed_off() -> bool:
        delays = [e["delay"] for e in state.process_events if e["name"] == "failer" and e["state"] == "restarting"]
        return delays[:2] == [0.5, 1.0]

    pids: set[int] = set()
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: state.hello is not None)
        assert list(state.processes) == ["ticker", "failer", "stubborn"]  # web (runserver) skipped
        await pilot.press("p")
        await until(pilot, lambda: isinstance(app.screen, ProcessesScreen))
        await until(pilot, lambda: (cells(app, "ticker") or ("", ""))[1] == "running")
        await until(pilot, lambda: (cells(app, "stubborn") or ("", ""))[1] == "running")
        # The failing one: exit status 3, restarted with a growing delay.
        await until(pilot, failer_backed_off, timeout=20)
        # From its events: by now (a loaded machine polls late) it may be starting again.
        exits = [e["returncode"] for e in state.process_events if e["name"] == "failer" and e["state"] == "exited"]
        assert exits[:2] == [3, 3]
        assert state.processes["failer"].restarts >= 1
        await until(pilot, lambda: re.match(r"restarting in \d+\.\d s", (cells(app, "failer") or ("", ""))[1]))
        # Said while it waits to restart (the cells above are the last refresh's:
        # it may have started again since, and failed again a second later).
        await until(pilot, lambda: "procs 2/3 · failer exited 3" in status_text(app))
        # Each process's own log: the ticker's lines are under its row.
        await until(pilot, lambda: "tick" in app.export_screenshot())
        grandchild = await until(
            pilot,
            lambda: next(
                (
                    int(line.text.split()[1])
                    for line in state.processes["stubborn"].log
                    if line.text.startswith("grandchild")
                ),
                None,
            ),
        )
        assert alive(grandchild)
        pids.update({grandchild, state.processes["stubborn"].pid or 0})

        # r restarts the selected one (the first row): a new pid.
        ticker = state.processes["ticker"]
        first = ticker.pid
        assert first is not None and alive(first)
        pids.add(first)
        await pilot.press("r")
        await until(pilot, lambda: ticker.state == "running" and ticker.pid != first and ticker.restarts == 1)
        assert not alive(first)
        # s stops it (and it stays stopped), t starts it again.
        second = ticker.pid
        assert second is not None
        pids.add(second)
        await pilot.press("s")
        await until(pilot, lambda: (cells(app, "ticker") or ("", ""))[1] == "stopped")
        assert not alive(second)
        await pilot.press("t")
        await until(pilot, lambda: ticker.state == "running" and ticker.pid not in (first, second))
        pids.add(ticker.pid or 0)
        # The Log view names each line's source; s shows one source only.
        await pilot.press("l")
        await until(pilot, lambda: isinstance(app.screen, LogScreen))
        await until(pilot, lambda: re.search(r"ticker +tick", log_text(app)))
        server_line = re.compile(r"^\S+ . server +\S", re.M)
        await until(pilot, lambda: server_line.search(log_text(app)))
        await pilot.press("s")  # server only
        await until(pilot, lambda: "source: server" in str(app.screen.query_one(LogPane).border_subtitle))
        assert server_line.search(log_text(app)) and "tick" not in log_text(app)
        await pilot.press("q")
    app.shutdown()  # asks them to stop; the session's owner waits (as the command line does)
    session.close()
    record.close()
    pids.discard(0)
    # Nothing outlives the console: each process, its shell's children, the
    # grandchild that ignores SIGTERM (its group got SIGKILL).
    wait_for(lambda: not any(alive(pid) for pid in pids), timeout=10)
    assert session.processes is not None
    assert all(info.state == "stopped" for info in session.processes.info())

    # The recording replays them.
    replay = DevConsoleApp(recording=load_recording(record_path))
    async with replay.run_test(size=SIZE) as pilot:
        await pilot.press("p")
        await until(pilot, lambda: isinstance(replay.screen, ProcessesScreen))
        replay.refresh_views()
        await until(pilot, lambda: cells(replay, "failer") is not None and cells(replay, "stubborn") is not None)
        assert replay.state.processes["failer"].restarts >= 1
        notes: list[str] = []
        replay.notify = lambda message, **kwargs: notes.append(str(message))  # type: ignore[method-assign]
        await pilot.press("r")
        assert notes == [REPLAY_NOTE]


def test_a_save_restarts_the_server_and_the_restart_on_change_worker(tmp_path: Path, demo_db: Path) -> None:
    root, project = demo_copy(tmp_path, demo_db)
    (root / "celery_like.py").write_text(
        "import os, time\nwhile True:\n    print('worker', os.getpid(), flush=True)\n    time.sleep(0.3)\n"
    )
    (root / "Procfile.dev").write_text("worker: python -u celery_like.py\nticker: sleep 1000\n")
    (root / "pyproject.toml").write_text("[tool.devconsole.processes.worker]\nrestart_on_change = true\n")
    state = ServerState()
    session = session_for(root, project, state=state)
    try:
        session.start()
        wait_for(lambda: state.hello is not None and state.watch is not None, timeout=60)

        def worker_pids() -> list[int]:
            return [
                int(line.text.split()[1]) for line in state.processes["worker"].log if line.text.startswith("worker")
            ]

        first = wait_for(worker_pids)[0]
        leader = state.processes["worker"].pid
        ticker = wait_for(lambda: state.processes["ticker"].pid)
        generation = state.generation
        views = root / "blog" / "views.py"
        views.write_text(views.read_text() + "\n# saved\n")
        wait_for(lambda: any(pid != first for pid in worker_pids()), timeout=30)
        wait_for(lambda: state.generation > generation, timeout=60)  # the server restarted too
        assert not alive(first)
        # The watcher may deliver the save in one batch or two: one restart or
        # more (the second may be under way), a new run.
        worker = state.processes["worker"]
        wait_for(
            lambda: worker.state == "running" and worker.pid not in (None, leader),
            timeout=30,
            describe=lambda: f"worker {worker.state}, pid {worker.pid} (leader {leader}), restarts {worker.restarts}",
        )
        assert worker.restarts >= 1
        # Not declared restart_on_change: left alone.
        assert state.processes["ticker"].pid == ticker and state.processes["ticker"].restarts == 0
    finally:
        session.close()


def test_process_options(tmp_path: Path, demo_db: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root, _project = demo_copy(tmp_path, demo_db)
    (root / "Procfile.dev").write_text("ticker: sleep 1000\nworker: sleep 5\n")
    parser = cli.server_parser()
    project = cli.locate_project(str(root))
    args = parser.parse_args(["--process", "worker: celery -A proj worker", "--process", "mail: mailpit"])
    declared, error = cli.declared_processes(project, args)
    assert error is None and declared is not None
    assert [(spec.name, spec.command) for spec in declared.processes] == [
        ("ticker", "sleep 1000"),
        ("worker", "celery -A proj worker"),
        ("mail", "mailpit"),
    ]
    args = parser.parse_args(["--no-processes", "--process", "mail: mailpit"])
    declared, error = cli.declared_processes(project, args)
    assert declared is not None and [spec.name for spec in declared.processes] == ["mail"]
    # A malformed --process is one line and exit 2, before anything starts.
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["--project", str(root), "--process", "no colon here"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("devconsole: error: --process: expected 'name: command'"), err
    # A malformed Procfile.dev is a line (with its number) for the console, which still starts.
    (root / "Procfile.dev").write_text("ticker: sleep 1000\n\n!!: nope\n")
    declared, error = cli.declared_processes(project, parser.parse_args([]))
    assert error is not None and error.startswith("Procfile.dev:3: ")
    # The command line's own processes still run then.
    declared, error = cli.declared_processes(project, parser.parse_args(["--process", "mail: mailpit"]))
    assert error is not None and declared is not None
    assert [(spec.name, spec.command) for spec in declared.processes] == [("mail", "mailpit")]
    # manage.py devconsole hands the same options over.
    argv = cli.server_options_argv(
        vars(parser.parse_args(["--no-processes", "--process", "a: b", "--process", "c: d"]))
    )
    assert argv == ["--no-processes", "--process=a: b", "--process=c: d"]


async def test_a_malformed_procfile_is_one_line_and_the_server_serves(tmp_path: Path, demo_db: Path) -> None:
    root, project = demo_copy(tmp_path, demo_db)
    (root / "Procfile.dev").write_text("ticker sleep 1000\n")
    try:
        procfile.load(root)
    except procfile.ProcfileError as exc:
        problem = str(exc)
    sock = bind(ListenAddress("127.0.0.1", 0))
    address = ListenAddress("127.0.0.1", sock.getsockname()[1])
    session = Session(project, address, sock, process_error=problem)
    app = DevConsoleApp(session=session)
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: app.state.hello is not None)
        await until(pilot, lambda: "procs: Procfile.dev:1: expected 'name: command'" in str(status_text(app)))
        assert session.processes is None
    app.shutdown()


def test_replay_keeps_a_process_lines_colours() -> None:
    lines = [
        json.dumps({"type": "recording", "v": 1, "started": 1000.0}),
        json.dumps({"type": "processes", "names": ["css"], "error": None, "ts": 1000.0, "rt": 0.0}),
        json.dumps(
            {
                "type": "process_log",
                "name": "css",
                "stream": "stdout",
                "text": "\x1b[32mdone\x1b[0m \x1b]0;x\x07",
                "ts": 1000.1,
                "rt": 0.1,
            }
        ),
    ]
    recording = parse_recording([line + "\n" for line in lines])
    event = recording.events[-1]
    # Colour kept, any other escape made visible.
    assert event["text"] == "\x1b[32mdone\x1b[0m \\x1b]0;x\\x07"


def test_command_line_processes_run_beside_a_malformed_procfile_and_skipped_web_is_said(
    tmp_path: Path, demo_db: Path
) -> None:
    root, project = demo_copy(tmp_path, demo_db)
    (root / "Procfile.dev").write_text("# stack\nweb: python manage.py runserver $PORT\nticker: sleep 1000\n")
    state = ServerState()
    session = session_for(root, project, state=state)
    try:
        session.start()
        said = "devconsole: Procfile.dev:2: web runs runserver: skipped, devconsole serves"
        wait_for(lambda: any(line.text == said for line in state.log))
        wait_for(lambda: state.processes["ticker"].state == "running")
    finally:
        session.close()
    (root / "Procfile.dev").write_text("ticker sleep 1000\n")
    args = cli.server_parser().parse_args(["--process", "echoer: echo hello from echoer; sleep 1000"])
    declared, error = cli.declared_processes(project, args)
    assert error is not None
    sock = bind(ListenAddress("127.0.0.1", 0))
    state = ServerState()
    session = Session(
        project,
        ListenAddress("127.0.0.1", sock.getsockname()[1]),
        sock,
        state=state,
        processes=declared,
        process_error=error,
        process_stop_timeout=1.0,
    )
    try:
        session.start()
        wait_for(lambda: any(line.text == "hello from echoer" for line in state.log_since(0)))
        assert state.process_error == "Procfile.dev:1: expected 'name: command', got 'ticker sleep 1000'"
        assert list(state.processes) == ["echoer"]
    finally:
        session.close()


def test_a_long_source_name_is_cut_with_an_ellipsis() -> None:
    assert source_cell("worker", 10) == "worker    "
    # Cut at 10 before, "celery-worker-emails" read as a process named "celery-wor".
    assert source_cell("celery-worker-emails", 20) == "celery-worker-emails"
    assert source_cell("celery-worker-emails-high", 20) == "celery-worker-email…"
