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
    argv: list[str] = []
    if options.get("addrport"):
        argv.append(options["addrport"])
    for flag in ("noreload", "nothreading", "ipv6"):
        if options.get(flag):
            argv.append(f"--{flag}")
    if options.get("record"):
        argv += ["--record", options["record"]]
    if manage_py is not None:
        argv += ["--project", str(Path(manage_py).resolve().parent)]
    if options.get("settings"):
        argv += ["--settings", options["settings"]]
    if options.get("pythonpath"):
        argv += ["--pythonpath", options["pythonpath"]]
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
        "(requests, sockets, select loop, autoreload) with a launcher for management commands."
    )
    # The server child runs the system checks itself, in the background.
    requires_system_checks: list[str] = []

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("addrport", nargs="?", help="optional port number, or ipaddr:port (default 127.0.0.1:8000)")
        parser.add_argument("--noreload", action="store_true", help="do not restart the server when code changes")
        parser.add_argument("--nothreading", action="store_true", help="serve one request at a time")
        parser.add_argument("--ipv6", "-6", action="store_true", help="listen on IPv6")
        parser.add_argument("--record", metavar="FILE", help="save the session's events to FILE")

    def handle(self, *args: Any, **options: Any) -> None:
        from devconsole import cli

        code = cli.main(console_argv(options, _manage_py()))
        if code:
            raise SystemExit(code)
