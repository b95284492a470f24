"""Running the side processes a project declares (:mod:`.procfile`).

:class:`ProcessManager` runs each :class:`~.procfile.ProcessSpec` with
``/bin/sh -c`` (as honcho does) in its own session, so its process group
holds whatever it starts; a stop is ``SIGTERM`` to the group, then
``SIGKILL`` to the group after a timeout, grandchildren included, and a
process whose leader exits on its own has the rest of its group stopped
too: nothing it started outlives it.

Each process has one thread for its lifetime (start, wait, stop what is
left, decide on a restart, wait out the backoff) and two readers while it
runs. Everything it reports goes to the ``emit`` callback as plain dicts:

``{"type": "process", "name", "state", "pid", "returncode", "restarts", "delay", "ts"}``
    ``state`` is one of :data:`STATES` (``starting`` lasts until the
    process is ready: at once, or when its ``ready_port`` accepts a
    connection or an output line matches its ``ready_line``); ``returncode`` is the exit status
    (negative: the signal that ended it) once it ended; ``delay`` the
    seconds until the restart when ``state`` is ``"restarting"``, else None.
``{"type": "process_log", "name", "stream", "text", "ts"}``
    one line of its output (``stream`` is ``"stdout"`` or ``"stderr"``),
    without its line break, at most :data:`LINE_LIMIT` characters, raw:
    colours and other escapes are the caller's to clean
    (:func:`devconsole.model.sanitize.clean_line`).

    How a run ended is one line of its own output too, from the manager:
    ``exited 3 · restarting in 1.0 s``.

``ts`` is ``time.time()``. ``emit`` is called from the manager's threads:
it must be quick and must not block (hand the dict to the UI's queue).

On Linux each process's leader gets a parent-death signal (``SIGKILL``
when the console's thread that started it dies, the console killed by
``SIGKILL`` included): what the leader started then depends on the leader
(a shell that runs its one command by ``exec`` leaves nothing behind; a
grandchild in a group of its own does).
"""

from __future__ import annotations

import codecs
import os
import re
import select
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from devconsole.console.processes import signal_group
from devconsole.console.procfile import ProcessSpec, expand_port
from devconsole.wire import linux

State = Literal["starting", "running", "stopping", "stopped", "exited", "crashed", "restarting"]
STATES: tuple[State, ...] = ("starting", "running", "stopping", "stopped", "exited", "crashed", "restarting")

#: Characters of one line of output; a longer line is cut into several.
LINE_LIMIT = 4096
#: First restart delay, its ceiling, and how long a run must last for the delay to start over.
BACKOFF_FIRST = 0.5
BACKOFF_MAX = 30.0
BACKOFF_RESET = 10.0
#: Seconds between SIGTERM to a group and SIGKILL.
STOP_TIMEOUT = 5.0
#: How long the rest of a group may linger after its leader exited on its own before SIGTERM.
LINGER = 0.5
#: Seconds between two looks at a lingering group, and between two readiness connects.
REAP_POLL = 0.1
READY_POLL = 0.1
#: Colour asked of tools that turn it off on a pipe (unless the environment says otherwise).
COLOUR_ENV = {"FORCE_COLOR": "1", "CLICOLOR_FORCE": "1", "PY_COLORS": "1"}
_SGR = re.compile(r"\x1b\[[0-9;:]*[A-Za-z]")

Emit = Callable[[dict[str, Any]], None]


