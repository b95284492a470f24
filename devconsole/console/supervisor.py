"""Start, watch and stop server children on the console's socket.

The console owns the listening socket; each server child (one "generation"
per start or reload) adopts it through ``pass_fds``. A generation is either
spawned as a new interpreter (:class:`SpawnedGeneration`) or forked by a
fork server (:class:`ForkedGeneration`, through the console's
:class:`ForkServerHandle`); both are a :class:`GenerationHandle`. Three
reader threads per generation turn its event pipe, stdout and stderr into
events for ``on_event``; a fourth waits for it to exit. The console speaks to
a generation on its control socket (:mod:`devconsole.wire.control`), never
its stdin (``/dev/null``). ``stop()`` asks the
child to finish its requests and go, then terminates and kills its process
group if it does not (:func:`~.processes.stop_group`).
"""

from __future__ import annotations

import os
import queue
import secrets
import signal
import socket
import subprocess
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from typing import IO, Any

from devconsole.console.listen import ListenAddress
from devconsole.console.processes import signal_group, stop_group
from devconsole.console.project import Project
from devconsole.model.sanitize import clean_line, clean_text, clean_value, json_line_is_clean
from devconsole.wire import control, protocol
from devconsole.wire import forkserver as wire
from devconsole.wire.forkserver import ForkServerLevel, Op

EventSink = Callable[[dict[str, Any]], None]

#: A single line of child output longer than this is cut.
MAX_LOG_LINE = 8192
STOP_TIMEOUT = 6.0
#: Old generations that may drain at once (after reloads); beyond it the
#: oldest one's requests are cut.
MAX_DRAINING = 4
#: How long a retired generation may take to say it accepts nothing more
#: before the next one serves regardless (it normally takes milliseconds).
STOPPING_TIMEOUT = 3.0
#: The last lines a generation wrote to stderr, kept to explain its death.
STDERR_TAIL = 8
#: Connections handed over by an old generation, held until the next one
#: serves; beyond this many the oldest are closed.
MAX_HANDOVERS = 1024
#: After a generation exited, how long its event pipe may stay open with
#: nothing new on it (a process it started holds it) before its exit is
#: reported anyway. A pipe still delivering events is read to its end.
EVENTS_STALL = 5.0
#: Events of one generation that could not be applied, each logged; beyond
#: this many only the count grows.
MAX_EVENT_FAILURES_LOGGED = 10


def describe_exit(returncode: int | None) -> str:
    """Why a process ended, in words: ``killed by SIGKILL``, ``exited with status 3``."""
    if returncode is None:
        return "exited (status unknown)"
    if returncode < 0:
        try:
            name = signal.Signals(-returncode).name
        except ValueError:
            name = f"signal {-returncode}"
        return f"killed by {name}"
    return f"exited with status {returncode}"


def _lines(stream: IO[bytes], limit: int) -> Iterator[bytes]:
    """Lines of ``stream``, none longer than ``limit`` bytes: a longer line
    comes in pieces, so no amount of output without a newline is held at once."""
    while True:
        line = stream.readline(limit)
        if not line:
            return
        yield line


def _read_log(stream: IO[bytes], name: str, emit: Callable[[dict[str, Any]], None]) -> None:
    """Each line a child writes to ``name`` (stdout/stderr), bounded and
    sanitized, as a ``log`` event, until the stream closes."""
    with stream:
        for raw in _lines(stream, MAX_LOG_LINE):
            emit({"type": "log", "stream": name, "text": clean_line(raw.decode("utf-8", "replace")), "ts": time.time()})


