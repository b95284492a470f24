"""What the child side says about the project's classes and commands, written once
for the server child and the catalogue child.

Runs in the project's interpreter; Django is imported only inside the
functions (the catalogue child imports this module before ``manage.py`` has
run, see :mod:`devconsole.child.catalogue`).
"""

from __future__ import annotations

import functools
import os

from devconsole.wire.catalogue import CORE_APP


def class_path(cls: type) -> str:
    """``module.QualName`` of a class (``type(obj)`` for an instance's)."""
    return f"{cls.__module__}.{cls.__qualname__}"


@functools.cache
def command_providers() -> dict[str, list[str]]:
    """Command name → every app that defines it, in Django's priority order
    (``INSTALLED_APPS`` order, Django's own commands last): the first one is
    the one ``get_commands()`` resolves, unless settings override it.

    Found once per process, as Django's ``get_commands()`` is: level 1
    finds it and its forks inherit it (a generation's ``hello`` no longer
    scans every app's commands folder while its first request runs), so it
    says what the runserver command those forks resolve was chosen from.
    Read-only."""
    from django.apps import apps
    from django.core import management

    providers: dict[str, list[str]] = {}
    for app_config in apps.get_app_configs():
        for name in management.find_commands(os.path.join(app_config.path, "management")):
            providers.setdefault(name, []).append(app_config.name)
    for name in management.find_commands(management.__path__[0]):
        providers.setdefault(name, []).append(CORE_APP)
    return providers


def shadowed_apps(name: str, winner: str, providers: dict[str, list[str]] | None = None) -> list[str]:
    """Apps that also define command ``name`` but lose to ``winner``."""
    if providers is None:
        providers = command_providers()
    return [app for app in providers.get(name, []) if app != winner]
