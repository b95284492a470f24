"""A new generation's first touches, done before its first page asks for them.

After a code save the open pages reload at once (the old generation's
``bye`` says the next one comes) and their requests wait in the backlog for
the new generation: its first request used to pay for what Django builds
lazily — the URL resolvers' reverse tables (every ``{% url %}``, and one
resolver per namespace), the template engine and its tag libraries, the
templates' parsing. Now:

* a new generation after a reload builds the reverse tables, then loads the
  templates the old generation named with ``accept`` (:func:`steps`), once
  it serves, one step at a time while nothing waits for it: a request that
  comes first is served first (it builds what it needs itself, as it would
  have), and one that comes after finds it done. A spare loads none ahead
  of the save: an engine built then would keep the tag libraries and
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

import importlib.util
import json
import os
import re
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from typing import Any

#: Templates named to the next generation, at most.
MAX_TEMPLATES = 64
#: Characters of the names message, at most (under the control channel's limit).
MAX_NAMES_CHARS = 16 * 1024
#: Patterns compiled ahead, at most (``re`` caches 512)...
MAX_PATTERNS = 512
#: ...and characters of their message (under the control channel's limit).
MAX_PATTERNS_CHARS = 48 * 1024
#: Seconds the reverse tables' warm-up may take before it stops touching more.
BUDGET_S = 0.3
#: Seconds the templates' may take (the most recently compiled are loaded first).
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


def compiled_patterns() -> str:
    """The regular expressions this process compiled (``re``'s cache: the
    URL patterns among them), as a JSON list of ``[pattern, flags]``, most
    recent last, within :data:`MAX_PATTERNS_CHARS`; "" when there are none."""
    found: dict[tuple[str, int], None] = {}
    for cache in (getattr(re, "_cache", None), getattr(re, "_cache2", None)):
        if not isinstance(cache, dict):
            continue
        for key in list(cache):
            # (type of the pattern, pattern, flags) in every Python this runs on
            if isinstance(key, tuple) and len(key) == 3 and key[0] is str and isinstance(key[2], int):
                found[(key[1], key[2])] = None
    return _recent_json([[pattern, flags] for pattern, flags in found], MAX_PATTERNS_CHARS)


def _recent_json(items: list[Any], limit: int) -> str:
    """``items`` as a JSON list of at most ``limit`` characters, the first
    (the oldest) left out as needed; "" when none is left."""
    text = json.dumps(items)
    while items and len(text) > limit:
        items = items[len(items) // 4 + 1 :]
        text = json.dumps(items)
    return text if items else ""


def compile_patterns(text: str) -> None:
    """Compile the ``[pattern, flags]`` pairs of :func:`compiled_patterns`'
    ``text`` into ``re``'s cache, where this process's own ``re.compile`` of
    the same pattern finds them; anything else is skipped."""
    try:
        patterns = json.loads(text) if text else []
    except ValueError:
        return
    if not isinstance(patterns, list):
        return
    for item in patterns[:MAX_PATTERNS]:
        if isinstance(item, list) and len(item) == 2 and isinstance(item[0], str) and isinstance(item[1], int):
            try:
                re.compile(item[0], item[1])
            except Exception:
                pass


#: Texts of URL patterns whose forms (Django's ``normalize``) a process keeps, at most...
MAX_NORMALIZED = 4096
#: ...and characters of the message naming them to the next spare.
MAX_NORMALIZED_CHARS = 48 * 1024
#: pattern text → its forms, as :func:`memoize_normalize`'s wrapper computed them.
_normalized: dict[str, list[tuple[str, list[str]]]] = {}
#: The texts this process's resolvers asked for (not those computed ahead
#: alone), in the order of their first use: what the next spare is named.
_used: dict[str, None] = {}


def memoize_normalize() -> None:
    """Have the URL resolvers of this process (``django.urls.resolvers``)
    take each pattern's forms from a memo: ``normalize`` turns a pattern's
    text into the strings and arguments ``reverse()`` fills in, a pure
    function of that text, and a reverse table calls it for every pattern
    and every include's prefix joined to it (~15 ms of a Wagtail project's
    first page). The memo holds what this process computed, and what
    :func:`normalize_ahead` computed here from the texts the previous
    generation named; each caller gets lists of its own. Where Django has
    no such function, nothing is done."""
    try:
        from django.urls import resolvers
    except Exception:
        return
    original = getattr(resolvers, "normalize", None)
    if not callable(original) or getattr(original, "devconsole_memo", False):
        return

    def normalize(pattern: Any) -> Any:
        forms = _normalized.get(pattern) if isinstance(pattern, str) else None
        if isinstance(pattern, str) and pattern not in _used and len(_used) < MAX_NORMALIZED:
            _used[pattern] = None
        if forms is None:
            result = original(pattern)
            if not isinstance(pattern, str) or len(_normalized) >= MAX_NORMALIZED:
                return result
            forms = _normalized[pattern] = [(text, list(args)) for text, args in result]
        return [(text, list(args)) for text, args in forms]

    normalize.devconsole_memo = True  # type: ignore[attr-defined]
    setattr(resolvers, "normalize", normalize)  # noqa: B010 - a module Django may not type


def normalized_patterns() -> str:
    """The pattern texts this process's resolvers normalized (those a
    spare computed ahead and nothing asked for are not named again), as a
    JSON list, most recent last, within :data:`MAX_NORMALIZED_CHARS`; ""
    when there are none."""
    return _recent_json(list(_used), MAX_NORMALIZED_CHARS)


def normalized_count() -> int:
    """How many pattern texts' forms the memo holds."""
    return len(_normalized)


