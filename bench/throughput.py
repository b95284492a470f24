"""Throughput: requests/s and latency of the demo's /ping/ view, side by side.

Four servers run at once, each on its own port, each serving the same demo
project:

* ``runserver``  — ``python manage.py runserver --noreload``;
* ``devconsole`` — the console's server path: the console binds the port, the
  supervisor starts the instrumented server child, and every event is ingested
  into the console's state (``bench/serve.py devconsole``; no screen);
* ``bare``       — the ceiling: Django's threaded ``WSGIServer`` with
  ``TCP_NODELAY`` and nothing else (``bench/serve.py bare``);
* ``tuned``      — ``bare`` plus devconsole's two changes to how responses
  leave (one ``sendall`` per response; no request line built for nobody),
  without instrumentation (``bench/serve.py tuned``). devconsole against
  ``tuned`` is the cost of the instrumentation itself.

wrk loads one server at a time, 8 connections, with keep-alive (what browsers
do) and with ``Connection: close``; the cells are interleaved (runserver,
devconsole, bare, tuned, runserver, …) so the noise of a shared machine hits all of
them alike. Each table shows medians over the repetitions and ratios computed
from them, plus the CPU the server's processes spent per request (for
devconsole: the server child and the console process that reads its events).

    python bench/throughput.py                 # 10 s per cell, 5 repetitions
    python bench/throughput.py --duration 5 --reps 3
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from benchlib import (
    SERVERS,
    Ports,
    Server,
    WrkResult,
    base_parser,
    demo_database,
    fmt,
    main_guard,
    median,
    port_range,
    ratio,
    require_wrk,
    run_wrk,
    table,
    tree_cpu,
    verdict,
    versions,
)

ORDER = ("runserver", "devconsole", "bare", "tuned")
MODES = (("keep-alive", True), ("Connection: close", False))


def measure(
    server: Server, *, duration: float, keepalive: bool, connections: int
) -> tuple[WrkResult, dict[str, float]]:
    """One wrk cell against ``server``; its result and the CPU seconds its
    processes used meanwhile (``server`` = the process answering HTTP,
    ``console`` = devconsole's parent process)."""
    assert server.proc is not None
    before = tree_cpu(server.proc.pid)
    result = run_wrk(server.url, duration=duration, keepalive=keepalive, connections=connections)
    after = tree_cpu(server.proc.pid)
    root = server.proc.pid
    cpu = {"console": 0.0, "server": 0.0}
    for pid, seconds in after.items():
        spent = seconds - before.get(pid, 0.0)
        if server.name == "devconsole" and pid == root:
            cpu["console"] += spent
        else:
            cpu["server"] += spent
    return result, cpu


def run() -> int:
    parser = base_parser(__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=10.0, help="seconds of load per cell (default %(default)s)")
    parser.add_argument(
        "--reps", type=int, default=5, help="repetitions of each cell, interleaved (default %(default)s)"
    )
    parser.add_argument("--connections", type=int, default=8, help="concurrent connections (default %(default)s)")
    args = parser.parse_args()
    if args.quick:
        args.duration, args.reps = 1.0, 1
    if args.duration < 1 or args.reps < 1 or args.connections < 1:
        parser.error("--duration must be ≥ 1 s, --reps and --connections ≥ 1")
    require_wrk()
    ports = Ports(port_range(args.ports))

    print(
        f"# Throughput: GET /ping/ on the demo project, {args.connections} connections, "
        f"{args.duration:g} s per cell, {args.reps} repetitions interleaved"
    )
    print(f"Machine: {versions()}")
    print(flush=True)

    results: dict[tuple[str, str], list[tuple[WrkResult, dict[str, float]]]] = {}
    with demo_database():
        servers = [SERVERS[name](ports.take()) for name in ORDER]
        try:
            for server in servers:
                server.start()
            for server in servers:
                server.wait_ready()
            # Warm-up: the first requests import views and open the database.
            for server in servers if not args.quick else ():
                for _, keepalive in MODES:
                    run_wrk(server.url, duration=1, keepalive=keepalive, connections=args.connections)
            for rep in range(args.reps):
                for mode, keepalive in MODES:
                    for server in servers:
                        cell = measure(
                            server, duration=args.duration, keepalive=keepalive, connections=args.connections
                        )
                        results.setdefault((mode, server.name), []).append(cell)
                print(f"repetition {rep + 1}/{args.reps} done", file=sys.stderr, flush=True)
        finally:
            for server in servers:
                server.stop()

    summary: dict[tuple[str, str], float] = {}
    for mode, _ in MODES:
        rows = []
        rps = {name: median([r.rps for r, _ in results[(mode, name)]]) for name in ORDER}
        for name in ORDER:
            cells = results[(mode, name)]
            total = sum(r.requests for r, _ in cells)
            server_us = sum(c["server"] for _, c in cells) / total * 1e6 if total else float("nan")
            console_us = sum(c["console"] for _, c in cells) / total * 1e6 if total else float("nan")
            errors = sum(r.socket_errors + r.non_2xx for r, _ in cells)
            summary[(mode, name)] = rps[name]
            rows.append(
                [
                    name,
                    fmt(rps[name], 0),
                    fmt(median([r.p50_ms for r, _ in cells]), 2),
                    fmt(median([r.p99_ms for r, _ in cells]), 2),
                    f"{ratio(rps[name], rps['runserver']):.2f}×",
                    f"{ratio(rps[name], rps['bare']):.3f}×",
                    f"{ratio(rps[name], rps['tuned']):.3f}×",
                    fmt(server_us, 0),
                    fmt(console_us, 0) if name == "devconsole" else "-",
                    str(errors),
                    " ".join(fmt(r.rps, 0) for r, _ in cells),
                ]
            )
        print(
            table(
                f"{mode}",
                [
                    "server",
                    "req/s",
                    "p50 ms",
                    "p99 ms",
                    "vs runserver",
                    "vs bare",
                    "vs tuned",
                    "server CPU µs/req",
                    "console CPU µs/req",
                    "errors",
                    "req/s per repetition",
                ],
                rows,
            )
        )

    keep = "keep-alive"
    close = "Connection: close"
    print("Targets (medians of this run):")
    ka_ratio = ratio(summary[(keep, "devconsole")], summary[(keep, "runserver")])
    print(verdict(ka_ratio >= 8, f"keep-alive: devconsole {ka_ratio:.2f}× runserver (target ≥ 8×)"))
    cost = 1 - ratio(summary[(keep, "devconsole")], summary[(keep, "bare")])
    print(
        verdict(cost <= 0.05, f"keep-alive: devconsole costs {cost * 100:.1f}% against the bare server (target ≤ 5%)")
    )
    strict = 1 - ratio(summary[(keep, "devconsole")], summary[(keep, "tuned")])
    print(
        verdict(
            strict <= 0.05,
            f"keep-alive, stricter: the instrumentation alone costs {strict * 100:.1f}% "
            "against the same server uninstrumented (tuned; ≤ 5%)",
        )
    )
    print(
        f"      {close}: devconsole {ratio(summary[(close, 'devconsole')], summary[(close, 'bare')]):.2f}× the bare server; "
        f"the instrumentation alone costs {(1 - ratio(summary[(close, 'devconsole')], summary[(close, 'tuned')])) * 100:.1f}% against tuned"
    )
    nk_ratio = ratio(summary[(close, "devconsole")], summary[(close, "runserver")])
    print(verdict(nk_ratio >= 0.95, f"Connection: close: devconsole {nk_ratio:.2f}× runserver (target ≥ 0.95×)"))
    return 0


if __name__ == "__main__":
    main_guard(run)