class GenerationHandle:
    """The console's handle on one server generation, however it was started:
    an event pipe, stdout and stderr read by threads into ``on_event``, a
    control socket, an exit."""

    generation: int
    pid: int
    _supervisor: Supervisor
    _control: socket.socket
    hello: threading.Event

    def _start_readers(self, events_fd: int, stdout: IO[bytes], stderr: IO[bytes]) -> None:
        #: Held while a control message goes out: ``stop`` and a message that
        #: must come before it (an adopted connection) are never reordered.
        self._send_lock = threading.Lock()
        #: Set once the console asked it to go (a reload, a quit): its exit then is no crash.
        self.stop_requested = False
        #: Why the console ended it with requests in flight (``by you``, ``quit``), if it did.
        self.cut_reason: str | None = None
        #: Its last lines on stderr (bounded): what it said before dying.
        self.stderr_tail: deque[str] = deque(maxlen=STDERR_TAIL)
        self.hello = threading.Event()
        #: Set once the generation serves (hello), failed (error) or exited.
        self.settled = threading.Event()
        self.hello_event: dict[str, Any] | None = None
        self.error_event: dict[str, Any] | None = None
        #: Set once it said ``bye`` on the control channel: no request left,
        #: only its last events to write (never cut for that).
        self.said_bye = False
        #: Set once it said ``stopping`` (after ``stop``: nothing new reaches
        #: its code), or its control channel ended.
        self.stopped_accepting = threading.Event()
        #: The regular expressions it compiled (its ``patterns`` message, after
        #: its first request: JSON, passed on as it is): the next spare
        #: compiles them ahead.
        self.patterns = ""
        #: The URL patterns its reverse tables normalized (its ``normalized``
        #: message, with ``patterns``; passed on as it is): the next spare
        #: normalizes them ahead.
        self.normalized = ""
        #: What it said with ``stopping``: the templates the next one loads early.
        self.warm_names = ""
        #: The gated generation that serves once this one said ``stopping``:
        #: let in by the thread that reads that word (no second thread to wake).
        self.successor: GenerationHandle | None = None
        #: For a spare: set from its ``spare_ready`` event (the files it
        #: imported), here, by its own reader: the event may come before the
        #: fork server's answer has made this handle anyone's spare.
        self.spare_files: frozenset[str] | None = None
        #: How many URL patterns' forms it computed ahead (from its ``spare_ready``).
        self.spare_normalized = 0
        #: Its twin holds :attr:`spare_files` alone (``go N twin``), and it
        #: holds :attr:`ahead_files` once its ``spare_ahead`` came (``go N``).
        self.spare_twin = False
        self.ahead_files: frozenset[str] | None = None
        #: A change since it was forked that a module imported ahead may
        #: have read (a file other than Python's): its twin serves instead.
        self.ahead_stale = False
        self.spare_failed = False
        #: The project modules it imported, with what each refers to (see
        #: :func:`devconsole.child.watchlist.project_imports`): the next
        #: spare imports those no recent save changed ahead.
        self.project_modules = ""
        self._accepted = False
        #: Lines read from its event pipe so far, and set when the pipe ended.
        self.events_read = 0
        self.events_done = threading.Event()
        self._applying = False
        self.event_failures = 0
        self._control_reader = self._spawn(self._read_control, None, "control")
        self._threads = [
            self._spawn(self._read_events, os.fdopen(events_fd, "rb"), "events"),
            self._spawn(_read_log, stdout, "stdout", "stdout", self._emit),
            self._spawn(_read_log, stderr, "stderr", "stderr", self._emit_stderr),
        ]

    def _spawn(self, target: Callable[..., None], stream: Any, name: str, *args: Any) -> threading.Thread:
        thread = threading.Thread(
            target=target,
            args=((stream,) if stream is not None else ()) + args,
            name=f"devconsole-g{self.generation}-{name}",
            daemon=True,
        )
        thread.start()
        return thread

    def _emit(self, event: dict[str, Any]) -> None:
        event.setdefault("generation", self.generation)
        self._supervisor.on_event(event)

    def _emit_stderr(self, event: dict[str, Any]) -> None:
        self.stderr_tail.append(event["text"])
        self._emit(event)

    def _read_events(self, stream: IO[bytes]) -> None:
        try:
            with stream:
                for line in _lines(stream, protocol.MAX_LINE):
                    self.events_read += 1
                    self._applying = True
                    try:
                        self._apply_event(line)
                    except Exception as exc:  # one bad event never stops the counting
                        self._event_failed(exc)
                    finally:
                        self._applying = False
        finally:
            self.events_done.set()

    def _apply_event(self, line: bytes) -> None:
        event = protocol.decode(line)
        if event is None:
            return
        traceback = event.get("traceback")
        if event["type"] == "error" or not json_line_is_clean(line):
            # (A version mismatch comes back as an error made here, not the line.)
            event = clean_value(event)
        if isinstance(traceback, str):
            event["traceback"] = clean_text(traceback)  # its lines stay lines
        settles = False
        if event["type"] == "spare_ready":
            self.spare_twin = bool(event.get("twin"))
            self.spare_files = frozenset(event.get("files") or ())
            normalized = event.get("normalized")
            self.spare_normalized = normalized if isinstance(normalized, int) else 0
        elif event["type"] == "spare_ahead":
            self.ahead_files = frozenset(event.get("files") or ())
        elif event["type"] == "spare_failed":
            self.spare_failed = True
        elif event["type"] == "hello":
            self.hello_event = event
            settles = True
        elif event["type"] == "error" and event.get("phase") not in protocol.NON_FATAL_PHASES:
            self.error_event = event
            settles = True
        try:
            self._emit(event)  # applied before anyone waiting for it wakes
        finally:
            if settles:
                # The switch may have turned since this one's arguments were made.
                self.send(f"livereload {'on' if self._supervisor.browser_reload else 'off'}")
                if self.hello_event is event:
                    self.hello.set()
                self.settled.set()
                self._supervisor.forward_handovers()

    def _event_failed(self, exc: Exception) -> None:
        """An event that could not be applied: said in the log (the first
        few), and the next one is read."""
        self.event_failures += 1
        if self.event_failures > MAX_EVENT_FAILURES_LOGGED:
            return
        text = f"devconsole: an event of generation {self.generation} could not be applied: {type(exc).__name__}: {exc}"
        try:
            self._emit({"type": "log", "stream": "stderr", "text": clean_line(text), "ts": time.time()})
        except Exception:
            pass

    def _await_events(self) -> None:
        """After the process exited: wait for its event pipe to end, so that
        its exit is applied after its last events (however long reading them
        takes). A pipe that stays open with nothing new on it (a process the
        generation started holds it) is given up on after :data:`EVENTS_STALL`,
        with a line saying so."""
        seen = self.events_read
        while not self.events_done.wait(EVENTS_STALL):
            if self.events_read == seen and not self._applying:
                text = (
                    f"devconsole: generation {self.generation} exited but its event pipe is still open "
                    f"(a process it started?); its exit is reported now"
                )
                self._emit({"type": "log", "stream": "stderr", "text": text, "ts": time.time()})
                return
            seen = self.events_read

    def _join_readers(self) -> None:
        self._await_events()
        for thread in self._threads[1:]:  # its stdout and stderr
            thread.join(timeout=2)

    def _read_control(self) -> None:
        """The child's messages on the control channel: idle connections it
        hands over (see :mod:`devconsole.child.handover`), for the supervisor
        to pass on. Ends when the child is gone."""
        try:
            self._read_control_messages()
        finally:
            self.stopped_accepting.set()  # gone: nothing reaches its code either

    def _read_control_messages(self) -> None:
        while True:
            try:
                message = control.receive(self._control)
            except OSError:
                return
            if message is None:
                return
            word, arg, fds = message
            if word == "stopping":
                # Its argument names the templates it compiled (JSON, for the
                # next generation to load; never shown).
                self.warm_names = arg
                self.stopped_accepting.set()
                successor = self.successor
                if successor is not None:
                    successor.accept(arg)
            elif word == "bye":
                self.said_bye = True
            elif word == "patterns":
                self.patterns = arg
            elif word == "normalized":
                self.normalized = arg
            elif word == "project":
                self.project_modules = arg
            elif word == "modules" and self._supervisor.on_modules is not None:
                try:
                    self._supervisor.on_modules(self, arg.split())
                except Exception as exc:  # this thread must go on reading (stopping, handover, bye)
                    text = f"devconsole: a modules report could not be handled: {type(exc).__name__}: {exc}"
                    try:
                        self._emit({"type": "log", "stream": "stderr", "text": clean_line(text), "ts": time.time()})
                    except Exception:
                        pass
            if word == "handover" and fds:
                self._supervisor.hold_handover(fds[0], arg)
                fds = fds[1:]
            for fd in fds:
                os.close(fd)

    def adopt_connection(self, fd: int, header: str) -> bool:
        """Send a handed-over connection to this generation; False (the fd
        is still the caller's) when it cannot take it: told to stop already,
        or gone."""
        with self._send_lock:
            if self.stop_requested or not self.alive:
                return False
            try:
                control.send(self._control, "adopt", header, [fd])
            except OSError:
                return False
        return True

    def send(self, line: str, fds: list[int] | None = None) -> None:
        """A control message for the child (``stop``, ``file_changed PATH``,
        ``go N``, ``insight on``): a word and its argument (and ``fds``,
        still the caller's to close)."""
        word, _, arg = line.partition(" ")
        with self._send_lock:
            if word == "stop":
                self.stop_requested = True
            try:
                control.send(self._control, word, arg, fds)
            except OSError:
                pass

    def gate(self, fd: int) -> None:
        """Give a gated start the read end of the old generation's gate (see
        :meth:`Supervisor.retire`): it serves as soon as that one writes to
        it, or ends, without waiting for :meth:`accept`. ``fd`` stays the
        caller's to close."""
        self.send("gate", [fd])

    def accept(self, warm: str = "") -> None:
        """Let a gated start serve (the old generation accepts nothing more);
        ``warm``: what that one said with ``stopping`` (templates to load early).
        Once: a second call does nothing."""
        with self._send_lock:
            if self._accepted:
                return
            self._accepted = True
        self.send(f"accept {warm}" if warm else "accept")

    def exit_event(self, returncode: int | None) -> dict[str, Any]:
        """The ``exit`` event for its end (saying who cut its requests, if someone did)."""
        event: dict[str, Any] = {"type": "exit", "returncode": returncode, "ts": time.time()}
        if self.cut_reason is not None:
            event["cut"] = self.cut_reason
        return event

    def cut(self, reason: str) -> None:
        """End it now, requests in flight included (they become rows saying
        ``cut: <reason>``). Returns at once; escalates to SIGKILL in the background."""
        if not self.alive:
            return
        self.stop_requested = True
        self.cut_reason = reason
        self._signal(signal.SIGTERM)
        self._spawn(self._finish_cut, None, "cut")

    def _finish_cut(self) -> None:
        stop_group(
            self.pid, self._wait_writing, timeout=2.0, escalation=((signal.SIGKILL, 2.0),), send_signal=self._signal
        )

    def _wait_writing(self, timeout: float) -> bool:
        """Wait for it to exit: ``timeout`` at a time for as long as its
        events keep coming (a cut generation writes what it counted first,
        at the pace the console reads it); False once they stop and it lives."""
        seen = -1
        while seen != self.events_read or self._applying:
            seen = self.events_read
            if self.wait(timeout):
                return True
        return False

    def stop(self, timeout: float = STOP_TIMEOUT) -> int | None:
        """Gracefully, then by force. Returns the exit status."""
        self.stop_requested = True
        if self.alive:
            stop_group(
                self.pid, self.wait, graceful=lambda: self.send("stop"), timeout=timeout, send_signal=self._signal
            )
        self._close_control()
        return self._stopped()

    # Each kind of generation says how it is waited for, signalled and reaped.
    @property
    def alive(self) -> bool:
        raise NotImplementedError

    def wait(self, timeout: float | None) -> bool:
        raise NotImplementedError

    def _signal(self, sig: int) -> None:
        raise NotImplementedError

    def _stopped(self) -> int | None:
        raise NotImplementedError

    def _close_control(self) -> None:
        # Its last handovers are read first: the child's exit ends the reader.
        if threading.current_thread() is not self._control_reader:
            self._control_reader.join(timeout=2)
        try:
            self._control.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        try:
            self._control.close()
        except OSError:
            pass


