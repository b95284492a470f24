"""Forms for management commands, built from the catalogue's argparse description.

The console shows one form per command. This module is the form's model,
without any widget: which field each argparse action becomes, how a field's
text is checked before anything runs, and the exact argument list (and its
shell-quoted display) that ``manage.py`` will receive.

Field values are what a user can type or tick:

* ``text`` / ``int`` / ``float`` / ``choice`` fields hold a string (``""`` =
  not given);
* ``list`` fields hold a string split the way a shell would (``shlex``), so
  ``a "b c"`` is two values;
* ``flag`` fields hold a bool (the option string is passed when true);
* ``count`` fields hold a string with a small non-negative integer (``-v -v``).

Validation mirrors what argparse would reject (missing required values, bad
numbers, values outside ``choices``, wrong number of values, two options of a
mutually exclusive group), so a run never ends in a usage error the form could
have caught. Errors are keyed by ``dest`` so the UI can show them at the field.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Mapping
from dataclasses import dataclass

from devconsole.commands.catalogue import Argument, CommandInfo

#: Widget kinds a :class:`FormField` can ask for.
FIELD_KINDS = ("text", "int", "float", "choice", "list", "flag", "count")

#: Value of a field: text for most kinds, a bool for flags.
Value = str | bool

#: What argparse takes for a negative number rather than an option.
_NEGATIVE = re.compile(r"^-\d+$|^-\d*\.\d+$")

#: Largest ``count`` a form accepts (``-vvvvvvvvvv`` is already silly).
MAX_COUNT = 10


class FormError(ValueError):
    """The form's values cannot make a command line; ``errors`` maps dest → message."""

    def __init__(self, errors: dict[str, str]) -> None:
        super().__init__("; ".join(f"{dest}: {msg}" for dest, msg in errors.items()))
        self.errors = errors


@dataclass(frozen=True)
class FormField:
    """One input of a command's form, made from one argparse action."""

    argument: Argument
    #: One of :data:`FIELD_KINDS`.
    kind: str
    #: Folded away by default: Django's common options and suppressed ones.
    advanced: bool

    @property
    def dest(self) -> str:
        return self.argument.dest

    @property
    def positional(self) -> bool:
        return self.argument.positional

    @property
    def required(self) -> bool:
        return self.argument.required

    @property
    def label(self) -> str:
        """What the user sees: the option string, or the positional's name."""
        arg = self.argument
        if arg.positional:
            metavar = arg.metavar if isinstance(arg.metavar, str) else None
            return metavar or arg.dest
        return ", ".join(arg.option_strings)

    @property
    def placeholder(self) -> str:
        """A hint for an empty input: the default argparse would use, or the shape."""
        arg = self.argument
        if self.kind == "list":
            shape = {"+": "one or more", "*": "zero or more"}.get(str(arg.nargs), "")
            if isinstance(arg.nargs, int):
                shape = f"exactly {arg.nargs}"
            if arg.kind == "append":
                shape = "repeatable"
            words = "values separated by spaces (quote to keep spaces)"
            base = f"{shape}, {words}" if shape else words
            default = arg.default
            if isinstance(default, list) and default:
                return f"{base}; default: {shlex.join(str(v) for v in default)}"
            return base
        if self.kind == "count":
            return f"how many times (0–{MAX_COUNT})"
        default = arg.default
        if default is None or default == "" or self.kind == "flag":
            if self.kind == "int":
                return "an integer"
            if self.kind == "float":
                return "a number"
            return ""
        return f"default: {default}"

    @property
    def choices(self) -> tuple[str, ...]:
        return self.argument.choices or ()

    @property
    def initial(self) -> Value:
        """An empty field: argparse's own default applies when it is left so."""
        if self.kind == "flag":
            return False
        return ""


def field_kind(arg: Argument) -> str:
    """Which input an argparse action needs."""
    if arg.kind in ("store_true", "store_false", "store_const", "append_const"):
        return "flag"
    if arg.kind == "count":
        return "count"
    nargs = arg.nargs
    if arg.kind == "append" or nargs in ("*", "+", "...", "A...") or (isinstance(nargs, int) and nargs != 1):
        return "list"
    if arg.choices:
        return "choice"
    if arg.type == "int":
        return "int"
    if arg.type == "float":
        return "float"
    return "text"


def _is_advanced(arg: Argument) -> bool:
    # A command may make a common option its own business (required, say): show it.
    return (arg.common or arg.suppressed) and not arg.required


