"""The server child: runs the project's ``runserver`` on the console's socket.

Started by :mod:`devconsole.console.supervisor` as
``python -m devconsole.child.server --manage PATH --listen-fd N --events-fd M
--control-fd C --addrport ADDR``. It runs the project's own ``manage.py`` as ``__main__``
(see :mod:`.bootstrap`); when ``manage.py`` hands over to Django we:

1. import the settings and run ``django.setup()``;
2. resolve ``runserver`` the way ``ManagementUtility.fetch_command`` does
   (``get_commands()`` then ``load_command_class``), so staticfiles' subclass
   or any other app's override wins as it would under ``manage.py runserver``;
3. give that command an instrumented ``server_cls`` that adopts the inherited
   socket, and run it with ``--noreload --skip-checks`` in a worker thread
   named like Django's (``django-main-thread``);
4. report ``hello`` once ``serve_forever`` is looping, run the system checks
   and the migrations check in the background, and obey the console's
   control channel (:mod:`devconsole.wire.control`; never stdin, which is
   ``/dev/null``: a view's ``input()`` must not read the console's lines)
   until ``stop``.

If anything before serving fails (settings, an app's ``ready()``, a syntax
error), the socket still answers: every request gets a 500 page with the
traceback, and the error is reported as an ``error`` event.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import platform
import select
import signal
import socket
import sys
import threading
import time
import traceback
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from devconsole.child.bootstrap import run_manage_py
from devconsole.child.handover import ConnectionHandover
from devconsole.child.instrument import (
    ServerObserver,
    instrument_server,
    quiet_request_log,
    request_line_reaches_nobody,
)
from devconsole.child.introspect import class_path, shadowed_apps
from devconsole.child.livereload import LiveReload
from devconsole.wire import control, protocol
from devconsole.wire.events import (
    ByeEvent,
    CheckMessage,
    ChecksEvent,
    DrainingEvent,
    ErrorEvent,
    Event,
    FileChangedEvent,
    HelloEvent,
    PhaseTiming,
    ServerKind,
    WatchEvent,
)

if TYPE_CHECKING:
    from devconsole.child.warmup import TemplateNames

FLUSH_INTERVAL = 0.025
#: How long a graceful stop waits for a connection accepted but still
#: silent (requests being handled are waited for however long they take).
DRAIN_TIMEOUT = 5.0
#: Longest wait for a first request before the checks run anyway (seconds).
AFTER_SERVING_DELAY = 1.0
#: The reports the next spare is prepared from, and then the checks, wait
#: after that for this long without a request (seconds): the pages reloading
#: after a save fetch their stylesheets and scripts meanwhile, and the
#: reports (every imported module listed) and the checks (the system checks,
#: every migration file read) would take the interpreter's lock from those
#: requests...
CHECKS_QUIET_S = 0.1
#: ...but each for this long at most (a server that is never quiet runs
#: them then), counted from when they would have run: after the first
#: request (or :data:`AFTER_SERVING_DELAY` without one), and after the reports.
CHECKS_QUIET_MAX_S = 1.0
#: The thread switch interval (s) of a generation started by a reload, until
#: its first response (Python's default, 5 ms, is restored then).
RELOAD_SWITCH_INTERVAL_S = 0.0005


class Emitter:
    """Sends events to the console: queued from any thread, written by one.

    The flusher sleeps until something is queued (an event, or a change the
    observer recorded: it calls :meth:`wake`), then writes it at most every
    FLUSH_INTERVAL: batched under load, and no wake-up at all when idle."""

    def __init__(self, fd: int, observer: ServerObserver) -> None:
        self._out = os.fdopen(fd, "wb", buffering=0)
        self._observer = observer
        self._pending: list[Event] = []
        self._lock = threading.Lock()
        self._write_lock = threading.Lock()
        self._last: dict[str, float] = {}
        self._stop = threading.Event()
        self._woken = threading.Event()
        #: Made as it starts, not before: a thread object made before a fork
        #: (a spare's twin is forked from the spare) cannot be started in the
        #: child on Python 3.13, which marks every other thread's handle done.
        self._thread: threading.Thread | None = None
        self.broken = False
        observer.wake = self.wake

    def start(self) -> None:
        if self._thread is not None:
            return  # started already (a spare's, before its promotion)
        # Output is line-buffered (as runserver's is in a terminal): a line
        # leaves when it is complete, without a timer to flush it. The
        # request line runserver logs per request is not written by the
        # child (the console writes it from the request event), and logging
        # handlers flush each record anyway.
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.reconfigure(line_buffering=True, write_through=False)  # type: ignore[union-attr]
            except (AttributeError, ValueError):
                pass  # replaced by the project with something else: leave it
        self._thread = threading.Thread(target=self._run, name="devconsole-flusher", daemon=True)
        self._thread.start()

    def wake(self) -> None:
        """Something is waiting to be flushed (any thread; cheap when the
        flusher is already awake)."""
        if not self._woken.is_set():
            self._woken.set()

    def send(self, event: Event) -> None:
        """Queue ``event``; it goes out with the next flush."""
        with self._lock:
            self._pending.append(event)
        self.wake()

    def flush(self) -> None:
        """Write what is pending now (the flusher does it within FLUSH_INTERVAL of a
        change; the server process calls it directly for events the console
        waits on)."""
        with self._write_lock:
            with self._lock:
                events, self._pending = self._pending, []
            events += self._observer.drain(self._last)
            if not events or self.broken:
                return
            try:
                self._out.write(b"".join(protocol.encode(e) for e in events))
            except (BrokenPipeError, OSError):
                self.broken = True

    def _run(self) -> None:
        flushed = time.monotonic()
        while True:
            self._woken.wait()
            if self._stop.is_set():
                return
            # What arrives within FLUSH_INTERVAL of the last flush goes out together.
            delay = flushed + FLUSH_INTERVAL - time.monotonic()
            if delay > 0 and self._stop.wait(delay):
                return
            self._woken.clear()
            _flush_output()
            self.flush()
            flushed = time.monotonic()

    def close(self) -> None:
        self._stop.set()
        self._woken.set()
        if self._thread is not None and self._thread.is_alive():
            self._thread.join(timeout=1)
        _flush_output()
        self.flush()


def _flush_output() -> None:
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError, AttributeError):
            pass


class RunserverOptionsError(Exception):
    """The runserver that wins rejects an option the user gave devconsole:
    the user's mistake, reported as one line (no traceback to read)."""


