"""A new generation's first touches, done before its first page asks for them.

After a code save the open pages reload at once (the old generation's
``bye`` says the next one comes) and their requests wait in the backlog for
the new generation: its first request used to pay for what Django builds
lazily — the URL resolvers' reverse tables (every ``{% url %}``, and one
resolver per namespace), the template engine and its tag libraries, the
templates' parsing. Now:

* the spare, forked from level 1 ahead of the save, loads the templates the
  last retired generation had compiled (:func:`preload_templates`); when it
  is promoted it drops them all unless every file still holds the text they
  were compiled from and no directory they could be found in changed
  (:func:`drop_if_changed`); the tag libraries it imported are project
  modules among its files, so an edit to one never promotes it;
* a gated generation builds the reverse tables right after its URLconf
  import, while the old generation stops (:func:`warm_resolvers`), and loads
  the templates named with ``accept`` before it lets the first request in
  (:func:`warm`: instant when the spare has them).

Nothing is carried over from another process: a generation only *names*
the templates it had compiled (:func:`template_names`, sent with
``stopping``); what is loaded is this process's own, from the files as they
are, into the caches a request fills (and Django's ``file_changed``
receivers clear). Bounded by a time budget; a failure is ignored (the
request that needs it then fails the same way and shows it). Standard
library and Django only.
"""

from __future__ import annotations

import json
import time
from typing import Any

#: Templates named to the next generation, at most.
MAX_TEMPLATES = 64
#: Characters of the names message, at most (under the control channel's limit).
MAX_NAMES_CHARS = 16 * 1024
#: Seconds one warm-up may take before it stops touching more.
BUDGET_S = 0.3


def template_names() -> str:
    """The names of the templates this process's Django engines compiled
    (their cached loaders), as a JSON list, most recently compiled last; ""
    when there are none or Django's template layer was never used."""
    import sys

    if "django.template.engine" not in sys.modules:
        return ""
    names: list[str] = []
    try:
        from django.template import engines
        from django.template.backends.django import DjangoTemplates

        # The engines made so far only: making one here would import its tag libraries.
        for backend in list(getattr(engines, "_engines", {}).values()):
            if not isinstance(backend, DjangoTemplates):
                continue
            for loader in backend.engine.template_loaders:
                cache = getattr(loader, "get_template_cache", None)
                if not isinstance(cache, dict):
                    continue
                for template in list(cache.values()):
                    name = getattr(template, "name", None)
                    if isinstance(name, str) and name and name not in names:
                        names.append(name)
    except Exception:
        return ""
    names = names[-MAX_TEMPLATES:]
    while names and len(json.dumps(names)) > MAX_NAMES_CHARS:
        names.pop(0)
    return json.dumps(names) if names else ""


def parse_names(arg: str) -> list[str]:
    """:func:`template_names`' message back into names (anything else: none)."""
    try:
        value = json.loads(arg) if arg else []
    except ValueError:
        return []
    if not isinstance(value, list):
        return []
    return [name for name in value[:MAX_TEMPLATES] if isinstance(name, str) and name]


def warm_resolvers(budget: float = BUDGET_S) -> int:
    """Build the URL resolvers' reverse tables now, as the first
    ``reverse()`` of each namespace would (``{% url 'ns:name' %}`` reverses
    through a namespaced resolver Django caches): how many were built."""
    from django.urls import get_resolver
    from django.urls.resolvers import get_ns_resolver

    deadline = time.monotonic() + budget
    built = 0
    root = get_resolver()
    root.reverse_dict  # noqa: B018 - the property runs the resolver's _populate()
    built += 1
    # (namespace pattern so far, resolver, converters so far), as reverse() walks them.
    pending: list[tuple[str, Any, dict[str, Any]]] = [("", root, {})]
    while pending and time.monotonic() < deadline:
        prefix, resolver, converters = pending.pop()
        for extra, child in list(resolver.namespace_dict.values()):
            if time.monotonic() >= deadline:
                break
            pattern = prefix + extra
            merged = {**converters, **child.pattern.converters}
            get_ns_resolver(pattern, child, tuple(merged.items())).reverse_dict  # noqa: B018
            built += 1
            child.namespace_dict  # noqa: B018
            pending.append((pattern, child, merged))
    return built


