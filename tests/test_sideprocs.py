"""Side processes run for real: states, output, restarts with backoff, and
nothing left running after a stop, grandchildren that ignore SIGTERM included."""

from __future__ import annotations

import os
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from devconsole.console.procfile import ProcessSpec, parse_procfile
from devconsole.console.sideprocs import ProcessManager, for_project, group_members
from tests.conftest import alive, wait_for

#: Ignores SIGTERM, starts a grandchild that ignores it too, says both pids.
STUBBORN = """
import os, signal, subprocess, sys, time
signal.signal(signal.SIGTERM, signal.SIG_IGN)
child = subprocess.Popen([sys.executable, "-c", "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
                          "print('grandchild ready', flush=True); time.sleep(600)"])
print("ready", child.pid, os.getpid(), flush=True)
time.sleep(600)
"""


class Recorder:
    """The events a manager emits, with waits on them."""

    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []
        self.cond = threading.Condition()

    def __call__(self, event: dict[str, Any]) -> None:
        with self.cond:
            self.events.append(event)
            self.cond.notify_all()

    def wait(self, predicate: Callable[[list[dict[str, Any]]], Any], timeout: float = 20.0) -> Any:
        deadline = time.monotonic() + timeout
        with self.cond:
            while True:
                value = predicate(self.events)
                if value:
                    return value
                left = deadline - time.monotonic()
                assert left > 0, f"timed out waiting for {predicate}; events: {self.events[-10:]}"
                self.cond.wait(left)

    def states(self, name: str) -> list[dict[str, Any]]:
        with self.cond:
            return [e for e in self.events if e["type"] == "process" and e["name"] == name]

    def lines(self, name: str) -> list[str]:
        with self.cond:
            return [e["text"] for e in self.events if e["type"] == "process_log" and e["name"] == name]

    def wait_state(self, name: str, state: str, count: int = 1, timeout: float = 20.0) -> dict[str, Any]:
        def reached(events: list[dict[str, Any]]) -> dict[str, Any] | None:
            matching = [e for e in events if e["type"] == "process" and e["name"] == name and e["state"] == state]
            return matching[count - 1] if len(matching) >= count else None

        return self.wait(reached, timeout)

    def wait_line(self, name: str, predicate: Callable[[str], bool], timeout: float = 20.0) -> str:
        def found(events: list[dict[str, Any]]) -> str | None:
            for e in events:
                if e["type"] == "process_log" and e["name"] == name and predicate(e["text"]):
                    return str(e["text"])
            return None

        return self.wait(found, timeout)


def manager_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("sideproc-")]


@pytest.fixture
def recorder() -> Recorder:
    return Recorder()


@pytest.fixture
def managers() -> Iterator[list[ProcessManager]]:
    """Managers made by a test; stopped afterwards whatever happened."""
    made: list[ProcessManager] = []
    yield made
    for manager in made:
        manager.stop_all()


def make(
    managers: list[ProcessManager], specs: list[ProcessSpec], emit: Callable[[dict[str, Any]], None], **options: Any
) -> ProcessManager:
    manager = ProcessManager(specs, emit, **options)
    managers.append(manager)
    return manager


def spec(tmp_path: Path, name: str, command: str, **options: Any) -> ProcessSpec:
    return ProcessSpec(name, command, tmp_path, **options)


