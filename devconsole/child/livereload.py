"""The browser follows the code: live reload, served by the server child.

Nothing is added to the project. :func:`wrap` puts two WSGI wrappers around
the application runserver serves:

* the outer one answers the reserved prefix :data:`PREFIX` (decoded, see
  :func:`is_reserved`) before anything of the project (middleware, URLconf,
  request insight) sees the request: ``livereload.js`` (:data:`SCRIPT`),
  ``worker.js`` (:data:`WORKER`: one stream per browser, every tab told) and
  ``events``, the event stream;
* the inner one inserts one ``<script>`` tag before the last ``</body>`` of
  every ``text/html`` answer to a GET or HEAD that is whole (not streaming,
  not 204/304, not encoded, not an attachment) and fixes its
  ``Content-Length``. A ``Content-Security-Policy`` (header or ``<meta>``)
  that forbids a script or a connection to ``'self'`` leaves the page alone;
  the console is told once per path (``livereload_skip``). The page's
  validators name the generation (:func:`_conditions`), so a revalidated
  page is never another generation's copy.

The stream: ``retry``, then ``generation`` (``<run>.<N>``, the one serving);
the script was given the one that rendered its page, so a different one (a
code save: this stream is a new generation's) reloads the page. ``reload`` (a
template the running server took without a restart, a static file that is
not CSS) and ``css`` with a stylesheet's URL path are sent to every open
stream. On ``stop`` the streams end at once with ``bye``, so they never
keep an old generation draining: on a reload (the console starts the next
generation on the same socket) it says ``next`` and the page reloads at
once — the old generation already accepts nothing and has handed its idle
keep-alive connections on, so the request waits in the backlog for the new
one (its error page after a broken save); at quit it says nothing and the
script reconnects (and says the server is down). Turned off, ``events``
answers ``off`` and the script stops (nothing polls).

Live reload is on when the console's switch is (``--browser-reload``, the
control message ``livereload on|off``), ``settings.DEBUG`` is true and the
server has threads. Standard library and Django only.
"""

from __future__ import annotations

import html
import os
import re
import threading
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from typing import Any
from urllib.parse import parse_qs, quote, unquote, urlsplit

from devconsole.wire import control

#: Requests under this path are devconsole's, never the project's.
PREFIX = "/__devconsole__/"
SCRIPT_PATH = PREFIX + "livereload.js"
EVENTS_PATH = PREFIX + "events"
WORKER_PATH = PREFIX + "worker.js"
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