def _error_event(phase: str, exc: BaseException) -> ErrorEvent:
    if isinstance(exc, RunserverOptionsError):
        return {"type": "error", "phase": phase, "message": str(exc), "traceback": f"{exc}\n"}
    return {
        "type": "error",
        "phase": phase,
        "message": f"{type(exc).__name__}: {exc}",
        "traceback": "".join(traceback.format_exception(type(exc), exc, exc.__traceback__)),
    }


class ServerProcess:
    """The server child's main object: sets Django up, serves the project's
    runserver on the console's socket, reports, and obeys the console's
    control messages (``stop``, ``file_changed PATH``, ``adopt``) on its
    control channel."""

    #: The name of :meth:`setup`'s last phase (see :meth:`resumed`).
    setup_phase = "django.setup()"

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.control = socket.socket(fileno=args.control_fd)
        self.observer = ServerObserver()
        self.observer.handover = ConnectionHandover(self.control)
        self.emitter = Emitter(args.events_fd, self.observer)
        self.phases: list[PhaseTiming] = []
        #: How many of :attr:`phases` were done before the change that made
        #: this generation (a spare's preparation): none of a reload's time.
        self.ahead = 0
        self._t = time.perf_counter()
        self.server_thread: threading.Thread | None = None
        self.error_server: Any = None
        self._urlconf_event: ErrorEvent | None = None
        self._switch_interval = sys.getswitchinterval()
        self._command: Any = None
        self._app_label = ""
        self._cmd_args: Any = ()
        self._cmd_options: dict[str, Any] = {}
        self._request_log_from_events = False
        #: ``wsgi`` or ``asgi``: which server the runserver that won is served with.
        self.server_kind: ServerKind = "wsgi"
        self._terminating = False
        #: Set by a gated start (see :meth:`serve`): everything up to the
        #: first ``accept`` is done, then the console's ``accept`` is awaited.
        self.gated = False
        #: What this process had imported when it began (for a forked one:
        #: what the fork server held); see :meth:`_report_modules`.
        self._modules_at_start = frozenset(sys.modules)
        #: Control messages that arrived while waiting for ``accept``: obeyed
        #: once serving, in order.
        self._early: list[tuple[str, str, list[int]]] = []
        #: The warm-up's list of templates while ``accept`` (which names
        #: them) is still to come: the old generation's pipe let this one in.
        self._templates_to_come: TemplateNames | None = None
        #: The write end of the next generation's gate, from ``stop``.
        self._successor_gate: int | None = None
        #: Children to reap once the first request is answered (a spare's twin).
        self._to_reap: list[int] = []
        try:
            signal.signal(signal.SIGTERM, self._on_sigterm)
        except ValueError:  # pragma: no cover - not the main thread
            pass

    @classmethod
    def for_setup(cls) -> ServerProcess:
        """One that only runs :meth:`setup` and times its phases: no
        emitter, no threads (a fork server's level 1 uses it)."""
        process = cls.__new__(cls)
        process.phases = []
        process._t = time.perf_counter()
        return process

    def phase(self, name: str) -> None:
        """Close the phase that ends now."""
        now = time.perf_counter()
        self.phases.append({"name": name, "ms": round((now - self._t) * 1000, 2)})
        self._t = now

    def resumed(self, fork_started: float) -> None:
        """In a level 1 forked from the apps level within :meth:`setup`: its
        own phases, timed from the fork; what is left of ``django.setup()``
        is named for what it does."""
        self.phases = []
        self._t = fork_started
        self.setup_phase = "the project's models and ready()"

    def forked(self, fork_started: float) -> None:
        """In a child forked from a fork server: its first phase is the fork."""
        self._t = fork_started
        self.phase("fork")

    def promote(self, generation: int, *, gated: bool = False) -> None:
        """A spare told to serve: it becomes ``generation``, timed from now
        (``gated``: it accepts only once the console says ``accept``)."""
        self.args.generation = generation
        self.gated = gated
        self.ahead = len(self.phases)
        self._t = time.perf_counter()

    # manage.py hands over here ----------------------------------------------
    def entry(self, argv: list[str]) -> None:
        self.setup()
        self.serve()

    def setup(self) -> None:
        """Settings and ``django.setup()``: what a level-1 fork server keeps done."""
        from django.apps import apps

        # A manage.py that calls django.setup() itself: a level 1 resumed
        # within it (see resumed) did the project's models and ready() there.
        resumed_in_manage = self.setup_phase != ServerProcess.setup_phase and apps.ready
        self.phase(self.setup_phase if resumed_in_manage else "manage.py")
        from django.conf import settings

        settings.INSTALLED_APPS  # noqa: B018 - imports the settings module
        self.phase("settings import")
        import django

        django.setup()
        self.phase("django.setup()" if resumed_in_manage else self.setup_phase)

    def prepare(self) -> None:
        """Resolve runserver and build its WSGI handler: the part of serving
        that does not depend on the URLconf or the views.

        A spare server child does this ahead of a reload; building the
        handler (middleware instances) here is what ``inner_run`` would do
        first anyway.
        """
        from django.core.management import get_commands, load_command_class
        from django.core.management.base import BaseCommand, handle_default_options

        from devconsole.child import warmup

        warmup.memoize_normalize()  # before any reverse table is built here
        commands = get_commands()
        app = commands["runserver"]
        command: Any = app if isinstance(app, BaseCommand) else load_command_class(app, "runserver")
        if isinstance(app, BaseCommand):
            app = type(app).__module__.rpartition(".management.")[0] or "django.core"
        self.phase('fetch_command("runserver")')
        build_handler = command.get_handler

        def get_handler(*args: Any, **kwargs: Any) -> Any:
            handler = build_handler(*args, **kwargs)
            # After, not before: get_wsgi_application() runs django.setup()
            # again, which builds new logging handlers.
            self._request_log_from_events = quiet_request_log()
            self.observer.skip_request_line = request_line_reaches_nobody()
            from devconsole.child import insight, livereload

            # Outermost, the reserved paths (nothing of the project sees
            # them); innermost, the script tag (insight sees the page sent).
            return livereload.wrap(handler, self.live_reload(), lambda app: insight.wrap(app, self.observer))

        command.get_handler = get_handler
        # The migrations check runs in the background once serving (see _checks).
        command.check_migrations = lambda: None
        run_args = [self.args.addrport, "--noreload", "--skip-checks"]
        if self.args.nothreading:
            run_args.append("--nothreading")
        if self.args.ipv6:
            run_args.append("--ipv6")
        # The user's other runserver options, parsed by the command that wins:
        # one it does not know is an error of that parser, shown as such.
        run_args += self.args.runserver_arg
        # What BaseCommand.run_from_argv does, minus turning errors into sys.exit().
        from django.core.management.base import CommandError

        try:
            options = command.create_parser("manage.py", "runserver").parse_args(run_args)
        except CommandError as exc:
            message = str(exc).removeprefix("Error: ")
            raise RunserverOptionsError(f"{class_path(type(command))}: {message}") from None
        handle_default_options(options)
        cmd_options = vars(options)
        cmd_args = cmd_options.pop("args", ())
        self.server_kind = self._choose_server(command, cmd_options)
        self._command, self._app_label = command, app
        self._cmd_args, self._cmd_options = cmd_args, cmd_options

    def _choose_server(self, command: Any, options: dict[str, Any]) -> ServerKind:
        """Give ``command`` a server on the console's socket; say which kind.

        ``wsgi``: a ``socketserver`` class, instrumented (the path that is
        benchmarked: nothing else is added to it). ``asgi``: Daphne's
        ``Server`` (Channels' runserver), see :mod:`.asgi`. Anything else is
        a class devconsole cannot hand the socket to: rather than a 500 for
        every request, the project is served by Django's own WSGI runserver
        and one line says so.
        """
        import socketserver

        from django.core.management.commands.runserver import Command as CoreRunserver

        server_cls = command.server_cls
        if options.get("use_asgi") is False:
            # Daphne's --noasgi: its inner_run would swap in Django's plain
            # server class, bound by itself; run Django's inner_run directly.
            server_cls = CoreRunserver.server_cls
            command.inner_run = lambda *args, **kwargs: CoreRunserver.inner_run(command, *args, **kwargs)
        if isinstance(server_cls, type) and issubclass(server_cls, socketserver.BaseServer):
            command.server_cls = instrument_server(server_cls, self.args.listen_fd, self.observer)
            return "wsgi"
        from devconsole.child.asgi import daphne_server, is_daphne_server

        if is_daphne_server(server_cls):
            command.server_cls = daphne_server(server_cls, self.args.listen_fd, self.observer)
            # Daphne's inner_run runs the system checks before serving even
            # with --skip-checks; they run in the background here instead.
            command.check = lambda *args, **kwargs: None
            return "asgi"
        name = class_path(server_cls) if isinstance(server_cls, type) else repr(server_cls)
        message = (
            f"devconsole cannot serve with {name} (the server class of {class_path(type(command))}); "
            "serving the project with Django's WSGI runserver instead"
        )
        sys.stderr.write(f"devconsole: {message}\n")
        self.emitter.send({"type": "error", "phase": "server class", "message": message, "traceback": ""})
        command.server_cls = instrument_server(CoreRunserver.server_cls, self.args.listen_fd, self.observer)
        command.inner_run = lambda *args, **kwargs: CoreRunserver.inner_run(command, *args, **kwargs)
        return "wsgi"

    def prebuild_handler(self) -> None:
        """Build the handler now; ``inner_run`` then gets this one."""
        command = self._command
        if self.server_kind != "wsgi":
            return  # Daphne builds its application in inner_run
        handler = command.get_handler(*self._cmd_args, **self._cmd_options)
        command.get_handler = lambda *args, **kwargs: handler
        self.phase("WSGI handler")

    def serve(self) -> None:
        """Resolve runserver, import the URLconf, serve; then obey the console.

        Runs after :meth:`setup`, in this process or in a child forked from a
        fork server that did the setup (a spare has done :meth:`prepare` already).
        """
        if self._command is None:
            self.prepare()
        command, app = self._command, self._app_label
        cmd_args, cmd_options = self._cmd_args, self._cmd_options
        if self.gated:
            # A reload, until the first response: the threads starting the
            # server, reading ``accept`` and answering take turns at once.
            sys.setswitchinterval(RELOAD_SWITCH_INTERVAL_S)
        urlconf_error = self._import_urlconf()
        self.phase("URLconf import")
        if self._urlconf_event is not None:
            # Django's own debug page cannot render when the URLconf does not
            # import (it resolves the URL again): serve the traceback ourselves
            # until the next save fixes it.
            from devconsole.child import livereload
            from devconsole.child.errorpage import error_app

            error_wsgi = livereload.wrap(error_app(self._urlconf_event), self.live_reload())
            command.get_handler = lambda *args, **kwargs: error_wsgi
        failure: list[BaseException] = []

        def serve() -> None:
            try:
                command.execute(*cmd_args, **cmd_options)
            except BaseException as exc:
                failure.append(exc)
            finally:
                self.observer.serving.set()

        try:  # breakpoint()/input() in a view: the console's terminal (child/debugger.py),
            # before the first request can be accepted
            from devconsole.child import debugger

            debugger.install(generation=self.args.generation, observer=self.observer)
        except Exception as exc:
            self.emitter.send(_error_event("debugger", exc))
        gate = self._gate(command) if self.gated else None
        self.server_thread = threading.Thread(target=serve, name="django-main-thread", daemon=True)
        self.server_thread.start()
        if gate is not None and not self._await_accept(gate):
            return
        self.observer.serving.wait()
        if failure:
            raise failure[0]
        self.phase("serve_forever")
        import django as dj

        cls = type(command)
        server = self.observer.server
        if self.server_kind == "asgi":
            from devconsole.child.asgi import application_path

            handler = application_path(server)
        else:
            handler = class_path(server.RequestHandlerClass.dc_base)
        hello: HelloEvent = {
            "type": "hello",
            "server_kind": self.server_kind,
            "v": protocol.PROTOCOL_VERSION,
            "pid": os.getpid(),
            "generation": self.args.generation,
            "python": platform.python_version(),
            "django": dj.get_version(),
            "settings": os.environ.get("DJANGO_SETTINGS_MODULE", ""),
            "runserver": {
                "class": class_path(cls),
                "app": app,
                "mro": [class_path(c) for c in cls.__mro__ if c is not object],
                "shadows": shadowed_apps("runserver", app),
            },
            "server": [class_path(c) for c in type(server).__mro__ if c is not object],
            "handler": handler,
            "listen": {"host": server.server_name, "port": server.server_port},
            "threading": not self.args.nothreading,
            "poll_interval": self.observer.poll_interval if self.server_kind == "wsgi" else None,
            "phases": self.phases,
            "ahead": self.ahead,
            "urlconf_error": urlconf_error,
            # The console writes runserver's request lines from request events.
            "request_log": "events" if self._request_log_from_events else "stderr",
            # The project's files are named from here (a recording keeps it too).
            "root": str(Path(self.args.manage).resolve().parent),
        }
        self.emitter.send(hello)
        if self.server_kind == "wsgi":  # Daphne's ASGI application is not wrapped (no live reload there)
            self.live_reload().report()
        # A reload is timed to this hello: do not let it wait for the flusher.
        self.emitter.flush()
        threading.Thread(target=self._after_serving, name="devconsole-checks", daemon=True).start()
        self._control()

    def _gate(self, command: Any) -> threading.Event:
        """Hold the server at the door: its thread builds the server and
        stops just before the loop's first ``select`` on the shared socket
        until the returned event is set.

        A reload sends ``stop`` to the old generation and ``go`` to this one
        at once: the URLconf import, the thread's start and the server's
        construction happen while the old generation stops, and only what
        is left after ``accept`` (sent once the old one said ``stopping``)
        lies between that and the first byte of new code. Under Daphne the
        server's construction is the serving: the thread waits before it.
        """
        gate = threading.Event()
        cls: Any = command.server_cls
        if self.server_kind == "wsgi" and isinstance(cls, type) and "serve_forever" in vars(cls):
            # The instrumented class is made for this process alone: patched in place.
            inner = vars(cls)["serve_forever"]

            def serve_forever(server: Any, poll_interval: float = 0.5) -> None:
                gate.wait()
                inner(server, poll_interval)

            setattr(cls, "serve_forever", serve_forever)  # noqa: B010 - a class narrowed to ``type``
        else:
            execute = command.execute

            def gated_execute(*args: Any, **kwargs: Any) -> Any:
                gate.wait()
                return execute(*args, **kwargs)

            command.execute = gated_execute
        return gate

    def _await_accept(self, gate: threading.Event) -> bool:
        """Wait until the old generation accepts nothing more: it writes to
        the pipe the console passed here with ``gate`` (or ends, closing
        it), or the console says ``accept``, whichever comes first. False
        when told to stop first (or the console is gone): then nothing was
        served and the process ends. Other messages are kept for
        :meth:`_control`."""
        pipe: int | None = None
        try:
            while True:
                if pipe is not None:
                    readable, _, _ = select.select([self.control.fileno(), pipe], [], [])
                    if pipe in readable and self.control.fileno() not in readable:
                        # Its byte, or its end: nothing reaches its code any
                        # more. The templates it names come with ``accept``,
                        # after this (see _control). A message that waits
                        # comes first: a ``stop`` (a later save replaced
                        # this generation) means it never serves.
                        self._let_in(gate, "", later=True)
                        return True
                message = self.receive_control()
                if message is None or message[0] == "stop":
                    for fd in message[2] if message else []:
                        os.close(fd)
                    return False
                if message[0] == "gate" and message[2]:
                    if pipe is not None:
                        os.close(pipe)
                    pipe, *rest = message[2]
                    for fd in rest:
                        os.close(fd)
                    continue
                if message[0] == "accept":
                    for fd in message[2]:
                        os.close(fd)
                    self._let_in(gate, message[1])
                    return True
                self._early.append(message)
        finally:
            if pipe is not None:
                os.close(pipe)

    def _let_in(self, gate: threading.Event, names: str, *, later: bool = False) -> None:
        """Open the gate: the server's loop accepts from now on. ``later``:
        the templates to load early are not known yet (``accept`` brings
        them, see :meth:`_late_templates`)."""
        self.phase("wait for the old generation")
        # Built while nothing waits for this generation, as soon as it
        # serves: the pages reloading at once find them done.
        self._warm_up(names, later=later)
        gate.set()
        # Let in once: a start that fails after this serves its error page
        # at once (no second ``accept`` will come).
        self.gated = False

    def _warmable(self) -> bool:
        # Nothing to warm for an error page (a failed start serves only that).
        return self._urlconf_event is None and self.server_kind == "wsgi" and self.error_server is None

    def _warm_up(self, names: str, *, later: bool = False) -> None:
        """After a reload: the URL resolvers' reverse tables and the templates
        the previous generation compiled (``names``), built by the server's
        loop when it has nothing else to do (see :mod:`.warmup`). ``later``:
        the names come afterwards (:meth:`_late_templates`)."""
        if not self._warmable():
            return
        from devconsole.child import warmup

        templates = warmup.TemplateNames(warmup.parse_names(names)[::-1])
        if later:
            self._templates_to_come = templates
        self.observer.give_idle_work(warmup.steps(templates))

    def _late_templates(self, names: str) -> None:
        """``accept`` after the old generation's pipe let this one in: the
        templates it names join the warm-up (or start one of their own, if
        the reverse tables are done already)."""
        templates, self._templates_to_come = self._templates_to_come, None
        if templates is None or not self._warmable():
            return
        from devconsole.child import warmup

        names_now = warmup.parse_names(names)[::-1]
        if not names_now or templates.add(names_now):
            return  # the warm-up's steps, still under way, load them in turn
        self.observer.give_idle_work(warmup.template_steps(warmup.TemplateNames(names_now)))
        poke = getattr(self.observer.server, "dc_poke", None)
        if poke is not None:
            poke()  # the loop may sleep in select: it looks at the new work now

    def _after_serving(self) -> None:
        """What the console wants to know but the first response must not wait for.

        Run once the first request is answered (or after a second): in the
        same process, checks would compete with it for the GIL.
        """
        self.observer.first_request.wait(AFTER_SERVING_DELAY)
        sys.setswitchinterval(self._switch_interval)
        for pid in self._to_reap:
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, 0)
        skip_checks = "--skip-checks" in self.args.runserver_arg  # the user asked: no background checks either
        # The reports below list every imported module (~20 ms of the
        # interpreter's lock in a large project): after a reload they too
        # wait for the pages' other requests (stylesheets, scripts, a second
        # tab's page) instead of taking the lock from them.
        self._wait_quiet(time.monotonic() + CHECKS_QUIET_MAX_S)
        try:
            from devconsole.child.watchlist import watch_event

            self.emitter.send(cast(WatchEvent, watch_event(Path(self.args.manage))))
        except Exception as exc:
            self.emitter.send(_error_event("file_changed", exc))
        self._report_modules()
        if not skip_checks:
            self._wait_quiet(time.monotonic() + CHECKS_QUIET_MAX_S)
            self._checks()

    def _wait_quiet(self, deadline: float) -> None:
        """Until no request was answered, or under way, for
        :data:`CHECKS_QUIET_S` (or ``deadline`` came). A connection waiting
        for its next request (a page's keep-alive one, a browser's spare
        connection) is no request."""
        observer = self.observer
        while (remaining := deadline - time.monotonic()) > 0:
            seen = observer.requests_total
            time.sleep(min(CHECKS_QUIET_S, remaining))
            if observer.requests_total == seen and not observer.handling():
                return

    def _report_modules(self) -> None:
        """Tell the console which library modules (from outside the project)
        this generation imported that its fork server did not hold, and the
        regular expressions it compiled: the next spare imports and compiles
        them ahead (and level 1 imports the modules, when it holds libraries),
        so that the next generation imports only the project's own modules."""
        try:
            from devconsole.child.watchlist import library_module_names

            # Those the fork server held are left out before any path is resolved.
            names = library_module_names(
                Path(self.args.manage).resolve().parent,
                [
                    n
                    for n in list(sys.modules)
                    if n not in self._modules_at_start and not n.startswith(("devconsole.", "__"))
                ],
            )
        except Exception:
            return
        from devconsole.child.warmup import compiled_patterns, normalized_patterns

        try:
            # The regular expressions compiled here (the URL patterns), and the
            # patterns the reverse tables normalized: the next spare compiles
            # and normalizes them ahead too.
            control.send(self.control, "patterns", compiled_patterns())
            control.send(self.control, "normalized", normalized_patterns())
        except Exception:  # the console gone, or a listing that failed: only hints are lost
            pass
        from devconsole.child.watchlist import project_imports

        try:
            # The project modules imported here beyond the fork server's, and
            # what each refers to: the next spare imports ahead those that no
            # recent save changed and that import none that one did.
            root = Path(self.args.manage).resolve().parent
            control.send(
                self.control, "project", project_imports(root, self._modules_at_start, control.MAX_MESSAGE // 2)
            )
        except OSError:
            pass
        chunk: list[str] = []
        size = 0
        for name in [*names, ""]:
            # Said even when there is none (an empty message), and last: the
            # console then knows the fork server held everything this one
            # needed, and forks the next spare with every hint above.
            if (chunk or not names) and (not name or size + len(name) + 1 > control.MAX_MESSAGE // 2):
                try:
                    control.send(self.control, "modules", " ".join(chunk))
                except OSError:
                    return
                chunk, size = [], 0
            if name:
                chunk.append(name)
                size += len(name) + 1

    def _import_urlconf(self) -> str | None:
        """Import the URLconf and its views now, as the first request would."""
        try:
            from django.urls import get_resolver

            get_resolver().url_patterns  # noqa: B018
        except Exception as exc:
            self._urlconf_event = _error_event("URLconf import", exc)
            self.emitter.send(self._urlconf_event)
            return f"{type(exc).__name__}: {exc}"
        return None

    def _checks(self) -> None:
        from django.db import DEFAULT_DB_ALIAS, connections

        messages: list[CheckMessage] = []
        event: ChecksEvent = {"type": "checks", "messages": messages, "migrations": None, "error": None, "ms": 0.0}
        started = time.perf_counter()
        try:
            from django.core import checks

            for message in checks.run_checks(include_deployment_checks=False):
                if message.is_silenced():
                    continue
                messages.append(
                    {
                        "level": _level_name(message.level),
                        "id": message.id or "",
                        "msg": str(message.msg),
                        "obj": str(message.obj) if message.obj is not None else "",
                        "hint": str(message.hint or ""),
                    }
                )
            from django.db.migrations.executor import MigrationExecutor

            executor = MigrationExecutor(connections[DEFAULT_DB_ALIAS])
            plan = executor.migration_plan(executor.loader.graph.leaf_nodes())
            event["migrations"] = len(plan)
        except Exception as exc:
            event["error"] = f"{type(exc).__name__}: {exc}"
        finally:
            for conn in connections.all(initialized_only=True):
                conn.close()
        event["ms"] = round((time.perf_counter() - started) * 1000, 1)
        self.emitter.send(event)

    # control ----------------------------------------------------------------
    def _control(self) -> None:
        """Main thread: obey the console until it says stop (or goes away)."""
        successor = False
        while True:
            message = self._early.pop(0) if self._early else self.receive_control()
            if message is None:
                break  # the console is gone
            word, arg, fds = message
            if word == "stop":
                # With the next generation's gate: written where this one says
                # ``stopping`` (see _say_stopping), closed by its end anyway.
                self._successor_gate = fds[0] if fds else None
                for fd in fds[1:]:
                    os.close(fd)
                successor = arg == control.STOP_SUCCESSOR
                break
            if word == "adopt" and fds:
                self._adopt(fds[0], control.header_of(arg))
                fds = fds[1:]
            elif word == "file_changed":
                self._file_changed(arg)
            elif word == "accept":
                self._late_templates(arg)
            elif word == "insight":
                self._insight(arg == "on")
            elif word == "livereload" and self.server_kind == "wsgi":
                # Daphne's ASGI application is not wrapped: nothing to switch.
                self.live_reload().set_enabled(arg == "on")
            for fd in fds:
                os.close(fd)
        self.stop(successor=successor)

    def reap_later(self, pid: int) -> None:
        """A child this process ended, reaped once serving has begun."""
        self._to_reap.append(pid)

    def receive_control(self) -> tuple[str, str, list[int]] | None:
        """The console's next control message; None once it is gone."""
        try:
            return control.receive(self.control)
        except OSError:
            return None

    def _adopt(self, fd: int, header: control.Header) -> None:
        """Serve a connection an older generation handed over (see
        :mod:`.handover`); an ASGI server cannot take one: it is closed."""
        adopt = getattr(self.observer.server or self.error_server, "dc_adopt", None)
        if adopt is None or self.server_kind != "wsgi":
            os.close(fd)
            return
        adopt(fd, header)

    def live_reload(self) -> LiveReload:
        """This generation's live reload (see :mod:`.livereload`)."""
        from devconsole.child import livereload

        switch = self.args.browser_reload
        return livereload.install(
            lambda: int(self.args.generation),
            self.emitter.send,
            enabled=None if switch is None else switch == "on",
            run=self.args.run_id or "",
            threaded=not self.args.nothreading,
        )

    def _insight(self, on: bool) -> None:
        try:
            from devconsole.child import insight  # type: ignore[attr-defined,unused-ignore]
        except ImportError:
            return
        set_enabled = getattr(insight, "set_enabled", None)
        if set_enabled is not None:
            set_enabled(on)

    def _file_changed(self, path: str) -> None:
        try:
            from django.utils.autoreload import file_changed

            results = file_changed.send(sender=None, file_path=Path(path))
            handled = any(result for _, result in results)
        except Exception as exc:
            self.emitter.send(_error_event("file_changed", exc))
            handled = False
        # The open pages follow: a template taken reloads them, a static
        # file (nothing to restart for it) swaps their CSS or reloads them.
        handled = self.live_reload().file_changed(path, handled) or handled
        answer: FileChangedEvent = {"type": "file_changed", "path": path, "handled": handled}
        self.emitter.send(answer)
        self.emitter.flush()  # the console waits for this answer

    def _on_sigterm(self, signum: int, frame: Any) -> None:
        """The console cuts this generation (SIGTERM): what it counted still
        reaches the console (see :meth:`_terminate`), then it dies of SIGTERM.
        The work is done on a thread of its own: the main thread may hold the
        emitter's lock right now."""
        signal.signal(signal.SIGTERM, signal.SIG_DFL)  # a second one ends it at once
        if self._terminating:
            return
        self._terminating = True
        threading.Thread(target=self._terminate, name="devconsole-sigterm", daemon=True).start()

    def _terminate(self) -> None:
        """Accept nothing more; write the pending events and the final
        totals (requests still in flight are cut: the console makes them
        rows saying so when this process exits); then die of SIGTERM."""
        self.observer.stopping = True
        try:
            bye: ByeEvent = {"type": "bye", "in_flight": self.observer.busy()}
            self.emitter.send(bye)
            self.emitter.close()
        finally:
            _flush_output()
            os.kill(os.getpid(), signal.SIGTERM)

    def stop(self, *, successor: bool = False) -> None:
        """Stop accepting, let requests in progress finish, then go.

        ``successor``: the console starts the next generation on this socket
        (a reload): the pages' streams are told so, and reload at once.

        A request being handled is never cut here, however long it takes (a
        stream included): the console says this generation is draining and
        ends the process itself if the user cuts it. A connection accepted
        but still silent (no request line yet) is waited for only up to
        :data:`DRAIN_TIMEOUT`.
        """
        server = self.observer.server or self.error_server
        # From now on nothing more is accepted here: connections that arrive
        # wait in the shared backlog for the next generation.
        self.observer.stopping = True
        handover = self.observer.handover
        wsgi = self.server_kind == "wsgi"
        if handover is not None and wsgi:
            # Idle keep-alive connections move to the next generation now,
            # not after serve_forever's next poll: from here on a request
            # sent on one reaches the next generation, never this one.
            handover.stop()
        # Open pages' streams end now (they reconnect to the next generation,
        # or, told one comes, reload: nothing sent from now on reaches this
        # one, see the two steps above): a stream must not keep it draining.
        live = self.live_reload()
        live.stop(0, successor=successor)
        if wsgi or server is None:
            self._say_stopping()  # a WSGI server accepts and reads nothing more from here on
        # Said before this wait: the next generation serves meanwhile.
        live.wait_ended(0.2)
        if server is not None:
            server.shutdown()
            if not wsgi:
                self._say_stopping()  # an ASGI server stops listening in shutdown()
            self._drain()
            finish = getattr(server, "dc_finish", None)
            if finish is not None:
                finish()  # an ASGI server: its reactor stops now, not before
        bye: ByeEvent = {"type": "bye", "in_flight": self.observer.busy()}
        # Said on the control channel first: the event pipe may be full of a
        # backlog the console has still to read, and a generation with no
        # request left must not be cut for the time that takes.
        try:
            control.send(self.control, "bye")
        except OSError:
            pass
        self.emitter.send(bye)
        self.emitter.close()

    def _say_stopping(self) -> None:
        """Tell the console that nothing new reaches this generation's code
        (it waits for this before the next generation serves)."""
        from devconsole.child.warmup import template_names

        gate, self._successor_gate = self._successor_gate, None
        if gate is not None:
            # The next generation serves from now on (it does not wait for
            # the console to pass ``stopping`` on).
            with contextlib.suppress(OSError):
                os.write(gate, b"x")
            os.close(gate)
        try:
            # With the names of the templates compiled here: the next
            # generation loads them (its own, from the files) while the
            # pages reload.
            control.send(self.control, "stopping", template_names())
        except OSError:
            pass

    def _drain(self) -> None:
        """Wait for the requests in flight, telling the console how many are left.

        Under WSGI, idle keep-alive connections are waited for too (bounded
        like silent ones): each is being handed to the next generation, and
        exiting first would close it under a client that may be sending.
        """
        deadline = time.monotonic() + DRAIN_TIMEOUT
        waiting = ("reading", "idle") if self.server_kind == "wsgi" else ("reading",)
        told = 0
        while True:
            states = [conn.state for conn in list(self.observer.conns.values())]
            handling = sum(1 for state in states if state == "handling")
            reading = sum(1 for state in states if state in waiting)
            if not handling and (not reading or time.monotonic() >= deadline):
                break
            if handling != told:
                told = handling
                self._tell_draining(handling)
            time.sleep(0.01)
        if told:
            self._tell_draining(0)

    def _tell_draining(self, in_flight: int) -> None:
        event: DrainingEvent = {"type": "draining", "in_flight": in_flight}
        self.emitter.send(event)
        self.emitter.flush()

    # when the project cannot start --------------------------------------------
    def serve_error(self, phase: str, exc: BaseException) -> None:
        """Answer every request with a 500 page showing ``exc``, until stopped."""
        event = _error_event(phase, exc)
        self.emitter.send(event)
        self.emitter.flush()  # a reload waits for this to know it failed
        sys.stderr.write(event["traceback"])
        from devconsole.child import livereload
        from devconsole.child.errorpage import make_error_server

        live = self.live_reload()
        self.error_server = make_error_server(
            self.args.listen_fd,
            self.observer,
            event,
            wrap=lambda app: livereload.wrap(app, live),
        )
        live.report()
        if self.gated and not self._await_accept(threading.Event()):
            return
        threading.Thread(target=self.error_server.serve_forever, name="devconsole-error-server", daemon=True).start()
        self.observer.serving.wait(5)
        self._control()


def _level_name(level: int) -> str:
    from django.core import checks

    for name in ("CRITICAL", "ERROR", "WARNING", "INFO", "DEBUG"):
        if level >= getattr(checks, name):
            return name
    return "DEBUG"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="devconsole-server")
    parser.add_argument("--manage", required=True)
    parser.add_argument("--settings")
    parser.add_argument("--pythonpath")
    parser.add_argument("--listen-fd", type=int, required=True)
    parser.add_argument("--events-fd", type=int, required=True)
    parser.add_argument("--control-fd", type=int, required=True)
    parser.add_argument("--addrport", required=True)
    parser.add_argument("--generation", type=int, default=1)
    parser.add_argument("--nothreading", action="store_true")
    # Live reload's switch as the console has it when it starts this one, and
    # the console run's id (a page of an earlier run is never current).
    parser.add_argument("--browser-reload", choices=("on", "off"))
    parser.add_argument("--run-id", default="")
    parser.add_argument("--ipv6", action="store_true")
    parser.add_argument(
        "--runserver-arg", action="append", default=[], help="one more argument for runserver (repeatable)"
    )
    return parser


def run_server(process: ServerProcess) -> None:
    """Run the project's manage.py into :meth:`ServerProcess.entry`; serve an
    error page if it fails. Returns when the console says stop."""
    args = process.args
    try:
        run_manage_py(
            Path(args.manage), process.entry, argv=["runserver"], settings=args.settings, pythonpath=args.pythonpath
        )
    except BaseException as exc:
        if isinstance(exc, KeyboardInterrupt):
            raise
        process.serve_error(failed_phase(process.phases, exc), exc)


def main(argv: list[str] | None = None) -> None:
    process = ServerProcess(build_parser().parse_args(argv))
    process.emitter.start()
    run_server(process)
    sys.stdout.flush()
    sys.stderr.flush()
    # User code may have left non-daemon threads behind: do not wait for them.
    os._exit(0)


_PHASE_AFTER: dict[str, str] = {
    "manage.py": "settings import",
    "settings import": "django.setup()",
    "django.setup()": 'fetch_command("runserver")',
    'fetch_command("runserver")': "URLconf import",
    "URLconf import": "runserver",
    # A level 1's last steps (the imports ahead, the listing) fail as its setup.
    "runserver and middleware import": "django.setup()",
    # A level 1 forked from the apps level: its part of django.setup() done.
    "the project's models and ready()": 'fetch_command("runserver")',
}


def failed_phase(phases: list[PhaseTiming], exc: BaseException) -> str:
    """The start-up phase that ``exc`` ended: the one after the last that
    finished (``phases``), or the user's options for runserver."""
    if isinstance(exc, RunserverOptionsError):
        return "runserver options"
    if not phases:
        return "manage.py"
    return _PHASE_AFTER.get(phases[-1]["name"], "runserver")


if __name__ == "__main__":
    main()
