"""Autoreload: from a saved file to the new code being served.

The :class:`Reloader` sits between the supervisor and the console's state
(:mod:`.session` wires them: supervisor → reloader → recorder → state): it
sees every event (to learn what the server imported and what it watches),
owns the :class:`~.watcher.Watcher`, the two fork servers (see
:mod:`devconsole.child.forkserver`) and one worker thread that turns change
batches into decisions (:class:`ReloadDecision`), one at a time:

* a file a ``file_changed`` receiver handles (a template, a ``.mo``): the
  running server resets its caches, nothing restarts (``handled``);
* a file no generation imported and no app registered: ``ignored``;
* a module only the server imported (views, URLconf): fork a new server
  from the level-1 fork server, which has ``django.setup()`` done (``restarted``);
* a module the level-1 fork server imported during setup (models, settings,
  ``apps.py``): rebuild level 1 first, while the old server keeps serving,
  then fork; a module level 0 imported: rebuild every level.

Level 1 is forked from the *apps level* (a fork server between the two:
the settings imported and ``django.setup()`` held before the project's own
models, every library's models imported): a models edit then costs the
project's models and the apps' ``ready()``, not a large project's libraries
again. A file the apps level holds (the settings, an app's ``apps.py``)
rebuilds it too. It is made at the first rebuild of level 1 after a setup
of :data:`APPS_LEVEL_TRY_MS` or more, and held while what it spares is worth
a process (:data:`APPS_LEVEL_WORTH_MS`). Where it cannot hold the setup (a
library's models need a project's models imported first), level 1 is
forked from level 0 for the session, as before.

The handover keeps the listening socket: the old generation is told to stop
(it stops accepting at once and finishes its requests) and the new one is
started at the same moment, *gated*: it imports the URLconf and builds its
server meanwhile, and accepts once the old one said it accepts nothing more
(``accept``); connections that arrive in between wait in the backlog.
Between reloads a *spare* is forked from level 1 (once the new generation
answered its first request) and gets as far as it can without the URLconf
(runserver resolved, WSGI handler built); a views edit promotes it unless it
imported a changed file. Level 1 also holds the library modules the last
generation imported from outside the project (Wagtail's admin URLconf, DRF),
so that a fork imports only the project's own modules; the project files
such an import pulled in count among level 1's files (see :meth:`Reloader._on_modules`). Where fork is not
safe (no ``os.fork``, threads alive in level 1) the fork comes from level 0
and runs the setup itself; without a usable level 0, a plain spawn does the
same job, slower.

Every reload ends as one ``reload`` event: files, decision, phases
(``detect``: save to batch; ``stop``: stop request to the old generation's
exit; ``start``: decision to the new process existing; ``ready``: from then
to serving), ``duration_ms`` (save to serving), the error if any, and how it
was done: ``level`` (``fork``, ``setup``: level 1 rebuilt, ``full``: both
rebuilt, ``spawn``), ``via`` (the fork server it came from) and ``spare``.
A watcher that fails (an inotify watch limit reached, a root gone) is a
``log`` line on stderr, once per distinct failure.

A serving generation that dies without being asked to (kill -9, a segfault,
``os._exit`` in a view) is explained at once (an ``error`` of phase
:data:`~devconsole.model.state.CRASH_PHASE`: the signal or exit status, and
its last stderr lines; the same as ``log`` lines) and replaced through the
normal start path (a fork, else a spawn) on the same socket, so requests
waiting in the backlog are served. One that keeps dying (a third death each
within :data:`CRASH_WINDOW` seconds of the last) is restarted after a delay
that doubles from :data:`BACKOFF_FIRST` up to :data:`BACKOFF_MAX`; a save or
``r`` starts it at once. One that dies before serving is not restarted: a
save or ``r`` does. A stop the console asked for (a reload, a quit) is no crash.
"""

from __future__ import annotations

import fnmatch
import json
import os
import queue
import threading
import time
from collections import deque
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from enum import Enum, IntEnum
from pathlib import Path
from typing import Any

from devconsole.console.supervisor import (
    EventSink,
    ForkedGeneration,
    ForkServerError,
    ForkServerHandle,
    GenerationHandle,
    SpawnedGeneration,
    Supervisor,
    describe_exit,
)
from devconsole.console.watcher import Watcher, default_roots
from devconsole.model.sanitize import clean_value
from devconsole.model.state import CRASH_PHASE
from devconsole.wire.events import PhaseTiming

#: The apps level is held only when the setup it holds (the settings, the
#: libraries' models) took this long (ms): each models edit is spared that
#: much, for a process held the whole session (~15 MB).
APPS_LEVEL_WORTH_MS = 100.0
#: An apps level is first tried (at a rebuild of level 1, not at the first
#: start) when the last level 1's ``django.setup()`` took this long (ms).
APPS_LEVEL_TRY_MS = 200.0
#: How long a ``file_changed`` question may take before we restart instead.
FILE_CHANGED_TIMEOUT = 2.0
#: How long a change waits for level 1 to stop a preload and say what it
#: holds (beyond that, level 1 is rebuilt: it may hold the old module).
PRELOAD_ANSWER_TIMEOUT = 1.0
#: Python files saved since the apps level was made, remembered at most
#: (see Reloader._changes); past it, the next level 1 is forked from a new one.
MAX_APPS_CHANGES = 4096
#: How long a new generation may take to serve (or fail) before we give up waiting.
SETTLE_TIMEOUT = 60.0
#: Seconds after the new generation said which libraries it imported (once
#: it answered its first request and the page's other requests ended)
#: before the next spare is forked: not to compete for the CPU with the
#: page's first requests (the page, its scripts and stylesheets, a second
#: tab reloading).
SPARE_DELAY = 0.25
#: Seconds after a reload before the spare is forked anyway (a generation
#: serving its error page says nothing): after the latest a generation
#: reports (its first request awaited 1 s, then a quiet moment 1 s, see
#: ``devconsole.child.server``), so that a spare is never forked without what
#: the serving generation used.
SPARE_FALLBACK = 3.0
#: Files of the last saves that the spare imports no module of ahead.
EDITED_KEPT = 64
#: How long a reload's row waits for the old generation's exit (to time its
#: stop); one that drains longer is shown draining meanwhile.
STOPPER_WAIT = 2.0
#: A generation that dies within this many seconds of the previous death
#: (plus the delay before its start) continues a streak of crashes.
CRASH_WINDOW = 10.0
#: The streak's length from which a restart waits: 1 s, then twice as long each time.
BACKOFF_AFTER = 3
BACKOFF_FIRST = 1.0
BACKOFF_MAX = 30.0


