"""The catalogue of a project's management commands, read from a child process.

Two halves share one JSON schema (:data:`SCHEMA_VERSION`):

* the **child**, :mod:`devconsole.child.catalogue`, runs in the
  project's interpreter: it runs the project's ``manage.py``, sets Django up
  the way ``ManagementUtility`` does, and describes every command
  ``get_commands()`` knows (the class that wins, its MRO, the apps it shadows,
  help, usage and each argparse action) as one JSON document on stdout;
* the **parent**, this module, is what the console uses: it never imports
  Django or project code, runs the child (:func:`load_catalogue`) and reads
  the document into the :class:`Catalogue`, :class:`CommandInfo` and
  :class:`Argument` dataclasses.

A command whose module fails to import, or whose ``add_arguments`` raises, is
still listed, with ``error`` and ``traceback``; the other commands are
unaffected. When settings or ``django.setup()`` fail there is no catalogue:
the document carries a top-level ``error`` and :func:`load_catalogue` raises
:class:`CatalogueError` with that one-line message.
"""

from __future__ import annotations

import json
import signal
import subprocess
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from devconsole.console.processes import signal_group
from devconsole.model import sanitize
from devconsole.wire.catalogue import CORE_APP, SCHEMA_VERSION

if TYPE_CHECKING:
    from collections.abc import Iterator

    from devconsole.console.project import Project

#: Values of :attr:`Argument.kind`.
ARGUMENT_KINDS = (
    "store",
    "store_true",
    "store_false",
    "store_const",
    "append",
    "append_const",
    "count",
    "version",
    "custom",
)

_STDERR_TAIL_LINES = 40
_STDERR_TAIL_CHARS = 6000


