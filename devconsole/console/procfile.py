"""Which side processes a project declares, and with what environment.

A ``Procfile.dev`` beside ``manage.py`` (or else at the repository root) in
the format honcho and foreman read: ``name: command`` a line, ``#`` comments,
blank lines; each command runs with a shell in the Procfile's directory,
``$PORT`` / ``${PORT}`` in its text replaced by the development server's
port (shell-quoted; ``PORT`` itself is not exported: a Node tool that reads
it would take the server's port). A ``web:`` line that runs the development
server is skipped (:attr:`Declared.skipped_lines` says where): devconsole is
the web process. The name ``server`` is the server's own (the Log view's
source) and cannot name a process; at most :data:`MAX_PROCESSES` processes.
``[tool.devconsole.processes]`` in ``pyproject.toml`` adds what a Procfile
cannot say, a table per process::

    [tool.devconsole.processes.worker]
    command = "celery -A proj worker"   # optional for a Procfile's process
    cwd = "frontend"                    # relative to manage.py's directory
    env = { LOG_LEVEL = "debug" }
    restart = "on-failure"              # never | on-failure | always
    restart_on_change = true
    ready_port = 5173                   # "starting" until 127.0.0.1:5173 accepts
    ready_line = "ready in \\d+ ms"       # or: until an output line matches

(``tomllib`` reads it, so the table needs Python 3.11, or ``tomli`` installed
on 3.10.) A ``.env`` beside the Procfile (beside ``manage.py`` without one)
is read as honcho reads it (``KEY=VALUE``, quotes, ``#`` comments, an
``export`` prefix). Whatever is wrong with a file is a :class:`ProcfileError`
of one line naming the file and line; nothing here starts anything (see
:mod:`.sideprocs`).
"""

from __future__ import annotations

import importlib
import re
import shlex
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal, cast

PROCFILE = "Procfile.dev"
PYPROJECT = "pyproject.toml"
DOTENV = ".env"

RestartPolicy = Literal["never", "on-failure", "always"]
RESTART_POLICIES: tuple[RestartPolicy, ...] = ("never", "on-failure", "always")
#: Side processes a project may declare (the state follows as many).
MAX_PROCESSES = 64
#: Names no process may take: the server's source in the Log view.
RESERVED_NAMES = frozenset({"server"})
#: The options a ``[tool.devconsole.processes.NAME]`` table takes.
OPTIONS = frozenset({"command", "cwd", "env", "restart", "restart_on_change", "ready_port", "ready_line"})

#: A process's name, as honcho accepts it.
_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]*\Z")
#: A line of a Procfile: ``name: command``.
_LINE = re.compile(r"\A([^:\s]+)\s*:\s*(.*)\Z")
#: A ``web`` command that runs the development server (devconsole itself is the web process).
_RUNS_SERVER = re.compile(r"(?:^|[\s/])(?:runserver|runserver_plus|devconsole)(?:\s|$)")


class ProcfileError(Exception):
    """A declaration is malformed; the message is one line for the user
    (``Procfile.dev:3: no ':' between name and command``)."""


@dataclass(frozen=True)
class ProcessSpec:
    """One side process: how to run it and what to do when it ends."""

    name: str
    #: Run with ``/bin/sh -c``, as honcho does.
    command: str
    #: Working directory (absolute).
    cwd: Path
    #: Environment on top of the project's and ``.env``'s.
    env: tuple[tuple[str, str], ...] = ()
    restart: RestartPolicy = "on-failure"
    #: Restart it when the project's code changes (a worker).
    restart_on_change: bool = False
    #: "starting" until a TCP connect to 127.0.0.1 on this port succeeds.
    ready_port: int | None = None
    #: "starting" until an output line matches this regular expression.
    ready_line: str | None = None


@dataclass(frozen=True)
class Declared:
    """What a project declares: its processes in file order, the ``web``
    lines skipped (their names), and the ``.env`` values."""

    processes: tuple[ProcessSpec, ...] = ()
    skipped: tuple[str, ...] = ()
    dotenv: tuple[tuple[str, str], ...] = ()
    #: Files read, for messages ("3 processes from Procfile.dev").
    sources: tuple[Path, ...] = field(default=())
    #: One line for the user when the pyproject table could not be read on this Python.
    note: str | None = None
    #: ``Procfile.dev:4: web runs runserver: skipped, devconsole serves``, a line per skipped ``web``.
    skipped_lines: tuple[str, ...] = ()


def find_file(project_root: Path, name: str) -> Path | None:
    """``name`` beside manage.py, else at the repository root (the nearest
    directory above with ``.git``); None if neither has it."""
    here = project_root / name
    if here.is_file():
        return here
    root = project_root.resolve()
    for parent in (root, *root.parents):
        if (parent / ".git").exists():
            candidate = parent / name
            return candidate if candidate.is_file() else None
    return None


def parse_procfile(text: str, *, base: Path, label: str = PROCFILE) -> tuple[list[ProcessSpec], list[str]]:
    """Processes of a Procfile's ``text`` (working directory ``base``) and
    the names of ``web`` lines skipped because they run the server."""
    processes, skipped, _ = parse_procfile_lines(text, base=base, label=label)
    return processes, skipped


