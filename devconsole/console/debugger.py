"""The debug broker: server children's debugging sessions, handed to the terminal.

A Unix socket in a private (0700) temporary directory, named to every server
child by ``DEVCONSOLE_DEBUG_SOCKET`` (:mod:`devconsole.wire.debugger`). Each
generation keeps a connection open from :func:`devconsole.child.debugger.install`
until it exits — a generation that drains after a reload keeps its own, so a
session in it outlives the reload. A child opening a session sends the master
of a new pty; :func:`bridge` copies the real terminal to it and back while the
UI is suspended.

UI-free: the app polls :meth:`DebugBroker.next_session` on its tick (no
callback into the UI from the broker's threads, which must keep reading
``end`` messages while the UI thread is busy bridging).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import select
import shutil
import signal
import socket
import struct
import tempfile
import termios
import threading
import tty
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from devconsole.model.sanitize import clean_line
from devconsole.wire import debugger as wire

#: Ctrl+] in the bridge: asks whether to quit devconsole or detach.
DETACH_KEY = b"\x1d"
#: The end of what a debugger wrote that is kept to show again when the
#: terminal comes back to it (its prompt, what was typed after it).
MAX_TAIL = 4096
#: At most this many notices are kept for the UI.
MAX_NOTICES = 20


@dataclass
class DebugSessionInfo:
    """A thread of a server generation that holds (or waits for) the terminal."""

    generation: int
    session: int
    kind: str
    thread: str
    request: str
    where: str
    master: int = -1
    ended: threading.Event = field(default_factory=threading.Event)
    #: Set while the console bridges it: its fds are then closed by :meth:`DebugBroker.finish` only.
    bridged: bool = False
    #: Written to when the session ends, so a bridge blocked in select wakes.
    wake: tuple[int, int] = (-1, -1)
    #: Left paused by the user (Ctrl+] d): not bridged again until :meth:`DebugBroker.resume`.
    detached: bool = False
    #: The debugger's last line (its prompt), shown again when the terminal comes back.
    tail: bytes = b""

    def describe(self) -> str:
        what = self.request or f"thread {self.thread}"
        verb = {"input": "reading input", "stdin": "reading stdin", "post-mortem": "post-mortem"}.get(
            self.kind, "paused"
        )
        return f"{what} {verb} at {self.where}" if self.where else f"{what} {verb}"


class _Generation:
    def __init__(self, conn: socket.socket) -> None:
        self.conn = conn
        self.number = 0
        self.pid = 0


class DebugBroker:
    """Accepts the server children's debug connections and queues their sessions."""

    def __init__(self) -> None:
        self.directory = tempfile.mkdtemp(prefix="devconsole-debug-")
        os.chmod(self.directory, 0o700)
        self.path = os.path.join(self.directory, "debug.sock")
        self._listener = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        self._listener.bind(self.path)
        self._listener.listen(16)
        self._lock = threading.Lock()
        self._generations: list[_Generation] = []
        #: Sessions begun, not yet ended, in the order they began.
        self._sessions: dict[tuple[int, int], DebugSessionInfo] = {}
        #: Threads waiting their turn: (generation, session) → info.
        self._waiting: dict[tuple[int, int], DebugSessionInfo] = {}
        self._notices: deque[str] = deque(maxlen=MAX_NOTICES)
        self._closed = False
        #: Called (from a reading thread) after each message from a child:
        #: the console looks at its sessions then instead of polling.
        self.on_change: Callable[[], None] | None = None
        self._accepter = threading.Thread(target=self._accept, name="devconsole-debug-broker", daemon=True)

    @property
    def env(self) -> dict[str, str]:
        return {wire.SOCKET_ENV: self.path}

    def start(self) -> None:
        self._accepter.start()

    # -- what the UI asks -----------------------------------------------------
    def next_session(self) -> DebugSessionInfo | None:
        """The oldest session begun and not yet ended, claimed for bridging
        (hand it back with :meth:`finish`)."""
        with self._lock:
            for info in self._sessions.values():
                if not info.ended.is_set() and not info.bridged and not info.detached:
                    info.bridged = True
                    return info
        return None

    def detach(self, info: DebugSessionInfo) -> None:
        """The console leaves ``info`` paused (Ctrl+] d): it stays open,
        unbridged, until :meth:`resume` (or it ends)."""
        with self._lock:
            info.bridged = False
            info.detached = True
            ended = info.ended.is_set()
        if ended:
            self._end(info)

    def detached(self) -> list[DebugSessionInfo]:
        """Sessions left paused by the user."""
        with self._lock:
            return [info for info in self._sessions.values() if info.detached and not info.ended.is_set()]

    def resume(self) -> DebugSessionInfo | None:
        """The oldest detached session, claimed for bridging again."""
        with self._lock:
            for info in self._sessions.values():
                if info.detached and not info.ended.is_set():
                    info.detached = False
                    info.bridged = True
                    return info
        return None

    def sessions(self) -> list[DebugSessionInfo]:
        with self._lock:
            return [info for info in self._sessions.values() if not info.ended.is_set()]

    def waiting(self) -> list[DebugSessionInfo]:
        with self._lock:
            return list(self._waiting.values())

    def notices(self) -> list[str]:
        """Notices from the children since the last call."""
        with self._lock:
            notices = list(self._notices)
            self._notices.clear()
        return notices

    def post_mortem(self, generation: int, token: str) -> str | None:
        """Ask ``generation`` for a post-mortem on ``token``; None if asked,
        else why not."""
        with self._lock:
            target = next((g for g in self._generations if g.number == generation), None)
        if target is None:
            return f"generation {generation} has exited: its failures are gone"
        try:
            target.conn.send(wire.encode({"op": "postmortem", "token": token[:200]}))
        except OSError as exc:
            return f"generation {generation} cannot be asked: {exc.strerror or exc}"
        return None

    def finish(self, info: DebugSessionInfo) -> None:
        """The console is done with ``info`` (ended, or given up): close its master."""
        self._end(info)

    def abort_all(self) -> None:
        """End every session now: their debuggers see the terminal close (EOF)."""
        with self._lock:
            infos = list(self._sessions.values())
        for info in infos:
            self._end(info)

    def close(self) -> None:
        """Sessions ended, connections closed, the socket's directory removed (idempotent)."""
        if self._closed:
            return
        self._closed = True
        self.abort_all()
        with contextlib.suppress(OSError):
            self._listener.shutdown(socket.SHUT_RDWR)
        self._listener.close()
        with self._lock:
            generations, self._generations = self._generations, []
        for generation in generations:
            with contextlib.suppress(OSError):
                generation.conn.shutdown(socket.SHUT_RDWR)
            generation.conn.close()
        shutil.rmtree(self.directory, ignore_errors=True)

    # -- the children -------------------------------------------------------------
    def _accept(self) -> None:
        while not self._closed:
            try:
                conn, _ = self._listener.accept()
            except OSError:
                return
            generation = _Generation(conn)
            with self._lock:
                self._generations.append(generation)
            threading.Thread(target=self._read, args=(generation,), name="devconsole-debug-conn", daemon=True).start()

    def _read(self, generation: _Generation) -> None:
        try:
            while True:
                try:
                    data, fds, _flags, _addr = socket.recv_fds(generation.conn, wire.MAX_MESSAGE, 4)
                except OSError:
                    return
                for fd in fds:
                    os.set_inheritable(fd, False)  # recv_fds leaves them inheritable: no child gets one
                if not data:
                    for fd in fds:
                        os.close(fd)
                    return
                message = wire.decode(data)
                if message is None:
                    for fd in fds:
                        os.close(fd)
                    continue
                self._handle(generation, message, fds)
                if self.on_change is not None:
                    self.on_change()
        finally:
            with self._lock:
                if generation in self._generations:
                    self._generations.remove(generation)
                mine = [key for key in self._sessions if key[0] == generation.number]
                for key in [key for key in self._waiting if key[0] == generation.number]:
                    del self._waiting[key]
            for key in mine:
                info = self._sessions.get(key)
                if info is None:
                    continue
                # The child exited mid-session: a bridge in progress sees it
                # end (and hands it back); one not bridged is closed now.
                info.ended.set()
                with contextlib.suppress(OSError):
                    os.write(info.wake[1], b"x")
                if not info.bridged:
                    self._end(info)
            generation.conn.close()
            if self.on_change is not None:
                self.on_change()

    def _handle(self, generation: _Generation, message: dict[str, Any], fds: list[int]) -> None:
        op = message["op"]
        if op == "hello":
            generation.number = _int(message.get("generation"))
            generation.pid = _int(message.get("pid"))
            return
        if op == "notice":
            with self._lock:
                self._notices.append(clean_line(str(message.get("text", ""))))
            return
        key = (generation.number, _int(message.get("session")))
        if op in ("waiting", "begin"):
            info = DebugSessionInfo(
                generation=generation.number,
                session=key[1],
                kind=clean_line(str(message.get("kind", ""))),
                thread=clean_line(str(message.get("thread", ""))),
                request=clean_line(str(message.get("request", ""))),
                where=clean_line(str(message.get("where", ""))),
            )
            if op == "waiting":
                for fd in fds:
                    os.close(fd)
                with self._lock:
                    self._waiting[key] = info
                return
            if not fds:
                return
            info.master = fds[0]
            for fd in fds[1:]:
                os.close(fd)
            info.wake = os.pipe()
            with self._lock:
                self._waiting.pop(key, None)
                self._sessions[key] = info
            return
        if op == "end":
            with self._lock:
                found = self._sessions.get(key)
                if found is not None:
                    found.ended.set()  # under the lock: never claimed after this
                unclaimed = found is not None and not found.bridged
            if found is not None:
                with contextlib.suppress(OSError):
                    os.write(found.wake[1], b"x")
            if found is not None and unclaimed:
                self._end(found)  # detached, or never shown: nobody will finish it

    def _end(self, info: DebugSessionInfo) -> None:
        key = (info.generation, info.session)
        with self._lock:
            if self._sessions.get(key) is not info:
                return
            del self._sessions[key]
        info.ended.set()
        for fd in (info.master, *info.wake):
            if fd >= 0:
                with contextlib.suppress(OSError):
                    os.close(fd)
        info.master, info.wake = -1, (-1, -1)


