"""Keep-alive load through reloads: failed requests and exact totals,
devconsole against ``manage.py runserver`` (with its own autoreloader).

Each server runs its own copy of the demo project. For each load, ``--saves``
edits of the ``/ping/`` view are saved ``--gap`` seconds apart while the load
runs, and the load stops ``--gap`` seconds after the last save:

* ``wrk -c50`` on ``/ping/`` (keep-alive; ``count.lua`` counts what it sent
  and what was answered, and stops sending at the end while its connections
  stay open, so requests in flight are still answered);
* ``--clients`` Python clients, each sending GETs one after another on one
  ``http.client`` keep-alive connection (a failed request is counted, and
  the client reconnects).

Counted: requests that failed (sent and never answered, a socket error, a
status other than 200) and, for devconsole, the console's own request total
(the headless app, as in the other benchmarks) against what the clients
counted; they must be equal. runserver has no total to compare.

    python bench/keepalive.py               # 10 saves per load, 2 s apart
    python bench/keepalive.py --saves 20 --gap 1
    python bench/keepalive.py --quick       # checks the script works
"""

from __future__ import annotations

import asyncio
import http.client
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from benchlib import (
    PING,
    BenchError,
    Launch,
    Ports,
    base_parser,
    demo_database,
    demo_dir,
    fmt,
    main_guard,
    median,
    parse_wrk,
    port_range,
    require_wrk,
    table,
    verdict,
    versions,
    wrk_argv,
)

#: The /ping/ view's body starts after this (the first HttpResponse in shop/views.py).
VIEW = 'HttpResponse(b"'


@dataclass
class LoadResult:
    """One load through the saves, on one server."""

    sent: int = 0
    answered: int = 0
    non_200: int = 0
    socket_errors: str = ""
    failures: list[str] = field(default_factory=list)
    console_total: int | None = None
    reload_ms: list[float] = field(default_factory=list)
    #: The polls that timed each reload (new connections): answered ones are
    #: in the console's total too.
    polls: int = 0

    #: Requests that failed: never answered or not 200 (clients); a socket
    #: error or not 2xx (wrk, which stops reading at its end: the requests
    #: it sent last are answered after that, and are no failure).
    failed: int = 0
    #: What the console should count: every request answered (clients), or
    #: sent (wrk: all of them reach the server when nothing fails).
    expected: int = 0


def copy_project(into: Path) -> Path:
    shutil.copytree(demo_dir(), into, ignore=shutil.ignore_patterns("__pycache__"))
    if 'HttpResponse(b"pong"' not in (into / "shop" / "views.py").read_text():
        raise BenchError(f"{into / 'shop' / 'views.py'}: the /ping/ view is not the one this benchmark edits")
    return into


def fresh_get(port: int) -> tuple[int, bytes] | None:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        conn.request("GET", PING, headers={"Connection": "close"})
        response = conn.getresponse()
        return response.status, response.read()
    except (OSError, http.client.HTTPException):
        return None
    finally:
        conn.close()


def save_all(root: Path, port: int, tag: str, saves: int, gap: float, result: LoadResult) -> None:
    """Save ``saves`` edits of /ping/'s body, one every ``gap`` seconds from
    now; until the next, poll /ping/ on new connections and time how long the
    new body takes to answer (a reload not seen by then is not timed)."""
    views = root / "shop" / "views.py"
    started = time.monotonic()
    for n in range(1, saves + 1):
        time.sleep(max(0.0, started + n * gap - time.monotonic()))
        body = f"{tag}{n:03d}".encode()  # 4 bytes: the view sends Content-Length: 4
        text = views.read_text()
        start = text.index(VIEW) + len(VIEW)
        end = text.index('"', start)
        views.write_text(text[:start] + body.decode() + text[end:])
        saved = time.monotonic()
        while time.monotonic() < started + (n + 1) * gap:
            answer = fresh_get(port)
            if answer is not None:
                result.polls += 1
            if answer is not None and answer[1] == body:
                result.reload_ms.append((time.monotonic() - saved) * 1000)
                break
            time.sleep(0.01)
    time.sleep(max(0.0, started + (saves + 1) * gap - time.monotonic()))


class KeepAliveClient(threading.Thread):
    """GETs one after another on one keep-alive connection until told to stop."""

    def __init__(self, port: int, stop: threading.Event) -> None:
        super().__init__(daemon=True)
        self.port, self.stop = port, stop
        self.sent = self.answered = self.non_200 = 0
        self.failures: list[str] = []

    def run(self) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        while not self.stop.is_set():
            self.sent += 1
            try:
                conn.request("GET", PING)
                response = conn.getresponse()
                response.read()
            except (OSError, http.client.HTTPException) as exc:
                self.failures.append(type(exc).__name__)
                conn.close()
                if isinstance(exc, ConnectionRefusedError):
                    time.sleep(0.01)
                continue
            self.answered += 1
            if response.status != 200:
                self.non_200 += 1
        conn.close()


