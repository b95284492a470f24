"""Fork servers that keep what does not change between reloads.

Started by the console as ``python -m devconsole.child.forkserver --manage PATH
--control-fd N``; this is *level 0*: Django's own modules (and, once a level
1 has reported them, the libraries the project uses) imported, no settings,
no project code. Asked for a *level 1*, it forks a child that runs the
project's ``manage.py`` up to ``django.setup()``, closes the database
connections and waits. Asked to ``serve``, a level 1 forks a server child
that only has to import the URLconf and views and start runserver: that is
the fast path of a reload. A level 0 asked to ``serve`` forks a child that
does everything (the fallback when a level 1 cannot be forked safely).
Between the two, for a large project, the *apps level*: forked from level
0, it holds ``django.setup()`` before the project's own models (every
library's models imported) and forks level 1 from there (see
:meth:`ForkServer._hold_before_project_models`).

Each fork server talks to the console over its own ``SOCK_SEQPACKET``
socket: one JSON message per packet, file descriptors (the new child's control
socket, stdout, stderr and event pipe; a level 1's control socket) passed alongside
with ``SCM_RIGHTS``; the messages are defined in
:mod:`devconsole.wire.forkserver`. Fork servers never start threads: a
process forks safely only when it has a single thread (and no Twisted
reactor: see :func:`reactor_installed`; Daphne projects fork from level 0).
They reap their children (SIGCHLD through a wakeup fd, so an idle fork
server sleeps in ``select`` and costs no CPU) and report each exit.
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import gc
import importlib
import importlib.util
import os
import select
import signal
import socket
import sys
import time
import traceback
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

from devconsole.wire import forkserver as wire
from devconsole.wire.forkserver import ForkServerLevel, Op

if TYPE_CHECKING:
    from devconsole.child.server import ServerProcess

#: Modules a level 0 preloads between two looks at its control socket.
PRELOAD_CHUNK = 20
#: Library modules a spare imports ahead of a save, at most.
MAX_SPARE_PRELOAD = 20_000
#: Imported by level 0 right away: Django's machinery that needs no settings.
BASE_MODULES = (
    "django",
    "django.conf",
    "django.core.management",
    "django.core.management.commands.runserver",
    "django.core.servers.basehttp",
    "django.core.handlers.wsgi",
    "django.contrib.staticfiles.handlers",
    "django.contrib.staticfiles.management.commands.runserver",
    "django.db.models",
    "django.db.migrations.executor",
    "django.urls",
    "django.http",
    "django.shortcuts",
    "django.template.loader",
    "django.views.debug",
    "django.forms",
    "django.contrib.admin",
    "django.core.checks",
    "django.utils.autoreload",
    # devconsole's own side of serving, imported by every generation once it
    # is told to go (pdb alone, for the debugger, is most of a reload's time
    # after the URLconf): inherited instead. None of them reads settings.
    "devconsole.child.server",
    "devconsole.child.debugger",
    "devconsole.child.insight",
    "devconsole.child.livereload",
    "devconsole.child.errorpage",
    "devconsole.child.watchlist",
    "devconsole.child.warmup",
)


#: Modules whose import installs a Twisted reactor (Daphne installs its asyncio
#: reactor when ``daphne.server`` is imported, which ``daphne.apps`` does).
REACTOR_MODULE = "twisted.internet.reactor"


def reactor_installed() -> bool:
    """Whether a Twisted reactor exists in this process.

    A process holding one must not be forked to serve: the reactor's asyncio
    loop owns an epoll instance and a wake-up socket pair, and every forked
    child would share them (one generation's readiness events delivered to
    another's loop, one's wake-ups waking the other). Daphne projects (Channels:
    ``daphne`` first in INSTALLED_APPS imports ``daphne.server`` during
    ``django.setup()``) are therefore served by children forked from level 0,
    which has no reactor and runs the setup in the child, so each generation
    installs its own; level 1 reports itself not forkable, and level 0 never
    preloads a module that would install one.
    """
    return REACTOR_MODULE in sys.modules


def forkable() -> bool:
    """Safe to fork a server from here: one thread and no event loop to share."""
    return thread_count() == 1 and not reactor_installed()


def thread_count() -> int:
    """Threads of this process, including ones started from C."""
    try:
        return len(os.listdir("/proc/self/task"))
    except OSError:
        import threading

        return threading.active_count()


def _send(sock: socket.socket, msg: wire.Message, fds: list[int] | None = None) -> None:
    """Send a message to the console; a console that is gone is not our problem
    (the loop sees its EOF next)."""
    try:
        wire.send(sock, msg, fds)
    except OSError:
        pass


def _ready(
    level: ForkServerLevel, *, files: list[str], phases: Sequence[Mapping[str, object]], **extra: Any
) -> wire.Message:
    """The ``ready`` message of a fork server of ``level``."""
    return wire.message(
        Op.READY,
        level=level.value,
        pid=os.getpid(),
        forkable=forkable(),
        threads=thread_count(),
        files=files,
        phases=phases,
        **extra,
    )


class _BecomeLevel1(BaseException):
    """Raised in the child the apps level forked, out of its loop and back
    into the setup the apps level holds (see
    :meth:`ForkServer._hold_before_project_models`). A ``BaseException``:
    nothing on the way catches it."""

    def __init__(self, control_fd: int, started: float) -> None:
        super().__init__(control_fd)
        self.control_fd = control_fd
        self.started = started


class ForkServer:
    """The loop shared by every level: wait, fork, reap, report."""

    def __init__(self, args: argparse.Namespace, control: socket.socket, level: ForkServerLevel) -> None:
        self.args = args
        self.control = control
        self.level = level
        self.children: set[int] = set()
        self.quitting = False
        #: A level 1 (or apps level) whose setup failed: (phase, exception),
        #: served as an error page.
        self.failure: tuple[str, BaseException] | None = None
        self._fork_started = 0.0
        self._pending_preload: list[str] = []
        self._preload_paused = False
        self._preloaded = 0
        #: The highest ``seq`` of the ``preload`` messages handled: echoed
        #: with ``preloaded`` (an answer covers every preload up to it).
        self._preload_seq = 0
        #: Project files a failed preload import loaded and then dropped from
        #: ``sys.modules``: what they did (registrations in held libraries)
        #: stays here, so they are listed with every ``preloaded`` answer.
        self._dropped_project_files: set[str] = set()
        #: Top-level packages one of whose modules installed a Twisted reactor.
        self._reactor_packages: set[str] = set()
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_r, False)
        os.set_blocking(self._wake_w, False)
        signal.signal(signal.SIGCHLD, lambda *_: None)
        signal.set_wakeup_fd(self._wake_w)

    def loop(self) -> None:
        while True:
            # Idle: sleep until a message or a child's exit. With
            # libraries queued for preloading: import some between polls.
            timeout = 0 if self._pending_preload and not self._preload_paused else None
            readable = _readable(self.control.fileno(), self._wake_r, timeout=timeout)
            if self._wake_r in readable:
                try:
                    while os.read(self._wake_r, 512):
                        pass
                except BlockingIOError:
                    pass
            self._reap()
            if self.control.fileno() in readable:
                message, fds, gone = wire.receive(self.control)
                if gone:
                    # The console is gone: its server children see their control
                    # channel close and stop on their own.
                    os._exit(0)
                self._handle(message or {}, fds)
            if self.quitting and not self.children:
                os._exit(0)
            if not readable and self._pending_preload and not self._preload_paused:
                self._preload_some()

    def _reap(self) -> None:
        while self.children:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                self.children.clear()
                return
            if pid == 0:
                return
            self.children.discard(pid)
            _send(self.control, wire.message(Op.EXIT, pid=pid, returncode=os.waitstatus_to_exitcode(status)))

    def _handle(self, message: wire.Message, fds: list[int]) -> None:
        op = wire.op_of(message)
        if op is Op.PRELOAD:
            self._preload_seq = max(self._preload_seq, int(message.get("seq") or 0))
        if op is Op.SERVE:
            self._fork(lambda: self._serve_child(message, fds), fds)
        elif op is Op.LEVEL1 and self.level == ForkServerLevel.BASE:
            # Preloading would compete with the new level 1's setup for the
            # CPU: paused until the console says to go on (another preload).
            self._preload_paused = True
            level = ForkServerLevel.APPS if message.get("apps") else ForkServerLevel.SETUP
            self._fork(lambda: self._level1_child(fds[0], level), fds)
        elif op is Op.LEVEL1 and self.level == ForkServerLevel.APPS and self.failure is None:
            # A level 1 that goes on with the setup held here.
            self._fork(None, fds)
        elif op is Op.PRELOAD and message.get("stop"):
            # A change is waiting on what this process holds: answer now.
            self._pending_preload.clear()
            self._answer_preload()
        elif op is Op.PRELOAD and (self.level == ForkServerLevel.BASE or self.failure is None):
            self._preload(message.get("modules") or [])
            if not self._pending_preload:
                self._answer_preload()  # nothing to import: answered now, never left waiting
        elif op is Op.QUIT:
            self.quitting = True
        else:
            for fd in fds:
                os.close(fd)

    def _fork(self, child: Callable[[], None] | None, fds: list[int]) -> None:
        """Fork a child that runs ``child`` and exits; with None (the apps
        level's level 1), one that leaves this loop instead (see
        :class:`_BecomeLevel1`)."""
        sys.stdout.flush()
        sys.stderr.flush()
        started = self._fork_started = time.perf_counter()
        # Everything held here is moved out of the collector's reach: a
        # child's first full collection would otherwise walk (and, through
        # reference counts, copy) every page of this heap, hundreds of
        # milliseconds in a Wagtail project's first request or URLconf.
        gc.freeze()
        pid = os.fork()
        if pid == 0:
            if child is None:
                self._forget(fds)
                raise _BecomeLevel1(fds[0], started)
            status = 1
            try:
                self._forget(fds)
                child()
                status = 0
            except BaseException:
                traceback.print_exc()
            finally:
                try:
                    sys.stdout.flush()
                    sys.stderr.flush()
                finally:
                    os._exit(status)
        for fd in fds:
            os.close(fd)
        self.children.add(pid)
        _send(self.control, wire.message(Op.FORKED, pid=pid, ms=round((time.perf_counter() - started) * 1000, 2)))

    def _forget(self, keep: list[int]) -> None:
        """In a fresh child: drop the fork server's reaping and its control socket."""
        signal.set_wakeup_fd(-1)
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        os.close(self._wake_r)
        os.close(self._wake_w)
        self.control.close()
        os.setpgid(0, 0)

    # level 0 -------------------------------------------------------------
    def _level1_child(self, control_fd: int, level: ForkServerLevel) -> None:
        control = socket.socket(fileno=control_fd)
        ForkServer(self.args, control, level).become_level1()

    # the apps level -----------------------------------------------------------
    def _hold_before_project_models(self, probe: ServerProcess, become: list[ForkServer]) -> None:
        """(The apps level) Stop ``django.setup()`` at its first models
        import: import every library app's models (in ``INSTALLED_APPS``
        order), none of the project's, say ready and serve forks from there.
        A level 1 forked then comes back here and lets the setup go on: the
        project's models, then every ``ready()``. A models edit then rebuilds
        level 1 without importing a library's models again (most of a large
        project's setup: Wagtail's models are imported by the project's).

        Nothing held can be stale: a project module that a library's models
        import pulls in is among the ``files`` this level reports, so the
        console rebuilds it when that module changes: a library's models
        that ask for a project's model (``get_user_model()``,
        ``apps.get_model(..., require_ready=False)``) import that app's
        models here, which this level then holds (an edit to them rebuilds
        it). The order differs from Django's: a library listed after a
        project app has its models imported before that app's. A library
        that reads a project's models from the registry as it stands fails
        here, and the console then sets Django up whole in level 1 (see the
        reloader); one that would only see less (a ``class_prepared``
        receiver in a project's models module, connected after the library's
        classes were made) is not told apart: ``DEVCONSOLE_APPS_LEVEL=0``."""
        from django.apps import AppConfig, apps

        from devconsole.child.watchlist import project_app_labels

        original = AppConfig.import_models

        def import_models(app_config: AppConfig) -> None:
            AppConfig.import_models = original  # type: ignore[method-assign]
            project = project_app_labels(Path(self.args.manage).parent, apps.app_configs.values())
            for config in list(apps.app_configs.values()):
                if config.label not in project:
                    config.import_models()  # (an app's own override, if it has one)
            probe.phase("the libraries' models")
            from django.db import connections

            connections.close_all()
            _collect_young()
            files = sorted({*self._held_project_files(), os.path.realpath(self.args.manage)})
            _send(
                self.control,
                _ready(ForkServerLevel.APPS, files=files, phases=probe.phases, reactor=reactor_installed()),
            )
            try:
                self.loop()
            except _BecomeLevel1 as fork:
                # A new level 1: its own control socket, its own phases.
                become[0] = ForkServer(self.args, socket.socket(fileno=fork.control_fd), ForkServerLevel.SETUP)
                probe.resumed(fork.started)
            # Whichever app's import was interrupted (a library's is done already: again is a no-op).
            original(app_config)

        AppConfig.import_models = import_models  # type: ignore[method-assign,assignment]

    def fail(self, phase: str, exc: BaseException, files: list[str]) -> None:
        """Say the setup failed (``files``: what it imported, to watch for
        the fix); the failure is served as the error page from then on."""
        self.failure = (phase, exc)
        _send(
            self.control,
            wire.message(
                Op.FAILED,
                level=self.level.value,
                pid=os.getpid(),
                phase=phase,
                message=f"{type(exc).__name__}: {exc}",
                files=sorted({*files, os.path.realpath(self.args.manage)}),
            ),
        )

    def become_level1(self) -> None:
        """Run manage.py up to ``django.setup()``, report, then serve forks
        (the apps level: up to the project's models, see
        :meth:`_hold_before_project_models`)."""
        from devconsole.child.bootstrap import run_manage_py
        from devconsole.child.server import ServerProcess, failed_phase
        from devconsole.child.watchlist import imported_modules, project_module_files

        manage = Path(self.args.manage)
        probe = ServerProcess.for_setup()  # only its phase timer: no emitter, no threads
        # The fork server that reports: this one, or the level 1 the apps level forked.
        become: list[ForkServer] = [self]
        if self.level == ForkServerLevel.APPS:
            self._hold_before_project_models(probe, become)

        def entry(argv: list[str]) -> None:
            probe.setup()
            _warm_up()
            from django.db import connections

            # Forked children must not share the fork server's database sockets.
            connections.close_all()
            _collect_young()
            probe.phase("runserver and middleware import")

        try:
            run_manage_py(
                manage, entry, argv=["runserver"], settings=self.args.settings, pythonpath=self.args.pythonpath
            )
        except BaseException as exc:
            files = project_module_files(manage.parent)  # (fail adds manage.py)
            # A level 1 the apps level forked begins within django.setup().
            phase = "django.setup()" if become[0] is not self and not probe.phases else failed_phase(probe.phases, exc)
            become[0].fail(phase, exc, files + _traceback_files(exc))
        else:
            server = become[0]
            if server.level == ForkServerLevel.APPS:
                # The setup ended without a models import to stop at (no app at all).
                server.fail("django.setup()", RuntimeError("no app's models to hold the setup before"), [])
                server.loop()
            # manage.py ran here too (as __main__, gone from sys.modules since).
            files, modules = imported_modules(manage.parent)
            files = sorted({*files, os.path.realpath(manage)})
            probe.phase("imported modules listed")
            _send(
                server.control,
                _ready(
                    ForkServerLevel.SETUP,
                    files=files,
                    phases=probe.phases,
                    reactor=reactor_installed(),
                    modules=modules,
                ),
            )
        become[0].loop()

    def _preload(self, modules: list[str]) -> None:
        """Queue libraries to import ahead: in level 0, those a level 1 used
        (so the next level 1 finds them imported); in level 1, those the
        last generation imported from outside the project (Wagtail's admin
        URLconf, DRF: what a view edit would otherwise import again).
        They are imported a few at a time between messages (see
        :meth:`loop`): a fork asked for meanwhile is never kept waiting.

        Nothing held can be stale: a project module that such an import
        pulls in is among the ``files`` reported with ``preloaded``, so the
        console rebuilds level 1 when it changes; and a change saved while
        the preload runs rebuilds it too (the console does not know yet
        what it will have imported).

        In the apps level, those a level 1's setup imported from packages
        that are no installed app's (an API framework, pydantic, requests
        that a ``ready()`` imports): the next level 1 then runs the
        project's models and every ``ready()`` without importing them.
        An installed app's own modules are never imported there: one may
        read what the project's models add to that app's registries when
        imported (Wagtail's API builds its page types from the page models),
        which this level, held before them, would not have. A module that
        asks Django's registry for models fails there (the models are not
        ready) and is undone."""
        names = [m for m in modules if not m.startswith("__")]
        if self.level == ForkServerLevel.APPS:
            packages = _app_packages()
            names = [m for m in names if m.partition(".")[0] not in packages]
        self._pending_preload.extend(names)
        self._preload_paused = False

    def _preload_some(self, count: int = PRELOAD_CHUNK) -> None:
        """Import the next ``count`` queued modules; report when the queue is done.

        A module that needs settings fails to import and is skipped (and what
        its failed import left behind is dropped); one whose top-level name
        does not resolve here is not imported at all. The settings module is
        hidden meanwhile, so that no library imports the project's settings
        into level 0, and stderr is muted (failed imports print warnings).
        """
        # Level 1 has its settings: the libraries a generation imported are
        # imported as they were there (a level 0 must not import the project's).
        with _quiet_imports(hide_settings=self.level == ForkServerLevel.BASE):
            for _ in range(count):
                if not self._pending_preload or thread_count() != 1:
                    break
                if _readable(self.control.fileno()):
                    break  # a message waits (a fork, a stop): it comes first
                self._import_one(self._pending_preload.pop(0))
        if thread_count() != 1:
            self._pending_preload.clear()
        if not self._pending_preload:
            self._answer_preload()

    def _import_one(self, name: str) -> None:
        """Import library module ``name`` (see :meth:`_preload_some`): one
        that fails, or installs a Twisted reactor, is undone, and the project
        files its attempt ran are remembered as held all the same."""
        if name in sys.modules or name.partition(".")[0] in self._reactor_packages:
            return
        before = set(sys.modules)
        try:
            if importlib.util.find_spec(name.partition(".")[0]) is None:
                return
            importlib.import_module(name)
            if reactor_installed():
                # Not fork-safe (see reactor_installed): undone like a
                # failed import, so each server child installs its own;
                # the rest of that package is not tried again.
                self._reactor_packages.add(name.partition(".")[0])
                raise ImportError(f"{name} installs a Twisted reactor")
            self._preloaded += 1
        except BaseException:
            added = set(sys.modules) - before
            self._dropped_project_files.update(self._project_files_of(added))
            _forget_modules(added)

    def _project_files_of(self, names: set[str]) -> set[str]:
        """The project's files among these modules' origins."""
        from devconsole.child.watchlist import project_modules

        return {real for _name, real, _module in project_modules(Path(self.args.manage).parent, names)}

    def _answer_preload(self) -> None:
        """Say the preload is done: the project files held now, exactly."""
        if self.level != ForkServerLevel.BASE:
            try:
                from django.db import connections

                connections.close_all()  # a library that queried at import: not shared with forks
            except Exception:
                pass
        _send(
            self.control,
            wire.message(
                Op.PRELOADED,
                loaded=self._preloaded,
                seq=self._preload_seq,
                forkable=forkable(),
                # Whatever project file got imported anyway now rebuilds level 0.
                files=self._held_project_files(),
            ),
        )
        gc.collect()  # its garbage, not frozen with the rest at the next fork (after the answer)

    # serving -------------------------------------------------------------
    def _serve_child(self, message: wire.Message, fds: list[int]) -> None:
        """In the forked server child: wire the pipes, then run the server."""
        from devconsole.child.server import ServerProcess, build_parser, failed_phase, run_server

        control, stdout, stderr, events = fds
        for fd, target in ((stdout, 1), (stderr, 2)):
            os.dup2(fd, target)
            os.close(fd)
        # Nothing for a view (or a debugger) to read on stdin: the console
        # speaks on the control socket only.
        devnull = os.open(os.devnull, os.O_RDONLY)
        os.dup2(devnull, 0)
        os.close(devnull)
        args = build_parser().parse_args([*message["args"], "--events-fd", str(events), "--control-fd", str(control)])
        process = ServerProcess(args)
        # Told to wait for ``accept`` (the old generation still stopping).
        process.gated = bool(message.get("gated"))
        if self.level == ForkServerLevel.BASE:
            process.emitter.start()
            run_server(process)
            return
        process.forked(self._fork_started)
        if self.failure is not None:
            process.emitter.start()
            phase, exc = self.failure
            process.serve_error(phase, exc)
            return
        if message.get("spare") and not self._be_spare(process, message):
            return
        process.emitter.start()  # a spare's is started already: nothing more
        try:
            process.serve()
        except BaseException as exc:
            if isinstance(exc, KeyboardInterrupt):
                raise
            process.serve_error(failed_phase(process.phases, exc), exc)

    def _spare_preload(self, modules: list[str], patterns: str, normalized: str, sources: list[str]) -> bool:
        """A spare, before it says it is ready: the library modules the
        serving generation imported beyond what this process holds (``modules``:
        Wagtail's admin, DRF's router, the session backend its first request
        loaded), the regular expressions it compiled (``patterns``, into
        ``re``'s cache) and its project modules' sources compiled (``sources``,
        used only by an import that reads the same bytes), so that after a
        save the promoted spare imports only what is the project's and
        compiles only what changed.

        Nothing held here can be stale: the project files these imports ran
        are among the files the spare reports as ready (see
        :meth:`_be_spare`), a compiled pattern depends on its text alone, and
        a compiled source is used only for the very same bytes. False when an
        import built a template engine: one built before the save, which a
        library may keep, would miss a tag library created after it; such a
        spare is not used (and the next ones import no library ahead)."""
        from devconsole.child import warmup

        if not self._import_all(modules):
            return False
        warmup.compile_patterns(patterns)
        warmup.normalize_ahead(normalized)
        warmup.precompile(sources)
        return True

    def _be_spare(self, process: ServerProcess, message: wire.Message) -> bool:
        """Get as far as serving can go without the URLconf, report the files
        imported on the way, then wait for ``go GENERATION`` on the control channel.

        False when told to stop instead (or when the preparation failed).
        Its threads (the event flusher, the debugger channel's reader) sleep
        while it waits: an idle spare costs nothing.
        """
        try:
            process.prepare()
            process.prebuild_handler()
            safe = self._spare_preload(
                message.get("preload") or [],
                str(message.get("patterns") or ""),
                str(message.get("normalized") or ""),
                message.get("sources") or [],
            )
        except BaseException as exc:
            process.emitter.send(
                {"type": "spare_failed", "pid": os.getpid(), "message": f"{type(exc).__name__}: {exc}"}
            )
            process.emitter.flush()
            return False
        if not safe:
            process.emitter.send(
                {
                    "type": "spare_failed",
                    "pid": os.getpid(),
                    "message": "a library built template engines when imported",
                    "unsafe_preload": True,
                }
            )
            process.emitter.flush()
            return False
        # No template is loaded here, ahead of the save: a template engine
        # built now would keep the tag libraries and template directories as
        # they are now (a library or an app's templates folder created before
        # the save would be missed). The promoted generation loads them after
        # ``go``, from the files as they are then.
        # Exactly what it holds: a change to any of these files, including
        # one a library's import ran (even an import that failed), and the
        # console forks afresh rather than promote this spare.
        files = self._held_project_files()
        # The project modules to import ahead (see :meth:`_import_ahead`):
        # first a twin, forked as this spare is now, for a save that changes
        # one of them.
        ahead = [name for name in message.get("ahead") or [] if isinstance(name, str) and name]
        sources = [path for path in message.get("sources") or [] if isinstance(path, str)]
        twin: _Twin | None = None
        if ahead and thread_count() == 1:
            # What both hold now is never collected (nor copied) by either.
            gc.freeze()
            # A save it would serve: one of the modules the spare imports ahead.
            twin, word = _Twin.fork(sorted(_files_of_modules(ahead, sources).difference(files)))
            if twin is None:  # in the twin: told to serve, or to end
                return word is not None and self._promote(process, word)
        # Started now rather than after ``go``: each would cost the promoted
        # spare a thread's start (their threads sleep until there is something).
        process.emitter.start()
        try:
            from devconsole.child import debugger

            debugger.connect()
        except Exception:
            pass  # install() tries again after ``go``, and reports a failure
        from devconsole.child import warmup

        process.emitter.send(
            {
                "type": "spare_ready",
                "pid": os.getpid(),
                "files": files,
                "twin": twin is not None,
                "normalized": warmup.normalized_count(),
            }
        )
        process.emitter.flush()
        held: list[str] | None = None
        if twin is not None:
            held = self._import_ahead(process, ahead)
            if held is not None:
                process.emitter.send({"type": "spare_ahead", "pid": os.getpid(), "files": held})
                process.emitter.flush()
        # A save of a file it holds is served by another process: not compiled here.
        holds = set(held if held is not None else files)
        _compile_saved_until(process.control.fileno(), sources, lambda path: path not in holds)
        told = process.receive_control()
        if told is None:
            if twin is not None:
                twin.drop()
            return False
        word_, arg, fds = told
        for fd in fds:
            os.close(fd)
        words = arg.split()
        if word_ == "go" and "twin" in words and twin is not None:
            # A save changed a module imported ahead: the twin serves, and
            # this process stands for it until it ends (see _Twin.stand_in).
            twin.go(" ".join(w for w in words if w != "twin"))
            twin.stand_in()
        if twin is not None:
            if word_ == "go":
                # Not waited for here: reaped once the first request is answered.
                twin.drop(wait=False)
                process.reap_later(twin.pid)
            else:
                twin.drop()
        return word_ == "go" and "twin" not in words and self._promote(process, arg)

    @staticmethod
    def _promote(process: ServerProcess, arg: str) -> bool:
        """``go GENERATION [gated]``'s argument: the spare becomes that generation."""
        generation, _, mode = arg.partition(" ")
        if not generation.isdigit():
            return False
        process.promote(int(generation), gated="gated" in mode.split())
        return True

    def _import_ahead(self, process: ServerProcess, names: list[str]) -> list[str] | None:
        """The project modules the console chose (those the serving
        generation imported, but none a recent save changed nor any that
        imports one), imported before the next save, so that a view edit
        imports only the edited module and what imports it. The project
        files held afterwards, exactly (a change to one serves through the
        twin instead); None, and never served, when the console spoke first
        (it comes first: one module at most is imported after it spoke) or
        when an import built a template engine (see :meth:`_spare_preload`)."""
        done = self._import_all(names, until_readable=process.control.fileno())
        return self._held_project_files() if done else None

    def _import_all(self, names: list[str], *, until_readable: int | None = None) -> bool | None:
        """Import each of ``names`` (see :meth:`_import_one`), with the
        settings in place and stderr muted. True when done; False when an
        import built a template engine (none was built before); None when
        ``until_readable`` became readable first (one import at most after it
        did)."""
        engines_before = _template_engines_built()
        with _quiet_imports(hide_settings=False):
            for name in names[:MAX_SPARE_PRELOAD]:
                if until_readable is not None and _readable(until_readable):
                    return None
                if isinstance(name, str) and name and not name.startswith("__"):
                    self._import_one(name)
        return engines_before or not _template_engines_built()

    def _held_project_files(self) -> list[str]:
        """The project's files this process imported, exactly: its project
        modules, and those a library import ran (even one that failed)."""
        from devconsole.child.watchlist import project_module_files

        return sorted(set(project_module_files(Path(self.args.manage).parent)) | self._dropped_project_files)


