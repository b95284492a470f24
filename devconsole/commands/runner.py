"""Run management commands as subprocesses of the project's ``manage.py``.

Each run is ``python manage.py NAME ARGS`` with the project's interpreter
(:attr:`Project.python`), the project's environment (``--settings`` and
``--pythonpath`` included, as ``DJANGO_SETTINGS_MODULE`` / ``PYTHONPATH``, which
every command honours) and the project root as working directory: exactly what
the user would type in a shell there. The console never imports the command.

* Output (stdout and stderr merged, so their order is kept) is read line by
  line by one thread per run into a bounded buffer; totals stay exact when old
  lines are dropped. Lines keep SGR colour sequences (Django's
  ``--force-color``) and nothing else: every other control sequence is made
  visible (:func:`clean_output_line`), so output can never drive the terminal.
* A run leads its own process group: Ctrl+C in the console sends ``SIGINT`` to
  that group only (the console and the server child never see it); a second
  interrupt sends ``SIGTERM``, a third ``SIGKILL``.
* Interactive commands (``shell``, ``createsuperuser``...) need the terminal:
  :meth:`CommandRunner.run_in_terminal` runs them with inherited stdio and
  blocks; the UI calls it while the app is suspended.
* The history of the session's runs is bounded; :meth:`CommandRunner.close`
  stops every run still going.
"""

from __future__ import annotations

import itertools
import os
import re
import shlex
import signal
import subprocess
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from enum import Enum
from typing import TYPE_CHECKING, Any

from devconsole.console.processes import signal_group
from devconsole.model import sanitize

if TYPE_CHECKING:
    from devconsole.console.project import Project

#: Lines kept per run; older ones are dropped (counted in ``Run.dropped``).
MAX_LINES = 5000
#: Runs kept in the history; the oldest finished ones go first.
MAX_HISTORY = 50
#: A longer line is cut (a minified JSON dump should not eat the buffer).
MAX_LINE_CHARS = 4000

#: Bytes read at most per line; the rest of a longer one comes as the next line.
_READ_LIMIT = 64 * 1024

#: Said of a piped run that failed reading input (``EOFError``: its stdin is
#: /dev/null); Ctrl+T in the Commands view runs a command on the terminal.
INPUT_HINT = "it wanted input: press Ctrl+T to run it in the terminal"


class RunStatus(str, Enum):
    """Where a run is (the value is the word the console shows)."""

    RUNNING = "running"
    SUCCEEDED = "succeeded"
    #: Exited with a non-zero code.
    FAILED = "failed"
    #: Stopped by a signal the user asked for (Ctrl+C).
    INTERRUPTED = "interrupted"
    #: The process could not start.
    ERROR = "error"

    def __str__(self) -> str:
        # The word, as the plain strings were (Python 3.11+ would print "RunStatus.ERROR").
        return self.value


def clean_output_line(raw: str, limit: int = MAX_LINE_CHARS) -> str:
    """One line of command output, safe to show: SGR colour sequences kept,
    every other control character visibly escaped
    (:func:`devconsole.model.sanitize.clean_colour_line`)."""
    return sanitize.clean_colour_line(raw, limit)


#: The plain text of a cleaned line (for copying, searching, tests).
strip_sgr = sanitize.strip_sgr


@dataclass
class Run:
    """One run of a management command. Mutated only by its runner's threads
    under the runner's lock; read through the runner's accessors."""

    id: int
    name: str
    args: tuple[str, ...]
    argv: tuple[str, ...]
    #: The command line as the user would type it in the project directory.
    command_line: str
    in_terminal: bool = False
    #: Started with ``--force-color`` added (when the command accepts it).
    color: bool = False
    started: float = field(default_factory=time.monotonic)
    #: Wall-clock start (``time.time()``) for the history.
    started_at: float = field(default_factory=time.time)
    ended: float | None = None
    returncode: int | None = None
    status: RunStatus = RunStatus.RUNNING
    #: ``"ExcType: message"`` when the process could not start.
    error: str | None = None
    lines: deque[tuple[int, str]] = field(default_factory=lambda: deque(maxlen=MAX_LINES))
    #: Lines received so far (the seq of the last one).
    total_lines: int = 0
    interrupts: int = 0
    pid: int | None = None
    #: What to do about the failure, when the runner can tell (:data:`INPUT_HINT`).
    hint: str = ""

    @property
    def running(self) -> bool:
        return self.status is RunStatus.RUNNING

    @property
    def dropped(self) -> int:
        return self.total_lines - len(self.lines)

    def elapsed(self, now: float | None = None) -> float:
        end = self.ended if self.ended is not None else (now or time.monotonic())
        return max(0.0, end - self.started)

    def output_text(self) -> str:
        """The kept output as plain text."""
        return "\n".join(strip_sgr(line) for _, line in self.lines)

    def status_line(self) -> str:
        """``"succeeded · 0.42 s"``, ``"failed (exit 1) · 1.2 s"``..."""
        text = self.status.value
        if self.status is RunStatus.FAILED and self.returncode is not None:
            text = f"failed (exit {self.returncode})"
        elif self.status is RunStatus.INTERRUPTED and self.returncode is not None:
            text = f"interrupted ({_describe_code(self.returncode)})"
        elif self.status is RunStatus.ERROR and self.error:
            text = f"error: {self.error}"
        text = f"{text} · {self.elapsed():.2f} s"
        return f"{text} · {self.hint}" if self.hint else text


