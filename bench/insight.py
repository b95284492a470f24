"""Insight: what capturing each request's SQL, exception and bodies costs.

One server child serves the demo project through the console's own
supervisor (every event ingested into a ``ServerState``, as the console
does). The page is ``/insight/queries/?n=20``: twenty small queries, what
an ordinary page of a Django project runs. Capture is switched with the
control message ``insight on`` / ``insight off`` on the same server, and
the cells are interleaved (on, off, on, off…) so the noise of a shared
machine hits both alike. Each cell sends ``--requests`` requests one after
the other on one keep-alive connection and times each; the table shows the
medians over the cells of the median time per request, and the ratio
on/off; "paired" is the median of each repetition's own on/off ratio (its
two cells ran one after the other, in alternating order: a load that comes
and goes on a shared machine moves both). A second row does the same for
``/ping/`` (no query: the fixed cost of wrapping a request).

A second table says where the cost is: CPU time per request (``/proc``) of
the server child and of this process (the console's side: the supervisor's
reader thread decoding, checking and ingesting each event), each cell's
events all ingested before it is read.

A shared machine's load moves these times by more than the cost measured:
``--in-process`` measures the server child's side alone, steadily: the
page's request through Django's WSGI handler in this process, capture off
and on alternating request by request, thread CPU time of the handler (up
to the response's last byte), of the capture's finish (after it, before
the next request) and of encoding the event (the child's flusher thread).

    python bench/insight.py                     # 400 requests per cell, 7 cells each
    python bench/insight.py --requests 200 --reps 5
    python bench/insight.py --in-process        # 2,000 requests each way
"""

from __future__ import annotations

import http.client
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from benchlib import (
    BenchError,
    Ports,
    base_parser,
    cpu_seconds,
    demo_database,
    fmt,
    main_guard,
    median,
    port_range,
    ratio,
    table,
    verdict,
    versions,
)

#: The target: capture on costs at most this much more time per request.
TARGET = 1.10
PAGES = (("20 queries", "/insight/queries/?n=20"), ("no query", "/ping/"))