class _Twin:
    """A spare's twin: forked from the spare once it imported the libraries,
    before it imports project modules ahead, so that a save changing one of
    those is still served by a prepared process. It waits on a pipe for the
    spare's word: ``go``'s argument, or the pipe's end (then it ends)."""

    def __init__(self, pid: int, word: int) -> None:
        self.pid = pid
        self._word = word

    @classmethod
    def fork(cls, serves: list[str]) -> tuple[_Twin | None, str | None]:
        """In the spare: ``(twin, None)``. In the twin, once the spare spoke:
        ``(None, argument)``, or ``(None, None)`` when told nothing; while
        it waits, a saved source among ``serves`` (the files of the modules
        the spare imports ahead) is compiled (see :func:`_compile_saved_until`)."""
        word_r, word_w = os.pipe()
        parent = os.getpid()
        pid = os.fork()
        if pid:
            os.close(word_r)
            return cls(pid, word_w), None
        os.close(word_w)
        _die_with(parent)
        _compile_saved_until(word_r, serves, set(serves).__contains__)
        chunks = []
        while chunk := os.read(word_r, 4096):
            chunks.append(chunk)
        os.close(word_r)
        word = b"".join(chunks).decode()
        return None, word or None

    def go(self, arg: str) -> None:
        with contextlib.suppress(OSError):
            os.write(self._word, arg.encode())
        self._close()

    def drop(self, *, wait: bool = True) -> None:
        """Not needed (the spare serves, or stops): it ends (and is reaped,
        with ``wait``; else the caller reaps it)."""
        self._close()
        with contextlib.suppress(OSError):
            os.kill(self.pid, signal.SIGKILL)
        if wait:
            with contextlib.suppress(ChildProcessError):
                os.waitpid(self.pid, 0)

    def stand_in(self) -> NoReturn:
        """The spare, once its twin serves: its fork server and the console
        know the spare's pid, so it lives as long as the twin and ends as the
        twin ended (its exit status, or the signal that killed it). Stop
        signals reach both (they share a process group): the twin handles
        them; the spare only waits. Killed, it takes the twin with it."""
        for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(signum, signal.SIG_IGN)
        try:
            _pid, status = os.waitpid(self.pid, 0)
        except ChildProcessError:
            os._exit(1)
        if os.WIFSIGNALED(status):
            number = os.WTERMSIG(status)
            with contextlib.suppress(OSError, ValueError):  # SIGKILL's cannot be set: it is the default
                signal.signal(number, signal.SIG_DFL)
            os.kill(os.getpid(), number)
            os._exit(128 + number)
        os._exit(os.WEXITSTATUS(status) if os.WIFEXITED(status) else 1)

    def _close(self) -> None:
        if self._word >= 0:
            with contextlib.suppress(OSError):
                os.close(self._word)
            self._word = -1