def parse_procfile_lines(
    text: str, *, base: Path, label: str = PROCFILE
) -> tuple[list[ProcessSpec], list[str], list[str]]:
    """:func:`parse_procfile`, and a line for the user per ``web`` line skipped."""
    processes: list[ProcessSpec] = []
    skipped: list[str] = []
    notes: list[str] = []
    seen: set[str] = set()
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        match = _LINE.match(line)
        if match is None:
            raise ProcfileError(f"{label}:{number}: expected 'name: command', got {_show(line)}")
        name, command = match.group(1), match.group(2).strip()
        if not _NAME.match(name):
            raise ProcfileError(f"{label}:{number}: {_show(name)} is not a process name (letters, digits, _ . -)")
        if name in RESERVED_NAMES:
            raise ProcfileError(f"{label}:{number}: {name!r} is the development server's name: choose another")
        if not command:
            raise ProcfileError(f"{label}:{number}: process {name!r} has no command")
        if name in seen:
            raise ProcfileError(f"{label}:{number}: process {name!r} is declared twice")
        seen.add(name)
        if name == "web" and _RUNS_SERVER.search(command):
            skipped.append(name)
            notes.append(f"{label}:{number}: web runs runserver: skipped, devconsole serves")
            continue
        if len(processes) >= MAX_PROCESSES:
            raise ProcfileError(f"{label}:{number}: more than {MAX_PROCESSES} processes")
        processes.append(ProcessSpec(name=name, command=command, cwd=base))
    return processes, skipped, notes


_PORT = re.compile(r"\$(?:\{PORT\}|PORT(?![A-Za-z0-9_]))")


def expand_port(command: str, port: int) -> str:
    """``command`` with ``$PORT`` and ``${PORT}`` replaced by ``port``,
    shell-quoted (``$PORTS`` and ``$PORT_X`` are other variables)."""
    return _PORT.sub(lambda _: shlex.quote(str(port)), command)


def _show(text: str, limit: int = 60) -> str:
    """``text`` quoted for a one-line message, cut to ``limit`` characters."""
    return repr(text if len(text) <= limit else text[: limit - 1] + "…")


def load_toml(path: Path) -> dict[str, Any] | None:
    """``path`` parsed, or None when this Python has no TOML reader
    (3.10 without ``tomli``). A syntax error is a :class:`ProcfileError`."""
    try:
        module: Any = importlib.import_module("tomllib" if sys.version_info >= (3, 11) else "tomli")
    except ImportError:
        return None
    try:
        with path.open("rb") as file:
            return cast("dict[str, Any]", module.load(file))
    except (OSError, ValueError) as error:  # tomllib.TOMLDecodeError is a ValueError
        raise ProcfileError(f"{path.name}: {str(error).splitlines()[0] if str(error) else 'unreadable'}") from None


def apply_pyproject(
    processes: list[ProcessSpec], table: Mapping[str, Any], *, base: Path, label: str = PYPROJECT
) -> list[ProcessSpec]:
    """``[tool.devconsole.processes]``'s ``table`` applied to the Procfile's
    ``processes``: options for the ones named, new processes (with a
    ``command``) appended in the table's order."""
    where = f"{label}: tool.devconsole.processes"
    by_name = {spec.name: spec for spec in processes}
    order = [spec.name for spec in processes]
    for name, options in table.items():
        if not _NAME.match(name):
            raise ProcfileError(f"{where}: {_show(name)} is not a process name (letters, digits, _ . -)")
        if name in RESERVED_NAMES:
            raise ProcfileError(f"{where}: {name!r} is the development server's name: choose another")
        if not isinstance(options, Mapping):
            raise ProcfileError(f"{where}.{name}: expected a table of options")
        unknown = sorted(set(options) - OPTIONS)
        if unknown:
            raise ProcfileError(f"{where}.{name}: unknown option {unknown[0]!r}")
        spec = by_name.get(name)
        command = options.get("command", spec.command if spec else None)
        if not isinstance(command, str) or not command.strip():
            missing = "command" not in options
            raise ProcfileError(
                f"{where}.{name}: "
                + ("no command (and no Procfile.dev line)" if missing else "command must be a non-empty string")
            )
        cwd = spec.cwd if spec else base
        if "cwd" in options:
            if not isinstance(options["cwd"], str):
                raise ProcfileError(f"{where}.{name}.cwd: expected a string")
            cwd = base / Path(options["cwd"]).expanduser()
        env = dict(spec.env) if spec else {}
        if "env" in options:
            if not isinstance(options["env"], Mapping):
                raise ProcfileError(f"{where}.{name}.env: expected a table of strings")
            for key, value in options["env"].items():
                if isinstance(value, bool) or not isinstance(value, (str, int, float)):
                    raise ProcfileError(f"{where}.{name}.env.{key}: expected a string")
                env[key] = str(value)
        restart = options.get("restart", spec.restart if spec else "on-failure")
        if restart not in RESTART_POLICIES:
            raise ProcfileError(f"{where}.{name}.restart: expected one of {', '.join(RESTART_POLICIES)}")
        on_change = options.get("restart_on_change", spec.restart_on_change if spec else False)
        if not isinstance(on_change, bool):
            raise ProcfileError(f"{where}.{name}.restart_on_change: expected true or false")
        ready_port = options.get("ready_port", spec.ready_port if spec else None)
        if ready_port is not None and (
            isinstance(ready_port, bool) or not isinstance(ready_port, int) or not 0 < ready_port < 65536
        ):
            raise ProcfileError(f"{where}.{name}.ready_port: expected a port number (1-65535)")
        ready_line = options.get("ready_line", spec.ready_line if spec else None)
        if ready_line is not None:
            if not isinstance(ready_line, str) or not ready_line:
                raise ProcfileError(f"{where}.{name}.ready_line: expected a regular expression")
            try:
                re.compile(ready_line)
            except re.error as error:
                raise ProcfileError(f"{where}.{name}.ready_line: not a regular expression ({error})") from None
        if name not in by_name and len(by_name) >= MAX_PROCESSES:
            raise ProcfileError(f"{where}.{name}: more than {MAX_PROCESSES} processes")
        by_name[name] = ProcessSpec(
            name=name,
            command=command.strip(),
            cwd=cwd,
            env=tuple(env.items()),
            restart=cast("RestartPolicy", restart),
            restart_on_change=on_change,
            ready_port=ready_port,
            ready_line=ready_line,
        )
        if name not in order:
            order.append(name)
    return [by_name[name] for name in order]