def cell(port: int, path: str, requests: int) -> float:
    """The median seconds per request of ``requests`` sent one after another
    on one keep-alive connection."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    times: list[float] = []
    try:
        for _ in range(requests):
            started = time.perf_counter()
            conn.request("GET", path)
            response = conn.getresponse()
            response.read()
            times.append(time.perf_counter() - started)
            if response.status != 200:
                raise BenchError(f"GET {path}: status {response.status}")
    finally:
        conn.close()
    return median(times)


class Client:
    """The load: a process of its own (the console's reader threads must not
    share the client's interpreter lock: a browser never does), asked for one
    cell at a time on its stdin."""

    def __init__(self, port: int) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, __file__, "--client", str(port)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )

    def cell(self, path: str, requests: int) -> float:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(f"{path} {requests}\n")
        self.proc.stdin.flush()
        answer = self.proc.stdout.readline().strip()
        if not answer or answer.startswith("error"):
            raise BenchError(f"the client failed: {answer or 'no answer'}")
        return float(answer)

    def close(self) -> None:
        if self.proc.stdin is not None:
            self.proc.stdin.close()
        self.proc.wait(10)


def client(port: int) -> int:
    """The client process: ``PATH COUNT`` lines in, median seconds out."""
    for line in sys.stdin:
        path, _, count = line.strip().partition(" ")
        try:
            print(cell(port, path, int(count)), flush=True)
        except (BenchError, OSError, http.client.HTTPException) as exc:
            print(f"error {exc}", flush=True)
    return 0


def run() -> int:
    if len(sys.argv) == 3 and sys.argv[1] == "--client":
        return client(int(sys.argv[2]))
    parser = base_parser(__doc__.splitlines()[0] if __doc__ else "insight")
    parser.add_argument("--requests", type=int, default=400, help="requests per cell (default %(default)s)")
    parser.add_argument("--reps", type=int, default=7, help="cells per mode (default %(default)s)")
    parser.add_argument("--in-process", action="store_true", help="the child's side alone, without HTTP (see above)")
    args = parser.parse_args()
    if args.quick:
        args.requests, args.reps = 30, 2
    if args.in_process:
        return in_process(50 if args.quick else 2000)
    ports = Ports(port_range(args.ports))

    from devconsole.console.listen import ListenAddress, bind
    from devconsole.console.project import Project
    from devconsole.console.supervisor import Supervisor
    from devconsole.demo import DEMO_MANAGE_PY
    from devconsole.demo import demo_env as env
    from devconsole.model.state import ServerState

    print(f"Machine: {versions()}")
    with demo_database():
        state = ServerState()
        port = ports.take()
        sock = bind(ListenAddress("127.0.0.1", port))
        supervisor = Supervisor(
            Project(DEMO_MANAGE_PY, env=tuple(env().items())), ListenAddress("127.0.0.1", port), sock, state.ingest
        )
        try:
            child = supervisor.start()
            if not child.hello.wait(60):
                raise BenchError("the server child did not say hello in 60 s")
            results: dict[str, dict[str, list[float]]] = {name: {"on": [], "off": []} for name, _ in PAGES}
            cpu: dict[str, dict[str, list[tuple[float, float]]]] = {name: {"on": [], "off": []} for name, _ in PAGES}
            load = Client(port)
            try:
                for name, path in PAGES:
                    load.cell(path, max(10, args.requests // 10))  # warm up: imports, connections, caches
                    for rep in range(args.reps):
                        for mode in ("on", "off") if rep % 2 == 0 else ("off", "on"):
                            switch(child, state, load, path, mode)
                            before = (cpu_seconds(child.pid), time.process_time(), state.request_seq)
                            results[name][mode].append(load.cell(path, args.requests))
                            ingested(state, before[2] + args.requests)
                            child_s, console_s = cpu_seconds(child.pid) - before[0], time.process_time() - before[1]
                            cpu[name][mode].append((child_s / args.requests, console_s / args.requests))
            finally:
                load.close()
            child.send("insight on")
        finally:
            supervisor.close()

    rows = []
    cpu_rows = []
    worst = 0.0
    for name, path in PAGES:
        on, off = median(results[name]["on"]), median(results[name]["off"])
        share = ratio(on, off)
        paired = median([ratio(a, b) for a, b in zip(results[name]["on"], results[name]["off"], strict=True)])
        worst = max(worst, share) if name == PAGES[0][0] else worst
        rows.append(
            [
                f"{name} ({path})",
                fmt(off * 1000, 3),
                fmt(on * 1000, 3),
                f"{share:.3f}×",
                f"{paired:.3f}×",
                fmt((on - off) * 1e6, 0),
            ]
        )
        sides = {mode: [median([c[i] for c in cpu[name][mode]]) * 1e6 for i in (0, 1)] for mode in ("on", "off")}
        cpu_rows.append(
            [f"{name} ({path})"]
            + [fmt(sides[mode][i], 0) for i in (0, 1) for mode in ("off", "on")]
            + [fmt(sides["on"][i] - sides["off"][i], 0) for i in (0, 1)]
        )
    print()
    print(
        table(
            f"Time per request, capture off vs on (median of {args.reps} cells × {args.requests} requests)",
            ["page", "off ms", "on ms", "on/off", "paired", "cost µs"],
            rows,
        )
    )
    print(
        table(
            "CPU time per request (µs), median of the cells",
            ["page", "child off", "child on", "console off", "console on", "child +", "console +"],
            cpu_rows,
        )
    )
    print(
        verdict(
            worst <= TARGET, f"20 queries: capture costs {(worst - 1) * 100:.1f}% (target ≤ {(TARGET - 1) * 100:.0f}%)"
        )
    )
    return 0


def in_process(requests: int) -> int:
    """The server child's CPU per request, capture off vs on, without HTTP."""
    import io
    import os

    print(f"Machine: {versions()}")
    with demo_database():
        from devconsole.demo import DEMO_DIR
        from devconsole.demo import demo_env as env

        os.environ.update(env())
        sys.path.insert(0, str(DEMO_DIR))
        import django

        django.setup()
        from django.core.handlers.wsgi import WSGIHandler

        from devconsole.child import insight
        from devconsole.wire import protocol

        results: dict[str, dict[str, dict[str, list[float]]]] = {}
        for name, target in PAGES:
            path, _, query = target.partition("?")
            application = insight.wrap(WSGIHandler())

            def one(on: bool, path: str = path, query: str = query, application: Any = application) -> list[float]:
                insight.set_enabled(on)
                environ = {
                    "REQUEST_METHOD": "GET",
                    "PATH_INFO": path,
                    "QUERY_STRING": query,
                    "SERVER_NAME": "127.0.0.1",
                    "SERVER_PORT": "8000",
                    "SERVER_PROTOCOL": "HTTP/1.1",
                    "HTTP_HOST": "127.0.0.1",
                    "wsgi.input": io.BytesIO(b""),
                    "wsgi.url_scheme": "http",
                    "wsgi.errors": sys.stderr,
                }
                started = time.thread_time_ns()
                result = application(environ, lambda status, headers, exc_info=None: None)
                b"".join(result)
                result.close()
                handled = time.thread_time_ns()
                event: dict[str, Any] = {"type": "request", "id": "1.1", "path": path, "headers": [["Host", "x"]]}
                insight.finish(event)  # type: ignore[arg-type]
                finished = time.thread_time_ns()
                protocol.encode(event)
                encoded = time.thread_time_ns()
                return [(handled - started) / 1e3, (finished - handled) / 1e3, (encoded - finished) / 1e3]

            for _ in range(max(10, requests // 10)):  # warm up
                one(True)
                one(False)
            results[name] = {
                "on": {"handle": [], "finish": [], "encode": []},
                "off": {"handle": [], "finish": [], "encode": []},
            }
            for index in range(requests):
                for on in (True, False) if index % 2 == 0 else (False, True):
                    cell = results[name]["on" if on else "off"]
                    for part, value in zip(("handle", "finish", "encode"), one(on), strict=True):
                        cell[part].append(value)
    rows = []
    for name, target in PAGES:
        cells = results[name]
        handle = {mode: median(cells[mode]["handle"]) for mode in ("off", "on")}
        extra = {
            part: median(cells["on"][part]) - median(cells["off"][part]) for part in ("handle", "finish", "encode")
        }
        rows.append(
            [
                f"{name} ({target})",
                fmt(handle["off"], 0),
                fmt(handle["on"], 0),
                f"{ratio(handle['on'], handle['off']):.3f}×",
                fmt(extra["handle"], 0),
                fmt(extra["finish"], 0),
                fmt(extra["encode"], 0),
                f"{ratio(handle['off'] + sum(extra.values()), handle['off']):.3f}×",
            ]
        )
    print()
    print(
        table(
            f"The server child's CPU per request (µs, thread time, median of {requests} each way, alternating)",
            ["page", "off", "on", "on/off", "+ to the response", "+ after it", "+ event", "all/off"],
            rows,
        )
    )
    return 0


def switch(child: Any, state: Any, load: Client, path: str, mode: str) -> None:
    """Turn capture ``mode`` and wait until a request shows it took: the
    control message is read by the child's main thread, not in order with
    the requests."""
    child.send(f"insight {mode}")
    deadline = time.monotonic() + 10
    while True:
        before = state.request_seq
        load.cell(path, 1)
        if _captured(state, before) == (mode == "on"):
            return
        if time.monotonic() > deadline:
            raise BenchError(f"insight {mode}: the server child did not switch")


def ingested(state: Any, seq: int) -> None:
    """Wait until the console has ingested request ``seq`` (the child sends
    its events within 50 ms; the CPU they cost the console is the cell's)."""
    deadline = time.monotonic() + 10
    while state.request_seq < seq:
        if time.monotonic() > deadline:
            raise BenchError(f"the console saw {state.request_seq} requests, not {seq}")
        time.sleep(0.005)


def _captured(state: object, before: int) -> bool:
    """Whether the newest request after ``before`` carried insight."""
    rows = state.requests_since(before)  # type: ignore[attr-defined]
    deadline = time.monotonic() + 5
    while not rows and time.monotonic() < deadline:
        time.sleep(0.01)
        rows = state.requests_since(before)  # type: ignore[attr-defined]
    return bool(rows) and rows[-1].summary.sql_count is not None


if __name__ == "__main__":
    main_guard(run)
