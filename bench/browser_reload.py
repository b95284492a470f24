"""Browser reload: from saving an edit to the new content in a real browser's
page, devconsole against ``manage.py runserver`` + django-browser-reload, in
the same run.

Headless Chromium (Debian's ``chromium`` and ``chromium-driver``, driven by
Selenium) opens the demo's index page served by each: devconsole run as a
user runs it (in a pty), and runserver (autoreload on) with
django-browser-reload installed into its copy of the demo as that package's
README says (the app, the middleware, the URL include). Each server has its
own copy of the demo, with three probes added to the index page: a value the
view passes (``shop/views.py``), a text in the template
(``shop/templates/shop/index.html``) and an element coloured by the
stylesheet (``shop/static/shop/site.css``). The same edits are saved into
each copy in turn, interleaved.

Timed in the page, not by WebDriver polling: a script added to every
document the tab loads (before the page's own) records ``Date.now()`` the
first time each probe shows a new value (text, or the computed colour), on
every animation frame, DOM mutation and stylesheet load. The time reported
is that instant minus the save's wall-clock time (the file closed). A CSS
edit is also checked for a navigation (a marker set on ``window`` before the
save must survive). A second window on the same page tells whether every open
page follows, not only the last one loaded (the timed window is opened last,
so django-browser-reload's one followed tab is the timed one).

    python bench/browser_reload.py              # 10 rounds of each edit
    python bench/browser_reload.py --rounds 20
    python bench/browser_reload.py --one-window # no second page reloading at the same time
    python bench/browser_reload.py --quick      # checks the script works

Needs ``pip install -e '.[bench]'`` (selenium, django-browser-reload) and
Chromium with its driver (``apt-get install chromium chromium-driver``).
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from benchlib import (
    DEVCONSOLE_QUIT,
    BenchError,
    Launch,
    Ports,
    base_parser,
    demo_database,
    demo_dir,
    devconsole_argv,
    fmt,
    main_guard,
    median,
    port_range,
    ratio,
    table,
    verdict,
    versions,
)

#: Debian's chromium and chromium-driver (another build: set these variables).
CHROMIUM = os.environ.get("DEVCONSOLE_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = os.environ.get("DEVCONSOLE_CHROMEDRIVER") or shutil.which("chromedriver") or "/usr/bin/chromedriver"
MISSING = "pip install -e '.[bench]' (selenium, django-browser-reload) and apt-get install chromium chromium-driver"

KINDS = ("view", "template", "css")
#: Median save → new content in the page, per edit kind (the issue's targets).
TARGET_MS = {"view": 150.0, "template": 100.0, "css": 100.0}
TARGET_RATIO = 5.0
#: How long one edit may take to reach the page before it counts as missed.
EDIT_TIMEOUT = 30.0

ANCHOR = "runserver + django-browser-reload"
DEVCONSOLE = "devconsole"

# ------------------------------------------------------------------ the probes
VIEW_BEFORE = '{"products": products, "max_sleep": MAX_SLEEP}'
VIEW_AFTER = '{"products": products, "max_sleep": MAX_SLEEP, "bench_mark": "v000"}'
TEMPLATE_ANCHOR = "{% block content %}\n"
TEMPLATE_PROBES = (
    '<p id="bench-view">{{ bench_mark }}</p>\n<p id="bench-template">t000</p>\n<p id="bench-css">colour probe</p>\n'
)
CSS_PROBE = "\n#bench-css { color: rgb(0, 0, 0); }\n"

#: Added to every document before its own scripts: the first ``Date.now()``
#: each probe value was seen, in ``window.__benchSeen`` ("view:v001", ...).
WATCHER = """
(() => {
  const seen = {};
  window.__benchSeen = seen;
  const note = (key) => { if (!(key in seen)) seen[key] = Date.now(); };
  const probe = () => {
    const view = document.getElementById('bench-view');
    const template = document.getElementById('bench-template');
    const css = document.getElementById('bench-css');
    if (view) note('view:' + view.textContent.trim());
    if (template) note('template:' + template.textContent.trim());
    if (css) note('css:' + getComputedStyle(css).color);
  };
  const frame = () => { probe(); requestAnimationFrame(frame); };
  requestAnimationFrame(frame);
  new MutationObserver(probe).observe(document, {subtree: true, childList: true, characterData: true, attributes: true});
  document.addEventListener('load', probe, true);
  document.addEventListener('DOMContentLoaded', probe);
})();
"""


def prepare_copy(root: Path, *, anchor: bool) -> Path:
    """A copy of the demo at ``root`` with the probes (and, for the anchor,
    django-browser-reload installed the way its README says)."""
    shutil.copytree(demo_dir(), root, ignore=shutil.ignore_patterns("__pycache__"))
    views = root / "shop" / "views.py"
    template = root / "shop" / "templates" / "shop" / "index.html"
    css = root / "shop" / "static" / "shop" / "site.css"
    for path, before, after in (
        (views, VIEW_BEFORE, VIEW_AFTER),
        (template, TEMPLATE_ANCHOR, TEMPLATE_ANCHOR + TEMPLATE_PROBES),
    ):
        text = path.read_text()
        if before not in text:
            raise BenchError(f"{path}: not the demo this benchmark edits (no {before.strip()!r})")
        path.write_text(text.replace(before, after, 1))
    css.write_text(css.read_text() + CSS_PROBE)
    if anchor:
        settings = root / "demosite" / "settings.py"
        settings.write_text(
            settings.read_text()
            + "\n# django-browser-reload, as its README installs it (bench/browser_reload.py).\n"
            + 'INSTALLED_APPS += ["django_browser_reload"]\n'
            + 'MIDDLEWARE += ["django_browser_reload.middleware.BrowserReloadMiddleware"]\n'
        )
        urls = root / "demosite" / "urls.py"
        urls.write_text(
            urls.read_text() + '\nurlpatterns += [path("__reload__/", include("django_browser_reload.urls"))]\n'
        )
    return root


def save_edit(root: Path, kind: str, n: int) -> tuple[str, float]:
    """Save the ``n``-th edit of ``kind`` into the copy at ``root``: the probe
    value the page will show, and the save's wall-clock time (ms)."""
    if kind == "view":
        path, pattern, new = root / "shop" / "views.py", r'"bench_mark": "v\d+"', f'"bench_mark": "v{n:03d}"'
        value = f"v{n:03d}"
    elif kind == "template":
        path = root / "shop" / "templates" / "shop" / "index.html"
        pattern, new = r'<p id="bench-template">t\d+</p>', f'<p id="bench-template">t{n:03d}</p>'
        value = f"t{n:03d}"
    else:
        path, pattern = root / "shop" / "static" / "shop" / "site.css", r"#bench-css \{ color: rgb\(\d+, 0, 0\); \}"
        red = n % 255 + 1
        new, value = f"#bench-css {{ color: rgb({red}, 0, 0); }}", f"rgb({red}, 0, 0)"
    text = path.read_text()
    edited, count = re.subn(pattern, new, text)
    if count != 1:
        raise BenchError(f"{path}: the {kind} probe is not there to edit")
    with open(path, "w") as handle:
        handle.write(edited)
    return f"{kind}:{value}", time.time() * 1000


