"""The Commands view: the project's management commands, launched from the keyboard.

Left, the catalogue grouped by app (INSTALLED_APPS order, Django's own last)
with a fuzzy filter; right, four tabs: the selected command's help and
provenance, its generated form, the output of a run, the session's history.

The catalogue comes from a child process (:func:`load_catalogue`, ~0.4 s) in
a thread worker, again whenever the server child of a new generation says
hello (its code may have changed). Runs belong to a :class:`CommandRunner`
kept per app, so they and their history outlive switching views; the screen
pulls their output on the app's tick.
"""

from __future__ import annotations

import weakref
from collections.abc import Awaitable
from typing import TYPE_CHECKING, Any, ClassVar

from rich.text import Text
from textual import events, on, work
from textual.app import App, ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, ScrollableContainer, Vertical
from textual.css.query import NoMatches
from textual.fuzzy import Matcher
from textual.notifications import SeverityLevel
from textual.screen import Screen
from textual.widgets import (
    DataTable,
    Footer,
    Header,
    Input,
    OptionList,
    Static,
    TabbedContent,
    TabPane,
)
from textual.widgets.option_list import Option, OptionDoesNotExist

from devconsole.commands.catalogue import Catalogue, CatalogueError, CommandInfo, load_catalogue
from devconsole.commands.forms import CommandForm, Value
from devconsole.commands.runner import MAX_LINES, CommandRunner, Run, RunStatus
from devconsole.ui.widgets.command_detail import app_label, catalogue_summary, command_detail, command_label
from devconsole.ui.widgets.command_form import CommandFormView
from devconsole.ui.widgets.command_palette import ManagementCommandsProvider
from devconsole.ui.widgets.run_output import RunOutput

if TYPE_CHECKING:
    from devconsole.model.state import ServerState

_RUNNERS: weakref.WeakKeyDictionary[App[Any], CommandRunner] = weakref.WeakKeyDictionary()

STATUS_STYLES = {
    RunStatus.RUNNING: "bold",
    RunStatus.SUCCEEDED: "bold green",
    RunStatus.FAILED: "bold red",
    RunStatus.INTERRUPTED: "bold yellow",
    RunStatus.ERROR: "bold red",
}


def runner_for(app: App[Any]) -> CommandRunner | None:
    """The app's command runner, created on first use (``None`` without a project)."""
    runner = _RUNNERS.get(app)
    project = getattr(app, "project", None)
    if runner is None and project is not None:
        runner = CommandRunner(project)
        _RUNNERS[app] = runner
    return runner


def running_commands(app: App[Any]) -> int:
    """Runs in progress for ``app`` (the app asks before quitting)."""
    runner = _RUNNERS.get(app)
    return len(runner.running()) if runner is not None else 0


def close_runner(app: App[Any]) -> None:
    """Stop the app's runs (on exit)."""
    runner = _RUNNERS.pop(app, None)
    if runner is not None:
        # Short: the console is closing and the user is waiting.
        runner.close(timeout=1.0, block=False)


def rank(query: str, names: list[str]) -> list[str]:
    """``names`` matching ``query``, best first: the exact name, then names
    that start with it (shortest first), then names that contain it, then the
    fuzzy rest (letters in order) by Textual's matcher score.

    The tiers are compared before any score: Textual's fuzzy score is not
    bounded (``runprofileserver`` scores ~18 for ``runserver``), so it cannot
    share one number with them without outranking the exact match.
    """
    query = query.strip().lower()
    if not query:
        return list(names)
    matcher = Matcher(query)
    ranked: list[tuple[int, float, str]] = []
    for name in names:
        lower = name.lower()
        if lower == query:
            ranked.append((0, 0.0, name))
        elif lower.startswith(query):
            ranked.append((1, len(lower), name))
        elif query in lower:
            ranked.append((2, len(lower), name))
        else:
            score = matcher.match(name)
            if score > 0:
                ranked.append((3, -score, name))
    ranked.sort()
    return [name for _, _, name in ranked]