def ahead_modules(report: str, edited: Collection[str]) -> list[str]:
    """The project modules for the next spare to import ahead, in the order
    the serving generation imported them: those of its ``project`` report
    (``[[name, file, [indexes of the modules it refers to]], ...]``, see
    :func:`devconsole.child.watchlist.project_imports`) except those whose
    file a recent save changed (``edited``: the next save likely changes one
    again) and every module that refers to one of those, or to a module the
    report does not list, directly or not. Nothing here is a matter of
    correctness: the spare reports the files it then holds, exactly, and
    one a save changes is never served (its twin is)."""
    try:
        entries = json.loads(report) if report else []
    except ValueError:
        return []
    if not isinstance(entries, list):
        return []
    names: list[str] = []
    refers: list[list[int]] = []
    excluded: set[int] = set()
    for index, entry in enumerate(entries):
        valid = (
            isinstance(entry, list)
            and len(entry) == 3
            and isinstance(entry[0], str)
            and isinstance(entry[1], str)
            and isinstance(entry[2], list)
        )
        names.append(entry[0] if valid else "")
        deps = [d for d in entry[2] if isinstance(d, int)] if valid else []
        refers.append(deps)
        if not valid or entry[1] in edited or any(d < 0 or d >= len(entries) for d in deps):
            excluded.add(index)
    referred_by: dict[int, list[int]] = {}
    for index, deps in enumerate(refers):
        for dep in deps:
            referred_by.setdefault(dep, []).append(index)
    pending = list(excluded)
    while pending:
        for importer in referred_by.get(pending.pop(), ()):
            if importer not in excluded:
                excluded.add(importer)
                pending.append(importer)
    return [name for index, name in enumerate(names) if index not in excluded and name]


def backoff_delay(streak: int) -> float:
    """Seconds to wait before restarting after the ``streak``-th quick death in a row."""
    if streak < BACKOFF_AFTER:
        return 0.0
    return min(BACKOFF_FIRST * 2 ** (streak - BACKOFF_AFTER), BACKOFF_MAX)


class RestartLevel(IntEnum):
    """How much a restart rebuilds; the lower, the more (a batch takes the
    lowest its files call for). The ``level`` of a ``reload`` event is
    :attr:`label` (``spawn`` when no fork server made the new generation)."""

    #: Both fork servers rebuilt (a file level 0 imported changed).
    REBUILD0 = 0
    #: Level 1 rebuilt from level 0 (models, settings, ``apps.py``).
    REBUILD1 = 1
    #: Only a new server forked from level 1 (views, URLconf).
    FORK = 2

    @property
    def label(self) -> str:
        return {RestartLevel.REBUILD0: "full", RestartLevel.REBUILD1: "setup", RestartLevel.FORK: "fork"}[self]


class ReloadDecision(str, Enum):
    """The ``decision`` of a ``reload`` event (the value is what travels)."""

    RESTARTED = "restarted"
    HANDLED = "handled"
    IGNORED = "ignored"
    FAILED = "failed"


@dataclass
class Decision:
    """What a batch of changes calls for."""

    level: RestartLevel | None = None  # None: no restart
    restart: list[str] = field(default_factory=list)
    ask: list[str] = field(default_factory=list)  # for file_changed receivers
    ignored: list[str] = field(default_factory=list)


def glob_matches(path: str, directory: str, pattern: str) -> bool:
    """Does ``path`` match ``directory`` + ``pattern`` the way Django's
    ``Path.glob`` would (``**/`` means any depth)?"""
    prefix = directory.rstrip(os.sep) + os.sep
    if not path.startswith(prefix):
        return False
    relative = path[len(prefix) :]
    if pattern.startswith("**/"):
        return fnmatch.fnmatch(os.path.basename(relative), pattern[3:]) or fnmatch.fnmatch(relative, pattern[3:])
    return fnmatch.fnmatch(relative, pattern)


def decide(
    paths: set[str],
    *,
    level0_files: frozenset[str],
    level1_files: frozenset[str] | None,
    server_files: frozenset[str] | None,
    dir_globs: list[tuple[str, str]],
    broken: bool,
) -> Decision:
    """The decision for a batch, from the exact files each process imported.

    ``level1_files`` is None when there is no healthy level 1 (its setup
    failed): any Python change may be the fix, so it is rebuilt.
    ``server_files`` is None when the serving generation has not said yet
    what it imported (it does after its first request): a Python change is
    then not known to be unused, and restarts it. ``broken``:
    the serving generation failed (a syntax error in a view), so any Python
    change gets a new server.
    """
    decision = Decision()
    levels: list[RestartLevel] = []
    for path in sorted(paths):
        if path.endswith(".py"):
            if path in level0_files:
                levels.append(RestartLevel.REBUILD0)
            elif level1_files is None or path in level1_files:
                levels.append(RestartLevel.REBUILD1)
            elif server_files is None or path in server_files or broken:
                levels.append(RestartLevel.FORK)
            else:
                decision.ignored.append(path)
                continue
            decision.restart.append(path)
        elif any(glob_matches(path, d, g) for d, g in dir_globs):
            decision.ask.append(path)
        else:
            decision.ignored.append(path)
    if levels:
        decision.level = min(levels)
    return decision


