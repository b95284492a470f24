"""The help screen (``?``) and the quit confirmation.

Help lists the bindings active where it was opened — the same data the
footer shows, so it can never disagree with the keys that actually work.
"""

from __future__ import annotations

from typing import ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Grid, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Button, DataTable, Footer, Label, Static

INTRO = (
    "devconsole runs your project's manage.py runserver and shows what it does. "
    "Views: d dashboard · l log · a anatomy · c commands · p processes. Ctrl+P opens the command palette "
    "with every view and action; the mouse works too.\n"
    "Side processes (Procfile.dev, [tool.devconsole.processes], --process): p lists them; there r restarts "
    "the selected process (not the server), s stops it, t starts it, R restarts all but the ones you stopped; "
    "s in the Log view shows one source's lines.\n"
    "Debugging: breakpoint(), pdb.set_trace() or input() in a view gets this terminal, "
    "as under runserver (the console comes back when the debugger lets go). Ctrl+] then d detaches: the console "
    "is back, the request stays paused (status line, its Sockets row) and b returns to it; Ctrl+] then y quits. "
    "p in a 500's detail opens pdb post-mortem on it, locals as they were. PYTHONBREAKPOINT is honoured (0: off).\n"
    "Requests filter (/): path text, 404, 4xx, POST, sql>20 (sql<5), dup (a duplicated query), n+1, "
    "exc (an exception); !word negates; all words must match."
)


class HelpScreen(ModalScreen[None]):
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "dismiss", "Close", id="help.close"),
        Binding("question_mark", "dismiss", "Close", show=False, id="help.close-again"),
    ]

    def __init__(self, keys: list[tuple[str, str, str]]) -> None:
        """``keys``: ``(key, description, tooltip)`` for each active binding."""
        super().__init__()
        self._keys = keys

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="help-box") as box:
            box.border_title = "Keys"
            yield Static(Text(INTRO), id="help-intro")
            table: DataTable[Text] = DataTable(id="help-keys", cursor_type="row", show_cursor=False)
            table.add_column("Key", width=10)
            table.add_column("Action", width=22)
            table.add_column("What it does")
            for key, description, tooltip in self._keys:
                table.add_row(Text(key), Text(description), Text(tooltip))
            yield table
        yield Footer()


class QuitScreen(ModalScreen[bool]):
    """Asks before quitting while management commands are still running."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("y", "answer(True)", "Quit", id="quit.yes"),
        Binding("n,escape", "answer(False)", "Stay", id="quit.no"),
    ]

    def __init__(self, running: int, debugging: str = "") -> None:
        super().__init__()
        self._command_count = running
        #: What a server child's debugger holds (``debugger: GET /bp/ paused at views.py:12``).
        self._debugging = debugging

    def compose(self) -> ComposeResult:
        with Grid(id="quit-box"):
            if self._debugging:
                # Request paths come from the network: plain Text, never markup.
                question = Text(f"{self._debugging}. Quit and end the debugging session?")
            else:
                noun = "command is" if self._command_count == 1 else "commands are"
                question = Text(f"{self._command_count} management {noun} still running. Quit and stop them?")
            yield Label(question, id="quit-question")
            yield Button("Quit (y)", variant="error", id="quit-yes")
            yield Button("Stay (n)", variant="primary", id="quit-no")

    def on_button_pressed(self, event: Button.Pressed) -> None:
        self.dismiss(event.button.id == "quit-yes")

    def action_answer(self, answer: bool) -> None:
        self.dismiss(answer)
