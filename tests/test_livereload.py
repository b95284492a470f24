"""Live reload on a copy of the demo: the script tag in real responses, the
reserved paths, and a real client's event stream across saves and reloads."""

from __future__ import annotations

import gzip
import http.client
import os
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import pytest

from devconsole.child.livereload import csp_refusal
from devconsole.console.listen import ListenAddress, bind
from devconsole.console.project import Project
from devconsole.console.reloader import Reloader
from devconsole.console.session import wire
from devconsole.console.supervisor import Supervisor
from devconsole.wire.control import BROWSER_RELOAD_ENV

from .conftest import Events, demo_copy, inotify_watches, serving, wait_for

pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="the fork server needs POSIX")

#: Views and a middleware added to the copy: what the project would see.
TEST_VIEWS = '''
import gzip
import os

from django.http import HttpResponse, HttpResponseNotModified, StreamingHttpResponse

PAGE = "<html><body><p>one</p></body><!-- </body> in a comment --><p>two</p></BODY></html>"


class Record:
    """Writes every path that reaches the project."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        with open(os.environ["LR_SEEN"], "a") as seen:
            seen.write(request.path + "\\n")
        return self.get_response(request)


def page(request):
    return HttpResponse(PAGE)


def csp_none(request):
    response = HttpResponse(PAGE)
    response["Content-Security-Policy"] = "default-src 'none'; style-src 'self'"
    return response


def csp_self(request):
    response = HttpResponse(PAGE)
    response["Content-Security-Policy"] = "default-src 'self'; img-src *"
    return response


def csp_connect(request):
    response = HttpResponse(PAGE)
    response["Content-Security-Policy"] = "script-src 'self'; connect-src https://api.example.com"
    return response


def gz(request):
    response = HttpResponse(gzip.compress(PAGE.encode()))
    response["Content-Encoding"] = "gzip"
    return response


def text(request):
    return HttpResponse(PAGE, content_type="text/plain")


def stream(request):
    return StreamingHttpResponse(iter([PAGE]), content_type="text/html")


def not_modified(request):
    return HttpResponseNotModified()
'''

URLS = """
from shop import lrviews

urlpatterns += [
    path("lr/page/", lrviews.page),
    path("lr/csp-none/", lrviews.csp_none),
    path("lr/csp-self/", lrviews.csp_self),
    path("lr/csp-connect/", lrviews.csp_connect),
    path("lr/gz/", lrviews.gz),
    path("lr/text/", lrviews.text),
    path("lr/stream/", lrviews.stream),
    path("lr/304/", lrviews.not_modified),
]
"""

PAGE = b"<html><body><p>one</p></body><!-- </body> in a comment --><p>two</p></BODY></html>"


@dataclass
class Console:
    root: Path
    port: int
    supervisor: Supervisor
    reloader: Reloader
    events: Events
    seen: Path

    def edit(self, relative: str, old: str, new: str) -> None:
        path = self.root / relative
        text = path.read_text()
        assert old in text, f"{old!r} not in {relative}"
        path.write_text(text.replace(old, new, 1))

    def generation_serving(self, generation: int) -> None:
        wait_for(lambda: [h for h in self.events.of("hello") if h["generation"] == generation], timeout=30)

    def live(self) -> list[dict]:
        return [e for e in self.events.of("livereload") if e["generation"] == self.supervisor.generation]