def _compile_saved_until(fd: int, sources: list[str], wanted: Callable[[str], bool]) -> None:
    """Until ``fd`` can be read (the console's word to a spare, the spare's
    to its twin): a project source saved meanwhile that this process would
    serve (``wanted``) is compiled at once (see
    :class:`~devconsole.child.warmup.SavedSources`), while the console is
    still deciding what the save means."""
    from devconsole.child import warmup

    saved = warmup.SavedSources(sources, wanted)
    try:
        while saved.fd >= 0:
            if fd in _readable(fd, saved.fd, timeout=None):
                return
            try:
                saved.compile_saved()
            except Exception:
                pass  # a source the compiler cannot take (too deep): the import after the word says why
    finally:
        saved.close()


def _files_of_modules(names: list[str], sources: list[str]) -> set[str]:
    """The files among ``sources`` of the modules ``names`` (matched by
    their dotted path: ``shop.views`` is ``…/shop/views.py`` or
    ``…/shop/views/__init__.py``), without importing anything. Close, not
    exact, which is all a compile ahead needs: a top-level module ``views``
    also matches ``…/shop/views.py`` (compiled for nothing), and a module
    one of them imports is not among them (compiled by its import)."""
    wanted = set(names)
    found = set()
    for path in sources:
        stem = path[: -len(".py")] if path.endswith(".py") else path
        if os.path.basename(stem) == "__init__":
            stem = os.path.dirname(stem)
        parts = stem.split(os.sep)
        for start in range(len(parts) - 1, 0, -1):
            if ".".join(parts[start:]) in wanted:
                found.add(path)
                break
    return found


