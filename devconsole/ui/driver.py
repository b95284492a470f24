"""The terminal driver: Textual's Linux driver with an input thread that sleeps.

Textual's own input thread wakes ten times a second to look at stdin and at
its exit flag, idle or not, and when stdin ends (``< /dev/null``, or a
terminal that disappeared without a hangup signal) it loops on an empty read
without pause, a core at 100 %. This one waits in ``select()`` on stdin and on a
wake-up pipe that its exit flag writes to: no time-out unless the key parser
waits for the rest of an escape sequence (a lone Escape is a key once that
time has passed). Where stdin ends:

* a terminal (hung up, or gone): the console gets SIGHUP, as a real hangup
  sends it, and exits the way it exits on one (children stopped, status 129);
* anything else (a file, a pipe, /dev/null): no more keys, and the console
  runs on until it is stopped (SIGTERM, SIGINT).

A terminal that goes away never holds the exit up:

* the kernel follows a hangup's SIGHUP with a SIGCONT. Textual's driver takes
  any SIGCONT for the end of a Ctrl+Z and starts application mode again (a
  second writer and input thread, the first ones left behind); this one
  resumes only after its own suspension;
* a write to a terminal that is gone fails (EIO) and would end Textual's
  writer thread, after which the exit's last writes wait forever for room in
  its queue. Here the writer drops what it cannot write and goes on draining.
"""

from __future__ import annotations

import contextlib
import os
import select
import signal
import threading
from codecs import getincrementaldecoder
from typing import IO, Any

from textual._xterm_parser import XTermParser
from textual.drivers.linux_driver import LinuxDriver

#: How often the input thread looks again while the key parser waits for the
#: rest of an escape sequence (Textual's own step).
PARSER_STEP_S = 0.1


class _WakingEvent(threading.Event):
    """The driver's exit flag: setting it also wakes the input thread."""

    def __init__(self, fd: int) -> None:
        super().__init__()
        self.fd = fd

    def set(self) -> None:
        super().set()
        if self.fd >= 0:
            with contextlib.suppress(OSError):  # full: the thread is awake anyway
                os.write(self.fd, b"x")


class _TerminalOut:
    """The file the writer thread writes to: once the terminal is gone (a
    write or flush fails), what comes after is dropped, and the thread lives on."""

    def __init__(self, file: IO[str]) -> None:
        self._file = file
        self.gone = False

    def write(self, text: str) -> None:
        if not self.gone:
            try:
                self._file.write(text)
            except (OSError, ValueError):  # EIO: hung up; ValueError: closed
                self.gone = True

    def flush(self) -> None:
        if not self.gone:
            try:
                self._file.flush()
            except (OSError, ValueError):
                self.gone = True

    def fileno(self) -> int:
        return self._file.fileno()


class QuietLinuxDriver(LinuxDriver):
    """:class:`LinuxDriver` whose input thread wakes only for input."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if self._file is not None:
            self._file = _TerminalOut(self._file)  # type: ignore[assignment]
        self._wake_r = self._wake_w = -1
        self._exit_flag = _WakingEvent(-1)
        self.exit_event = self._exit_flag

    def _sigcont_application(self, *args: Any) -> None:
        # A continue after this driver's own Ctrl+Z resumes; any other (the
        # one a hangup brings, a `kill -CONT`) finds the console running.
        if self._must_signal_resume:
            super()._sigcont_application(*args)

    def start_application_mode(self) -> None:
        # A pipe per input thread: a suspension (the debugger's terminal)
        # stops the thread and closes it, the resumption makes another.
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_r, False)
        os.set_blocking(self._wake_w, False)
        self._exit_flag.fd = self._wake_w
        super().start_application_mode()

    def stop_application_mode(self) -> None:
        super().stop_application_mode()  # the input thread was told and joined
        self._exit_flag.fd = -1  # never a write to a number reused since
        for fd in (self._wake_r, self._wake_w):
            if fd >= 0:
                with contextlib.suppress(OSError):
                    os.close(fd)
        self._wake_r = self._wake_w = -1

    def run_input_thread(self) -> None:
        fileno, wake = self.fileno, self._wake_r
        parser = XTermParser(self._debug)
        decode = getincrementaldecoder("utf-8")().decode
        # Known now, while the terminal is there (a vanished one is no tty).
        terminal = os.isatty(fileno)
        watched = [fileno, wake]
        try:
            while not self.exit_event.is_set():
                # The parser times out a sequence it is in the middle of (a
                # lone Escape): only then is a time-out needed. select(), not
                # poll(): macOS's poll() does not take a terminal.
                waiting = getattr(parser, "_timeout_time", 0.0) is not None
                ready, _, _ = select.select(watched, [], [], PARSER_STEP_S if waiting else None)
                if wake in ready:
                    with contextlib.suppress(OSError):
                        os.read(wake, 512)
                if fileno in ready:
                    try:
                        data = os.read(fileno, 4096)
                    except (BlockingIOError, InterruptedError):
                        continue  # another reader took it (a shared, non-blocking terminal)
                    except OSError:
                        data = b""  # EIO: the terminal is gone
                    if data:
                        for event in parser.feed(decode(data)):
                            self.process_message(event)
                    else:
                        watched.remove(fileno)  # no key will come
                        if terminal:
                            # Its end is a hangup, as the kernel would have said.
                            os.kill(os.getpid(), signal.SIGHUP)
                for event in parser.tick():
                    self.process_message(event)
        finally:
            with contextlib.suppress(Exception):
                for _event in parser.feed(""):
                    pass
