"""Debugging in the server child: ``breakpoint()``, ``input()`` and reads of
``sys.stdin`` in a view get the console's terminal.

:func:`install` connects the generation to the console's debug broker
(:mod:`devconsole.console.debugger`, socket named by
``DEVCONSOLE_DEBUG_SOCKET``) and wraps ``sys.breakpointhook``,
``builtins.input`` and ``sys.stdin``. A read or a breakpoint in a request's
thread opens a *session*:

1. one thread at a time: a second thread that needs the terminal is announced
   as waiting and blocks until the first lets go;
2. a new pty: its master goes to the console (SCM_RIGHTS), which hands the
   real terminal over to it; its slave becomes fd 0 and fd 1 for the
   session, so ``input()`` — and pdb, which reads through it — gets readline
   (history, completion) as under ``manage.py runserver``. Other threads'
   writes to ``sys.stdout`` still go to the console's pipe meanwhile;
3. the debugger runs; when it lets go (``c`` with no breakpoint left, ``q``,
   EOF, the request finishing) fds 0 and 1 are restored and the console told.

The main thread (the server child's own) never opens a session. Standard
library only.
"""

from __future__ import annotations

import builtins
import contextlib
import importlib
import inspect
import io
import itertools
import os
import pdb
import socket
import sys
import threading
import warnings
from collections.abc import Callable
from types import FrameType, TracebackType
from typing import Any, TextIO

from devconsole.child import postmortem
from devconsole.wire import debugger as wire

_state_lock = threading.Lock()
#: Held by the thread whose session has the terminal.
_turn = threading.Lock()
#: Held while another thread writes to a session's ``others_out`` and while
#: the session closes it: no write reaches its fd after it is closed (the
#: number may by then be a client's socket).
_others_lock = threading.Lock()
_active: DebugSession | None = None
_channel: BrokerChannel | None = None
_observer: Any = None
_ids = itertools.count(1)
_original_input: Callable[..., str] = builtins.input


class BrokerChannel:
    """This generation's connection to the console's debug broker."""

    def __init__(self, path: str) -> None:
        self.generation = 0
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        self.sock.connect(path)
        self._send_lock = threading.Lock()
        threading.Thread(target=self._read, name="devconsole-debug-channel", daemon=True).start()

    def hello(self, generation: int) -> None:
        """Say which generation this is (the broker knows nothing of it before)."""
        self.generation = generation
        self.send({"op": "hello", "generation": generation, "pid": os.getpid()})

    def send(self, message: dict[str, Any], fds: list[int] | None = None) -> bool:
        data = wire.encode(message)
        with self._send_lock:
            try:
                if fds:
                    socket.send_fds(self.sock, [data], fds)
                else:
                    self.sock.send(data)
            except OSError:
                return False
        return True

    def _read(self) -> None:
        while True:
            try:
                data = self.sock.recv(wire.MAX_MESSAGE)
            except OSError:
                return
            if not data:
                return  # the console went away
            message = wire.decode(data)
            if message is not None and message["op"] == "postmortem":
                token = str(message.get("token", ""))
                threading.Thread(target=post_mortem, args=(token,), name="devconsole-postmortem", daemon=True).start()


class _Routed:
    """``sys.stdin``/``sys.stdout`` stand-in: the thread that owns the
    debugging session reads and writes the pty (fd 0/1), every other thread
    what was there before (a read from another request's thread opens a
    session of its own)."""

    def __init__(self, default: Any, fd: int) -> None:
        self._default = default
        self._fd = fd

    def _target(self) -> Any:
        session = _active
        if session is not None and session.owner == threading.get_ident():
            return session.stdin if self._fd == 0 else session.stdout
        if session is not None and self._fd == 1 and session.others_out is not None:
            return session.others_out
        return self._default

    def __getattr__(self, name: str) -> Any:
        return getattr(self._target(), name)

    def fileno(self) -> int:
        return self._fd

    def isatty(self) -> bool:
        return bool(self._target().isatty())

    def _owner(self) -> bool:
        session = _active
        return session is not None and session.owner == threading.get_ident()

    def write(self, text: str) -> int:
        if self._fd == 1 and not self._owner():
            # Another thread's write: the session may close others_out meanwhile.
            with _others_lock:
                return int(self._target().write(text))
        return int(self._target().write(text))

    def flush(self) -> None:
        if self._fd == 1 and not self._owner():
            with _others_lock:
                self._target().flush()
                return
        self._target().flush()

    def _read(self, method: str, *args: Any) -> Any:
        if _needs_session():
            session = begin("stdin", _where(sys._getframe(2)))
            try:
                return getattr(session.stdin, method)(*args)
            finally:
                end(session)
        return getattr(self._target(), method)(*args)

    def read(self, size: int = -1) -> str:
        return str(self._read("read", size))

    def readline(self, size: int = -1) -> str:
        return str(self._read("readline", size))

    def readlines(self, hint: int = -1) -> list[str]:
        return list(self._read("readlines", hint))

    def __iter__(self) -> _Routed:
        return self

    def __next__(self) -> str:
        line = self.readline()
        if not line:
            raise StopIteration
        return line