def warm(templates: list[str], budget: float = BUDGET_S, *, resolvers: bool = True) -> dict[str, Any]:
    """The URL resolvers' reverse tables (:func:`warm_resolvers`) and
    ``templates`` loaded now, within ``budget`` seconds; what was done (for
    the tests and traces). Nothing that fails here stops anything: the
    request that needs it fails the same way and shows it."""
    deadline = time.monotonic() + budget
    done: dict[str, Any] = {"resolvers": 0, "templates": [], "failed": 0, "ms": 0.0}
    started = time.perf_counter()
    if resolvers:
        try:
            done["resolvers"] = warm_resolvers(budget)
        except Exception:
            done["failed"] += 1
    if templates:
        try:
            from django.template import loader
        except Exception:
            templates = []
        for name in templates:
            if time.monotonic() >= deadline:
                break
            try:
                loader.get_template(name)
                done["templates"].append(name)
            except Exception:
                done["failed"] += 1
    done["ms"] = round((time.perf_counter() - started) * 1000, 2)
    return done


#: What a preloaded template was made from: ``(path, its text, charset)``
#: for a template's file, ``(path, (inode, size, mtime_ns), "")`` for a
#: directory it could have been found in (a file added there would be found first).
Check = tuple[str, "str | tuple[int, int, int]", str]


def _stamp(path: str) -> tuple[int, int, int]:
    import os

    try:
        st = os.stat(path)
    except OSError:
        return (0, 0, 0)
    return (st.st_ino, st.st_size, st.st_mtime_ns)


def _text(path: str, charset: str) -> str | None:
    try:
        with open(path, encoding=charset) as handle:
            return handle.read()
    except (OSError, ValueError):
        return None


def preload_templates(templates: list[str], budget: float = BUDGET_S) -> list[Check]:
    """Load ``templates`` (a spare, before the save that promotes it) and
    return what they were made from; see :func:`drop_if_changed`. Nothing
    stays loaded that cannot be checked."""
    if not templates:
        return []
    import os

    deadline = time.monotonic() + budget
    checks: list[Check] = []
    try:
        from django.template import loader
        from django.template.autoreload import get_template_directories

        # Stamped before anything is read: a file added after this is seen.
        for directory in {str(d) for d in get_template_directories()}:
            for name in templates:
                where = os.path.dirname(os.path.join(directory, name))
                checks.append((where, _stamp(where), ""))
    except Exception:
        return []
    for name in templates:
        if time.monotonic() >= deadline:
            break
        try:
            template = getattr(loader.get_template(name), "template", None)
        except Exception:
            continue  # not found (the directories say when that changes) or broken (not cached)
        origin = getattr(getattr(template, "origin", None), "name", None)
        source = getattr(template, "source", None)
        charset = getattr(getattr(template, "engine", None), "file_charset", "utf-8")
        if not isinstance(origin, str) or not isinstance(source, str) or _text(origin, charset) != source:
            # Not a file this process can check, or one that changed while
            # read: keep nothing loaded.
            drop_templates()
            return []
        checks.append((origin, source, str(charset)))
    return checks


def drop_templates() -> None:
    """Empty every template engine's caches (what Django does when a
    template file changes under a running server)."""
    try:
        from django.template.autoreload import reset_loaders

        reset_loaders()
    except Exception:
        pass


def drop_if_changed(checks: list[Check]) -> bool:
    """At promotion: unless every preloaded template's file still holds the
    text it was compiled from (and no directory it could have been found in
    changed), drop every loaded template, so this generation compiles them
    from the files. True when dropped."""
    for path, expected, charset in checks:
        now = _text(path, charset) if isinstance(expected, str) else _stamp(path)
        if now != expected:
            drop_templates()
            return True
    return False