_DOTENV_LINE = re.compile(r"\A(?:export\s+)?([A-Za-z_][A-Za-z0-9_.]*)\s*=\s*(.*)\Z")
_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", '"': '"', "\\": "\\", "$": "$"}


def parse_dotenv(text: str) -> dict[str, str]:
    """A ``.env`` file's values, as honcho reads them: ``KEY=VALUE`` lines,
    an optional ``export`` prefix, single quotes literal, double quotes with
    backslash escapes, unquoted values cut at a `` #`` comment; other lines
    (comments, blank, malformed) ignored."""
    values: dict[str, str] = {}
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        match = _DOTENV_LINE.match(line)
        if match is None:
            continue
        key, value = match.group(1), match.group(2).strip()
        if len(value) >= 2 and value[0] == value[-1] == "'":
            value = value[1:-1]
        elif len(value) >= 2 and value[0] == value[-1] == '"':
            value = re.sub(r"\\(.)", lambda m: _ESCAPES.get(m.group(1), "\\" + m.group(1)), value[1:-1])
        else:
            comment = re.search(r"\s#", value)
            if comment is not None:
                value = value[: comment.start()].rstrip()
        values[key] = value
    return values


def load(project_root: Path, extra: Sequence[ProcessSpec] = ()) -> Declared:
    """Everything the project at ``project_root`` (manage.py's directory)
    declares; an empty :class:`Declared` when it declares nothing. ``extra``
    (``--process``) replaces the Procfile's line of the same name and takes
    the pyproject table's options, its command kept."""
    sources: list[Path] = []
    processes: list[ProcessSpec] = []
    skipped: list[str] = []
    skipped_lines: list[str] = []
    note: str | None = None
    procfile = find_file(project_root, PROCFILE)
    # As honcho: the Procfile's directory is the processes' and holds the .env.
    home = procfile.parent if procfile is not None else project_root
    if procfile is not None:
        try:
            text = procfile.read_text(encoding="utf-8", errors="replace")
        except OSError as error:
            raise ProcfileError(f"{PROCFILE}: cannot be read ({error.strerror or error})") from None
        processes, skipped, skipped_lines = parse_procfile_lines(text, base=home)
        sources.append(procfile)
    commands = {spec.name: spec.command for spec in extra}
    processes = [spec for spec in processes if spec.name not in commands] + list(extra)
    if len(processes) > MAX_PROCESSES:
        raise ProcfileError(f"more than {MAX_PROCESSES} processes declared")
    pyproject = find_file(project_root, PYPROJECT)
    if pyproject is not None:
        data = load_toml(pyproject)
        if data is None:
            if "devconsole" in pyproject.read_text(encoding="utf-8", errors="replace"):
                note = f"{PYPROJECT}: [tool.devconsole.processes] needs Python 3.11 (or tomli): skipped"
        else:
            tool = data.get("tool", {})
            table = tool.get("devconsole", {}).get("processes") if isinstance(tool, Mapping) else None
            if table is not None:
                if not isinstance(table, Mapping):
                    raise ProcfileError(f"{PYPROJECT}: tool.devconsole.processes: expected a table")
                processes = apply_pyproject(processes, table, base=project_root)
                sources.append(pyproject)
    processes = [replace(spec, command=commands[spec.name]) if spec.name in commands else spec for spec in processes]
    dotenv: dict[str, str] = {}
    env_file = home / DOTENV
    if env_file.is_file():
        try:
            dotenv = parse_dotenv(env_file.read_text(encoding="utf-8", errors="replace"))
        except OSError:
            dotenv = {}
    return Declared(tuple(processes), tuple(skipped), tuple(dotenv.items()), tuple(sources), note, tuple(skipped_lines))
