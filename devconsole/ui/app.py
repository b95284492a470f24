"""The console application: one event state, views that read it on a timer."""

from __future__ import annotations

import asyncio
import gc
import os
import signal
import socket
import sys
import threading
import time
from collections.abc import Iterable
from pathlib import Path, PurePath
from typing import IO, Any, ClassVar, cast

from textual.app import App, ScreenStackError, SystemCommand
from textual.binding import Binding, BindingType
from textual.driver import Driver
from textual.drivers.linux_driver import LinuxDriver
from textual.screen import Screen
from textual.timer import Timer

from devconsole.console.debugger import DebugBroker, DebugSessionInfo, bridge
from devconsole.console.listen import ListenAddress
from devconsole.console.processes import EXIT_SIGNALS
from devconsole.console.project import Project
from devconsole.console.reloader import Reloader
from devconsole.console.session import Session
from devconsole.console.supervisor import Supervisor
from devconsole.model.recording import Recording, play
from devconsole.model.state import ConnRow, ServerState
from devconsole.ui.screens.anatomy import AnatomyScreen
from devconsole.ui.screens.commands import CommandsScreen, running_commands
from devconsole.ui.screens.dashboard import DashboardScreen
from devconsole.ui.screens.help import HelpScreen, QuitScreen
from devconsole.ui.screens.logview import LogScreen
from devconsole.ui.screens.processes import ProcessesScreen

#: How often views pull new events from the state (seconds), while events come.
TICK = 0.1
#: With no new events, views still refresh this often while ages shown in
#: seconds move (open or lingering sockets, side processes, a draining generation).
IDLE_REFRESH = 1.0
#: ... and this often while only the accepts sparkline of the last minute
#: moves: a redraw of it is most of what an idle console costs, and a slide
#: of two columns every two seconds reads the same as one every second.
SLIDE_REFRESH = 2.0
#: Events wake the view at once, but a busy server not more often than this.
WAKE_GAP = 0.04
#: A restart holds the redraws this long at most, and this long after its
#: new generation said hello: on two cores a frame drawn meanwhile (5-10 ms
#: of CPU) is taken from the new server's first answer.
RELOAD_HOLD = 0.15
SERVED_HOLD = 0.02
#: While held, a pending refresh looks again this often.
HOLD_STEP = 0.01
#: How long after the last event something on screen still ages (the accepts
#: sparkline covers a minute): after that an idle console sleeps until the
#: next event, key or view change (no timer wakes it).
AGEING = 61.0
#: Signals that end the console the way ``q`` does: a closed terminal window
#: (SIGHUP), ``kill`` (SIGTERM). The exit status is 128 + the signal's number.


