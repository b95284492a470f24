"""Live reload in a real browser: headless Chromium on a page devconsole serves.

devconsole runs as a user runs it (the CLI in a pty, 160×48) on a private
copy of the demo whose index page has three probes: a value its view passes,
a text in its template and an element its stylesheet colours. Two windows of
headless Chromium (Debian's ``chromium`` and ``chromium-driver``, through
Selenium with the system's driver: nothing is downloaded) open that page;
then each save must reach both windows without the test reloading anything:
a view save and a template save reload the pages, a CSS save changes the
computed style with no navigation (a marker set on ``window`` before the save
survives). The browser console shows no error beyond at most one line per
save (a reconnection; the demo's missing favicon is not the client's).

Every wait is for what it means (the page's live-reload stream connected, a
probe's new value in the DOM), never a fixed sleep. Skipped, saying why, where
Chromium, its driver or Selenium is missing (``.ci/run`` installs them).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import pty
import re
import shutil
import signal
import socket
import struct
import subprocess
import sys
import termios
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyte
import pytest

from .conftest import demo_copy

CHROMIUM = os.environ.get("DEVCONSOLE_CHROMIUM") or shutil.which("chromium")
CHROMEDRIVER = os.environ.get("DEVCONSOLE_CHROMEDRIVER") or shutil.which("chromedriver")
if CHROMIUM is None or CHROMEDRIVER is None:
    pytest.skip(
        "real-browser tests need Chromium and its driver: apt-get install chromium chromium-driver",
        allow_module_level=True,
    )
webdriver = pytest.importorskip("selenium.webdriver", reason="real-browser tests need selenium: pip install selenium")
from selenium.common.exceptions import WebDriverException  # noqa: E402
from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.support.wait import WebDriverWait  # noqa: E402

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


class Console:
    """``devconsole --project ROOT 127.0.0.1:PORT`` in a pty of 160×48, its
    output drained (a full pty would stall the console); quit with ctrl+q."""

    def __init__(self, root: Path, env: dict[str, str], port: int) -> None:
        master, slave = pty.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 48, 160, 0, 0))
        self.screen = pyte.Screen(160, 48)
        self.stream = pyte.ByteStream(self.screen)
        self.lock = threading.Lock()
        try:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "devconsole", "--project", str(root), f"127.0.0.1:{port}"],
                cwd=root,
                env=env,
                stdin=slave,
                stdout=slave,
                stderr=slave,
                start_new_session=True,
            )
        finally:
            os.close(slave)
        self.master = master
        self.reader = threading.Thread(target=self._drain, daemon=True)
        self.reader.start()

    def _drain(self) -> None:
        while True:
            try:
                data = os.read(self.master, 65536)
            except OSError:
                return
            if not data:
                return
            with self.lock:
                self.stream.feed(data)

    def text(self) -> str:
        """The console's screen now (for a failure's message)."""
        with self.lock:
            return "\n".join(line.rstrip() for line in self.screen.display).strip("\n")

    def stop(self) -> None:
        if self.proc.poll() is None:
            with contextlib.suppress(OSError):
                os.write(self.master, b"\x11")
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(15)
        for sig in (signal.SIGTERM, signal.SIGKILL):
            if self.proc.poll() is not None:
                break
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, sig)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(5)
        with contextlib.suppress(OSError):
            os.close(self.master)
        self.reader.join(timeout=2)


class Page:
    """One browser window on the page."""

    def __init__(self, driver: Any, handle: str) -> None:
        self.driver = driver
        self.handle = handle

    def js(self, script: str, *args: object) -> Any:
        if self.driver.current_window_handle != self.handle:
            self.driver.switch_to.window(self.handle)
        return self.driver.execute_script(script, *args)

    def value(self, script: str) -> Any:
        """``script``'s result, or None while the window is between documents."""
        try:
            return self.js(script)
        except WebDriverException:
            return None

    def connected(self) -> bool:
        return self.value("return document.documentElement.dataset.devconsoleLivereload || ''") == "connected"

    def text(self, element_id: str) -> str | None:
        return self.value(f"const e = document.getElementById('{element_id}'); return e ? e.textContent.trim() : null")

    def colour(self) -> str | None:
        return self.value("const e = document.getElementById('probe-css'); return e ? getComputedStyle(e).color : null")

    def errors(self) -> list[str]:
        """The browser console's errors since the last call, but the demo's
        missing favicon (a 404 of the project, nothing to do with live reload)."""
        self.js("return 1")  # switch to this window
        entries = self.driver.get_log("browser")
        return [
            e["message"] for e in entries if e.get("level") == "SEVERE" and "favicon.ico" not in e.get("message", "")
        ]


