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
from typing import Any

import pytest

from devconsole.child.livereload import MAX_QUEUED, LiveReload, _Stream, csp_refusal, is_events, is_reserved
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
from django.views.decorators.csrf import csrf_exempt

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


@csrf_exempt
def posted(request):
    return HttpResponse(PAGE)


def attachment(request):
    response = HttpResponse(PAGE)
    response["Content-Disposition"] = 'attachment; filename="page.html"'
    return response


def meta_csp(request):
    return HttpResponse(PAGE.replace(
        "<body>", """<head><meta http-equiv="Content-Security-Policy" content="script-src &#39;none&#39;"></head><body>"""
    ))


def meta_empty(request):
    # Attributes with empty values, quoted both ways (a Wagtail admin page has some).
    return HttpResponse(PAGE.replace(
        "<body>", """<head><meta name="robots" content=""><meta http-equiv='refresh' content=''><meta charset=utf-8></head><body>"""
    ))


def big(request):
    return HttpResponse(PAGE.replace("<p>one</p>", "<p>" + "compressible " * 200 + "</p>"))


def templated(request):
    from django.shortcuts import render

    return render(request, "shop/lr.html")
'''

#: A template (with an include and a tag library of the project's) the
#: generations compile, and the next one loads before its first page.
TEMPLATES = {
    "shop/templates/shop/lr.html": "{% load lrtags %}<html><body>{% lrtag %} {% include 'shop/lr_part.html' %}</body></html>",
    "shop/templates/shop/lr_part.html": "part-one",
    "shop/templatetags/__init__.py": "",
    "shop/templatetags/lrtags.py": (
        "from django import template\n\nregister = template.Library()\n\n\n"
        "@register.simple_tag\ndef lrtag():\n    return 'tag-one'\n"
    ),
}

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
    path("lr/post/", lrviews.posted),
    path("lr/attachment/", lrviews.attachment),
    path("lr/meta-csp/", lrviews.meta_csp),
    path("lr/meta-empty/", lrviews.meta_empty),
    path("lr/big/", lrviews.big),
    path("lr/templated/", lrviews.templated),
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

    def reload_to(self, generation: int) -> dict[str, Any]:
        """The reload that made ``generation``: emitted once the old one is
        gone too, which may be after the new one said hello."""
        return wait_for(lambda: [r for r in self.events.of("reload") if r["new_generation"] == generation], timeout=30)[
            0
        ]

    def gid(self, generation: int) -> str:
        """What generation ``generation`` of this run is called in pages."""
        return f"{self.supervisor.run_id}.{generation}"

    def tag(self, generation: int) -> bytes:
        return f'<script src="/__devconsole__/livereload.js?g={self.gid(generation)}" defer></script>'.encode()

    def live(self) -> list[dict]:
        return [e for e in self.events.of("livereload") if e["generation"] == self.supervisor.generation]


def request(
    port: int, path: str, method: str = "GET", headers: dict[str, str] | None = None
) -> tuple[int, dict[str, str], bytes]:
    """As a browser asks (a page load: gzip accepted, HTML first)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        sent = {"Connection": "close", "Accept-Encoding": "gzip", "Accept": "text/html,*/*;q=0.8", **(headers or {})}
        conn.request(method, path, headers=sent)
        response = conn.getresponse()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
    finally:
        conn.close()


class EventStream:
    """A page's event stream, read by a real socket client."""

    def __init__(self, port: int, page: str = "/lr/page/", path: str = "/__devconsole__/events") -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=15)
        self.sock.sendall(
            f"GET {path}?page={page} HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/event-stream\r\n\r\n".encode()
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
    for relative, text in TEMPLATES.items():
        (root / relative).parent.mkdir(parents=True, exist_ok=True)
        (root / relative).write_text(text)
    with (root / "demosite" / "urls.py").open("a") as urls:
        urls.write(URLS)
    settings = root / "demosite" / "settings.py"
    settings.write_text(
        settings.read_text().replace(
            "MIDDLEWARE = [\n",
            "MIDDLEWARE = [\n"
            '    "shop.lrviews.Record",\n'
            '    "django.middleware.gzip.GZipMiddleware",\n'
            '    "django.middleware.http.ConditionalGetMiddleware",\n',
            1,
        )
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
    tag = console.tag(1)
    assert console.gid(1).endswith(".1") and len(console.gid(1)) > 2  # this run's, not any run's 1
    status, headers, body = request(console.port, "/lr/page/")
    assert status == 200
    # Before the last closing body tag (any case), once; the length follows.
    assert body == PAGE.replace(b"</BODY>", tag + b"</BODY>")
    assert int(headers["content-length"]) == len(body) == len(PAGE) + len(tag)
    # The demo's own pages too (its stylesheet is what a CSS save swaps).
    index = request(console.port, "/")[2]
    assert index.count(b"livereload.js") == 1 and b"/static/shop/site.css" in index

    # HEAD: no body, the length of the GET (tag included).
    status, headers, body = request(console.port, "/lr/page/", method="HEAD")
    assert (status, body) == (200, b"") and int(headers["content-length"]) == len(PAGE) + len(tag)
    assert request(console.port, "/lr/text/")[2] == PAGE
    assert request(console.port, "/lr/stream/")[2] == PAGE
    status, headers, body = request(console.port, "/lr/gz/")  # encoded by the view itself: left alone
    assert headers["content-encoding"] == "gzip" and gzip.decompress(body) == PAGE
    assert int(headers["content-length"]) == len(body)
    # GZipMiddleware: the browser's Accept-Encoding is not passed on, so the page follows.
    status, headers, body = request(console.port, "/lr/big/")
    assert status == 200 and "content-encoding" not in headers and body.count(tag) == 1
    assert request(console.port, "/lr/304/")[::2] == (304, b"")
    assert request(console.port, "/lr/csp-self/")[2].count(tag) == 1
    status, _headers, body = request(console.port, "/lr/meta-empty/")  # <meta content="">: read, not a 500
    assert status == 200 and body.count(tag) == 1 and b'<meta name="robots" content="">' in body
    # A page a POST answered is not tagged (its reload would post again); a download is the project's.
    assert request(console.port, "/lr/post/", method="POST")[2] == PAGE
    assert request(console.port, "/lr/attachment/")[2] == PAGE

    # A policy that forbids the script, or the stream's connection, in a
    # header or a <meta>: left alone, said once per path.
    for _ in range(2):
        assert request(console.port, "/lr/csp-none/")[2] == PAGE
        assert request(console.port, "/lr/csp-connect/")[2] == PAGE
        assert b"livereload.js" not in request(console.port, "/lr/meta-csp/")[2]
    skips = wait_for(lambda: len(console.events.of("livereload_skip")) >= 3 and console.events.of("livereload_skip"))
    assert sorted(e["path"] for e in skips) == ["/lr/csp-connect/", "/lr/csp-none/", "/lr/meta-csp/"]
    reasons = {e["path"]: e["reason"] for e in skips}
    assert "default-src" in reasons["/lr/csp-none/"] and "script" in reasons["/lr/csp-none/"]
    assert "connect-src" in reasons["/lr/csp-connect/"] and "connection" in reasons["/lr/csp-connect/"]
    assert "script-src" in reasons["/lr/meta-csp/"]
    logged = [line.text for line in console.events.state.log if "does not follow" in line.text]
    assert len(logged) == 3 and any("/lr/csp-none/" in text for text in logged)


def test_a_revalidated_page_is_never_another_generations_copy(console: Console) -> None:
    """ConditionalGetMiddleware: the ETag a browser keeps names the
    generation, so after a save its copy is not confirmed (no reload loop)."""
    status, headers, body = request(console.port, "/lr/page/")
    etag = headers["etag"]
    assert status == 200 and etag.startswith('W/"') and etag.endswith(f'-lr{console.gid(1)}"')
    assert "last-modified" not in headers
    # The same generation: a real 304 round trip, with the same validator.
    status, headers, body = request(console.port, "/lr/page/", headers={"If-None-Match": etag})
    assert (status, body, headers["etag"]) == (304, b"", etag)
    # A copy without the tag (live reload was off) is not confirmed on a page load.
    plain = request(console.port, "/lr/text/")[1]["etag"]  # the project's own, untouched
    assert not plain.startswith("W/") or "-lr" not in plain
    untagged = '"' + etag[3:].rpartition("-lr")[0] + '"'
    assert request(console.port, "/lr/page/", headers={"If-None-Match": untagged})[0] == 200

    console.edit("shop/views.py", 'b"pong"', 'b"PONG"')
    console.generation_serving(2)
    status, headers, body = request(console.port, "/lr/page/", headers={"If-None-Match": etag})
    assert status == 200 and body.count(console.tag(2)) == 1
    assert headers["etag"].endswith(f'-lr{console.gid(2)}"')
    assert request(console.port, "/lr/page/", headers={"If-None-Match": headers["etag"]})[0] == 304


def test_the_reserved_paths_never_reach_the_project_nor_the_totals(console: Console) -> None:
    status, headers, script = request(console.port, "/__devconsole__/livereload.js?g=1")
    assert status == 200 and headers["content-type"].startswith("text/javascript")
    assert b"EventSource" in script and b"devconsoleLivereload" in script and b"SharedWorker" in script
    status, headers, worker = request(console.port, "/__devconsole__/worker.js")
    assert status == 200 and headers["content-type"].startswith("text/javascript") and b"onconnect" in worker
    assert request(console.port, "/__devconsole__/nothing")[0] == 404
    stream = EventStream(console.port)
    assert stream.status == 200 and stream.headers["content-type"].startswith("text/event-stream")
    assert stream.next() == ("generation", console.gid(1))
    # Percent-encoded, the prefix is devconsole's all the same (and no request left handling).
    encoded = EventStream(console.port, path="/%5F%5Fdevconsole__/events")
    assert encoded.next() == ("generation", console.gid(1))
    state = console.events.state
    wait_for(lambda: len([c for c in state.conns.values() if c.state == "livereload" and c.closed_at is None]) == 2)
    assert not state.in_flight()
    stream.close()
    encoded.close()
    assert request(console.port, "/lr/page/")[0] == 200
    seen = wait_for(lambda: "/lr/page/" in console.seen.read_text() and console.seen.read_text().splitlines())
    assert "/ping/" in seen and not [path for path in seen if "devconsole" in path]
    # Rows and totals: the project's requests alone (/ping/ and /lr/page/), exactly.
    wait_for(lambda: state.total_requests == 2 and len(state.requests) == 2)
    assert [row.path for row in state.requests] == ["/ping/", "/lr/page/"]


def test_a_stream_follows_css_template_and_view_saves(console: Console) -> None:
    stream = EventStream(console.port, "/shop/")
    other = EventStream(console.port, "/blog/")  # every open tab follows
    try:
        assert stream.next() == ("generation", console.gid(1)) and other.next() == ("generation", console.gid(1))
        wait_for(lambda: console.live() and console.live()[-1]["pages"] == 2)
        state = console.events.state
        assert state.live_reload is not None and state.live_reload.text == "live reload · 2 pages"
        pages = wait_for(lambda: sorted(c.page for c in state.conns.values() if c.state == "livereload"))
        assert pages == ["/blog/", "/shop/"]
        assert not state.in_flight()  # no request is stuck: pages are not requests

        console.edit("shop/static/shop/site.css", "margin: 0;", "margin: 1px;")
        # The stylesheet's path, then STATIC_URL's (what the script may refresh instead).
        assert stream.next() == ("css", "/static/shop/site.css\n/static/")
        assert other.next() == ("css", "/static/shop/site.css\n/static/")
        css = wait_for(lambda: [r for r in console.events.of("reload") if r["files"][0].endswith("site.css")])[0]
        assert css["decision"] == "handled" and console.supervisor.generation == 1

        console.edit("shop/templates/shop/base.html", "devconsole demo</a>", "devconsole demo!</a>")
        assert stream.next() == ("reload", "") and other.next() == ("reload", "")
        assert console.supervisor.generation == 1

        started = time.monotonic()
        console.edit("shop/views.py", 'b"pong"', 'b"PONG"')
        # The old generation ends its streams at once (they do not keep it
        # draining), saying the next one comes: the pages reload at once.
        assert stream.next() == ("bye", "next") and stream.next() is None
        assert other.next() == ("bye", "next") and other.next() is None
        exited = wait_for(lambda: [e for e in console.events.of("exit") if e["generation"] == 1], timeout=10)
        assert exited[0]["returncode"] == 0 and time.monotonic() - started < 5
        assert not [e for e in console.events.of("draining") if e["generation"] == 1 and e["in_flight"]]
    finally:
        stream.close()
        other.close()
    # Reconnected, the page sees another generation: it reloads.
    again = EventStream(console.port, "/shop/")
    try:
        assert again.next() == ("generation", console.gid(2))
    finally:
        again.close()
    assert request(console.port, "/ping/")[2] == b"PONG"


def test_a_broken_save_reloads_to_the_error_page_then_to_the_fix(console: Console) -> None:
    stream = EventStream(console.port)
    assert stream.next() == ("generation", console.gid(1))
    console.edit("shop/views.py", 'b"pong"', 'b"pong" +')
    assert stream.next() == ("bye", "next")
    stream.close()
    # The page reloads at once: its request waits for the next generation,
    # which serves the error page (never the old generation's content).
    status, _, body = request(console.port, "/lr/page/")
    assert status == 500 and console.tag(2) + b"</body>" in body
    broken = EventStream(console.port)
    assert broken.next() == ("generation", console.gid(2))
    console.edit("shop/views.py", 'b"pong" +', 'b"pung"')
    assert broken.next() == ("bye", "next")
    broken.close()
    status, _, body = request(console.port, "/lr/page/")
    assert status == 200 and console.tag(3) in body
    fixed = EventStream(console.port)
    try:
        assert fixed.next() == ("generation", console.gid(3))
    finally:
        fixed.close()
    assert request(console.port, "/ping/")[2] == b"pung"


def test_a_stop_at_quit_does_not_send_the_pages_to_a_next_generation(console: Console) -> None:
    stream = EventStream(console.port)
    try:
        assert stream.next() == ("generation", console.gid(1))
        console.reloader.stop()
        console.supervisor.close()
        # Nothing comes after a quit: the page must not reload (it would land
        # on a refused connection); it reconnects and says it is down.
        assert stream.next() == ("bye", "") and stream.next() is None
    finally:
        stream.close()


def _spare_ready(console: Console) -> None:
    wait_for(lambda: console.reloader.spare is not None and console.reloader.spare.spare_files is not None, timeout=30)


def test_what_a_new_generation_loads_early_is_never_stale(console: Console) -> None:
    """The templates a generation compiled are named to the next one, which
    loads them before its first page; a spare forked before a save loads
    none ahead of it: a template edited since, a tag library edited or
    created, an app's templates folder created are all seen."""
    assert b"tag-one part-one" in request(console.port, "/lr/templated/")[2]
    console.edit("shop/views.py", 'b"pong"', 'b"PONG"')
    console.generation_serving(2)
    body = request(console.port, "/lr/templated/")[2]
    assert b"tag-one part-one" in body and console.tag(2) in body
    _spare_ready(console)  # forked after generation 2 served
    console.edit("shop/templates/shop/lr_part.html", "part-one", "part-two")
    wait_for(lambda: [r for r in console.events.of("reload") if r["files"][0].endswith("lr_part.html")])
    assert b"tag-one part-two" in request(console.port, "/lr/templated/")[2]  # generation 2's own reload
    console.edit("shop/views.py", 'b"PONG"', 'b"PANG"')
    console.generation_serving(3)
    reload3 = console.reload_to(3)
    assert (
        any(f.endswith("/shop/views.py") for f in reload3["files"]) and reload3["spare"] is True
    )  # the spare forked before the template's edit
    body = request(console.port, "/lr/templated/")[2]
    assert b"tag-one part-two" in body and console.tag(3) in body
    # A tag library edited, then one created and used, with the spare ready
    # before each: the next generation has them.
    _spare_ready(console)
    console.edit("shop/templatetags/lrtags.py", "'tag-one'", "'tag-two'")
    console.generation_serving(4)
    assert b"tag-two part-two" in request(console.port, "/lr/templated/")[2]
    _spare_ready(console)
    (console.root / "shop/templatetags/newtags.py").write_text(
        "from django import template\n\nregister = template.Library()\n\n\n"
        "@register.simple_tag\ndef newtag():\n    return 'new-tag'\n"
    )
    # Generation 4's engine was built before the library existed (so is
    # runserver's, until it restarts); the spare was forked before it too.
    console.edit("shop/templates/shop/lr_part.html", "part-two", "{% load newtags %}{% newtag %}")
    console.edit("shop/views.py", 'b"PANG"', 'b"PUNG"')
    console.generation_serving(5)
    reload5 = console.reload_to(5)
    assert any(f.endswith("/shop/views.py") for f in reload5["files"]) and reload5["spare"] is True
    body = request(console.port, "/lr/templated/")[2]
    assert b"tag-two new-tag" in body and console.tag(5) in body


def test_turned_off_the_pages_stop_and_the_next_generation_stays_off(console: Console) -> None:
    stream = EventStream(console.port)
    assert stream.next() == ("generation", console.gid(1))
    console.supervisor.set_browser_reload(False)
    assert stream.next() == ("off", "")  # the open page stops following (until loaded again)
    stream.close()
    wait_for(lambda: console.live() and not console.live()[-1]["enabled"])
    assert b"livereload.js" not in request(console.port, "/lr/page/")[2]
    refused = EventStream(console.port)
    # A whole answer, not a stream held open: the script stops at ``off`` (nothing polls).
    assert refused.status == 200 and "content-length" in refused.headers and refused.next() == ("off", "")
    refused.close()
    console.edit("shop/views.py", 'b"pong"', 'b"PONG"')
    console.generation_serving(2)
    wait_for(lambda: console.live() and not console.live()[-1]["enabled"])
    assert b"livereload.js" not in request(console.port, "/lr/page/")[2]
    assert console.events.state.live_reload is not None
    assert console.events.state.live_reload.text == "live reload off"
    console.supervisor.set_browser_reload(True)
    wait_for(lambda: console.live()[-1]["enabled"])
    assert console.tag(2) in request(console.port, "/lr/page/")[2]


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
        assert refused.status == 200 and refused.next() == ("off", "")
        refused.close()
        said = wait_for(lambda: events.of("livereload"))
        assert said[-1]["enabled"] is False and said[-1]["debug"] is True


def test_no_browser_reload_then_on_the_next_generation_starts_on(
    tmp_path: Path, demo_db: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(BROWSER_RELOAD_ENV, "0")  # every child inherits it: the switch must win
    root, project = demo_copy(tmp_path, demo_db)
    sock = bind(ListenAddress("127.0.0.1", 0))
    port = sock.getsockname()[1]
    events = Events()
    supervisor, reloader = wire(project, ListenAddress("127.0.0.1", port), sock, events)
    reloader.start()
    try:
        assert request(port, "/ping/")[2] == b"pong"
        wait_for(lambda: reloader.watcher is not None and inotify_watches(reloader.watcher.roots))
        assert b"livereload" not in request(port, "/")[2]
        supervisor.set_browser_reload(True)
        wait_for(lambda: [e for e in events.of("livereload") if e["enabled"]])
        views = root / "shop" / "views.py"
        views.write_text(views.read_text().replace('b"pong"', 'b"PONG"', 1))
        hello = wait_for(lambda: [h for h in events.of("hello") if h["generation"] == 2], timeout=30)
        assert hello
        # From its first request on (no window before a control message).
        assert f"livereload.js?g={supervisor.run_id}.2".encode() in request(port, "/")[2]
        stream = EventStream(port, "/")
        assert stream.next() == ("generation", f"{supervisor.run_id}.2")
        stream.close()
        first = [e for e in events.of("livereload") if e["generation"] == 2][0]
        assert first["enabled"] is True
    finally:
        reloader.stop()
        supervisor.close()


def test_nothreading_no_page_holds_the_only_thread(tmp_path: Path, demo_db: Path) -> None:
    _, project = demo_copy(tmp_path, demo_db)
    sock = bind(ListenAddress("127.0.0.1", 0))
    port = sock.getsockname()[1]
    events = Events()
    supervisor, reloader = wire(project, ListenAddress("127.0.0.1", port), sock, events, use_threading=False)
    reloader.start()
    try:
        assert request(port, "/ping/")[2] == b"pong"
        assert b"livereload" not in request(port, "/")[2]  # nothing would follow: no tag
        stream = EventStream(port, "/")
        assert stream.status == 200 and "content-length" in stream.headers and stream.next() == ("off", "")
        stream.close()
        # The one thread is free: the next request is answered.
        assert request(port, "/ping/")[2] == b"pong"
        said = wait_for(lambda: events.of("livereload"))
        assert said[-1]["enabled"] is False
    finally:
        reloader.stop()
        supervisor.close()


def test_a_full_stream_gets_reload_and_the_others_still_get_css() -> None:
    live = LiveReload(lambda: 1, lambda event: None, enabled=True, run="r")
    behind, fine = _Stream(live, "/a/"), _Stream(live, "/b/")
    live.streams.update((behind, fine))
    behind.queue.extend([b"x"] * MAX_QUEUED)
    assert live.broadcast("css", "/static/a%20b.css\n/static/") == 2
    assert list(behind.queue) == [b"event: reload\ndata: \n\n"]
    assert list(fine.queue) == [b"event: css\ndata: /static/a%20b.css\ndata: /static/\n\n"]


@pytest.mark.parametrize(
    ("path", "reserved", "events"),
    [
        ("/__devconsole__/events", True, True),
        ("/%5F%5Fdevconsole__/events?page=/", True, True),
        ("/__devconsole__/even%74s", True, True),
        ("/__devconsole__/livereload.js", True, False),
        ("/%255F_devconsole__/events", False, False),
        ("/shop/", False, False),
    ],
)
def test_one_reserved_path_check(path: str, reserved: bool, events: bool) -> None:
    assert is_reserved(path) is reserved and is_events(path) is events


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


def test_w_says_when_pages_cannot_follow() -> None:
    """The notification is honest: under Daphne, with --nothreading or
    without DEBUG, turning live reload on makes nothing follow."""
    from devconsole.ui.app import DevConsoleApp

    app = DevConsoleApp()
    state = app.state
    hello = {"type": "hello", "generation": 1, "pid": 1, "threading": True, "server_kind": "wsgi"}
    state.ingest(hello)
    state.ingest({"type": "livereload", "enabled": True, "debug": True, "pages": 0, "generation": 1})
    assert app._browser_reload_note(True).startswith("Live reload on: pages")
    assert app._browser_reload_note(False) == "Live reload off."
    state.ingest({"type": "livereload", "enabled": True, "debug": False, "pages": 0, "generation": 1})
    assert "DEBUG is False" in app._browser_reload_note(True)
    state.ingest({**hello, "generation": 2, "threading": False})
    assert "--nothreading" in app._browser_reload_note(True)
    state.ingest({**hello, "generation": 3, "server_kind": "asgi"})
    assert "Daphne" in app._browser_reload_note(True)


def test_a_page_the_tagging_cannot_read_is_sent_as_the_project_made_it(monkeypatch: pytest.MonkeyPatch) -> None:
    """Whatever goes wrong while a page is read for its ``</body>`` and its
    policies, the project's page is what the browser gets (untagged), never
    an error of devconsole's."""
    from devconsole.child import livereload

    def unreadable(head: bytes) -> list[str]:
        raise ValueError("a page nobody expected")

    monkeypatch.setattr(livereload, "meta_policies", unreadable)
    said: list[dict] = []
    live = LiveReload(lambda: 1, said.append, enabled=True, run="r")
    body = b"<html><head><meta name=x></head><body><p>the project's</p></body></html>"

    def app(environ: dict, start_response) -> list[bytes]:
        start_response("200 OK", [("Content-Type", "text/html; charset=utf-8"), ("Content-Length", str(len(body)))])
        return [body]

    started: list[tuple[str, list]] = []
    result = livereload.inject(app, live)(
        {"REQUEST_METHOD": "GET", "PATH_INFO": "/p/"}, lambda status, headers: started.append((status, headers))
    )
    assert b"".join(result) == body
    assert started == [("200 OK", [("Content-Type", "text/html; charset=utf-8"), ("Content-Length", str(len(body)))])]
    # The console is told why this page does not follow.
    assert [(e["type"], e["path"]) for e in said] == [("livereload_skip", "/p/")]
    assert "could not read the page" in said[0]["reason"] and "a page nobody expected" in said[0]["reason"]
