"""Management commands in the command palette (Ctrl+P) of the Commands view.

Typing ``migrate`` in the palette finds ``manage.py migrate`` and opens its
form (or, for runserver, the dashboard), exactly as Enter in the list does.
The catalogue is the view's own; nothing is loaded here.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from functools import partial
from typing import TYPE_CHECKING

from textual.command import DiscoveryHit, Hit, Provider
from textual.markup import escape

if TYPE_CHECKING:
    from devconsole.commands.catalogue import CommandInfo
    from devconsole.ui.screens.commands import CommandsScreen


def _help(command: CommandInfo) -> str:
    """Palette help is markup: project text is escaped into it."""
    if command.error:
        return escape(f"{command.app} · failed to load: {command.error}")
    return escape(f"{command.app} · {command.summary}" if command.summary else command.app)


class ManagementCommandsProvider(Provider):
    """``manage.py NAME`` for every command of the catalogue."""

    def _commands(self) -> tuple[CommandsScreen | None, list[CommandInfo]]:
        screen = self.screen
        catalogue = getattr(screen, "catalogue", None)
        if catalogue is None:
            return None, []
        return screen, list(catalogue)  # type: ignore[return-value]

    async def discover(self) -> AsyncIterator[DiscoveryHit]:
        screen, commands = self._commands()
        if screen is None:
            return
        for command in commands:
            yield DiscoveryHit(
                escape(f"manage.py {command.name}"), partial(screen.open_command, command.name), help=_help(command)
            )

    async def search(self, query: str) -> AsyncIterator[Hit]:
        screen, commands = self._commands()
        if screen is None:
            return
        matcher = self.matcher(query)
        for command in commands:
            text = f"manage.py {command.name}"
            score = matcher.match(text)
            if score > 0:
                yield Hit(
                    score,
                    matcher.highlight(text),
                    partial(screen.open_command, command.name),
                    text=text,
                    help=_help(command),
                )
