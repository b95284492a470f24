"""Idle keep-alive connections handed to the next generation on a reload.

Closing an idle keep-alive connection always races with a client that is
just sending its next request on it: the request is lost (``RemoteDisconnected``,
a read error in wrk). Instead, a generation told to stop sends each
connection that waits between requests to the console, which passes it on
to the next generation (:mod:`devconsole.wire.control`: ``handover`` and
``adopt``, the socket itself travelling with ``SCM_RIGHTS``). Whatever the
client sent meanwhile stays in the kernel's buffer and is read by the new
generation, which serves it with the new code. Nothing is closed, so nothing
races.

Only a connection with nothing buffered in user space may move: the
handler's ``rfile`` may hold bytes already read from the kernel (a pipelining
client's next request). Such a connection is served here, with the code it
was sent to, and moves once its buffer is empty; forwarding the buffer
instead would need the new generation to pre-fill its reader, for a case
browsers do not produce.

A handler thread blocked in ``readline`` cannot be woken, so a connection
waits for its next request (or its first) in :meth:`ConnectionHandover.await_request`:
``poll`` on the socket and on a wake-up pipe that :meth:`ConnectionHandover.stop`
writes once and nobody drains (every waiter, now or later, sees it). A
connection busy with a request finishes it here; after its response it comes
back to the wait, sees the stop, and moves. WSGI servers only: a Daphne
(ASGI) generation drains as before.
"""

from __future__ import annotations

import os
import select
import socket
import socketserver
import threading
import types
from typing import Any

from devconsole.wire import control


def _libc_holding_the_gil() -> Any:
    """libc's ``ioctl`` called through ``ctypes.PyDLL``, which keeps the
    interpreter's lock for the call; None where there is none.

    Every socket call and ``select.poll`` let go of the lock, and each time
    a thread lets go of it under load (eight connections, eight threads)
    another thread that waited for it is woken, for nothing when the call
    returns at once. (``fcntl.ioctl`` keeps the lock on Python 3.11 only.)
    """
    try:
        import ctypes
        import termios

        libc = ctypes.PyDLL(None)
        ioctl = libc.ioctl
        ioctl.argtypes = (ctypes.c_int, ctypes.c_ulong, ctypes.c_void_p)
        ioctl.restype = ctypes.c_int
        return types.SimpleNamespace(
            ioctl=ioctl,
            FIONREAD=termios.FIONREAD,
            c_int=ctypes.c_int,
            addressof=ctypes.addressof,
        )
    except (ImportError, OSError, AttributeError):  # pragma: no cover - no libc (Windows has no poll either)
        return None


_LIBC = _libc_holding_the_gil()


class _KernelQueue:
    """Whether the kernel holds bytes of a connection not yet received
    (``FIONREAD``), asked without letting go of the interpreter's lock: under
    load the next request on a kept-alive connection has often arrived by
    the time its thread is back, and then needs no ``poll`` before it is
    read (one system call that would let go of the lock, and so one wake-up
    of another thread, fewer per request)."""

    __slots__ = ("_fd", "_count", "_address")

    def __init__(self, fd: int) -> None:
        self._fd = fd
        self._count: Any = None
        self._address = 0
        if _LIBC is not None:
            self._count = _LIBC.c_int()
            self._address = _LIBC.addressof(self._count)

    def has_bytes(self) -> bool:
        """True when bytes surely wait (False: none, or not known: poll)."""
        if self._count is None:
            return False
        return _LIBC.ioctl(self._fd, _LIBC.FIONREAD, self._address) == 0 and self._count.value > 0