def test_a_procfile_of_three_all_running_then_nothing_survives_stop_all(
    tmp_path: Path, recorder: Recorder, managers: list[ProcessManager]
) -> None:
    (tmp_path / "stubborn.py").write_text(STUBBORN)
    procfile = (
        "# three processes\n"
        "ticker: while :; do echo tick; sleep 0.1; done\n"
        "failing: sleep 1; echo failing now >&2; exit 3\n"
        f"stubborn: exec {sys.executable} stubborn.py\n"
    )
    specs, _ = parse_procfile(procfile, base=tmp_path)
    manager = make(managers, specs, recorder, stop_timeout=1.0)
    manager.start_all()

    # The ticker prints a line every 100 ms; the stubborn one and its grandchild are up.
    recorder.wait(lambda events: len(recorder.lines("ticker")) >= 5)
    ready = recorder.wait_line("stubborn", lambda text: text.startswith("ready "))
    grandchild = int(ready.split()[1])
    recorder.wait_line("stubborn", lambda text: text == "grandchild ready")
    assert alive(grandchild)

    # The failing one exits with status 3 after a second and is restarted after a backoff.
    exited = recorder.wait_state("failing", "exited")
    assert exited["returncode"] == 3 and exited["pid"] is not None
    assert recorder.wait_line("failing", lambda text: text == "failing now")
    restarting = recorder.wait_state("failing", "restarting")
    assert restarting["delay"] == pytest.approx(0.5)
    again = recorder.wait_state("failing", "running", count=2)
    assert again["restarts"] == 1 and again["pid"] != exited["pid"]

    for name in ("ticker", "stubborn"):
        assert [e["state"] for e in recorder.states(name)] == ["starting", "running"]
    info = {i.name: i for i in manager.info()}
    assert info["ticker"].state == "running" and info["stubborn"].state == "running"
    assert info["ticker"].pid is not None and info["stubborn"].pid is not None
    pgids = [info[name].pid for name in ("ticker", "stubborn", "failing") if info[name].pid is not None]
    assert all(group_members(pgid) for pgid in pgids[:2])
    sample = recorder.states("failing")[0]
    assert set(sample) == {"type", "name", "state", "pid", "returncode", "restarts", "delay", "ts"}

    started = time.monotonic()
    assert manager.stop_all()
    elapsed = time.monotonic() - started
    # SIGTERM, 1 s, SIGKILL: well within the bound even on a loaded machine.
    assert elapsed < 6.0
    assert not alive(grandchild)
    for pgid in pgids:
        assert group_members(pgid) == []
    assert not manager_threads()
    for name in ("ticker", "stubborn", "failing"):
        assert recorder.states(name)[-1]["state"] == "stopped"
    # Stopped for good: nothing starts after stop_all.
    manager.start("ticker")
    assert not manager_threads()


def test_the_failing_one_restarts_with_growing_delays(
    tmp_path: Path, recorder: Recorder, managers: list[ProcessManager]
) -> None:
    manager = make(managers, [spec(tmp_path, "failing", "exit 3")], recorder, backoff=(0.2, 30.0, 10.0))
    manager.start("failing")
    recorder.wait_state("failing", "starting", count=5)
    manager.stop("failing")
    states = recorder.states("failing")
    delays = [e["delay"] for e in states if e["state"] == "restarting"][:4]
    assert delays == pytest.approx([0.2, 0.4, 0.8, 1.6])
    starts = [e["ts"] for e in states if e["state"] == "starting"][:5]
    gaps = [b - a for a, b in zip(starts[:-1], starts[1:], strict=True)]
    assert all(gap >= delay * 0.95 for gap, delay in zip(gaps, delays, strict=True)), (gaps, delays)
    assert gaps[-1] > gaps[0]
    assert [e["returncode"] for e in states if e["state"] == "exited"][:4] == [3, 3, 3, 3]


def test_backoff_is_capped(tmp_path: Path, recorder: Recorder, managers: list[ProcessManager]) -> None:
    manager = make(managers, [spec(tmp_path, "failing", "exit 1")], recorder, backoff=(0.05, 0.1, 10.0))
    manager.start("failing")
    recorder.wait_state("failing", "restarting", count=4)
    manager.stop("failing")
    delays = [e["delay"] for e in recorder.states("failing") if e["state"] == "restarting"][:4]
    assert delays == pytest.approx([0.05, 0.1, 0.1, 0.1])


