"""Runs inside the project's interpreter: the server child, its instrumentation,
the fork server, the catalogue child and the error page.

Started as ``python -c BOOT devconsole.child.X`` with the project's own
interpreter, which may not have devconsole's dependencies: modules here import
only the standard library, Django and :mod:`devconsole.wire` (an import-linter
contract in ``pyproject.toml`` keeps it so)."""