class DebugSession:
    """One thread's hold on the terminal: a pty in place of fds 0 and 1."""

    def __init__(self, sid: int, kind: str, where: str) -> None:
        self.id = sid
        self.kind = kind
        self.where = where
        self.owner = threading.get_ident()
        self.ended = False
        self.in_request = False
        self.debugger: SessionPdb | None = None
        self.stdin: TextIO = sys.__stdin__  # type: ignore[assignment]
        self.stdout: TextIO = sys.__stdout__  # type: ignore[assignment]
        self.others_out: TextIO | None = None
        self._saved: tuple[int, int] = (-1, -1)
        self._slave = -1
        self._previous_stdout: Any = None

    def open(self, header: dict[str, Any]) -> None:
        master, slave = os.openpty()
        self._slave = slave
        try:
            sent = _channel is not None and _channel.send(header, [master])
        finally:
            os.close(master)
        if not sent:
            os.close(slave)
            raise OSError("the console's debug broker is gone")
        _flush(sys.stdout)
        _flush(sys.stderr)
        self._saved = (os.dup(0), os.dup(1))
        # Other threads keep writing where stdout went before.
        self.others_out = open(self._saved[1], "w", closefd=False, encoding="utf-8", errors="backslashreplace")
        os.dup2(slave, 0)
        os.dup2(slave, 1)
        self.stdin = open(0, closefd=False, encoding="utf-8", errors="replace")
        self.stdout = open(1, "w", closefd=False, encoding="utf-8", errors="backslashreplace", buffering=1)
        self._previous_stdout = sys.stdout
        if not isinstance(sys.stdout, _Routed):
            sys.stdout = _Routed(sys.stdout, 1)
        try:
            import readline  # noqa: F401 - input() edits lines (history) once it is imported
        except ImportError:
            pass

    def close(self) -> None:
        _flush(self.stdout)
        saved_in, saved_out = self._saved
        if saved_in >= 0:
            os.dup2(saved_in, 0)
            os.dup2(saved_out, 1)  # fd 1 is the console's pipe again
        if self._previous_stdout is not None and not isinstance(self._previous_stdout, _Routed):
            sys.stdout = self._previous_stdout
        with _others_lock:
            others, self.others_out = self.others_out, None
            if others is not None:
                _flush(others)
                # Closed (its fd is not: closefd=False), so nothing left in it
                # is flushed later, by the GC, into whatever reuses the fd.
                with contextlib.suppress(OSError, ValueError):
                    others.close()
        if saved_in >= 0:
            os.close(saved_in)
            os.close(saved_out)
        if self._slave >= 0:
            os.close(self._slave)
        self._saved, self._slave = (-1, -1), -1


class SessionPdb(pdb.Pdb):
    """pdb whose stepping keeps one session; ``c`` (no breakpoint left) and
    ``q`` end it."""

    def __init__(self, session: DebugSession) -> None:
        super().__init__()
        self.dc_session = session
        session.debugger = self

    def set_continue(self) -> None:
        super().set_continue()
        if not self.breaks:
            end(self.dc_session)

    def set_quit(self) -> None:
        super().set_quit()
        end(self.dc_session)


def _flush(stream: Any) -> None:
    try:
        stream.flush()
    except (OSError, ValueError, AttributeError):
        pass


def _where(frame: FrameType | None) -> str:
    if frame is None:
        return ""
    return f"{os.path.basename(frame.f_code.co_filename)}:{frame.f_lineno}"


def _request() -> str:
    """``GET /bp/`` for the request the current thread handles, if known."""
    observer = _observer
    if observer is None:
        return ""
    name = threading.current_thread().name
    for conn in list(getattr(observer, "conns", {}).values()):
        if getattr(conn, "thread", None) == name and getattr(conn, "path", ""):
            return f"{conn.method} {conn.path}"[:2000]
    return ""


def _needs_session() -> bool:
    """Whether the current thread must open a session to use the terminal."""
    if _channel is None or threading.current_thread() is threading.main_thread():
        return False
    session = _active
    return session is None or session.owner != threading.get_ident()


def begin(kind: str, where: str, request: str | None = None) -> DebugSession:
    """Wait for the terminal, then hold it in a new session."""
    global _active
    session = DebugSession(next(_ids), kind, where)
    if request is None:
        request = _request()
    session.in_request = kind != "post-mortem" and bool(request)
    header = {
        "generation": _channel.generation if _channel else 0,
        "pid": os.getpid(),
        "session": session.id,
        "thread": threading.current_thread().name,
        "request": request,
        "where": where[:500],
        "kind": kind,
    }
    if not _turn.acquire(blocking=False):
        if _channel is not None:
            _channel.send({"op": "waiting", **header})
        _turn.acquire()
    try:
        session.open({"op": "begin", **header})
    except BaseException:
        session.close()
        _turn.release()
        raise
    with _state_lock:
        _active = session
    return session