class SpawnedGeneration(GenerationHandle):
    """One generation of the server, spawned as a new interpreter."""

    def __init__(self, supervisor: Supervisor, generation: int) -> None:
        self.generation = generation
        self._supervisor = supervisor
        project = supervisor.project
        read_fd, write_fd = os.pipe()
        ours, theirs = control.pair()
        listen_fd = supervisor.socket.fileno()
        try:
            self.process = project.spawn(
                "devconsole.child.server",
                *supervisor.server_args(generation, write_fd),
                "--control-fd",
                str(theirs.fileno()),
                pass_fds=(listen_fd, write_fd, theirs.fileno()),
            )
        except OSError:
            os.close(read_fd)
            ours.close()
            raise
        finally:
            os.close(write_fd)
            theirs.close()
        assert self.process.stdout and self.process.stderr
        self._control = ours
        self.pid = self.process.pid
        self._start_readers(read_fd, self.process.stdout, self.process.stderr)
        self._waiter = self._spawn(self._wait, None, "wait")

    def _wait(self) -> None:
        returncode = self.process.wait()
        self._join_readers()
        self._emit(self.exit_event(returncode))
        self.hello.set()
        self.settled.set()

    @property
    def alive(self) -> bool:
        return self.process.poll() is None

    def wait(self, timeout: float | None) -> bool:
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            return False
        return True

    def _stopped(self) -> int | None:
        self._waiter.join(timeout=3)
        return self.process.returncode

    def _signal(self, sig: int) -> None:
        signal_group(self.process.pid, sig)


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
        self.child: GenerationHandle | None = None
        self.generation = 0
        #: Live reload in the server children: the option's choice, then the key's.
        self.browser_reload = os.environ.get(control.BROWSER_RELOAD_ENV, "1") != "0"
        #: This console run's id: live reload's generations are ``<run>.<N>``.
        self.run_id = secrets.token_hex(4)
        #: Told of the library modules a generation imported that its fork
        #: server did not hold (its ``modules`` messages): the reloader's.
        self.on_modules: Callable[[GenerationHandle, list[str]], None] | None = None
        self._lock = threading.Lock()
        #: Old generations asked to stop that still finish their requests, oldest first.
        self.draining: list[GenerationHandle] = []
        #: Idle keep-alive connections an old generation handed over: (fd,
        #: header), held until the current generation serves.
        self._handovers: deque[tuple[int, str]] = deque()
        #: Connections handed over, and passed on to a generation (or closed).
        self.handovers_received = 0
        self.handovers_forwarded = 0
        self.handovers_closed = 0
        #: The thread passing held connections on (none when idle), and
        #: whether another pass was asked for meanwhile.
        self._forwarder: threading.Thread | None = None
        self._forward_again = False

    def server_args(self, generation: int, events_fd: int | None = None) -> list[str]:
        """The server child's arguments for ``generation`` (``--events-fd`` last, if known)."""
        args = [
            "--listen-fd",
            str(self.socket.fileno()),
            "--addrport",
            self.address.addrport,
            "--generation",
            str(generation),
        ]
        if not self.use_threading:
            args.append("--nothreading")
        # Live reload's switch now (no window before a control message) and this run's id.
        args += [f"--browser-reload={'on' if self.browser_reload else 'off'}", f"--run-id={self.run_id}"]
        if self.address.ipv6:
            args.append("--ipv6")
        # "=" keeps a value that starts with "-" from being read as an option.
        args += [f"--runserver-arg={arg}" for arg in self.project.runserver_args]
        if events_fd is not None:
            args += ["--events-fd", str(events_fd)]
        return args

    def set_browser_reload(self, on: bool) -> None:
        """Live reload on or off, in the serving generation and every next one."""
        self.browser_reload = on
        child = self.child
        if child is not None:
            child.send(f"livereload {'on' if on else 'off'}")

    def next_generation(self) -> int:
        with self._lock:
            self.generation += 1
            return self.generation

    def adopt(self, child: GenerationHandle) -> None:
        """Make ``child`` (started by the reloader) the current generation:
        the one :meth:`stop` and :meth:`close` stop."""
        with self._lock:
            self.child = child
        self.forward_handovers()

    def hold_handover(self, fd: int, header: str) -> None:
        """A connection an old generation handed over: to the current
        generation as soon as it serves (at once if it does)."""
        closed: list[int] = []
        with self._lock:
            self.handovers_received += 1
            self._handovers.append((fd, header))
            while len(self._handovers) > MAX_HANDOVERS:
                closed.append(self._handovers.popleft()[0])
                self.handovers_closed += 1
        for old_fd in closed:
            os.close(old_fd)
        self.forward_handovers()

    def forward_handovers(self) -> None:
        """Pass the held connections on (see :meth:`_forward_now`) from a
        thread of their own: a send to a child may block (its control
        channel full while it waits for the console to read its events), and
        the caller may be the very reader that would unblock it. Returns at once."""
        with self._lock:
            self._forward_again = True
            if self._forwarder is not None:
                return
            self._forwarder = threading.Thread(target=self._forward_loop, name="devconsole-handovers", daemon=True)
            self._forwarder.start()

    def _forward_loop(self) -> None:
        while True:
            with self._lock:
                if not self._forward_again:
                    self._forwarder = None
                    return
                self._forward_again = False
            try:
                self._forward_now()
            except Exception:  # pragma: no cover - never leave the loop flag set
                pass

    def _forward_now(self) -> None:
        """Pass the held connections to the current generation, if it serves
        (said hello, or serves the page of its start-up error) and was not
        told to stop; else keep them for the next. The lock is not held
        while a connection is sent."""
        with self._lock:
            child = self.child
            if child is None or not self._handovers:
                return
            if child.hello_event is None and child.error_event is None:
                return
            if (child.hello_event or {}).get("server_kind", "wsgi") != "wsgi":
                # A Daphne generation cannot adopt a connection: closed as a
                # stop without handover would have.
                pending = list(self._handovers)
                self._handovers.clear()
                self.handovers_closed += len(pending)
                child = None
            else:
                pending = []
        for fd, _ in pending:
            os.close(fd)  # dropped
        while child is not None:
            with self._lock:
                if not self._handovers or self.child is not child:
                    return
                fd, header = self._handovers.popleft()
            if not child.adopt_connection(fd, header):
                with self._lock:  # stopping or gone: the next generation takes it
                    self._handovers.appendleft((fd, header))
                return
            with self._lock:
                self.handovers_forwarded += 1
            os.close(fd)  # sent: the child has its own copy

    def _close_handovers(self) -> None:
        """No generation will serve them (a quit): close them."""
        with self._lock:
            pending = list(self._handovers)
            self._handovers.clear()
            self.handovers_closed += len(pending)
        for fd, _ in pending:
            os.close(fd)

    def start(self) -> SpawnedGeneration:
        with self._lock:
            self.generation += 1
            child = self.child = SpawnedGeneration(self, self.generation)
            return child

    def restart(self) -> SpawnedGeneration:
        """Retire the running child (it accepts nothing more and drains its
        requests, see :meth:`retire`), then start the next at once.

        Connections arriving in between wait in the socket's backlog.
        """
        with self._lock:
            old = self.child
        if old is not None:
            self.retire(old)
        return self.start()

    def retire(self, old: GenerationHandle, *, wait_stopping: bool = True, gate: int | None = None) -> threading.Thread:
        """Tell ``old`` to stop now (it accepts nothing more) and wait in the
        background, however long its requests in flight take, for it to exit.
        Returns that thread. :meth:`cut_draining` ends the wait early; beyond
        :data:`MAX_DRAINING` old generations the oldest is cut.

        Returns once ``old`` says it accepts nothing more and reads no
        further request (or :data:`STOPPING_TIMEOUT` passed): a request sent
        after the next generation serves never reaches old code. Telling it
        is not enough: it obeys on a thread of its own, which a loaded
        machine may not run before the next generation (a spare) serves.

        ``wait_stopping=False``: returns at once; the caller starts the next
        generation gated and lets it serve after :meth:`wait_stopping`.

        Its stop says a successor comes (the pages it serves reload at once);
        a stop at quit does not.

        ``gate``: the write end of a pipe whose read end the next generation
        has (:meth:`GenerationHandle.gate`). ``old`` writes to it where it
        says ``stopping``, so the next one serves at once, without this
        process's threads in between (on a loaded machine they may not run
        for milliseconds); its end, whatever the cause, closes it, which
        means the same: nothing reaches its code any more. Still the
        caller's to close."""
        old.send(f"stop {control.STOP_SUCCESSOR}", [gate] if gate is not None else None)
        if wait_stopping:
            self.wait_stopping(old)
        with self._lock:
            self.draining.append(old)
            # One that said bye has no request left: it only writes its last
            # events (which may wait for a console that reads slowly). Cutting
            # it would lose them, and it frees nothing: not counted, never cut.
            serving = [handle for handle in self.draining if not handle.said_bye]
            excess = serving[:-MAX_DRAINING] if len(serving) > MAX_DRAINING else []
        for handle in excess:
            handle.cut(f"more than {MAX_DRAINING} generations draining")

        def wait() -> None:
            old.wait(None)
            old._close_control()
            old._stopped()
            with self._lock:
                if old in self.draining:
                    self.draining.remove(old)

        thread = threading.Thread(target=wait, name=f"devconsole-g{old.generation}-drain", daemon=True)
        thread.start()
        return thread

    @staticmethod
    def wait_stopping(old: GenerationHandle) -> None:
        """Until ``old`` (told to stop) accepts nothing more (see :meth:`retire`)."""
        if old.settled.is_set():  # one still starting serves nothing yet: not waited for
            old.stopped_accepting.wait(STOPPING_TIMEOUT)

    def cut_draining(self, reason: str = "by you") -> int:
        """End the old generations still draining, their requests with them; how many."""
        with self._lock:
            # One that said bye has no request to cut, only events to write.
            handles = [handle for handle in self.draining if handle.alive and not handle.said_bye]
        for handle in handles:
            handle.cut(reason)
        return len(handles)

    def cut_all(self, reason: str) -> None:
        """End every generation now, the current one included (a quit that
        will not wait): each request in flight becomes a row ``cut: <reason>``."""
        self.cut_draining(reason)
        with self._lock:
            child = self.child
        if child is not None:
            child.cut(reason)

    def stop(self) -> None:
        with self._lock:
            child, self.child = self.child, None
        if child is not None:
            child.stop()
        # Old generations still draining when the console goes: cut.
        self.cut_draining("quit")
        with self._lock:
            draining = list(self.draining)
        for handle in draining:
            handle.wait(STOP_TIMEOUT)
        self._close_handovers()

    def close(self) -> None:
        """Stop the child and release the port."""
        self.stop()
        self.socket.close()


