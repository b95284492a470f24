"""One line under the header: server status, address, generation, checks."""

from __future__ import annotations

from typing import ClassVar

from rich.text import Text
from textual.widgets import Static

from devconsole.console.interpreter import Interpreter
from devconsole.console.listen import ListenAddress
from devconsole.model.sanitize import clean_line
from devconsole.model.state import CRASH_PHASE, ListenAt, ServerState, draining_text
from devconsole.ui import formatting as fmt
from devconsole.ui.widgets.theming import FollowsTheme, component_style


class StatusLine(FollowsTheme, Static):
    COMPONENT_CLASSES: ClassVar[set[str]] = {
        "status--serving",
        "status--starting",
        "status--error",
        "status--crashed",
        "status--stopped",
        "status--dim",
        "status--warn",
    }

    def __init__(self) -> None:
        super().__init__(id="status")
        self._last: tuple[object, ...] | None = None

    def on_mount(self) -> None:
        self._subscribe_theme()

    def refresh_from_state(self, state: ServerState) -> None:
        if self.take_theme_stale():
            self._last = None
        hello = state.hello
        checks = state.checks
        errors = len(state.errors)
        unknown, invalid = state.unknown_events, state.invalid_events
        key = (
            state.status,
            state.generation,
            id(hello),
            id(checks),
            state.error_seq,
            unknown.count,
            invalid.count,
            tuple(state.draining.items()),
            state.process_seq,
            state.live_reload,
            debugging := debugger_text(self),
        )
        if key == self._last:
            return
        self._last = key
        dim = component_style(self, "status--dim")
        warn = component_style(self, "status--warn")
        text = Text(no_wrap=True, overflow="ellipsis")
        text.append(f" {state.status} ", component_style(self, f"status--{state.status}"))
        if hello is not None and hello.listen is not None:
            text.append(f"  http://{fmt.listen_address(hello.listen)}/")
            exposed = exposed_host(hello.listen)
            if exposed is not None:
                text.append(f"  ⚠ reachable from the network ({exposed})", warn)
        procs, procs_failed = state.process_summary()
        if procs:
            text.append(f"  {procs}", warn if procs_failed else dim)
        live = state.live_reload
        if live is not None:
            text.append(f"  {live.text}", dim if not (live.enabled and live.debug) else "")
        # What needs attention first: the width may cut the rest.
        if debugging:
            text.append(f"  {debugging}", warn)
        for generation, count in sorted(state.draining.items()):
            text.append(f"  {draining_text(generation, count)} (x: cut)", warn)
        if hello is not None and hello.urlconf_error:
            text.append(f"  URLconf: {hello.urlconf_error}", warn)
        elif errors:
            last = state.errors[-1]
            if (
                hello is None
                or (last.generation if last.generation is not None else state.generation) >= state.generation
            ):
                text.append(f"  {last.phase}: {last.message}", warn)
                if last.phase == CRASH_PHASE and last.traceback:
                    # What it wrote last (its last stderr line): often the why.
                    text.append(f" · last words: {last.traceback.splitlines()[-1]}", dim)
        if unknown.count:
            text.append(
                f"  {unknown.count} event{'s' if unknown.count != 1 else ''} of unknown type ignored (first: {unknown.first})",
                warn,
            )
        if invalid.count:
            text.append(
                f"  {invalid.count} malformed event{'s' if invalid.count != 1 else ''} ignored (first: {invalid.first})",
                warn,
            )
        if checks is not None:
            if checks.messages:
                count = len(checks.messages)
                text.append(f"  checks: {count} issue{'s' if count != 1 else ''}", warn)
            unapplied = checks.migrations
            if unapplied:
                text.append(f"  {unapplied} unapplied migration{'s' if unapplied != 1 else ''}", warn)
        if hello is not None:
            text.append(
                f"  generation {state.generation} · pid {hello.pid} · Django {hello.django} · Python {hello.python} · {hello.settings}",
                dim,
            )
        if checks is not None and not (checks.messages or checks.migrations):
            text.append("  checks: ok", dim)
        # Last, the longest: the width cuts it first (the Anatomy view has it whole).
        interpreter = project_interpreter(self)
        if interpreter is not None:
            text.append(f"  · {interpreter_text(interpreter)}", dim)
        self.update(text)


def exposed_host(listen: ListenAt) -> str | None:
    """The host the server listens on when other machines can reach it
    (``0.0.0.0``, ``::``, a LAN address); None for a loopback address."""
    address = ListenAddress(listen.host, listen.port, ipv6=":" in listen.host)
    if address.is_loopback:
        return None
    return "0.0.0.0" if address.host == "0" else address.host


def debugger_text(widget: Static) -> str:
    """What the server children's debuggers hold, from the app (none in a replay)."""
    describe = getattr(widget.app, "debugger_text", None)
    return str(describe()) if callable(describe) else ""


def project_interpreter(widget: Static) -> Interpreter | None:
    """The interpreter of the app's project (none in a replay)."""
    project = getattr(widget.app, "project", None)
    interpreter = getattr(project, "interpreter", None)
    return interpreter if isinstance(interpreter, Interpreter) else None


def interpreter_text(interpreter: Interpreter) -> str:
    """``/p/.venv/bin/python (the .venv beside manage.py)``, as plain text: a
    path is the user's, so it is cleaned (no control characters)."""
    return clean_line(interpreter.describe())