@dataclass(frozen=True)
class CommandForm:
    """The form of one command: its fields, validation and command line."""

    command: CommandInfo
    fields: tuple[FormField, ...]

    @classmethod
    def for_command(cls, command: CommandInfo) -> CommandForm:
        fields = tuple(
            FormField(arg, field_kind(arg), _is_advanced(arg))
            for arg in command.arguments
            if arg.kind != "version"  # --version prints Django's version and exits
        )
        # Positionals first (in parser order), then the command's own options,
        # then the folded common ones: the order of ``manage.py help NAME``.
        ordered = sorted(fields, key=lambda f: (f.advanced, not f.positional))
        return cls(command, tuple(ordered))

    @property
    def main_fields(self) -> list[FormField]:
        return [f for f in self.fields if not f.advanced]

    @property
    def advanced_fields(self) -> list[FormField]:
        return [f for f in self.fields if f.advanced]

    def field(self, dest: str) -> FormField | None:
        for f in self.fields:
            if f.dest == dest:
                return f
        return None

    def initial_values(self) -> dict[str, Value]:
        return {f.dest: f.initial for f in self.fields}

    # -- validation ------------------------------------------------------

    def validate(self, values: Mapping[str, Value]) -> dict[str, str]:
        """Errors by dest (empty when the values make a valid command line)."""
        errors: dict[str, str] = {}
        for f in self.fields:
            message = _check(f, values.get(f.dest, f.initial))
            if message:
                errors[f.dest] = message
        for group in self.command.exclusive_groups:
            given = [d for d in group if d in self._given_dests(values)]
            if len(given) > 1:
                names = " and ".join(self._label(d) for d in given)
                for dest in given:
                    errors.setdefault(dest, f"{names} cannot be used together")
        for group in self.command.required_exclusive_groups:
            if not any(d in self._given_dests(values) for d in group):
                names = ", ".join(self._label(d) for d in group)
                for dest in group:
                    errors.setdefault(dest, f"one of {names} is required")
        return errors

    def _label(self, dest: str) -> str:
        f = self.field(dest)
        return f.label.split(", ")[-1] if f else dest

    def _given_dests(self, values: Mapping[str, Value]) -> set[str]:
        return {f.dest for f in self.fields if _given(f, values.get(f.dest, f.initial))}

    # -- the command line ------------------------------------------------

    def arguments(self, values: Mapping[str, Value]) -> list[str]:
        """The arguments after the command's name; raises :class:`FormError`.

        Options come first and positionals last, after ``--`` when one of
        them starts with ``-`` or an option with a variable number of values
        precedes them (argparse would otherwise read them as options or as
        that option's values).
        """
        errors = self.validate(values)
        if errors:
            raise FormError(errors)
        return self._build(values)

    def preview(self, values: Mapping[str, Value]) -> list[str]:
        """The arguments of the fields that are valid on their own, invalid
        ones left out: what the form shows while it is being filled."""
        valid = {
            f.dest: values.get(f.dest, f.initial)
            for f in self.fields
            if _check(f, values.get(f.dest, f.initial)) is None
        }
        return self._build(valid)

    def _build(self, values: Mapping[str, Value]) -> list[str]:
        options: list[str] = []
        positionals: list[str] = []
        open_ended = False
        for f in self.fields:
            value = values.get(f.dest, f.initial)
            if not _given(f, value):
                continue
            if f.positional:
                positionals.extend(_words(f, value))
                continue
            flag = f.argument.flag or ""
            if f.kind == "flag":
                options.append(flag)
            elif f.kind == "count":
                options.extend([flag] * int(str(value)))
            elif f.argument.kind == "append" and f.argument.nargs in (None, 1):
                for word in _words(f, value):
                    options += [flag, word]
            elif f.kind != "list" and str(value).startswith("-") and flag.startswith("--"):
                # ``--since -3d`` would read ``-3d`` as an option: glue it on.
                options.append(f"{flag}={value}")
            else:
                words = _words(f, value)
                options += [flag, *words]
                if f.kind == "list" and not isinstance(f.argument.nargs, int):
                    open_ended = True
        if positionals and (open_ended or any(p.startswith("-") for p in positionals)):
            return [*options, "--", *positionals]
        # Positionals first reads like the usage line: ``demo_report posts --limit 3``.
        return [*positionals, *options]

    def command_line(self, values: Mapping[str, Value], prefix: list[str] | None = None) -> str:
        """The shell-quoted command line, for display and copying."""
        prefix = ["python", "manage.py"] if prefix is None else prefix
        return shlex.join([*prefix, self.command.name, *self.arguments(values)])


def _words(f: FormField, value: Value) -> list[str]:
    if f.kind == "list":
        return shlex.split(str(value))
    return [str(value).strip() if f.kind in ("int", "float", "count") else str(value)]


def _given(f: FormField, value: Value) -> bool:
    if f.kind == "flag":
        return bool(value)
    text = str(value)
    if f.kind == "count":
        return text.strip() not in ("", "0")
    if f.kind == "list":
        try:
            return bool(shlex.split(text))
        except ValueError:
            return True  # given, and invalid: validation says why
    return text != ""


def _check_scalar(f: FormField, word: str) -> str | None:
    arg = f.argument
    if arg.type == "int":
        try:
            int(word)
        except ValueError:
            return f"{word!r} is not an integer"
    elif arg.type == "float":
        try:
            float(word)
        except ValueError:
            return f"{word!r} is not a number"
    if arg.choices and word not in arg.choices:
        return f"{word!r} is not one of {', '.join(arg.choices)}"
    return None


def _check(f: FormField, value: Value) -> str | None:
    """The error of one field on its own, or ``None``."""
    arg = f.argument
    if f.kind == "flag":
        return None
    text = str(value)
    if f.kind == "count":
        if text.strip() == "":
            return None
        try:
            count = int(text)
        except ValueError:
            return f"{text!r} is not a whole number"
        if not 0 <= count <= MAX_COUNT:
            return f"give a number from 0 to {MAX_COUNT}"
        return None
    if f.kind == "list":
        try:
            words = shlex.split(text)
        except ValueError as exc:
            return f"cannot split the values: {exc}"
        if not words:
            return "a value is required" if f.required else None
        nargs = arg.nargs
        if isinstance(nargs, int) and arg.kind != "append" and len(words) != nargs:
            return f"expects exactly {nargs} values, got {len(words)}"
        if not f.positional and any(w.startswith("-") and not _NEGATIVE.match(w) for w in words):
            return "values of an option cannot start with '-'"
        for word in words:
            message = _check_scalar(f, word)
            if message:
                return message
        return None
    if text == "":
        return "a value is required" if f.required else None
    return _check_scalar(f, text.strip() if f.kind in ("int", "float") else text)