def test_restart_stop_and_start_one_process(tmp_path: Path, recorder: Recorder, managers: list[ProcessManager]) -> None:
    ticker = spec(tmp_path, "ticker", "while :; do echo tick; sleep 0.1; done")
    other = spec(tmp_path, "other", "while :; do echo other; sleep 0.1; done")
    manager = make(managers, [ticker, other], recorder, stop_timeout=2.0)
    manager.start_all()
    first = recorder.wait_state("ticker", "running")
    recorder.wait_state("other", "running")

    manager.restart("ticker")
    second = recorder.wait_state("ticker", "running", count=2)
    assert second["pid"] != first["pid"] and second["restarts"] == 1
    assert group_members(first["pid"]) == []
    assert [e["state"] for e in recorder.states("ticker")] == [
        "starting",
        "running",
        "stopping",
        "stopped",
        "starting",
        "running",
    ]

    manager.stop("ticker")
    stopped = recorder.wait_state("ticker", "stopped", count=2)
    assert stopped["returncode"] is not None and stopped["returncode"] < 0
    assert group_members(second["pid"]) == []
    assert {i.name: i.state for i in manager.info()} == {"ticker": "stopped", "other": "running"}
    # The other one was left alone.
    assert len(recorder.states("other")) == 2

    manager.start("ticker")
    third = recorder.wait_state("ticker", "running", count=3)
    assert third["pid"] not in (first["pid"], second["pid"])
    count = len(recorder.lines("ticker"))
    recorder.wait(lambda events: len(recorder.lines("ticker")) > count + 2)

    manager.restart_all()
    recorder.wait_state("ticker", "running", count=4)
    recorder.wait_state("other", "running", count=2)
    assert manager.stop_all()
    assert not manager_threads()


def test_stop_a_process_that_ignores_sigterm_and_its_grandchild(
    tmp_path: Path, recorder: Recorder, managers: list[ProcessManager]
) -> None:
    (tmp_path / "stubborn.py").write_text(STUBBORN)
    manager = make(managers, [spec(tmp_path, "stubborn", f"{sys.executable} stubborn.py")], recorder, stop_timeout=0.5)
    manager.start("stubborn")
    ready = recorder.wait_line("stubborn", lambda text: text.startswith("ready "))
    grandchild, middle = (int(pid) for pid in ready.split()[1:])
    recorder.wait_line("stubborn", lambda text: text == "grandchild ready")
    pgid = recorder.wait_state("stubborn", "running")["pid"]
    started = time.monotonic()
    manager.stop("stubborn")
    stopped = recorder.wait_state("stubborn", "stopped", timeout=10.0)
    assert time.monotonic() - started < 5.0
    # The shell leading the group ends on SIGTERM; what it started ignores it and gets SIGKILL.
    assert stopped["returncode"] is not None and stopped["returncode"] < 0
    assert not alive(middle) and not alive(grandchild) and group_members(pgid) == []


def test_what_an_exited_process_started_is_stopped_too(
    tmp_path: Path, recorder: Recorder, managers: list[ProcessManager]
) -> None:
    """A leader that exits and leaves a grandchild (ignoring SIGTERM) behind:
    the grandchild is gone by the time the exit is reported."""
    (tmp_path / "stubborn.py").write_text(STUBBORN)
    command = f"{sys.executable} stubborn.py & sleep 0.5; exit 0"
    manager = make(managers, [spec(tmp_path, "leaver", command, restart="never")], recorder, stop_timeout=0.5)
    manager.start("leaver")
    ready = recorder.wait_line("leaver", lambda text: text.startswith("ready "))
    grandchild, middle = (int(pid) for pid in ready.split()[1:])
    exited = recorder.wait_state("leaver", "exited")
    assert exited["returncode"] == 0
    assert not alive(middle) and not alive(grandchild) and group_members(exited["pid"]) == []


@pytest.mark.parametrize(
    ("policy", "command", "restarts"),
    [
        ("never", "exit 3", False),
        ("on-failure", "exit 0", False),
        ("on-failure", "exit 3", True),
        ("on-failure", "kill -9 $$", True),
        ("always", "exit 0", True),
        ("always", "exit 3", True),
    ],
)
def test_restart_policies(
    tmp_path: Path, recorder: Recorder, managers: list[ProcessManager], policy: str, command: str, restarts: bool
) -> None:
    manager = make(managers, [spec(tmp_path, "p", command, restart=policy)], recorder, backoff=(0.05, 0.05, 10.0))
    manager.start("p")
    if restarts:
        recorder.wait_state("p", "starting", count=3)
        manager.stop("p")
    # The lifetime thread ends by itself without a restart, or after the stop.
    wait_for(lambda: not manager_threads(), timeout=20.0)
    states = [e["state"] for e in recorder.states("p")]
    ended = "crashed" if "kill" in command else "exited"
    if restarts:
        assert states[:4] == ["starting", "running", ended, "restarting"]
    else:
        assert states == ["starting", "running", ended]