# ------------------------------------------------------------------ the browser
def require_browser() -> None:
    missing = [name for name in ("selenium",) if importlib.util.find_spec(name) is None]
    missing += [path for path in (CHROMIUM, CHROMEDRIVER) if not os.access(path, os.X_OK)]
    if missing:
        raise BenchError(f"missing {', '.join(missing)}: {MISSING}")


def chromium_version() -> str:
    try:
        out = subprocess.run([CHROMIUM, "--version"], capture_output=True, text=True, timeout=30).stdout
    except (OSError, subprocess.SubprocessError):
        return "?"
    match = re.search(r"(\d+\.[\d.]+)", out)
    return match[1] if match else "?"


#: Headless, and background windows not throttled (every window runs its timers).
CHROMIUM_FLAGS = (
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--window-size=1000,800",
    "--disable-background-timer-throttling",
    "--disable-renderer-backgrounding",
    "--disable-backgrounding-occluded-windows",
    "--no-first-run",
    "--disable-extensions",
)


def chromium_driver() -> Any:
    """Headless Chromium (:data:`CHROMIUM_FLAGS`) with the system's driver
    (nothing is downloaded), its console kept (``get_log("browser")``).
    The benchmark's and the real-browser tests' one way to start it."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    return webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)


def start_browser() -> Any:
    """:func:`chromium_driver`, its failure said as the benchmark's."""
    try:
        return chromium_driver()
    except Exception as exc:
        raise BenchError(f"headless Chromium did not start: {str(exc).strip().splitlines()[0]}") from exc