def end(session: DebugSession) -> None:
    """Give the terminal back (idempotent)."""
    global _active
    with _state_lock:
        if session.ended:
            return
        session.ended = True
    try:
        # fds 0/1 back first: until then other threads' writes keep going to the pipe.
        session.close()
    finally:
        with _state_lock:
            if _active is session:
                _active = None
        if _channel is not None:
            _channel.send({"op": "end", "session": session.id})
        with contextlib.suppress(RuntimeError):
            _turn.release()


def _owned() -> DebugSession | None:
    session = _active
    return session if session is not None and session.owner == threading.get_ident() else None


def breakpointhook(*args: Any, **kwargs: Any) -> Any:
    """``sys.breakpointhook``: ``PYTHONBREAKPOINT`` honoured (``0`` disables;
    another hook runs inside a session held until the request finishes)."""
    hookname = os.environ.get("PYTHONBREAKPOINT", "")
    if hookname == "0":
        return None
    frame = sys._getframe(1)
    if not _needs_session() and _owned() is None:
        return sys.__breakpointhook__(*args, **kwargs)
    session = _owned() or begin("breakpoint", _where(frame))
    if not hookname or hookname == "pdb.set_trace":
        debugger = session.debugger or SessionPdb(session)
        debugger.set_trace(frame)
        return None
    try:
        module, _, name = hookname.rpartition(".")
        hook = getattr(importlib.import_module(module or "builtins"), name)
    except (ImportError, AttributeError, ValueError):
        warnings.warn(f'Ignoring unimportable $PYTHONBREAKPOINT: "{hookname}"', RuntimeWarning, stacklevel=2)
        end(session)
        return None
    try:
        if "frame" in inspect.signature(hook).parameters and "frame" not in kwargs:
            kwargs["frame"] = frame
    except (TypeError, ValueError):
        pass
    try:
        return hook(*args, **kwargs)
    finally:
        if not session.in_request:
            end(session)  # else when the request finishes: the hook traces on


def _input(prompt: object = "") -> str:
    """``builtins.input``: from a request's thread, through a session."""
    if not _needs_session():
        return _original_input(prompt)
    session = begin("input", _where(sys._getframe(1)))
    try:
        return _original_input(prompt)
    finally:
        end(session)


def request_finished(_event: object) -> None:
    """A request ends in this thread: a session it still holds ends with it
    (a debugger still tracing stops tracing). Called as a finisher: never raises."""
    try:
        session = _owned()
        if session is None:
            return
        if session.debugger is not None or sys.gettrace() is not None:
            sys.settrace(None)
            frame: FrameType | None = sys._getframe(1)
            while frame is not None:
                frame.f_trace = None
                frame = frame.f_back
        end(session)
    except Exception:  # the request's thread must carry on
        pass


def post_mortem(token: str) -> None:
    """pdb post-mortem on the failure kept under ``token``, in a session."""
    tb: TracebackType | None = postmortem.traceback_of(token)
    if tb is None:
        if _channel is not None:
            _channel.send(
                {
                    "op": "notice",
                    "text": f"post-mortem: that failure is no longer kept (only the last {postmortem.KEEP} are)",
                }
            )
        return
    last = tb
    while last.tb_next is not None:
        last = last.tb_next
    where = f"{os.path.basename(last.tb_frame.f_code.co_filename)}:{last.tb_lineno}"
    session = begin("post-mortem", where, postmortem.request_of(token))
    try:
        debugger = SessionPdb(session)
        debugger.reset()
        debugger.interaction(None, tb)
    finally:
        end(session)


def connect() -> bool:
    """Connect to the console's broker now (a spare, ahead of its promotion:
    :func:`install` then only says hello); False when no broker is configured."""
    global _channel
    path = os.environ.get(wire.SOCKET_ENV)
    if not path:
        return False
    if _channel is None:
        _channel = BrokerChannel(path)
    return True


def install(generation: int, observer: Any = None) -> bool:
    """Connect to the console's broker and take over ``breakpoint()``,
    ``input()`` and ``sys.stdin`` for request threads. False when no broker
    is configured (the child runs outside the console)."""
    global _channel, _observer, _original_input
    if _channel is None and not connect():
        return False
    assert _channel is not None
    _channel.hello(generation)
    _observer = observer
    postmortem.describe_request = _request
    if observer is not None and hasattr(observer, "finishers"):
        observer.finishers.append(request_finished)
    if builtins.input is not _input:
        _original_input = builtins.input
        builtins.input = _input
    sys.breakpointhook = breakpointhook
    if not isinstance(sys.stdin, _Routed):
        sys.stdin = _Routed(sys.stdin if sys.stdin is not None else io.StringIO(), 0)
    return True
