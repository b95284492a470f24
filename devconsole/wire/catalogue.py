"""The command catalogue's schema: the constants both halves of the
catalogue agree on (:mod:`devconsole.child.catalogue` writes the JSON,
:mod:`devconsole.commands.catalogue` reads it)."""

from __future__ import annotations

#: Version of the JSON document; bumped on incompatible changes.
SCHEMA_VERSION = 1

#: The pseudo-app that ``get_commands()`` reports for Django's own commands.
CORE_APP = "django.core"

#: Options that ``BaseCommand.create_parser`` adds to every command.
COMMON_OPTIONS = frozenset(
    {
        "--version",
        "--verbosity",
        "--settings",
        "--pythonpath",
        "--traceback",
        "--no-color",
        "--force-color",
        "--skip-checks",
    }
)

#: Commands that talk to the user on the terminal; the console suspends for them.
INTERACTIVE_COMMANDS = frozenset({"shell", "dbshell", "createsuperuser", "changepassword"})
