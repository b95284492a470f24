"""Run a project's own ``manage.py`` as ``__main__``, with Django's entry point
intercepted.

Child processes (the server agent, the catalogue) start this way instead of
calling ``django.setup()`` themselves, so everything ``manage.py`` does before
it hands over to Django still happens: loading a ``.env`` file, choosing a
default settings module, adding directories to ``sys.path``.

``manage.py`` ends with ``execute_from_command_line(sys.argv)``. We replace
that function in ``django.core.management`` before running the file; when
``manage.py`` calls it, our ``entry`` runs instead.
"""

from __future__ import annotations

import os
import runpy
import sys
from collections.abc import Callable
from pathlib import Path


class BootstrapError(Exception):
    """``manage.py`` could not be run up to Django's entry point."""


def run_manage_py(
    manage_py: Path,
    entry: Callable[[list[str]], object],
    *,
    argv: list[str] | None = None,
    settings: str | None = None,
    pythonpath: str | None = None,
) -> object:
    """Execute ``manage_py`` as ``__main__``; call ``entry(argv)`` in place of
    ``execute_from_command_line`` and return what it returns.

    ``settings`` and ``pythonpath`` have the meaning of Django's
    ``--settings`` / ``--pythonpath`` options: they apply before ``manage.py``
    runs, so its ``os.environ.setdefault`` does not override them.
    """
    manage_py = Path(manage_py).resolve()
    project_dir = manage_py.parent
    os.chdir(project_dir)
    # A script run by ``python manage.py`` has its own directory first on sys.path.
    sys.path.insert(0, str(project_dir))
    if pythonpath:
        sys.path.insert(0, pythonpath)
    if settings:
        os.environ["DJANGO_SETTINGS_MODULE"] = settings
    sys.argv = [str(manage_py), *(argv or [])]

    try:
        import django.core.management as management
    except ImportError as exc:  # pragma: no cover - devconsole depends on Django
        raise BootstrapError(f"cannot import Django: {exc}") from exc

    result: list[object] = []

    def intercepted(argv: list[str] | None = None) -> None:
        result.append(entry(list(argv if argv is not None else sys.argv)))

    original = management.execute_from_command_line
    management.execute_from_command_line = intercepted
    try:
        runpy.run_path(str(manage_py), run_name="__main__")
    finally:
        management.execute_from_command_line = original
    if not result:
        raise BootstrapError(f"{manage_py} did not call django.core.management.execute_from_command_line")
    return result[0]