def _readable(*fds: int, timeout: float | None = 0) -> list[int]:
    """Which of ``fds`` can be read now (or have hung up), waiting up to
    ``timeout`` seconds for one (None: as long as it takes). ``poll``: any
    descriptor number will do, as ``select`` would not above 1023."""
    poller = select.poll()
    for fd in fds:
        poller.register(fd, select.POLLIN)
    return [fd for fd, _ in poller.poll(None if timeout is None else timeout * 1000)]


def _die_with(parent: int) -> None:
    """Ask the kernel to kill this process when its parent dies (Linux);
    if the parent is already gone, end now."""
    from devconsole.wire import linux

    linux.die_with_parent()
    if os.getppid() != parent:
        os._exit(0)


def _app_packages() -> set[str]:
    """The top-level packages of the installed apps (``django`` among them)."""
    from django.apps import apps

    return {config.name.partition(".")[0] for config in apps.app_configs.values()}


def _collect_young() -> None:
    """Before a setup's first fork: its recent garbage collected, not frozen
    with the rest (see :meth:`ForkServer._fork`). The young generations
    only: a full collection walks every object the setup made (~80 ms after
    a Wagtail project's ``django.setup()``, to find ten objects; the
    interpreter's own full collections had run twice during it), on the way
    to the server a save waits for. What older garbage is left stays, shared
    by the children, as it would stay in runserver's process until its next
    full collection (the database connections, the one kind of descriptor a
    setup opens, are closed before this)."""
    gc.collect(1)


