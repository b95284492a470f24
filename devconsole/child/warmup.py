"""A new generation's first touches, done before its first page asks for them.

After a code save the open pages reload at once (the old generation's
``bye`` says the next one comes) and their requests wait in the backlog for
the new generation: its first request used to pay for what Django builds
lazily — the URL resolvers' reverse tables (every ``{% url %}``, and one
resolver per namespace), the template engine and its tag libraries, the
templates' parsing. Now:

* a gated generation builds the reverse tables right after its URLconf
  import, while the old generation stops (:func:`warm_resolvers`), and loads
  the templates named with ``accept`` before it lets the first request in
  (:func:`load_templates`, within :data:`TEMPLATES_BUDGET_S`). A spare loads none
  ahead of the save: an engine built then would keep the tag libraries and
  template folders as they were (one created before the save would be
  missed); the promoted spare loads them like any new generation.

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
#: Seconds the reverse tables' warm-up may take before it stops touching more.
BUDGET_S = 0.3
#: Seconds the templates' may take (the first request waits for them; the
#: most recently compiled are loaded first).
TEMPLATES_BUDGET_S = 0.1


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


def load_templates(templates: list[str], budget: float = TEMPLATES_BUDGET_S) -> None:
    """``templates`` loaded now (into the caches a request fills), within
    ``budget`` seconds. Nothing that fails here stops anything: the request
    that needs it fails the same way and shows it."""
    deadline = time.monotonic() + budget
    try:
        from django.template import loader
    except Exception:
        return
    for name in templates:
        if time.monotonic() >= deadline:
            return
        try:
            loader.get_template(name)
        except Exception:
            pass
