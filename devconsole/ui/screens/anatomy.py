"""The Anatomy view: the chain ``manage.py runserver`` actually went through.

Built from the server child's ``hello`` event (and ``checks``): every step is
what happened in this project, with the class that won ``fetch_command``, the
apps it shadows, its MRO, the server class the way ``basehttp.run()``
composed it, and the measured duration of each startup phase.
"""

from __future__ import annotations

from typing import Any, ClassVar

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.containers import VerticalScroll
from textual.screen import Screen
from textual.widgets import Footer, Header, Static

from devconsole.model.state import ListenAt, ServerState
from devconsole.ui import formatting as fmt
from devconsole.ui.widgets.statusline import StatusLine, interpreter_text, project_interpreter
from devconsole.ui.widgets.theming import FollowsTheme, component_style

BAR_WIDTH = 16


class AnatomyView(Static):
    COMPONENT_CLASSES: ClassVar[set[str]] = {
        "anatomy--step",
        "anatomy--detail",
        "anatomy--dim",
        "anatomy--bar",
        "anatomy--ms",
        "anatomy--heading",
    }


def _short(path: str) -> str:
    """``staticfiles…runserver.Command`` is too terse; keep module tail and class."""
    module, _, name = path.rpartition(".")
    parts = module.split(".")
    if len(parts) > 3:
        module = ".".join(parts[:2]) + "…" + parts[-1]
    return f"{module}.{name}" if module else name


def _dedupe(names: list[str]) -> list[str]:
    """Consecutive repeats collapse (the instrumented subclass keeps its base's name)."""
    out: list[str] = []
    for name in names:
        if not out or out[-1] != name:
            out.append(name)
    return out


class AnatomyScreen(FollowsTheme, Screen[None]):
    AUTO_FOCUS = "#anatomy-box"

    def __init__(self) -> None:
        super().__init__()
        self._key: tuple[Any, ...] | None = None

    def compose(self) -> ComposeResult:
        yield Header()
        yield StatusLine()
        with VerticalScroll(id="anatomy-box") as box:
            box.border_title = "Anatomy of runserver"
            yield AnatomyView(id="anatomy")
        yield Footer()

    def on_mount(self) -> None:
        self._subscribe_theme()

    def refresh_from_state(self, state: ServerState) -> None:
        self.query_one(StatusLine).refresh_from_state(state)
        if self.take_theme_stale():
            self._key = None
        key = (id(state.hello), id(state.checks), state.error_seq)
        if key == self._key:
            return
        self._key = key
        view = self.query_one(AnatomyView)
        interpreter = project_interpreter(view)
        view.update(render_anatomy(view, state, interpreter_text(interpreter) if interpreter is not None else None))