def client_load(port: int, clients: int, saving: Callable[[], None]) -> LoadResult:
    stop = threading.Event()
    threads = [KeepAliveClient(port, stop) for _ in range(clients)]
    for thread in threads:
        thread.start()
    try:
        saving()
    finally:
        stop.set()
        for thread in threads:
            thread.join(60)
    result = LoadResult(
        sent=sum(t.sent for t in threads),
        answered=sum(t.answered for t in threads),
        non_200=sum(t.non_200 for t in threads),
    )
    for thread in threads:
        result.failures += thread.failures
    result.failed = result.sent - result.answered + result.non_200
    result.expected = result.answered
    return result


def wrk_load(port: int, load_s: float, saving: Callable[[], None], idle: Callable[[], bool]) -> LoadResult:
    """wrk stops sending after ``load_s``; interrupted once ``idle()`` says the server is done."""
    argv = wrk_argv(
        f"http://127.0.0.1:{port}{PING}", duration=load_s + 60, connections=50, count=True, stop_after=load_s
    )
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        saving()
        deadline = time.monotonic() + 60
        while not idle() and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.05)
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    wrk = parse_wrk(out)
    if wrk.sent is None or wrk.received is None:
        raise BenchError(f"wrk did not report its counts: {(out + err).strip()[-300:]!r}")
    errors = wrk.socket_errors + wrk.read_errors
    kinds = re.search(r"Socket errors: (connect \d+, read \d+, write \d+, timeout \d+)", out)
    return LoadResult(
        sent=wrk.sent,
        answered=wrk.received,
        non_200=wrk.non_2xx,
        socket_errors=kinds[1] if kinds else "none",
        failed=errors + wrk.non_2xx,
        expected=wrk.sent,
    )


def quiet_for(total: Callable[[], int], after: float, seconds: float = 1.0) -> Callable[[], bool]:
    """True once ``after`` (monotonic) has passed and ``total()`` has not moved for ``seconds``."""
    seen = {"total": -1, "since": time.monotonic()}

    def check() -> bool:
        now = time.monotonic()
        value = total()
        if value != seen["total"]:
            seen["total"], seen["since"] = value, now
            return False
        return now >= after and now - seen["since"] >= seconds

    return check


def run_loads(port: int, root: Path, args: Any, total: Callable[[], int] | None) -> tuple[LoadResult, LoadResult]:
    """wrk, then the Python clients, each through ``args.saves`` saves."""
    load_s = args.gap * (args.saves + 1)

    def saving(result_box: list[LoadResult], letter: str) -> Callable[[], None]:
        return lambda: save_all(root, port, letter, args.saves, args.gap, result_box[0])

    timing = [LoadResult()]
    before = total() if total else 0
    started = time.monotonic()
    idle = quiet_for(total, started + load_s) if total else (lambda: time.monotonic() > started + load_s + 2)
    wrk = wrk_load(port, load_s, saving(timing, "w"), idle)
    wrk.reload_ms, wrk.polls = timing[0].reload_ms, timing[0].polls
    if total:
        wrk.console_total = total() - before
    time.sleep(args.gap)
    timing = [LoadResult()]
    before = total() if total else 0
    clients = client_load(port, args.clients, saving(timing, "c"))
    clients.reload_ms, clients.polls = timing[0].reload_ms, timing[0].polls
    if total:
        deadline = time.monotonic() + 30
        while total() - before != clients.expected + clients.polls and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.5)  # a count that goes past the clients' would show now
        clients.console_total = total() - before
    return wrk, clients


async def devconsole_side(port: int, root: Path, db: Path, args: Any) -> tuple[LoadResult, LoadResult]:
    """The real app, headless (see headless.py), on its copy of the demo."""
    from headless import wait_until

    from devconsole.console.listen import BindError, bind, parse_addrport
    from devconsole.console.project import Project
    from devconsole.ui.app import DevConsoleApp

    address = parse_addrport(f"127.0.0.1:{port}")
    try:
        sock = bind(address)
    except BindError as exc:
        raise BenchError(exc.strerror or str(exc)) from None
    env = (("DEVCONSOLE_DEMO_DB", str(db)), ("DJANGO_SETTINGS_MODULE", "demosite.settings"))
    app = DevConsoleApp(project=Project(root / "manage.py", env=env), address=address, sock=sock, reload=True)
    try:
        async with app.run_test(size=(160, 48)):
            await wait_until(lambda: app.state.hello is not None, 60, "the server child's hello")
            await wait_until(lambda: app.state.watch is not None, 30, "the server child's watch list")
            return await asyncio.to_thread(run_loads, port, root, args, lambda: app.state.total_requests)
    finally:
        app.shutdown()