class CommandFilter(Input):
    """The filter box, focused when the view opens, like a palette: "/" there
    is a no-op (no command name has one), so ``c`` ``/`` ``check`` works
    however fast it is typed."""

    async def _on_key(self, event: events.Key) -> None:
        if event.character == "/":
            event.stop()
            event.prevent_default()
            return
        await super()._on_key(event)


class CommandsScreen(Screen[None]):
    """Find a management command, fill its form, run it, read its output."""

    COMMANDS: ClassVar[set[Any]] = {ManagementCommandsProvider}
    #: Whether the last poll found no run going (its output all shown).
    _runs_settled = True

    @property
    def REFRESH_EVERY_TICK(self) -> bool:
        """Run output is polled from the runner, not the event state: every
        tick while a run goes, and once more after it ended (its last lines
        and status); otherwise the console may sleep on this view."""
        if not self._runs_settled:
            return True
        runner = _RUNNERS.get(self.app)
        return runner is not None and bool(runner.running())

    BINDINGS: ClassVar[list[BindingType]] = [
        # A priority binding, so the focus moves before the next key is handed
        # out: "/showm" typed fast from the output reaches the filter whole
        # (and its letters are not taken as the app's keys on the way).
        # Form fields keep their "/" (check_action).
        Binding("slash", "focus_filter", "Filter", priority=True, id="commands.filter"),
        # Not a priority binding: it reaches the screen through the focused
        # widget, after the keys typed before it (a burst "showm" then Ctrl+R
        # runs showmigrations, not what was listed before those keys).
        Binding("ctrl+r", "run", "Run", id="commands.run"),
        Binding("ctrl+c", "interrupt", "Interrupt run", priority=True, id="commands.interrupt"),
        Binding("ctrl+t", "run_in_terminal", "Run in terminal", id="commands.run-in-terminal"),
        Binding("f5", "rerun", "Re-run", id="commands.rerun"),
        Binding("ctrl+y", "copy_command", "Copy command", id="commands.copy"),
        Binding("escape", "back", "List", id="commands.back"),
        Binding("down", "list_cursor('down')", "Next command", show=False, id="commands.next"),
        Binding("up", "list_cursor('up')", "Previous command", show=False, id="commands.previous"),
        Binding("f2", "tab('tab-help')", "Help", show=False, id="commands.tab-help"),
        Binding("f3", "tab('tab-form')", "Form", show=False, id="commands.tab-form"),
        Binding("f4", "tab('tab-output')", "Output", show=False, id="commands.tab-output"),
        Binding("f6", "tab('tab-history')", "History", show=False, id="commands.tab-history"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.catalogue: Catalogue | None = None
        self._generation: int | None = None
        self._loading = False
        #: The current command: the one the Help tab describes, the Form tab
        #: holds and Ctrl+R runs. The list's highlighted row, or what Enter or
        #: the palette opened; set only by :meth:`_set_current`.
        self.current: str | None = None
        #: The filter text the list was last built from.
        self._listed_query = ""
        #: The command whose form is open; always the current one when set.
        self._form_command: CommandInfo | None = None
        self._form_view: CommandFormView | None = None
        #: Awaitable for the last form mounted.
        self.form_mounted: Awaitable[None] | None = None
        #: Values typed into each command's form, kept when another opens.
        self._form_values: dict[str, dict[str, Value]] = {}
        self._selected_run: Run | None = None
        self._shown_seq = 0
        self._history_rows: dict[int, tuple[str, str]] = {}
        self._status_shown: object = None
        #: Composed: the app's tick may come before the widgets exist.
        self._ready = False

    @property
    def runner(self) -> CommandRunner | None:
        return runner_for(self.app)

    def compose(self) -> ComposeResult:
        yield Header()
        with Horizontal(id="cmd-body"):
            with Vertical(id="cmd-side"):
                yield CommandFilter(placeholder="/ filter commands", id="cmd-filter")
                yield OptionList(id="cmd-list")
                yield Static(Text("loading the catalogue…", style="dim"), id="cmd-summary")
            with TabbedContent(id="cmd-tabs"):
                with TabPane("Help", id="tab-help"):
                    # Scrolls both ways: usage and help come formatted 100 columns wide.
                    with ScrollableContainer(id="help-scroll"):
                        yield Static(id="cmd-help")
                with TabPane("Form", id="tab-form"):
                    yield Vertical(Static(Text("Enter on a command opens its form.", style="dim")), id="form-holder")
                with TabPane("Output", id="tab-output"):
                    yield Static(Text("No run selected: Ctrl+R runs the open form.", style="dim"), id="run-status")
                    yield RunOutput(id="run-output", max_lines=MAX_LINES)
                with TabPane("History", id="tab-history"):
                    yield DataTable(id="history", cursor_type="row", zebra_stripes=True)
        yield Footer()

    def on_mount(self) -> None:
        self._ready = True
        table = self.query_one("#history", DataTable)
        table.add_column("#", key="id", width=4)
        table.add_column("status", key="status", width=20)
        table.add_column("time", key="time", width=9)
        table.add_column("command line", key="line")
        if getattr(self.app, "project", None) is None:
            self._set_summary(Text("No project: the console is replaying a recording.", style="dim"))
        else:
            self._reload_catalogue()
        self._refresh_history()
        self.set_focus(self.query_one("#cmd-filter", Input))

    def on_unmount(self) -> None:
        self._ready = False
        close_runner(self.app)

    def on_screen_resume(self) -> None:
        if not self._ready:
            return
        state = getattr(self.app, "state", None)
        if state is not None:
            self._check_generation(state.generation)

    # -- the catalogue ---------------------------------------------------

    def refresh_from_state(self, state: ServerState) -> None:
        """The app's tick: reload the catalogue after a server reload, pull run output."""
        if not self._ready:
            return
        try:
            self._check_generation(state.generation)
            self.poll_runs()
        except NoMatches:  # the app is closing: the widgets are already gone
            self._ready = False

    def _check_generation(self, generation: int) -> None:
        if self._generation is not None and generation != self._generation and not self._loading:
            self._reload_catalogue()

    def _reload_catalogue(self) -> None:
        state = getattr(self.app, "state", None)
        self._generation = state.generation if state is not None else 0
        self._loading = True
        self._load_catalogue()

    @work(
        thread=True, exclusive=True, group="catalogue", description="list the management commands", exit_on_error=False
    )
    def _load_catalogue(self) -> None:
        project = getattr(self.app, "project", None)
        if project is None:
            return
        try:
            catalogue = load_catalogue(project)
        except CatalogueError as exc:
            self.app.call_from_thread(self._catalogue_failed, str(exc))
            return
        self.app.call_from_thread(self._catalogue_loaded, catalogue)

    def _catalogue_failed(self, message: str) -> None:
        self._loading = False
        self._set_summary(Text(f"catalogue: {message}", style="bold red"))
        if self.catalogue is None:
            self.query_one("#cmd-help", Static).update(Text(f"The management commands could not be listed:\n{message}"))

    def _catalogue_loaded(self, catalogue: Catalogue) -> None:
        self._loading = False
        self.catalogue = catalogue
        self._set_summary(catalogue_summary(catalogue))
        self._fill_list()
        if self._form_command is not None:
            # Keep the open form if its command is still there (its arguments may have changed).
            fresh = catalogue.get(self._form_command.name)
            if fresh is not None and fresh != self._form_command:
                self.open_form(fresh.name, focus=False, activate=False)

    def _set_summary(self, text: Text) -> None:
        self.query_one("#cmd-summary", Static).update(text)

    def _fill_list(self) -> None:
        if self.catalogue is None:
            return
        option_list = self.query_one("#cmd-list", OptionList)
        query = self.query_one("#cmd-filter", Input).value
        same_query = query == self._listed_query
        self._listed_query = query
        options: list[Option | None] = []
        width = max((len(c.name) for c in self.catalogue), default=10)
        if query.strip():
            for name in rank(query, self.catalogue.names):
                command = self.catalogue.get(name)
                assert command is not None
                options.append(Option(command_label(command, width), id=name))
        else:
            for app, commands in self.catalogue.by_app():
                options.append(Option(app_label(app, len(commands)), id=f"app:{app}", disabled=True))
                options.extend(Option(command_label(c, width), id=c.name) for c in commands)
        option_list.set_options(options)
        names = [o.id for o in options if o is not None and not o.disabled]
        # New filter text makes its best match current. The same text listed
        # again (a fresh catalogue after a reload) or no filter keeps the
        # current command, and so the form being filled in.
        keep = self.current in names and (same_query or not query.strip())
        target = self.current if keep else (names[0] if names else None)
        if target is not None:
            option_list.highlighted = option_list.get_option_index(target)
        self._set_current(target)
        if target is None and query.strip():
            self.query_one("#cmd-help", Static).update(Text(f"No command matches {query!r}.", style="dim"))

    def _sync_filter(self) -> None:
        """Rebuild the list if the filter holds text it was not built from
        yet (its Changed message still queued): the current command is then
        the best match of what is typed."""
        if self.catalogue is not None and self.query_one("#cmd-filter", Input).value != self._listed_query:
            self._fill_list()

    def _highlighted_name(self) -> str | None:
        option_list = self.query_one("#cmd-list", OptionList)
        option = option_list.highlighted_option
        return option.id if option is not None and not option.disabled else None

    def _set_current(self, name: str | None) -> None:
        """Make ``name`` the current command: its help is shown, and a form
        of another command is put away (its values kept for when it opens
        again), so the Form tab and Ctrl+R never act on a command other than
        the one on show."""
        if self.catalogue is None or (name is not None and self.catalogue.get(name) is None):
            name = None
        self.current = name
        if name is not None:
            self._show_help(name)
        if self._form_command is not None and self._form_command.name != name:
            self._close_form()

    def _close_form(self) -> None:
        if self._form_command is not None and self._form_view is not None:
            self._form_values[self._form_command.name] = self._form_view.values()
        self._form_command = None
        self._form_view = None
        holder = self.query_one("#form-holder", Vertical)
        holder.remove_children()
        holder.mount(Static(Text("Enter on a command opens its form.", style="dim")))
        tabs = self.query_one("#cmd-tabs", TabbedContent)
        if tabs.active == "tab-form":
            tabs.active = "tab-help"

    def _show_help(self, name: str) -> None:
        if self.catalogue is None:
            return
        command = self.catalogue.get(name)
        if command is not None:
            self.query_one("#cmd-help", Static).update(command_detail(command, self.catalogue))

    @on(Input.Changed, "#cmd-filter")
    def _filter_changed(self, event: Input.Changed) -> None:
        self._fill_list()
        self.query_one("#cmd-tabs", TabbedContent).active = "tab-help"

    @on(Input.Submitted, "#cmd-filter")
    def _filter_submitted(self, event: Input.Submitted) -> None:
        self._sync_filter()
        name = self.current
        if name is None:
            self.notify("No command matches the filter.", severity="warning")
            return
        self.open_command(name)

    @on(OptionList.OptionHighlighted, "#cmd-list")
    def _highlighted(self, event: OptionList.OptionHighlighted) -> None:
        # While keys come in a burst the event may be from a list the filter
        # has since replaced (which already made its best match current).
        name = self._highlighted_name()
        if name is not None and name == event.option.id:
            self._set_current(name)

    @on(OptionList.OptionSelected, "#cmd-list")
    def _selected(self, event: OptionList.OptionSelected) -> None:
        if event.option.id and not event.option.disabled:
            self.open_command(event.option.id)

    # -- forms -------------------------------------------------------------

    def open_command(self, name: str) -> None:
        """Enter on a command: its form, or the dashboard for runserver."""
        if self.catalogue is None:
            return
        command = self.catalogue.get(name)
        if command is None:
            return
        self._select_in_list(name)
        self._set_current(name)
        if name == "runserver":
            self.app.switch_mode("dashboard")
            self.app.notify(
                "runserver is the console's own server. Its options are devconsole's: "
                "[addrport] --noreload --nothreading --ipv6; r restarts it.",
                title="runserver",
                markup=False,
            )
            return
        if command.error:
            self._show_help(name)
            self.query_one("#cmd-tabs", TabbedContent).active = "tab-help"
            self.notify(f"{name} failed to load: {command.error}", severity="error", markup=False)
            return
        self.open_form(name)

    def _select_in_list(self, name: str) -> None:
        """Put the list's cursor on ``name`` if it is listed (the palette
        opens commands the cursor is not on)."""
        option_list = self.query_one("#cmd-list", OptionList)
        try:
            index = option_list.get_option_index(name)
        except OptionDoesNotExist:  # filtered out: the cursor stays where it is
            return
        if option_list.highlighted != index:
            option_list.highlighted = index

    def open_form(self, name: str, *, focus: bool = True, activate: bool = True) -> CommandFormView | None:
        """Show ``name``'s form (keeping what was typed into it before) and
        make it the current command; ``activate=False`` builds it without
        leaving the current tab. Await :attr:`form_mounted` before reading it."""
        assert self.catalogue is not None
        command = self.catalogue.get(name)
        runner = self.runner
        if command is None or runner is None:
            return None
        self._set_current(name)
        if self._form_command is not None and self._form_view is not None:
            self._form_values[self._form_command.name] = self._form_view.values()
        holder = self.query_one("#form-holder", Vertical)
        holder.remove_children()
        color = command.argument("force_color") is not None
        form = CommandFormView(
            CommandForm.for_command(command),
            lambda args, in_terminal: runner.command_line(command.name, args, color=color and not in_terminal),
            in_terminal=command.interactive,
            values=self._form_values.get(name),
            autofocus=focus,
        )
        self.form_mounted = holder.mount(form)
        self._form_command = command
        self._form_view = form
        if activate:
            self.query_one("#cmd-tabs", TabbedContent).active = "tab-form"
        return form

    # -- runs ----------------------------------------------------------------

    async def action_run(self, in_terminal: bool | None = None) -> None:
        """Ctrl+R: run the current command with its form's values.

        The current command is the one whose form is shown or, from the
        filter or the list, the highlighted row (the filter's best match).
        Its form is built first if it is not open (with what was typed into
        it before); a form with errors is shown with them instead of running.
        runserver and commands that failed to load go where Enter takes them.
        """
        runner = self.runner
        if runner is None or self.catalogue is None:
            self.notify("No project to run commands in.", severity="warning")
            return
        self._sync_filter()
        name = self.current
        command = self.catalogue.get(name) if name is not None else None
        if command is None:
            self.notify("No command matches the filter.", severity="warning")
            return
        if command.name == "runserver" or command.error:
            self.open_command(command.name)
            return
        form = self._form_view
        if self._form_command is None or self._form_command.name != command.name or form is None:
            form = self.open_form(command.name, focus=False, activate=False)
            if form is None:
                return
            assert self.form_mounted is not None
            await self.form_mounted
        args = form.arguments()
        if args is None:
            self.query_one("#cmd-tabs", TabbedContent).active = "tab-form"
            self.notify("Fix the marked fields first.", severity="warning")
            return
        if in_terminal is None:
            in_terminal = form.in_terminal
        if in_terminal:
            run = self.run_in_terminal(command.name, args)
        else:
            run = runner.start(command.name, args, color=command.argument("force_color") is not None)
        self.select_run(run)

    async def action_run_in_terminal(self) -> None:
        await self.action_run(in_terminal=True)

    def run_in_terminal(self, name: str, args: list[str]) -> Run:
        """Suspend the console and run the command on the real terminal.

        The server child keeps serving: it is a separate process in its own
        session, so neither the suspension nor a Ctrl+C typed into the
        command reaches it.
        """
        runner = self.runner
        assert runner is not None
        from textual.app import SuspendNotSupported

        try:
            with self.app.suspend():
                run = runner.run_in_terminal(name, args)
            # Resuming does not keep the focus: back to the form, to run it again.
            if self._form_view is not None:
                self.call_after_refresh(self._form_view.focus_first)
            return run
        except SuspendNotSupported:
            self.notify("This terminal cannot hand over to a command; running it here instead.", severity="warning")
            return runner.start(name, args)

    def action_interrupt(self) -> None:
        """Ctrl+C: interrupt the run on show (not the console)."""
        runner = self.runner
        run = self._selected_run
        if runner is None or run is None or not run.running:
            running = runner.running() if runner is not None else []
            if runner is None or not running:
                self.notify("No run in progress. Quit the console with q.", timeout=3)
                return
            run = running[-1]
            self.select_run(run)
        runner.interrupt(run)
        signal_name = ("SIGINT", "SIGTERM", "SIGKILL")[min(run.interrupts, 3) - 1]
        self.notify(f"Sent {signal_name} to run #{run.id} ({run.name}).", timeout=3, markup=False)

    def action_rerun(self) -> None:
        runner = self.runner
        if runner is None or self._selected_run is None:
            self.notify("No run to repeat.", timeout=3)
            return
        previous = self._selected_run
        if previous.in_terminal:
            run = self.run_in_terminal(previous.name, list(previous.args))
        else:
            run = runner.rerun(previous)
        self.select_run(run)

    def action_copy_command(self) -> None:
        form = self._form_view
        if self.query_one("#cmd-tabs", TabbedContent).active == "tab-form" and form is not None:
            args = form.arguments()
            if args is None or self._form_command is None or self.runner is None:
                return
            color = self._form_command.argument("force_color") is not None
            line = self.runner.command_line(self._form_command.name, args, color=color and not form.in_terminal)
        elif self._selected_run is not None:
            line = self._selected_run.command_line
        else:
            self.notify("Nothing to copy yet.", timeout=3)
            return
        self.app.copy_to_clipboard(line)
        self.notify(Text(line).plain, title="Copied", markup=False, timeout=3)

    def action_focus_filter(self) -> None:
        # Synchronously (Widget.focus defers): keys typed right after "/" go to the filter.
        self.set_focus(self.query_one("#cmd-filter", Input))

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "list_cursor":
            # Arrows move the list from the filter box; elsewhere they are the focused widget's.
            return isinstance(self.focused, CommandFilter)
        if action == "focus_filter":
            # "/" is text in a form field; the filter itself ignores it.
            return isinstance(self.focused, CommandFilter) or not isinstance(self.focused, Input)
        return True

    def action_list_cursor(self, direction: str) -> None:
        option_list = self.query_one("#cmd-list", OptionList)
        if direction == "down":
            option_list.action_cursor_down()
        else:
            option_list.action_cursor_up()

    def action_back(self) -> None:
        self.query_one("#cmd-list", OptionList).focus()

    def action_tab(self, tab: str) -> None:
        self.query_one("#cmd-tabs", TabbedContent).active = tab

    def select_run(self, run: Run) -> None:
        """Make ``run`` the one on show (Ctrl+C, F5, Ctrl+Y act on it).

        A run in the pipe opens the Output tab, focused so its keys scroll.
        A run that had the terminal has no output here: the view stays where
        the user was (the form, to run it again) and says how it ended.
        """
        self._selected_run = run
        self._shown_seq = 0
        # A run just started: the console, perhaps asleep, ticks while it goes.
        self._runs_settled = False
        wake = getattr(self.app, "wake", None)
        if wake is not None:
            wake()
        self.query_one("#run-output", RunOutput).clear()
        if run.in_terminal:
            severity: SeverityLevel = "information" if run.status is RunStatus.SUCCEEDED else "warning"
            self.notify(
                f"{run.name}: {run.status_line()}", title="Back from the terminal", severity=severity, markup=False
            )
        else:
            self.query_one("#cmd-tabs", TabbedContent).active = "tab-output"
            self.query_one("#run-output", RunOutput).focus()
        self.poll_runs()

    def poll_runs(self) -> None:
        """Pull new output of the shown run and refresh statuses (on the tick)."""
        runner = self.runner
        run = self._selected_run
        # Looked at first: a run seen ended here has all its lines stored.
        self._runs_settled = runner is None or not runner.running()
        if runner is not None and run is not None:
            log = self.query_one("#run-output", RunOutput)
            lines = runner.lines_since(run, self._shown_seq)
            if lines:
                # Lines that came and went between two ticks (the runner keeps
                # the newest): said, not silently skipped.
                missed = lines[0][0] - self._shown_seq - 1
                if missed > 0:
                    what = "earlier lines dropped" if self._shown_seq == 0 else "lines went by too fast to show"
                    log.write_note(f"… {missed} {what}")
                log.write_lines([line for _, line in lines])
                self._shown_seq = lines[-1][0]
            self._show_status(run)
        self._refresh_history()

    def _show_status(self, run: Run) -> None:
        # Called on every tick while the view is open: redrawn when it changed.
        key = (run.id, run.command_line, run.status, run.status_line(), run.in_terminal, run.running)
        previous = self._status_shown
        if key == previous:
            return
        self._status_shown = key
        # Its height follows the command line (it may wrap): laid out again
        # only when another run is shown.
        layout = not isinstance(previous, tuple) or previous[:2] != key[:2]
        text = Text()
        text.append(f"#{run.id} ", style="dim")
        text.append(run.command_line)
        text.append("\n")
        text.append(run.status_line(), style=STATUS_STYLES.get(run.status, ""))
        if run.in_terminal:
            text.append("  (ran in the terminal)", style="dim")
        elif run.running:
            text.append("  Ctrl+C interrupts", style="dim")
        else:
            text.append("  F5 runs it again · Ctrl+Y copies the command line", style="dim")
        self.query_one("#run-status", Static).update(text, layout=layout)

    def _refresh_history(self) -> None:
        runner = self.runner
        if runner is None:
            return
        table = self.query_one("#history", DataTable)
        history = runner.history()
        for run in history:
            elapsed = f"{run.elapsed():.1f} s"
            key = str(run.id)
            previous = self._history_rows.get(run.id)
            if previous == (run.status, elapsed):
                continue
            status = Text(run.status.value, style=STATUS_STYLES.get(run.status, ""))
            if previous is None:
                line = run.command_line + ("  [terminal]" if run.in_terminal else "")
                table.add_row(str(run.id), status, elapsed, Text(line), key=key)
            else:
                table.update_cell(key, "status", status)
                table.update_cell(key, "time", elapsed)
            self._history_rows[run.id] = (run.status, elapsed)
        kept = {r.id for r in history}
        for run_id in [i for i in self._history_rows if i not in kept]:
            table.remove_row(str(run_id))
            del self._history_rows[run_id]

    @on(DataTable.RowSelected, "#history")
    def _history_selected(self, event: DataTable.RowSelected) -> None:
        runner = self.runner
        if runner is None or event.row_key.value is None:
            return
        run = runner.get(int(event.row_key.value))
        if run is not None:
            self.select_run(run)
