"""A live server session, and the one place the event pipeline is wired.

An event travels, in this order:

1. **supervisor** (:mod:`.supervisor`): reader threads turn a server
   generation's event pipe, stdout and stderr (and the fork servers'
   output) into sanitized event dicts;
2. **reloader** (:mod:`.reloader`): learns from them (what the server
   imported and watches, ``file_changed`` answers), drops a spare's, and
   adds its own (``reload``, its ``log`` lines, the watcher's failures);
3. **recorder** (:class:`devconsole.model.recording.RecordingWriter`, only with
   ``--record``): writes each event to the recording, then passes it on;
4. **state** (:class:`devconsole.model.state.ServerState`): ``ingest``,
   which the UI reads.

The side processes a project declares (``Procfile.dev``, see
:mod:`.procfile`) join at step 3: the :class:`~.sideprocs.ProcessManager`'s
``process`` and ``process_log`` events are sanitized here, where they enter,
and go to the recorder and the state like the server's. They start with the
server, restart with it when the reloader sees the project's Python files
change (those declared ``restart_on_change``), and stop on :meth:`Session.close`.

:func:`wire` builds steps 1 and 2 on any sink (tests and benchmarks give
their own); :class:`Session` adds 3 and 4. Nothing else swaps or wraps a
callback on the way.

Textual-free, so the command line can start the server before it imports the
UI: Django's start-up in the child overlaps Textual's import and the first
layout, and the first response comes sooner.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Callable
from typing import IO, Any

from devconsole.console.listen import ListenAddress
from devconsole.console.procfile import Declared
from devconsole.console.project import Project
from devconsole.console.reloader import Reloader
from devconsole.console.sideprocs import STOP_TIMEOUT, ProcessManager, for_project
from devconsole.console.supervisor import EventSink, Supervisor
from devconsole.model.recording import RecordingWriter
from devconsole.model.sanitize import clean, clean_colour_line, clean_line, clean_value
from devconsole.model.state import ServerState

#: Seconds the side processes may take to stop on close before a line says what is awaited.
SLOW_STOP = 1.0


def wire(
    project: Project,
    address: ListenAddress,
    sock: socket.socket,
    sink: EventSink,
    *,
    reload: bool = True,
    use_threading: bool = True,
) -> tuple[Supervisor, Reloader]:
    """Supervisor → reloader → ``sink``, not started.

    The reloader watches only when ``reload`` is on (and then uses
    pre-forked fork servers); off, it starts the one generation by a spawn.
    """
    reloader: Reloader

    def supervisor_events(event: dict[str, Any]) -> None:
        reloader.on_event(event)

    supervisor = Supervisor(project, address, sock, supervisor_events, use_threading=use_threading)
    reloader = Reloader(supervisor, sink, watch=reload, use_fork=None if reload else False)
    return supervisor, reloader


class Session:
    def __init__(
        self,
        project: Project,
        address: ListenAddress,
        sock: socket.socket,
        *,
        state: ServerState | None = None,
        reload: bool = True,
        use_threading: bool = True,
        record: IO[str] | None = None,
        processes: Declared | None = None,
        process_error: str | None = None,
        process_stop_timeout: float = STOP_TIMEOUT,
    ) -> None:
        """``processes``: the side processes to run with the server (none
        with ``--no-processes``); ``process_error``: the one line saying
        why the declaration could not be read (the server still serves)."""
        self.project = project
        self.address = address
        self.reload_enabled = reload
        self.state = state or ServerState()
        sink: EventSink = self.state.ingest
        if record is not None:
            sink = RecordingWriter(record, sink)
        self._sink = sink
        self.supervisor, self.reloader = wire(project, address, sock, sink, reload=reload, use_threading=use_threading)
        self.declared = processes
        self.process_error = process_error
        #: The side processes' manager, when the project declares any.
        self.processes: ProcessManager | None = None
        if processes is not None and processes.processes:
            self.processes = for_project(
                processes.processes,
                self._process_event,
                base_env=project.child_env(),
                python=project.python,
                dotenv=processes.dotenv,
                port=address.port,
                stop_timeout=process_stop_timeout,
                overrides=project.option_env(),
            )
            self.reloader.on_code_change = self._code_changed
        self.started = False
        self._closed = False
        self._close_began = 0.0
        self._processes_waited = False

    def start(self) -> None:
        """Start the first server generation (and the watch) and the side
        processes; returns at once."""
        if self.started:
            return
        self.started = True
        self.reloader.start()
        now = time.time()
        if self.process_error is not None or self.processes is not None:
            self._sink(
                {
                    "type": "processes",
                    "names": [clean(name, 64) for name in self.processes.names] if self.processes else [],
                    "error": clean_line(self.process_error, 300) if self.process_error is not None else None,
                    "ts": now,
                }
            )
        declared = self.declared
        for note in [declared.note, *declared.skipped_lines] if declared is not None else []:
            if note:
                self._sink({"type": "log", "stream": "stderr", "text": f"devconsole: {clean_line(note)}", "ts": now})
        if self.processes is not None:
            self.processes.start_all()

    def _process_event(self, event: dict[str, Any]) -> None:
        """A side process's event, sanitized where it enters (its output
        keeps its colours, nothing else), on to the recorder and the state."""
        if event.get("type") == "process_log":
            event = {
                "type": "process_log",
                "name": clean(str(event.get("name")), 64),
                "stream": str(event.get("stream")),
                "text": clean_colour_line(str(event.get("text"))),
                "ts": event.get("ts"),
            }
        else:
            event = clean_value(event)
        self._sink(event)

    def _code_changed(self, paths: list[str]) -> None:
        """The reloader saw the project's Python files change: the side
        processes declared ``restart_on_change`` restart with the server."""
        if self.processes is not None:
            self.processes.restart_changed()

    def close(self, say: Callable[[str], None] | None = None, *, wait: bool = True) -> None:
        """Stop watching, every child process (the side processes' groups
        included), and release the port (idempotent). With ``wait`` off the
        side processes are asked to stop (SIGTERM now, SIGKILL when due) but
        not waited for: a later ``close()`` waits (the app closes without
        waiting, the command line waits once the terminal is the user's
        again). When side processes still run :data:`SLOW_STOP` seconds
        after the stop began, ``say`` gets one line naming them."""
        if not self._closed:
            self._closed = True
            self._close_began = time.monotonic()
            if self.processes is not None:
                self.processes.stop_all_nowait()  # SIGTERM now: they stop while the server does
            self.reloader.stop()
            self.supervisor.close()
        if not wait or self.processes is None or self._processes_waited:
            return
        self._processes_waited = True
        if self.processes.stop_all(max(0.0, SLOW_STOP - (time.monotonic() - self._close_began))):
            return
        left = self.processes.running()
        if say is not None and left:
            shown = ", ".join(left[:5]) + (f" +{len(left) - 5}" if len(left) > 5 else "")
            say(f"devconsole: stopping side processes… ({shown})")
        if not self.processes.stop_all() and say is not None:
            say(f"devconsole: side processes still running: {', '.join(self.processes.running())}")
