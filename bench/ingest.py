"""Ingest: the console's CPU per event, with the field check and without.

Every event the server child sends is checked against its definition
(``devconsole.wire.events.problem``) before ``ServerState.ingest`` applies it.
This script measures what that check costs on the console's side of the
pipe, where every microsecond is paid once per event at the server's rate.

It builds a stream shaped like a live session at ``--rate`` requests/s
(shapes copied from ``tests/recordings/demo.jsonl``, plus the ``hello`` fields
today's child sends): per request a ``conn_open``, a ``request`` with its
headers and a ``conn_close``, all with fresh ids; per flush of the child
(every 50 ms) a ``loop`` and a ``stats``. The state's clock follows the
stream's own time, so windows and lingering connections are those of a live
session at that rate. Each repetition feeds the whole stream to a new
``ServerState`` twice, once as the console does and once with the check
replaced by one that finds nothing, timing every ``ingest`` call; the table
shows per event type the median over repetitions of the mean µs per event,
and the check alone (``problem(event)`` on the same events).

No server, no screen, no sockets: one process, pure CPU.

    python bench/ingest.py                     # 20,000 requests, 7 repetitions
    python bench/ingest.py --requests 5000 --reps 3
"""

from __future__ import annotations

import copy
import gc
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from benchlib import base_parser, fmt, main_guard, median, table, versions

from devconsole.model.state import ServerState
from devconsole.wire import events

KINDS = ("request", "conn_open", "conn_close", "loop", "stats")
#: The server child's flush interval (devconsole/child/server.py: FLUSH_INTERVAL).
FLUSH = 0.05

HELLO: dict[str, Any] = {
    "type": "hello",
    "v": 1,
    "pid": 23467,
    "generation": 1,
    "python": "3.11.7",
    "django": "5.2.19",
    "settings": "demosite.settings",
    "runserver": {
        "class": "django.contrib.staticfiles.management.commands.runserver.Command",
        "app": "django.contrib.staticfiles",
        "mro": [
            "django.contrib.staticfiles.management.commands.runserver.Command",
            "django.core.management.commands.runserver.Command",
            "django.core.management.base.BaseCommand",
        ],
        "shadows": ["django.core"],
    },
    "server": [
        "django.core.servers.basehttp.WSGIServer",
        "socketserver.ThreadingMixIn",
        "wsgiref.simple_server.WSGIServer",
        "http.server.HTTPServer",
        "socketserver.TCPServer",
        "socketserver.BaseServer",
    ],
    "handler": "django.core.servers.basehttp.WSGIRequestHandler",
    "listen": {"host": "127.0.0.1", "port": 42293},
    "threading": True,
    "poll_interval": 0.5,
    "phases": [{"name": "manage.py", "ms": 99.25}, {"name": "django.setup()", "ms": 229.91}],
    "urlconf_error": None,
    "request_log": "events",
    "server_kind": "wsgi",
}


def request_events(i: int, ts: float) -> list[dict[str, Any]]:
    """One request's events, as the child sends them (the console adds ``generation``)."""
    conn = {
        "id": i,
        "peer": f"127.0.0.1:{40000 + i % 20000}",
        "state": "closed",
        "thread": f"Thread-{i} (process_request_thread)",
        "bytes_in": 119,
        "bytes_out": 1971,
        "requests": 1,
        "ts": ts,
        "generation": 1,
    }
    request = {
        "type": "request",
        "conn": i,
        "method": "GET",
        "path": f"/blog/post/{i % 97}/",
        "query": "",
        "version": "HTTP/1.1",
        "status": 200,
        "bytes_out": 1687,
        "thread": conn["thread"],
        "ts": ts,
        "headers": [
            ["Accept-Encoding", "identity"],
            ["Host", "127.0.0.1:42293"],
            ["User-Agent", "Python-urllib/3.11"],
            ["Connection", "close"],
        ],
        "duration_ms": 35.622,
        "id": f"1.{i}",
        "generation": 1,
    }
    return [{"type": "conn_open", **conn}, request, {"type": "conn_close", **conn}]