def normalize_ahead(text: str) -> int:
    """Compute the forms of the pattern texts :func:`normalized_patterns`
    named into the memo (see :func:`memoize_normalize`, which must be in
    place); anything else is skipped. How many the memo holds."""
    try:
        texts = json.loads(text) if text else []
        from django.urls import resolvers
    except Exception:
        return len(_normalized)
    normalize = getattr(resolvers, "normalize", None)
    if not isinstance(texts, list) or not getattr(normalize, "devconsole_memo", False):
        return len(_normalized)
    for item in texts[:MAX_NORMALIZED]:
        if isinstance(item, str) and item not in _normalized:
            try:
                normalize(item)  # type: ignore[misc]
            except Exception:
                pass
            _used.pop(item, None)  # computed ahead, not yet asked for here
    return len(_normalized)


#: Project sources a spare compiles ahead, at most, and their bytes in all.
MAX_SOURCES = 5000
MAX_SOURCES_BYTES = 64 * 1024 * 1024
#: path → (the source's bytes, its code): see :func:`precompile`.
_sources: dict[str, tuple[bytes, Any]] = {}


def precompile(paths: list[str], *, saved: bool = False) -> int:
    """Compile the project's sources ``paths`` now (a spare, ahead of the
    save), for the imports that would compile them after it: where Python
    has no bytecode file to read (``PYTHONDONTWRITEBYTECODE``, common in
    containers, or a folder it cannot write), every generation compiles
    every project module again. An import uses the code compiled here only
    when the source it reads then is, byte for byte, the source compiled
    here (a file saved meanwhile is compiled afresh): what runs is exactly
    what ``compile`` makes of the file as it is. A source that has a bytecode
    file is left alone (the import reads that). ``saved``: these files were
    just saved (see :class:`SavedSources`): compiled again, bytecode file or
    not (it is out of date now). How many are held."""
    total = sum(len(data) for data, _code in _sources.values())
    for path in paths[:MAX_SOURCES]:
        if not isinstance(path, str) or not path.endswith(".py"):
            continue
        if path in _sources:
            if not saved:
                continue
            total -= len(_sources.pop(path)[0])
        try:
            if not saved and os.path.exists(importlib.util.cache_from_source(path)):
                continue  # the import reads its bytecode file: nothing to compile
            with open(path, "rb") as handle:
                data = handle.read(MAX_SOURCES_BYTES - total + 1)
            if total + len(data) > MAX_SOURCES_BYTES:
                break
            # As SourceLoader.source_to_code compiles (this module's own
            # ``__future__`` imports are not inherited).
            _sources[path] = (data, compile(data, path, "exec", dont_inherit=True))
            total += len(data)
        except (OSError, SyntaxError, ValueError, NotImplementedError):
            continue
    if _sources:
        _use_compiled_sources()
    return len(_sources)


class SavedSources:
    """While a spare (or its twin) waits for its word: the folders of
    ``paths`` watched, so that a source saved meanwhile (among those
    ``wanted``, when given: the saves this process would serve) is compiled at once,
    while the console notices the save and decides, instead of by the import
    that follows ``go``. That import uses the code only for the very bytes
    it reads then (see :func:`precompile`); a file still being written is
    compiled again at its next event, or by the import. Linux (inotify)
    only; elsewhere, or when inotify cannot be had, nothing is watched."""

    def __init__(self, paths: list[str], wanted: Callable[[str], bool] | None = None) -> None:
        self.fd = -1
        self._folders: dict[int, str] = {}
        #: Which saved sources to compile (None: all): those this process may serve.
        self._wanted = wanted
        folders = sorted({os.path.dirname(p) for p in paths[:MAX_SOURCES] if isinstance(p, str) and p.endswith(".py")})
        if not folders:
            return
        try:
            from devconsole.wire import linux

            self.fd = linux.inotify_init()
            for folder in folders:
                try:
                    self._folders[linux.add_watch(self.fd, folder, linux.IN_CLOSE_WRITE | linux.IN_MOVED_TO)] = folder
                except OSError:
                    continue  # gone, or not readable: its sources are compiled by the import
        except (OSError, AttributeError):
            pass  # no inotify here
        if not self._folders:
            self.close()

    def compile_saved(self) -> list[str]:
        """Read what was saved; compile the Python sources among it. The paths compiled."""
        saved: dict[str, None] = {}
        if self.fd >= 0:
            from devconsole.wire import linux

            try:
                for wd, _mask, name in linux.read_events(self.fd):
                    folder = self._folders.get(wd)
                    if folder is not None and name.endswith(b".py"):
                        saved[os.path.join(folder, os.fsdecode(name))] = None
            except OSError:
                self.close()
        paths = [path for path in saved if self._wanted is None or self._wanted(path)]
        if paths:
            precompile(paths, saved=True)
        return [path for path in paths if path in _sources]

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


