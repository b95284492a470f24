"""The child half of the command catalogue: runs in the project's interpreter.

``python -m devconsole.child.catalogue --manage PATH [--settings S]
[--pythonpath P]`` runs the project's ``manage.py`` through
:func:`devconsole.child.bootstrap.run_manage_py`, sets Django up the way
``ManagementUtility`` does, and prints one JSON document describing every
command ``get_commands()`` knows (the schema is
:mod:`devconsole.commands.catalogue`'s, which reads it in the console). Whatever
the project prints meanwhile goes to stderr: fd 1 is redirected before
``manage.py`` runs and the document is written to a duplicate of the original
fd at the end.

Kept apart from the parent side so the console never loads code written to
run next to Django, and the parent module stays a plain data model.
"""

from __future__ import annotations

import json
import math
import os
import sys
import time
import traceback as traceback_module
from pathlib import Path
from typing import Any

# The child imports this module with a temporary sys.path entry (see
# ``Project.child_argv``); everything it needs later must be imported now.
from devconsole.child import bootstrap
from devconsole.child.introspect import class_path, command_providers, shadowed_apps
from devconsole.wire.catalogue import COMMON_OPTIONS, INTERACTIVE_COMMANDS, SCHEMA_VERSION


def _one_line(exc: BaseException) -> str:
    """``"ExcType: message"`` on one line, whatever the message looks like."""
    message = " ".join(str(exc).split())
    if len(message) > 400:
        message = message[:399] + "…"
    name = type(exc).__name__
    return f"{name}: {message}" if message else name


def _jsonable(value: Any) -> tuple[Any, bool]:
    """``(value, False)`` if ``value`` survives JSON as is, else ``(repr, True)``."""
    from django.utils.functional import Promise

    def safe(v: Any) -> bool:
        if v is None or isinstance(v, (bool, str)):
            return True
        if isinstance(v, int):
            return type(v) is int
        if isinstance(v, float):
            return math.isfinite(v)
        if isinstance(v, list):
            return all(safe(i) for i in v)
        if isinstance(v, dict):
            return all(isinstance(k, str) and safe(i) for k, i in v.items())
        return False

    if isinstance(value, Promise):  # lazy translation
        return str(value), False
    if isinstance(value, tuple) and all(safe(v) for v in value):
        return list(value), False
    if safe(value):
        return value, False
    try:
        return repr(value), True
    except Exception:
        return f"<{class_path(type(value))} object>", True


def _argument_kind(action: Any) -> str:
    import argparse

    kinds: dict[type, str] = {
        argparse._StoreAction: "store",
        argparse._StoreTrueAction: "store_true",
        argparse._StoreFalseAction: "store_false",
        argparse._StoreConstAction: "store_const",
        argparse._ExtendAction: "append",
        argparse._AppendAction: "append",
        argparse._AppendConstAction: "append_const",
        argparse._CountAction: "count",
        argparse._VersionAction: "version",
    }
    for klass in type(action).__mro__:
        if klass in kinds:
            return kinds[klass]
    return "custom"


def _type_name(type_: Any) -> str | None:
    if type_ is None:
        return None
    return {int: "int", float: "float", str: "str"}.get(type_, "other")


def _describe_argument(parser: Any, action: Any) -> dict[str, Any]:
    import argparse

    suppressed = action.help == argparse.SUPPRESS
    help_text: str | None = None
    if action.help is not None and not suppressed:
        try:  # expands %(default)s, %(choices)s... as --help would
            help_text = parser._get_formatter()._expand_help(action)
        except Exception:
            help_text = str(action.help)
    if action.default == argparse.SUPPRESS:
        default, default_is_repr = None, False
    else:
        default, default_is_repr = _jsonable(action.default)
    choices = None
    if action.choices is not None:
        try:
            choices = [str(c) for c in action.choices]
        except Exception:
            choices = None
    metavar = action.metavar
    if isinstance(metavar, tuple):
        metavar = [str(m) for m in metavar]
    elif metavar is not None:
        metavar = str(metavar)
    return {
        "dest": action.dest,
        "option_strings": list(action.option_strings),
        "kind": _argument_kind(action),
        "action": class_path(type(action)),
        "nargs": action.nargs,
        "type": _type_name(action.type),
        "choices": choices,
        "default": default,
        "default_is_repr": default_is_repr,
        "const": _jsonable(action.const)[0],
        # argparse marks positionals with nargs="*" or "..." required, though
        # they accept nothing; report what a form needs: must a value be given?
        "required": bool(action.required) and not (not action.option_strings and action.nargs in ("?", "*", "...")),
        "help": help_text,
        "metavar": metavar,
        "common": any(s in COMMON_OPTIONS for s in action.option_strings),
        "suppressed": suppressed,
    }


def _describe_parser(parser: Any) -> dict[str, Any]:
    import argparse

    arguments = [
        _describe_argument(parser, action) for action in parser._actions if not isinstance(action, argparse._HelpAction)
    ]
    groups = [(group.required, [a.dest for a in group._group_actions]) for group in parser._mutually_exclusive_groups]
    options = {s for action in parser._actions for s in action.option_strings}
    return {
        "usage": parser.format_usage().strip(),
        "help_text": parser.format_help(),
        "arguments": arguments,
        "exclusive_groups": [dests for _, dests in groups],
        "required_exclusive_groups": [dests for required, dests in groups if required],
        "accepts_noinput": bool(options & {"--noinput", "--no-input"}),
    }