@dataclass
class Window:
    """One browser window showing one server's page, with the watcher in it."""

    driver: Any
    handle: str
    url: str

    def js(self, script: str, *args: object) -> Any:
        if self.driver.current_window_handle != self.handle:
            self.driver.switch_to.window(self.handle)
        return self.driver.execute_script(script, *args)

    def seen(self, key: str) -> float | None:
        """When the page first showed ``key`` (epoch ms), or None (not yet;
        also while the window is between two documents)."""
        from selenium.common.exceptions import WebDriverException

        try:
            value = self.js("return (window.__benchSeen || {})[arguments[0]] || null;", key)
        except WebDriverException:
            return None
        return float(value) if value is not None else None

    def wait_seen(self, key: str, timeout: float) -> float | None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            at = self.seen(key)
            if at is not None:
                return at
            time.sleep(0.02)
        return None

    def has_marker(self, token: str) -> bool:
        return bool(self.js("return window.__benchMarker === arguments[0];", token))

    def navigation(self) -> tuple[float, float]:
        """The current document's navigation start (epoch ms) and its first
        byte (ms after that), from the page's Navigation Timing."""
        origin, first_byte = self.js(
            "const n = performance.getEntriesByType('navigation')[0];"
            "return [performance.timeOrigin, n ? n.responseStart : NaN];"
        )
        return float(origin), float(first_byte)

    def set_marker(self, token: str) -> None:
        self.js("window.__benchMarker = arguments[0];", token)

    def connected(self) -> bool:
        """Whether devconsole's client says its event stream is open."""
        from selenium.common.exceptions import WebDriverException

        try:
            return self.js("return document.documentElement.dataset.devconsoleLivereload || '';") == "connected"
        except WebDriverException:
            return False


def open_window(driver: Any, url: str, *, first: bool) -> Window:
    if not first:
        driver.switch_to.new_window("window")
    driver.execute_cdp_cmd("Page.addScriptToEvaluateOnNewDocument", {"source": WATCHER})
    driver.get(url)
    return Window(driver, driver.current_window_handle, url)


# ------------------------------------------------------------------ the servers
@dataclass
class Subject:
    name: str
    root: Path
    launch: Launch
    #: The window timed, and the other one (opened first; none with --one-window).
    timed: Window | None = None
    other: Window | None = None
    times_ms: dict[str, list[float]] = field(default_factory=lambda: {kind: [] for kind in KINDS})
    missed: dict[str, int] = field(default_factory=lambda: dict.fromkeys(KINDS, 0))
    #: Per kind: None (not checked yet), True while the second window followed every edit.
    both_follow: dict[str, bool | None] = field(default_factory=lambda: dict.fromkeys(KINDS))
    #: CSS edits after which the timed page was a new document.
    css_navigations: int = 0
    #: Per kind, for the edits that reloaded the page: save → navigation start,
    #: navigation start → first byte, first byte → new content shown (ms).
    phases: dict[str, list[tuple[float, float, float]]] = field(default_factory=lambda: {kind: [] for kind in KINDS})

    @property
    def waits_for_connection(self) -> bool:
        return self.name == DEVCONSOLE


def wait_connected(subject: Subject, timeout: float = 20.0) -> bool:
    """devconsole: both windows' event streams open (the contract's signal)."""
    if not subject.waits_for_connection:
        return True
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if all(w.connected() for w in (subject.timed, subject.other) if w is not None):
            return True
        time.sleep(0.02)
    return False


def one_edit(subject: Subject, kind: str, n: int, *, tab_wait: float) -> float | None:
    """Save one edit into ``subject``'s copy; the ms until the timed page showed it."""
    timed, other = subject.timed, subject.other
    assert timed is not None
    if subject.launch.proc is not None and subject.launch.proc.poll() is not None:
        raise BenchError(f"{subject.name} exited with status {subject.launch.proc.returncode}")
    wait_connected(subject)
    token = f"{kind}-{n}"
    timed.set_marker(token)
    key, saved_ms = save_edit(subject.root, kind, n)
    at = timed.wait_seen(key, EDIT_TIMEOUT)
    if at is None:
        subject.missed[kind] += 1
        # Bring the page up to date by hand so the next round starts even.
        with contextlib.suppress(Exception):
            timed.js("location.reload();")
        return None
    elapsed = at - saved_ms
    subject.times_ms[kind].append(elapsed)
    navigated = not timed.has_marker(token)
    if kind == "css" and navigated:
        subject.css_navigations += 1
    if navigated:
        origin, first_byte = timed.navigation()
        subject.phases[kind].append((origin - saved_ms, first_byte, at - origin - first_byte))
    if other is not None and subject.both_follow[kind] is not False:
        subject.both_follow[kind] = other.wait_seen(key, tab_wait) is not None
    return elapsed