class ForkServerError(RuntimeError):
    """A fork server died or did not answer; the caller falls back to a plain spawn."""


class ForkServerHandle:
    """The console's handle on one fork server (see
    :mod:`devconsole.child.forkserver`; messages in :mod:`devconsole.wire.forkserver`).

    A reader thread takes the fork server's messages: ``exit`` reports go to
    the generation they concern, everything else to :meth:`request`'s caller.
    """

    REPLY_TIMEOUT = 60.0

    def __init__(
        self,
        supervisor: Supervisor,
        control: socket.socket,
        level: ForkServerLevel,
        process: subprocess.Popen[bytes] | None = None,
    ) -> None:
        self.supervisor = supervisor
        self.control = control
        self.level = level
        self.process = process
        self.pid: int | None = process.pid if process is not None else None
        self.ready: wire.Message | None = None
        self.files: frozenset[str] = frozenset()
        #: Set when a preload left threads behind: no longer safe to fork.
        self.unsafe = False
        #: A preload was asked for (ever), and one is under way (its
        #: ``preloaded`` answer, with the files, not yet read).
        self.preloaded = False
        self.preloading = False
        #: Preloads answered so far, and who is told of each answer.
        self.preloads_done = 0
        self.preload_answered = threading.Event()
        #: The ``seq`` of the last ``preload`` sent: only an answer that
        #: echoes it ends :attr:`preloading` (an earlier answer crossing a
        #: later preload does not), and what was loaded and held at the last
        #: counted answer (an answer that changes neither is not counted).
        self._preload_sent = 0
        self._preload_last: tuple[int, frozenset[str]] = (0, frozenset())
        self.on_preloaded: Callable[[ForkServerHandle], None] | None = None
        self.children: dict[int, ForkedGeneration] = {}
        #: The fork servers forked from this one (a level 0's level 1 and
        #: apps level, an apps level's level 1) that have not exited yet.
        self.levels: set[int] = set()
        self._children_lock = threading.Lock()
        #: Exits reported before the fork's reply was read (held until then).
        self._early_exits: dict[int, int | None] = {}
        self._replies: queue.Queue[wire.Message | None] = queue.Queue()
        self._lock = threading.Lock()
        self.dead = threading.Event()
        self._reader = threading.Thread(target=self._read, name=f"devconsole-forkserver{level}", daemon=True)
        self._reader.start()

    @classmethod
    def spawn(cls, supervisor: Supervisor) -> ForkServerHandle:
        """Start a level 0 (a new interpreter with Django imported)."""
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        project = supervisor.project
        listen_fd = supervisor.socket.fileno()
        try:
            process = project.spawn(
                "devconsole.child.forkserver",
                "--control-fd",
                str(theirs.fileno()),
                pass_fds=(listen_fd, theirs.fileno()),
            )
        finally:
            theirs.close()
        handle = cls(supervisor, ours, ForkServerLevel.BASE, process)
        # Fork servers' own output (a print in settings.py) goes to the log.
        for stream, name in ((process.stdout, "stdout"), (process.stderr, "stderr")):
            threading.Thread(
                target=_read_log,
                args=(stream, name, handle._emit_log),
                name=f"devconsole-forkserver0-{name}",
                daemon=True,
            ).start()
        return handle

    def _emit_log(self, event: dict[str, Any]) -> None:
        # On the first start a fork server runs manage.py, the settings and
        # AppConfig.ready() before any generation is numbered: what they
        # print belongs to generation 1, the one that start makes (0 is the
        # number the reloader reserves for spares, whose events it drops).
        event["generation"] = max(self.supervisor.generation, 1)
        self.supervisor.on_event(event)

    def _read(self) -> None:
        while True:
            try:
                message, fds, gone = wire.receive(self.control)
            except OSError:
                break
            if gone:
                break
            for fd in fds:  # none are sent this way
                os.close(fd)
            op = wire.op_of(message)
            if message is None or op is None:
                continue
            if op is Op.EXIT:
                pid = int(message.get("pid") or 0)
                with self._children_lock:
                    child = self.children.pop(pid, None)
                    if pid in self.levels:
                        self.levels.discard(pid)
                    elif child is None:
                        # Exited before its fork's reply was read (see register).
                        self._early_exits[pid] = message.get("returncode")
                if child is not None:
                    child.exited(message.get("returncode"))
                continue
            if op is Op.PRELOADED:
                # Answers preload_async: not a reply anyone waits for.
                self.files = frozenset(message.get("files") or ())
                if not message.get("forkable"):
                    self.unsafe = True
                if int(message.get("seq") or 0) < self._preload_sent:
                    continue  # a later preload is still under way
                self.preloading = False  # after the files: see preload_async
                self.preload_answered.set()
                held = (int(message.get("loaded") or 0), self.files)
                if held != self._preload_last:  # else nothing new held: a spare made before is as good
                    self._preload_last = held
                    self.preloads_done += 1
                # Told either way: a spare put off while this preload ran is made now.
                if self.on_preloaded is not None:
                    try:
                        self.on_preloaded(self)
                    except Exception:  # pragma: no cover - this thread must go on reading
                        pass
                continue
            if op in (Op.READY, Op.FAILED) and self.ready is None:
                self.ready = message
                self.pid = message.get("pid", self.pid)
                self.files = frozenset(message.get("files") or ())
                self._preload_last = (0, self.files)
            self._replies.put(message)
        self.dead.set()
        self._replies.put(None)
        try:
            self.control.close()
        except OSError:
            pass
        # Children it can no longer report on: notice their exit by polling.
        for child in list(self.children.values()):
            child.orphaned()

    @property
    def label(self) -> str:
        """Its name for people: ``level 0``, ``level 1``, ``the apps level``."""
        return "the apps level" if self.level == ForkServerLevel.APPS else f"level {self.level.value}"

    @property
    def setup_ok(self) -> bool:
        """A level 1 whose setup succeeded (its ``ready`` came, not ``failed``)."""
        return wire.op_of(self.ready) is Op.READY

    @property
    def setup_failed(self) -> bool:
        return wire.op_of(self.ready) is Op.FAILED

    def wait_ready(self, timeout: float = REPLY_TIMEOUT) -> wire.Message:
        """The fork server's ``ready`` (or, for a level 1, ``failed``) message."""
        return self._reply(timeout)

    def _reply(self, timeout: float) -> wire.Message:
        try:
            message = self._replies.get(timeout=timeout)
        except queue.Empty:
            raise ForkServerError(f"fork server ({self.label}) did not answer in {timeout:g} s") from None
        if message is None:
            raise ForkServerError(f"fork server ({self.label}) exited")
        return message

    def request(
        self, message: wire.Message, fds: list[int] | None = None, timeout: float = REPLY_TIMEOUT
    ) -> wire.Message:
        with self._lock:
            if self.dead.is_set():
                raise ForkServerError(f"fork server ({self.label}) is gone")
            try:
                wire.send(self.control, message, fds)
            except OSError as exc:
                raise ForkServerError(f"fork server ({self.label}): {exc}") from exc
            return self._reply(timeout)

    def fork_level1(self, *, apps: bool = False) -> ForkServerHandle:
        """A level 1 forked from this level 0 or apps level (``apps``: an
        apps level, from a level 0); returns at once (see wait_ready)."""
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        try:
            reply = self.request(wire.message(Op.LEVEL1, apps=apps), [theirs.fileno()])
        except ForkServerError:
            ours.close()
            raise
        finally:
            theirs.close()
        level1 = ForkServerHandle(self.supervisor, ours, ForkServerLevel.APPS if apps else ForkServerLevel.SETUP)
        level1.pid = reply.get("pid")
        with self._children_lock:
            if level1.pid in self._early_exits:
                del self._early_exits[level1.pid]  # it already exited
            elif level1.pid is not None:
                self.levels.add(level1.pid)
        return level1

    def preload_async(self, modules: list[str]) -> None:
        """Ask a level 0 to import ``modules`` while idle; it answers later
        (``preloaded``: the project files it imported after all, whether it
        is still single-threaded)."""
        with self._lock:
            # Until it answers, its files are not known: a level 1 may be
            # importing a project module a library pulls in right now.
            self.preloading = self.preloaded = True
            self.preload_answered.clear()
            self._preload_sent += 1
            try:
                wire.send(self.control, wire.message(Op.PRELOAD, modules=modules, seq=self._preload_sent))
            except OSError:
                pass

    def finish_preload(self, timeout: float) -> bool:
        """Have the preload under way stop and say what it holds now; True
        once it did (within ``timeout``)."""
        with self._lock:
            self._preload_sent += 1
            try:
                wire.send(self.control, wire.message(Op.PRELOAD, modules=[], stop=True, seq=self._preload_sent))
            except OSError:
                return False
        return self.preload_answered.wait(timeout) and not self.preloading

    def register(self, pid: int, child: ForkedGeneration) -> None:
        with self._children_lock:
            if pid in self._early_exits:
                returncode = self._early_exits.pop(pid)
            else:
                self.children[pid] = child
                return
        child.exited(returncode)

    def serve(
        self,
        generation: int,
        *,
        spare: bool = False,
        gated: bool = False,
        preload: list[str] | None = None,
        patterns: str = "",
        normalized: str = "",
        sources: list[str] | None = None,
        ahead: list[str] | None = None,
    ) -> ForkedGeneration:
        """Fork a server child of ``generation`` from this fork server; a spare
        (generation 0) waits, prepared, for :meth:`ForkedGeneration.promote`,
        having imported the library modules ``preload``, compiled the regular
        expressions ``patterns`` and the project's ``sources`` and normalized
        the URL patterns ``normalized`` (what the serving generation used),
        then, with a twin forked before, the
        project modules ``ahead``;
        a ``gated`` one gets ready but accepts only after
        :meth:`GenerationHandle.accept`."""
        return ForkedGeneration(
            self.supervisor,
            generation,
            self,
            spare=spare,
            gated=gated,
            preload=preload,
            patterns=patterns,
            normalized=normalized,
            sources=sources,
            ahead=ahead,
        )

    def close(self, *, wait: bool = False) -> None:
        """Ask the fork server to exit once its children have; close our end."""
        try:
            wire.send(self.control, wire.message(Op.QUIT))
        except OSError:
            pass
        # With ``wait``, a fork server with children exits once they have:
        # the generations and the fork servers it forked (its reader closes
        # this end then). Else it goes now.
        with self._children_lock:
            waited = wait and bool(self.children or self.levels)
        if not waited:
            try:
                self.control.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        if self.process is not None:
            stop_group(self.process.pid, _waiter(self.process), timeout=3.0)