class ConnectionHandover:
    """One per WSGI server: the wake-up pipe, the stop flag, and the two
    directions (``hand_over`` in the old generation, ``adopt`` in the new)."""

    def __init__(self, control_sock: socket.socket) -> None:
        self.control = control_sock
        self.stopping = False
        self._wake_r, self._wake_w = os.pipe()
        #: Connections sent to the console so far (and adopted here).
        self.handed_over = 0
        self.adopted = 0
        self._lock = threading.Lock()

    def stop(self) -> None:
        """From now on every connection waiting for a request moves."""
        self.stopping = True
        try:
            os.write(self._wake_w, b"x")
        except OSError:
            pass

    def await_request(self, handler: Any) -> bool:
        """Wait for the next request on ``handler``'s connection. True when
        there is something to read (or the connection has no record: read as
        usual); False when the connection was handed over instead."""
        conn = getattr(handler, "_dc_conn", None)
        sock = getattr(handler, "connection", None)
        if conn is None or not isinstance(sock, socket.socket):
            return True
        rfile = handler.rfile
        surely_empty = getattr(handler, "dc_surely_empty", None) or getattr(rfile, "surely_empty", None)
        # The peek costs a failed read (an exception inside socket.py) on
        # every keep-alive request: only when the counts cannot tell.
        if (surely_empty is None or not surely_empty()) and _buffered(rfile, sock):
            return True  # pipelined: served here (see the module's docstring)
        if self.stopping:
            return self._move(handler, conn, sock)
        waiting = getattr(handler, "_dc_waiting", None)
        if waiting is None:  # one per connection, not one per request
            waiting = handler._dc_waiting = _KernelQueue(sock.fileno())
        if waiting.has_bytes():
            return True  # the next request is here already: no poll, no wait
        timeout = sock.gettimeout()
        poller = getattr(handler, "_dc_poller", None)
        if poller is None:  # one per connection, not one per request
            poller = handler._dc_poller = select.poll()
            poller.register(sock.fileno(), select.POLLIN)
            poller.register(self._wake_r, select.POLLIN)
        while True:
            if self.stopping:
                return self._move(handler, conn, sock)
            ready = poller.poll(None if timeout is None else timeout * 1000)
            if not ready:
                return True  # the handler's timeout: readline raises it as before
            if any(fd == sock.fileno() for fd, _ in ready) and not self.stopping:
                return True

    def _move(self, handler: Any, conn: Any, sock: socket.socket) -> bool:
        """Nothing is buffered in user space: whatever the client has sent
        is still in the kernel, and goes with the socket. If the console
        cannot take it (it is gone), the connection closes now rather than
        wait for a request nobody will serve. Always False (no request to
        read here)."""
        if not self._hand_over(handler, conn, sock):
            handler.close_connection = True
        return False

    def _hand_over(self, handler: Any, conn: Any, sock: socket.socket) -> bool:
        """Send the socket to the console; close it here without a FIN (the
        connection lives on). False when the console cannot take it."""
        header: control.Header = {
            "peer": conn.peer,
            "conn": conn.id,
            "requests": conn.requests,
            "bytes_in": conn.bytes_in,
            "bytes_out": conn.bytes_out,
            "opened": conn.opened,
        }
        try:
            control.send_header(self.control, "handover", header, sock.fileno())
        except OSError:
            return False
        conn.handed_over = True
        with self._lock:
            self.handed_over += 1
        # Detached, the socket object has no fd: the handler's shutdown(SHUT_WR)
        # and socketserver's fail with EBADF (both ignore it) instead of
        # ending the connection the next generation now serves.
        os.close(sock.detach())
        handler.close_connection = True
        return True

    def adopt(self, server: Any, fd: int, header: control.Header) -> None:
        """Serve a connection handed over by an older generation, through the
        server's own path (``verify_request``, ``process_request``: counted,
        instrumented, threaded like any accepted one)."""
        sock = socket.socket(fileno=fd)
        try:
            sock.settimeout(None)
            address = sock.getpeername()
        except OSError:
            sock.close()
            return
        observer = server.dc_observer
        observer.on_accept(sock, address, adopted=True, header=header)
        with self._lock:
            self.adopted += 1
        if not isinstance(server, socketserver.ThreadingMixIn):
            # --nothreading: process_request would serve it in this thread,
            # the control channel's; one thread of its own instead.
            threading.Thread(
                target=_serve_one, args=(server, sock, address), name="devconsole-adopted", daemon=True
            ).start()
            return
        _serve_one(server, sock, address)


def _serve_one(server: Any, sock: socket.socket, address: Any) -> None:
    """What ``BaseServer._handle_request_noblock`` does after ``accept()``."""
    if server.verify_request(sock, address):
        try:
            server.process_request(sock, address)
        except Exception:
            server.handle_error(sock, address)
            server.shutdown_request(sock)
    else:
        server.shutdown_request(sock)


def _buffered(rfile: Any, sock: socket.socket) -> bool:
    """Whether ``rfile`` holds bytes read from the kernel and not yet used.

    ``BufferedReader.peek`` returns its buffer without a system call when it
    has one; with none it reads, and on a non-blocking socket that read
    cannot wait (nothing there: empty). Bytes it does read are simply served
    here, as a request that arrived before the stop.
    """
    raw = getattr(rfile, "_raw", rfile)
    peek = getattr(raw, "peek", None)
    if peek is None:
        return False
    timeout = sock.gettimeout()
    try:
        sock.setblocking(False)
        return bool(peek(1))
    except (BlockingIOError, OSError, ValueError):
        return False
    finally:
        try:
            sock.settimeout(timeout)
        except OSError:
            pass
