"""One line under the header: server status, address, generation, checks."""

from __future__ import annotations

from typing import ClassVar

from rich.text import Text
from textual.widgets import Static

from devconsole.console.interpreter import Interpreter
from devconsole.model.sanitize import clean_line
from devconsole.model.state import ServerState
from devconsole.ui import formatting as fmt
from devconsole.ui.widgets.theming import FollowsTheme, component_style


class StatusLine(FollowsTheme, Static):
    COMPONENT_CLASSES: ClassVar[set[str]] = {
        "status--serving",
        "status--starting",
        "status--reloading",
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
        hello = state.hello or {}
        listen = hello.get("listen") or {}
        checks = state.checks or {}
        errors = len(state.errors)
        key = (state.status, state.generation, id(state.hello), id(state.checks), state.error_seq)
        if key == self._last:
            return
        self._last = key
        dim = component_style(self, "status--dim")
        warn = component_style(self, "status--warn")
        text = Text(no_wrap=True, overflow="ellipsis")
        text.append(f" {state.status} ", component_style(self, f"status--{state.status}"))
        if listen:
            text.append(f"  http://{fmt.listen_address(listen)}/")
        # What needs attention first: the width may cut the rest.
        urlconf_error = hello.get("urlconf_error")
        if urlconf_error:
            text.append(f"  URLconf: {urlconf_error}", warn)
        elif errors and (not hello or state.errors[-1].get("generation", state.generation) >= state.generation):
            last = state.errors[-1]
            text.append(f"  {last.get('phase', 'error')}: {last.get('message', '')}", warn)
        if checks:
            messages = checks.get("messages") or []
            if messages:
                text.append(f"  checks: {len(messages)} issue{'s' if len(messages) != 1 else ''}", warn)
            unapplied = checks.get("migrations")
            if unapplied:
                text.append(f"  {unapplied} unapplied migration{'s' if unapplied != 1 else ''}", warn)
        if hello:
            text.append(
                f"  generation {state.generation} · pid {hello.get('pid')} · Django {hello.get('django')} · Python {hello.get('python')} · {hello.get('settings')}",
                dim,
            )
        interpreter = project_interpreter(self)
        if interpreter is not None:
            text.append(f"  · {interpreter_text(interpreter)}", dim)
        if checks and not (checks.get("messages") or checks.get("migrations")):
            text.append("  checks: ok", dim)
        self.update(text)


def project_interpreter(widget: Static) -> Interpreter | None:
    """The interpreter of the app's project (none in a replay)."""
    project = getattr(widget.app, "project", None)
    interpreter = getattr(project, "interpreter", None)
    return interpreter if isinstance(interpreter, Interpreter) else None


def interpreter_text(interpreter: Interpreter) -> str:
    """``/p/.venv/bin/python (the .venv beside manage.py)``, as plain text: a
    path is the user's, so it is cleaned (no control characters)."""
    return clean_line(interpreter.describe())