def _waiter(process: subprocess.Popen[bytes]) -> Callable[[float], bool]:
    """``wait(timeout) -> exited?`` for a ``Popen``."""

    def wait(timeout: float) -> bool:
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            return False
        return True

    return wait


class _ForkedProcess:
    """The part of ``Popen``'s interface callers use on a server child
    (``pid``, ``returncode``, ``poll``, ``wait``), for a forked one."""

    def __init__(self, child: ForkedGeneration) -> None:
        self._child = child

    @property
    def pid(self) -> int:
        return self._child.pid

    @property
    def returncode(self) -> int | None:
        return self._child.returncode if not self._child.alive else None

    def poll(self) -> int | None:
        return self.returncode

    def wait(self, timeout: float | None = None) -> int | None:
        if not self._child.wait(STOP_TIMEOUT * 10 if timeout is None else timeout):
            raise subprocess.TimeoutExpired("server child", timeout or 0)
        return self._child.returncode


#: A spare's hints (see :meth:`ForkServerHandle.serve`), in the order they
#: are left out of a message too long for one packet, with what stands for none.
_HINTS_LEFT_OUT_FIRST: tuple[tuple[str, Any], ...] = (
    ("normalized", ""),
    ("sources", []),
    ("patterns", ""),
    ("ahead", []),
    ("preload", []),
)