class Reloader:
    """Watches, decides and restarts; see the module docstring.

    Its :meth:`on_event` takes the supervisor's events and passes those the
    console shows on to ``sink``, with the reloader's own (``reload``, its
    ``log`` lines); :mod:`.session` wires it so.
    """

    def __init__(
        self, supervisor: Supervisor, sink: EventSink, *, watch: bool = True, use_fork: bool | None = None
    ) -> None:
        self.supervisor = supervisor
        self._sink = sink
        self.use_fork = (hasattr(os, "fork") and os.name == "posix") if use_fork is None else use_fork
        self.watcher: Watcher | None = Watcher(self._on_batch, on_error=self._on_watch_error) if watch else None
        self.level0: ForkServerHandle | None = None
        #: The apps level level 1 is forked from (None: from level 0).
        self.apps: ForkServerHandle | None = None
        #: Whether level 1 is forked from an apps level: off for the session
        #: once a setup that failed there worked whole, or when it is not worth
        #: holding (:data:`APPS_LEVEL_WORTH_MS`). ``DEVCONSOLE_APPS_LEVEL=0``:
        #: off; ``=1``: held however short the setup it holds.
        self.use_apps = os.environ.get("DEVCONSOLE_APPS_LEVEL") != "0"
        self.always_apps = os.environ.get("DEVCONSOLE_APPS_LEVEL") == "1"
        #: An apps level was worth holding once this session: made again
        #: whenever level 1 is rebuilt, whatever a later measure says.
        self.apps_worth = False
        #: Whether the apps level imports, while idle, the libraries a level
        #: 1's setup imported that are no installed app's (see
        #: ForkServer._preload); off for the session once that left it with
        #: threads. ``DEVCONSOLE_APPS_PRELOAD=0``: off.
        self.apps_preload = os.environ.get("DEVCONSOLE_APPS_PRELOAD") != "0"
        #: What the current apps level was asked to import, and the Python
        #: files saved since it was made (None: more than
        #: :data:`MAX_APPS_CHANGES`).
        self._apps_preloaded: set[str] = set()
        self._apps_changes: set[str] | None = set()
        self.level1: ForkServerHandle | None = None
        self._preloaded: set[str] = set()
        #: Whether level 0 imports, while idle, the libraries level 1 used.
        #: Off by default: importing third-party modules without settings
        #: left Wagtail half-imported (now undone on failure, and a setup
        #: that fails after a preload is retried without), and on this
        #: 2-CPU machine no gain for a level-1 rebuild could be measured.
        #: ``DEVCONSOLE_PRELOAD=1`` turns it on.
        self.preload_enabled = os.environ.get("DEVCONSOLE_PRELOAD") == "1"
        #: Whether level 1 imports, while idle, the library modules the last
        #: generation imported from outside the project (see
        #: :meth:`_on_modules`); off for the session once that left level 1
        #: with threads (not forkable). Off by default: a preload that
        #: crosses a save, a failed preload import and a library importing
        #: project modules are not yet proven never to serve stale code.
        #: ``DEVCONSOLE_HOLD_LIBRARIES=1`` turns it on.
        self.hold_libraries = os.environ.get("DEVCONSOLE_HOLD_LIBRARIES") == "1"
        #: Whether the spare imports ahead the libraries the serving
        #: generation used; off for the session once one of them built
        #: template engines when imported (see ForkServer._spare_preload).
        self.preload_spares = True
        supervisor.on_modules = self._on_modules
        #: The last generations' ``modules`` reports: (generation, names).
        self.modules_reports: deque[tuple[int, list[str]]] = deque(maxlen=8)
        self.server_files: frozenset[str] = frozenset()
        #: The generation :attr:`server_files` came from: until the serving
        #: one has said what it imported, any Python change restarts it.
        self.server_files_generation = 0
        self.dir_globs: list[tuple[str, str]] = []
        self._reported_roots: list[str] = []
        self._ignore: list[str] = []
        self._jobs: queue.Queue[tuple[str, set[str], float] | None] = queue.Queue()
        self._answers: dict[str, queue.Queue[bool]] = {}
        self._answers_lock = threading.Lock()
        self._worker: threading.Thread | None = None
        #: Held while a job runs (on the worker, or on the watcher's thread).
        self._job_lock = threading.Lock()
        self._stopping = threading.Event()
        self._finishers: list[threading.Thread] = []
        #: A server child forked from level 1 ahead of the next reload, with
        #: runserver resolved and its handler built, waiting for ``go``.
        self.spare: ForkedGeneration | None = None
        #: The files the last saves changed, newest last (at most
        #: :data:`EDITED_KEPT`): the spare imports none of them ahead, nor any
        #: module that imports one (see :func:`ahead_modules`).
        self.edited: dict[str, None] = {}
        self._spare_timer: threading.Timer | None = None
        self._spare_due = 0.0
        self._spare_lock = threading.Lock()
        #: Crashes: the current streak's length, when it began and the last
        #: death (monotonic), the delay before the last restart, and the timer of a delayed one.
        self._streak = 0
        self._streak_began = 0.0
        self._last_death = 0.0
        self._last_delay = 0.0
        self._crash_timer: threading.Timer | None = None
        self._crash_lock = threading.Lock()
        #: Told of every batch that changes Python files of the project (the
        #: paths), before the server's restart: the session restarts the side
        #: processes declared ``restart_on_change`` with it (a Celery worker).
        self.on_code_change: Callable[[list[str]], object] | None = None
        #: Called (on the reloader's thread) when a restart begins, and when
        #: its new generation has answered ``hello`` (or failed): the app
        #: holds its redraws meanwhile (see DevConsoleApp.hold_refresh).
        self.on_restart: Callable[[], object] | None = None
        self.on_restarted: Callable[[], object] | None = None

    # ------------------------------------------------------------ lifecycle
    def start(self) -> None:
        """Start the first generation and the watch (returns at once)."""
        self._worker = threading.Thread(target=self._run, name="devconsole-reloader", daemon=True)
        self._worker.start()
        self._jobs.put(("start", set(), time.time()))
        if self.watcher is not None:
            self.watcher.set_roots(default_roots(self.supervisor.project.root))
            self.watcher.start()

    def restart(self) -> None:
        """A restart asked for by hand (``r``): everything is set up afresh."""
        self._jobs.put(("manual", set(), time.time()))

    def stop(self) -> None:
        """Stop watching, the worker, the server child and the fork servers."""
        self._stopping.set()
        if self._spare_timer is not None:
            self._spare_timer.cancel()
        self._cancel_crash_timer()
        if self.watcher is not None:
            self.watcher.stop()
        self._jobs.put(None)
        if self._worker is not None:
            # A reload in progress normally ends quickly; one stuck in the
            # project's setup is cut short by closing the fork servers below.
            self._worker.join(timeout=5)
        self.supervisor.stop()
        for forkserver in (self.level1, self.apps, self.level0):
            if forkserver is not None:
                forkserver.close()
        if self._worker is not None:
            self._worker.join(timeout=5)
        self.supervisor.stop()  # one the worker may have started meanwhile
        self._discard_spare()
        for thread in self._finishers:
            thread.join(timeout=3)
        self.level0 = self.apps = self.level1 = None

    # --------------------------------------------------------------- events
    def on_event(self, event: dict[str, Any]) -> None:
        """An event from the supervisor: learn from it, pass it on (or drop
        it: a spare's, which the console does not show)."""
        kind = event.get("type")
        if kind == "spare_failed" and event.get("unsafe_preload") and self.preload_spares:
            self.preload_spares = False
            self._log(
                "devconsole: a library builds template engines when it is imported;"
                " the spare imports no library ahead this session"
            )
            self._jobs.put(("spare", set(), 0.0))  # another, without them, at once
        if kind in ("spare_ready", "spare_ahead", "spare_failed"):
            return  # recorded on the spare's handle by its reader
        if event.get("generation") == 0:
            return  # a spare not promoted (yet): nothing the console shows
        if kind == "watch" and event.get("generation") == self.supervisor.generation:
            self.server_files = frozenset(event.get("files") or ())
            self.server_files_generation = self.supervisor.generation
            self.dir_globs = [(str(d), str(g)) for d, g in event.get("dir_globs") or []]
            self._reported_roots = list(event.get("roots") or [])
            self._ignore = list(event.get("ignore") or [])
            self._update_roots()
        elif kind == "file_changed":
            with self._answers_lock:
                waiting = self._answers.get(str(event.get("path")))
            if waiting is not None:
                waiting.put(bool(event.get("handled")))
        elif kind == "exit":
            # Explained before the exit itself: the state then knows the
            # requests it cuts were cut by a crash, not by a stop.
            self._on_exit(event)
        self._sink(event)

    # -------------------------------------------------------------- crashes
    def _on_exit(self, event: dict[str, Any]) -> None:
        """The serving generation exited: unless the console asked it to,
        say why and start the next one (at once, or after a backoff)."""
        child = self.supervisor.child
        generation = event.get("generation")
        if child is None or child.generation != generation or child.stop_requested or self._stopping.is_set():
            return
        served = child.hello_event is not None
        now = time.monotonic()
        delay = 0.0
        with self._crash_lock:
            if served:
                if self._streak and now - self._last_death <= CRASH_WINDOW + self._last_delay:
                    self._streak += 1
                else:
                    self._streak, self._streak_began = 1, now
                self._last_death = now
                delay = self._last_delay = backoff_delay(self._streak)
        if not served:
            then = "not restarted, as it died before serving: save a file or press r to start it"
        elif delay:
            span = max(1, round(now - self._streak_began))
            then = f"server child died {self._streak} times in {span} s: next start in {delay:g} s (r: now)"
        else:
            then = "restarting now"
        cause = describe_exit(event.get("returncode"))
        message = f"generation {generation} (pid {child.pid}) {cause}; {then}"
        tail = list(child.stderr_tail)
        ts = time.time()
        # Texts already clean: the tail was sanitized as it was read, the rest is ours.
        self._sink(
            {
                "type": "error",
                "phase": CRASH_PHASE,
                "message": message,
                "traceback": "\n".join(tail),
                "generation": generation,
                "ts": ts,
            }
        )
        lines = [f"devconsole: server child died: {message}"]
        if tail:
            lines.append("devconsole: its last lines on stderr:")
            lines += [f"  | {line}" for line in tail]
        for line in lines:
            self._sink({"type": "log", "stream": "stderr", "text": line, "generation": generation, "ts": ts})
        if not served:
            return
        if delay:
            timer = threading.Timer(delay, lambda: self._jobs.put(("crash", set(), time.time())))
            timer.daemon = True
            with self._crash_lock:
                self._cancel_crash_timer()
                self._crash_timer = timer
            timer.start()
        else:
            self._jobs.put(("crash", set(), time.time()))

    def _cancel_crash_timer(self) -> None:
        timer, self._crash_timer = self._crash_timer, None
        if timer is not None:
            timer.cancel()

    def _crash_restart(self) -> None:
        """The next generation after a crash, unless one already serves."""
        if self._serving():
            return
        self._restart([], RestartLevel.FORK, detect_ms=0.0, saved=0.0)

    def _update_roots(self, extra: list[str] | None = None) -> None:
        if self.watcher is None:
            return
        roots = default_roots(self.supervisor.project.root) + self._reported_roots + (extra or [])
        self.watcher.set_roots(roots, self._ignore)

    def _on_batch(self, paths: set[str], delivered: float) -> None:
        # Acted on here, on the watcher's thread, when nothing else is to be
        # done first: waking the worker thread took milliseconds of a save's
        # reload while the UI was busy. (The watcher reads the next changes
        # once this one is served; they then make one batch, as queued ones do.)
        if self._job_lock.acquire(blocking=False):
            try:
                if self._jobs.empty() and not self._stopping.is_set():
                    self._do({"changes"}, paths, delivered)
                    return
            finally:
                self._job_lock.release()
        self._jobs.put(("changes", paths, delivered))

    def _on_watch_error(self, error: str) -> None:
        """The watcher failed (it retries): say so, autoreload is off meanwhile."""
        self._log(f"devconsole: watching files for autoreload failed ({error}); retrying")

    def _log(self, text: str) -> None:
        self._own({"type": "log", "stream": "stderr", "text": text, "ts": time.time()})

    def _emit(self, event: dict[str, Any]) -> None:
        event.setdefault("type", "reload")
        self._own(event)

    def _own(self, event: dict[str, Any]) -> None:
        """An event of the reloader's own: its paths and error texts come from
        the file system and exceptions, so they are cleaned here, where they enter."""
        event.setdefault("ts", time.time())
        self._sink(clean_value(event))

    # --------------------------------------------------------------- worker
    def _run(self) -> None:
        while True:
            job = self._jobs.get()
            if job is None or self._stopping.is_set():
                return
            kind, paths, delivered = job
            kinds = {kind}
            # Changes that piled up during the last reload make one batch.
            while True:
                try:
                    more = self._jobs.get_nowait()
                except queue.Empty:
                    break
                if more is None:
                    return
                kinds.add(more[0])
                paths |= more[1]
                delivered = max(delivered, more[2])
            with self._job_lock:
                self._do(kinds, paths, delivered)

    def _do(self, kinds: set[str], paths: set[str], delivered: float) -> None:
        """One job (or several that piled up), on whichever thread has the job lock."""
        kind = next(k for k in ("start", "manual", "changes", "crash", "spare") if k in kinds)
        try:
            if kind == "spare":
                self._make_spare()
            elif kind == "start":
                self._first_start()
            elif kind == "manual":
                self._restart(sorted(paths), RestartLevel.REBUILD0, detect_ms=0.0, saved=delivered)
            elif kind == "crash":
                self._crash_restart()
            else:
                self._changes(paths, delivered)
                if "crash" in kinds:
                    self._crash_restart()
        except Exception as exc:
            self._emit(
                {
                    "files": sorted(paths),
                    "decision": ReloadDecision.FAILED.value,
                    "error": f"{type(exc).__name__}: {exc}",
                    "duration_ms": None,
                    "phases": {},
                    "new_generation": None,
                }
            )

    def _first_start(self) -> None:
        if self.use_fork:
            try:
                self._build(RestartLevel.REBUILD0)
                source = self._fork_source()
                child = source.serve(self.supervisor.next_generation())
                self.supervisor.adopt(child)
                child.settled.wait(SETTLE_TIMEOUT)
                self._maybe_preload()
                self._schedule_spare()
                return
            except ForkServerError as exc:
                self._drop_forkservers()
                self._log(f"devconsole: fork server unavailable ({exc}); spawning instead")
        self.supervisor.start()

    def _changes(self, paths: set[str], delivered: float) -> None:
        saved = _saved_at(paths, delivered)
        python_files = sorted(path for path in paths if path.endswith(".py"))
        spare = self.spare
        if spare is not None and len(python_files) < len(paths):
            # A file other than Python's (a template, a JSON file a module
            # reads when imported): what the spare imported ahead may have
            # read it before. Its twin would serve the next save: a fresh
            # spare follows, unless a restart comes first.
            spare.ahead_stale = True
            if spare.spare_twin:
                self._schedule_spare(SPARE_FALLBACK)
        if python_files and self.on_code_change is not None:
            self.on_code_change(python_files)
        for path in paths:
            if path.endswith(".py"):
                _forget_bytecode(path)
        detect_ms = round(max(0.0, delivered - saved) * 1000, 1)
        level1_files: frozenset[str] | None = None
        level1 = self.level1
        if level1 is not None and level1.preloading and python_files:
            # What level 1 holds is known only once it says so: it stops
            # importing and answers (else it is rebuilt, see below).
            level1.finish_preload(PRELOAD_ANSWER_TIMEOUT)
        if self.apps is not None and python_files and self._apps_changes is not None:
            # What the apps level imported ahead may have pulled in one of
            # these (the current level 1, forked before, did not inherit
            # it): the next level 1 is forked from it only if it holds none
            # (past a bound, from a new one).
            self._apps_changes.update(python_files)
            if len(self._apps_changes) > MAX_APPS_CHANGES:
                self._apps_changes = None
        if level1 is not None and level1.setup_ok and not (level1.preloading and python_files):
            # Read after ``preloading``: its files are set before it clears.
            # (What an apps level holds, the level 1 forked from it lists
            # too: it inherited those modules, and an apps level is only
            # ever held as the current level 1's parent, both made under
            # the job lock this runs under.)
            level1_files = level1.files
        elif not self.use_fork or self.level0 is None:
            level1_files = frozenset()  # plain spawns: every restart is complete
        decision = decide(
            paths,
            level0_files=self.level0.files if self.level0 is not None else frozenset(),
            level1_files=level1_files,
            server_files=self.server_files if self.server_files_generation == self.supervisor.generation else None,
            dir_globs=self.dir_globs,
            broken=self._broken(),
        )
        if decision.level is None and decision.ask:
            unhandled = [p for p in decision.ask if not self._ask(p)]
            if not unhandled:
                self._emit(
                    {
                        "files": decision.ask,
                        "decision": ReloadDecision.HANDLED.value,
                        "duration_ms": detect_ms,
                        "phases": {"detect": detect_ms},
                        "error": None,
                        "new_generation": None,
                    }
                )
                return
            decision.level = RestartLevel.FORK
            decision.restart += unhandled
        if decision.level is None and not self._serving():
            # Nothing serves (a crash, in its backoff): a save starts it at once.
            decision.level = RestartLevel.FORK
            decision.restart += decision.ignored
        if decision.level is None:
            self._emit(
                {
                    "files": decision.ignored,
                    "decision": ReloadDecision.IGNORED.value,
                    "duration_ms": None,
                    "phases": {"detect": detect_ms},
                    "error": None,
                    "new_generation": None,
                }
            )
            return
        self._restart(decision.restart + decision.ask, decision.level, detect_ms=detect_ms, saved=saved)

    def _serving(self) -> bool:
        child = self.supervisor.child
        return child is not None and child.alive

    def _broken(self) -> bool:
        child = self.supervisor.child
        if child is None:
            return True
        if child.error_event is not None or not child.alive:
            return True
        hello = child.hello_event
        return bool(hello and hello.get("urlconf_error"))

    def _ask(self, path: str) -> bool:
        """Ask the serving generation's ``file_changed`` receivers about ``path``."""
        child = self.supervisor.child
        if child is None or not child.alive:
            return False
        answer: queue.Queue[bool] = queue.Queue()
        with self._answers_lock:
            self._answers[path] = answer
        try:
            child.send(f"file_changed {path}")
            return answer.get(timeout=FILE_CHANGED_TIMEOUT)
        except queue.Empty:
            return False
        finally:
            with self._answers_lock:
                self._answers.pop(path, None)

    # ----------------------------------------------------------- restarting
    def _usable(self, forkserver: ForkServerHandle | None) -> bool:
        return forkserver is not None and not forkserver.dead.is_set() and not forkserver.unsafe

    def _build(self, level: RestartLevel, files: Collection[str] = ()) -> list[PhaseTiming]:
        """Make the fork servers current for ``level`` and the changed
        ``files`` (the old server keeps serving); returns what the
        rebuilding took, step by step."""
        steps: list[PhaseTiming] = []
        if level <= RestartLevel.REBUILD0 or not self._usable(self.level0):
            began = time.perf_counter()
            old0, self.level0 = self.level0, ForkServerHandle.spawn(self.supervisor)
            ready = self.level0.wait_ready()
            steps.append(_step("Python with Django imported", began))
            if not ready.get("forkable"):
                raise ForkServerError(f"level 0 has {ready.get('threads')} threads")
            self._preloaded = set()
            level = RestartLevel.REBUILD1
            self._retire(self.apps)
            self.apps = None
            self._retire(old0)
        if self.level1 is not None and self.level1.unsafe and self.level1.preloaded:
            self.hold_libraries = False  # a library started a thread there: not again
        if level <= RestartLevel.REBUILD1 or not self._usable(self.level1):
            assert self.level0 is not None
            self._discard_spare()  # forked from the level 1 being replaced
            parent, apps_failed = self._apps_level(files, steps)
            began = time.perf_counter()
            old1, self.level1 = self.level1, parent.fork_level1()
            self.level1.wait_ready()
            if self.level1.setup_failed and self._preloaded:
                # The libraries level 0 imported ahead (without settings) may
                # be what broke the setup: confirm with a level 0 that did not.
                self._retire(self.level1)
                self._retire(self.apps)
                self.apps = None
                self._retire(self.level0)
                steps.append(_step("a setup that failed with libraries imported ahead", began))
                began = time.perf_counter()
                self.preload_enabled = False
                self._preloaded = set()
                self.level0 = ForkServerHandle.spawn(self.supervisor)
                if not self.level0.wait_ready().get("forkable"):
                    raise ForkServerError("level 0 is not single-threaded")
                self.level1 = self.level0.fork_level1()
                self.level1.wait_ready()
            if self.level1.setup_failed:
                self._update_roots(list((self.level1.ready or {}).get("files") or []))
            elif apps_failed and parent is self.level0:
                # Whole, the setup works: the apps level cannot hold it (a
                # library's models need the project's first). Not tried again.
                self.use_apps = False
                self._log(f"devconsole: the apps level {apps_failed}; a models edit sets Django up whole this session")
            self._retire(old1)
            # The setup's own phases (settings import, django.setup()…), and
            # the rest of the wait (the fork, the messages) as one more step.
            own = _phases((self.level1.ready or {}).get("phases"))
            steps += own
            rest = (time.perf_counter() - began) * 1000 - sum(step["ms"] for step in own)
            if rest >= 0.05:
                steps.append({"name": "level 1 fork", "ms": round(rest, 1)})
        return steps

    def _apps_level(self, files: Collection[str], steps: list[PhaseTiming]) -> tuple[ForkServerHandle, str]:
        """What the next level 1 is forked from: the apps level, made anew
        when it holds one of the changed ``files`` (or is gone), else level 0
        (no apps level: off, not worth it, or it could not hold the setup; see
        :meth:`devconsole.child.forkserver.ForkServer._hold_before_project_models`),
        and why an apps level made now could not hold the setup ("": it could,
        or none was made)."""
        assert self.level0 is not None
        apps = self.apps
        if not self.use_apps:
            return self.level0, ""
        if apps is not None and apps.unsafe and apps.preloaded:
            self.apps_preload = False  # a library started a thread there: not again
        if apps is not None and apps.preloading and not apps.finish_preload(PRELOAD_ANSWER_TIMEOUT):
            apps.unsafe = True  # what it holds is not known: not forked from
        if (
            apps is not None
            and self._usable(apps)
            and apps.setup_ok
            and self._apps_changes is not None
            and not apps.files.intersection({*files, *self._apps_changes})
        ):
            return apps, ""
        self._retire(apps)
        self.apps = None
        level1 = (self.level1.ready or {}) if self.level1 is not None else None
        if level1 is not None and level1.get("reactor"):
            return self.level0, ""  # Daphne: a Twisted reactor, installed before any models import
        if (
            apps is None
            and not (self.always_apps or self.apps_worth)
            and (level1 is None or self._setup_ms() < APPS_LEVEL_TRY_MS)
        ):
            # The first start (nothing measured yet), or a setup too short
            # for the part an apps level would hold to matter.
            return self.level0, ""
        began = time.perf_counter()
        apps = None
        try:
            # Held by the reloader from the start: a stop meanwhile closes it.
            apps = self.apps = self.level0.fork_level1(apps=True)
            ready = apps.wait_ready()
            if self._stopping.is_set():
                raise ForkServerError("the console is stopping")
        except ForkServerError as exc:
            ready = {"op": "failed", "message": str(exc)}
        self.apps = None
        own = _phases(ready.get("phases"))
        why_not = ""
        if ready.get("op") != "ready":
            # Told in the log only if level 1 then sets Django up whole.
            why_not = f"cannot be held before the project's models ({ready.get('message')})"
        elif not ready.get("forkable"):
            reason = "a Twisted reactor" if ready.get("reactor") else f"{ready.get('threads')} threads"
            why_not = f"is not safe to fork ({reason})"
        if why_not or apps is None:
            self._retire(apps)
            steps.append(_step("the apps level, which could not hold the setup", began))
            return self.level0, why_not
        held_ms = sum(step["ms"] for step in own if step["name"] != "manage.py")
        if held_ms < APPS_LEVEL_WORTH_MS and not (self.always_apps or self.apps_worth):
            # A small project: what the apps level would spare a models edit
            # is not worth a process held for the session (decided once).
            self.use_apps = False
            self._retire(apps)
            steps.append(_step("the apps level, not worth holding", began))
            return self.level0, ""
        self.apps, self.apps_worth = apps, True
        self._apps_preloaded, self._apps_changes = set(), set()
        steps += own
        rest = (time.perf_counter() - began) * 1000 - sum(step["ms"] for step in own)
        if rest >= 0.05:
            steps.append({"name": "apps level fork", "ms": round(rest, 1)})
        return apps, ""

    def _setup_ms(self) -> float:
        """How long the current level 1's part of ``django.setup()`` took (0: unknown)."""
        phases = _phases((self.level1.ready or {}).get("phases")) if self.level1 is not None else []
        return sum(phase["ms"] for phase in phases if phase["name"] == "django.setup()")

    def _retire(self, forkserver: ForkServerHandle | None) -> None:
        """Let an old fork server go once the children it forked have exited."""
        if forkserver is not None:
            thread = threading.Thread(
                target=forkserver.close, kwargs={"wait": True}, name="devconsole-retire", daemon=True
            )
            thread.start()
            self._finishers.append(thread)

    def _drop_forkservers(self) -> None:
        for forkserver in (self.level1, self.apps, self.level0):
            if forkserver is not None:
                forkserver.close()
        self.level0 = self.apps = self.level1 = None

    def _fork_source(self) -> ForkServerHandle:
        """Level 1 when it can fork safely (or must serve its own error);
        level 0 (which then runs the whole setup in the child) otherwise."""
        assert self.level0 is not None and self.level1 is not None
        if self.level1.setup_failed or (self.level1.ready or {}).get("forkable"):
            return self.level1
        return self.level0

    def _restart(self, files: list[str], level: RestartLevel, *, detect_ms: float, saved: float) -> None:
        with self._crash_lock:
            self._cancel_crash_timer()  # a delayed restart after crashes: this one replaces it
        started = time.perf_counter()
        if self.on_restart is not None:
            self.on_restart()
        old = self.supervisor.child
        source: ForkServerHandle | None = None
        steps: list[PhaseTiming] = [{"name": "change noticed", "ms": round(detect_ms, 1)}]
        if self.use_fork:
            try:
                steps += self._build(level, files)
                source = self._fork_source()
            except ForkServerError as exc:
                self._drop_forkservers()
                self.use_fork = False
                self._log(f"devconsole: fork server unavailable ({exc}); spawning instead")
        stop_started = time.perf_counter()
        stopped: list[float] = []
        spare: ForkedGeneration | None = None
        twin = False
        if self.use_fork:
            # The old generation is told to stop as the next one starts: from
            # then on it accepts nothing, and it drains its requests in flight
            # however long they take. The next one starts gated: it imports
            # the URLconf and builds its server while the old one stops, and
            # accepts only once that one said it accepts nothing more, so no
            # request can reach old code once the new one serves.
            assert source is not None
            self._note_edited(files)
            spare, twin = (
                self._take_spare(files) if level == RestartLevel.FORK and source is self.level1 else (None, False)
            )
            gated = old is not None
            # The old generation lets the next one in itself, through a pipe
            # (see Supervisor.retire); ``accept`` below follows, with the
            # templates to load early, and lets it in if the pipe did not.
            gate_r, gate_w = os.pipe() if gated else (-1, -1)
            if spare is not None:
                # Told first (one message): it imports the URLconf while the
                # old generation is told to stop.
                spare.promote(self.supervisor.next_generation(), gated=gated, twin=twin)
                if gated:
                    spare.gate(gate_r)
            else:
                self._discard_spare()
            stopper = (
                self._stopper(old, stop_started, stopped, wait_stopping=False, gate=gate_w) if old is not None else None
            )
            if gated:
                os.close(gate_w)
            try:
                child: GenerationHandle = (
                    spare if spare is not None else source.serve(self.supervisor.next_generation(), gated=gated)
                )
                if gated and spare is None:
                    child.gate(gate_r)
                start_ms = (time.perf_counter() - started) * 1000
                if old is not None:
                    # Let in by old's reader as soon as it says stopping (or
                    # here, once it has: accept is sent once).
                    old.successor = child
                    self.supervisor.wait_stopping(old)
                    child.accept(old.warm_names)
            except ForkServerError as exc:
                # The old generation is already stopping: something must serve.
                self._drop_forkservers()
                self.use_fork = False
                self._log(f"devconsole: fork server lost ({exc}); spawning instead")
                if old is not None:
                    self.supervisor.wait_stopping(old)
                child = SpawnedGeneration(self.supervisor, self.supervisor.next_generation())
                start_ms = (time.perf_counter() - started) * 1000
            finally:
                if gated:
                    os.close(gate_r)
            self.supervisor.adopt(child)
        else:
            stopper = self._stopper(old, stop_started, stopped) if old is not None else None
            child = self.supervisor.start()
            start_ms = (time.perf_counter() - started) * 1000
        ready_from = time.perf_counter()
        child.settled.wait(SETTLE_TIMEOUT)
        ready_ms = (time.perf_counter() - ready_from) * 1000
        if self.on_restarted is not None:
            self.on_restarted()
        served_at = time.time()
        hello = child.hello_event
        error: str | None = None
        if child.error_event is not None:
            error = str(child.error_event.get("message"))
        elif hello is None:
            error = "the server exited before serving" if not child.alive else "the server did not start in time"
        elif hello.get("urlconf_error"):
            error = str(hello["urlconf_error"])
        if hello is not None:
            # A spare's preparation (its first ``ahead`` phases) was done
            # before the change: none of this reload's time.
            ahead = hello.get("ahead")
            steps += _phases(hello.get("phases"))[ahead if isinstance(ahead, int) and ahead > 0 else 0 :]
        event = {
            "files": files,
            "decision": (ReloadDecision.FAILED if error else ReloadDecision.RESTARTED).value,
            "error": error,
            "new_generation": child.generation,
            "level": level.label if isinstance(child, ForkedGeneration) else "spawn",
            # Which process the new generation came from: level 1 (setup done),
            # level 0 (the fork ran the setup: level 1 had threads) or a spawn.
            "via": ("level 1" if source is self.level1 else "level 0")
            if isinstance(child, ForkedGeneration)
            else "spawn",
            # A spare was forked and prepared before the change: only the
            # URLconf and serving were left to do.
            "spare": child is spare if self.use_fork else False,
            # Its twin served: the save changed a module it had imported ahead.
            "twin": bool(spare is not None and child is spare and twin),
            "duration_ms": round((served_at - saved) * 1000, 1) if saved else None,
            "steps": steps,
        }
        finisher = threading.Thread(
            target=self._finish_event,
            args=(
                event,
                stopper,
                stopped,
                {"detect": detect_ms, "start": round(start_ms, 1), "ready": round(ready_ms, 1)},
                stop_started,
            ),
            name="devconsole-reload-event",
            daemon=True,
        )
        finisher.start()
        self._finishers = [t for t in self._finishers if t.is_alive()] + [finisher]
        self._maybe_preload()
        self._schedule_spare()

    # ---------------------------------------------------------------- spare
    def _schedule_spare(self, delay: float | None = None) -> None:
        """Fork the spare in ``delay`` seconds (:data:`SPARE_FALLBACK` unless
        said; or sooner: a plan due earlier is kept, one due later is
        replaced)."""
        if not self.use_fork or self._stopping.is_set():
            return
        if delay is None:
            delay = SPARE_FALLBACK
        with self._spare_lock:
            due = time.monotonic() + delay
            if self._spare_timer is not None:
                if self._spare_timer.is_alive() and self._spare_due <= due:
                    return
                self._spare_timer.cancel()
            self._spare_due = due
            self._spare_timer = threading.Timer(delay, lambda: self._jobs.put(("spare", set(), 0.0)))
            self._spare_timer.daemon = True
            self._spare_timer.start()

    def _make_spare(self) -> None:
        """Fork the next generation ahead of time, if level 1 can be forked
        (and once it holds the libraries it was asked to import: a spare
        forked before would import them again)."""
        level1 = self.level1
        spare = self.spare
        if (
            spare is not None
            and spare.alive
            and not spare.spare_failed
            and not (spare.spare_twin and spare.ahead_stale)
        ):
            if level1 is None or spare.forkserver is not level1 or spare.preloads == level1.preloads_done:
                if spare.hints_of == self._reported():
                    return
                # Forked before the serving generation's reports came (its
                # fallback timer was first): the next one is forked with them.
        if level1 is not None and level1.preloading:
            return  # made when the preload is answered (see _on_preloaded)
        self._discard_spare()
        if not self.use_fork or level1 is None or level1.dead.is_set():
            return
        if not level1.setup_ok or not (level1.ready or {}).get("forkable") or level1.unsafe:
            return  # never fork from a level 1 that a preload left with threads
        serving = self.supervisor.child
        preload: list[str] = []
        patterns = normalized = ""
        sources: list[str] = []
        if serving is not None:
            # What the serving generation used beyond level 1: the spare has it
            # ready, and a view edit imports and compiles the project's alone.
            if self.preload_spares:
                preload = [
                    name
                    for generation, names in self.modules_reports
                    if generation == serving.generation
                    for name in names
                ]
            patterns, normalized = serving.patterns, serving.normalized
            if self.server_files_generation == serving.generation:
                sources = sorted(path for path in self.server_files if path.endswith(".py"))
        ahead = ahead_modules(serving.project_modules, self.edited) if serving is not None else []
        try:
            self.spare = level1.serve(
                0, spare=True, preload=preload, patterns=patterns, normalized=normalized, sources=sources, ahead=ahead
            )
        except ForkServerError:
            self.spare = None
        else:
            self.spare.hints_of = self._reported()

    def _reported(self) -> int | None:
        """The serving generation, once it reported what it imported after
        its first request (the hints a spare is forked with), else None."""
        serving = self.supervisor.child
        if serving is None or not any(generation == serving.generation for generation, _ in self.modules_reports):
            return None
        return serving.generation

    def _take_spare(self, files: list[str]) -> tuple[ForkedGeneration | None, bool]:
        """The spare, if it can serve this change: ready, from the current
        level 1, and none of the changed files among those it imported; and
        whether its twin serves instead (a changed file among those the
        spare imported ahead, or not all imported yet, but none among the
        twin's)."""
        spare, self.spare = self.spare, None
        if spare is None:
            return None, False
        changed = set(files)
        ready = (
            spare.alive
            and spare.forkserver is self.level1
            and spare.spare_files is not None
            and not spare.spare_failed
            and not (changed & spare.spare_files)
        )
        if ready and spare.spare_twin:
            ahead = spare.ahead_files
            return spare, ahead is None or spare.ahead_stale or bool(changed & ahead)
        if ready:
            return spare, False
        self.spare = spare
        return None, False

    def _note_edited(self, files: list[str]) -> None:
        for path in files:
            self.edited.pop(path, None)
            self.edited[path] = None
        while len(self.edited) > EDITED_KEPT:
            del self.edited[next(iter(self.edited))]

    def _discard_spare(self) -> None:
        spare, self.spare = self.spare, None
        if spare is not None:
            thread = threading.Thread(target=spare.stop, name="devconsole-discard-spare", daemon=True)
            thread.start()
            self._finishers.append(thread)

    def _stopper(
        self,
        old: GenerationHandle,
        started: float,
        stopped: list[float],
        *,
        wait_stopping: bool = True,
        gate: int | None = None,
    ) -> threading.Thread:
        """Retire ``old`` (see :meth:`Supervisor.retire`, and ``gate`` there);
        ``stopped`` gets the ms from ``started`` to its exit."""
        drain = self.supervisor.retire(old, wait_stopping=wait_stopping, gate=gate)

        def run() -> None:
            drain.join()
            stopped.append((time.perf_counter() - started) * 1000)

        thread = threading.Thread(target=run, name="devconsole-stop-old", daemon=True)
        thread.start()
        self._finishers.append(thread)
        return thread

    def _finish_event(
        self,
        event: dict[str, Any],
        stopper: threading.Thread | None,
        stopped: list[float],
        phases: dict[str, float],
        stop_started: float,
    ) -> None:
        """Emit the reload event once the old generation is gone too (its
        stop time is one of the phases); the new one is already serving."""
        if stopper is not None:
            # An old generation that drains a long request does not hold the
            # row back: its stop phase is then the time so far (the state
            # shows it draining, and a log line when it is done).
            stopper.join(STOPPER_WAIT)
        phases["stop"] = round(stopped[0] if stopped else (time.perf_counter() - stop_started) * 1000, 1)
        event["phases"] = {k: phases[k] for k in ("detect", "stop", "start", "ready")}
        self._emit(event)

    def _on_modules(self, child: GenerationHandle, names: list[str]) -> None:
        """The serving generation imported these library modules that its
        fork server did not hold: the next spare imports them before the save
        (and level 1 too, while idle, when it holds libraries), so that the
        next generation only imports the project's own modules (a view edit
        on a Wagtail site no longer imports Wagtail's admin URLconf)."""
        self.modules_reports.append((child.generation, names))
        if child is self.supervisor.child:
            # Its first request is answered: the spare follows shortly (or
            # once level 1 holds these libraries, see _on_preloaded), and the
            # apps level imports the libraries level 1's setup used.
            self._schedule_spare(SPARE_DELAY)
            self._preload_apps_level()
        level1 = self.level1
        if not self.hold_libraries or not self.use_fork or child is not self.supervisor.child or not names:
            return
        if not isinstance(child, ForkedGeneration) or child.forkserver is not level1 or level1 is None:
            return
        if level1.dead.is_set() or level1.unsafe or not level1.setup_ok or not (level1.ready or {}).get("forkable"):
            return
        level1.on_preloaded = self._on_preloaded
        level1.preload_async(names)

    def _on_preloaded(self, forkserver: ForkServerHandle) -> None:
        """Level 1 holds the libraries now: the spare is forked again from it.
        If they pulled in project modules its setup did not (a library that
        imports views), every edit of those would rebuild level 1: holding
        libraries stops for the session."""
        if forkserver is not self.level1:
            return
        setup_files = frozenset((forkserver.ready or {}).get("files") or ())
        if self.hold_libraries and forkserver.files - setup_files:
            self.hold_libraries = False
            self._log(
                "devconsole: the libraries the server imported import project modules too;"
                " level 1 holds no more libraries this session"
            )
        if not forkserver.unsafe and not self._stopping.is_set():
            self._jobs.put(("spare", set(), 0.0))

    def _preload_apps_level(self) -> None:
        """Have the apps level import, while idle, the libraries the current
        level 1's setup imported (those that are no installed app's: see
        :meth:`devconsole.child.forkserver.ForkServer._preload`), so that the
        next models edit's level 1 does not import them again: a large
        project's ``ready()`` methods import whole frameworks. Asked once
        the serving generation answered its first request (not while a
        rebuild's first page competes for the CPU)."""
        apps, level1 = self.apps, self.level1
        if not self.apps_preload or apps is None or level1 is None or not level1.setup_ok:
            return
        if not self._usable(apps) or not apps.setup_ok or apps.preloading:
            return
        modules = [m for m in (level1.ready or {}).get("modules") or [] if m not in self._apps_preloaded]
        if modules:
            self._apps_preloaded.update(modules)
            apps.preload_async(modules)

    def _maybe_preload(self) -> None:
        """Teach level 0 the libraries the project imports during setup."""
        if not self.preload_enabled or self.level0 is None or self.level1 is None or not self.level1.ready:
            return
        modules = [m for m in self.level1.ready.get("modules") or [] if m not in self._preloaded]
        self._preloaded.update(modules)
        # Also resumes a preload paused while level 1 was being built.
        self.level0.preload_async(modules)