@contextlib.contextmanager
def _quiet_imports(*, hide_settings: bool) -> Iterator[None]:
    """Imports ahead of need, with stderr muted (failed imports print
    warnings) and, with ``hide_settings``, no settings module to import."""
    saved_env = os.environ.pop("DJANGO_SETTINGS_MODULE", None) if hide_settings else None
    saved_stderr = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 2)
    try:
        yield
    finally:
        sys.stderr.flush()
        os.dup2(saved_stderr, 2)
        os.close(saved_stderr)
        os.close(devnull)
        if saved_env is not None:
            os.environ["DJANGO_SETTINGS_MODULE"] = saved_env


def _template_engines_built() -> bool:
    template = sys.modules.get("django.template")
    return bool(getattr(getattr(template, "engines", None), "_engines", None))


def _forget_modules(names: set[str]) -> None:
    """Undo a failed import: drop the modules it left behind (a submodule
    that did import while its package failed would otherwise be found later
    without its package, and ``import a.b.c as x`` would fail)."""
    for name in names:
        module = sys.modules.pop(name, None)
        parent_name, _, child = name.rpartition(".")
        parent = sys.modules.get(parent_name) if parent_name else None
        if parent is not None and module is not None and getattr(parent, child, None) is module:
            try:
                delattr(parent, child)
            except AttributeError:
                pass