def started(subject: Subject, driver: Any, *, first: bool, two_windows: bool = True) -> None:
    subject.launch.first_200()
    url = f"http://127.0.0.1:{subject.launch.port}/"
    if two_windows:
        subject.other = open_window(driver, url, first=first)
    subject.timed = open_window(driver, url, first=first and not two_windows)
    for window in (subject.other, subject.timed):
        if window is not None and window.wait_seen("template:t000", EDIT_TIMEOUT) is None:
            raise BenchError(f"{subject.name}: the page at {url} never showed its probes")
    if not wait_connected(subject):
        raise BenchError(f"{subject.name}: the pages never said their live-reload stream is connected")


def browser_errors(driver: Any) -> list[str]:
    """The browser console's errors (SEVERE) so far, every window."""
    out: list[str] = []
    for handle in driver.window_handles:
        driver.switch_to.window(handle)
        with contextlib.suppress(Exception):
            out += [entry["message"] for entry in driver.get_log("browser") if entry.get("level") == "SEVERE"]
    return out


@contextlib.contextmanager
def browser() -> Iterator[Any]:
    driver = start_browser()
    try:
        yield driver
    finally:
        with contextlib.suppress(Exception):
            driver.quit()


def run() -> int:
    parser = base_parser(__doc__.split("\n\n")[0])
    parser.set_defaults(ports="8860-8869")
    parser.add_argument("--rounds", type=int, default=10, help="edits of each kind per server (default %(default)s)")
    parser.add_argument(
        "--gap", type=float, default=1.5, help="seconds between an edit reaching the page and the next save"
    )
    parser.add_argument(
        "--tab-wait",
        type=float,
        default=5.0,
        help="seconds the second window is given to follow an edit the timed one showed (default %(default)s)",
    )
    parser.add_argument(
        "--one-window",
        action="store_true",
        help="open only the timed window (the page follows alone: no second reload competes for the CPU)",
    )
    parser.add_argument(
        "--only", choices=("runserver", "devconsole"), help="measure one server only (no ratio is printed)"
    )
    args = parser.parse_args()
    if args.quick:
        args.rounds, args.gap, args.tab_wait = 2, 1.0, 3.0
    if args.rounds < 1 or args.gap < 0 or args.tab_wait <= 0:
        parser.error("--rounds ≥ 1, --gap ≥ 0 and --tab-wait > 0")
    require_browser()
    with_anchor = args.only in (None, "runserver")
    with_devconsole = args.only in (None, "devconsole")
    if with_anchor and importlib.util.find_spec("django_browser_reload") is None:
        raise BenchError(f"django-browser-reload is not importable by {sys.executable}: {MISSING}")
    windows = "one window" if args.one_window else "two windows, the second opened first"
    print(f"# Browser reload: save an edit, time until the page in headless Chromium shows it ({windows})")
    print(f"Machine: {versions()}; Chromium {chromium_version()}")
    print(flush=True)
    ports = Ports(port_range(args.ports))
    with demo_database(), tempfile.TemporaryDirectory(prefix="devconsole-browser-") as tmp:
        subjects: list[Subject] = []
        if with_anchor:
            root = prepare_copy(Path(tmp) / "runserver", anchor=True)
            port = ports.take()
            argv = [sys.executable, str(root / "manage.py"), "runserver", f"127.0.0.1:{port}"]
            subjects.append(Subject(ANCHOR, root, Launch(ANCHOR, argv, port)))
        if with_devconsole:
            root = prepare_copy(Path(tmp) / "devconsole", anchor=False)
            port = ports.take()
            argv = [*devconsole_argv(port)[:-2], "--project", str(root), f"127.0.0.1:{port}"]
            subjects.append(Subject(DEVCONSOLE, root, Launch(DEVCONSOLE, argv, port, quit_keys=DEVCONSOLE_QUIT)))
        errors: list[str] = []
        try:
            for subject in subjects:
                subject.launch.start()
            with browser() as driver:
                for i, subject in enumerate(subjects):
                    started(subject, driver, first=i == 0, two_windows=not args.one_window)
                time.sleep(args.gap)  # the servers' start-up checks, as a user's first save comes later
                # Interleaved, so both servers see the same noise of a shared machine.
                for n in range(1, args.rounds + 1):
                    for kind in KINDS:
                        line = []
                        for subject in subjects:
                            elapsed = one_edit(subject, kind, n, tab_wait=args.tab_wait)
                            line.append(f"{subject.name} {fmt(elapsed) if elapsed is not None else 'missed'} ms")
                            time.sleep(args.gap)
                        print(f"round {n} {kind}: " + ", ".join(line), flush=True)
                errors = browser_errors(driver)
        finally:
            for subject in subjects:
                subject.launch.stop()
    by_name = {subject.name: subject for subject in subjects}
    anchor, dc = by_name.get(ANCHOR), by_name.get(DEVCONSOLE)

    def med(subject: Subject | None, kind: str) -> float:
        return median(subject.times_ms[kind]) if subject is not None else float("nan")

    def follows(subject: Subject | None, kind: str) -> str:
        if subject is None:
            return "n/a"
        value = subject.both_follow[kind]
        return "n/a" if value is None else ("yes" if value else "no")

    rows = []
    for kind in KINDS:
        rows.append(
            [
                {"view": "view edit", "template": "template edit", "css": "CSS edit"}[kind],
                fmt(med(anchor, kind)),
                fmt(med(dc, kind)),
                fmt(ratio(med(anchor, kind), med(dc, kind)), 1) + "×",
            ]
        )
    print()
    print(
        table(
            f"{args.rounds} edits of each kind per server, interleaved: save → new content in the page",
            ["edit kind", f"{ANCHOR} median (ms)", f"{DEVCONSOLE} median (ms)", "ratio"],
            rows,
        )
    )
    details = []
    for kind in KINDS:
        details.append([f"{kind}: two windows both follow", follows(anchor, kind), follows(dc, kind)])
    for kind in KINDS:
        details.append(
            [
                f"{kind}: fastest / slowest (ms)",
                *(
                    f"{fmt(min(s.times_ms[kind]))} / {fmt(max(s.times_ms[kind]))}" if s and s.times_ms[kind] else "n/a"
                    for s in (anchor, dc)
                ),
            ]
        )
    details += [
        [
            f"{kind}: missed (not in the page {EDIT_TIMEOUT:g} s after the save)",
            *(str(s.missed[kind]) if s else "n/a" for s in (anchor, dc)),
        ]
        for kind in KINDS
    ]
    details.append(
        ["CSS edits that navigated the page", *(str(s.css_navigations) if s else "n/a" for s in (anchor, dc))]
    )

    def phase(subject: Subject | None, kind: str, index: int) -> str:
        if subject is None or not subject.phases[kind]:
            return "n/a"
        return fmt(median([p[index] for p in subject.phases[kind]]))

    for kind in KINDS:
        for index, what in enumerate(("save → reload starts", "reload → first byte", "first byte → shown")):
            if any(s is not None and s.phases[kind] for s in (anchor, dc)):
                details.append(
                    [f"{kind}, reloaded pages: {what} (median ms)", phase(anchor, kind, index), phase(dc, kind, index)]
                )
    print(table("Details", ["", ANCHOR, DEVCONSOLE], details))
    print(f"browser console errors: {len(errors)}")
    for message in errors[:10]:
        print(f"  {message[:200]}")
    if dc is None:
        return 0
    ok = True
    for kind in KINDS:
        fast = med(dc, kind) <= TARGET_MS[kind]
        print(verdict(fast, f"{kind} edit: devconsole median ≤ {TARGET_MS[kind]:g} ms"))
        ok = ok and fast
        if anchor is not None:
            faster = ratio(med(anchor, kind), med(dc, kind)) >= TARGET_RATIO
            print(verdict(faster, f"{kind} edit: devconsole ≥ {TARGET_RATIO:g}× faster than {ANCHOR}"))
            ok = ok and faster
    clean = dc.css_navigations == 0 and not any(dc.missed.values())
    tabs = args.one_window or all(dc.both_follow[kind] for kind in KINDS)
    print(verdict(clean, "devconsole: no edit missed, no CSS edit navigated the page"))
    if not args.one_window:
        print(verdict(tabs, "devconsole: the second window followed every edit"))
    return 0 if (ok and clean and tabs) or args.quick else 1


if __name__ == "__main__":
    main_guard(run)