def _int(value: object) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def _copy_size(from_fd: int, to_fd: int) -> None:
    with contextlib.suppress(OSError):
        size = fcntl.ioctl(from_fd, termios.TIOCGWINSZ, struct.pack("HHHH", 0, 0, 0, 0))
        fcntl.ioctl(to_fd, termios.TIOCSWINSZ, size)


def _write_all(fd: int, data: bytes) -> None:
    while data:
        written = os.write(fd, data)
        data = data[written:]


def bridge(info: DebugSessionInfo, stdin_fd: int = 0, stdout_fd: int = 1, note: str = "") -> str:
    """Hand the terminal to ``info``'s pty until the session ends.

    Returns ``"ended"`` (the debugger let go), ``"quit"`` (Ctrl+] then ``y``:
    the session is cut and the console should quit), ``"detach"`` (Ctrl+]
    then ``d``: back to the console, the session stays paused) or ``"signal:N"``
    (SIGTERM/SIGHUP arrived: the caller exits as it would have).
    Call with the UI suspended; the terminal's mode is restored on return.
    """
    master = info.master
    wake_fd = info.wake[0]
    signalled: list[int] = []
    sig_read, sig_write = os.pipe()
    os.set_blocking(sig_write, False)

    def on_signal(signum: int, _frame: object) -> None:
        signalled.append(signum)
        with contextlib.suppress(OSError):
            os.write(sig_write, b"s")

    previous: dict[signal.Signals, Any] = {}
    main = threading.current_thread() is threading.main_thread()
    if main:
        for taken in (signal.SIGTERM, signal.SIGHUP, signal.SIGWINCH):
            previous[taken] = signal.signal(taken, on_signal)
    saved_mode = None
    with contextlib.suppress(termios.error):
        saved_mode = termios.tcgetattr(stdin_fd)
    try:
        if master < 0:
            return "ended"
        _copy_size(stdout_fd, master)
        _write_all(
            stdout_fd,
            f"\r\ndevconsole: {info.describe()}{note} — Ctrl+] to detach or quit\r\n".encode("utf-8", "replace"),
        )
        if info.tail:
            _write_all(stdout_fd, info.tail)  # back to it: its prompt again
        if saved_mode is not None:
            tty.setraw(stdin_fd, termios.TCSANOW)
        while True:
            if signalled:
                signum = signalled.pop()
                if signum == signal.SIGWINCH:
                    _copy_size(stdout_fd, master)
                    with contextlib.suppress(OSError):
                        os.read(sig_read, 64)
                    continue
                return f"signal:{signum}"
            try:
                ready, _, _ = select.select([stdin_fd, master, wake_fd, sig_read], [], [])
            except InterruptedError:
                continue
            except (OSError, ValueError):
                return "ended"  # its fds went away
            if master in ready:
                try:
                    data = os.read(master, 65536)
                except OSError:
                    data = b""  # EIO: every slave copy closed
                if not data:
                    return "ended"
                _write_all(stdout_fd, data)
                info.tail = _tail(info.tail, data)
                continue  # drain what the debugger wrote before looking at "end"
            if wake_fd in ready:
                return "ended"
            if stdin_fd in ready:
                data = os.read(stdin_fd, 4096)
                if not data:
                    return "quit"
                if DETACH_KEY in data:
                    before = data.split(DETACH_KEY, 1)[0]
                    if before:
                        _write_all(master, before)
                    answer = _ask(stdin_fd, stdout_fd)
                    if answer:
                        return answer
                    _write_all(stdout_fd, info.tail)  # staying: its prompt again
                    continue
                _write_all(master, data)
    finally:
        if saved_mode is not None:
            with contextlib.suppress(termios.error):
                termios.tcsetattr(stdin_fd, termios.TCSADRAIN, saved_mode)
        for taken, handler in previous.items():
            signal.signal(taken, handler if handler is not None else signal.SIG_DFL)
        os.close(sig_read)
        os.close(sig_write)


def _tail(tail: bytes, data: bytes) -> bytes:
    """What follows the last line break of ``tail + data``, at most :data:`MAX_TAIL` bytes."""
    joined = tail + data
    cut = max(joined.rfind(b"\n"), joined.rfind(b"\r"))
    return joined[cut + 1 :][-MAX_TAIL:]


def _ask(stdin_fd: int, stdout_fd: int) -> str:
    """After Ctrl+]: ``"quit"``, ``"detach"`` or ``""`` (back to the debugger)."""
    _write_all(
        stdout_fd,
        b"\r\ndevconsole: quit devconsole (the request is cut)? [y/N]"
        b" or d: detach - back to the console, the request stays paused (b returns to it) ",
    )
    answer = os.read(stdin_fd, 16)
    _write_all(stdout_fd, b"\r\n")
    if answer[:1] in (b"y", b"Y"):
        return "quit"
    if answer[:1] in (b"d", b"D"):
        return "detach"
    return ""
