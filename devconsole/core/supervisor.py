"""Start, watch and stop server children on the console's socket.

The console owns the listening socket; each server child (one "generation"
per start or reload) adopts it through ``pass_fds``. Three reader threads per
child turn its event pipe, stdout and stderr into events for ``on_event``; a
fourth waits for it to exit. ``stop()`` asks the child to finish its requests
and go, then terminates and kills its process group if it does not.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Callable
from typing import IO, Any

from . import protocol
from .listen import ListenAddress
from .project import Project
from .sanitize import clean_line, clean_value

EventSink = Callable[[dict[str, Any]], None]

#: A single line of child output longer than this is cut.
MAX_LOG_LINE = 8192
STOP_TIMEOUT = 6.0


class ServerChild:
    """One generation of the server: a child process and its reader threads."""

    def __init__(self, supervisor: Supervisor, generation: int) -> None:
        self.generation = generation
        self._supervisor = supervisor
        project = supervisor.project
        read_fd, write_fd = os.pipe()
        listen_fd = supervisor.socket.fileno()
        argv = project.child_argv(
            "devconsole.core.agent",
            "--listen-fd",
            str(listen_fd),
            "--events-fd",
            str(write_fd),
            "--addrport",
            supervisor.address.addrport,
            "--generation",
            str(generation),
        )
        if not supervisor.use_threading:
            argv.append("--nothreading")
        if supervisor.address.ipv6:
            argv.append("--ipv6")
        try:
            self.process = subprocess.Popen(
                argv,
                cwd=project.root,
                env=project.child_env(),
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                pass_fds=(listen_fd, write_fd),
                # Ctrl+C in the terminal is the console's, not the server's.
                start_new_session=True,
            )
        finally:
            os.close(write_fd)
        events = os.fdopen(read_fd, "rb")
        self._threads = [
            self._spawn(self._read_events, events, "events"),
            self._spawn(self._read_output, self.process.stdout, "stdout"),
            self._spawn(self._read_output, self.process.stderr, "stderr"),
        ]
        self._waiter = self._spawn(self._wait, None, "wait")
        self.hello = threading.Event()

    def _spawn(self, target: Callable[..., None], stream: Any, name: str) -> threading.Thread:
        thread = threading.Thread(
            target=target, args=(stream,) if stream is not None else (),
            name=f"devconsole-g{self.generation}-{name}", daemon=True,
        )
        thread.start()
        return thread

    def _emit(self, event: dict[str, Any]) -> None:
        event.setdefault("generation", self.generation)
        self._supervisor.on_event(event)

    def _read_events(self, stream: IO[bytes]) -> None:
        with stream:
            for line in stream:
                if len(line) > protocol.MAX_LINE:
                    continue
                event = protocol.decode(line)
                if event is None:
                    continue
                event = clean_value(event)
                if event["type"] == "hello":
                    self.hello.set()
                self._emit(event)

    def _read_output(self, stream: IO[bytes]) -> None:
        name = "stdout" if stream is self.process.stdout else "stderr"
        with stream:
            for raw in stream:
                text = raw[:MAX_LOG_LINE].decode("utf-8", "replace")
                self._emit({"type": "log", "stream": name, "text": clean_line(text), "ts": time.time()})

    def _wait(self) -> None:
        returncode = self.process.wait()
        for thread in self._threads:
            thread.join(timeout=2)
        self._emit({"type": "exit", "returncode": returncode, "ts": time.time()})
        self.hello.set()

    @property
    def alive(self) -> bool:
        return self.process.poll() is None

    def send(self, line: str) -> None:
        """A control line for the child (``stop``, ``file_changed PATH``)."""
        try:
            assert self.process.stdin is not None
            self.process.stdin.write(line.encode() + b"\n")
            self.process.stdin.flush()
        except (BrokenPipeError, OSError, ValueError):
            pass

    def stop(self, timeout: float = STOP_TIMEOUT) -> int | None:
        """Gracefully, then by force. Returns the exit status."""
        if self.alive:
            self.send("stop")
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self._signal(signal.SIGTERM)
                try:
                    self.process.wait(2)
                except subprocess.TimeoutExpired:
                    self._signal(signal.SIGKILL)
                    self.process.wait(2)
        try:
            assert self.process.stdin is not None
            self.process.stdin.close()
        except OSError:
            pass
        self._waiter.join(timeout=3)
        return self.process.returncode

    def _signal(self, sig: int) -> None:
        try:
            os.killpg(self.process.pid, sig)
        except (ProcessLookupError, PermissionError):
            pass


class Supervisor:
    """Owns the listening socket and the current server child."""

    def __init__(
        self,
        project: Project,
        address: ListenAddress,
        sock: socket.socket,
        on_event: EventSink,
        *,
        use_threading: bool = True,
    ) -> None:
        self.project = project
        self.address = address
        self.socket = sock
        self.on_event = on_event
        self.use_threading = use_threading
        self.child: ServerChild | None = None
        self.generation = 0
        self._lock = threading.Lock()

    def start(self) -> ServerChild:
        with self._lock:
            self.generation += 1
            self.child = ServerChild(self, self.generation)
            return self.child

    def restart(self) -> ServerChild:
        """Stop the running child (its requests finish), then start the next.

        Connections arriving in between wait in the socket's backlog.
        """
        with self._lock:
            old = self.child
        if old is not None:
            old.stop()
        return self.start()

    def stop(self) -> None:
        with self._lock:
            child, self.child = self.child, None
        if child is not None:
            child.stop()

    def close(self) -> None:
        """Stop the child and release the port."""
        self.stop()
        self.socket.close()

