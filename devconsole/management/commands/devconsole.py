"""``manage.py devconsole``: the console, started the way ``runserver`` is.

This is a thin door into :func:`devconsole.cli.main`: the options are passed
on as ``devconsole`` command-line arguments, so both ways of starting the
console share one code path (and one set of one-line error messages). The
project is this ``manage.py``; the console runs its server and commands in
child processes, as it always does.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandParser


def console_argv(options: dict[str, Any], manage_py: str | None) -> list[str]:
    """The ``devconsole`` arguments equivalent to this command's options."""
    from devconsole.cli import server_options_argv

    argv = server_options_argv(options)
    if manage_py is not None:
        argv += ["--project", str(Path(manage_py).resolve().parent)]
    if options.get("settings"):
        argv += ["--settings", options["settings"]]
    if options.get("pythonpath"):
        argv += ["--pythonpath", options["pythonpath"]]
    argv += list(options.get("runserver_passthrough") or ())
    return argv


def _manage_py() -> str | None:
    """This process's ``manage.py``, when it was started as ``python manage.py``
    (with ``django-admin`` the console looks for the nearest one)."""
    script = Path(sys.argv[0]) if sys.argv and sys.argv[0] else None
    if script is not None and script.name == "manage.py" and script.is_file():
        return str(script)
    return None


class Command(BaseCommand):
    help = (
        "Run the development server inside devconsole, a live terminal console "
        "(requests, sockets, select loop, autoreload) with a launcher for management commands. "
    )
    # The server child runs the system checks itself, in the background.
    requires_system_checks: list[str] = []

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._passthrough: list[str] = []

    def create_parser(self, prog_name: str, subcommand: str, **kwargs: Any) -> CommandParser:
        from devconsole.cli import PASSTHROUGH_EPILOG

        parser = super().create_parser(prog_name, subcommand, epilog=PASSTHROUGH_EPILOG, **kwargs)
        return parser

    def add_arguments(self, parser: CommandParser) -> None:
        from devconsole.cli import add_server_options

        # One definition of the server's options, shared with ``devconsole``.
        add_server_options(parser)

    def run_from_argv(self, argv: list[str]) -> None:
        """Options this parser does not know go to the project's runserver,
        as with ``devconsole`` (see :func:`devconsole.cli.split_passthrough`)."""
        from devconsole.cli import split_passthrough

        parser = self.create_parser(argv[0], argv[1])
        known, self._passthrough = split_passthrough(parser, argv[2:])
        super().run_from_argv([*argv[:2], *known])

    def handle(self, *args: Any, **options: Any) -> None:
        from devconsole import cli
        from devconsole.console.interpreter import Interpreter, Origin

        options.setdefault("runserver_passthrough", self._passthrough)
        # The python running manage.py is the project's, unless the user says otherwise.
        own = Interpreter(sys.executable, Origin.MANAGE_PY)
        code = cli.main(console_argv(options, _manage_py()), own=own)
        if code:
            raise SystemExit(code)