def _describe_command(name: str, app: Any, providers: dict[str, list[str]]) -> dict[str, Any]:
    from django.core.management import BaseCommand, load_command_class

    info: dict[str, Any] = {"name": name, "interactive": name in INTERACTIVE_COMMANDS}
    if isinstance(app, BaseCommand):  # get_commands() may hold a loaded command
        command: Any = app
        app = type(app).__module__.partition(".management.")[0]
    else:
        command = None
    info["app"] = str(app)
    info["shadows"] = shadowed_apps(name, info["app"], providers)
    try:
        if command is None:
            command = load_command_class(app, name)
    except BaseException as exc:
        info["file"] = _module_file(f"{app}.management.commands.{name}")
        info["error"] = _one_line(exc)
        info["traceback"] = traceback_module.format_exc()
        return info
    klass = type(command)
    mro = []
    for base in klass.__mro__:
        if base is object:
            break
        mro.append(class_path(base))
        if base is BaseCommand:
            break
    info.update(
        class_path=class_path(klass),
        mro=mro,
        help=str(getattr(command, "help", "") or ""),
        file=_module_file(klass.__module__),
        requires_system_checks=bool(getattr(command, "requires_system_checks", 0)),
        requires_migrations_checks=bool(getattr(command, "requires_migrations_checks", False)),
    )
    try:
        parser = command.create_parser("manage.py", name)
        info.update(_describe_parser(parser))
    except BaseException as exc:
        info["error"] = _one_line(exc)
        info["traceback"] = traceback_module.format_exc()
    return info


def _module_file(module_name: str) -> str | None:
    module = sys.modules.get(module_name)
    file = getattr(module, "__file__", None)
    if file is None:
        from importlib.util import find_spec

        try:
            spec = find_spec(module_name)
        except Exception:
            return None
        file = spec.origin if spec else None
    return str(file) if file else None


def _error_document(message: str, stage: str) -> dict[str, Any]:
    return {
        "schema": SCHEMA_VERSION,
        "error": message,
        "stage": stage,
        "traceback": traceback_module.format_exc(),
        "python_version": sys.version.split()[0],
        "python_executable": sys.executable,
    }


def _collect(argv: list[str]) -> dict[str, Any]:
    """The ``entry`` given to :func:`bootstrap.run_manage_py`: set Django up as
    ``ManagementUtility.execute`` does, then describe every command."""
    started = time.perf_counter()
    import django
    from django.conf import settings

    settings_module = os.environ.get("DJANGO_SETTINGS_MODULE")
    try:
        settings.INSTALLED_APPS  # noqa: B018 - imports the settings module
    except BaseException as exc:
        where = f"settings {settings_module!r}" if settings_module else "settings"
        return _error_document(f"cannot load {where}: {_one_line(exc)}", "settings")
    try:
        django.setup()
    except BaseException as exc:
        return _error_document(f"django.setup() failed: {_one_line(exc)}", "setup")
    from django.apps import apps
    from django.core.management import get_commands

    setup_done = time.perf_counter()
    providers = command_providers()
    # Fixed width, so usage and help text do not depend on the parent's COLUMNS.
    os.environ["COLUMNS"] = "100"
    commands = []
    for name, app in sorted(get_commands().items()):
        try:
            commands.append(_describe_command(name, app, providers))
        except BaseException as exc:
            commands.append(
                {
                    "name": name,
                    "app": str(app),
                    "error": _one_line(exc),
                    "traceback": traceback_module.format_exc(),
                }
            )
    finished = time.perf_counter()
    return {
        "schema": SCHEMA_VERSION,
        "django_version": django.get_version(),
        "settings_module": getattr(settings, "SETTINGS_MODULE", None) or settings_module,
        "python_version": sys.version.split()[0],
        "python_executable": sys.executable,
        "installed_apps": [app_config.name for app_config in apps.get_app_configs()],
        "timings": {
            "setup": round(setup_done - started, 4),
            "commands": round(finished - setup_done, 4),
        },
        "commands": commands,
    }


def child_main(argv: list[str] | None = None) -> int:
    """Entry point of the child: print the catalogue document on stdout.

    Returns 0 with a catalogue, 1 with an error document.
    """
    import argparse

    started = time.perf_counter()
    parser = argparse.ArgumentParser(prog="python -m devconsole.child.catalogue")
    parser.add_argument("--manage", required=True, type=Path, help="the project's manage.py")
    parser.add_argument("--settings")
    parser.add_argument("--pythonpath")
    args = parser.parse_args(argv)

    # Keep fd 1 for the document; everything the project prints goes to stderr.
    sys.stdout.flush()
    out_fd = os.dup(1)
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    try:
        document = bootstrap.run_manage_py(args.manage, _collect, settings=args.settings, pythonpath=args.pythonpath)
        if not isinstance(document, dict):  # pragma: no cover - _collect returns a dict
            raise TypeError(f"unexpected catalogue {type(document).__name__}")
    except bootstrap.BootstrapError as exc:
        document = _error_document(" ".join(str(exc).split()), "manage.py")
    except BaseException as exc:
        document = _error_document(f"running {args.manage} failed: {_one_line(exc)}", "manage.py")
    if "error" not in document:
        document["timings"]["total"] = round(time.perf_counter() - started, 4)
    payload = json.dumps(document, default=str).encode("ascii") + b"\n"
    with os.fdopen(out_fd, "wb") as out:
        out.write(payload)
    return 1 if "error" in document else 0


def _child_exit(argv: list[str]) -> None:
    """Run :func:`child_main` and leave at once: threads the project started
    during setup must not keep the process alive."""
    try:
        code = child_main(argv)
    finally:
        sys.stderr.flush()
    os._exit(code)


if __name__ == "__main__":
    _child_exit(sys.argv[1:])
