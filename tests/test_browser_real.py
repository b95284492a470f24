"""Live reload in a real browser: headless Chromium on a page devconsole serves.

devconsole runs as a user runs it (the CLI in a pty, 160×48, through the
benchmarks' :class:`benchlib.Launch`) on a private copy of the demo whose
index page has three probes: a value its view passes, a text in its template
and an element its stylesheet colours. Two windows of headless Chromium
(Debian's ``chromium`` and ``chromium-driver``, through Selenium with the
system's driver, started as the browser benchmark starts it: nothing is
downloaded) open that page; the two windows share ONE event stream (the
shared worker), which the console's status line shows as one page. Each save
must reach both windows without the test reloading anything: a view save and
a template save reload the pages, a CSS save changes the computed style with
no navigation (a marker set on ``window`` before the save survives), a broken
save shows the error page and its fix the page again. The browser console
shows no error at all; while the server is down a page says one line, once.

Every wait is for what it means (the stream connected, a probe's new value in
the DOM, the retries reaching a socket), never a fixed sleep. Skipped, saying
why, where Chromium, its driver or Selenium is missing (``.ci/run`` installs
them).
"""

from __future__ import annotations

import contextlib
import os
import re
import socket
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyte
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "bench"))

from benchlib import DEVCONSOLE_QUIT, Launch
from browser_reload import CHROMEDRIVER, CHROMIUM, Window, chromium_driver

from .conftest import demo_copy, wait_for

if not (Path(CHROMIUM).exists() and Path(CHROMEDRIVER).exists()):
    pytest.skip(
        "real-browser tests need Chromium and its driver: apt-get install chromium chromium-driver",
        allow_module_level=True,
    )
pytest.importorskip("selenium.webdriver", reason="real-browser tests need selenium: pip install selenium")
from selenium.common.exceptions import WebDriverException
from selenium.webdriver.support.wait import WebDriverWait

#: Seconds a save may take to reach a page (far above the target: a loaded machine).
REACH = 20.0

VIEW_BEFORE = '{"products": products, "max_sleep": MAX_SLEEP}'
PROBES = '<p id="probe-view">{{ probe }}</p>\n<p id="probe-template">t0</p>\n<p id="probe-css">colour</p>\n'


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def add_probes(root: Path) -> None:
    views = root / "shop" / "views.py"
    text = views.read_text()
    assert VIEW_BEFORE in text, "the demo's index view changed: update this test's probe"
    views.write_text(text.replace(VIEW_BEFORE, VIEW_BEFORE[:-1] + ', "probe": "v0"}', 1))
    template = root / "shop" / "templates" / "shop" / "index.html"
    text = template.read_text()
    assert "{% block content %}\n" in text
    template.write_text(text.replace("{% block content %}\n", "{% block content %}\n" + PROBES, 1))
    css = root / "shop" / "static" / "shop" / "site.css"
    css.write_text(css.read_text() + "\n#probe-css { color: rgb(0, 0, 0); }\n")


def edit(path: Path, pattern: str, new: str) -> None:
    """Save ``path`` with the one match of ``pattern`` replaced, as an editor saves."""
    text, count = re.subn(pattern, new, path.read_text())
    assert count == 1, f"{pattern!r} not once in {path}"
    with open(path, "w") as handle:
        handle.write(text)


class Screen:
    """The console's pty output drawn on a 160×48 screen (for the status
    line, and a failure's message)."""

    def __init__(self) -> None:
        self.screen = pyte.Screen(160, 48)
        self.stream = pyte.ByteStream(self.screen)
        self.lock = threading.Lock()

    def feed(self, data: bytes) -> None:
        with self.lock:
            self.stream.feed(data)

    def text(self) -> str:
        with self.lock:
            return "\n".join(line.rstrip() for line in self.screen.display).strip("\n")


class Page(Window):
    """One browser window on the page (the benchmark's window, and what the tests read)."""

    def value(self, script: str) -> Any:
        """``script``'s result, or None while the window is between documents."""
        try:
            return self.js(script)
        except WebDriverException:
            return None

    def state(self) -> str | None:
        return self.value("return document.documentElement.dataset.devconsoleLivereload || ''")

    def text(self, element_id: str) -> str | None:
        return self.value(f"const e = document.getElementById('{element_id}'); return e ? e.textContent.trim() : null")

    def colour(self) -> str | None:
        return self.value("const e = document.getElementById('probe-css'); return e ? getComputedStyle(e).color : null")


def console_lines(driver: Any) -> list[dict[str, Any]]:
    """The browser console's lines since the last call (the log is the
    session's, every window's), but the demo's missing favicon (a 404 of the
    project, nothing to do with live reload)."""
    return [e for e in driver.get_log("browser") if "favicon.ico" not in e.get("message", "")]