class Site:
    def __init__(self, root: Path, console: Console, pages: list[Page]) -> None:
        self.root = root
        self.console = console
        self.pages = pages

    def wait(self, what: str, predicate: Any) -> None:
        """Until ``predicate(page)`` holds in every window (WebDriverWait on the DOM)."""
        for page in self.pages:
            try:
                WebDriverWait(page.driver, REACH, poll_frequency=0.02).until(lambda _d, page=page: predicate(page))
            except Exception as exc:
                raise AssertionError(
                    f"window {self.pages.index(page) + 1}: {what} not within {REACH:g} s "
                    f"(console running: {self.console.proc.poll() is None}); its screen:\n{self.console.text()}"
                ) from exc

    def ready(self) -> None:
        self.wait("the live-reload stream connected", Page.connected)
        for page in self.pages:
            page.js("window.__testMarker = 'before-save'")
            page.errors()  # what came before this save is not its doing

    def no_errors_beyond_one_line(self) -> None:
        for number, page in enumerate(self.pages, 1):
            errors = page.errors()
            assert len(errors) <= 1, f"window {number}'s console: {errors}"


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory, demo_db: Path) -> Iterator[Site]:
    root, project = demo_copy(tmp_path_factory.mktemp("browser"), demo_db)
    add_probes(root)
    env = dict(os.environ, TERM="xterm-256color", **dict(project.env))
    env.pop("TEXTUAL", None)
    port = free_port()
    console = Console(root, env, port)
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-background-timer-throttling",
        "--disable-renderer-backgrounding",
        "--disable-backgrounding-occluded-windows",
        "--no-first-run",
    ):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = None
    try:
        driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)
        driver.set_page_load_timeout(60)
        url = f"http://127.0.0.1:{port}/"
        pages = []
        for first in (True, False):
            if not first:
                driver.switch_to.new_window("window")
            # The console's server answers once it is up (the socket is the
            # console's from the start: the first load waits in the backlog).
            driver.get(url)
            pages.append(Page(driver, driver.current_window_handle))
        here = Site(root, console, pages)
        here.wait("the page's probes", lambda page: page.text("probe-template") == "t0")
        yield here
    finally:
        if driver is not None:
            with contextlib.suppress(Exception):
                driver.quit()
        console.stop()


def test_a_view_save_reloads_every_open_page(site: Site) -> None:
    site.ready()
    edit(site.root / "shop" / "views.py", r'"probe": "v\d+"', '"probe": "v1"')
    site.wait("the view's new value", lambda page: page.text("probe-view") == "v1")
    for page in site.pages:
        assert page.value("return window.__testMarker || null") is None, "the page was not reloaded"
    site.no_errors_beyond_one_line()


def test_a_template_save_reloads_every_open_page(site: Site) -> None:
    site.ready()
    path = site.root / "shop" / "templates" / "shop" / "index.html"
    edit(path, r'<p id="probe-template">t\d+</p>', '<p id="probe-template">t1</p>')
    site.wait("the template's new text", lambda page: page.text("probe-template") == "t1")
    site.no_errors_beyond_one_line()


def test_a_css_save_restyles_every_open_page_without_reloading_it(site: Site) -> None:
    site.ready()
    assert all(page.colour() == "rgb(0, 0, 0)" for page in site.pages)
    edit(site.root / "shop" / "static" / "shop" / "site.css", r"rgb\(0, 0, 0\)", "rgb(200, 0, 0)")
    site.wait("the stylesheet's new colour", lambda page: page.colour() == "rgb(200, 0, 0)")
    for number, page in enumerate(site.pages, 1):
        assert page.value("return window.__testMarker || null") == "before-save", (
            f"window {number} was navigated: the stylesheet was not swapped in place"
        )
    site.no_errors_beyond_one_line()