class CatalogueError(Exception):
    """The catalogue could not be read. ``str(error)`` is one line for the user;
    ``stderr_tail`` holds the end of the child's stderr and ``traceback`` the
    child's traceback, when there is one."""

    def __init__(
        self,
        message: str,
        *,
        stderr_tail: str = "",
        traceback: str | None = None,
        returncode: int | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.stderr_tail = stderr_tail
        self.traceback = traceback
        self.returncode = returncode


# --------------------------------------------------------------------------
# Parent side: the data model
# --------------------------------------------------------------------------


def _clean(text: str | None) -> str | None:
    """Project-provided text (help, errors) made safe for the terminal: line
    breaks kept, every other control character visibly escaped. Done once,
    here, where the document enters the console; idempotent."""
    return None if text is None else sanitize.clean_text(str(text))


def _strs(values: Any) -> tuple[str, ...]:
    return tuple(_clean(str(v)) or "" for v in values or ())


@dataclass(frozen=True)
class Argument:
    """One argparse action of a command's parser (``--help`` excluded)."""

    dest: str
    option_strings: tuple[str, ...]
    #: One of :data:`ARGUMENT_KINDS`. Subclasses of argparse's actions report
    #: their base's kind (``extend`` reports ``append``); ``action`` names the
    #: real class.
    kind: str
    #: Class path of the argparse action, e.g. ``argparse._StoreTrueAction``.
    action: str
    #: ``None``, an int, or one of ``"?"``, ``"*"``, ``"+"``, ``"..."``, ``"A..."``.
    nargs: int | str | None
    #: ``"int"``, ``"float"``, ``"str"``, ``"other"`` (any other callable) or ``None``.
    type: str | None
    choices: tuple[str, ...] | None
    #: A JSON value; when the real default was not JSON-safe, its ``repr()``
    #: and ``default_is_repr`` is true. argparse's SUPPRESS becomes ``None``.
    default: Any
    default_is_repr: bool
    const: Any
    #: A value must be given (unlike argparse's own flag, false for
    #: positionals with ``nargs`` ``"?"``, ``"*"`` or ``"..."``).
    required: bool
    #: Help with ``%(default)s`` and friends expanded; ``None`` if suppressed.
    help: str | None
    metavar: str | tuple[str, ...] | None
    #: One of the options every Django command has (``--verbosity``, ``--settings``...).
    common: bool
    #: Hidden from ``--help`` (``help=argparse.SUPPRESS``), e.g. through
    #: ``BaseCommand.suppressed_base_arguments``.
    suppressed: bool = False

    @property
    def positional(self) -> bool:
        return not self.option_strings

    @property
    def flag(self) -> str | None:
        """The option string to use on a command line: the first long one."""
        longs = [s for s in self.option_strings if s.startswith("--")]
        return next(iter(longs or self.option_strings), None)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Argument:
        metavar = data.get("metavar")
        return cls(
            dest=data["dest"],
            option_strings=_strs(data.get("option_strings")),
            kind=data.get("kind", "custom"),
            action=data.get("action", ""),
            nargs=data.get("nargs"),
            type=data.get("type"),
            choices=None if data.get("choices") is None else _strs(data["choices"]),
            default=sanitize.clean_value(data.get("default")),
            default_is_repr=bool(data.get("default_is_repr", False)),
            const=sanitize.clean_value(data.get("const")),
            required=bool(data.get("required", False)),
            help=_clean(data.get("help")),
            metavar=_strs(metavar) if isinstance(metavar, list) else _clean(metavar),
            common=bool(data.get("common", False)),
            suppressed=bool(data.get("suppressed", False)),
        )

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class CommandInfo:
    """One management command, as ``manage.py`` would run it."""

    name: str
    #: The app whose command wins (``"django.core"`` for Django's own).
    app: str
    #: ``module.qualname`` of the command class; ``None`` if it failed to load.
    class_path: str | None = None
    #: Class paths from the command class up to and including ``BaseCommand``.
    mro: tuple[str, ...] = ()
    #: Apps that define a command of the same name and lose to ``app``, in
    #: the order Django would pick them (INSTALLED_APPS order, core last).
    shadows: tuple[str, ...] = ()
    help: str = ""
    usage: str = ""
    #: The whole ``manage.py help NAME`` text.
    help_text: str = ""
    arguments: tuple[Argument, ...] = ()
    #: Mutually exclusive groups, as lists of dests.
    exclusive_groups: tuple[tuple[str, ...], ...] = ()
    #: The subset of ``exclusive_groups`` where one option must be given.
    required_exclusive_groups: tuple[tuple[str, ...], ...] = ()
    interactive: bool = False
    #: The parser has ``--noinput`` / ``--no-input``.
    accepts_noinput: bool = False
    requires_system_checks: bool = False
    requires_migrations_checks: bool = False
    #: Source file of the command's module.
    file: str | None = None
    #: One line, ``"ExcType: message"``, when loading or building the parser failed.
    error: str | None = None
    traceback: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None

    @property
    def summary(self) -> str:
        """First line of the help text."""
        for line in self.help.splitlines():
            if line.strip():
                return line.strip()
        return ""

    @property
    def is_core(self) -> bool:
        return self.app == CORE_APP

    def argument(self, dest: str) -> Argument | None:
        for arg in self.arguments:
            if arg.dest == dest:
                return arg
        return None

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> CommandInfo:
        def groups(key: str) -> tuple[tuple[str, ...], ...]:
            return tuple(tuple(str(d) for d in group) for group in data.get(key) or ())

        return cls(
            name=data["name"],
            app=data["app"],
            class_path=data.get("class_path"),
            mro=tuple(data.get("mro") or ()),
            shadows=tuple(data.get("shadows") or ()),
            help=_clean(data.get("help")) or "",
            usage=_clean(data.get("usage")) or "",
            help_text=_clean(data.get("help_text")) or "",
            arguments=tuple(Argument.from_json(a) for a in data.get("arguments") or ()),
            exclusive_groups=groups("exclusive_groups"),
            required_exclusive_groups=groups("required_exclusive_groups"),
            interactive=bool(data.get("interactive", False)),
            accepts_noinput=bool(data.get("accepts_noinput", False)),
            requires_system_checks=bool(data.get("requires_system_checks", False)),
            requires_migrations_checks=bool(data.get("requires_migrations_checks", False)),
            file=_clean(data.get("file")),
            error=_clean(data.get("error")),
            traceback=_clean(data.get("traceback")),
        )

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Catalogue:
    """Every command of a project, sorted by name, plus where they came from."""

    commands: tuple[CommandInfo, ...]
    #: App names (``AppConfig.name``) in INSTALLED_APPS order.
    installed_apps: tuple[str, ...] = ()
    django_version: str = ""
    settings_module: str | None = None
    python_version: str = ""
    python_executable: str = ""
    #: Seconds spent by the child: ``setup``, ``commands``, ``total``; the
    #: parent adds ``wall`` (process start to document parsed).
    timings: dict[str, float] = field(default_factory=dict, compare=False)

    def __iter__(self) -> Iterator[CommandInfo]:
        return iter(self.commands)

    def __len__(self) -> int:
        return len(self.commands)

    def get(self, name: str) -> CommandInfo | None:
        for command in self.commands:
            if command.name == name:
                return command
        return None

    @property
    def names(self) -> list[str]:
        return [c.name for c in self.commands]

    @property
    def errors(self) -> list[CommandInfo]:
        return [c for c in self.commands if c.error is not None]

    def by_app(self) -> list[tuple[str, list[CommandInfo]]]:
        """Commands grouped by the app that provides them: INSTALLED_APPS
        order, apps unknown to it next, ``django.core`` last; apps without a
        command of their own are left out."""
        groups: dict[str, list[CommandInfo]] = {}
        for command in self.commands:
            groups.setdefault(command.app, []).append(command)
        order = [app for app in self.installed_apps if app != CORE_APP]
        order += sorted(app for app in groups if app not in order and app != CORE_APP)
        order.append(CORE_APP)
        return [(app, sorted(groups[app], key=lambda c: c.name)) for app in order if app in groups]

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Catalogue:
        """Build from the child's document; raises :class:`CatalogueError` for
        an error document or one of another schema version."""
        if data.get("error"):
            raise CatalogueError(
                _clean(str(data["error"])) or "catalogue error",
                traceback=_clean(data.get("traceback")),
            )
        if data.get("schema") != SCHEMA_VERSION:
            raise CatalogueError(
                f"catalogue schema {data.get('schema')!r}, expected {SCHEMA_VERSION}: devconsole versions differ"
            )
        commands = sorted(
            (CommandInfo.from_json(c) for c in data.get("commands") or ()),
            key=lambda c: c.name,
        )
        return cls(
            commands=tuple(commands),
            installed_apps=tuple(data.get("installed_apps") or ()),
            django_version=data.get("django_version") or "",
            settings_module=data.get("settings_module"),
            python_version=data.get("python_version") or "",
            python_executable=data.get("python_executable") or "",
            timings=dict(data.get("timings") or {}),
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "schema": SCHEMA_VERSION,
            "django_version": self.django_version,
            "settings_module": self.settings_module,
            "python_version": self.python_version,
            "python_executable": self.python_executable,
            "installed_apps": list(self.installed_apps),
            "timings": dict(self.timings),
            "commands": [c.to_json() for c in self.commands],
        }


# --------------------------------------------------------------------------
# Parent side: running the child
# --------------------------------------------------------------------------

#: What the catalogue child runs (started by :meth:`Project.spawn`, which
#: keeps the project's own packages resolving exactly as under manage.py).
CHILD_MODULE = "devconsole.child.catalogue"


def _tail(text: str) -> str:
    lines = text.rstrip().splitlines()[-_STDERR_TAIL_LINES:]
    return "\n".join(lines)[-_STDERR_TAIL_CHARS:]


def _last_line(text: str) -> str:
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return sanitize.clean_line(lines[-1]) if lines else ""


def _kill(proc: subprocess.Popen[bytes]) -> None:
    """Kill the child and anything it started (it leads its own session)."""
    signal_group(proc.pid, signal.SIGKILL)


def load_catalogue(project: Project, timeout: float = 60) -> Catalogue:
    """Run the catalogue child for ``project`` and return its catalogue.

    Blocking: call it from a thread worker. Raises :class:`CatalogueError`
    (one-line message, stderr tail attached) when the child cannot start,
    fails, times out or prints no valid document.
    """
    manage_py = Path(project.manage_py)
    if not manage_py.is_file():
        raise CatalogueError(f"{manage_py}: no such file")
    started = time.perf_counter()
    try:
        proc = project.spawn(CHILD_MODULE)
    except OSError as exc:
        raise CatalogueError(f"cannot start {project.python}: {exc.strerror or exc}") from exc
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        _kill(proc)
        try:
            out, err = proc.communicate(timeout=5)
        except subprocess.TimeoutExpired:  # a grandchild escaped and holds the pipes
            out, err = b"", b""
        raise CatalogueError(
            f"listing the management commands timed out after {timeout:g}s",
            stderr_tail=_tail(err.decode("utf-8", "replace")),
        ) from None
    finally:
        if proc.poll() is None:
            _kill(proc)
            proc.wait()
    stderr = err.decode("utf-8", "replace")
    try:
        data = json.loads(out.decode("utf-8", "replace"))
    except ValueError:
        data = None
    if not isinstance(data, dict):
        reason = _last_line(stderr) or "no output"
        raise CatalogueError(
            f"the catalogue child exited with code {proc.returncode} without a catalogue: {reason}",
            stderr_tail=_tail(stderr),
            returncode=proc.returncode,
        ) from None
    try:
        catalogue = Catalogue.from_json(data)
    except CatalogueError as exc:
        exc.stderr_tail = _tail(stderr)
        exc.returncode = proc.returncode
        raise
    wall = round(time.perf_counter() - started, 4)
    return replace(catalogue, timings={**catalogue.timings, "wall": wall})


def format_table(catalogue: Catalogue) -> str:
    """A plain-text listing for a terminal: commands grouped by app, each with
    the first line of its help, overrides and errors marked."""
    failed = len(catalogue.errors)
    lines = [
        f"Django {catalogue.django_version}"
        f" · settings {catalogue.settings_module or '-'}"
        f" · {len(catalogue)} commands" + (f" ({failed} failed to load)" if failed else "")
    ]
    width = max((len(c.name) for c in catalogue.commands), default=0)
    for app, commands in catalogue.by_app():
        lines.append("")
        lines.append(f"[{app}]")
        for command in commands:
            if command.error:
                text = f"! {command.error}"
            else:
                text = command.summary
                if command.shadows:
                    text += f" (overrides {', '.join(command.shadows)})"
            lines.append(f"  {command.name.ljust(width)}  {text}".rstrip())
    return "\n".join(lines) + "\n"