def request(port: int, path: str, method: str = "GET") -> tuple[int, dict[str, str], bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request(method, path, headers={"Connection": "close", "Accept-Encoding": "gzip"})
        response = conn.getresponse()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
    finally:
        conn.close()


class EventStream:
    """A page's event stream, read by a real socket client."""

    def __init__(self, port: int, page: str = "/lr/page/") -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=15)
        self.sock.sendall(
            f"GET /__devconsole__/events?page={page} HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/event-stream\r\n\r\n".encode()
        )
        self.file = self.sock.makefile("rb")
        status = self.file.readline()
        self.status = int(status.split()[1])
        self.headers: dict[str, str] = {}
        while (line := self.file.readline()) not in (b"\r\n", b""):
            name, _, value = line.decode().partition(":")
            self.headers[name.strip().lower()] = value.strip()

    def next(self) -> tuple[str, str] | None:
        """The next message (``event``, ``data``); None at the stream's end."""
        event, data = "message", []
        seen = False
        while True:
            line = self.file.readline()
            if not line:
                return None
            text = line.decode().rstrip("\r\n")
            if not text:
                if seen and data:
                    return event, "\n".join(data)
                event, data, seen = "message", [], False
                continue
            if text.startswith(":") or text.startswith("retry:"):
                continue
            name, _, value = text.partition(":")
            value = value.removeprefix(" ")
            seen = True
            if name == "event":
                event = value
            elif name == "data":
                data.append(value)

    def close(self) -> None:
        self.file.close()
        self.sock.close()


@pytest.fixture
def console(tmp_path: Path, demo_db: Path) -> Iterator[Console]:
    root, project = demo_copy(tmp_path, demo_db)
    (root / "shop" / "lrviews.py").write_text(TEST_VIEWS)
    with (root / "demosite" / "urls.py").open("a") as urls:
        urls.write(URLS)
    settings = root / "demosite" / "settings.py"
    settings.write_text(
        settings.read_text().replace("MIDDLEWARE = [\n", 'MIDDLEWARE = [\n    "shop.lrviews.Record",\n', 1)
    )
    seen = tmp_path / "seen.txt"
    seen.touch()
    project = replace(project, env=(*project.env, ("LR_SEEN", str(seen))))
    sock = bind(ListenAddress("127.0.0.1", 0))
    port = sock.getsockname()[1]
    events = Events()
    supervisor, reloader = wire(project, ListenAddress("127.0.0.1", port), sock, events)
    reloader.start()
    console = Console(root, port, supervisor, reloader, events, seen)
    try:
        assert request(port, "/ping/")[2] == b"pong"
        wait_for(lambda: events.of("watch"))
        static = str((root / "shop" / "static").resolve())
        wait_for(lambda: reloader.watcher is not None and str(root / "shop") in reloader.watcher.roots)
        assert [static, "**/*"] in events.of("watch")[-1]["dir_globs"]
        wait_for(lambda: inotify_watches(reloader.watcher.roots))
        yield console
    finally:
        reloader.stop()
        supervisor.close()


def test_the_script_goes_into_whole_html_pages_only(console: Console) -> None:
    tag = b'<script src="/__devconsole__/livereload.js?g=1" defer></script>'
    status, headers, body = request(console.port, "/lr/page/")
    assert status == 200
    # Before the last closing body tag (any case), once; the length follows.
    assert body == PAGE.replace(b"</BODY>", tag + b"</BODY>")
    assert int(headers["content-length"]) == len(body) == len(PAGE) + len(tag)
    # The demo's own pages too (its stylesheet is what a CSS save swaps).
    index = request(console.port, "/")[2]
    assert index.count(b"livereload.js") == 1 and b"/static/shop/site.css" in index

    status, headers, body = request(console.port, "/lr/page/", method="HEAD")
    assert (status, body) == (200, b"") and int(headers["content-length"]) == len(PAGE)
    assert request(console.port, "/lr/text/")[2] == PAGE
    assert request(console.port, "/lr/stream/")[2] == PAGE
    status, headers, body = request(console.port, "/lr/gz/")
    assert headers["content-encoding"] == "gzip" and gzip.decompress(body) == PAGE
    assert int(headers["content-length"]) == len(body)
    assert request(console.port, "/lr/304/")[::2] == (304, b"")
    assert request(console.port, "/lr/csp-self/")[2].count(tag) == 1

    # A policy that forbids the script, or the stream's connection: left alone, said once per path.
    for _ in range(2):
        assert request(console.port, "/lr/csp-none/")[2] == PAGE
        assert request(console.port, "/lr/csp-connect/")[2] == PAGE
    skips = wait_for(lambda: len(console.events.of("livereload_skip")) >= 2 and console.events.of("livereload_skip"))
    assert sorted(e["path"] for e in skips) == ["/lr/csp-connect/", "/lr/csp-none/"]
    reasons = {e["path"]: e["reason"] for e in skips}
    assert "default-src" in reasons["/lr/csp-none/"] and "script" in reasons["/lr/csp-none/"]
    assert "connect-src" in reasons["/lr/csp-connect/"] and "connection" in reasons["/lr/csp-connect/"]
    logged = [line.text for line in console.events.state.log if "does not follow" in line.text]
    assert len(logged) == 2 and any("/lr/csp-none/" in text for text in logged)