def _warm_up() -> None:
    """Import what every server child imports next, so that a fork finds it
    done: the runserver command that wins (and the apps it wins over), the
    middleware classes.

    Nothing is instantiated (a middleware's ``__init__`` may open
    connections). A project module imported here counts among level 1's
    files, so a change to it rebuilds level 1: correct by construction.
    Failures are left for the server child to report properly.
    """
    try:
        from django.conf import settings
        from django.core.management import get_commands, load_command_class
        from django.core.management.base import BaseCommand
        from django.utils.module_loading import import_string

        from devconsole.child.introspect import command_providers

        app = get_commands().get("runserver")
        if isinstance(app, str):
            load_command_class(app, "runserver")
        elif app is not None and not isinstance(app, BaseCommand):  # pragma: no cover
            pass
        try:
            command_providers()  # what a generation's hello says of runserver's rivals
        except Exception:
            pass  # each generation finds them then, and reports a failure
        for path in getattr(settings, "MIDDLEWARE", None) or []:
            try:
                import_string(path)
            except Exception:
                continue
    except Exception:
        pass


def _traceback_files(exc: BaseException) -> list[str]:
    """Files named by ``exc`` (a SyntaxError's file is not in sys.modules)."""
    files = []
    filename = getattr(exc, "filename", None)
    if isinstance(filename, str):
        files.append(os.path.realpath(filename))
    tb = exc.__traceback__
    while tb is not None:
        files.append(os.path.realpath(tb.tb_frame.f_code.co_filename))
        tb = tb.tb_next
    return [f for f in files if os.path.isfile(f)]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="devconsole-forkserver")
    parser.add_argument("--manage", required=True)
    parser.add_argument("--settings")
    parser.add_argument("--pythonpath")
    parser.add_argument("--control-fd", type=int, required=True)
    args = parser.parse_args(argv)
    control = socket.socket(fileno=args.control_fd)
    started = time.perf_counter()
    for name in BASE_MODULES:
        try:
            importlib.import_module(name)
        except Exception:
            pass
    server = ForkServer(args, control, ForkServerLevel.BASE)
    phases = [{"name": "import Django", "ms": round((time.perf_counter() - started) * 1000, 2)}]
    _send(control, _ready(ForkServerLevel.BASE, files=[], phases=phases))
    try:
        server.loop()
    except OSError as exc:  # pragma: no cover - the control socket broke
        if exc.errno not in (errno.EBADF, errno.ECONNRESET):
            raise
    os._exit(0)


if __name__ == "__main__":
    main()