def test_cannot_start(tmp_path: Path, recorder: Recorder, managers: list[ProcessManager]) -> None:
    missing = ProcessSpec("p", "true", tmp_path / "missing", restart="never")
    manager = make(managers, [missing], recorder)
    manager.start("p")
    crashed = recorder.wait_state("p", "crashed")
    assert crashed["returncode"] is None
    assert recorder.wait_line("p", lambda text: text.startswith("cannot start 'p': "))


def test_environment_port_dotenv_and_the_project_interpreter_first(
    tmp_path: Path, recorder: Recorder, managers: list[ProcessManager]
) -> None:
    venv_bin = tmp_path / "venv" / "bin"
    venv_bin.mkdir(parents=True)
    python = venv_bin / "python"
    python.write_text("#!/bin/sh\necho project python\n")
    python.chmod(0o755)
    (venv_bin.parent / "pyvenv.cfg").write_text("home = /usr/bin\n")
    specs, _ = parse_procfile(
        "env: echo port=$PORT ${FROM_DOTENV} $OWN; python; echo exported=$(env | grep -c '^PORT=')\n", base=tmp_path
    )
    specs = [ProcessSpec("env", specs[0].command, tmp_path, env=(("OWN", "own"),), restart="never")]
    base = {"PATH": os.environ["PATH"], "FROM_DOTENV": "base"}
    manager = for_project(
        specs, recorder, base_env=base, python=str(python), dotenv=[("FROM_DOTENV", "dot")], port=8123
    )
    managers.append(manager)
    manager.start("env")
    recorder.wait_state("env", "exited")
    assert recorder.lines("env") == ["port=8123 dot own", "project python", "exported=0", "exited 0"]


def test_lines_are_bounded_and_usage_is_measured(
    tmp_path: Path, recorder: Recorder, managers: list[ProcessManager]
) -> None:
    command = f"{sys.executable} -c \"import sys, time; print('x' * 10000, flush=True); print('\\x1b[31mred\\x1b[0m\\r', flush=True); time.sleep(600)\""
    manager = make(managers, [spec(tmp_path, "big", command)], recorder)
    manager.start("big")
    recorder.wait_line("big", lambda text: "red" in text)
    assert recorder.lines("big") == ["x" * 4096, "x" * 4096, "x" * (10000 - 8192), "\x1b[31mred\x1b[0m"]
    first = manager.usage("big")
    assert first is not None and first.processes >= 1 and first.rss_bytes > 0 and first.cpu_percent is None
    second = manager.usage("big")
    assert second is not None and second.cpu_percent is not None and second.cpu_percent >= 0.0
    manager.stop("big")
    recorder.wait_state("big", "stopped")
    assert manager.usage("big") is None


def test_restart_changed_restarts_only_the_workers_that_asked(
    tmp_path: Path, recorder: Recorder, managers: list[ProcessManager]
) -> None:
    loop = "while :; do echo up; sleep 0.1; done"
    worker = spec(tmp_path, "worker", loop, restart_on_change=True)
    idle = spec(tmp_path, "idle-worker", loop, restart_on_change=True)
    css = spec(tmp_path, "css", loop)
    manager = make(managers, [worker, idle, css], recorder)
    manager.start("worker")
    manager.start("css")
    first = recorder.wait_state("worker", "running")
    recorder.wait_state("css", "running")
    assert manager.restart_changed() == ["worker"]
    second = recorder.wait_state("worker", "running", count=2)
    assert second["pid"] != first["pid"] and second["restarts"] == 1
    assert [e["state"] for e in recorder.states("css")] == ["starting", "running"]
    assert recorder.states("idle-worker") == []


def test_a_failing_callback_does_not_stop_the_supervision(tmp_path: Path, managers: list[ProcessManager]) -> None:
    recorder = Recorder()

    def emit(event: dict[str, Any]) -> None:
        recorder(event)
        raise RuntimeError("bug in the caller")

    manager = make(managers, [spec(tmp_path, "p", "echo hello; exit 3", restart="never")], emit)
    manager.start("p")
    assert recorder.wait_state("p", "exited")["returncode"] == 3
    assert recorder.lines("p") == ["hello", "exited 3"]