def render_anatomy(view: AnatomyView, state: ServerState, interpreter: str | None = None) -> RenderableType:
    """The chain as a grid: step (as a tree), measured time, share bar, detail."""
    style = {
        name: component_style(view, f"anatomy--{name}") for name in ("step", "detail", "dim", "bar", "ms", "heading")
    }
    hello = state.hello
    if hello is None:
        text = Text()
        if interpreter:
            text.append(f"Interpreter: {interpreter}\n", style["dim"])
        text.append("Waiting for the server child to start serving…\n", style["dim"])
        for error in list(state.errors)[-3:]:
            text.append(f"\n{error.phase}: {error.message}\n", style["heading"])
            text.append(error.traceback, style["dim"])
        return text
    phases = {phase.name: phase.ms for phase in hello.phases}
    #: Done by a spare before the save that made this generation: not part of its start.
    ahead = {phase.name for phase in hello.phases[: hello.ahead]}
    since = sum(phase.ms for phase in hello.phases[hello.ahead :])
    total = sum(phases.values()) or 1.0
    runserver = hello.runserver
    grid = Table.grid(padding=(0, 1), expand=True)
    grid.add_column("step", no_wrap=True)
    grid.add_column("ms", justify="right", no_wrap=True, min_width=8)
    grid.add_column("bar", no_wrap=True, width=BAR_WIDTH)
    grid.add_column("detail", ratio=1, overflow="fold")

    def bar(ms: float | None) -> Text:
        if ms is None:
            return Text("")
        filled = max(1, round(BAR_WIDTH * ms / total))
        return Text("█" * filled, style["bar"])

    def step(depth: int, name: str, detail: str = "", phase: str | None = None, ms: float | None = None) -> None:
        indent = "  " * max(depth - 1, 0) + ("└ " if depth else "")
        value = phases.get(phase) if phase else ms
        if phase and value is None and phases:
            # A child forked from a prepared process starts after these steps.
            detail = f"{detail} (inherited: done before this generation started)"
        elif phase in ahead:
            detail = f"{detail} (prepared ahead: done before the save)"
        grid.add_row(
            Text(indent + name, style["step"]),
            Text(fmt.duration_ms(value), style["ms"]) if value is not None else Text(""),
            bar(value) if phase else Text(""),
            Text(detail, style["detail"]),
        )

    def note(depth: int, label: str, value: str) -> None:
        grid.add_row(Text("  " * depth + label, style["dim"]), Text(""), Text(""), Text(value, style["detail"]))

    if interpreter:
        step(0, "interpreter", interpreter)
    step(0, "manage.py", "the project's own manage.py, run as __main__", "manage.py")
    step(1, "execute_from_command_line", "intercepted by devconsole (argv: runserver)")
    step(2, "settings import", hello.settings or "-", "settings import")
    step(2, "django.setup()", "apps.populate(): every app's models and ready()", "django.setup()")
    step(
        2,
        'fetch_command("runserver")',
        f"ManagementUtility: get_commands() → {runserver.app}",
        'fetch_command("runserver")',
    )
    note(3, "won", runserver.class_path)
    shadows = runserver.shadows
    note(3, "shadows", ", ".join(shadows) if shadows else "(no other app defines runserver)")
    mro = [_short(name) for name in runserver.mro]
    note(3, "MRO", " → ".join(mro) if mro else "-")
    step(2, "URLconf import", "get_resolver().url_patterns: urls.py and its views", "URLconf import")
    step(2, "Command.execute → handle")
    step(3, "inner_run()", "checks deferred (below); prints the banner")
    step(4, "run(addr, port, handler)", f"threading={hello.threading}")
    threaded = bool(hello.threading)
    step(
        5,
        "WSGIServer + ThreadingMixIn" if threaded else "WSGIServer",
        "type('WSGIServer', (ThreadingMixIn, server_cls), {})" if threaded else "server_cls",
    )
    server = _dedupe([_short(name) for name in hello.server])
    note(6, "MRO", " → ".join(server) if server else "-")
    note(6, "handler", hello.handler or "-")
    address = fmt.listen_address(hello.listen or ListenAt("", 0))
    note(6, "socket", f"{address}, bound by devconsole, inherited, kept across reloads")
    step(5, f"serve_forever({hello.poll_interval})", "until the first select() returns", "serve_forever")
    checks = state.checks
    if checks is not None:
        messages = checks.messages
        unapplied = checks.migrations
        detail = f"{len(messages)} issue{'s' if len(messages) != 1 else ''}"
        detail += f", {unapplied} unapplied migration{'s' if unapplied != 1 else ''}" if unapplied is not None else ""
        if checks.error:
            detail += f", error: {checks.error}"
        step(0, "system checks", f"run after serving, in the background: {detail}", ms=checks.ms)
        for message in messages[:20]:
            note(1, f"{message.level} {message.id}", f"{message.obj}: {message.msg}")
    versions = f"Python {hello.python} · Django {hello.django}"
    if ahead:
        prepared = fmt.duration_ms(sum(phases.values()) - since)
        versions = f"from the save; {prepared} more prepared ahead · {versions}"
    step(0, "total to first loop", versions, ms=since)
    if hello.urlconf_error:
        note(1, "URLconf", hello.urlconf_error)
    heading = Text(
        f"What the server went through in generation {state.generation} (pid {hello.pid}), measured:\n",
        style["heading"],
    )
    return Group(heading, grid)