def runserver_side(port: int, root: Path, args: Any) -> tuple[LoadResult, LoadResult]:
    launch = Launch("runserver", [sys.executable, str(root / "manage.py"), "runserver", f"127.0.0.1:{port}"], port)
    launch.start()
    try:
        launch.first_200()
        time.sleep(1.0)  # its autoreloader's first scan of the files
        return run_loads(port, root, args, None)
    finally:
        launch.stop()


def run() -> int:
    parser = base_parser(__doc__.split("\n\n")[0])
    parser.set_defaults(ports="8861-8869")
    parser.add_argument("--saves", type=int, default=10, help="saves per load (default %(default)s)")
    parser.add_argument("--gap", type=float, default=2.0, help="seconds between saves (default %(default)s)")
    parser.add_argument("--clients", type=int, default=4, help="keep-alive Python clients (default %(default)s)")
    args = parser.parse_args()
    if args.quick:
        args.saves, args.gap, args.clients = 2, 1.0, 2
    if args.saves < 1 or args.gap <= 0 or args.clients < 1:
        parser.error("--saves ≥ 1, --gap > 0 and --clients ≥ 1")
    require_wrk()
    print(f"# Keep-alive load through reloads: {args.saves} saves {args.gap:g} s apart per load")
    print(f"Machine: {versions()}")
    print(flush=True)
    ports = Ports(port_range(args.ports))
    with demo_database() as db, tempfile.TemporaryDirectory(prefix="devconsole-keepalive-") as tmp:
        rs = runserver_side(ports.take(), copy_project(Path(tmp) / "runserver"), args)
        sys.stderr.write("runserver: done\n")
        dc = asyncio.run(devconsole_side(ports.take(), copy_project(Path(tmp) / "devconsole"), db, args))
        sys.stderr.write("devconsole: done\n")
    (rs_wrk, rs_cl), (dc_wrk, dc_cl) = rs, dc

    def total(result: LoadResult) -> str:
        if result.console_total is None:
            return "n/a"
        counted = result.expected + result.polls
        same = "exact" if result.console_total == counted else f"off by {result.console_total - counted:+}"
        return f"{result.console_total:,} ({same})"

    rows = [
        [
            "wrk -c50: requests sent / answered",
            f"{rs_wrk.sent:,} / {rs_wrk.answered:,}",
            f"{dc_wrk.sent:,} / {dc_wrk.answered:,}",
        ],
        ["wrk: failed requests (socket errors + not 2xx)", rs_wrk.failed, dc_wrk.failed],
        ["wrk: socket errors", rs_wrk.socket_errors, dc_wrk.socket_errors],
        ["wrk: console's total (sent + timing polls)", total(rs_wrk), total(dc_wrk)],
        ["wrk: median save → new code (ms)", _reloads(rs_wrk, args.saves), _reloads(dc_wrk, args.saves)],
        [
            f"{args.clients} keep-alive clients: requests sent / answered",
            f"{rs_cl.sent:,} / {rs_cl.answered:,}",
            f"{dc_cl.sent:,} / {dc_cl.answered:,}",
        ],
        ["clients: failed requests", rs_cl.failed, dc_cl.failed],
        ["clients: errors seen", _errors(rs_cl.failures), _errors(dc_cl.failures)],
        ["clients: console's total (answered + timing polls)", total(rs_cl), total(dc_cl)],
        ["clients: median save → new code (ms)", _reloads(rs_cl, args.saves), _reloads(dc_cl, args.saves)],
    ]
    print()
    print(table(f"{args.saves} saves per load, {args.gap:g} s apart", ["", "runserver", "devconsole"], rows))
    no_failures = dc_wrk.failed == 0 and dc_cl.failed == 0
    exact = all(r.console_total == r.expected + r.polls for r in (dc_wrk, dc_cl))
    print(verdict(no_failures, "devconsole: no failed request, no socket error"))
    print(verdict(exact, "devconsole: the console's totals equal the clients' counts"))
    return 0 if (no_failures and exact) or args.quick else 1


def _reloads(result: LoadResult, saves: int) -> str:
    seen = len(result.reload_ms)
    return fmt(median(result.reload_ms)) + ("" if seen == saves else f" ({saves - seen} not seen in time)")


def _errors(failures: list[str]) -> str:
    if not failures:
        return "none"
    counts: dict[str, int] = {}
    for name in failures:
        counts[name] = counts.get(name, 0) + 1
    return ", ".join(f"{n} {name}" for name, n in sorted(counts.items(), key=lambda item: -item[1]))


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    main_guard(run)