def test_a_save_does_not_undo_a_stop_and_restart_all_leaves_stopped_ones(
    tmp_path: Path, recorder: Recorder, managers: list[ProcessManager]
) -> None:
    (tmp_path / "stubborn.py").write_text(STUBBORN)
    stubborn = spec(tmp_path, "stubborn", f"exec {sys.executable} stubborn.py", restart_on_change=True)
    other = spec(tmp_path, "other", "while :; do sleep 0.1; done")
    manager = make(managers, [stubborn, other], recorder, stop_timeout=1.0)
    manager.start_all()
    recorder.wait_line("stubborn", lambda text: text.startswith("ready"))
    recorder.wait_state("other", "running")
    manager.stop("stubborn")
    recorder.wait_state("stubborn", "stopping")
    # It ignores SIGTERM: still shutting down when the project's code changes.
    assert manager.restart_changed() == []
    assert manager.restart_all() == ["other"]
    recorder.wait_state("stubborn", "stopped")
    recorder.wait_state("other", "running", count=2)
    assert [e["state"] for e in recorder.states("stubborn")][-2:] == ["stopping", "stopped"]
    assert next(info for info in manager.info() if info.name == "stubborn").state == "stopped"
    manager.start("stubborn")  # the user's start undoes the user's stop
    recorder.wait_state("stubborn", "running", count=2)


def test_an_exit_is_a_line_of_the_process_log(
    tmp_path: Path, recorder: Recorder, managers: list[ProcessManager]
) -> None:
    manager = make(managers, [spec(tmp_path, "fails", "exit 3")], recorder, backoff=(1.0, 4.0, 10.0))
    manager.start("fails")
    recorder.wait_state("fails", "restarting")
    assert recorder.lines("fails") == ["exited 3 · restarting in 1.0 s"]


def test_readiness_by_port_and_by_line(tmp_path: Path, recorder: Recorder, managers: list[ProcessManager]) -> None:
    import socket

    probe = socket.socket()
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()
    listens = (
        f"exec {sys.executable} -c \"import os, socket, sys, time; print('binding', flush=True); "
        f"[time.sleep(0.02) for _ in iter(lambda: os.path.exists('go'), True)]; s = socket.socket(); "
        f"s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); s.bind(('127.0.0.1', {port})); "
        f"s.listen(); print('listening', flush=True); time.sleep(600)\""
    )
    says = "echo compiling; until [ -e go ]; do sleep 0.02; done; echo 'VITE ready in 312 ms'; sleep 600"
    manager = make(
        managers,
        [
            spec(tmp_path, "api", listens, ready_port=port),
            spec(tmp_path, "vite", says, ready_line=r"ready in \d+ ms"),
        ],
        recorder,
    )
    manager.start_all()
    for name, before in (("api", "binding"), ("vite", "compiling")):
        recorder.wait_line(name, lambda text, before=before: text == before)
        # Started, with its pid, but not running before it is ready (the
        # state with its pid may reach the recorder just after the line).
        wait_for(lambda name=name: len(recorder.states(name)) >= 2)
        assert [e["state"] for e in recorder.states(name)] == ["starting", "starting"]
        assert recorder.states(name)[-1]["pid"] is not None
    (tmp_path / "go").write_text("")  # now they may get ready
    running = recorder.wait_state("api", "running")
    # Its port is ready from its listen(): the line it prints after may be read later.
    recorder.wait_line("api", lambda text: text == "listening")
    assert running["pid"] == recorder.states("api")[1]["pid"]
    recorder.wait_state("vite", "running")
    assert "VITE ready in 312 ms" in recorder.lines("vite")