def _step(name: str, began: float) -> PhaseTiming:
    """A step named ``name`` that began at ``began`` (``perf_counter``) and ends now."""
    return {"name": name, "ms": round((time.perf_counter() - began) * 1000, 1)}


def _phases(value: Any) -> list[PhaseTiming]:
    """The well-formed ``{name, ms}`` phases of a process's report."""
    if not isinstance(value, list):
        return []
    return [
        {"name": str(phase["name"]), "ms": float(phase["ms"])}
        for phase in value
        if isinstance(phase, dict)
        and isinstance(phase.get("name"), str)
        and isinstance(phase.get("ms"), (int, float))
        and not isinstance(phase.get("ms"), bool)
    ]


def _saved_at(paths: set[str], delivered: float) -> float:
    """When the batch was saved: the newest mtime among its files (a deleted
    file has none), never later than its delivery."""
    newest = 0.0
    for path in paths:
        try:
            newest = max(newest, os.stat(path).st_mtime)
        except OSError:
            continue
    if not newest or newest > delivered or delivered - newest > 10:
        return delivered
    return newest


def _forget_bytecode(path: str) -> None:
    """Delete the cached bytecode of a changed module.

    A ``.pyc`` is trusted when the source's size and mtime *in whole
    seconds* match: two saves of the same length within one second (which a
    reload this fast makes common) would import the stale bytecode.
    """
    source = Path(path)
    cache = source.parent / "__pycache__"
    try:
        entries = list(cache.glob(f"{source.stem}.*.pyc"))
    except OSError:
        return
    for entry in entries:
        try:
            entry.unlink()
        except OSError:
            pass