class Site:
    def __init__(self, root: Path, console: Launch, screen: Screen, pages: list[Page]) -> None:
        self.root = root
        self.console = console
        self.screen = screen
        self.pages = pages
        self.driver = pages[0].driver

    def wait(self, what: str, predicate: Any) -> None:
        """Until ``predicate(page)`` holds in every window (WebDriverWait on the DOM)."""
        for page in self.pages:
            try:
                WebDriverWait(page.driver, REACH, poll_frequency=0.02).until(lambda _d, page=page: predicate(page))
            except Exception as exc:
                raise AssertionError(
                    f"window {self.pages.index(page) + 1}: {what} not within {REACH:g} s "
                    f"(console running: {self.console.proc is not None and self.console.proc.poll() is None}); "
                    f"its screen:\n{self.screen.text()}"
                ) from exc

    def ready(self) -> None:
        self.wait("the live-reload stream connected", Page.connected)
        for page in self.pages:
            page.js("window.__testMarker = 'before-save'")
        console_lines(self.driver)  # what came before this save is not its doing

    def no_errors(self) -> None:
        """Not one error in the browser's console (any window)."""
        errors = [e["message"] for e in console_lines(self.driver) if e.get("level") == "SEVERE"]
        assert not errors, f"the browser's console: {errors}"


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory, demo_db: Path) -> Iterator[Site]:
    root, project = demo_copy(tmp_path_factory.mktemp("browser"), demo_db)
    add_probes(root)
    port = free_port()
    screen = Screen()
    console = Launch(
        "devconsole",
        [sys.executable, "-m", "devconsole", "--project", str(root), f"127.0.0.1:{port}"],
        port,
        quit_keys=DEVCONSOLE_QUIT,
        cwd=root,
        env={**os.environ, **dict(project.env)},
        output=screen.feed,
    ).start()
    driver = None
    try:
        driver = chromium_driver()
        driver.set_page_load_timeout(60)
        url = f"http://127.0.0.1:{port}/"
        pages = []
        for first in (True, False):
            if not first:
                driver.switch_to.new_window("window")
            # The console's server answers once it is up (the socket is the
            # console's from the start: the first load waits in the backlog).
            driver.get(url)
            pages.append(Page(driver, driver.current_window_handle, url))
        here = Site(root, console, screen, pages)
        here.wait("the page's probes", lambda page: page.text("probe-template") == "t0")
        yield here
    finally:
        if driver is not None:
            with contextlib.suppress(Exception):
                driver.quit()
        console.stop()


def test_two_windows_share_one_stream(site: Site) -> None:
    site.ready()
    # The console's status line counts streams: the two windows are one.
    wait_for(lambda: "live reload · 1 page" in site.screen.text(), timeout=REACH)
    assert "live reload · 2 pages" not in site.screen.text()
    assert all(page.value("return window.__devconsole__.alone") is False for page in site.pages)


def test_a_view_save_reloads_every_open_page(site: Site) -> None:
    site.ready()
    edit(site.root / "shop" / "views.py", r'"probe": "v\d+"', '"probe": "v1"')
    site.wait("the view's new value", lambda page: page.text("probe-view") == "v1")
    for page in site.pages:
        assert page.value("return window.__testMarker || null") is None, "the page was not reloaded"
    site.no_errors()


def test_a_template_save_reloads_every_open_page(site: Site) -> None:
    site.ready()
    path = site.root / "shop" / "templates" / "shop" / "index.html"
    edit(path, r'<p id="probe-template">t\d+</p>', '<p id="probe-template">t1</p>')
    site.wait("the template's new text", lambda page: page.text("probe-template") == "t1")
    site.no_errors()


def test_a_css_save_restyles_every_open_page_without_reloading_it(site: Site) -> None:
    site.ready()
    assert all(page.colour() == "rgb(0, 0, 0)" for page in site.pages)
    edit(site.root / "shop" / "static" / "shop" / "site.css", r"rgb\(0, 0, 0\)", "rgb(200, 0, 0)")
    site.wait("the stylesheet's new colour", lambda page: page.colour() == "rgb(200, 0, 0)")
    for number, page in enumerate(site.pages, 1):
        assert page.value("return window.__testMarker || null") == "before-save", (
            f"window {number} was navigated: the stylesheet was not swapped in place"
        )
    site.no_errors()


def test_a_broken_save_shows_the_error_page_then_the_fix(site: Site) -> None:
    site.ready()
    views = site.root / "shop" / "views.py"
    edit(views, r'"probe": "v(\d+)"', '"probe": "v2" +')
    site.wait("the error page", lambda page: "SyntaxError" in (page.value("return document.body.innerText") or ""))
    site.wait("the error page's stream", Page.connected)  # the error page follows too
    edit(views, r'"probe": "v2" \+', '"probe": "v3"')
    site.wait("the fixed page", lambda page: page.text("probe-view") == "v3")
    # The error page is a 500 of the document: that line is Chromium's, not the client's.
    errors = [
        e["message"]
        for e in console_lines(site.driver)
        if e.get("level") == "SEVERE" and "the server responded with a status of 500" not in e["message"]
    ]
    assert not errors, f"the browser's console: {errors}"


def test_while_the_server_is_down_a_page_says_one_line(site: Site) -> None:
    """Last (it stops the console): the stream is retried against a socket
    that answers nothing; the pages keep working and say it once each."""
    site.ready()
    port = site.console.port
    site.console.stop()
    site.wait("the stream down", lambda page: page.state() == "reconnecting")
    attempts = 0
    with socket.socket() as down:
        down.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        down.bind(("127.0.0.1", port))
        down.listen(8)
        down.settimeout(REACH)
        while attempts < 4:  # the retries reach the port, each ended at once
            conn, _ = down.accept()
            conn.close()
            attempts += 1
    lines = console_lines(site.driver)
    assert not [e for e in lines if e.get("level") == "SEVERE"], lines
    said = [e for e in lines if "server unreachable" in e.get("message", "")]
    assert len(said) <= len(site.pages) and len(lines) == len(said), lines
    for page in site.pages:
        assert page.text("probe-template") is not None  # the page is still there, working
        assert page.value("return window.__testMarker || null") == "before-save"