def flush_events(requests: int, per_flush: int) -> list[dict[str, Any]]:
    """What a flush adds after its requests: the loop's counters and the totals."""
    loop = {
        "type": "loop",
        "iterations": per_flush,
        "ready": per_flush,
        "timeouts": 0,
        "blocked_s": 0.012,
        "elapsed_s": FLUSH,
        "accepts": per_flush,
        "poll_interval": 0.5,
        "generation": 1,
    }
    stats = {
        "type": "stats",
        "requests": requests,
        "connections": requests,
        "dropped": 0,
        "status": {"2xx": requests},
        "open": 0,
        "generation": 1,
    }
    return [loop, stats]


def stream(requests: int, rate: float) -> list[tuple[float, dict[str, Any]]]:
    """``(when, event)`` for ``requests`` requests at ``rate`` per second."""
    start = time.time()
    per_flush = max(1, round(rate * FLUSH))
    out: list[tuple[float, dict[str, Any]]] = []
    for i in range(1, requests + 1):
        when = start + i / rate
        out += [(when, event) for event in request_events(i, when)]
        if i % per_flush == 0:
            out += [(when, event) for event in flush_events(i, per_flush)]
    return out


@contextmanager
def unchecked() -> Iterator[None]:
    """``ServerState.ingest`` with a check that never finds anything."""
    original = events.problem
    events.problem = lambda event: None
    try:
        yield
    finally:
        events.problem = original


class Clock:
    """The state's clock: the stream's own time, set before each event."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def time_each(
    call: Callable[[dict[str, Any]], object], timed: list[tuple[float, dict[str, Any]]], clock: Clock
) -> dict[str, float]:
    """Mean µs per call by event type."""
    counter = time.perf_counter_ns
    spent = dict.fromkeys(KINDS, 0)
    counts = dict.fromkeys(KINDS, 0)
    gc.disable()
    try:
        for when, event in timed:
            clock.now = when
            t0 = counter()
            call(event)
            t1 = counter()
            kind = event["type"]
            spent[kind] += t1 - t0
            counts[kind] += 1
    finally:
        gc.enable()
    return {kind: spent[kind] / counts[kind] / 1000 for kind in KINDS}


def ingest_run(template: list[tuple[float, dict[str, Any]]], checked: bool) -> dict[str, float]:
    timed = copy.deepcopy(template)  # ingest keeps references (headers): fresh dicts each run
    clock = Clock()
    clock.now = timed[0][0]
    state = ServerState(clock=clock)
    state.ingest(dict(HELLO))
    if checked:
        result = time_each(state.ingest, timed, clock)
    else:
        with unchecked():
            result = time_each(state.ingest, timed, clock)
    assert not state.invalid_events.count and not state.unknown_events.count, "the bench's events must be valid"
    return result


def run() -> int:
    parser = base_parser(__doc__.split("\n\n")[0])  # --quick, and --ports (unused: no sockets here)
    parser.add_argument("--requests", type=int, default=20000, help="requests in the stream (3 events each)")
    parser.add_argument("--rate", type=float, default=2000.0, help="requests per second the stream simulates")
    parser.add_argument("--reps", type=int, default=7, help="repetitions; medians are taken over them")
    args = parser.parse_args()
    if args.quick:
        args.requests, args.reps = 500, 2
    template = stream(args.requests, args.rate)
    for _, event in template:
        problem = events.problem(event)
        assert problem is None, problem
    samples: dict[str, list[dict[str, float]]] = {"with": [], "without": [], "check": []}
    for _ in range(args.reps):
        samples["with"].append(ingest_run(template, checked=True))
        samples["without"].append(ingest_run(template, checked=False))
        samples["check"].append(time_each(events.problem, template, Clock()))

    def med(which: str, kind: str) -> float:
        return median([sample[kind] for sample in samples[which]])

    rows = []
    for kind in KINDS:
        with_, without = med("with", kind), med("without", kind)
        rows.append([kind, fmt(with_, 2), fmt(without, 2), fmt(with_ - without, 2), fmt(med("check", kind), 2)])
    print(f"Machine: {versions()}")
    print(f"{args.requests:,} requests at {args.rate:,.0f}/s ({len(template):,} events), {args.reps} repetitions\n")
    print(
        table(
            "ServerState.ingest, µs per event (medians)",
            ["event", "with the check", "without", "difference", "problem() alone"],
            rows,
        )
    )
    return 0


if __name__ == "__main__":
    main_guard(run)