class ForkedGeneration(GenerationHandle):
    """One generation of the server, forked by a fork server.

    Not our child process: its exit is reported by the fork server (or, if
    the fork server is gone, noticed by polling the pid).
    """

    def __init__(
        self,
        supervisor: Supervisor,
        generation: int,
        forkserver: ForkServerHandle,
        *,
        spare: bool = False,
        gated: bool = False,
        preload: list[str] | None = None,
        patterns: str = "",
        normalized: str = "",
        sources: list[str] | None = None,
        ahead: list[str] | None = None,
    ) -> None:
        self.generation = generation
        self._supervisor = supervisor
        self.forkserver = forkserver
        self.returncode: int | None = None
        self._exited = threading.Event()
        self._finish_lock = threading.Lock()
        self._finishing = False
        ours, control_theirs = control.pair()
        out_r, out_w = os.pipe()
        err_r, err_w = os.pipe()
        ev_r, ev_w = os.pipe()
        theirs = [control_theirs.detach(), out_w, err_w, ev_w]
        try:
            started = time.perf_counter()
            message = wire.message(
                Op.SERVE,
                args=[*supervisor.project.bootstrap_args(), *supervisor.server_args(generation)],
                spare=spare,
                gated=gated,
                preload=preload or [],
                patterns=patterns,
                normalized=normalized,
                sources=sources or [],
                ahead=ahead or [],
            )
            # What a spare does ahead only saves time: what would not fit in
            # one packet is left out, the least worth first.
            reply = forkserver.request(wire.fit(message, _HINTS_LEFT_OUT_FIRST), theirs)
            self.fork_ms = round((time.perf_counter() - started) * 1000, 2)
        except ForkServerError:
            ours.close()
            for fd in (out_r, err_r, ev_r):
                os.close(fd)
            raise
        finally:
            for fd in theirs:
                os.close(fd)
        self.pid = int(reply["pid"])
        #: What its fork server had preloaded when it forked this one.
        self.preloads = forkserver.preloads_done
        #: For a spare: the generation whose reports (modules, patterns,
        #: project imports) it was forked with, if any (set by the reloader).
        self.hints_of: int | None = None
        self.process = _ForkedProcess(self)
        self._control = ours
        self._start_readers(ev_r, os.fdopen(out_r, "rb"), os.fdopen(err_r, "rb"))
        forkserver.register(self.pid, self)
        if forkserver.dead.is_set():
            self.orphaned()

    def promote(self, generation: int, *, gated: bool = False, twin: bool = False) -> None:
        """A spare becomes ``generation``: it imports the URLconf and serves
        (``gated``: only once :meth:`accept` is called; ``twin``: its twin
        does, the spare standing in for it, see :attr:`spare_twin`)."""
        self.generation = generation
        self.send(" ".join(["go", str(generation), *(["gated"] if gated else []), *(["twin"] if twin else [])]))

    def exited(self, returncode: int | None) -> None:
        """Called by the fork server handle's reader: finish off the thread's hands."""
        self.returncode = returncode
        self._spawn(self._finish, None, "exit")

    def _finish(self) -> None:
        with self._finish_lock:
            if self._finishing:
                return
            self._finishing = True
        returncode = self.returncode
        self._join_readers()
        self._emit(self.exit_event(returncode))
        self._exited.set()
        self.hello.set()
        self.settled.set()

    def orphaned(self) -> None:
        """The fork server is gone: watch the pid ourselves."""

        def poll() -> None:
            while not self._exited.is_set():
                try:
                    os.kill(self.pid, 0)
                except ProcessLookupError:
                    self._finish()
                    return
                except PermissionError:
                    pass
                if _is_zombie(self.pid):  # exited; its new parent has not reaped it yet
                    self._finish()
                    return
                time.sleep(0.1)

        self._spawn(poll, None, "orphan")

    @property
    def alive(self) -> bool:
        return not self._exited.is_set()

    def wait(self, timeout: float | None) -> bool:
        return self._exited.wait(timeout)

    def _stopped(self) -> int | None:
        return self.returncode

    def _signal(self, sig: int) -> None:
        if not self._exited.is_set():
            signal_group(self.pid, sig)


def _is_zombie(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", "rb") as handle:
            raw = handle.read()
    except OSError:
        return False
    return raw[raw.rindex(b")") + 2 : raw.rindex(b")") + 3] == b"Z"