PARENT = """
import sys, time
from pathlib import Path
from devconsole.console.procfile import ProcessSpec
from devconsole.console.sideprocs import ProcessManager
spec = ProcessSpec("leader", "exec " + sys.executable + " -c 'import time; time.sleep(600)'", Path.cwd())
manager = ProcessManager([spec], lambda event: print(event.get("state"), event.get("pid"), flush=True))
manager.start_all()
time.sleep(600)
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux's")
def test_a_console_killed_by_sigkill_takes_the_leaders_with_it(tmp_path: Path) -> None:
    import signal
    import subprocess

    console = subprocess.Popen(
        [sys.executable, "-c", PARENT],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent)},
    )
    try:
        assert console.stdout is not None
        leader = 0
        for line in console.stdout:
            state, pid = line.split()
            if state == "running":
                leader = int(pid)
                break
        assert leader and alive(leader)
        console.send_signal(signal.SIGKILL)
        console.wait(10)
        wait_for(lambda: not alive(leader), timeout=10)
    finally:
        if console.poll() is None:
            console.kill()
            console.wait()


def request_event(path: str, ts: float, status: int = 500) -> dict[str, Any]:
    return {
        "type": "request",
        "generation": 1,
        "id": "r1",
        "conn": 1,
        "method": "GET",
        "path": path,
        "query": "",
        "version": "HTTP/1.1",
        "status": status,
        "duration_ms": 2.0,
        "bytes_out": 10,
        "thread": "Thread-1",
        "ts": ts,
        "headers": [],
    }


def test_the_state_keeps_server_lines_apart_and_matches_tracebacks_on_server_lines_only() -> None:
    from devconsole.model.state import ServerState

    state = ServerState(max_log=50)
    state.ingest({"type": "processes", "names": ["chatty"], "error": None, "ts": 1.0})

    def server(text: str, ts: float) -> None:
        state.ingest({"type": "log", "stream": "stderr", "text": text, "ts": ts, "generation": 1})

    def process(text: str, ts: float, stream: str = "stderr") -> None:
        state.ingest({"type": "process_log", "name": "chatty", "stream": stream, "text": text, "ts": ts})

    state.ingest(request_event("/boom", 10.0))
    server("Internal Server Error: /boom", 10.003)
    process("Traceback (most recent call last):", 10.004)  # another source, between the two
    server("Traceback (most recent call last):", 10.005)
    first = state.log_seq - 2
    process("Internal Server Error: /boom", 10.006)  # a process's text that looks like the server's
    process("Traceback (most recent call last):", 10.007)
    row = state.request_for_log_line(first)
    assert row is not None and row.path == "/boom"
    # The process's own look-alike is not the server's traceback.
    assert state.request_for_log_line(state.log_seq - 1) == row  # nearest server traceback above it
    state.log.clear()
    assert state.request_for_log_line(state.log_seq - 1) is None
    server("server line kept", 11.0)
    for number in range(500):  # a chatty process: ten times the server's buffer
        process(f"noise {number}", 12.0)
    merged = state.log_since(0)
    assert [line.text for line in merged if line.source == "server"] == ["server line kept"]
    assert [line.seq for line in merged] == sorted(line.seq for line in merged)
    assert merged[-1].text == "noise 499"


def test_the_state_follows_64_processes_and_never_one_named_server() -> None:
    from devconsole.model.state import ServerState

    state = ServerState()
    state.ingest({"type": "processes", "names": [f"p{n}" for n in range(70)], "error": None, "ts": 1.0})
    assert len(state.processes) == 64
    state.ingest({"type": "processes", "names": ["late"], "error": None, "ts": 2.0})  # one more: ignored
    state.ingest({"type": "process_log", "name": "late", "stream": "stdout", "text": "x", "ts": 2.0})
    assert "late" not in state.processes
    fresh = ServerState()
    fresh.ingest({"type": "process_log", "name": "server", "stream": "stdout", "text": "spoof", "ts": 2.0})
    assert fresh.processes == {} and fresh.log_since(0) == []


def test_a_process_line_is_masked_in_a_recording() -> None:
    from devconsole.model.secrets import mask_secrets

    event = {"type": "process_log", "name": "w", "stream": "stdout", "text": "GET /cb?token=SECRET123&x=1", "ts": 1.0}
    masked = mask_secrets(event)
    assert "SECRET123" not in masked["text"] and "x=1" in masked["text"]


def test_usage_of_every_process_is_one_scan_of_proc(
    tmp_path: Path, recorder: Recorder, managers: list[ProcessManager], monkeypatch: pytest.MonkeyPatch
) -> None:
    from devconsole.console import sideprocs

    names = ["a", "b", "c"]
    manager = make(managers, [spec(tmp_path, name, "sleep 600") for name in names], recorder)
    manager.start_all()
    for name in names:
        recorder.wait_state(name, "running")
    scans: list[int] = []
    real = sideprocs._proc_stats

    def counted() -> list[tuple[int, int, str, int, int]]:
        scans.append(1)
        return real()

    monkeypatch.setattr(sideprocs, "_proc_stats", counted)
    usage = manager.usage_all()
    assert len(scans) == 1
    assert sorted(usage) == names and all(item is not None and item.processes >= 1 for item in usage.values())