class DevConsoleApp(App[int]):
    """devconsole: Django's development server, made visible."""

    TITLE = "devconsole"
    #: Absolute, so subclasses defined elsewhere (tests, embedders) find it too.
    #: All loaded at start: a screen-level CSS_PATH re-parses every sheet when
    #: the screen first opens (over a second for the Commands view).
    CSS_PATH: ClassVar[list[str | PurePath]] = [
        str(Path(__file__).parent / "styles" / "devconsole.tcss"),
        str(Path(__file__).parent / "styles" / "commands.tcss"),
    ]
    #: One mode per view; each keeps its own screen stack (detail, help).
    MODES: ClassVar[dict[str, Any]] = {
        "dashboard": DashboardScreen,
        "log": LogScreen,
        "anatomy": AnatomyScreen,
        "commands": CommandsScreen,
        "processes": ProcessesScreen,
    }
    #: The first view. It is opened in ``on_mount``, not through
    #: ``DEFAULT_MODE``: Textual builds a default mode's screen before that
    #: mode's stack exists, and with the eager task factory (Python 3.12+)
    #: an ``Input`` mounted in that window asks ``App.screen`` for the
    #: selection and gets ``ScreenStackError``. Opened from ``on_mount``,
    #: the app already has its default screen, so every widget of the view
    #: mounts with an active screen on every Python.
    FIRST_VIEW = "dashboard"
    #: Views for the palette and help: mode → (title, what it shows).
    VIEWS: ClassVar[dict[str, tuple[str, str]]] = {
        "dashboard": ("Dashboard", "Requests, sockets, the select loop and autoreload, live"),
        "log": ("Log", "The project's stdout/stderr and the django.server log, searchable"),
        "anatomy": ("Anatomy", "The chain runserver went through, with measured durations"),
        "commands": ("Commands", "Find, fill in and run management commands"),
        "processes": ("Processes", "The side processes of Procfile.dev: states, controls, their own logs"),
    }
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("d", "view('dashboard')", "Dashboard", id="view.dashboard", tooltip="The four live panels"),
        Binding("l", "view('log')", "Log", id="view.log", tooltip="stdout/stderr and the django.server log"),
        Binding("a", "view('anatomy')", "Anatomy", id="view.anatomy", tooltip="What runserver went through"),
        Binding(
            "c", "view('commands')", "Commands", id="view.commands", tooltip="Find, fill in and run management commands"
        ),
        Binding(
            "p",
            "view('processes')",
            "Processes",
            id="view.processes",
            tooltip="The side processes of Procfile.dev: state, restarts, CPU, memory, their logs",
        ),
        Binding("r", "restart", "Restart", id="restart", tooltip="Restart the server child (the socket stays open)"),
        Binding(
            "w",
            "toggle_browser_reload",
            "Live reload",
            id="browser-reload",
            tooltip=(
                "Live reload on/off: open browser pages reload when new code serves or a template changes, "
                "and swap a saved stylesheet in place (status line: pages following)"
            ),
        ),
        Binding("question_mark", "help", "Help", id="help", tooltip="Every key, here"),
        Binding(
            "x",
            "cut_draining",
            "Cut draining",
            id="cut-draining",
            tooltip="Cut draining requests: end the old generations still finishing requests after a reload",
        ),
        Binding(
            "b",
            "back_to_debugger",
            "Back to the debugger",
            id="debugger.back",
            tooltip="Back to the request left paused in the debugger (Ctrl+] d)",
        ),
        Binding("q", "quit_console", "Quit", id="quit", tooltip="Quit (asks first while commands run)"),
        Binding("ctrl+q", "quit", "Quit now", show=False, priority=True, id="quit-now", tooltip="Quit without asking"),
    ]

    def __init__(
        self,
        *,
        project: Project | None = None,
        address: ListenAddress | None = None,
        sock: socket.socket | None = None,
        reload: bool = True,
        use_threading: bool = True,
        record: IO[str] | None = None,
        recording: Recording | None = None,
        speed: float = 0.0,
        state: ServerState | None = None,
        session: Session | None = None,
        debug_broker: DebugBroker | None = None,
        own_process: bool = False,
    ) -> None:
        super().__init__()
        #: The app is its process (the command line, a benchmark), not one
        #: app of many (tests): what it made by its first frame is frozen.
        self._own_process = own_process
        self.project = project
        self.address = address
        self.reload_enabled = reload
        self.recording = recording
        self._speed = speed
        self._stop_replay = threading.Event()
        clock = None
        if recording is not None:
            last = max(recording.last_ts, float(recording.header.get("started") or 0.0) + recording.duration)
            clock = lambda: last  # noqa: E731 - replays show the recording's own time
        if session is None and project is not None and address is not None and sock is not None:
            session = Session(
                project, address, sock, state=state, reload=reload, use_threading=use_threading, record=record
            )
        #: The live server (None when replaying): may have been started before the UI.
        self.session = session
        if session is not None:
            self.project = session.project
            self.address = session.address
            self.reload_enabled = session.reload_enabled
            self.state = session.state
        else:
            self.state = state or (ServerState(clock=clock) if clock else ServerState())
        self.supervisor: Supervisor | None = session.supervisor if session is not None else None
        #: Starts and restarts the server; watches only when reload is on (no fork servers otherwise).
        self.reloader: Reloader | None = session.reloader if session is not None else None
        self._shutdown_done = False
        #: Server children's debugging sessions (breakpoint(), input(), post-mortem).
        self.debug_broker = debug_broker
        self._bridging = False
        #: Whether a session was left paused (Ctrl+] d) at the last tick (the ``b`` key shows then).
        self._detached_seen = False
        #: The handlers :data:`EXIT_SIGNALS` had before the app took them over.
        self._previous_handlers: dict[int, Any] = {}
        #: (state version, screen, monotonic time) of the last refresh.
        self._ticked: tuple[int, object, float] = (-1, None, 0.0)
        #: The TICK timer runs only while events come (or the view asks for
        #: every tick); the IDLE_REFRESH one only while something ages, the
        #: SLIDE_REFRESH one while only the last minute's sparkline does.
        self._ticker: Timer | None = None
        self._ager: Timer | None = None
        self._slider: Timer | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        #: True while the TICK timer is paused: the next event wakes it.
        self._asleep = False
        #: Counts the wake-ups asked for (events, debugging sessions): one
        #: asked for during a tick keeps the console awake for the next.
        self._pokes = 0
        #: (state activity, monotonic time) when the activity last moved.
        self._activity_seen: tuple[int, float] = (-1, time.monotonic())
        #: Set by a first ``q`` with requests in flight: what it waits for.
        self.quit_waiting: str | None = None
        #: Until when (monotonic) refreshes wait: a restart is under way.
        self._hold_until = 0.0
        self._hold_timer: Timer | None = None
        #: Generations draining at the last tick (the ``x`` key shows while any do).
        self._draining_seen: tuple[int, ...] = ()
        #: Whether the project declares side processes (the ``p`` key shows then).
        self._processes_seen = False
        if recording is not None:
            self.sub_title = f"replay · {len(recording.events)} events"
        elif self.address is not None:
            self.sub_title = self.address.url

    def get_driver_class(self) -> type[Driver]:
        """Textual's driver, but on Linux its input thread sleeps until a
        key (see :mod:`devconsole.ui.driver`)."""
        driver_class = super().get_driver_class()
        if driver_class is LinuxDriver:
            from devconsole.ui.driver import QuietLinuxDriver

            return QuietLinuxDriver
        return driver_class

    def on_mount(self) -> None:
        self._take_exit_signals()
        self.switch_mode(self.FIRST_VIEW)
        if self.session is not None:
            reloader = self.session.reloader
            reloader.on_restart = lambda: self.hold_refresh(RELOAD_HOLD)
            reloader.on_restarted = lambda: self.hold_refresh(SERVED_HOLD)
            self.session.start()
        elif self.recording is not None:
            self._replay()
        self._loop = asyncio.get_running_loop()
        self._ticker = self.set_interval(TICK, self._tick)
        self._ager = self.set_interval(IDLE_REFRESH, self._age, pause=True)
        self._slider = self.set_interval(SLIDE_REFRESH, self._age, pause=True)
        # Any event wakes a sleeping console; new rows are drawn at once
        # (at most every WAKE_GAP), not at the next tick.
        self.state.on_change = self._wake_from_thread
        self.state.on_activity = self._activity_from_thread
        if self.debug_broker is not None:
            self.debug_broker.on_change = self._wake_from_thread
        self.theme_changed_signal.subscribe(self, self._theme_changed)
        self.screen_change_signal.subscribe(self, self._screen_changed)
        if self._own_process:
            # What exists by the first frame (modules, Textual, the views)
            # lives as long as the console: out of the collector's sight, a
            # full collection under load walks only what came since (its
            # pauses were most of the Requests table's lag behind saturation).
            self.call_after_refresh(gc.freeze)

    def _screen_changed(self, _screen: object) -> None:
        """A pushed or popped screen catches up with the state at once."""
        self._wake()
        self.call_after_refresh(self._tick)

    def _wake_from_thread(self) -> None:
        """An event was applied (any thread): wake the views if they sleep.
        Costs an attribute read while they are awake."""
        self._pokes += 1
        if self._asleep and self._loop is not None:
            self._asleep = False
            try:
                self._loop.call_soon_threadsafe(self._wake)
            except RuntimeError:
                pass  # the loop is closed: the app is gone

    def _wake(self) -> None:
        self._asleep = False
        if self._ticker is not None:
            self._ticker.resume()

    def wake(self) -> None:
        """Tick again (from the app's thread): a view has something to poll."""
        self._wake()

    def _age(self) -> None:
        """While asleep and something on screen ages: once a second, or
        every two while only the sparkline slides."""
        if not self._asleep:
            for timer in (self._ager, self._slider):
                if timer is not None:
                    timer.pause()  # the TICK timer refreshes meanwhile
            return
        self.refresh_views()

    def _maybe_sleep(self, screen_ready: bool, pokes: int | None = None) -> None:
        """Pause the TICK timer when a second passed with no event and the
        view needs no tick; keep a once-a-second refresh only while something
        ages (recent requests, open or lingering connections, side processes).
        ``pokes``: :attr:`_pokes` when the tick began; a wake-up asked for
        since (a debugging session queued while the view refreshed, which
        moves no activity) keeps it awake."""
        if self._ticker is None or self._ager is None or self._slider is None:
            return
        now = time.monotonic()
        state = self.state
        if state.activity != self._activity_seen[0]:
            self._activity_seen = (state.activity, now)
        idle_for = now - self._activity_seen[1]
        needs_ticks = (
            not screen_ready
            or idle_for < IDLE_REFRESH
            or self.quit_waiting is not None
            or self._bridging
            or bool(getattr(self._screen_or_none(), "REFRESH_EVERY_TICK", False))
        )
        if needs_ticks:
            if self._asleep:
                self._wake()
            return
        if not self._asleep:
            # Asleep first, then look again: an event applied in between
            # either moved the activity (seen here) or finds _asleep set and
            # wakes the timer (see _wake_from_thread).
            self._asleep = True
            if state.activity != self._activity_seen[0] or (pokes is not None and self._pokes != pokes):
                self._asleep = False
                return
            self._ticker.pause()
        ticking = bool(state.conns) or bool(state.processes) or bool(state.draining)
        sliding = idle_for < AGEING and not ticking
        for timer, wanted in ((self._ager, ticking), (self._slider, sliding)):
            if wanted:
                timer.resume()
            else:
                timer.pause()

    def _screen_or_none(self) -> Screen[Any] | None:
        try:
            return self.screen
        except ScreenStackError:
            return None

    def _theme_changed(self, _theme: object) -> None:
        """Views rebuild their styled rows on their next refresh: make it now."""
        self.refresh_views()

    def _replay(self) -> None:
        assert self.recording is not None
        started = float(self.recording.header.get("started") or 0.0)
        ingest = self.state.ingest

        def sink(event: dict[str, Any]) -> None:
            # The recording's own arrival time, so rates, sparklines and
            # lingering connections replay as they were recorded.
            ingest({**event, "at": started + float(event.get("rt") or 0.0)})

        if self._speed <= 0:
            play(self.recording, sink)
            return
        threading.Thread(
            target=play,
            args=(self.recording, sink),
            kwargs={"speed": self._speed, "stop": self._stop_replay},
            name="devconsole-replay",
            daemon=True,
        ).start()

    def refresh_views(self) -> None:
        """Apply what the state has now to the view on display, now."""
        self._ticked = (-1, None, 0.0)
        self._tick(force=True)

    def hold_refresh(self, seconds: float) -> None:
        """(Any thread.) Draw nothing new for ``seconds`` from now (a restart
        is under way: its CPU is the new server's); what arrives meanwhile
        is drawn right after. A later call replaces the deadline."""
        self._hold_until = time.monotonic() + seconds

    def _after_hold(self) -> None:
        self._hold_timer = None
        self._tick()

    def _activity_from_thread(self) -> None:
        """New events in the state (called from the thread that ingested
        them, once until the next tick): refresh now rather than at the next
        tick, but not more often than every :data:`WAKE_GAP`."""
        if self.is_running:
            try:
                self.call_later(self._tick_soon)  # thread-safe: a message to the app
            except RuntimeError:  # the loop closed meanwhile
                pass

    def _tick_soon(self) -> None:
        wait = WAKE_GAP - (time.monotonic() - self._ticked[2])
        if wait > 0:
            self.set_timer(wait, self._tick)
        else:
            self._tick()

    def _tick(self, force: bool = False) -> None:
        """Only the view on display reads the state: hidden views cost nothing
        and catch up by sequence number when shown again. Held while a
        restart is under way (see :meth:`hold_refresh`), unless ``force``d."""
        held = self._hold_until - time.monotonic()
        if held > 0 and not force and self.is_running:
            if self._hold_timer is None:
                self._hold_timer = self.set_timer(min(held, HOLD_STEP), self._after_hold)
            return
        self.state.woken()
        if not self.is_running:
            return  # shutting down: screens are being taken apart
        pokes = self._pokes
        self._maybe_sleep(self._refresh_tick(), pokes)

    def _refresh_tick(self) -> bool:
        """One refresh of the view on display; False if it is not ready yet."""
        if self.debug_broker is not None and self._debug_tick():
            return True
        draining = tuple(sorted(self.state.draining))
        processes = bool(self.state.processes or self.state.process_error)
        if draining != self._draining_seen or processes != self._processes_seen:
            self._draining_seen = draining
            self._processes_seen = processes
            self.refresh_bindings()
        if self.quit_waiting is not None and not self.state.in_flight():
            self.exit()  # what the first q waited for is done
            return True
        try:
            screen = self.screen
        except ScreenStackError:
            return False  # starting up
        # A view switched to a moment ago may not have composed its panels yet.
        if not screen.is_mounted or not screen.is_attached:
            return False
        refresh = getattr(screen, "refresh_from_state", None)
        if refresh is None:
            return True
        # Nothing new and nothing ageing: an idle console does no work. The
        # select loop's heartbeat, ages and lingering connections move once a
        # second; views that poll something else (command runs) ask for every tick.
        now = time.monotonic()
        version = self.state.activity
        if (
            version == self._ticked[0]
            and screen is self._ticked[1]
            and now - self._ticked[2] < IDLE_REFRESH
            and not getattr(screen, "REFRESH_EVERY_TICK", False)
        ):
            return True
        self._ticked = (version, screen, now)
        refresh(self.state)
        return True

    # -- views and keys --------------------------------------------------------
    def action_view(self, mode: str) -> None:
        """Show a view; its panels catch up with the state on the next tick."""
        if mode not in self.MODES:
            self.notify(f"No view named {mode!r}.", severity="error")
            return
        if self.current_mode != mode:
            self.switch_mode(mode)
        self.call_after_refresh(self._tick)

    def action_help(self) -> None:
        if isinstance(self.screen, HelpScreen):
            return
        self.push_screen(HelpScreen(self.active_keys()))

    def active_keys(self) -> list[tuple[str, str, str]]:
        """``(key, description, tooltip)`` of every binding active on this screen."""
        keys: list[tuple[str, str, str]] = []
        seen: set[tuple[str, str]] = set()
        # The app's own keys (views, quit) first, then the view's, then the focused widget's.
        ranked = sorted(
            self.active_bindings.values(),
            key=lambda active: 0 if active.node is self else 1 if isinstance(active.node, Screen) else 2,
        )
        for active in ranked:
            binding = active.binding
            if binding.system or not binding.description:
                continue
            marker = (binding.action, binding.description)
            if marker in seen:
                continue
            seen.add(marker)
            keys.append((self.get_key_display(binding), binding.description, active.tooltip or binding.tooltip or ""))
        return keys

    def running_commands(self) -> int:
        """Management commands still running."""
        # The commands view keys its runners by app, of any return type.
        return running_commands(cast("App[object]", self))

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "back_to_debugger":
            # Shown (footer, help) only while a request is left paused in the debugger.
            return self.debug_broker is not None and bool(self.debug_broker.detached())
        if action == "view" and parameters == ("processes",):
            # Shown (footer, help) and working once the project declares side
            # processes: read from the state, not from the last tick, so the key
            # works as soon as the events are in (a replay ingests them all at once).
            return bool(self.state.processes or self.state.process_error)
        if action == "toggle_browser_reload":
            return self.supervisor is not None  # nothing to turn in a replay
        if action == "cut_draining":
            # Shown (footer, help) only while an old generation drains.
            return self.supervisor is not None and bool(self.state.draining)
        return True

    def action_toggle_browser_reload(self) -> None:
        if self.supervisor is None:
            return
        on = not self.supervisor.browser_reload
        self.supervisor.set_browser_reload(on)
        self.notify(self._browser_reload_note(on))

    def _browser_reload_note(self, on: bool) -> str:
        """What turning live reload ``on`` (or off) does for the server serving now."""
        if not on:
            return "Live reload off."
        hello = self.state.hello
        live = self.state.live_reload
        if self.state.server_kind == "asgi":
            return "Live reload on, but the ASGI server (Daphne) serves: pages do not follow."
        if hello is not None and hello.threading is False:
            return "Live reload on, but --nothreading: a page's stream would hold the server, pages do not follow."
        if live is not None and not live.debug:
            return "Live reload on, but DEBUG is False: pages do not follow."
        return "Live reload on: pages opened or reloaded from now on follow the code."

    def action_cut_draining(self) -> None:
        if self.supervisor is None:
            return
        cut = self.supervisor.cut_draining("by you")
        if cut:
            self.notify(f"Cutting the requests of {cut} draining generation{'s' if cut != 1 else ''}.")

    def action_quit_console(self) -> None:
        if self.debug_broker is not None and (self.debug_broker.sessions() or self.debug_broker.waiting()):

            def cut(quit: bool | None) -> None:
                if quit and self.debug_broker is not None:
                    self.debug_broker.abort_all()  # the debuggers see EOF: their requests end
                    self.exit()

            self.push_screen(QuitScreen(0, self.debugger_text()), cut)
            return
        running = self.running_commands()
        if not running:
            self._quit_after_requests()
            return

        def answered(quit: bool | None) -> None:
            if quit:
                self.exit()

        self.push_screen(QuitScreen(running), answered)

    def _quit_after_requests(self) -> None:
        """Quit now if no request is in flight; else say what it waits for
        and quit when they are done, or at once on a second ``q`` (they are
        then cut: rows saying ``cut: quit``)."""
        in_flight = self.state.in_flight() if self.supervisor is not None else []
        if not in_flight:
            self.exit()
            return
        if self.quit_waiting is not None:
            assert self.supervisor is not None
            self.supervisor.cut_all("quit")
            self.exit()
            return
        self.quit_waiting = quit_waiting_text(in_flight)
        # Request paths from the network: literal text, never markup.
        self.notify(self.quit_waiting, title="Quitting", timeout=3600, markup=False)

    def get_system_commands(self, screen: Screen[Any]) -> Iterable[SystemCommand]:
        """The palette (Ctrl+P): every view and every action, plus Textual's own."""
        for mode, (title, help_text) in self.VIEWS.items():
            yield SystemCommand(f"View: {title}", help_text, lambda mode=mode: self.action_view(mode))
        yield SystemCommand(
            "Requests: filter", "Show only requests matching a path, status (404, 4xx) or method", self._palette_filter
        )
        yield SystemCommand("Log: search", "Show only log lines containing some text", self._palette_search)
        yield SystemCommand(
            "Restart the server", "Stop the server child and start the next generation", self.action_restart
        )
        yield SystemCommand("Keys", "Every key binding and what it does", self.action_help)
        yield SystemCommand(
            "Quit devconsole", "Stop the server and leave (asks first while commands run)", self.action_quit_console
        )
        for command in super().get_system_commands(screen):
            if command.title not in ("Quit", "Keys"):
                yield command

    async def _palette_filter(self) -> None:
        if self.current_mode != "dashboard":
            await self.switch_mode("dashboard")
        self.call_after_refresh(lambda: self.screen.query_one("#requests").run_action("filter"))

    async def _palette_search(self) -> None:
        if self.current_mode != "log":
            await self.switch_mode("log")
        self.call_after_refresh(lambda: self.screen.run_action("search"))

    def action_restart(self) -> None:
        if self.supervisor is None:
            self.notify("Replaying a recording: there is no server to restart.", severity="warning")
            return
        self.notify("Restarting the server…")
        if self.reloader is not None:
            # Queued to the reloader's thread; it ends as an Autoreload event.
            self.reloader.restart()

    # -- the debugger ------------------------------------------------------------
    def _debug_tick(self) -> bool:
        """Hand the terminal to a server child's debugging session if one
        began; True if the app was suspended meanwhile (or is quitting)."""
        broker = self.debug_broker
        assert broker is not None
        for notice in broker.notices():
            self.notify(notice, markup=False, severity="warning")
        detached = bool(broker.detached())
        if detached != self._detached_seen:
            self._detached_seen = detached
            self.refresh_bindings()
        if self._bridging:
            return False
        info = broker.next_session()
        if info is None:
            return False
        self._bridge(info)
        return True

    def _bridge(self, info: DebugSessionInfo) -> None:
        """Suspend the UI and give the terminal to ``info`` until it ends."""
        broker = self.debug_broker
        assert broker is not None
        from textual.app import SuspendNotSupported

        self._bridging = True
        outcome = "ended"
        try:
            with self.suspend():
                waiting = len(broker.waiting())
                outcome = bridge(info, 0, _terminal_out(), f" (+{waiting} waiting)" if waiting else "")
        except SuspendNotSupported:
            self.notify(
                f"A request waits in the debugger ({info.describe()}) but this terminal cannot be handed over.",
                severity="error",
                markup=False,
            )
            outcome = "ended"
        finally:
            self._bridging = False
            if outcome == "detach":
                broker.detach(info)
            else:
                broker.finish(info)
        if outcome == "quit":
            self.exit()
        elif outcome.startswith("signal:"):
            self.exit(return_code=128 + int(outcome.split(":", 1)[1]))
        else:
            if outcome == "detach":
                self.notify(
                    f"{info.describe()}: left paused in the debugger — b to go back to it",
                    markup=False,
                    severity="warning",
                )
            # Later, not from here: the next tick may bridge the next session,
            # and a refresh from here would nest one bridge in the other.
            self.call_later(self.refresh_views)

    def action_back_to_debugger(self) -> None:
        """Back to the session left paused with Ctrl+] d."""
        broker = self.debug_broker
        if broker is None or self._bridging:
            return
        info = broker.resume()
        if info is None:
            self.notify("No request is left paused in the debugger.", severity="warning")
            return
        self._bridge(info)

    def post_mortem(self, generation: int, token: str) -> None:
        """Open pdb post-mortem on a failure a server generation still keeps
        (``token`` from the exception's ``pm``); the terminal follows."""
        if self.debug_broker is None:
            self.notify("No live server: post-mortem needs one.", severity="warning")
            return
        problem = self.debug_broker.post_mortem(generation, token)
        if problem is not None:
            self.notify(f"post-mortem: {problem}", severity="warning", markup=False)

    def debugger_text(self) -> str:
        """``debugger: GET /bp/ paused at views.py:12 +1 waiting`` or ''."""
        broker = self.debug_broker
        if broker is None:
            return ""
        sessions, waiting = broker.sessions(), broker.waiting()
        if not sessions and not waiting:
            return ""
        head = sessions[0].describe() if sessions else f"{waiting[0].describe()}, waiting for the terminal"
        count = len(waiting) - (0 if sessions else 1)
        extra = f" +{count} waiting" if count else ""
        back = " (b: back to it)" if sessions and sessions[0].detached else ""
        return f"debugger: {head}{extra}{back}"

    # -- signals -------------------------------------------------------------
    def _take_exit_signals(self) -> None:
        """SIGTERM and SIGHUP ask the app to exit, as ``q`` does, so Textual
        restores the terminal (alternate screen left, mouse off, cursor shown)
        instead of the process dying in the default handler with the screen as
        it was. Headless apps (tests) leave the host's handlers alone."""
        if self.is_headless:
            return
        loop = asyncio.get_running_loop()
        for signum in EXIT_SIGNALS:
            previous = signal.getsignal(signum)
            try:
                loop.add_signal_handler(signum, self._exit_on_signal, signum)
            except (NotImplementedError, RuntimeError, ValueError):
                continue  # not POSIX, or not the main thread
            self._previous_handlers[signum] = previous

    def _exit_on_signal(self, signum: int) -> None:
        self.exit(return_code=128 + signum)

    def _give_back_exit_signals(self) -> None:
        """The handlers from before the app (the command line's), so a signal
        during the clean-up after the app is not the default's sudden death."""
        handlers, self._previous_handlers = self._previous_handlers, {}
        if not handlers:
            return
        loop = asyncio.get_running_loop()
        for signum, previous in handlers.items():
            loop.remove_signal_handler(signum)
            signal.signal(signum, previous if previous is not None else signal.SIG_DFL)

    def shutdown(self) -> None:
        """Stop the server child and release the port (idempotent)."""
        if self._shutdown_done:
            return
        self._shutdown_done = True
        self._stop_replay.set()
        if self.debug_broker is not None:
            # First: a request paused in the debugger (attached or detached)
            # sees its terminal close and is answered before its generation stops.
            self.debug_broker.abort_all()
        if self.session is not None:
            # Side processes are asked to stop, not waited for: whoever gave
            # the session waits (the command line, once the terminal is back).
            self.session.close(wait=False)

    def on_unmount(self) -> None:
        self._give_back_exit_signals()
        self.shutdown()


def _terminal_out() -> int:
    """The fd Textual draws on (stderr) when it is the terminal, else stdout."""
    stream = sys.__stderr__
    if stream is not None and os.isatty(stream.fileno()):
        return stream.fileno()
    return 1


def quit_waiting_text(in_flight: list[ConnRow]) -> str:
    """``waiting for 1 request to finish: GET /stream/ — q again to quit now``
    (what the console knows of each: its path, else its connection)."""
    count = len(in_flight)
    what = ", ".join(
        f"{row.method} {row.path}".lstrip()
        if row.path
        else f"generation {row.generation} connection {row.id} from {row.peer}"
        for row in in_flight[:3]
    )
    if count > 3:
        what += f" and {count - 3} more"
    return f"waiting for {count} request{'s' if count != 1 else ''} to finish: {what} — q again to quit now"
