"""The browser follows the code: live reload, served by the server child.

Nothing is added to the project. Two WSGI wrappers around the application
runserver serves (see :func:`wrap`):

* the outer one answers the reserved prefix :data:`PREFIX` before anything
  of the project (middleware, URLconf, request insight) sees the request:
  ``livereload.js`` (:data:`SCRIPT`, plain JS) and ``events``, an event
  stream each open page keeps;
* the inner one inserts one ``<script>`` tag before the last ``</body>`` of
  every ``text/html`` response that is whole (not streaming, not ``HEAD``,
  not 204/304, not encoded) and fixes its ``Content-Length``. A
  ``Content-Security-Policy`` that forbids a script or a connection to
  ``'self'`` leaves the page alone; the console is told once per path
  (``livereload_skip``).

The stream: ``retry``, then ``generation`` (the generation serving); the
script was given the one that rendered its page, so a different one (a code
save: this stream is a new generation's) reloads the page. ``reload`` (a
template the running server took without a restart, a static file that is
not CSS) and ``css`` with a stylesheet's URL path are sent to every open
stream. On ``stop`` the streams end at once with ``bye`` (the script
reconnects at once; the connection waits in the backlog for the next
generation), so they never keep an old generation draining.

Live reload is on when the console did not turn it off
(``DEVCONSOLE_BROWSER_RELOAD=0``, the control message ``livereload off``)
and ``settings.DEBUG`` is true. Standard library and Django only.
"""

from __future__ import annotations

import os
import threading
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from typing import Any
from urllib.parse import parse_qs, urlsplit

from devconsole.wire import control

#: Requests under this path are devconsole's, never the project's.
PREFIX = "/__devconsole__/"
SCRIPT_PATH = PREFIX + "livereload.js"
EVENTS_PATH = PREFIX + "events"
#: The EventSource's reconnection delay (ms) after an error.
RETRY_MS = 100
#: Seconds between two comment lines on an idle stream: a closed tab is
#: noticed within two of them (the write after the peer's reset fails).
KEEPALIVE_S = 5.0
#: Streams open at once at most; beyond, ``events`` answers 204 (the page
#: does not follow, and retries every few seconds, rather than a thread more per tab).
MAX_STREAMS = 64
#: Messages queued per stream; a stream behind by more only gets ``reload``.
MAX_QUEUED = 32
#: Bytes of an HTML page read to insert the tag; a larger one is left alone.
MAX_PAGE = 8 * 1024 * 1024
#: Paths named to the console once for a skipped page, at most.
MAX_SKIPPED_PATHS = 256
#: Characters of a page path the script reports (shown in the Sockets panel).
MAX_PAGE_PATH = 200

SCRIPT = b"""(function () {
  "use strict";
  var me = document.currentScript, root = document.documentElement;
  if (!me || !window.EventSource || window.__devconsole__) return;
  var dc = (window.__devconsole__ = { source: null, said: false });
  var rendered = new URL(me.src).searchParams.get("g");
  var delay = 100;
  function swap(path) {
    var links = document.querySelectorAll('link[rel~="stylesheet"]'), matched = [], i, url;
    for (i = 0; i < links.length; i++) {
      url = new URL(links[i].href, location.href);
      if (url.pathname === path) matched.push(links[i]);
    }
    if (!matched.length) matched = links;
    for (i = 0; i < matched.length; i++) {
      url = new URL(matched[i].href, location.href);
      url.searchParams.set("devconsole", Date.now());
      matched[i].href = url.href;
    }
  }
  function connect() {
    var page = location.pathname.slice(0, 200);
    var source = (dc.source = new EventSource("/__devconsole__/events?page=" + encodeURIComponent(page)));
    source.onopen = function () {
      delay = 100;
      root.dataset.devconsoleLivereload = "connected";
    };
    source.addEventListener("generation", function (e) {
      if (e.data !== rendered) location.reload();
    });
    source.addEventListener("reload", function () { location.reload(); });
    source.addEventListener("css", function (e) { swap(e.data); });
    source.addEventListener("bye", function () { source.close(); connect(); });
    source.onerror = function () {
      source.close();
      root.dataset.devconsoleLivereload = "reconnecting";
      if (!dc.said) {
        dc.said = true;
        console.info("devconsole live reload: server unreachable, reconnecting");
      }
      setTimeout(connect, delay);
      delay = Math.min(delay * 2, 5000);
    };
  }
  connect();
})();
"""