#: The page's script: one shared worker per browser and origin keeps the
#: one stream (:data:`WORKER`) and tells every tab; where ``SharedWorker`` is
#: missing (or refused), the tab keeps its own stream.
SCRIPT = b"""(function () {
  "use strict";
  var me = document.currentScript, root = document.documentElement;
  if (!me || window.__devconsole__) return;
  var rendered = new URL(me.src).searchParams.get("g");
  var page = location.pathname.slice(0, 200);
  var dc = (window.__devconsole__ = { said: false, stopped: false, alone: false });
  function state(s) { root.dataset.devconsoleLivereload = s; }
  function swap(data) {
    var lines = data.split("\\n"), path = lines[0], base = lines[1] || "/";
    var links = document.querySelectorAll('link[rel~="stylesheet"]'), matched = [], under = [], i, url;
    for (i = 0; i < links.length; i++) {
      url = new URL(links[i].href, location.href);
      if (url.origin !== location.origin) continue;
      if (url.pathname === path) matched.push(links[i]);
      else if (url.pathname.indexOf(base) === 0) under.push(links[i]);
    }
    if (!matched.length) matched = under;
    for (i = 0; i < matched.length; i++) {
      url = new URL(matched[i].href, location.href);
      url.searchParams.set("devconsole", Date.now());
      matched[i].href = url.href;
    }
  }
  function handle(event, data) {
    if (dc.stopped) return;
    if (event === "next") {
      // The server says the next generation comes: reload now (the request
      // waits for it); nothing later may reload this page again.
      dc.stopped = true;
      location.reload();
    } else if (event === "generation") {
      state("connected");
      if (data !== rendered) location.reload();
    } else if (event === "reload") location.reload();
    else if (event === "css") swap(data);
    else if (event === "off") { dc.stopped = true; state("off"); }
    else if (event === "down") {
      state("reconnecting");
      if (!dc.said) {
        dc.said = true;
        console.info("devconsole live reload: server unreachable, reconnecting");
      }
    }
  }
  function alone() {
    if (dc.alone || !window.EventSource) return;
    dc.alone = true;
    var delay = 100;
    function connect() {
      if (dc.stopped) return;
      var source = new EventSource("/__devconsole__/events?page=" + encodeURIComponent(page));
      source.onopen = function () { delay = 100; };
      ["generation", "reload", "css", "off"].forEach(function (name) {
        source.addEventListener(name, function (e) {
          if (name === "off") source.close();
          handle(name, e.data);
        });
      });
      source.addEventListener("bye", function (e) {
        source.close();
        if (e.data === "next") handle("next", "");
        else connect();
      });
      source.onerror = function () {
        source.close();
        handle("down", "");
        setTimeout(connect, delay);
        delay = Math.min(delay * 2, 5000);
      };
    }
    connect();
  }
  function shared() {
    var worker;
    try {
      worker = new SharedWorker("/__devconsole__/worker.js", "devconsole-livereload");
    } catch (e) {
      return false;
    }
    var port = worker.port;
    port.onmessage = function (e) { handle(e.data.event, e.data.data); };
    worker.onerror = function () { port.close(); alone(); };
    port.start();
    port.postMessage({ page: page });
    addEventListener("pagehide", function () { port.postMessage({ gone: true }); });
    return true;
  }
  if (!(window.SharedWorker && shared())) alone();
})();
"""

#: The shared worker: one stream for every tab of this origin in this browser.
#: A tab that loads while it is off (``off``: the console turned live reload
#: off) makes it try once more; nothing polls.
WORKER = b"""(function () {
  "use strict";
  var ports = [], source = null, timer = null, page = "/", generation = null, delay = 100;
  function send(event, data) {
    for (var i = 0; i < ports.length; i++) ports[i].postMessage({ event: event, data: data });
  }
  function end() {
    if (source) source.close();
    source = null;
    generation = null;
  }
  function connect() {
    timer = null;
    if (!ports.length) return;
    source = new EventSource("/__devconsole__/events?page=" + encodeURIComponent(page));
    source.onopen = function () { delay = 100; };
    source.addEventListener("generation", function (e) { generation = e.data; send("generation", e.data); });
    source.addEventListener("reload", function () { send("reload", ""); });
    source.addEventListener("css", function (e) { send("css", e.data); });
    source.addEventListener("off", function () { end(); send("off", ""); });
    source.addEventListener("bye", function (e) {
      end();
      if (e.data === "next") send("next", "");
      connect();
    });
    source.onerror = function () {
      end();
      send("down", "");
      timer = setTimeout(connect, delay);
      delay = Math.min(delay * 2, 5000);
    };
  }
  self.onconnect = function (e) {
    var port = e.ports[0];
    ports.push(port);
    port.onmessage = function (m) {
      var d = m.data || {};
      if (d.gone) {
        var at = ports.indexOf(port);
        if (at >= 0) ports.splice(at, 1);
        if (!ports.length) end();
      } else if (d.page) {
        if (generation !== null) port.postMessage({ event: "generation", data: generation });
        else if (!source && !timer) { page = String(d.page).slice(0, 200); connect(); }
      }
    };
    port.start();
  };
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


def page_of(query: str) -> str:
    """The ``page`` a stream's query string names (bounded)."""
    try:
        return (parse_qs(query).get("page") or ["/"])[0][:MAX_PAGE_PATH]
    except ValueError:
        return "/"


def decoded(raw_path: str) -> str:
    """A request line's path (no query) as WSGI's ``PATH_INFO`` has it."""
    return unquote(raw_path.partition("?")[0], "iso-8859-1")


def is_reserved(path: str, *, raw: bool = True) -> bool:
    """Whether ``path`` (as in the request line, or ``raw=False``: decoded,
    ``PATH_INFO``) is devconsole's: ``/%5F_devconsole__/events`` is too."""
    return (decoded(path) if raw else path).startswith(PREFIX)