def _use_compiled_sources() -> None:
    """Have source imports take their code from :func:`precompile`'s."""
    from importlib.machinery import SourceFileLoader

    original = SourceFileLoader.source_to_code
    if getattr(original, "devconsole_compiled", False):
        return

    def source_to_code(self: Any, data: Any, path: Any, *, _optimize: int = -1) -> Any:
        if _sources and isinstance(path, str) and _optimize == -1:
            entry = _sources.pop(path, None)
            if entry is not None and entry[0] == data:
                return entry[1]
        return original(self, data, path, _optimize=_optimize)

    source_to_code.devconsole_compiled = True  # type: ignore[attr-defined]
    SourceFileLoader.source_to_code = source_to_code  # type: ignore[method-assign]


def parse_names(arg: str) -> list[str]:
    """:func:`template_names`' message back into names (anything else: none)."""
    try:
        value = json.loads(arg) if arg else []
    except ValueError:
        return []
    if not isinstance(value, list):
        return []
    return [name for name in value[:MAX_TEMPLATES] if isinstance(name, str) and name]


class TemplateNames:
    """The templates a warm-up loads, in order. Names join (:meth:`add`)
    until the warm-up's steps have ended (taken the last, run out of time,
    or been dropped); after that :meth:`add` says no, and the caller starts
    steps of its own: no name is lost between the two."""

    def __init__(self, names: Iterable[str] = ()) -> None:
        self._names = deque(names)
        self._lock = threading.Lock()
        self._ended = False

    def add(self, names: Iterable[str]) -> bool:
        """Queue ``names`` after the others; False once the steps ended."""
        with self._lock:
            if self._ended:
                return False
            self._names.extend(names)
            return True

    def take(self) -> str | None:
        """The next name, or None: then the steps end, and :meth:`add` says no."""
        with self._lock:
            if self._names and not self._ended:
                return self._names.popleft()
            self._ended = True
            return None

    def end(self) -> None:
        with self._lock:
            self._ended = True


def steps(templates: TemplateNames) -> Iterator[None]:
    """The warm-up, one small step per ``next()``: the reverse tables of each
    resolver (within :data:`BUDGET_S`), then ``templates`` in that order
    (within :data:`TEMPLATES_BUDGET_S`). The server runs a step only while
    no connection waits and no request is in flight (see
    :mod:`.instrument`), so a request is never queued behind the warm-up,
    at most behind one step. Nothing that fails here stops anything: the
    request that needs it fails the same way and shows it."""
    try:
        yield from _resolver_steps(time.monotonic() + BUDGET_S)
    except Exception:
        pass
    yield from _template_steps(templates, TEMPLATES_BUDGET_S)


def _resolver_steps(deadline: float) -> Iterator[None]:
    """Build the URL resolvers' reverse tables, as the first ``reverse()``
    of each namespace would (``{% url 'ns:name' %}`` reverses through a
    namespaced resolver Django caches), one resolver per step."""
    from django.urls import get_resolver
    from django.urls.resolvers import get_ns_resolver

    root = get_resolver()
    root.reverse_dict  # noqa: B018 - the property runs the resolver's _populate()
    # (namespace pattern so far, resolver, converters so far), as reverse() walks them.
    pending: list[tuple[str, Any, dict[str, Any]]] = [("", root, {})]
    while pending and time.monotonic() < deadline:
        prefix, resolver, converters = pending.pop()
        for extra, child in list(resolver.namespace_dict.values()):
            yield
            if time.monotonic() >= deadline:
                break
            pattern = prefix + extra
            merged = {**converters, **child.pattern.converters}
            get_ns_resolver(pattern, child, tuple(merged.items())).reverse_dict  # noqa: B018
            child.namespace_dict  # noqa: B018
            pending.append((pattern, child, merged))


def template_steps(templates: TemplateNames) -> Iterator[None]:
    """The templates' part of :func:`steps` alone."""
    return _template_steps(templates, TEMPLATES_BUDGET_S)


def _template_steps(templates: TemplateNames, budget: float) -> Iterator[None]:
    """``templates`` loaded (into the caches a request fills), one per step,
    within ``budget`` seconds of the first; ``templates`` ended however
    this ends."""
    try:
        from django.template import loader
    except Exception:
        templates.end()
        return
    deadline = time.monotonic() + budget
    try:
        while True:
            yield
            name = templates.take() if time.monotonic() < deadline else None
            if name is None:
                return
            try:
                loader.get_template(name)
            except Exception:
                pass
    finally:
        templates.end()