def wanted_input(run: Run) -> bool:
    """Whether a failed piped run died reading input: its output (the kept
    lines, the traceback's last among them) names ``EOFError``."""
    return any("EOFError" in line for _, line in run.lines)


def _describe_code(code: int) -> str:
    if code < 0:
        try:
            return signal.Signals(-code).name
        except ValueError:
            return f"signal {-code}"
    return f"exit {code}"


class CommandRunner:
    """Starts runs for one project and keeps the session's history."""

    def __init__(
        self,
        project: Project,
        *,
        max_history: int = MAX_HISTORY,
        max_lines: int = MAX_LINES,
        on_change: Callable[[Run], None] | None = None,
    ) -> None:
        self.project = project
        self.max_history = max_history
        self.max_lines = max_lines
        #: Called from reader threads when a run gets output or ends: keep it
        #: cheap and thread-safe (``App.post_message`` / a flag).
        self.on_change = on_change
        self._ids = itertools.count(1)
        self._lock = threading.Lock()
        self._history: deque[Run] = deque()
        self._procs: dict[int, subprocess.Popen[bytes]] = {}
        self._threads: dict[int, threading.Thread] = {}
        self._closed = False

    # -- building argv -------------------------------------------------

    def argv(self, name: str, args: Sequence[str], *, color: bool = True) -> list[str]:
        """``[python, manage.py, name, *args]``, plus ``--force-color`` when
        ``color`` and the user did not ask for ``--no-color``."""
        words = list(args)
        if color and not {"--no-color", "--force-color"} & set(words):
            # Before a ``--`` that ends the options, if there is one.
            end = words.index("--") if "--" in words else len(words)
            words.insert(end, "--force-color")
        return [self.project.python, self.project.manage_py.name, name, *words]

    def command_line(self, name: str, args: Sequence[str], *, color: bool = True) -> str:
        """The exact command line of a run, shell-quoted: paste it in a shell
        in the project directory and it does the same."""
        return _with_env(self.project.option_env(), self.argv(name, args, color=color))

    # -- runs ----------------------------------------------------------

    def _new_run(
        self, name: str, args: Sequence[str], argv: list[str], *, in_terminal: bool = False, color: bool = False
    ) -> Run:
        return Run(
            id=next(self._ids),
            name=name,
            args=tuple(args),
            argv=tuple(argv),
            command_line=_with_env(self.project.option_env(), argv),
            lines=deque(maxlen=self.max_lines),
            in_terminal=in_terminal,
            color=color,
        )

    def start(self, name: str, args: Sequence[str] = (), *, color: bool = True) -> Run:
        """Start ``manage.py name args`` with output piped; returns at once."""
        if self._closed:
            raise RuntimeError("the command runner is closed")
        argv = self.argv(name, args, color=color)
        run = self._new_run(name, args, argv, color=color)
        env = self.project.child_env()
        env.pop("COLUMNS", None)
        env.pop("LINES", None)
        try:
            proc = subprocess.Popen(
                argv,
                cwd=self.project.root,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        except OSError as exc:
            run.status = RunStatus.ERROR
            run.error = f"cannot start {argv[0]}: {exc.strerror or exc}"
            run.ended = time.monotonic()
            self._remember(run)
            self._notify(run)
            return run
        run.pid = proc.pid
        reader = threading.Thread(target=self._read, args=(run, proc), name=f"devconsole-run-{run.id}", daemon=True)
        with self._lock:
            self._procs[run.id] = proc
            self._threads[run.id] = reader
        self._remember(run)
        reader.start()
        return run

    def run_in_terminal(self, name: str, args: Sequence[str] = ()) -> Run:
        """Run ``manage.py name args`` on the real terminal and wait for it.

        Blocking, with the terminal's stdio: call it while the console is
        suspended. Ctrl+C typed meanwhile reaches the command (it shares the
        terminal's foreground process group); in this process it is ignored
        for the duration when called from the main thread, so it cannot stop
        the console.
        """
        if self._closed:
            raise RuntimeError("the command runner is closed")
        argv = self.argv(name, args, color=False)
        run = self._new_run(name, args, argv, in_terminal=True)
        self._remember(run)
        swapped = threading.current_thread() is threading.main_thread()
        previous: Any = None
        if swapped:
            # A handler, not SIG_IGN: an ignored SIGINT would be inherited by
            # the command (exec resets handlers, not ignores).
            previous = signal.signal(signal.SIGINT, lambda signum, frame: None)
        try:
            completed = subprocess.run(argv, cwd=self.project.root, env=self.project.child_env(), check=False)
        except OSError as exc:
            with self._lock:
                run.status = RunStatus.ERROR
                run.error = f"cannot start {argv[0]}: {exc.strerror or exc}"
                run.ended = time.monotonic()
        else:
            self._finish(run, completed.returncode)
        finally:
            if swapped:
                # None: the previous handler was not set from Python (the default).
                signal.signal(signal.SIGINT, previous if previous is not None else signal.SIG_DFL)
        self._notify(run)
        return run

    def rerun(self, run: Run) -> Run:
        """Start the same command again (in the terminal if it ran there)."""
        if run.in_terminal:
            return self.run_in_terminal(run.name, run.args)
        return self.start(run.name, run.args, color=run.color)

    def interrupt(self, run: Run) -> bool:
        """Ask a run to stop, like Ctrl+C in a shell; escalate when asked again:
        ``SIGINT``, then ``SIGTERM``, then ``SIGKILL``. False if not running."""
        with self._lock:
            proc = self._procs.get(run.id)
            if proc is None or not run.running:
                return False
            run.interrupts += 1
            sig = (signal.SIGINT, signal.SIGTERM, signal.SIGKILL)[min(run.interrupts, 3) - 1]
        signal_group(proc.pid, sig)
        return True

    # -- reading -------------------------------------------------------

    def _read(self, run: Run, proc: subprocess.Popen[bytes]) -> None:
        stdout = proc.stdout
        assert stdout is not None
        last_notify = 0.0
        reader = _LineReader()
        try:
            # Big reads, not a line at a time: a command that prints fast is
            # read as fast as it writes, and its lines are cleaned and stored
            # a batch at a time.
            fd = stdout.fileno()
            while True:
                data = os.read(fd, _CHUNK)
                if not data:
                    break
                self._append(run, reader.feed(data))
                # Each batch is readable at once (the UI polls); the callback,
                # which may wake the UI, fires at most every 50 ms.
                now = time.monotonic()
                if now - last_notify >= 0.05:
                    last_notify = now
                    self._notify(run)
            self._append(run, reader.end())
        except (OSError, ValueError):  # the pipe was closed by close()
            pass
        finally:
            code = proc.wait()
            try:
                stdout.close()
            except OSError:
                pass
            self._finish(run, code)
            with self._lock:
                self._procs.pop(run.id, None)
                self._threads.pop(run.id, None)
            self._notify(run)

    def _append(self, run: Run, lines: list[str]) -> None:
        if not lines:
            return
        with self._lock:
            first = run.total_lines + 1
            run.total_lines += len(lines)
            keep = run.lines.maxlen
            if keep is not None and len(lines) > keep:
                first += len(lines) - keep
                lines = lines[-keep:]
            run.lines.extend(zip(itertools.count(first), lines))

    def _finish(self, run: Run, code: int) -> None:
        with self._lock:
            run.returncode = code
            run.ended = time.monotonic()
            if run.interrupts or code in (-signal.SIGINT, -signal.SIGTERM, -signal.SIGKILL):
                run.status = RunStatus.INTERRUPTED if code != 0 else RunStatus.SUCCEEDED
            else:
                run.status = RunStatus.SUCCEEDED if code == 0 else RunStatus.FAILED
            if run.status is RunStatus.FAILED and not run.in_terminal and wanted_input(run):
                run.hint = INPUT_HINT

    def _notify(self, run: Run) -> None:
        if self.on_change is not None:
            self.on_change(run)

    def _remember(self, run: Run) -> None:
        with self._lock:
            self._history.append(run)
            while len(self._history) > self.max_history:
                oldest = next((r for r in self._history if not r.running), None)
                if oldest is None:
                    break
                self._history.remove(oldest)

    # -- reading state -------------------------------------------------

    def history(self) -> list[Run]:
        """The session's runs, oldest first."""
        with self._lock:
            return list(self._history)

    def get(self, run_id: int) -> Run | None:
        with self._lock:
            return next((r for r in self._history if r.id == run_id), None)

    def running(self) -> list[Run]:
        with self._lock:
            return [r for r in self._history if r.running]

    def lines_since(self, run: Run, seq: int) -> list[tuple[int, str]]:
        """Lines of ``run`` after ``seq`` still in the buffer."""
        with self._lock:
            if run.total_lines <= seq:
                return []
            # The kept lines are numbered without a gap: skip to ``seq`` at once.
            skip = max(0, seq - (run.total_lines - len(run.lines)))
            return list(itertools.islice(run.lines, skip, None))

    def wait(self, run: Run, timeout: float | None = None) -> bool:
        """Block until ``run`` ended (output fully read); False on timeout."""
        with self._lock:
            thread = self._threads.get(run.id)
        if thread is not None:
            thread.join(timeout)
            return not thread.is_alive()
        return not run.running

    def close(self, timeout: float = 3.0, *, block: bool = True) -> None:
        """Stop every run still going: ``SIGINT`` now, ``SIGKILL`` to what is
        left after ``timeout``, then wait for the reader threads. Idempotent.

        With ``block=False`` only the ``SIGINT`` happens in the caller (the
        UI thread, which must not stall while the app closes); the rest runs
        in a non-daemon thread, so the interpreter still waits for it and no
        run outlives the console.
        """
        self._closed = True
        with self._lock:
            procs = list(self._procs.items())
            threads = dict(self._threads)
        if not procs:
            return
        for _, proc in procs:
            signal_group(proc.pid, signal.SIGINT)
        if block:
            self._reap(procs, threads, timeout)
        else:
            threading.Thread(target=self._reap, args=(procs, threads, timeout), name="devconsole-runs-close").start()

    @staticmethod
    def _reap(
        procs: list[tuple[int, subprocess.Popen[bytes]]],
        threads: dict[int, threading.Thread],
        timeout: float,
    ) -> None:
        deadline = time.monotonic() + timeout
        for _, proc in procs:
            try:
                proc.wait(max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                signal_group(proc.pid, signal.SIGKILL)
        for run_id, proc in procs:
            thread = threads.get(run_id)
            if thread is None:
                continue
            thread.join(0.5)
            if thread.is_alive():
                # A grandchild still holds the pipe after its parent died.
                signal_group(proc.pid, signal.SIGKILL)
                thread.join(timeout)


#: Bytes asked of a run's pipe at once.
_CHUNK = 256 * 1024
#: A byte that is neither printable ASCII nor a line end: a block without
#: one needs no escaping, only each line's length cut.
_NOT_PLAIN = re.compile(rb"[^\x20-\x7e\n]")


class _LineReader:
    """A run's output in, cleaned lines out, exactly as reading it with
    ``readline(_READ_LIMIT)`` and :func:`clean_output_line` would give them:
    a line longer than the limit comes in pieces; SGR codes alone on a line
    (Django's style reset after the newline) belong to the next line, as on
    a terminal. Blocks of plain text take a fast path."""

    def __init__(self) -> None:
        self._partial = b""
        self._carry = ""

    def feed(self, data: bytes) -> list[str]:
        if self._partial:
            data = self._partial + data
        end = data.rfind(b"\n") + 1
        tail = data[end:]
        if len(tail) >= _READ_LIMIT:  # no line end for a while: whole pieces go now
            cut = len(tail) - len(tail) % _READ_LIMIT
            end, tail = end + cut, tail[cut:]
        self._partial = tail
        return self._lines(data[:end]) if end else []

    def end(self) -> list[str]:
        """What is left at the end of the output (a last line without its end)."""
        rest, self._partial = self._partial, b""
        return self._lines(rest) if rest else []

    def _lines(self, block: bytes) -> list[str]:
        if _NOT_PLAIN.search(block) is None:
            lines = block.decode("ascii").split("\n")
            if block.endswith(b"\n"):
                lines.pop()
            if lines and not self._carry and max(map(len, lines)) <= MAX_LINE_CHARS:
                return lines
        return self._slow(block)

    def _slow(self, block: bytes) -> list[str]:
        out: list[str] = []
        for raw in _pieces(block):
            line = self._carry + clean_output_line(raw.decode("utf-8", "replace"))
            if line and not strip_sgr(line):
                self._carry = line
                continue
            self._carry = ""
            out.append(line)
        return out


def _pieces(block: bytes) -> list[bytes]:
    """``block`` as ``readline(_READ_LIMIT)`` would return it, piece by piece."""
    out: list[bytes] = []
    start, size = 0, len(block)
    while start < size:
        newline = block.find(b"\n", start, start + _READ_LIMIT)
        end = newline + 1 if newline >= 0 else min(start + _READ_LIMIT, size)
        out.append(block[start:end])
        start = end
    return out


def _with_env(env: dict[str, str], argv: Sequence[str]) -> str:
    """``DJANGO_SETTINGS_MODULE=x python manage.py …``: the command line with
    the environment ``--settings`` / ``--pythonpath`` set (see
    :meth:`Project.option_env`), shell-quoted."""
    prefix = " ".join(f"{key}={shlex.quote(value)}" for key, value in env.items())
    return f"{prefix} {shlex.join(argv)}" if prefix else shlex.join(argv)
