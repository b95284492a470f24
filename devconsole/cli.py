"""``devconsole`` on the command line.

``devconsole [addrport] [options]`` mirrors ``manage.py runserver``;
``devconsole commands [--json]`` prints the management-command catalogue;
``devconsole replay FILE`` shows a recorded session.

Every mistake the user can make here ends with one line on stderr and exit
status 2, never a traceback.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import NoReturn

from . import __version__
from .core.listen import AddressError, BindError, ListenAddress, bind, parse_addrport
from .core.project import Project, ProjectError, locate_project

USAGE_ERROR = 2


class _Parser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are one line."""

    def error(self, message: str) -> NoReturn:
        fail(f"{message} (see devconsole --help)")


def fail(message: str, status: int = USAGE_ERROR) -> NoReturn:
    sys.stderr.write(f"devconsole: error: {message}\n")
    raise SystemExit(status)


def _project_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--project", metavar="DIR", help="the Django project (the directory holding manage.py); default: the nearest manage.py in the current directory or its parents")
    parser.add_argument("--demo", action="store_true", help="use the demo project shipped with devconsole")
    parser.add_argument("--settings", help='the settings module, e.g. "myproject.settings.dev" (like manage.py --settings)')
    parser.add_argument("--pythonpath", help='a directory to add to the Python path, e.g. "/home/me/myproject"')


def server_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="devconsole",
        description="Run Django's development server in a live terminal console. "
        "Other verbs: 'devconsole commands [--json]' lists the management commands, "
        "'devconsole replay FILE' shows a recorded session.",
    )
    parser.add_argument("addrport", nargs="?", help="optional port number, or ipaddr:port (default 127.0.0.1:8000)")
    _project_options(parser)
    parser.add_argument("--noreload", action="store_true", help="do not restart the server when code changes")
    parser.add_argument("--nothreading", action="store_true", help="serve one request at a time")
    parser.add_argument("--ipv6", "-6", action="store_true", help="listen on IPv6 (default [::1]:8000)")
    parser.add_argument("--record", metavar="FILE", help="save the session's events to FILE (replay it with 'devconsole replay FILE')")
    parser.add_argument("--version", action="version", version=f"devconsole {__version__}")
    return parser


def resolve_project(args: argparse.Namespace) -> Project:
    """The project named by ``--demo`` / ``--project`` / the current directory."""
    if args.demo:
        if args.project:
            fail("--demo and --project cannot be used together")
        from .demo import DEMO_MANAGE_PY, DemoError, demo_env, ensure_demo_database

        try:
            ensure_demo_database(sys.executable)
        except DemoError as exc:
            fail(str(exc), 1)
        return Project(DEMO_MANAGE_PY, settings=args.settings, pythonpath=args.pythonpath, env=tuple(demo_env().items()))
    try:
        return locate_project(args.project, settings=args.settings, pythonpath=args.pythonpath)
    except ProjectError as exc:
        fail(str(exc))


def run_server(argv: list[str]) -> int:
    args = server_parser().parse_args(argv)
    try:
        address: ListenAddress = parse_addrport(args.addrport, ipv6=args.ipv6)
    except AddressError as exc:
        fail(str(exc))
    project = resolve_project(args)
    record = None
    if args.record:
        record_path = Path(args.record)
        if not record_path.parent.is_dir():
            fail(f"--record {args.record}: directory {record_path.parent} does not exist")
        try:
            record = record_path.open("w", encoding="utf-8")
        except OSError as exc:
            fail(f"--record {args.record}: {exc.strerror}")
    try:
        sock = bind(address)
    except BindError as exc:
        fail(exc.strerror or str(exc))

    from .core.session import Session

    # The server starts now: Django's start-up in the child overlaps the UI's import.
    session = Session(project, address, sock, reload=not args.noreload, use_threading=not args.nothreading, record=record)
    try:
        session.start()
        from .ui.app import DevConsoleApp

        app = DevConsoleApp(session=session)
        app.run()
    finally:
        session.close()
        if record is not None:
            record.close()
    return app.return_code or 0


def run_replay(argv: list[str]) -> int:
    parser = _Parser(prog="devconsole replay", description="Show a session recorded with --record.")
    parser.add_argument("file", help="a recording made with devconsole --record FILE")
    parser.add_argument("--speed", type=float, default=0.0, help="play back at this speed (1 = real time); default: all at once")
    args = parser.parse_args(argv)
    from .core.recording import RecordingError, load_recording

    try:
        recording = load_recording(Path(args.file))
    except RecordingError as exc:
        fail(str(exc))
    from .ui.app import DevConsoleApp

    app = DevConsoleApp(recording=recording, speed=args.speed)
    app.run()
    return app.return_code or 0


def run_commands(argv: list[str]) -> int:
    parser = _Parser(prog="devconsole commands", description="List the project's management commands.")
    _project_options(parser)
    parser.add_argument("--json", action="store_true", help="print the catalogue as JSON")
    args = parser.parse_args(argv)
    project = resolve_project(args)
    from .core.catalogue import CatalogueError, format_table, load_catalogue

    try:
        catalogue = load_catalogue(project)
    except CatalogueError as exc:
        fail(str(exc), 1)
    if args.json:
        import json

        sys.stdout.write(json.dumps(catalogue.to_json(), indent=2) + "\n")
    else:
        sys.stdout.write(format_table(catalogue))
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    verbs = {"replay": run_replay, "commands": run_commands}
    if argv and argv[0] in verbs:
        return verbs[argv[0]](argv[1:])
    try:
        return run_server(argv)
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
