"""The console application: one event state, views that read it on a timer."""

from __future__ import annotations

import socket
import threading
from typing import IO, Any, ClassVar

from textual.app import App
from textual.binding import Binding, BindingType

from ..core.listen import ListenAddress
from ..core.project import Project
from ..core.recording import Recorder, Recording, play
from ..core.state import ServerState
from ..core.supervisor import Supervisor
from .dashboard import DashboardScreen

#: How often views pull new events from the state (seconds).
TICK = 0.1


class DevConsoleApp(App[int]):
    """devconsole: Django's development server, made visible."""

    TITLE = "devconsole"
    CSS_PATH = "devconsole.tcss"
    MODES: ClassVar[dict[str, Any]] = {"dashboard": DashboardScreen}
    DEFAULT_MODE = "dashboard"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("q", "quit", "Quit", id="quit"),
        Binding("ctrl+q", "quit", "Quit", show=False, priority=True, id="quit-now"),
        Binding("r", "restart", "Restart server", id="restart"),
    ]

    def __init__(
        self,
        *,
        project: Project | None = None,
        address: ListenAddress | None = None,
        sock: socket.socket | None = None,
        reload: bool = True,
        use_threading: bool = True,
        record: IO[str] | None = None,
        recording: Recording | None = None,
        speed: float = 0.0,
        state: ServerState | None = None,
    ) -> None:
        super().__init__()
        self.project = project
        self.address = address
        self.reload_enabled = reload
        self.recording = recording
        self._speed = speed
        self._stop_replay = threading.Event()
        clock = None
        if recording is not None:
            last = recording.last_ts
            clock = lambda: last  # noqa: E731 - replays show the recording's own time
        self.state = state or (ServerState(clock=clock) if clock else ServerState())
        sink = self.state.ingest
        if record is not None:
            sink = Recorder(record, sink)
        self.supervisor: Supervisor | None = None
        if project is not None and address is not None and sock is not None:
            self.supervisor = Supervisor(project, address, sock, sink, use_threading=use_threading)
        self._shutdown_done = False

    def on_mount(self) -> None:
        if self.supervisor is not None:
            self.supervisor.start()
        elif self.recording is not None:
            self._replay()
        self.set_interval(TICK, self._tick)

    def _replay(self) -> None:
        assert self.recording is not None
        if self._speed <= 0:
            play(self.recording, self.state.ingest)
            return
        threading.Thread(
            target=play,
            args=(self.recording, self.state.ingest),
            kwargs={"speed": self._speed, "stop": self._stop_replay},
            name="devconsole-replay",
            daemon=True,
        ).start()

    def _tick(self) -> None:
        refresh = getattr(self.screen, "refresh_from_state", None)
        if refresh is not None:
            refresh(self.state)

    def action_restart(self) -> None:
        if self.supervisor is None:
            self.notify("Replaying a recording: there is no server to restart.", severity="warning")
            return
        self.notify("Restarting the server…")
        self.run_worker(self.supervisor.restart, thread=True, exclusive=True, group="server", description="restart the server", exit_on_error=False)

    def shutdown(self) -> None:
        """Stop the server child and release the port (idempotent)."""
        if self._shutdown_done:
            return
        self._shutdown_done = True
        self._stop_replay.set()
        if self.supervisor is not None:
            self.supervisor.close()

    def on_unmount(self) -> None:
        self.shutdown()
