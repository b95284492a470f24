"""The argument form of one management command, generated from its parser.

The widget is a thin skin over :class:`devconsole.commands.forms.CommandForm`:
each field becomes an input (text, number, select, checkbox), Django's common
options are folded into a collapsible, and the exact command line is shown
above the fields and kept up to date. Validation is the model's; errors are
shown under the field they concern.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Vertical, VerticalScroll
from textual.content import Content
from textual.message import Message
from textual.widget import Widget
from textual.widgets import Checkbox, Collapsible, Input, Select, Static

from devconsole.commands.forms import CommandForm, FormError, FormField, Value


def field_id(index: int) -> str:
    return f"field-{index}"


class CommandFormView(VerticalScroll):
    """Inputs for every argument of one command, plus its command line."""

    class Changed(Message):
        """A value changed: the command line must be redrawn."""

    def __init__(
        self,
        form: CommandForm,
        command_line: Callable[[list[str], bool], str],
        *,
        in_terminal: bool = False,
        autofocus: bool = True,
        values: dict[str, Value] | None = None,
        id: str | None = None,
    ) -> None:
        super().__init__(id=id)
        self.form = form
        #: Turns the arguments (and whether the run has the terminal) into
        #: the displayed command line: the runner's, exactly what will run.
        self._command_line = command_line
        self._in_terminal = in_terminal
        self._autofocus = autofocus
        self._initial = {**form.initial_values(), **(values or {})}
        self._index = {f.dest: i for i, f in enumerate(form.fields)}

    def compose(self) -> ComposeResult:
        command = self.form.command
        title = Text()
        title.append(command.name, style="bold")
        if command.summary:
            title.append(f"  {command.summary}", style="dim")
        yield Static(title, classes="form-title")
        yield Static(id="form-cmdline")
        yield Checkbox(
            Content("Run in the terminal (for commands that ask questions)"),
            value=self._in_terminal,
            id="form-in-terminal",
            compact=True,
        )
        if not self.form.fields:
            yield Static(Text("This command takes no arguments."), classes="field-help")
        for f in self.form.main_fields:
            yield self._field(f)
        advanced = self.form.advanced_fields
        if advanced:
            # Built when first opened: a form appears faster without them.
            yield Collapsible(
                title=f"Common options ({len(advanced)})",
                collapsed=True,
                id="form-advanced",
            )

    def _field(self, f: FormField) -> Widget:
        index = self._index[f.dest]
        value = self._initial.get(f.dest, f.initial)
        label = Text(f.label, style="bold")
        if f.required:
            label.append(" *", style="bold red")
        if f.kind != "flag":
            label.append(f"  {f.kind if f.kind != 'choice' else 'one of'}", style="dim")
        widget: Widget
        if f.kind == "flag":
            widget = Checkbox(Content(f.label), value=bool(value), id=field_id(index), compact=True)
        elif f.kind == "choice":
            default = f.argument.default
            if default not in (None, ""):
                # Project text: in the label (Text), not the prompt (markup).
                label.append(f"  default: {default}", style="dim")
            prompt = "(default)" if default not in (None, "") else "(not given)"
            widget = Select(
                [(Text(c), c) for c in f.choices],
                prompt=prompt,
                allow_blank=not f.required,
                value=value if value in f.choices else Select.NULL,
                id=field_id(index),
                compact=True,
            )
        else:
            widget = Input(
                value=str(value),
                placeholder=f.placeholder,
                id=field_id(index),
                compact=True,
            )
        # The label and the help share one Static: fewer widgets, faster forms.
        children: list[Widget] = []
        if f.kind != "flag":
            if f.argument.help:
                label.append("\n" + f.argument.help, style="dim")
            children.append(Static(label, classes="field-label"))
        children.append(widget)
        if f.kind == "flag" and f.argument.help:
            children.append(Static(Text(f.argument.help, style="dim"), classes="field-help"))
        children.append(Static(id=f"{field_id(index)}-error", classes="field-error"))
        return Vertical(*children, classes="field")

    def on_collapsible_expanded(self, event: Collapsible.Expanded) -> None:
        contents = event.collapsible.query_one(Collapsible.Contents)
        if not contents.children:
            contents.mount_all([self._field(f) for f in self.form.advanced_fields])

    def _widget(self, dest: str) -> Widget | None:
        """The input of ``dest``; ``None`` while its section is not built."""
        found = self.query(f"#{field_id(self._index[dest])}")
        return found.first() if found else None

    def on_mount(self) -> None:
        self.refresh_command_line()
        if self._autofocus:
            self.focus_first()

    def focus_first(self) -> None:
        """Focus the first field (or the form itself when it has none)."""
        target = self.first_input()
        (target or self).focus()

    # -- values ----------------------------------------------------------

    @property
    def in_terminal(self) -> bool:
        return self.query_one("#form-in-terminal", Checkbox).value

    def values(self) -> dict[str, Value]:
        """The current value of every field, by dest."""
        result: dict[str, Value] = {}
        for f in self.form.fields:
            widget = self._widget(f.dest)
            if widget is None:
                result[f.dest] = self._initial.get(f.dest, f.initial)
            elif isinstance(widget, Checkbox):
                result[f.dest] = widget.value
            elif isinstance(widget, Select):
                result[f.dest] = "" if widget.is_blank() else str(widget.value)
            elif isinstance(widget, Input):
                result[f.dest] = widget.value
        return result

    def set_value(self, dest: str, value: Value) -> None:
        """Fill one field (tests, re-filling from history)."""
        widget = self._widget(dest)
        if widget is None:
            self._initial[dest] = value  # shown when the section is built
        elif isinstance(widget, Checkbox):
            widget.value = bool(value)
        elif isinstance(widget, Select):
            widget.value = value if value else Select.NULL
        elif isinstance(widget, Input):
            widget.value = str(value)

    def arguments(self) -> list[str] | None:
        """The arguments to run with, or ``None`` after showing the errors."""
        values = self.values()
        try:
            arguments = self.form.arguments(values)
        except FormError as exc:
            self.show_errors(exc.errors)
            return None
        self.show_errors({})
        return arguments

    def show_errors(self, errors: dict[str, str]) -> None:
        """Write each error under its field; focus the first bad field."""
        first: Widget | None = None
        for f in self.form.fields:
            index = self._index[f.dest]
            message = errors.get(f.dest)
            found = self.query(f"#{field_id(index)}-error")
            if not found:
                continue  # a folded section not built yet: its values are the defaults
            error = found.first(Static)
            error.update(Text(message or ""))
            error.set_class(bool(message), "shown")
            if message and first is None:
                first = self._widget(f.dest)
        if first is not None:
            for collapsible in first.ancestors_with_self:
                if isinstance(collapsible, Collapsible):
                    collapsible.collapsed = False
            first.focus()
            self.scroll_to_widget(first, animate=False)

    def first_input(self) -> Widget | None:
        """The widget to focus when the form opens."""
        fields = self.form.main_fields
        if not fields:
            return None
        return self.query_one(f"#{field_id(self._index[fields[0].dest])}")

    # -- keeping the command line current --------------------------------

    def refresh_command_line(self) -> None:
        line = self.query_one("#form-cmdline", Static)
        values = self.values()
        errors = self.form.validate(values)
        text = Text("$ ", style="dim")
        if errors:
            # What is there so far; the errors say what is missing.
            text.append(self._command_line(self.form.preview(values), self.in_terminal))
            text.append(f"   ({len(errors)} to fix)", style="dim")
        else:
            text.append(self._command_line(self.form.arguments(values), self.in_terminal), style="bold")
        line.update(text)

    def _changed(self, event: Any) -> None:
        event.stop()
        self.refresh_command_line()
        self.post_message(self.Changed())

    def on_input_changed(self, event: Input.Changed) -> None:
        self._changed(event)

    def on_select_changed(self, event: Select.Changed) -> None:
        self._changed(event)

    def on_checkbox_changed(self, event: Checkbox.Changed) -> None:
        self._changed(event)
