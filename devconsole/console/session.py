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

:func:`wire` builds steps 1 and 2 on any sink (tests and benchmarks give
their own); :class:`Session` adds 3 and 4. Nothing else swaps or wraps a
callback on the way.

Textual-free, so the command line can start the server before it imports the
UI: Django's start-up in the child overlaps Textual's import and the first
layout, and the first response comes sooner.
"""

from __future__ import annotations

import socket
from typing import IO, Any

from devconsole.console.listen import ListenAddress
from devconsole.console.project import Project
from devconsole.console.reloader import Reloader
from devconsole.console.supervisor import EventSink, Supervisor
from devconsole.model.recording import RecordingWriter
from devconsole.model.state import ServerState


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
    ) -> None:
        self.project = project
        self.address = address
        self.reload_enabled = reload
        self.state = state or ServerState()
        sink: EventSink = self.state.ingest
        if record is not None:
            sink = RecordingWriter(record, sink)
        self.supervisor, self.reloader = wire(project, address, sock, sink, reload=reload, use_threading=use_threading)
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