def _tokens(value: str) -> list[str]:
    return [t.lower() for t in value.split()]


def csp_refusal(policies: Iterable[str]) -> str | None:
    """Why a page with these ``Content-Security-Policy`` header values cannot
    follow (a script from, or a connection to, ``'self'`` is not allowed),
    or None when it can. Every policy given must allow both."""
    for policy in policies:
        directives: dict[str, list[str]] = {}
        for part in policy.split(";"):
            words = part.strip().split(None, 1)
            if words:
                directives.setdefault(words[0].lower(), _tokens(words[1] if len(words) > 1 else ""))
        for need, chain in (
            ("a script", ("script-src-elem", "script-src", "default-src")),
            ("a connection", ("connect-src", "default-src")),
        ):
            name = next((name for name in chain if name in directives), None)
            if name is None:
                continue
            sources = directives[name]
            if need == "a script" and "'strict-dynamic'" in sources:
                return f"its Content-Security-Policy ({name}) has 'strict-dynamic': 'self' does not count"
            if "'self'" not in sources and "*" not in sources:
                return f"its Content-Security-Policy ({name}) does not allow {need} from 'self'"
    return None


class _Stream:
    """One open page's event stream (a handler thread iterates it)."""

    def __init__(self, hub: LiveReload, page: str) -> None:
        self.hub = hub
        self.page = page
        self.queue: deque[bytes] = deque()
        self.closed = False

    def __iter__(self) -> Iterator[bytes]:
        hub = self.hub
        yield f"retry: {RETRY_MS}\n\nevent: generation\ndata: {hub.generation()}\n\n".encode()
        while True:
            with hub.cond:
                if not self.queue and not self.closed:
                    hub.cond.wait(KEEPALIVE_S)
                messages = list(self.queue)
                self.queue.clear()
                closed = self.closed
            if messages:
                yield b"".join(messages)
            elif not closed:
                yield b": keep-alive\n\n"
            if closed:
                yield b"event: bye\ndata: \n\n"
                return

    def close(self) -> None:
        self.hub.forget(self)