def test_the_reserved_paths_never_reach_the_project_nor_the_totals(console: Console) -> None:
    status, headers, script = request(console.port, "/__devconsole__/livereload.js?g=1")
    assert status == 200 and headers["content-type"].startswith("text/javascript")
    assert b"EventSource" in script and b"devconsoleLivereload" in script
    assert request(console.port, "/__devconsole__/nothing")[0] == 404
    stream = EventStream(console.port)
    assert stream.status == 200 and stream.headers["content-type"].startswith("text/event-stream")
    assert stream.next() == ("generation", "1")
    stream.close()
    assert request(console.port, "/lr/page/")[0] == 200
    seen = wait_for(lambda: "/lr/page/" in console.seen.read_text() and console.seen.read_text().splitlines())
    assert "/ping/" in seen and not [path for path in seen if "__devconsole__" in path]
    # Rows and totals: the project's requests alone (/ping/ and /lr/page/), exactly.
    state = console.events.state
    wait_for(lambda: state.total_requests == 2 and len(state.requests) == 2)
    assert [row.path for row in state.requests] == ["/ping/", "/lr/page/"]


def test_a_stream_follows_css_template_and_view_saves(console: Console) -> None:
    stream = EventStream(console.port, "/shop/")
    other = EventStream(console.port, "/blog/")  # every open tab follows
    try:
        assert stream.next() == ("generation", "1") and other.next() == ("generation", "1")
        wait_for(lambda: console.live() and console.live()[-1]["pages"] == 2)
        state = console.events.state
        assert state.live_reload is not None and state.live_reload.text == "live reload · 2 pages"
        pages = wait_for(lambda: sorted(c.page for c in state.conns.values() if c.state == "livereload"))
        assert pages == ["/blog/", "/shop/"]
        assert not state.in_flight()  # no request is stuck: pages are not requests

        console.edit("shop/static/shop/site.css", "margin: 0;", "margin: 1px;")
        assert stream.next() == ("css", "/static/shop/site.css")
        assert other.next() == ("css", "/static/shop/site.css")
        css = wait_for(lambda: [r for r in console.events.of("reload") if r["files"][0].endswith("site.css")])[0]
        assert css["decision"] == "handled" and console.supervisor.generation == 1

        console.edit("shop/templates/shop/base.html", "devconsole demo</a>", "devconsole demo!</a>")
        assert stream.next() == ("reload", "") and other.next() == ("reload", "")
        assert console.supervisor.generation == 1

        started = time.monotonic()
        console.edit("shop/views.py", 'b"pong"', 'b"PONG"')
        # The old generation ends its streams at once: they do not keep it draining.
        assert stream.next() == ("bye", "") and stream.next() is None
        assert other.next() == ("bye", "") and other.next() is None
        exited = wait_for(lambda: [e for e in console.events.of("exit") if e["generation"] == 1], timeout=10)
        assert exited[0]["returncode"] == 0 and time.monotonic() - started < 5
        assert not [e for e in console.events.of("draining") if e["generation"] == 1 and e["in_flight"]]
    finally:
        stream.close()
        other.close()
    # Reconnected, the page sees another generation: it reloads.
    again = EventStream(console.port, "/shop/")
    try:
        assert again.next() == ("generation", "2")
    finally:
        again.close()
    assert request(console.port, "/ping/")[2] == b"PONG"