def process_env(
    spec: ProcessSpec,
    *,
    base: Mapping[str, str] | None = None,
    dotenv: Iterable[tuple[str, str]] = (),
    bin_dir: str | None = None,
    overrides: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """The environment ``spec`` runs with: ``base`` (the console's own by
    default), ``.env``'s values, the process's own, then ``overrides``
    (``--settings``/``--pythonpath``: the command line wins), ``bin_dir``
    (a virtualenv's) first on ``PATH``, and colour asked for (see
    :data:`COLOUR_ENV`) unless already set or ``NO_COLOR`` is. ``PORT`` is
    not exported: the command's text has it (:func:`.procfile.expand_port`)."""
    env = dict(os.environ if base is None else base)
    env.update(dotenv)
    env.update(spec.env)
    env.update(overrides or {})
    if "NO_COLOR" not in env:
        for key, value in COLOUR_ENV.items():
            env.setdefault(key, value)
    if bin_dir:
        rest = [part for part in env.get("PATH", os.defpath).split(os.pathsep) if part and part != bin_dir]
        env["PATH"] = os.pathsep.join([bin_dir, *rest])
    env.setdefault("PYTHONUNBUFFERED", "1")
    return env


def group_members(pgid: int) -> list[int]:
    """Pids of the live (not zombie) processes of process group ``pgid``, from /proc."""
    members = []
    for stat in _proc_stats():
        if stat[1] == pgid and stat[2] != "Z":
            members.append(stat[0])
    return members


def _parent_death_signal() -> Callable[[], None] | None:
    """A ``preexec_fn`` giving the child ``SIGKILL`` when its parent thread
    dies (Linux's ``PR_SET_PDEATHSIG``), or None where there is none."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        linux.libc()  # loaded, prctl resolved, now: only the call runs after the fork
    except (OSError, AttributeError):
        return None
    parent = os.getpid()

    def preexec() -> None:
        linux.die_with_parent()
        if os.getppid() != parent:  # the console died before the call: nobody would send it
            os._exit(1)

    return preexec


_PDEATHSIG = _parent_death_signal()


def _proc_stats() -> list[tuple[int, int, str, int, int]]:
    """(pid, pgrp, state, utime + stime in ticks, rss in pages) of every process, from /proc."""
    stats = []
    try:
        entries = os.listdir("/proc")
    except OSError:
        return []
    for entry in entries:
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as file:
                data = file.read().decode("ascii", "replace")
        except OSError:
            continue
        # The command name (field 2) is in parentheses and may hold anything: split after its last ')'.
        fields = data[data.rfind(")") + 2 :].split()
        try:
            stats.append((int(entry), int(fields[2]), fields[0], int(fields[11]) + int(fields[12]), int(fields[21])))
        except (IndexError, ValueError):
            continue
    return stats


@dataclass(frozen=True)
class Usage:
    """CPU and memory of a process's whole group, best effort."""

    #: Processes in the group.
    processes: int
    #: CPU seconds used by the group's live processes.
    cpu_seconds: float
    #: Percent of one core since the previous :meth:`ProcessManager.usage` call (None the first time).
    cpu_percent: float | None
    rss_bytes: int


@dataclass(frozen=True)
class ProcessInfo:
    """One process as it stands (for a table)."""

    name: str
    state: State
    pid: int | None
    returncode: int | None
    restarts: int
    #: ``time.time()`` of the current run's start, None when not running.
    started: float | None
    #: Seconds until the restart when restarting.
    delay: float | None


class _Run:
    """One run of a process: its Popen and the readers of its output."""

    def __init__(self, popen: subprocess.Popen[bytes], started: float) -> None:
        self.popen = popen
        self.started = started
        self.started_mono = time.monotonic()
        #: When SIGKILL goes to the group (set by a stop request).
        self.kill_at: float | None = None
        self.readers: list[threading.Thread] = []
        self.readers_stop = threading.Event()
        #: Whether it said it is ready (see ProcessSpec.ready_port / ready_line).
        self.ready = False


class _Slot:
    """A declared process and its lifetime thread (all fields under the manager's lock)."""

    def __init__(self, spec: ProcessSpec) -> None:
        self.spec = spec
        self.state: State = "stopped"
        self.returncode: int | None = None
        self.restarts = 0
        self.delay: float | None = None
        self.backoff = BACKOFF_FIRST
        self.run: _Run | None = None
        #: The current or last run's pid (None while starting).
        self.pid: int | None = None
        self.thread: threading.Thread | None = None
        #: Whether the lifetime thread is in charge (False from the moment it decides to end).
        self.active = False
        #: Set by stop(); the lifetime thread ends after the current run.
        self.stop_requested = False
        #: Set by restart(); the lifetime thread starts again at once.
        self.restart_requested = False
        #: Wakes the lifetime thread out of a backoff wait.
        self.wake = threading.Event()
        self.last_sample: tuple[float, int] | None = None


class ProcessManager:
    """Runs side processes and reports on them through ``emit``. Thread-safe:
    every method may be called from any thread and returns without waiting
    for a process, except :meth:`stop_all` (which waits, bounded)."""

    def __init__(
        self,
        specs: Sequence[ProcessSpec],
        emit: Emit,
        *,
        env: Callable[[ProcessSpec], Mapping[str, str]] | None = None,
        stop_timeout: float = STOP_TIMEOUT,
        backoff: tuple[float, float, float] = (BACKOFF_FIRST, BACKOFF_MAX, BACKOFF_RESET),
    ) -> None:
        names = [spec.name for spec in specs]
        if len(set(names)) != len(names):
            raise ValueError("process names must be unique")
        self._slots = {spec.name: _Slot(spec) for spec in specs}
        self._emit = emit
        self._env = env or (lambda spec: process_env(spec))
        self._stop_timeout = stop_timeout
        self._backoff_first, self._backoff_max, self._backoff_reset = backoff
        for slot in self._slots.values():
            slot.backoff = self._backoff_first
        self._lock = threading.RLock()
        self._closed = False

    @property
    def names(self) -> list[str]:
        return list(self._slots)

    # -- control ------------------------------------------------------------

    def start_all(self) -> None:
        for name in self._slots:
            self.start(name)

    def start(self, name: str) -> None:
        """Start ``name`` unless it runs (or is about to); a process waiting
        out its backoff starts now."""
        with self._lock:
            if self._closed:
                return
            slot = self._slots[name]
            slot.stop_requested = False
            if slot.active:
                if slot.state == "restarting":
                    slot.wake.set()
                elif slot.state == "stopping":
                    slot.restart_requested = True
                return
            slot.backoff = self._backoff_first
            slot.wake.clear()
            slot.active = True
            slot.thread = threading.Thread(target=self._lifetime, args=(slot,), name=f"sideproc-{name}", daemon=True)
            slot.thread.start()

    def stop(self, name: str) -> None:
        """Stop ``name`` (SIGTERM to its group, SIGKILL after the timeout)
        and do not restart it; returns at once."""
        with self._lock:
            slot = self._slots[name]
            slot.stop_requested = True
            slot.restart_requested = False
            self._terminate(slot)
            slot.wake.set()

    def restart(self, name: str) -> None:
        """Stop ``name`` and start it again (at once if it is not running)."""
        with self._lock:
            if self._closed:
                return
            slot = self._slots[name]
            if not slot.active:
                self.start(name)
                return
            slot.stop_requested = False
            if slot.state == "restarting":
                slot.wake.set()  # waiting out its backoff: start now
                return
            slot.restart_requested = True
            self._terminate(slot)

    def restart_all(self) -> list[str]:
        """Restart every process but those the user stopped (:meth:`stop`
        stays in force until :meth:`start` or :meth:`restart` of that one);
        their names."""
        with self._lock:
            names = [name for name, slot in self._slots.items() if not slot.stop_requested]
            for name in names:
                self.restart(name)
        return names

    def restart_changed(self) -> list[str]:
        """Restart the running processes declared ``restart_on_change`` (the
        project's code changed), not one being stopped; their names."""
        with self._lock:
            names = [
                name
                for name, slot in self._slots.items()
                if slot.spec.restart_on_change and slot.active and not slot.stop_requested
            ]
            for name in names:
                self.restart(name)
        return names

    def stop_all_nowait(self) -> None:
        """Ask every process to stop (SIGTERM to each group now) and start
        nothing afterwards; returns at once (:meth:`stop_all` waits)."""
        with self._lock:
            self._closed = True
            for name in self._slots:
                self.stop(name)

    def stop_all(self, timeout: float | None = None) -> bool:
        """Stop every process and wait for them and every thread of the
        manager to end (at most about ``timeout``, by default the stop
        timeout plus a few seconds). True if all ended; the manager starts
        nothing afterwards."""
        self.stop_all_nowait()
        with self._lock:
            threads = [slot.thread for slot in self._slots.values() if slot.thread is not None]
        deadline = time.monotonic() + (self._stop_timeout + 5.0 if timeout is None else timeout)
        for thread in threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        return not any(thread.is_alive() for thread in threads)

    def running(self) -> list[str]:
        """Names of the processes whose lifetime has not ended (still running or stopping)."""
        with self._lock:
            return [name for name, slot in self._slots.items() if slot.thread is not None and slot.thread.is_alive()]

    def _terminate(self, slot: _Slot) -> None:
        """SIGTERM to the running group, SIGKILL due after the timeout (lock held)."""
        run = slot.run
        if run is None or run.kill_at is not None:
            return
        run.kill_at = time.monotonic() + self._stop_timeout
        signal_group(run.popen.pid, signal.SIGTERM)
        self._set(slot, "stopping")

    # -- looking ------------------------------------------------------------

    def info(self) -> list[ProcessInfo]:
        with self._lock:
            return [
                ProcessInfo(
                    name=slot.spec.name,
                    state=slot.state,
                    pid=slot.run.popen.pid if slot.run else None,
                    returncode=slot.returncode,
                    restarts=slot.restarts,
                    started=slot.run.started if slot.run else None,
                    delay=slot.delay,
                )
                for slot in self._slots.values()
            ]

    def usage(self, name: str) -> Usage | None:
        """CPU and memory of ``name``'s process group from /proc; None when it
        does not run (or /proc cannot say)."""
        if name not in self._slots:
            raise KeyError(name)
        return self.usage_all().get(name)

    def usage_all(self) -> dict[str, Usage | None]:
        """CPU and memory of every process's group, from one scan of /proc
        (slow with many processes on the machine: call it off the UI thread)."""
        with self._lock:
            groups = {name: (slot.run.popen.pid if slot.run else None) for name, slot in self._slots.items()}
        wanted = {pgid for pgid in groups.values() if pgid is not None}
        by_group: dict[int, list[tuple[int, int, str, int, int]]] = {}
        if wanted:
            for stat in _proc_stats():
                if stat[1] in wanted and stat[2] != "Z":
                    by_group.setdefault(stat[1], []).append(stat)
        hertz = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
        page = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096
        now = time.monotonic()
        result: dict[str, Usage | None] = {}
        with self._lock:
            for name, pgid in groups.items():
                stats = by_group.get(pgid, []) if pgid is not None else []
                if not stats:
                    result[name] = None
                    continue
                slot = self._slots[name]
                ticks = sum(stat[3] for stat in stats)
                percent = None
                if slot.last_sample is not None and now > slot.last_sample[0]:
                    used = max(0, ticks - slot.last_sample[1]) / hertz
                    percent = 100.0 * used / (now - slot.last_sample[0])
                slot.last_sample = (now, ticks)
                result[name] = Usage(len(stats), ticks / hertz, percent, sum(stat[4] for stat in stats) * page)
        return result

    # -- the lifetime thread ---------------------------------------------------

    def _lifetime(self, slot: _Slot) -> None:
        while True:
            run = self._spawn(slot)
            if run is None:
                returncode: int | None = None
                lasted = 0.0
            else:
                returncode = self._wait(slot, run)
                lasted = time.monotonic() - run.started_mono
            with self._lock:
                slot.run = None
                slot.returncode = returncode
                stopped = slot.stop_requested or self._closed
                if stopped:
                    if run is not None:
                        self._log(slot.spec.name, "stderr", f"{_ended(returncode)} · stopped")
                    self._set(slot, "stopped")
                    slot.active = False
                    return
                if slot.restart_requested:
                    slot.restart_requested = False
                    if run is not None:
                        self._log(slot.spec.name, "stderr", f"{_ended(returncode)} · restarting")
                    self._set(slot, "stopped")
                    slot.restarts += 1
                    slot.backoff = self._backoff_first
                    continue
                failed = returncode is None or returncode != 0
                ended: State = "crashed" if returncode is None or returncode < 0 else "exited"
                policy = slot.spec.restart
                if policy == "never" or (policy == "on-failure" and not failed):
                    if run is not None:
                        self._log(slot.spec.name, "stderr", _ended(returncode))
                    self._set(slot, ended)
                    slot.active = False
                    return
                if lasted >= self._backoff_reset:
                    slot.backoff = self._backoff_first
                delay = slot.backoff
                slot.backoff = min(self._backoff_max, slot.backoff * 2)
                if run is not None:
                    self._log(slot.spec.name, "stderr", f"{_ended(returncode)} · restarting in {delay:.1f} s")
                self._set(slot, ended)
                slot.wake.clear()
                slot.delay = delay
                self._set(slot, "restarting")
            slot.wake.wait(delay)
            with self._lock:
                slot.delay = None
                slot.restart_requested = False
                if slot.stop_requested or self._closed:
                    self._set(slot, "stopped")
                    slot.active = False
                    return
                slot.restarts += 1

    def _spawn(self, slot: _Slot) -> _Run | None:
        spec = slot.spec
        with self._lock:
            slot.returncode = None
            slot.pid = None
            self._set(slot, "starting")
        try:
            popen = subprocess.Popen(
                ["/bin/sh", "-c", self._command(spec)],
                cwd=spec.cwd,
                env=dict(self._env(spec)),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                start_new_session=True,
                close_fds=True,
                preexec_fn=_PDEATHSIG,  # prctl only, prepared before the fork
            )
        except OSError as error:
            self._log(spec.name, "stderr", f"cannot start {spec.name!r}: {error.strerror or error}")
            return None
        run = _Run(popen, time.time())
        ready_line = re.compile(spec.ready_line) if spec.ready_line else None
        for stream, pipe in (("stdout", popen.stdout), ("stderr", popen.stderr)):
            assert pipe is not None
            reader = threading.Thread(
                target=self._read,
                args=(slot, run, ready_line, stream, pipe.fileno()),
                name=f"sideproc-{spec.name}-{stream}",
                daemon=True,
            )
            run.readers.append(reader)
        with self._lock:
            slot.run = run
            slot.pid = popen.pid
            for reader in run.readers:
                reader.start()
            if spec.ready_port is None and spec.ready_line is None:
                run.ready = True
                self._set(slot, "running")
            else:
                self._set(slot, "starting")  # with its pid: running once ready
            if slot.stop_requested or slot.restart_requested or self._closed:
                self._terminate(slot)
        return run

    def _wait(self, slot: _Slot, run: _Run) -> int:
        """Wait for the run's leader to exit (SIGKILL to the group when a stop
        times out), then for the rest of its group (SIGTERM, then SIGKILL),
        then for its output; its exit status."""
        popen = run.popen
        port = slot.spec.ready_port
        next_probe = 0.0
        while True:
            try:
                returncode = popen.wait(timeout=0.05)
                break
            except subprocess.TimeoutExpired:
                with self._lock:
                    kill_at = run.kill_at
                    probe = port is not None and not run.ready and kill_at is None
                if kill_at is not None and time.monotonic() >= kill_at:
                    signal_group(popen.pid, signal.SIGKILL)
                if probe and port is not None and time.monotonic() >= next_probe:
                    next_probe = time.monotonic() + READY_POLL
                    if _accepts(port):
                        self._ready(slot, run)
        self._reap_group(run)
        for reader in run.readers:
            reader.join(1.0)
        run.readers_stop.set()
        for reader in run.readers:
            reader.join(1.0)
        for pipe in (popen.stdout, popen.stderr):
            if pipe is not None:
                pipe.close()
        return returncode

    def _reap_group(self, run: _Run) -> None:
        """Stop what is left of the run's group once its leader exited."""
        pgid = run.popen.pid
        if not group_members(pgid):
            return
        with self._lock:
            if run.kill_at is None:
                run.kill_at = time.monotonic() + LINGER + self._stop_timeout
                termed_at: float | None = time.monotonic() + LINGER
            else:
                termed_at = None
            kill_at = run.kill_at
        killed_at: float | None = None
        while group_members(pgid):
            now = time.monotonic()
            if termed_at is not None and now >= termed_at:
                signal_group(pgid, signal.SIGTERM)
                termed_at = None
            if now >= kill_at and killed_at is None:
                signal_group(pgid, signal.SIGKILL)
                killed_at = now
            if killed_at is not None and now - killed_at > 5.0:
                return  # unkillable (uninterruptible sleep): give up rather than hang
            time.sleep(REAP_POLL)

    def _command(self, spec: ProcessSpec) -> str:
        """The shell command that runs ``spec`` (see :func:`for_project`)."""
        return spec.command

    def _ready(self, slot: _Slot, run: _Run) -> None:
        """``run`` said it is ready: running, if it is still the slot's run and starting."""
        with self._lock:
            if run.ready:
                return
            run.ready = True
            if slot.run is run and slot.state == "starting":
                self._set(slot, "running")

    def _read(self, slot: _Slot, run: _Run, ready_line: re.Pattern[str] | None, stream: str, fd: int) -> None:
        name = slot.spec.name
        stop = run.readers_stop
        decoder = codecs.getincrementaldecoder("utf-8")("replace")
        pending = ""
        while not stop.is_set():
            try:
                ready, _, _ = select.select([fd], [], [], 0.2)
            except (OSError, ValueError):
                break
            if not ready:
                continue
            try:
                chunk = os.read(fd, 65536)
            except OSError:
                break
            if not chunk:
                break
            pending += decoder.decode(chunk)
            *lines, pending = pending.split("\n")
            for line in lines:
                self._log_cut(name, stream, line)
                if ready_line is not None and not run.ready and ready_line.search(_SGR.sub("", line)):
                    self._ready(slot, run)
            while len(pending) > LINE_LIMIT:
                self._log(name, stream, pending[:LINE_LIMIT])
                pending = pending[LINE_LIMIT:]
        pending += decoder.decode(b"", final=True)
        if pending:
            self._log_cut(name, stream, pending)

    def _log_cut(self, name: str, stream: str, line: str) -> None:
        line = line.rstrip("\r")
        for start in range(0, max(len(line), 1), LINE_LIMIT):
            self._log(name, stream, line[start : start + LINE_LIMIT])

    # -- events -------------------------------------------------------------

    def _log(self, name: str, stream: str, text: str) -> None:
        self._send({"type": "process_log", "name": name, "stream": stream, "text": text, "ts": time.time()})

    def _send(self, event: dict[str, Any]) -> None:
        """Hand ``event`` to the callback; a failing callback must not stop the supervision."""
        try:
            self._emit(event)
        except Exception:  # the caller's bug: the processes still need supervising
            pass

    def _set(self, slot: _Slot, state: State) -> None:
        """Change ``slot``'s state and report it (lock held)."""
        slot.state = state
        self._send(
            {
                "type": "process",
                "name": slot.spec.name,
                "state": state,
                "pid": slot.pid,
                "returncode": slot.returncode,
                "restarts": slot.restarts,
                "delay": slot.delay if state == "restarting" else None,
                "ts": time.time(),
            }
        )


def _ended(returncode: int | None) -> str:
    """``exited 3``, ``killed by SIGTERM``: how a run ended, for its log."""
    if returncode is None:
        return "ended"
    if returncode < 0:
        try:
            return f"killed by {signal.Signals(-returncode).name}"
        except ValueError:
            return f"killed by signal {-returncode}"
    return f"exited {returncode}"


def _accepts(port: int) -> bool:
    """Whether something accepts a TCP connection on 127.0.0.1:``port``."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return True
    except OSError:
        return False


def virtualenv_bin(python: str) -> str | None:
    """The ``bin`` directory of the virtualenv ``python`` is in (not
    resolved: a venv's python is a link), else None."""
    bin_dir = Path(os.path.abspath(python)).parent
    return str(bin_dir) if (bin_dir.parent / "pyvenv.cfg").is_file() else None


class _ProjectManager(ProcessManager):
    """A manager whose commands have the server's port for ``$PORT``."""

    def __init__(self, *args: Any, port: int | None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._port = port

    def _command(self, spec: ProcessSpec) -> str:
        return spec.command if self._port is None else expand_port(spec.command, self._port)


def for_project(
    specs: Sequence[ProcessSpec],
    emit: Emit,
    *,
    base_env: Mapping[str, str],
    python: str,
    dotenv: Iterable[tuple[str, str]] = (),
    port: int | None = None,
    stop_timeout: float = STOP_TIMEOUT,
    overrides: Mapping[str, str] | None = None,
) -> ProcessManager:
    """A manager for a project's processes: ``base_env`` (the project's
    child environment), ``.env``'s values, ``overrides`` last (the
    command line's ``--settings``), ``$PORT`` in each command replaced by
    ``port``, and the project interpreter's ``bin`` first on PATH when it is
    a virtualenv's."""
    values = tuple(dotenv)
    bin_dir = virtualenv_bin(python)
    last = dict(overrides or {})

    def env(spec: ProcessSpec) -> Mapping[str, str]:
        return process_env(spec, base=base_env, dotenv=values, bin_dir=bin_dir, overrides=last)

    return _ProjectManager(specs, emit, env=env, stop_timeout=stop_timeout, port=port)