def is_events(path: str, *, raw: bool = True) -> bool:
    """Whether ``path`` (see :func:`is_reserved`) is the event stream."""
    return (decoded(path) if raw else path) == EVENTS_PATH


class _Stream:
    """One open stream (a handler thread iterates it): one per browser
    (its shared worker), or per tab where there is none."""

    def __init__(self, hub: LiveReload, page: str) -> None:
        self.hub = hub
        self.page = page
        self.queue: deque[bytes] = deque()
        self.closed = False
        #: Set when it ends because the next generation comes (see :meth:`LiveReload.stop`).
        self.successor = False

    def __iter__(self) -> Iterator[bytes]:
        hub = self.hub
        yield f"retry: {RETRY_MS}\n\nevent: generation\ndata: {hub.generation_id()}\n\n".encode()
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
                yield b"event: bye\ndata: next\n\n" if self.successor else b"event: bye\ndata: \n\n"
                return

    def close(self) -> None:
        self.hub.forget(self)


class LiveReload:
    """The streams of this generation and the switch; one per server child.

    ``enabled``: the console's switch as the child was started with it
    (``--browser-reload``); ``run``: this console run's id, so a page from an
    earlier run never matches a generation of this one; ``threaded``: false
    under ``--nothreading`` (a stream would hold the only thread: pages are
    left alone and a stream is answered ``off``)."""

    def __init__(
        self,
        generation: Callable[[], int],
        emit: Callable[[Any], None],
        *,
        enabled: bool | None = None,
        run: str = "",
        threaded: bool = True,
    ) -> None:
        self.generation = generation
        self.emit = emit
        self.enabled = os.environ.get(control.BROWSER_RELOAD_ENV, "1") != "0" if enabled is None else enabled
        self.run = run
        self.threaded = threaded
        self.debug = _debug()
        self.cond = threading.Condition()
        self.streams: set[_Stream] = set()
        self.stopped = False
        self._skipped: set[str] = set()

    @property
    def active(self) -> bool:
        return self.enabled and self.debug and self.threaded and not self.stopped

    def generation_id(self) -> str:
        """``<run>.<generation>``: what a page was rendered by."""
        return f"{self.run}.{self.generation()}" if self.run else str(self.generation())

    # the switch and the messages -------------------------------------------
    def report(self) -> None:
        """Tell the console the switch and how many streams follow (pages
        cannot follow without threads: said as off)."""
        self.emit(
            {
                "type": "livereload",
                "enabled": self.enabled and self.threaded,
                "debug": self.debug,
                "pages": len(self.streams),
            }
        )

    def set_enabled(self, enabled: bool) -> None:
        self.enabled = enabled
        if not enabled:
            self.end_streams(b"event: off\ndata: \n\n")
        self.report()

    def broadcast(self, event: str, data: str = "") -> int:
        """Send ``event`` to every open stream; how many there were."""
        lines = "".join(f"data: {line}\n" for line in data.split("\n"))
        encoded = f"event: {event}\n{lines}\n".encode()
        with self.cond:
            for stream in self.streams:
                sent = encoded
                if len(stream.queue) >= MAX_QUEUED:
                    stream.queue.clear()
                    sent = b"event: reload\ndata: \n\n"
                stream.queue.append(sent)
            self.cond.notify_all()
            return len(self.streams)

    def end_streams(self, last: bytes = b"") -> None:
        """End every stream now (each says ``last``, if given, then ``bye``:
        after ``off`` the script stops, so ``bye`` goes unheard)."""
        with self.cond:
            for stream in self.streams:
                if last:
                    stream.queue.append(last)
                stream.closed = True
            self.cond.notify_all()

    def stop(self, wait: float = 0.2, *, successor: bool = False) -> None:
        """This generation stops: no stream may keep it draining. Waits (up
        to ``wait`` s, see :meth:`wait_ended`) for the streams to have said
        ``bye``, so the process does not end before the pages know to
        reconnect. ``successor``: the next generation comes on this socket
        (a reload, not a quit; this one accepts nothing more): ``bye`` says
        ``next`` and the pages reload at once, their requests waiting in the
        backlog for it."""
        self.stopped = True
        with self.cond:
            for stream in self.streams:
                stream.successor = successor
        self.end_streams()
        self.wait_ended(wait)

    def wait_ended(self, wait: float) -> None:
        """Until every stream said ``bye`` and ended (at most ``wait`` s)."""
        with self.cond:
            self.cond.wait_for(lambda: not self.streams, wait)

    def forget(self, stream: _Stream) -> None:
        with self.cond:
            if stream not in self.streams:
                return
            self.streams.discard(stream)
            self.cond.notify_all()
        self.report()

    def file_changed(self, path: str, template_handled: bool) -> bool:
        """A saved file the console asked about: a template the running
        server took (``template_handled``) reloads the pages; a static file
        swaps (CSS) or reloads them. True when ``path`` is a static file
        (nothing to restart for it)."""
        found = static_url_path(path)
        if self.active:
            if found is not None and path.endswith(".css") and not template_handled:
                # The stylesheet's URL path, then STATIC_URL's (what the
                # script may refresh when no link matches exactly).
                self.broadcast("css", "\n".join(found))
            elif found is not None or template_handled:
                self.broadcast("reload")
        return found is not None

    # the reserved paths -------------------------------------------------------
    def serve(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        path = str(environ.get("PATH_INFO", ""))
        for name, body in ((SCRIPT_PATH, SCRIPT), (WORKER_PATH, WORKER)):
            if path == name:
                start_response(
                    "200 OK",
                    [
                        ("Content-Type", "text/javascript; charset=utf-8"),
                        ("Content-Length", str(len(body))),
                        ("Cache-Control", "no-cache"),
                    ],
                )
                return [body]
        if is_events(path, raw=False):
            return self._events(environ, start_response)
        start_response("404 Not Found", [("Content-Type", "text/plain"), ("Content-Length", "10")])
        return [b"not found\n"]

    def _events(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        stream: _Stream | None = None
        with self.cond:
            if self.stopped:
                answer: bytes | None = b"event: bye\ndata: \n\n"  # the next generation will answer
            elif not self.active:
                # Off (the console's switch, DEBUG, no threads): the script
                # stops until the page is loaded again; nothing polls.
                answer = b"event: off\ndata: \n\n"
            elif len(self.streams) >= MAX_STREAMS:
                answer = None
            else:
                stream = _Stream(self, page_of(str(environ.get("QUERY_STRING", ""))))
                self.streams.add(stream)
                answer = b""
        if answer is None:
            # 204: the EventSource fails; the script retries with a backoff (up to 5 s).
            start_response("204 No Content", [("Content-Length", "0")])
            return []
        headers = [
            ("Content-Type", "text/event-stream; charset=utf-8"),
            ("Cache-Control", "no-store"),
            ("X-Accel-Buffering", "no"),
        ]
        if answer:
            body = f"retry: {RETRY_MS}\n\n".encode() + answer
            start_response("200 OK", [*headers, ("Content-Length", str(len(body)))])
            return [body]
        start_response("200 OK", headers)
        self.report()
        assert stream is not None
        return stream

    # the tag --------------------------------------------------------------------
    def tag(self) -> bytes:
        return f'<script src="{SCRIPT_PATH}?g={self.generation_id()}" defer></script>'.encode()

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


def _static_storages() -> tuple[str, list[tuple[str, str]]]:
    """STATIC_URL's path and the (real directory, prefix) of every storage
    the staticfiles finders serve from; nothing without staticfiles."""
    from django.conf import settings
    from django.contrib.staticfiles.finders import get_finders

    if "django.contrib.staticfiles" not in settings.INSTALLED_APPS:
        return "/", []
    base = urlsplit(str(settings.STATIC_URL or "/static/")).path
    found: list[tuple[str, str]] = []
    for finder in get_finders():
        storages = getattr(finder, "storages", None)
        if not isinstance(storages, dict):
            continue
        for storage in storages.values():
            location = getattr(storage, "location", None)
            if location:
                found.append((os.path.realpath(str(location)), str(getattr(storage, "prefix", None) or "")))
    return base, found


def static_url_path(path: str) -> tuple[str, str] | None:
    """The URL path (percent-encoded) the staticfiles finders serve ``path``
    at and STATIC_URL's path, or None."""
    try:
        base, storages = _static_storages()
        real = os.path.realpath(path)
        for location, prefix in storages:
            root = location + os.sep
            if not real.startswith(root):
                continue
            relative = real[len(root) :].replace(os.sep, "/")
            if prefix:
                relative = f"{prefix.strip('/')}/{relative}"
            return quote(base.rstrip("/") + "/" + relative), quote(base)
    except Exception:
        return None
    return None


def static_dirs() -> list[str]:
    """The directories the staticfiles finders serve from (watched, so a
    save there reaches :meth:`LiveReload.file_changed`)."""
    try:
        return sorted({location for location, _ in _static_storages()[1] if os.path.isdir(location)})
    except Exception:
        return []


_hub: LiveReload | None = None


def install(generation: Callable[[], int], emit: Callable[[Any], None], **options: Any) -> LiveReload:
    """This process's hub (made once; ``options``: see :class:`LiveReload`)."""
    global _hub
    if _hub is None:
        _hub = LiveReload(generation, emit, **options)
    return _hub


def hub() -> LiveReload | None:
    return _hub


def _header(headers: list[tuple[str, str]], name: str) -> list[str]:
    return [v for k, v in headers if k.lower() == name]


def _eligible(status: str, headers: list[tuple[str, str]]) -> bool:
    code = status[:3]
    if code in ("204", "304") or code.startswith("1"):
        return False
    content_type = ";".join(_header(headers, "content-type")).lower()
    if not content_type.startswith("text/html"):
        return False
    if "utf-16" in content_type or "utf-32" in content_type:
        return False
    if any(v.strip().lower().startswith("attachment") for v in _header(headers, "content-disposition")):
        return False  # a download: the file saved must be the project's
    encoding = [v for v in _header(headers, "content-encoding") if v.strip().lower() not in ("", "identity")]
    return not encoding


_META = re.compile(rb"<meta\b[^>]*>", re.IGNORECASE)
_ATTRIBUTE = re.compile(rb"""([a-zA-Z-]+)\s*=\s*(?:"([^"]*)"|'([^']*)'|([^\s>]+))""")


def meta_policies(head: bytes) -> list[str]:
    """The ``Content-Security-Policy`` of ``<meta http-equiv>`` tags in ``head``."""
    found: list[str] = []
    for tag in _META.findall(head):
        attributes = {
            # One of the three forms matched (an empty quoted value is b"", not None).
            m[1].lower(): html.unescape(next(v for v in (m[2], m[3], m[4], b"") if v is not None).decode("latin-1"))
            for m in _ATTRIBUTE.finditer(tag)
        }
        if attributes.get(b"http-equiv", "").strip().lower() == "content-security-policy":
            found.append(attributes.get(b"content", ""))
    return found


#: A validator this module made: the project's own, then ``-lr<generation id>``.
_OUR_ETAG = re.compile(r'^W/"(.*)-lr([0-9A-Za-z]+(?:\.[0-9]+)?)"$')
_ETAGS = re.compile(r'(?:W/)?"[^"]*"|\*')


def _our_etag(etag: str, gid: str) -> str | None:
    """A tagged page's ``ETag`` (weak: the body is not the project's), or
    None when the project's is not one."""
    match = re.match(r'^\s*(?:W/)?"([^"]*)"\s*$', etag)
    return f'W/"{match[1]}-lr{gid}"' if match else None


def _conditions(environ: dict[str, Any], gid: str) -> bool:
    """The project's validators back in a conditional request: ``If-None-Match``
    with this generation's tagged ETag becomes the project's; any other
    generation's goes; on a page load (``Accept: text/html``) a validator not
    ours (a copy without the tag) and ``If-Modified-Since`` go too, so the
    browser never shows a copy of another generation. True when one was
    turned back (a 304 then carries the tagged ETag)."""
    navigation = "text/html" in str(environ.get("HTTP_ACCEPT", ""))
    if navigation:
        environ.pop("HTTP_IF_MODIFIED_SINCE", None)
    header = environ.get("HTTP_IF_NONE_MATCH")
    if header is None:
        return False
    kept: list[str] = []
    turned = False
    for token in _ETAGS.findall(str(header)):
        match = _OUR_ETAG.match(token)
        if match:
            if match[2] == gid:
                kept.append(f'"{match[1]}"')
                turned = True
        elif not navigation:
            kept.append(token)
    if kept:
        environ["HTTP_IF_NONE_MATCH"] = ", ".join(kept)
    else:
        del environ["HTTP_IF_NONE_MATCH"]
    return turned


def _retag(headers: list[tuple[str, str]], gid: str) -> list[tuple[str, str]]:
    """A tagged page's headers: its ETag marked with the generation, no
    Last-Modified (the body changes with the generation, the file does not)."""
    out: list[tuple[str, str]] = []
    for name, value in headers:
        lower = name.lower()
        if lower == "last-modified":
            continue
        if lower == "etag":
            ours = _our_etag(value, gid)
            if ours is None:
                continue
            value = ours
        out.append((name, value))
    return out


def inject(app: Callable[..., Any], live: LiveReload) -> Callable[..., Any]:
    """``app`` with the script tag in its whole HTML pages (see the module docstring)."""

    def application(environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        method = str(environ.get("REQUEST_METHOD", "")).upper()
        if not live.active or method not in ("GET", "HEAD"):
            # A page from a POST is never tagged: its reload would post again.
            return app(environ, start_response)
        gid = live.generation_id()
        # An encoded page cannot be tagged; compressing on localhost gains nothing.
        environ.pop("HTTP_ACCEPT_ENCODING", None)
        turned = _conditions(environ, gid)
        held: list[Any] = []
        writers: list[Callable[[bytes], Any]] = []
        passthrough = False

        def holding_start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            nonlocal passthrough
            if turned and status.startswith("304"):
                headers = _retag(headers, gid)
            if passthrough or exc_info is not None or not _eligible(status, headers):
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
        path = str(environ.get("PATH_INFO", ""))
        try:
            body, headers = _tagged(body, headers, live, gid, path)
        except Exception as exc:
            # A page this module cannot read is sent as the project made it,
            # untagged; the console says why it does not follow.
            live.skipped(path, f"devconsole could not read the page ({type(exc).__name__}: {exc})"[:200])
        start_response(status, headers)
        return [body]

    return application


def _tagged(body: bytes, headers: list[tuple[str, str]], live: LiveReload, gid: str, path: str) -> tuple[bytes, Any]:
    """``body`` with the script before its ``</body>``, and ``headers`` to
    match; as they are when it has none, or when its policy refuses the
    script (said to the console)."""
    at = body.lower().rfind(b"</body>")
    if at < 0:
        return body, headers
    refusal = csp_refusal([*_header(headers, "content-security-policy"), *meta_policies(body[:at])])
    if refusal is not None:
        live.skipped(path, refusal)
        return body, headers
    # HEAD too: the server drops the body, the length stays the GET's.
    body = body[:at] + live.tag() + body[at:]
    return body, [(k, str(len(body)) if k.lower() == "content-length" else v) for k, v in _retag(headers, gid)]


def reserved(app: Callable[..., Any], live: LiveReload) -> Callable[..., Any]:
    """``app`` behind the reserved prefix, answered here before it."""

    def application(environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        if is_reserved(str(environ.get("PATH_INFO", "")), raw=False):
            return live.serve(environ, start_response)
        return app(environ, start_response)

    return application


def wrap(
    app: Callable[..., Any], live: LiveReload, around: Callable[[Callable[..., Any]], Callable[..., Any]] | None = None
) -> Callable[..., Any]:
    """``app`` as the server child serves it: the tag inside (``around``, if
    given, wraps that: request insight sees the page sent), the reserved
    paths outside of all."""
    inner = inject(app, live)
    return reserved(around(inner) if around is not None else inner, live)