def test_a_broken_save_reloads_to_the_error_page_then_to_the_fix(console: Console) -> None:
    stream = EventStream(console.port)
    assert stream.next() == ("generation", "1")
    console.edit("shop/views.py", 'b"pong"', 'b"pong" +')
    assert stream.next() == ("bye", "")
    stream.close()
    console.generation_serving(2)
    broken = EventStream(console.port)
    assert broken.next() == ("generation", "2")  # the error page serves: the page reloads to it
    status, _, body = request(console.port, "/lr/page/")
    assert status == 500 and b'<script src="/__devconsole__/livereload.js?g=2" defer></script></body>' in body
    console.edit("shop/views.py", 'b"pong" +', 'b"pung"')
    assert broken.next() == ("bye", "")
    broken.close()
    fixed = EventStream(console.port)
    try:
        assert fixed.next() == ("generation", "3")
    finally:
        fixed.close()
    assert request(console.port, "/ping/")[2] == b"pung"


def test_turned_off_no_script_no_stream_and_the_next_generation_stays_off(console: Console) -> None:
    stream = EventStream(console.port)
    assert stream.next() == ("generation", "1")
    console.supervisor.set_browser_reload(False)
    assert stream.next() == ("bye", "")  # the open page stops following
    stream.close()
    wait_for(lambda: console.live() and not console.live()[-1]["enabled"])
    assert b"livereload.js" not in request(console.port, "/lr/page/")[2]
    refused = EventStream(console.port)
    refused.close()
    assert refused.status == 204  # the page does not follow (it retries, slowly)
    console.edit("shop/views.py", 'b"pong"', 'b"PONG"')
    console.generation_serving(2)
    wait_for(lambda: console.live() and not console.live()[-1]["enabled"])
    assert b"livereload.js" not in request(console.port, "/lr/page/")[2]
    assert console.events.state.live_reload is not None
    assert console.events.state.live_reload.text == "live reload off"
    console.supervisor.set_browser_reload(True)
    wait_for(lambda: console.live()[-1]["enabled"])
    assert b"livereload.js?g=2" in request(console.port, "/lr/page/")[2]


def test_no_browser_reload_starts_every_child_with_it_off(
    demo_project: Project, events: Events, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(BROWSER_RELOAD_ENV, "0")  # what --no-browser-reload sets
    with serving(demo_project, events) as supervisor:
        assert supervisor.browser_reload is False
        port = supervisor.address.port
        status, _, body = request(port, "/")
        assert status == 200 and b"</body>" in body and b"livereload" not in body
        refused = EventStream(port)
        refused.close()
        assert refused.status == 204
        said = wait_for(lambda: events.of("livereload"))
        assert said[-1]["enabled"] is False and said[-1]["debug"] is True


@pytest.mark.parametrize(
    ("policies", "refused"),
    [
        ([], None),
        (["default-src 'self'"], None),
        (["img-src 'none'"], None),
        (["script-src 'self' 'unsafe-inline'; connect-src *"], None),
        (["default-src 'none'"], "default-src"),
        (["default-src 'self'; script-src https://cdn.example.com"], "script-src"),
        (["script-src-elem 'none'; script-src 'self'"], "script-src-elem"),
        (["script-src 'self'; connect-src 'none'"], "connect-src"),
        (["script-src 'nonce-abc' 'strict-dynamic' 'self'"], "strict-dynamic"),
        (["default-src 'self'", "default-src 'none'"], "default-src"),
    ],
)
def test_which_content_security_policies_refuse_the_script(policies: list[str], refused: str | None) -> None:
    reason = csp_refusal(policies)
    assert (reason is None) == (refused is None)
    if refused is not None:
        assert reason is not None and refused in reason