class LiveReload:
    """The streams of this generation and the switch; one per server child."""

    def __init__(self, generation: Callable[[], int], emit: Callable[[Any], None]) -> None:
        self.generation = generation
        self.emit = emit
        self.enabled = os.environ.get(control.BROWSER_RELOAD_ENV, "1") != "0"
        self.debug = _debug()
        self.cond = threading.Condition()
        self.streams: set[_Stream] = set()
        self.stopped = False
        self._skipped: set[str] = set()

    @property
    def active(self) -> bool:
        return self.enabled and self.debug and not self.stopped

    # the switch and the messages -------------------------------------------
    def report(self) -> None:
        """Tell the console the switch and how many pages follow."""
        self.emit({"type": "livereload", "enabled": self.enabled, "debug": self.debug, "pages": len(self.streams)})

    def set_enabled(self, enabled: bool) -> None:
        self.enabled = enabled
        if not enabled:
            self.end_streams()
        self.report()

    def broadcast(self, event: str, data: str = "") -> int:
        """Send ``event`` to every open page; how many there were."""
        message = f"event: {event}\ndata: {data}\n\n".encode()
        with self.cond:
            for stream in self.streams:
                if len(stream.queue) >= MAX_QUEUED:
                    stream.queue.clear()
                    message = b"event: reload\ndata: \n\n"
                stream.queue.append(message)
            self.cond.notify_all()
            return len(self.streams)

    def end_streams(self) -> None:
        """End every stream now (each says ``bye`` first)."""
        with self.cond:
            for stream in self.streams:
                stream.closed = True
            self.cond.notify_all()

    def stop(self) -> None:
        """This generation stops: no stream may keep it draining."""
        self.stopped = True
        self.end_streams()

    def forget(self, stream: _Stream) -> None:
        with self.cond:
            if stream not in self.streams:
                return
            self.streams.discard(stream)
        self.report()

    def file_changed(self, path: str, template_handled: bool) -> bool:
        """A saved file the console asked about: a template the running
        server took (``template_handled``) reloads the pages; a static file
        swaps (CSS) or reloads them. True when ``path`` is a static file
        (nothing to restart for it)."""
        url = static_url_path(path)
        if self.active:
            if url is not None and path.endswith(".css") and not template_handled:
                self.broadcast("css", url)
            elif url is not None or template_handled:
                self.broadcast("reload")
        return url is not None

    # the reserved paths -------------------------------------------------------
    def serve(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        path = str(environ.get("PATH_INFO", ""))
        if path == SCRIPT_PATH:
            start_response(
                "200 OK",
                [
                    ("Content-Type", "text/javascript; charset=utf-8"),
                    ("Content-Length", str(len(SCRIPT))),
                    ("Cache-Control", "no-cache"),
                ],
            )
            return [SCRIPT]
        if path == EVENTS_PATH:
            return self._events(environ, start_response)
        start_response("404 Not Found", [("Content-Type", "text/plain"), ("Content-Length", "10")])
        return [b"not found\n"]

    def _events(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        # A stream holds its thread: without threads it would hold the server.
        threaded = bool(environ.get("wsgi.multithread", True))
        with self.cond:
            room = len(self.streams) < MAX_STREAMS
            if not (self.active and threaded and room):
                stream = None
            else:
                query = parse_qs(str(environ.get("QUERY_STRING", "")))
                page = (query.get("page") or ["/"])[0][:MAX_PAGE_PATH]
                stream = _Stream(self, page)
                self.streams.add(stream)
        if stream is None:
            # 204: the EventSource fails; the script retries with a backoff
            # (up to 5 s), so a page follows again once live reload is back on.
            start_response("204 No Content", [("Content-Length", "0")])
            return []
        start_response(
            "200 OK",
            [
                ("Content-Type", "text/event-stream; charset=utf-8"),
                ("Cache-Control", "no-store"),
                ("X-Accel-Buffering", "no"),
            ],
        )
        self.report()
        return stream

    # the tag --------------------------------------------------------------------
    def tag(self) -> bytes:
        return f'<script src="{SCRIPT_PATH}?g={self.generation()}" defer></script>'.encode()

    def skipped(self, path: str, reason: str) -> None:
        """Say once per path why a page does not follow."""
        if path in self._skipped or len(self._skipped) >= MAX_SKIPPED_PATHS:
            return
        self._skipped.add(path)
        self.emit({"type": "livereload_skip", "path": path[:MAX_PAGE_PATH], "reason": reason})


def _debug() -> bool:
    try:
        from django.conf import settings

        return bool(settings.DEBUG)
    except Exception:
        return True  # the settings do not import: the page is devconsole's error page


def static_url_path(path: str) -> str | None:
    """The URL path the staticfiles finders serve ``path`` at, or None."""
    try:
        from django.conf import settings
        from django.contrib.staticfiles.finders import get_finders

        if "django.contrib.staticfiles" not in settings.INSTALLED_APPS:
            return None
        real = os.path.realpath(path)
        base = urlsplit(str(settings.STATIC_URL or "/static/")).path
        for finder in get_finders():
            storages = getattr(finder, "storages", None)
            if not isinstance(storages, dict):
                continue
            for storage in storages.values():
                location = getattr(storage, "location", None)
                if not location:
                    continue
                root = os.path.realpath(str(location)) + os.sep
                if not real.startswith(root):
                    continue
                relative = real[len(root) :].replace(os.sep, "/")
                prefix = getattr(storage, "prefix", None)
                if prefix:
                    relative = f"{str(prefix).strip('/')}/{relative}"
                return base.rstrip("/") + "/" + relative
    except Exception:
        return None
    return None


def static_dirs() -> list[str]:
    """The directories the staticfiles finders serve from (watched, so a
    save there reaches :meth:`LiveReload.file_changed`)."""
    found: list[str] = []
    try:
        from django.conf import settings
        from django.contrib.staticfiles.finders import get_finders

        if "django.contrib.staticfiles" not in settings.INSTALLED_APPS:
            return []
        for finder in get_finders():
            storages = getattr(finder, "storages", None)
            if isinstance(storages, dict):
                for storage in storages.values():
                    location = getattr(storage, "location", None)
                    if location and os.path.isdir(str(location)):
                        found.append(os.path.realpath(str(location)))
    except Exception:
        return []
    return sorted(set(found))


_hub: LiveReload | None = None


def install(generation: Callable[[], int], emit: Callable[[Any], None]) -> LiveReload:
    """This process's hub (made once)."""
    global _hub
    if _hub is None:
        _hub = LiveReload(generation, emit)
    return _hub


def hub() -> LiveReload | None:
    return _hub


def _header(headers: list[tuple[str, str]], name: str) -> list[str]:
    return [v for k, v in headers if k.lower() == name]


def _eligible(environ: dict[str, Any], status: str, headers: list[tuple[str, str]]) -> bool:
    if str(environ.get("REQUEST_METHOD", "")).upper() == "HEAD":
        return False
    code = status[:3]
    if code in ("204", "304") or code.startswith("1"):
        return False
    content_type = ";".join(_header(headers, "content-type")).lower()
    if not content_type.startswith("text/html"):
        return False
    if "utf-16" in content_type or "utf-32" in content_type:
        return False
    encoding = [v for v in _header(headers, "content-encoding") if v.strip().lower() not in ("", "identity")]
    return not encoding


def inject(app: Callable[..., Any], live: LiveReload) -> Callable[..., Any]:
    """``app`` with the script tag in its whole HTML pages (see the module docstring)."""

    def application(environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        if not live.active:
            return app(environ, start_response)
        held: list[Any] = []
        writers: list[Callable[[bytes], Any]] = []
        passthrough = False

        def holding_start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            nonlocal passthrough
            if passthrough or exc_info is not None or not _eligible(environ, status, headers):
                passthrough = True
                held.clear()
                return start_response(status, headers, exc_info) if exc_info else start_response(status, headers)
            held[:] = [status, headers]

            def write(data: bytes) -> None:  # an app that writes: nothing is held back
                nonlocal passthrough
                passthrough = True
                if held:
                    writers.append(start_response(*held))
                    held.clear()
                writers[0](data)

            return write

        result = app(environ, holding_start_response)
        if not held:
            # Not a page, or an app that answers lazily: as it was.
            passthrough = True
            return result
        status, headers = held
        length = _header(headers, "content-length")
        too_big = bool(length) and (not length[0].strip().isdigit() or int(length[0]) > MAX_PAGE)
        wrapper = environ.get("wsgi.file_wrapper")
        if getattr(result, "streaming", False) or too_big or (wrapper and isinstance(result, wrapper)):
            start_response(status, headers)
            return result
        try:
            body = b"".join(result)
        finally:
            close = getattr(result, "close", None)
            if close is not None:
                close()
        at = body.lower().rfind(b"</body>")
        path = str(environ.get("PATH_INFO", ""))
        refusal = csp_refusal(_header(headers, "content-security-policy")) if at >= 0 else None
        if at >= 0 and refusal is None:
            body = body[:at] + live.tag() + body[at:]
            headers = [(k, str(len(body)) if k.lower() == "content-length" else v) for k, v in headers]
        elif refusal is not None:
            live.skipped(path, refusal)
        start_response(status, headers)
        return [body]

    return application


def reserved(app: Callable[..., Any], live: LiveReload) -> Callable[..., Any]:
    """``app`` behind the reserved prefix, answered here before it."""

    def application(environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        if str(environ.get("PATH_INFO", "")).startswith(PREFIX):
            return live.serve(environ, start_response)
        return app(environ, start_response)

    return application
