"""A live server session: the event state, the supervisor on the console's
socket, and the reloader that starts and restarts it.

Textual-free, so the command line can start the server before it imports the
UI: Django's start-up in the child overlaps Textual's import and the first
layout, and the first response comes sooner.
"""

from __future__ import annotations

import socket
from typing import IO

from devconsole.console.listen import ListenAddress
from devconsole.console.project import Project
from devconsole.console.reloader import Reloader
from devconsole.console.supervisor import Supervisor
from devconsole.model.recording import Recorder
from devconsole.model.state import ServerState


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
        self.started = False
        self._closed = False

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
