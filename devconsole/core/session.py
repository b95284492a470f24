"""A live server session: the event state, the supervisor on the console's
socket, and the reloader that starts and restarts it.

Textual-free, so the command line can start the server before it imports the
UI: Django's start-up in the child overlaps Textual's import and the first
layout, and the first response comes sooner.
"""

from __future__ import annotations

import socket
from typing import IO, Any

from .listen import ListenAddress
from .project import Project
from .recording import Recorder
from .reloader import Reloader
from .state import ServerState
from .supervisor import Supervisor


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
    ) -> None:
        self.project = project
        self.address = address
        self.reload_enabled = reload
        self.state = state or ServerState()
        sink = self.state.ingest
        if record is not None:
            sink = Recorder(record, sink)
        self.supervisor = Supervisor(project, address, sock, sink, use_threading=use_threading)
        #: Watches only when reload is on (and then uses pre-forked processes).
        self.reloader = Reloader(self.supervisor, watch=reload, use_fork=None if reload else False)
        self._number_startup_output()
        self.started = False
        self._closed = False

    def _number_startup_output(self) -> None:
        """Give the first start's output to generation 1.

        On the first start the fork server (level 0, then level 1) runs
        ``manage.py``, the settings and ``AppConfig.ready()`` before any
        generation is numbered, so what they print is tagged generation 0 —
        the number the reloader reserves for spares, whose events it drops.
        Before the first generation exists no spare can, so such a line
        belongs to generation 1, the one that start makes.
        """
        supervisor = self.supervisor
        downstream = supervisor.on_event

        def on_event(event: dict[str, Any]) -> None:
            if supervisor.generation == 0 and event.get("type") == "log" and not event.get("generation"):
                event["generation"] = 1
            downstream(event)

        supervisor.on_event = on_event

    def start(self) -> None:
        """Start the first server generation (and the watch); returns at once."""
        if not self.started:
            self.started = True
            self.reloader.start()

    def close(self) -> None:
        """Stop watching, every child process, and release the port (idempotent)."""
        if self._closed:
            return
        self._closed = True
        self.reloader.stop()
        self.supervisor.close()
